//! Where chains run: `inline` (in the thread that reads the source, the paper's baseline) or
//! `pool` (worker threads, each running whole chains, fed through a bounded queue, output put
//! back in input order by sequence number).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::bounded;
use streamprep_core::{DeadLetter, IoError, Message};

use crate::chain::{Chain, Processed};

/// Where the chains run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// In the reading thread.
    Inline,
    /// On `workers` threads of this host.
    Pool {
        /// Number of worker threads (at least 1).
        workers: usize,
    },
    /// As tasks through a broker to worker processes (`PipelineConfig::remote` says how).
    Queue {
        /// Messages sent and not yet delivered, at most (backpressure).
        in_flight: usize,
    },
}

/// What a remote worker needs to rebuild the chain: everything but the data.
#[derive(Debug, Clone)]
pub struct RemoteJob {
    /// Step names.
    pub chain: Vec<String>,
    /// How `prepare` decodes.
    pub prepare: streamprep_ops::prepare::PrepareConfig,
    /// How `result` encodes.
    pub encoding: streamprep_core::Encoding,
    /// Whether the output batch must come back, or only the encoded rows (and the schema).
    pub want_batch: bool,
    /// A keyed run's router (messages of one key each): each key's state travels with its
    /// tasks, one task of a key at a time.
    pub key: Option<crate::keyed::KeyRouter>,
    /// The keys whose state the coordinator keeps, at most (the least recently seen go).
    pub max_keys: Option<usize>,
    /// The steps' state saved by the last run of this chain (taken back at the start, left
    /// there at the end).
    pub state: Option<crate::state::StateSlot>,
}

/// An executor outside this process (the queue method). It takes messages from `next` as long
/// as fewer than `in_flight` are outstanding, and hands each result to `deliver` once, in
/// input order.
pub trait Remote: Send + Sync + std::fmt::Debug {
    /// Run the whole input through the remote workers. `next` may be called on another
    /// thread; giving up with an error, the executor sets `stop` first, so a source waiting
    /// for rows (a live one) returns and that thread ends.
    fn execute(
        &self,
        job: &RemoteJob,
        in_flight: usize,
        next: &mut (dyn FnMut() -> Result<Option<Message>, IoError> + Send),
        deliver: &mut (dyn FnMut(Processed) -> Result<(), IoError> + Send),
        stop: &AtomicBool,
    ) -> Result<(), IoError>;

    /// The broker connection's state, for status lines.
    fn health(&self) -> Option<std::sync::Arc<streamprep_core::LinkHealth>> {
        None
    }
}

/// Run a chain on a message, turning a panic (a bug in a step) into a dead letter instead of
/// a lost message and a hung pipeline.
pub fn run_guarded(chain: &mut Chain, mut msg: Message) -> Processed {
    let seq = msg.seq;
    // what the source is owed and what was shed travel past the chain, even a panicking one
    let acks = std::mem::take(&mut msg.acks);
    let dropped = msg.dropped;
    let rows_in = msg.payload.rows();
    let arrived = msg.arrived;
    // what the source refused is delivered whatever the chain does
    let rejected = std::mem::take(&mut msg.rejected);
    let started = Instant::now();
    let mut p = match catch_unwind(AssertUnwindSafe(|| chain.run(&mut msg))) {
        Ok(p) => p,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            // The whole message, with its rows as they arrived (the dead letters the chain had
            // made of some of them went down with it).
            let dead = vec![DeadLetter {
                seq,
                step: "chain".into(),
                reason: format!("internal error (a streamprep bug, please report it): {what}"),
                data: crate::chain::message_data(&msg.payload),
                rows: rows_in,
            }];
            // a panicking step may have left its scratch state half-written
            chain.reset();
            Processed::refused(seq, rows_in, dead)
        }
    };
    if !rejected.is_empty() {
        p.rows_in += rejected.iter().map(|d| d.rows).sum::<usize>();
        p.dead.splice(0..0, rejected);
    }
    p.service = started.elapsed();
    p.stages = chain.take_timings();
    p.keys = chain.key_counts();
    p.acks = acks;
    p.dropped = dropped;
    p.arrived = arrived;
    p
}

/// Run `inline`: read, process, deliver, one message at a time. Gives the chain back (its
/// steps' state outlives the run).
pub(crate) fn inline(
    mut chain: Chain,
    mut next: impl FnMut() -> Result<Option<Message>, IoError>,
    mut deliver: impl FnMut(Processed) -> Result<(), IoError>,
) -> Result<Vec<Chain>, IoError> {
    while let Some(msg) = next()? {
        deliver(run_guarded(&mut chain, msg))?;
    }
    Ok(vec![chain])
}

/// Run on a pool of worker threads. At most `window` messages are between the reader and the
/// ordered sink at any time: when the window is full, reading waits (backpressure), so memory
/// stays bounded whatever the input size or a slow worker.
pub(crate) fn pool(
    chains: Vec<Chain>,
    window: usize,
    mut next: impl FnMut() -> Result<Option<Message>, IoError> + Send,
    deliver: impl FnMut(Processed) -> Result<(), IoError> + Send,
) -> Result<Vec<Chain>, IoError> {
    run_pool(
        chains,
        window,
        false,
        move || next().map(|m| m.map(|m| (0, m))),
        deliver,
    )
}

/// The pool with each message pinned to a worker (`next` gives the worker with it): a
/// worker's messages run in the order they come, so a key routed to one worker keeps its
/// order and its state. Delivery is in `seq` order, as the pool's.
pub(crate) fn pool_routed(
    chains: Vec<Chain>,
    window: usize,
    next: impl FnMut() -> Result<Option<(usize, Message)>, IoError> + Send,
    deliver: impl FnMut(Processed) -> Result<(), IoError> + Send,
) -> Result<Vec<Chain>, IoError> {
    run_pool(chains, window, true, next, deliver)
}

/// The pool: `pinned`, each worker reads its own queue and a message goes to the worker `next`
/// names; otherwise every worker takes the next message from one queue.
fn run_pool(
    chains: Vec<Chain>,
    window: usize,
    pinned: bool,
    mut next: impl FnMut() -> Result<Option<(usize, Message)>, IoError> + Send,
    deliver: impl FnMut(Processed) -> Result<(), IoError> + Send,
) -> Result<Vec<Chain>, IoError> {
    let workers = chains.len().max(1);
    let window = window.max(workers);
    let (res_tx, res_rx) = bounded::<Processed>(window);
    let (credit_tx, credit_rx) = bounded::<()>(window);
    let failed = AtomicBool::new(false);
    let queues: Vec<_> = if pinned {
        (0..workers).map(|_| bounded::<Message>(window)).collect()
    } else {
        vec![bounded::<Message>(workers)]
    };
    std::thread::scope(|s| {
        let mut threads = Vec::with_capacity(workers);
        for (worker, mut chain) in chains.into_iter().enumerate() {
            let task_rx = queues[worker % queues.len()].1.clone();
            let res_tx = res_tx.clone();
            threads.push(s.spawn(move || {
                for msg in task_rx {
                    let mut p = run_guarded(&mut chain, msg);
                    p.worker = worker;
                    if res_tx.send(p).is_err() {
                        break;
                    }
                }
                chain
            }));
        }
        drop(res_tx);
        let senders: Vec<_> = queues.into_iter().map(|(tx, _)| tx).collect();
        let failed = &failed;
        let collector = s.spawn(move || ordered(res_rx, credit_rx, failed, deliver));
        let mut read_result = Ok(());
        while !failed.load(Ordering::SeqCst) {
            match next() {
                Ok(Some((w, msg))) => {
                    let to = &senders[w % senders.len()];
                    if credit_tx.send(()).is_err() || to.send(msg).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    read_result = Err(e);
                    break;
                }
            }
        }
        drop(senders);
        let sink_result = collector.join().unwrap_or_else(|_| {
            Err(IoError::Protocol(
                "internal error: the ordered sink thread panicked".into(),
            ))
        });
        // the chains come back in worker order (a worker's steps hold its keys' state)
        let chains: Vec<Chain> = threads.into_iter().filter_map(|t| t.join().ok()).collect();
        read_result.and(sink_result).map(|()| chains)
    })
}

/// The ordered sink: results as the workers finish them, delivered in `seq` order; a credit
/// is given back for each one delivered.
fn ordered(
    res_rx: crossbeam_channel::Receiver<Processed>,
    credit_rx: crossbeam_channel::Receiver<()>,
    failed: &AtomicBool,
    mut deliver: impl FnMut(Processed) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let mut pending: BTreeMap<u64, Processed> = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut result = Ok(());
    for p in res_rx {
        pending.insert(p.seq, p);
        while let Some(p) = pending.remove(&next_seq) {
            next_seq += 1;
            if result.is_ok() {
                if let Err(e) = deliver(p) {
                    failed.store(true, Ordering::SeqCst);
                    result = Err(e);
                }
            }
            let _ = credit_rx.try_recv();
        }
    }
    if result.is_ok() && !pending.is_empty() {
        result = Err(IoError::Protocol(format!(
            "internal error: {} message(s) after #{next_seq} never completed",
            pending.len()
        )));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_core::{Batch, Encoding, Payload, RowFormat, Step, StepError};
    use streamprep_ops::prepare::{Compression, PrepareConfig};

    /// A step with a bug: it panics on a message of more than `after` rows.
    struct Buggy {
        after: usize,
    }

    impl Step for Buggy {
        fn name(&self) -> &'static str {
            "buggy"
        }

        fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
            let rows = batch.num_rows();
            if rows > self.after {
                let v: Vec<usize> = Vec::new();
                let _ = v[rows - self.after - 1]; // an index out of bounds, as a real bug would
            }
            Ok(batch)
        }
    }

    fn message(seq: u64, rows: &[&[u8]]) -> Message {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for r in rows {
            bytes.extend_from_slice(r);
            bytes.push(b'\n');
            ends.push(bytes.len());
        }
        Message::new(
            seq,
            Payload::Raw {
                format: RowFormat::Ndjson,
                bytes,
                ends,
            },
        )
    }

    #[test]
    fn a_panicking_step_dead_letters_the_message_with_its_rows_and_the_chain_goes_on() {
        let schema =
            std::sync::Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
                "x",
                arrow_schema::DataType::Float64,
                true,
            )]));
        let prepare = PrepareConfig {
            format: RowFormat::Ndjson,
            compression: Compression::None,
            csv_sep: b',',
            schema,
        };
        let mut chain = Chain::new(&["abs"], prepare, Encoding::Ndjson).expect("chain");
        // rows that are not UTF-8, a row prepare refuses, and a source refusal, at several
        // positions: all of it comes back, exactly as it arrived
        for rows in [
            vec![
                &b"{\"x\":1}"[..],
                b"{\"x\":2}",
                b"{\"x\":\"\xff\"}",
                b"{\"x\":3}",
                b"bad",
            ],
            vec![&b"bad"[..], b"{\"x\":1}", b"{\"x\":2}", b"{\"x\":3}"],
        ] {
            chain.replace_steps_for_test(vec![Box::new(Buggy { after: 2 })]);
            let mut msg = message(4, &rows);
            msg.rejected.push(DeadLetter {
                seq: 4,
                step: "source".into(),
                reason: "frame too long".into(),
                data: vec![0xfe, 0xff],
                rows: 1,
            });
            msg.acks = vec![11, 12];
            let p = run_guarded(&mut chain, msg);
            assert!(p.output.is_none());
            assert_eq!(p.acks, [11, 12], "the source's acks travel past a panic");
            assert_eq!(p.dead.len(), 2, "{:?}", p.dead);
            assert_eq!(p.dead[0].reason, "frame too long");
            let d = &p.dead[1];
            assert!(d.reason.contains("internal error"), "{}", d.reason);
            assert_eq!(d.rows, rows.len());
            assert_eq!(
                d.data,
                rows.join(&b'\n'),
                "the message's rows, byte for byte"
            );
            // rows in = rows in dead letters
            assert_eq!(p.rows_in, rows.len() + 1);
            // the chain was built afresh (abs), and works
            let ok = run_guarded(&mut chain, message(5, &[b"{\"x\":-1}"]));
            assert_eq!(ok.output.expect("output").encoded, b"{\"x\":1.0}\n");
        }
    }
}
