//! The pipeline: source -> buffer -> chain (inline or on the pool) -> sinks, with the schema
//! declared or inferred from the first rows and then frozen.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use streamprep_core::{DeadLetterSink, Encoding, IoError, Message, Sink, Source, SourceKind};
use streamprep_ops::prepare::{infer_schema, with_declared, Compression, PrepareConfig};
use streamprep_ops::registry::{validate_chain, ChainError};
use thiserror::Error;

use crate::adaptive::Controller;
use crate::buffer::Buffer;
use crate::chain::{Chain, Processed};
use crate::executor::{self, Method};
use crate::latency::{LatencyProbe, LatencySummary};
use crate::shed::SheddingQueue;
use crate::stats::Stats;

/// What a saturated pipeline does with its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backpressure {
    /// Stop taking from the source until the chain catches up (MQTT flow control then
    /// pushes back to the broker). Nothing is lost.
    #[default]
    Block,
    /// Keep reading; when the queue before the chain is full, shed its oldest message and
    /// count its rows as dropped.
    DropOldest,
}

/// The order a keyed run's rows leave in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordered {
    /// Messages are gathered per key (`buffer` rows of one key); each key's rows leave in
    /// input order, keys in the order their messages close.
    #[default]
    Key,
    /// Messages are cut from the input as without a key (`buffer` rows of the stream, every
    /// key in it) and leave in input order; each key's rows in a message are that key's part.
    Global,
}

/// The most steps a chain may have.
pub const MAX_STEPS: usize = 1000;
/// The most rows a message may have (`--buffer`).
pub const MAX_BUFFER: usize = 10_000_000;
/// The most worker threads of the pool.
pub const MAX_WORKERS: usize = 1024;
/// The most messages the queue method keeps in flight.
pub const MAX_IN_FLIGHT: usize = 100_000;

/// Rows the schema is inferred from (the first messages, until this many rows are seen).
pub const INFER_ROWS: usize = 1000;

/// Everything a pipeline needs besides its source and sinks.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Step names (`prepare`/`result` may be given at the ends or left implied).
    pub chain: Vec<String>,
    /// Buffering factor: rows a message.
    pub buffer: usize,
    /// Where chains run.
    pub method: Method,
    /// The declared schema; inferred from the first rows when `None`.
    pub schema: Option<SchemaRef>,
    /// How each raw row is wrapped.
    pub compression: Compression,
    /// The CSV field separator (pandas' `sep`).
    pub csv_sep: u8,
    /// A live source's message is closed when its oldest row has waited this long.
    pub max_wait: Option<Duration>,
    /// What to do when the chain cannot keep up.
    pub backpressure: Backpressure,
    /// Set to stop the run (Ctrl-C, or a failed sink): live sources end at their next check.
    pub stop: Arc<AtomicBool>,
    /// Measure end-to-end latency from this column's send time (microseconds since 1970).
    pub latency_field: Option<String>,
    /// Route rows by this column on the pool: a key's rows always go to the same worker, in
    /// order (for the steps that keep state per key).
    pub key: Option<String>,
    /// With a key: gather messages per key (`Key`) or cut them from the input (`Global`).
    pub ordered: Ordered,
    /// With a key: a key with no row for this long closes its waiting message.
    pub key_ttl: Option<Duration>,
    /// With a key: at most this many keys wait in the buffer.
    pub max_keys: Option<usize>,
    /// The per-key state of the chain's steps: given to the chains at the start when it was
    /// saved of the same chain and key, replaced by theirs at the end.
    pub state: Option<crate::state::StateSlot>,
    /// The executor of `Method::Queue`.
    pub remote: Option<Arc<dyn crate::executor::Remote>>,
    /// `--buffer auto`: the buffer size follows the load (starting from `buffer`).
    pub adaptive: Option<crate::adaptive::Adaptive>,
}

impl PipelineConfig {
    /// A configuration with the defaults: inline, no declared schema, no compression,
    /// no time limit on buffering, `block`.
    pub fn new(chain: Vec<String>, buffer: usize) -> Self {
        PipelineConfig {
            chain,
            buffer,
            method: Method::Inline,
            schema: None,
            compression: Compression::None,
            csv_sep: b',',
            max_wait: None,
            backpressure: Backpressure::Block,
            stop: Arc::new(AtomicBool::new(false)),
            latency_field: None,
            key: None,
            ordered: Ordered::Key,
            state: None,
            key_ttl: None,
            max_keys: None,
            remote: None,
            adaptive: None,
        }
    }
}

impl PipelineConfig {
    /// Refuse a bad configuration before anything runs.
    pub fn validate(&self) -> Result<(), PipelineError> {
        self.check().map_err(|(field, message)| match field {
            "chain" if self.chain.len() <= MAX_STEPS => match validate_chain(&self.chain) {
                Err(e) => PipelineError::Chain(e),
                Ok(_) => PipelineError::Setting { field, message },
            },
            _ => PipelineError::Setting { field, message },
        })
    }

    /// The first setting that cannot work, as `(field, what is wrong and what would be
    /// right)`, named as a project spec names it.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.chain.len() > MAX_STEPS {
            return Err((
                "chain",
                format!("{} steps; at most {MAX_STEPS}", self.chain.len()),
            ));
        }
        validate_chain(&self.chain).map_err(|e| ("chain", e.to_string()))?;
        if self.buffer == 0 {
            return Err(("buffer", "must be at least 1 row".into()));
        }
        if self.buffer > MAX_BUFFER {
            return Err((
                "buffer",
                format!(
                    "{} is more than the limit of {MAX_BUFFER} rows a message",
                    self.buffer
                ),
            ));
        }
        match self.method {
            Method::Pool { workers } if workers > MAX_WORKERS => {
                return Err((
                    "workers",
                    format!("{workers} is more than the limit of {MAX_WORKERS} threads"),
                ))
            }
            Method::Queue { in_flight } if in_flight > MAX_IN_FLIGHT => {
                return Err((
                    "in_flight",
                    format!("{in_flight} is more than the limit of {MAX_IN_FLIGHT} messages"),
                ))
            }
            Method::Pool { workers: 0 } => return Err(("workers", "must be at least 1".into())),
            Method::Queue { in_flight: 0 } => {
                return Err(("in_flight", "must be at least 1".into()))
            }
            Method::Queue { .. } if self.remote.is_none() => {
                return Err((
                    "broker",
                    "the queue method needs a Redis broker, redis://HOST:PORT".into(),
                ))
            }
            _ => {}
        }
        if self.max_wait == Some(Duration::ZERO) {
            return Err(("max_wait", "must be more than 0 (e.g. 50ms)".into()));
        }
        Ok(())
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Rows the buffer took from the source.
    pub rows_in: u64,
    /// Rows written to the sink.
    pub rows_out: u64,
    /// Messages processed.
    pub messages: u64,
    /// Rows (or whole messages, counted by their rows) sent to dead letters.
    pub dead_letters: u64,
    /// Rows shed by the `drop_oldest` policy.
    pub dropped: u64,
    /// Columns that appeared after the schema was fixed and that the sink could not take.
    pub dropped_columns: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// End-to-end latency, when `latency_field` was set.
    pub latency: Option<LatencySummary>,
    /// Service times per step and chain, row latency and utilisation.
    pub metrics: crate::metrics::Report,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = if self.seconds > 0.0 {
            self.rows_in as f64 / self.seconds
        } else {
            0.0
        };
        write!(
            f,
            "rows in {}, rows out {}, messages {}, dead letters {}, ",
            self.rows_in, self.rows_out, self.messages, self.dead_letters
        )?;
        if self.dropped > 0 {
            write!(f, "dropped {}, ", self.dropped)?;
        }
        write!(f, "{:.3} s, {:.0} rows/s", self.seconds, rate)?;
        if !self.dropped_columns.is_empty() {
            write!(
                f,
                ", columns the sink could not take: {}",
                self.dropped_columns.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Why a pipeline could not run or stopped.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// A setting is wrong (the user's to fix); nothing was run.
    #[error("{field}: {message}")]
    Setting {
        /// The setting, as a project spec names it (`buffer`, `workers`).
        field: &'static str,
        /// What is wrong and what would be right.
        message: String,
    },
    /// The chain names an unknown or misplaced step.
    #[error("bad chain: {0}")]
    Chain(ChainError),
    /// The schema could not be inferred from the first rows.
    #[error("cannot infer the stream's schema: {0}")]
    Schema(String),
    /// A source or sink failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Run the chain's steps on an empty message of the stream's columns, up to the first step
/// whose columns an empty message does not show (`exec`): a step refusing it cannot take the
/// stream (a step takes any empty message it can take at all).
fn check_columns<S: AsRef<str>>(chain: &[S], prepare: &PrepareConfig) -> Result<(), PipelineError> {
    let mut batch =
        streamprep_core::Batch::new_empty(streamprep_ops::prepare::output_schema(&prepare.schema));
    for mut step in streamprep_ops::registry::build_chain(chain)? {
        if !step.columns_from_empty() {
            break;
        }
        batch = step.apply(batch).map_err(|e| {
            PipelineError::Chain(ChainError::BadOptions {
                step: e.step().to_string(),
                message: match e {
                    streamprep_core::StepError::BadInput { reason, .. }
                    | streamprep_core::StepError::Internal { reason, .. } => reason,
                },
            })
        })?;
    }
    Ok(())
}

// Not `#[from]`: that would make the ChainError the source too, and `{:#}` would print its
// text twice ("bad chain: unknown step 'x' ...: unknown step 'x' ...").
impl From<ChainError> for PipelineError {
    fn from(e: ChainError) -> Self {
        PipelineError::Chain(e)
    }
}

/// Run a pipeline to the end of its source.
pub fn run(
    cfg: &PipelineConfig,
    source: &mut dyn Source,
    sink: &mut dyn Sink,
    dead_letters: Option<&mut dyn DeadLetterSink>,
) -> Result<Summary, PipelineError> {
    run_with(cfg, source, sink, dead_letters, &Stats::default())
}

/// Run a pipeline to the end of its source (or until `cfg.stop`), keeping `stats` current
/// for a status line.
pub fn run_with(
    cfg: &PipelineConfig,
    source: &mut dyn Source,
    sink: &mut dyn Sink,
    dead_letters: Option<&mut dyn DeadLetterSink>,
    stats: &Stats,
) -> Result<Summary, PipelineError> {
    cfg.validate()?;
    {
        let mut links = stats.links.lock().unwrap_or_else(|e| e.into_inner());
        links.clear();
        links.extend(source.link().map(|l| ("source".to_string(), l)));
        let broker = cfg.remote.as_ref().and_then(|r| r.health());
        links.extend(broker.map(|l| ("broker".to_string(), l)));
    }
    // the live monitor samples the run each second, whoever hosts it; the run's end wakes it
    let done = AtomicBool::new(false);
    // its warnings belong to the run's span (the host's log routes them by it)
    let span = tracing::Span::current();
    std::thread::scope(|s| {
        let monitor = std::thread::Builder::new()
            .name("streamprep-monitor".into())
            .spawn_scoped(s, || crate::monitor::watch(stats, &done, &span));
        let r = run_body(cfg, source, sink, dead_letters, stats);
        done.store(true, Ordering::SeqCst);
        if let Ok(m) = monitor {
            m.thread().unpark();
            let _ = m.join();
        }
        r
    })
}

fn run_body(
    cfg: &PipelineConfig,
    source: &mut dyn Source,
    sink: &mut dyn Sink,
    mut dead_letters: Option<&mut dyn DeadLetterSink>,
    stats: &Stats,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let max_wait = if source.is_live() { cfg.max_wait } else { None };
    let mut acker = source.acker();
    let mut buffer = Buffer::new(cfg.buffer);
    let (format, header) = match source.kind() {
        SourceKind::Rows(f) => (f, source.header()?),
        SourceKind::Columnar => (streamprep_core::RowFormat::Ndjson, None),
    };
    let count_read = |m: &Message| count_read(stats, m);
    // Read ahead the first messages to infer the schema from enough rows (a live source:
    // from its first message, which may be all there is for a while).
    let infer_rows = if source.is_live() { 1 } else { INFER_ROWS };
    let mut ahead: VecDeque<Message> = VecDeque::new();
    let schema = match source.kind() {
        SourceKind::Columnar => match (&cfg.schema, buffer.next_message(source, None)?) {
            (Some(s), m) => {
                if let Some(m) = m {
                    count_read(&m);
                    ahead.push_back(m);
                }
                s.clone()
            }
            (None, Some(m)) => {
                let s = match &m.payload {
                    streamprep_core::Payload::Columnar(b) => b.schema(),
                    _ => return Err(PipelineError::Schema("columnar source gave rows".into())),
                };
                count_read(&m);
                ahead.push_back(m);
                s
            }
            (None, None) => {
                // no batch at all (an empty table, or a stop before the first): nothing to do
                return Ok(Summary {
                    seconds: started.elapsed().as_secs_f64(),
                    ..Summary::default()
                });
            }
        },
        SourceKind::Rows(_) => {
            let mut seen = 0;
            while seen < infer_rows {
                match buffer.next_message(source, max_wait)? {
                    Some(m) => {
                        seen += m.payload.rows() + m.rejected.len();
                        count_read(&m);
                        ahead.push_back(m);
                    }
                    None => break,
                }
            }
            let sample: Vec<&[u8]> = ahead
                .iter()
                .flat_map(|m| m.payload.raw_rows())
                .take(INFER_ROWS)
                .collect();
            if ahead.is_empty() && header.is_none() {
                // empty input: nothing to do
                return Ok(Summary {
                    seconds: started.elapsed().as_secs_f64(),
                    ..Summary::default()
                });
            }
            // compressed rows are inferred from as they come (each message widens the
            // schema by its own columns), or declared
            let sample = if cfg.compression == Compression::None {
                sample
            } else {
                Vec::new()
            };
            let inferred = infer_schema(format, header.as_deref(), &sample, cfg.csv_sep)
                .map_err(PipelineError::Schema)?;
            match &cfg.schema {
                None => inferred,
                Some(declared) if format == streamprep_core::RowFormat::Csv => {
                    // CSV fields are matched by position: the header's columns, declared types
                    let only_header = arrow_schema::Schema::new(
                        declared
                            .fields()
                            .iter()
                            .filter(|f| inferred.index_of(f.name()).is_ok())
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                    with_declared(&only_header, &inferred)
                }
                Some(declared) => with_declared(declared, &inferred),
            }
        }
    };
    let prepare = PrepareConfig {
        format,
        compression: cfg.compression,
        csv_sep: cfg.csv_sep,
        schema,
    };
    // a step that cannot take the stream's columns (eval naming a column the stream does not
    // have) is refused now, before a row is processed
    check_columns(&cfg.chain, &prepare)?;
    let encoding = sink.encoding();
    let workers = match cfg.method {
        Method::Inline => 1,
        Method::Pool { workers } => workers,
        Method::Queue { .. } => 0,
    };
    let router = |n: usize| {
        cfg.key
            .as_deref()
            .map(|key| crate::keyed::KeyRouter::new(key, n, header.as_deref(), cfg.csv_sep))
    };
    let job = crate::executor::RemoteJob {
        chain: cfg.chain.clone(),
        prepare: prepare.clone(),
        encoding,
        // a Parquet sink writes the batch and the latency probe reads a column of it; other
        // sinks write the encoded rows only
        want_batch: encoding == Encoding::Columnar || cfg.latency_field.is_some(),
        key: match cfg.ordered {
            Ordered::Key => router(1),
            Ordered::Global => None,
        },
        max_keys: cfg.max_keys,
        state: cfg.state.clone(),
    };
    let remote = cfg.remote.as_deref();
    let mut chains = (0..workers)
        .map(|_| Chain::new(&cfg.chain, prepare.clone(), encoding))
        .collect::<Result<Vec<_>, _>>()?;
    // each stage is timed for the metrics (two clock reads a stage and message)
    chains.iter_mut().for_each(Chain::time_stages);
    let stage_names = match chains.first() {
        Some(c) => c.stage_names(),
        None => Chain::new(&cfg.chain, prepare.clone(), encoding)?.stage_names(),
    };
    stats.metrics.configure(stage_names, workers, cfg.buffer);

    let stop = &cfg.stop;
    let mut probe = cfg.latency_field.as_deref().map(LatencyProbe::new);
    // a live source's rows reach the sinks' destination soon, not only at the end: after a
    // message that was not full (the source paused), and at least every 100 ms
    let live = source.is_live();
    let mut flushed = Instant::now();
    let deliver = |mut p: Processed| -> Result<(), IoError> {
        let lull = p.rows_in < cfg.buffer;
        Stats::add(&stats.messages, 1);
        stats.record_keys(p.worker, p.keys);
        // rows shed by drop_oldest came in too: rows in = out + dead letters + dropped
        Stats::add(&stats.rows_in, (p.rows_in + p.dropped) as u64);
        let mut dead = 0;
        for d in &p.dead {
            dead += d.rows as u64;
            stats.events.dead_letter(d);
            if let Some(dl) = dead_letters.as_deref_mut() {
                dl.write(d)?;
            }
        }
        Stats::add(&stats.dead_letters, dead);
        for name in stats.drop_columns(&p.dropped_columns) {
            stats.warn(format!(
                "column '{name}' appeared after the stream's schema was fixed, and the sink \
                 cannot add a column (a CSV header is written, a Parquet file has its schema): \
                 its values are left out. Declare it in the project's [schema], or write NDJSON"
            ));
        }
        if let Some(out) = p.output.take() {
            Stats::add(&stats.rows_out, out.rows as u64);
            if encoding == Encoding::Ndjson {
                stats.tap.offer(&out.encoded);
            }
            if let Some(probe) = probe.as_mut() {
                probe.before_sink(&out.batch);
            }
            sink.write(out)?;
            if let Some(probe) = probe.as_mut() {
                probe.at_sink();
            }
        }
        stats.metrics.record(&p, Instant::now());
        if let (Some(acker), false) = (acker.as_mut(), p.acks.is_empty()) {
            // at least once: acknowledge only what the sinks hold
            sink.flush()?;
            if let Some(dl) = dead_letters.as_deref_mut() {
                dl.flush()?;
            }
            flushed = Instant::now();
            acker.ack(&p.acks);
        } else if live && (lull || flushed.elapsed() >= Duration::from_millis(100)) {
            sink.flush()?;
            if let Some(dl) = dead_letters.as_deref_mut() {
                dl.flush()?;
            }
            flushed = Instant::now();
        }
        Ok(())
    };
    let window = workers * 4;
    let tuner = Tuner {
        ctl: cfg.adaptive.map(|a| (Controller::new(a), 0)),
    };
    if let Some((c, _)) = &tuner.ctl {
        buffer.set_size(c.size());
        stats.metrics.set_buffer(c.size());
    }
    // with a key: messages gathered per key (the keyed buffer), each routed whole to its key's
    // worker; or (ordered = "global") cut from the input and split by key across the workers
    let keyed = match (cfg.ordered, router(workers.max(1))) {
        (Ordered::Key, Some(r)) => Some(crate::keyed_buffer::KeyedBuffer::new(
            r,
            buffer.size(),
            crate::keyed_buffer::KeyedBounds {
                max_wait,
                key_ttl: cfg.key_ttl,
                max_keys: cfg.max_keys,
                max_bytes: crate::keyed_buffer::MAX_PENDING_BYTES,
            },
        )),
        _ => None,
    };
    let route = match (cfg.method, router(workers)) {
        (Method::Pool { workers }, Some(r)) if workers > 1 => match cfg.ordered {
            Ordered::Key => Route::Whole(r),
            Ordered::Global => Route::Split(r),
        },
        _ => Route::None,
    };
    // state saved by the last run of this chain: each worker takes its keys
    if let Some(slot) = &cfg.state {
        let saved = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(bytes) = saved {
            match crate::state::SavedState::read(&bytes, &cfg.chain, cfg.key.as_deref()) {
                Ok(saved) => {
                    let routed = match &route {
                        Route::Whole(r) | Route::Split(r) => Some(r),
                        Route::None => None,
                    };
                    for (w, chain) in chains.iter_mut().enumerate() {
                        let keep = |k: &str| {
                            routed.is_none_or(|r| r.worker_of_key(Some(k.as_bytes())) == w)
                        };
                        chain.load_state(&saved.steps, &keep).map_err(|e| {
                            PipelineError::Setting {
                                field: "state",
                                message: format!("the saved state cannot be taken back: {e}"),
                            }
                        })?;
                    }
                    stats.info("state saved by the last run taken back: running statistics and windows go on".into());
                }
                Err(why) => stats.warn(format!("{why}: its saved state is not used, the steps start afresh (it is replaced when this run ends)")),
            }
        }
    }
    let csv = encoding == Encoding::Csv;
    let flushes = if chains.first().is_some_and(Chain::holds_rows) {
        (0..chains.len()).rev().collect()
    } else {
        Vec::new()
    };
    let mut reader = Reader {
        buffer,
        keyed,
        ahead,
        max_wait,
        tuner,
        flushes,
    };
    let result = match cfg.backpressure {
        Backpressure::Block => {
            let next = || reader.next(source, stop, stats);
            execute(
                cfg.method, remote, &job, chains, window, route, csv, next, deliver, stop,
            )
        }
        Backpressure::DropOldest => {
            let queue = SheddingQueue::new(window);
            std::thread::scope(|s| {
                let queue = &queue;
                s.spawn(move || loop {
                    match reader.next(source, stop, stats) {
                        Ok(Some(m)) => {
                            if !queue.push(m, stats) {
                                break;
                            }
                        }
                        Ok(None) => {
                            queue.finish(Ok(()));
                            break;
                        }
                        Err(e) => {
                            queue.finish(Err(e));
                            break;
                        }
                    }
                });
                // shed messages merge, so number them as they are taken
                let mut seq = 0u64;
                let next = || -> Result<Option<Message>, IoError> {
                    Ok(queue.pop()?.map(|mut m| {
                        m.seq = seq;
                        seq += 1;
                        m
                    }))
                };
                let r = execute(
                    cfg.method, remote, &job, chains, window, route, csv, next, deliver, stop,
                );
                if r.is_err() {
                    // the reader must not wait for rows nobody will take
                    stop.store(true, Ordering::SeqCst);
                }
                queue.close();
                r
            })
        }
    };
    // Whatever ended the run, what was processed reaches the sinks and is flushed: a source
    // that failed half-way (a torn connection, a full disk) costs no row already done.
    // the steps' state, for the next run of this chain
    let result = result.map(|chains| {
        if let Some(slot) = &cfg.state {
            let states = chains.iter().map(Chain::save_state).collect();
            if let Some(s) =
                crate::state::SavedState::gather(&cfg.chain, cfg.key.as_deref(), states)
            {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.to_bytes());
            }
        }
    });
    let finished = sink.finish();
    let dl_finished = dead_letters.map_or(Ok(()), |dl| dl.finish());
    result?;
    finished?;
    dl_finished?;
    let snap = stats.snapshot();
    Ok(Summary {
        rows_in: snap.rows_in,
        rows_out: snap.rows_out,
        messages: snap.messages,
        dead_letters: snap.dead_letters,
        dropped: snap.dropped,
        dropped_columns: stats.dropped_columns(),
        seconds: started.elapsed().as_secs_f64(),
        latency: probe.map(|p| p.summary()),
        metrics: stats.metrics.report(),
    })
}

fn count_read(stats: &Stats, m: &Message) {
    Stats::add(&stats.messages_read, 1);
    Stats::add(&stats.rows_read, m.payload.rows() as u64);
}

/// How messages find their worker on the pool.
enum Route {
    /// Any worker takes the next message.
    None,
    /// A message (of one key) goes whole to its key's worker.
    Whole(crate::keyed::KeyRouter),
    /// A message is cut into a part per worker by its rows' keys.
    Split(crate::keyed::KeyRouter),
}

/// Reads the executor's messages: the plain buffer's, or (with a key, ordered by key) the
/// keyed buffer's; the messages read ahead for the schema come first.
struct Reader {
    buffer: Buffer,
    keyed: Option<crate::keyed_buffer::KeyedBuffer>,
    ahead: VecDeque<Message>,
    max_wait: Option<Duration>,
    tuner: Tuner,
    /// Workers still owed their end-of-stream message (chains whose steps hold rows).
    flushes: Vec<usize>,
}

impl Reader {
    fn next(
        &mut self,
        source: &mut dyn Source,
        stop: &AtomicBool,
        stats: &Stats,
    ) -> Result<Option<Message>, IoError> {
        loop {
            if let Some(kb) = self.keyed.as_mut() {
                if let Some(top) = kb.busiest() {
                    stats.set_busiest(top);
                }
                if let Some(m) = kb.pop() {
                    return Ok(Some(m));
                }
            }
            let read = match self.ahead.pop_front() {
                // counted when it was read ahead
                Some(m) => Some(m),
                // stopped (Ctrl-C, SIGTERM, a handle): no more reading, drain what is in
                None if stop.load(Ordering::SeqCst) => None,
                None => {
                    self.tuner
                        .tune(&mut self.buffer, self.keyed.as_mut(), stats);
                    let give_up = self
                        .keyed
                        .as_ref()
                        .and_then(crate::keyed_buffer::KeyedBuffer::give_up_at);
                    let m = self.buffer.next_block(source, self.max_wait, give_up)?;
                    if let Some(m) = &m {
                        count_read(stats, m);
                    }
                    m
                }
            };
            let Some(kb) = self.keyed.as_mut() else {
                return Ok(read.or_else(|| self.end_of_stream()));
            };
            match read {
                Some(m) => kb.push(m),
                None if self.buffer.ended() || stop.load(Ordering::SeqCst) => {
                    // the end (or a stop): every key's waiting rows go on
                    kb.flush();
                    return Ok(kb.pop().or_else(|| self.end_of_stream()));
                }
                None => kb.tick(),
            }
        }
    }

    /// After the last message: one end-of-stream message a worker whose steps hold rows.
    fn end_of_stream(&mut self) -> Option<Message> {
        let w = self.flushes.pop()?;
        let seq = match self.keyed.as_mut() {
            Some(kb) => kb.take_seq(),
            None => self.buffer.take_seq(),
        };
        Some(Message::flush(seq, w))
    }
}

#[allow(clippy::too_many_arguments)]
fn execute(
    method: Method,
    remote: Option<&dyn crate::executor::Remote>,
    job: &crate::executor::RemoteJob,
    chains: Vec<Chain>,
    window: usize,
    route: Route,
    csv: bool,
    mut next: impl FnMut() -> Result<Option<Message>, IoError> + Send,
    mut deliver: impl FnMut(Processed) -> Result<(), IoError> + Send,
    stop: &AtomicBool,
) -> Result<Vec<Chain>, IoError> {
    match method {
        Method::Queue { in_flight } => match remote {
            Some(r) => r
                .execute(job, in_flight, &mut next, &mut deliver, stop)
                .map(|()| Vec::new()),
            None => Err(IoError::Protocol(
                "internal error: no remote executor".into(),
            )),
        },
        Method::Inline => match chains.into_iter().next() {
            Some(chain) => executor::inline(chain, next, deliver),
            None => Err(IoError::Protocol("internal error: no chain".into())),
        },
        Method::Pool { .. } => match route {
            Route::Split(r) => {
                // the parts of a message come back together, rows in their input places
                let places = crate::keyed::Places::default();
                let mut merger = crate::keyed::Merger::new(places.clone(), csv);
                executor::pool_routed(
                    chains,
                    window,
                    crate::keyed::parts(r, places, next),
                    move |p| {
                        for p in merger.take(p) {
                            deliver(p)?;
                        }
                        Ok(())
                    },
                )
            }
            Route::Whole(r) => executor::pool_routed(
                chains,
                window,
                move || Ok(next()?.map(|m| (m.flush.unwrap_or_else(|| r.worker_of_message(&m)), m))),
                deliver,
            ),
            Route::None => executor::pool(chains, window, next, deliver),
        },
    }
}

/// Adaptive buffering's hook on the reading thread: after each new metrics sample (the
/// monitor takes one a second), the controller sets the buffer size for the next messages.
struct Tuner {
    ctl: Option<(Controller, u64)>,
}

impl Tuner {
    fn tune(
        &mut self,
        buffer: &mut Buffer,
        keyed: Option<&mut crate::keyed_buffer::KeyedBuffer>,
        stats: &Stats,
    ) {
        let Some((ctl, seen)) = self.ctl.as_mut() else {
            return;
        };
        let live = stats.metrics.live();
        if live.samples != *seen {
            *seen = live.samples;
            let b = ctl.update(&live);
            buffer.set_size(b);
            if let Some(k) = keyed {
                k.set_size(b);
            }
            stats.metrics.set_buffer(b);
        }
    }
}
