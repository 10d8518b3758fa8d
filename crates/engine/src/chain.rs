//! A chain: `prepare`, the user's steps in order, `result`. One instance per worker.

use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use streamprep_core::{Batch, DeadLetter, Encoding, Message, Output, Step, StepError};
use streamprep_ops::prepare::{Prepare, PrepareConfig};
use streamprep_ops::registry::{build_chain, ChainError};
use streamprep_ops::result::ResultStep;

/// What one message became.
#[derive(Debug)]
pub struct Processed {
    /// Sequence number of the message.
    pub seq: u64,
    /// Rows the message held: the rows `prepare` found in it (a JSON array line holds several,
    /// a quoted CSV field may span lines), plus what the source refused. So rows in = rows out
    /// + rows in dead letters for chains that keep rows.
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
    /// Columns this message had beyond the stream's schema that the sink cannot take (a CSV
    /// header already written, a Parquet file's schema): left out of the output, reported.
    pub dropped_columns: Vec<String>,
    /// The chain's keys after this message (its first step that keeps state per key).
    pub keys: Option<streamprep_core::KeyCounts>,
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
            dropped_columns: Vec::new(),
            keys: None,
        }
    }
}

/// One key's state as a chain holding only that key saves it: per step, its bytes.
pub type KeyState = Vec<Option<Vec<u8>>>;

/// A runnable chain.
pub struct Chain {
    /// What the chain was built from, to build it afresh after a panic.
    spec: (Vec<String>, PrepareConfig, Encoding),
    prepare: Prepare,
    steps: Vec<Box<dyn Step>>,
    result: ResultStep,
    /// For a sink that cannot add columns (CSV, Parquet): the output schema of the stream's
    /// own columns, which every output is projected onto.
    fixed_output: Option<SchemaRef>,
    /// Time spent in each stage (`prepare`, the steps, `result`), once [`Chain::time_stages`]
    /// turned it on (the pipeline, the queue worker and `profile` do).
    timings: Option<Vec<Duration>>,
    /// Leave the output batch unencoded (see [`Chain::defer_encoding`]).
    defer_encoding: bool,
}

impl Chain {
    /// Build a chain instance from step names (without `prepare`/`result`, or with them at the ends).
    pub fn new<S: AsRef<str>>(
        names: &[S],
        prepare: PrepareConfig,
        encoding: Encoding,
    ) -> Result<Self, ChainError> {
        Ok(Chain {
            spec: (
                names.iter().map(|n| n.as_ref().to_string()).collect(),
                prepare.clone(),
                encoding,
            ),
            fixed_output: fixed_output(names, &prepare, encoding),
            prepare: Prepare::new(prepare),
            steps: build_chain(names)?,
            result: ResultStep::new(encoding),
            timings: None,
            defer_encoding: false,
        })
    }

    /// Replace the steps (tests: a step with a bug).
    #[cfg(test)]
    pub(crate) fn replace_steps_for_test(&mut self, steps: Vec<Box<dyn Step>>) {
        self.steps = steps;
    }

    /// Build the steps afresh (after a panic left one of them half-way through a message).
    pub fn reset(&mut self) {
        let (names, prepare, encoding) = &self.spec;
        if let Ok(steps) = build_chain(names) {
            self.steps = steps;
        }
        self.prepare = Prepare::new(prepare.clone());
        self.result = ResultStep::new(*encoding);
    }

    /// Leave each output's batch unencoded from now on (`encoded` empty), for
    /// [`encode_output`] to encode elsewhere: a far queue worker sends the batch (as Arrow IPC,
    /// half the bytes of the NDJSON rows) and its coordinator encodes it.
    pub fn defer_encoding(&mut self, defer: bool) {
        self.defer_encoding = defer;
    }

    /// The stages' names in order: `prepare`, the steps, `result`.
    pub fn stage_names(&self) -> Vec<String> {
        std::iter::once("prepare".to_string())
            .chain(self.steps.iter().map(|s| s.name().to_string()))
            .chain(std::iter::once("result".to_string()))
            .collect()
    }

    /// Each step's state to carry over a stop (`None`: the step keeps none).
    pub fn save_state(&self) -> Vec<Option<Vec<u8>>> {
        self.steps.iter().map(|s| s.save_state()).collect()
    }

    /// Give each step the states saved of it (one a worker of the run that saved them); a
    /// step keeping state per key takes the keys `keep` accepts.
    pub fn load_state(
        &mut self,
        saved: &[Vec<Vec<u8>>],
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<(), String> {
        for (step, blobs) in self.steps.iter_mut().zip(saved) {
            for b in blobs {
                step.load_state(b, keep)
                    .map_err(|e| format!("{}: {e}", step.name()))?;
            }
        }
        Ok(())
    }

    /// Saved state cut into one piece a key: for each key, what `save_state` of a chain that
    /// held only that key gives.
    pub fn split_state(
        &self,
        saved: &[Vec<Vec<u8>>],
    ) -> Result<std::collections::HashMap<String, KeyState>, String> {
        let mut keys: std::collections::HashMap<String, KeyState> =
            std::collections::HashMap::new();
        for (i, (step, blobs)) in self.steps.iter().zip(saved).enumerate() {
            for b in blobs {
                for (k, piece) in step
                    .split_state(b)
                    .map_err(|e| format!("{}: {e}", step.name()))?
                {
                    keys.entry(k)
                        .or_insert_with(|| vec![None; self.steps.len()])[i] = Some(piece);
                }
            }
        }
        Ok(keys)
    }

    /// Start the steps afresh with one key's saved state (the queue method: a key's state
    /// travels with its task): `state` as [`Chain::save_state`] gave it.
    pub fn take_key_state(&mut self, state: &[Option<Vec<u8>>]) -> Result<(), String> {
        let (names, ..) = &self.spec;
        self.steps = build_chain(names).map_err(|e| e.to_string())?;
        let saved: Vec<Vec<Vec<u8>>> = state.iter().map(|s| s.iter().cloned().collect()).collect();
        self.load_state(&saved, &|_| true)
    }

    /// The keys of the chain's first step that keeps state per key.
    pub fn key_counts(&self) -> Option<streamprep_core::KeyCounts> {
        self.steps.iter().find_map(|s| s.key_counts())
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
    /// The message is only read (its rows stay with the caller, who dead-letters them
    /// should a step panic); the source's refusals are taken out of it.
    pub fn run(&mut self, msg: &mut Message) -> Processed {
        let mut rows_in = msg.payload.rows();
        let seq = msg.seq;
        let mut dead = std::mem::take(&mut msg.rejected);
        if msg.flush.is_some() {
            return self.finish(seq, dead);
        }
        if rows_in == 0 {
            // only refusals, acknowledgements (a publish of `[]`) or rows shed by
            // drop_oldest: nothing to run
            return Processed::refused(seq, rows_in, dead);
        }
        let refused = |e: StepError, data: Vec<u8>, rows: usize| DeadLetter {
            seq,
            step: e.step().to_string(),
            reason: e.to_string(),
            data,
            rows,
        };
        let mut clock = self.timings.is_some().then(Instant::now);
        let prepared = match self.prepare.apply(msg) {
            Ok(p) => p,
            Err(e) => {
                dead.push(refused(e, message_data(&msg.payload), rows_in));
                return Processed::refused(seq, rows_in, dead);
            }
        };
        self.lap(0, &mut clock);
        rows_in = prepared.batch.num_rows() + prepared.dead.iter().map(|d| d.rows).sum::<usize>();
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
        self.output(seq, rows_in, dead, batch, &mut clock)
    }

    /// The end of the stream: each step gives what it still holds, through the steps after
    /// it (which may hold it in turn, until their own end), then `result`.
    fn finish(&mut self, seq: u64, mut dead: Vec<DeadLetter>) -> Processed {
        let mut outs: Vec<Batch> = Vec::new();
        let n = self.steps.len();
        for i in 0..n {
            let held = match self.steps[i].finish() {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    dead.push(DeadLetter {
                        seq,
                        step: e.step().to_string(),
                        reason: e.to_string(),
                        data: Vec::new(),
                        rows: 0,
                    });
                    continue;
                }
            };
            let mut batch = Some(held);
            for j in i + 1..n {
                let Some(b) = batch.take() else { break };
                match self.steps[j].apply(b.clone()) {
                    Ok(b) => batch = Some(b),
                    Err(e) => dead.push(DeadLetter {
                        seq,
                        step: e.step().to_string(),
                        reason: e.to_string(),
                        data: ndjson(&b),
                        rows: b.num_rows(),
                    }),
                }
            }
            outs.extend(batch.filter(|b| b.num_rows() > 0));
        }
        let Some(first) = outs.first() else {
            return Processed::refused(seq, 0, dead);
        };
        let schema = first.schema();
        let batch = if outs.iter().all(|b| b.schema() == schema) {
            arrow_select::concat::concat_batches(&schema, &outs)
        } else {
            // steps that held rows of other columns: the last one's (the chain's end) win
            Ok(outs
                .pop()
                .unwrap_or_else(|| Batch::new_empty(schema.clone())))
        };
        match batch {
            Ok(b) => self.output(seq, 0, dead, b, &mut None),
            Err(e) => {
                dead.push(DeadLetter {
                    seq,
                    step: "chain".into(),
                    reason: e.to_string(),
                    data: Vec::new(),
                    rows: 0,
                });
                Processed::refused(seq, 0, dead)
            }
        }
    }

    /// Whether a step may hold rows until the end of the stream.
    pub fn holds_rows(&self) -> bool {
        self.steps.iter().any(|s| s.holds_rows())
    }

    /// A message's batch after the steps: projected for a fixed-schema sink, encoded (unless
    /// deferred).
    fn output(
        &mut self,
        seq: u64,
        rows_in: usize,
        mut dead: Vec<DeadLetter>,
        mut batch: Batch,
        clock: &mut Option<Instant>,
    ) -> Processed {
        let refused = |e: StepError, data: Vec<u8>, rows: usize| DeadLetter {
            seq,
            step: e.step().to_string(),
            reason: e.to_string(),
            data,
            rows,
        };
        let mut dropped_columns = Vec::new();
        if let Some(fixed) = &self.fixed_output {
            if batch.schema_ref() != fixed {
                match project(&batch, fixed) {
                    Ok((b, dropped)) => {
                        batch = b;
                        dropped_columns = dropped;
                    }
                    Err(e) => {
                        let rows = batch.num_rows();
                        dead.push(refused(StepError::arrow("result", e), ndjson(&batch), rows));
                        return Processed::refused(seq, rows_in, dead);
                    }
                }
            }
        }
        let mut p = Processed::refused(seq, rows_in, dead);
        p.dropped_columns = dropped_columns;
        p.output = Some(Output {
            seq,
            rows: batch.num_rows(),
            batch,
            encoded: Vec::new(),
        });
        if !self.defer_encoding {
            encode_output(&mut self.result, &mut p);
        }
        self.lap(self.steps.len() + 1, clock);
        p
    }
}

/// Encode a processed message's output batch for the sink (the chain's `result` stage): a
/// batch the encoding refuses becomes a dead letter of its rows, as a step's refusal does.
/// A queue coordinator runs it on the batches its far workers send (see
/// [`Chain::defer_encoding`]).
pub fn encode_output(result: &mut ResultStep, p: &mut Processed) {
    let Some(out) = p.output.as_mut() else {
        return;
    };
    match result.encode(&out.batch) {
        Ok(encoded) => out.encoded = encoded,
        Err(e) => {
            let rows = out.batch.num_rows();
            p.dead.push(DeadLetter {
                seq: p.seq,
                step: e.step().to_string(),
                reason: e.to_string(),
                data: ndjson(&out.batch),
                rows,
            });
            p.output = None;
            p.dropped_columns.clear();
        }
    }
}

/// The output schema a chain gives the stream's own columns, for a sink that cannot add
/// columns later; `None` for sinks that can (NDJSON), when a step refuses an empty batch, or
/// when an empty batch leaves a column's type unknown.
fn fixed_output<S: AsRef<str>>(
    names: &[S],
    prepare: &PrepareConfig,
    encoding: Encoding,
) -> Option<SchemaRef> {
    if encoding == Encoding::Ndjson {
        return None;
    }
    // one row of zeros (empty text), not an empty message: a step may pass an empty message
    // through untouched but turn the integer columns of any row into float64 (scikit-learn's
    // transformers), and an empty probe would then cast every later float back to an integer
    let mut batch = probe_row(&streamprep_ops::prepare::output_schema(&prepare.schema))?;
    for mut step in build_chain(names).ok()? {
        if !step.columns_from_empty() {
            return None;
        }
        batch = step.apply(batch).ok()?;
    }
    // a column typed Null tells nothing (the user's code in `exec` adds a column that holds
    // no value in an empty message): the first message's columns decide instead
    if batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type() == &arrow_schema::DataType::Null)
    {
        return None;
    }
    Some(batch.schema())
}

/// A one-row batch of `schema`: numbers 0, text empty, the rest missing.
fn probe_row(schema: &SchemaRef) -> Option<Batch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let zero: arrow_array::ArrayRef = match f.data_type() {
                dt if dt.is_numeric() || dt == &arrow_schema::DataType::Boolean => {
                    std::sync::Arc::new(arrow_array::Int64Array::from(vec![0]))
                }
                _ => std::sync::Arc::new(arrow_array::StringArray::from(vec![""])),
            };
            arrow_cast::cast(&zero, f.data_type())
                .unwrap_or_else(|_| arrow_array::new_null_array(f.data_type(), 1))
        })
        .collect();
    let opts = arrow_array::RecordBatchOptions::new().with_row_count(Some(1));
    Batch::try_new_with_options(schema.clone(), columns, &opts).ok()
}

/// `batch` with exactly the columns of `schema` (by name; a missing one is all nulls, a type
/// that differs is cast), and the names of the columns it left out.
fn project(
    batch: &Batch,
    schema: &SchemaRef,
) -> Result<(Batch, Vec<String>), arrow_schema::ArrowError> {
    let have = batch.schema();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        columns.push(match have.index_of(f.name()) {
            Ok(i) if batch.column(i).data_type() == f.data_type() => batch.column(i).clone(),
            Ok(i) => arrow_cast::cast(batch.column(i), f.data_type())?,
            Err(_) => arrow_array::new_null_array(f.data_type(), batch.num_rows()),
        });
    }
    let dropped = have
        .fields()
        .iter()
        .filter(|f| schema.index_of(f.name()).is_err())
        .map(|f| f.name().clone())
        .collect();
    let opts = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok((
        Batch::try_new_with_options(schema.clone(), columns, &opts)?,
        dropped,
    ))
}

/// A batch as NDJSON rows, for a dead letter.
pub fn ndjson(batch: &Batch) -> Vec<u8> {
    let mut rows = ResultStep::new(Encoding::Ndjson)
        .encode(batch)
        .unwrap_or_default();
    while rows.last() == Some(&b'\n') {
        rows.pop();
    }
    rows
}

/// A whole message's rows as dead-letter data: the raw rows as they arrived, or a columnar
/// message as NDJSON.
pub fn message_data(payload: &streamprep_core::Payload) -> Vec<u8> {
    match payload {
        streamprep_core::Payload::Columnar(b) => ndjson(b),
        raw => raw.raw_data(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_core::{Payload, RowFormat};
    use streamprep_ops::prepare::Compression;

    fn message(seq: u64, rows: &[&str]) -> Message {
        let (mut bytes, mut ends) = (Vec::new(), Vec::new());
        for r in rows {
            bytes.extend_from_slice(r.as_bytes());
            bytes.push(b'\n');
            ends.push(bytes.len());
        }
        let format = RowFormat::Ndjson;
        Message::new(
            seq,
            Payload::Raw {
                format,
                bytes,
                ends,
            },
        )
    }

    /// A far queue worker leaves the encoding to its coordinator: the rows encoded there are
    /// the chain's own, for every encoding, and a refused row stays a dead letter.
    #[test]
    fn deferred_encoding_gives_the_chain_s_own_rows() {
        use arrow_schema::{DataType, Field, Schema};
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let prepare = PrepareConfig {
            format: RowFormat::Ndjson,
            compression: Compression::None,
            csv_sep: b',',
            schema,
        };
        let rows = [
            r#"{"x":1.5,"s":"a"}"#,
            r#"{"x":null,"s":"b\"c"}"#,
            "not json",
            r#"{"x":-0.1,"s":null}"#,
        ];
        for encoding in [Encoding::Ndjson, Encoding::Csv, Encoding::Columnar] {
            let chain = || Chain::new(&["fillna_zeros", "abs"], prepare.clone(), encoding);
            let (mut here, mut far) = (chain().expect("chain"), chain().expect("chain"));
            far.defer_encoding(true);
            let want = here.run(&mut message(3, &rows));
            let mut got = far.run(&mut message(3, &rows));
            let out = got.output.as_ref().expect("output");
            assert!(
                out.encoded.is_empty(),
                "{encoding:?}: encoded on the worker"
            );
            encode_output(&mut ResultStep::new(encoding), &mut got);
            let (w, g) = (want.output.expect("output"), got.output.expect("output"));
            assert_eq!(g.encoded, w.encoded, "{encoding:?}");
            assert_eq!((g.rows, &g.batch), (w.rows, &w.batch));
            assert_eq!(got.dead, want.dead);
            assert_eq!(got.dead.len(), 1);
            if encoding != Encoding::Columnar {
                assert!(!w.encoded.is_empty());
            }
        }
    }
}
