//! The paper's measurement procedure (`streamprep profile`): messages of `b` rows go through a
//! method one at a time, and the service time of each is taken from handing it over to having
//! its result back. Inline also times each stage of the chain.

use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use streamprep_core::{IoError, Message};

use crate::chain::{Chain, Processed};
use crate::executor::{self, Method, Remote, RemoteJob};

/// The measurements of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// From handing the message over to having its result.
    pub service: Duration,
    /// How long the chain itself ran on the worker: the time the message kept a worker busy,
    /// which is what utilisation counts (the hand-off to a pool thread or the round trips
    /// through Redis add to `service`, not to this).
    pub busy: Duration,
    /// Per stage (`prepare`, the steps, `result`); inline only, empty otherwise.
    pub stages: Vec<Duration>,
    /// Rows that became dead letters.
    pub dead_rows: usize,
}

/// Put `messages` through `method` one at a time; the first `warmup` are run but not returned.
/// `remote` is the executor of `Method::Queue` (which must itself give up when no worker
/// answers). With `gap`, message `k` is handed over no earlier than `k * gap` after the first,
/// as a stream at that pace would bring it (the method idles in between, as it does in a run);
/// without, each follows the previous result at once (the paper's procedure). With `gap`, a
/// pool's busy times come from a second, open-loop pass at that pace (see [`open_loop`]).
pub fn service_times(
    method: Method,
    job: &RemoteJob,
    remote: Option<&dyn Remote>,
    messages: Vec<Message>,
    warmup: usize,
    gap: Option<Duration>,
) -> Result<Vec<Sample>, IoError> {
    let rows = messages.first().map_or(1, |m| m.payload.rows());
    let mut pace = Pace::new(gap, rows);
    let mut samples = match method {
        Method::Inline => {
            let mut chain = new_chain(job)?;
            chain.time_stages();
            let mut out = Vec::with_capacity(messages.len());
            // as in the pipeline, the encoded output goes to another thread in chunks of about
            // 1 MiB (the sink's writer) and the batch is dropped here: freeing everything where
            // it was made flatters the chain (measured: a quarter less time a message at b=100)
            let (tx, rx) = bounded::<Vec<Vec<u8>>>(4);
            let sink = std::thread::spawn(move || rx.into_iter().for_each(drop));
            let (mut chunk, mut bytes) = (Vec::new(), 0usize);
            for msg in messages {
                let msg = pace.hand_over(msg);
                let at = Instant::now();
                let mut p = executor::run_guarded(&mut chain, msg);
                let service = at.elapsed();
                out.push(Sample {
                    service,
                    busy: p.service,
                    stages: std::mem::take(&mut p.stages),
                    dead_rows: dead_rows(&p),
                });
                if let Some(o) = p.output.take() {
                    bytes += o.encoded.len();
                    chunk.push(o.encoded);
                }
                if bytes >= 1 << 20 {
                    let _ = tx.send(std::mem::take(&mut chunk));
                    bytes = 0;
                }
            }
            let _ = tx.send(chunk);
            drop(tx);
            let _ = sink.join();
            out
        }
        Method::Pool { workers } => {
            let pool = |chains: Vec<Chain>| {
                move |next: &mut Next<'_>, deliver: &mut Deliver<'_>| {
                    executor::pool(chains, workers.max(1), next, deliver).map(|_| ())
                }
            };
            // at a pace, the busy time comes from a second pass in which messages arrive at
            // that pace whether or not the earlier ones are done, as in a run: the workers then
            // run side by side and share the cores, which one message at a time never shows
            let busy = match gap {
                Some(_) => Some(open_loop(
                    messages.clone(),
                    &mut Pace::new(gap, rows),
                    pool(new_chains(job, workers)?),
                )?),
                None => None,
            };
            let mut samples = lock_step(messages, &mut pace, pool(new_chains(job, workers)?))?;
            if let Some(busy) = busy {
                for (s, b) in samples.iter_mut().zip(busy) {
                    s.busy = b;
                }
            }
            samples
        }
        Method::Queue { .. } => {
            let remote = remote.ok_or_else(|| {
                IoError::Protocol("internal error: the queue method without a broker".into())
            })?;
            lock_step(messages, &mut pace, |next, deliver| {
                remote.execute(
                    job,
                    1,
                    next,
                    deliver,
                    &std::sync::atomic::AtomicBool::new(false),
                )
            })?
        }
    };
    Ok(samples.split_off(warmup.min(samples.len())))
}

fn new_chain(job: &RemoteJob) -> Result<Chain, IoError> {
    Chain::new(&job.chain, job.prepare.clone(), job.encoding)
        .map_err(|e| IoError::Protocol(e.to_string()))
}

/// One chain for each of a pool's `workers` threads.
fn new_chains(job: &RemoteJob, workers: usize) -> Result<Vec<Chain>, IoError> {
    (0..workers.max(1)).map(|_| new_chain(job)).collect()
}

fn dead_rows(p: &Processed) -> usize {
    p.dead.iter().map(|d| d.rows).sum()
}

type Next<'a> = dyn FnMut() -> Result<Option<Message>, IoError> + Send + 'a;
type Deliver<'a> = dyn FnMut(Processed) -> Result<(), IoError> + Send + 'a;

/// Drive an executor so that one message is in it at a time: the next message is handed over
/// only once the previous one's result has been delivered.
fn lock_step(
    messages: Vec<Message>,
    pace: &mut Pace,
    exec: impl FnOnce(&mut Next<'_>, &mut Deliver<'_>) -> Result<(), IoError>,
) -> Result<Vec<Sample>, IoError> {
    let (tx, rx) = bounded::<(Instant, Duration, usize)>(1);
    let mut todo = messages.into_iter();
    let mut samples = Vec::new();
    let mut handed: Option<Instant> = None;
    let mut next = || -> Result<Option<Message>, IoError> {
        if let Some(at) = handed.take() {
            // the executor hands over the next message only after delivering this one's
            // result (pool: from its collector thread; queue: with one message in flight)
            let (done, busy, dead) = rx
                .recv()
                .map_err(|_| IoError::Protocol("internal error: no result".into()))?;
            samples.push(Sample {
                service: done - at,
                busy,
                stages: Vec::new(),
                dead_rows: dead,
            });
        }
        let m = todo.next().map(|m| pace.hand_over(m));
        if m.is_some() {
            handed = Some(Instant::now());
        }
        Ok(m)
    };
    let mut deliver = |p: Processed| -> Result<(), IoError> {
        let done = Instant::now();
        tx.send((done, p.service, dead_rows(&p)))
            .map_err(|_| IoError::Protocol("internal error: profile stopped".into()))
    };
    exec(&mut next, &mut deliver)?;
    Ok(samples)
}

/// Drive an executor open loop: each message is handed over when it is due, whether or not the
/// earlier ones are done, as a source at that pace does. Returns each message's busy time.
fn open_loop(
    messages: Vec<Message>,
    pace: &mut Pace,
    exec: impl FnOnce(&mut Next<'_>, &mut Deliver<'_>) -> Result<(), IoError>,
) -> Result<Vec<Duration>, IoError> {
    let mut todo = messages.into_iter();
    let mut busy = Vec::new();
    let mut next =
        || -> Result<Option<Message>, IoError> { Ok(todo.next().map(|m| pace.hand_over(m))) };
    let mut deliver = |p: Processed| -> Result<(), IoError> {
        busy.push(p.service);
        Ok(())
    };
    exec(&mut next, &mut deliver)?;
    Ok(busy)
}

/// Hands messages over at a steady pace: the `k`-th no earlier than `k * gap` after the first.
/// It waits as a paced source does in a run: row by row, each row `gap / rows` after the last.
struct Pace {
    gap: Option<(Duration, Duration)>,
    next: Option<Instant>,
}

impl Pace {
    fn new(gap: Option<Duration>, rows: usize) -> Self {
        Pace {
            gap: gap.map(|g| (g, g / rows.max(1) as u32)),
            next: None,
        }
    }

    /// Wait until `msg` is due (at once without a pace), then hand over a fresh copy of it, as
    /// the reader of a run has just written it: its rows are in the cache when the chain
    /// starts, as in a run, not cold from when the messages were cut (b=10 at 100,000 rows/s:
    /// the profile's error against the run went from +7/+9/+14% to +2/-0/+8% in three runs each).
    fn hand_over(&mut self, msg: Message) -> Message {
        self.wait();
        msg.clone()
    }

    /// Sleep until the next message is due.
    fn wait(&mut self) {
        let Some((gap, row)) = self.gap else { return };
        let due = *self.next.get_or_insert_with(Instant::now);
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep(row.min(due - now));
        }
        self.next = Some(due + gap);
    }
}

/// Mean and (sample) standard deviation.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_core::{Encoding, Payload, RowFormat};
    use streamprep_ops::prepare::PrepareConfig;

    fn job() -> RemoteJob {
        let schema = std::sync::Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("a", arrow_schema::DataType::Float64, true),
            arrow_schema::Field::new("b", arrow_schema::DataType::Float64, true),
        ]));
        RemoteJob {
            chain: vec!["fillna_zeros".into(), "normalizer".into()],
            prepare: PrepareConfig {
                format: RowFormat::Ndjson,
                compression: Default::default(),
                csv_sep: b',',
                schema,
            },
            encoding: Encoding::Ndjson,
            want_batch: false,
            key: None,
            max_keys: None,
            state: None,
        }
    }

    fn messages(n: usize, rows: usize) -> Vec<Message> {
        (0..n)
            .map(|i| {
                let mut bytes = Vec::new();
                let mut ends = Vec::new();
                for r in 0..rows {
                    bytes.extend_from_slice(format!("{{\"a\":{r},\"b\":{i}}}\n").as_bytes());
                    ends.push(bytes.len());
                }
                Message::new(
                    i as u64,
                    Payload::Raw {
                        format: RowFormat::Ndjson,
                        bytes,
                        ends,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn inline_times_every_message_and_stage_after_the_warmup() {
        let s = service_times(Method::Inline, &job(), None, messages(7, 10), 2, None).unwrap();
        assert_eq!(s.len(), 5);
        for x in &s {
            assert_eq!(x.stages.len(), 4, "prepare, two steps, result");
            let staged: Duration = x.stages.iter().sum();
            assert!(x.busy > Duration::ZERO && x.busy <= x.service, "{x:?}");
            assert!(staged <= x.service, "{staged:?} > {:?}", x.service);
            assert!(x.stages.iter().all(|d| *d > Duration::ZERO));
            assert_eq!(x.dead_rows, 0);
        }
    }

    #[test]
    fn pool_runs_one_message_at_a_time_and_times_each() {
        let s = service_times(
            Method::Pool { workers: 2 },
            &job(),
            None,
            messages(9, 5),
            1,
            None,
        )
        .unwrap();
        assert_eq!(s.len(), 8);
        assert!(s
            .iter()
            .all(|x| x.busy > Duration::ZERO && x.busy <= x.service && x.stages.is_empty()));
    }

    #[test]
    fn at_a_pace_the_pool_is_measured_one_at_a_time_and_open_loop() {
        // 6 messages 5 ms apart, measured twice (lock step for the service time, open loop for
        // the busy time): at least 2 x 5 gaps of 5 ms
        let started = Instant::now();
        let gap = Some(Duration::from_millis(5));
        let s = service_times(
            Method::Pool { workers: 2 },
            &job(),
            None,
            messages(6, 5),
            1,
            gap,
        )
        .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(s.len(), 5);
        assert!(s
            .iter()
            .all(|x| x.busy > Duration::ZERO && x.service > Duration::ZERO));
        // inline at a pace: one pass, 5 gaps
        let started = Instant::now();
        let s = service_times(Method::Inline, &job(), None, messages(6, 5), 1, gap).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(25));
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn refused_rows_are_counted() {
        let mut m = messages(1, 3);
        if let Payload::Raw { bytes, .. } = &mut m[0].payload {
            bytes[1] = b'x'; // the first row is no longer JSON
        }
        let s = service_times(Method::Inline, &job(), None, m, 0, None).unwrap();
        assert_eq!(s[0].dead_rows, 1);
    }

    #[test]
    fn mean_and_sample_sd() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((sd - 1.290_994_448_735_805_6).abs() < 1e-12);
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
    }
}
