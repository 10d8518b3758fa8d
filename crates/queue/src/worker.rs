//! `streamprep worker`: threads that take tasks from the workers' consumer group, run the
//! whole chain (rebuilt from the task's spec through the registry, cached), write the result
//! to the task's reply stream, and only then acknowledge and delete the task. Tasks left
//! pending by a worker that stopped answering for `claim_after` are claimed by another one; a
//! task delivered `max_attempts` times without completing becomes a dead letter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;
use streamprep_core::{DeadLetter, IoError, Message, Payload};
use streamprep_engine::chain::{Chain, Processed};
use streamprep_engine::run_guarded;
use streamprep_engine::state::{key_state_from_bytes, key_state_to_bytes};

use crate::coordinator::AUTO_LZ4_RTT;
use crate::redis_io::{
    announce_distance, claimed_entries, connect, deliveries, ensure_group, is_lost, stream_entries,
    xadd_args, Conn, Entry, DISTANCES, DISTANCE_EVERY, GROUP, TASKS,
};
use crate::wire::{parse_job, parse_task, result, Carry, Fields};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The Redis URL.
    pub url: String,
    /// Threads, each with its own connection and chains.
    pub concurrency: usize,
    /// A task pending this long on a silent worker is taken over.
    pub claim_after: Duration,
    /// Deliveries after which a task is given up as a dead letter.
    pub max_attempts: u64,
    /// Tasks a thread takes in one read; `None`: as many as cover a round trip to Redis
    /// (measured), up to [`MAX_PREFETCH`].
    pub prefetch: Option<usize>,
    /// Set to stop (Ctrl-C).
    pub stop: Arc<AtomicBool>,
}

/// What the worker did.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Tasks completed.
    pub tasks: AtomicU64,
    /// Rows through the chain.
    pub rows: AtomicU64,
    /// Tasks taken over from a silent worker.
    pub claimed: AtomicU64,
    /// Tasks given up after `max_attempts`.
    pub poisoned: AtomicU64,
}

/// Run until `stop`; `ready` is called once Redis has answered (an unreachable Redis is an
/// error naming the URL, before any thread starts).
pub fn run(cfg: &WorkerConfig, stats: &WorkerStats, ready: impl FnOnce()) -> Result<(), IoError> {
    ensure_group(&mut connect(&cfg.url)?)?;
    ready();
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.concurrency.max(1))
            .map(|i| {
                let name = format!("{host}-{}-{i}", std::process::id());
                s.spawn(move || {
                    let r = thread(cfg, stats, &name);
                    if r.is_err() {
                        // one failed thread stops the worker (its tasks go to other workers)
                        cfg.stop.store(true, Ordering::SeqCst);
                    }
                    r
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(IoError::Protocol("a worker thread panicked".into())))
        })
    })
}

/// A result written but not yet sent: it goes to Redis with the thread's next read, in
/// the same round trip.
struct Answer {
    reply: String,
    fields: Fields,
    id: String,
}

/// The most tasks a thread takes in one read.
pub const MAX_PREFETCH: usize = 16;

/// How many tasks a thread takes at a time: with `auto`, enough that the chain's time on
/// them covers a round trip to Redis (one at a time on a fast link, up to
/// [`MAX_PREFETCH`] across a slow one), from the measured round trip and the chain's mean
/// time a task.
#[derive(Debug)]
struct Prefetch {
    fixed: Option<usize>,
    rtt: Duration,
    /// Mean time a task takes here (exponentially weighted), seconds.
    task_s: f64,
}

impl Prefetch {
    fn count(&self) -> usize {
        if let Some(n) = self.fixed {
            return n;
        }
        if self.task_s <= 0.0 {
            return 1;
        }
        ((self.rtt.as_secs_f64() / self.task_s).ceil() as usize).clamp(1, MAX_PREFETCH)
    }

    fn took(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        self.task_s = if self.task_s <= 0.0 {
            s
        } else {
            0.8 * self.task_s + 0.2 * s
        };
    }
}

/// The round trip to Redis on `c`: the fastest of three PINGs.
fn round_trip(c: &mut Conn) -> Result<Duration, IoError> {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        c.cmd("PING", &[b"PING"])?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

/// Send `answers` (each: XADD of the result, XACK and XDEL of the task) and then `read`, in
/// one round trip; the read's reply. Redis runs them in order: should an XADD fail and its
/// XACK still run, the task is gone without a result, and the coordinator sends it again (it
/// resends a task that is no longer in the stream).
fn exchange(
    c: &mut Conn,
    answers: &mut Vec<Answer>,
    read: Option<&[&[u8]]>,
) -> Result<Option<Value>, IoError> {
    if answers.is_empty() && read.is_none() {
        return Ok(None);
    }
    let adds: Vec<Vec<&[u8]>> = answers
        .iter()
        .map(|a| xadd_args(&a.reply, &a.fields))
        .collect();
    let mut cmds: Vec<&[&[u8]]> = Vec::with_capacity(3 * answers.len() + 1);
    let acks: Vec<_> = answers.iter().map(|a| ack_and_delete(&a.id)).collect();
    for (add, (ack, del)) in adds.iter().zip(&acks) {
        cmds.push(add);
        cmds.push(ack);
        cmds.push(del);
    }
    if let Some(r) = read {
        cmds.push(r);
    }
    let mut replies = c.pipe(if read.is_some() { "XREADGROUP" } else { "XADD" }, &cmds)?;
    answers.clear();
    Ok(read.and_then(|_| replies.pop()))
}

fn thread(cfg: &WorkerConfig, stats: &WorkerStats, consumer: &str) -> Result<(), IoError> {
    let mut chains: HashMap<Vec<u8>, (Chain, bool)> = HashMap::new();
    let mut con: Option<Conn> = None;
    let mut failures = 0u32;
    let mut last_claim = Instant::now();
    // when this thread last said how far it is from Redis
    let mut said = Instant::now();
    let mut answers: Vec<Answer> = Vec::new();
    let mut prefetch = Prefetch {
        fixed: cfg.prefetch,
        rtt: Duration::ZERO,
        task_s: 0.0,
    };
    loop {
        let stopping = cfg.stop.load(Ordering::Relaxed);
        if stopping && (answers.is_empty() || con.is_none()) {
            break;
        }
        let c = match con.as_mut() {
            Some(c) => c,
            None => match connect(&cfg.url)
                .and_then(|mut c| ensure_group(&mut c).map(|_| c))
                .and_then(|mut c| round_trip(&mut c).map(|rtt| (c, rtt)))
            {
                Ok((mut c, rtt)) => {
                    // a coordinator leaving compression to the distance reads it before its
                    // first task (a hint: a Redis that refuses it costs nothing else)
                    let _ = announce_distance(&mut c, consumer, rtt);
                    said = Instant::now();
                    if failures > 0 {
                        tracing::info!("worker: reconnected to {}", cfg.url);
                    }
                    failures = 0;
                    prefetch.rtt = rtt;
                    con.insert(c)
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!("worker: {e}; retrying with backoff");
                    }
                    failures += 1;
                    std::thread::sleep(Duration::from_millis(
                        (100u64 << failures.min(5)).min(2000),
                    ));
                    continue;
                }
            },
        };
        let step = (|| -> Result<(), IoError> {
            if stopping {
                // the results of tasks already run go out before the thread ends
                exchange(c, &mut answers, None)?;
                return Ok(());
            }
            if said.elapsed() >= DISTANCE_EVERY {
                said = Instant::now();
                if let Err(e) = announce_distance(c, consumer, prefetch.rtt) {
                    if is_lost(&e) {
                        return Err(e);
                    }
                }
            }
            // take over tasks a silent worker left pending, now and then
            let mut entries: Vec<(Entry, bool)> = Vec::new();
            if last_claim.elapsed() >= cfg.claim_after / 4 {
                last_claim = Instant::now();
                let idle = (cfg.claim_after.as_millis() as u64).to_string();
                let args: [&[u8]; 8] = [
                    b"XAUTOCLAIM",
                    TASKS.as_bytes(),
                    GROUP.as_bytes(),
                    consumer.as_bytes(),
                    idle.as_bytes(),
                    b"0-0",
                    b"COUNT",
                    b"1",
                ];
                if let Some(v) = exchange(c, &mut answers, Some(&args))? {
                    entries.extend(claimed_entries(v).into_iter().map(|e| (e, true)));
                }
            }
            if entries.is_empty() {
                let count = prefetch.count().to_string();
                let args: [&[u8]; 11] = [
                    b"XREADGROUP",
                    b"GROUP",
                    GROUP.as_bytes(),
                    consumer.as_bytes(),
                    b"COUNT",
                    count.as_bytes(),
                    b"BLOCK",
                    b"500",
                    b"STREAMS",
                    TASKS.as_bytes(),
                    b">",
                ];
                if let Some(v) = exchange(c, &mut answers, Some(&args))? {
                    entries.extend(stream_entries(v).into_iter().map(|e| (e, false)));
                }
            }
            for ((id, fields), claimed) in entries {
                let started = Instant::now();
                if claimed {
                    stats.claimed.fetch_add(1, Ordering::Relaxed);
                }
                let attempts = if claimed { deliveries(c, &id)? } else { 1 };
                let mut task = match parse_task(fields) {
                    Ok(t) => t,
                    Err(e) => {
                        // not ours to answer: no reply stream to write to
                        tracing::warn!("worker: dropping task {id}: {e}");
                        finish(c, &id)?;
                        continue;
                    }
                };
                // results go compressed when the task came so, or when the coordinator left it
                // to the distance and this worker is far from Redis
                let lz4 = task.lz4 || (task.auto && prefetch.rtt >= AUTO_LZ4_RTT);
                // and a compressed result carries the output batch alone, as Arrow IPC (half
                // the bytes of the NDJSON rows after LZ4, and no rows to encode here): the
                // coordinator encodes them
                let carry_arrow = lz4;
                let key_state = task.state.take();
                let mut state_out = None;
                let mut want_batch = true;
                let processed = if attempts > cfg.max_attempts {
                    stats.poisoned.fetch_add(1, Ordering::Relaxed);
                    given_up(
                        task.msg,
                        format!(
                            "given up after {} deliveries: each worker that took this message stopped before finishing it",
                            attempts - 1
                        ),
                    )
                } else {
                    match chain_for(&mut chains, &task.spec) {
                        Ok((chain, batch)) => {
                            want_batch = *batch;
                            chain.defer_encoding(carry_arrow);
                            stats
                                .rows
                                .fetch_add(task.msg.payload.rows() as u64, Ordering::Relaxed);
                            match &key_state {
                                // a keyed task: the steps start from its key's state, and the
                                // result takes the new state back
                                Some(bytes) => match key_state_from_bytes(bytes)
                                    .and_then(|s| chain.take_key_state(&s))
                                {
                                    Ok(()) => {
                                        let p = run_guarded(chain, task.msg);
                                        state_out = Some(key_state_to_bytes(&chain.save_state()));
                                        p
                                    }
                                    Err(e) => given_up(
                                        task.msg,
                                        format!("the key's state cannot be taken: {e}"),
                                    ),
                                },
                                None => run_guarded(chain, task.msg),
                            }
                        }
                        // a chain this worker cannot build (e.g. a step it does not know):
                        // the message's rows become dead letters, the worker goes on
                        Err(e) => given_up(
                            task.msg,
                            format!(
                                "worker {consumer} cannot build the chain: {e} (is it the same streamprep version?)"
                            ),
                        ),
                    }
                };
                let carry = match carry_arrow {
                    true => Carry::Arrow,
                    false => Carry::Encoded { want_batch },
                };
                let mut fields = result(processed, consumer, lz4, carry)?;
                if let Some(s) = state_out {
                    fields.push(("state", s));
                }
                // how far this worker is from Redis (the coordinator's task_compression = auto)
                fields.push((
                    "rtt_us",
                    (prefetch.rtt.as_micros() as u64).to_string().into_bytes(),
                ));
                answers.push(Answer {
                    reply: std::mem::take(&mut task.reply),
                    fields,
                    id,
                });
                prefetch.took(started.elapsed());
                stats.tasks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })();
        if let Err(e) = step {
            if c.is_open() && !is_lost(&e) {
                return Err(e);
            }
            tracing::warn!("worker: {e}; reconnecting");
            // results not sent are lost with the connection: their tasks stay pending and
            // are taken over (here or elsewhere) after claim_after
            answers.clear();
            con = None;
        }
    }
    if let Some(c) = con.as_mut() {
        // gone: no longer counted in how far the workers are
        let _ = c.cmd(
            "HDEL",
            &[b"HDEL", DISTANCES.as_bytes(), consumer.as_bytes()],
        );
    }
    Ok(())
}

/// The chain of a job, built through the registry on first use and cached under its spec, and
/// whether the job wants the output batch back.
fn chain_for<'a>(
    chains: &'a mut HashMap<Vec<u8>, (Chain, bool)>,
    spec: &[u8],
) -> Result<&'a mut (Chain, bool), IoError> {
    if !chains.contains_key(spec) {
        let job = parse_job(spec)?;
        let mut chain = Chain::new(&job.chain, job.prepare, job.encoding)
            .map_err(|e| IoError::Protocol(e.to_string()))?;
        chain.time_stages(); // the coordinator's metrics show each step's time
        chains.insert(spec.to_vec(), (chain, job.want_batch));
    }
    Ok(chains.get_mut(spec).expect("inserted above"))
}

/// A message no worker will process: all its rows to dead letters with `reason`.
fn given_up(msg: Message, reason: String) -> Processed {
    let rows = msg.payload.rows();
    let data = match &msg.payload {
        Payload::Raw { .. } => msg.payload.raw_data(),
        Payload::Columnar(b) => streamprep_engine::chain::ndjson(b),
    };
    let dead = DeadLetter {
        seq: msg.seq,
        step: "queue".into(),
        reason,
        data,
        rows,
    };
    Processed::refused(msg.seq, rows, vec![dead])
}

/// Acknowledge a task and delete it (Redis memory stays bounded).
fn finish(c: &mut Conn, id: &str) -> Result<(), IoError> {
    let (ack, del) = ack_and_delete(id);
    c.pipe("XACK", &[&ack, &del])?;
    Ok(())
}

/// `XACK` and `XDEL` of a task.
fn ack_and_delete(id: &str) -> ([&[u8]; 4], [&[u8]; 3]) {
    (
        [b"XACK", TASKS.as_bytes(), GROUP.as_bytes(), id.as_bytes()],
        [b"XDEL", TASKS.as_bytes(), id.as_bytes()],
    )
}
