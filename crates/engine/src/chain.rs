//! A chain: `prepare`, the user's steps in order, `result`. One instance per worker.

use std::time::{Duration, Instant};

use streamprep_core::{Batch, DeadLetter, Encoding, Message, Output, Step, StepError};
use streamprep_ops::prepare::{Prepare, PrepareConfig};
use streamprep_ops::registry::{build_chain, ChainError};
use streamprep_ops::result::ResultStep;

/// What one message became.
#[derive(Debug)]
pub struct Processed {
    /// Sequence number of the message.
    pub seq: u64,
    /// Rows the buffer put in the message.
    pub rows_in: usize,
    /// The output, unless the whole message was refused.
    pub output: Option<Output>,
    /// Refused rows or the refused message, with reasons.
    pub dead: Vec<DeadLetter>,
    /// The source's acknowledgements, owed once this has reached the sinks.
    pub acks: Vec<streamprep_core::AckToken>,
    /// Rows shed by `drop_oldest` before the chain ran.
    pub dropped: usize,
    /// How long the whole chain took on this message (zero when it did not run).
    pub service: Duration,
    /// How long each stage took (`prepare`, the steps, `result`), when the chain times them.
    pub stages: Vec<Duration>,
    /// Which worker ran it (the pool's thread, or a queue worker as the coordinator numbers
    /// them).
    pub worker: usize,
    /// When the message's first row arrived and when the buffer closed it.
    pub arrived: Option<(Instant, Instant)>,
}

impl Processed {
    /// A message that produced no output: all of it is in `dead` (or it had no rows).
    pub fn refused(seq: u64, rows_in: usize, dead: Vec<DeadLetter>) -> Self {
        Processed {
            seq,
            rows_in,
            output: None,
            dead,
            acks: Vec::new(),
            dropped: 0,
            service: Duration::ZERO,
            stages: Vec::new(),
            worker: 0,
            arrived: None,
        }
    }
}

/// A runnable chain.
pub struct Chain {
    prepare: Prepare,
    steps: Vec<Box<dyn Step>>,
    result: ResultStep,
    /// Time spent in each stage (`prepare`, the steps, `result`), once [`Chain::time_stages`]
    /// turned it on (the pipeline, the queue worker and `profile` do).
    timings: Option<Vec<Duration>>,
}

impl Chain {
    /// Build a chain instance from step names (without `prepare`/`result`, or with them at the ends).
    pub fn new<S: AsRef<str>>(
        names: &[S],
        prepare: PrepareConfig,
        encoding: Encoding,
    ) -> Result<Self, ChainError> {
        Ok(Chain {
            prepare: Prepare::new(prepare),
            steps: build_chain(names)?,
            result: ResultStep::new(encoding),
            timings: None,
        })
    }

    /// The stages' names in order: `prepare`, the steps, `result`.
    pub fn stage_names(&self) -> Vec<String> {
        std::iter::once("prepare".to_string())
            .chain(self.steps.iter().map(|s| s.name().to_string()))
            .chain(std::iter::once("result".to_string()))
            .collect()
    }

    /// Time each stage from now on; a message costs two clock reads a stage more.
    pub fn time_stages(&mut self) {
        self.timings = Some(vec![Duration::ZERO; self.steps.len() + 2]);
    }

    /// The time each stage took since the last call (in [`Chain::stage_names`] order), and
    /// reset; empty unless [`Chain::time_stages`] was called.
    pub fn take_timings(&mut self) -> Vec<Duration> {
        match &mut self.timings {
            Some(t) => std::mem::replace(t, vec![Duration::ZERO; t.len()]),
            None => Vec::new(),
        }
    }

    fn lap(&mut self, stage: usize, since: &mut Option<Instant>) {
        if let (Some(t), Some(at)) = (&mut self.timings, since.as_mut()) {
            let now = Instant::now();
            t[stage] += now - *at;
            *at = now;
        }
    }

    /// Run every step on one message. Never fails: a refused message becomes dead letters.
    pub fn run(&mut self, mut msg: Message) -> Processed {
        let rows_in = msg.payload.rows();
        let seq = msg.seq;
        let mut dead = std::mem::take(&mut msg.rejected);
        if rows_in == 0 {
            // only refusals, acknowledgements (a publish of `[]`) or rows shed by
            // drop_oldest: nothing to run
            return Processed::refused(seq, rows_in, dead);
        }
        let refused = |e: StepError, data: String, rows: usize| DeadLetter {
            seq,
            step: e.step().to_string(),
            reason: e.to_string(),
            data,
            rows,
        };
        let mut clock = self.timings.is_some().then(Instant::now);
        let prepared = match self.prepare.apply(&msg) {
            Ok(p) => p,
            Err(e) => {
                let data = msg
                    .payload
                    .raw_rows()
                    .map(String::from_utf8_lossy)
                    .collect::<Vec<_>>()
                    .join("\n");
                dead.push(refused(e, data, rows_in));
                return Processed::refused(seq, rows_in, dead);
            }
        };
        self.lap(0, &mut clock);
        dead.extend(prepared.dead);
        let mut batch = prepared.batch;
        for i in 0..self.steps.len() {
            let applied = self.steps[i].apply(batch.clone());
            self.lap(i + 1, &mut clock);
            match applied {
                Ok(b) => batch = b,
                Err(e) => {
                    let rows = batch.num_rows();
                    dead.push(refused(e, ndjson(&batch), rows));
                    return Processed::refused(seq, rows_in, dead);
                }
            }
        }
        let encoded = self.result.encode(&batch);
        self.lap(self.steps.len() + 1, &mut clock);
        match encoded {
            Ok(encoded) => {
                let mut p = Processed::refused(seq, rows_in, dead);
                p.output = Some(Output {
                    seq,
                    rows: batch.num_rows(),
                    batch,
                    encoded,
                });
                p
            }
            Err(e) => {
                let rows = batch.num_rows();
                dead.push(refused(e, String::new(), rows));
                Processed::refused(seq, rows_in, dead)
            }
        }
    }
}

/// A batch as NDJSON text, for a dead letter.
fn ndjson(batch: &Batch) -> String {
    ResultStep::new(Encoding::Ndjson)
        .encode(batch)
        .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
        .unwrap_or_default()
}
