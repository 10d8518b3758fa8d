//! The pipeline: source -> buffer -> chain (inline or on the pool) -> sinks, with the schema
//! declared or inferred from the first rows and then frozen.

use std::collections::VecDeque;
use std::time::Instant;

use arrow_schema::SchemaRef;
use streamprep_core::{DeadLetterSink, IoError, Message, Sink, Source, SourceKind};
use streamprep_ops::prepare::{infer_schema, Compression, PrepareConfig};
use streamprep_ops::registry::{validate_chain, ChainError};
use thiserror::Error;

use crate::buffer::Buffer;
use crate::chain::{Chain, Processed};
use crate::executor::{self, Method};

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
}

impl PipelineConfig {
    /// Refuse a bad configuration before anything runs.
    pub fn validate(&self) -> Result<(), PipelineError> {
        validate_chain(&self.chain)?;
        if self.buffer == 0 {
            return Err(PipelineError::Config("--buffer must be at least 1".into()));
        }
        if let Method::Pool { workers: 0 } = self.method {
            return Err(PipelineError::Config("--workers must be at least 1".into()));
        }
        Ok(())
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Rows the buffer took from the source.
    pub rows_in: u64,
    /// Rows written to the sink.
    pub rows_out: u64,
    /// Messages processed.
    pub messages: u64,
    /// Rows (or whole messages, counted by their rows) sent to dead letters.
    pub dead_letters: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
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
            "rows in {}, rows out {}, messages {}, dead letters {}, {:.3} s, {:.0} rows/s",
            self.rows_in, self.rows_out, self.messages, self.dead_letters, self.seconds, rate
        )
    }
}

/// Why a pipeline could not run or stopped.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The configuration is wrong (the user's to fix); nothing was run.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The chain names an unknown or misplaced step.
    #[error("bad chain: {0}")]
    Chain(#[from] ChainError),
    /// The schema could not be inferred from the first rows.
    #[error("cannot infer the stream's schema: {0}")]
    Schema(String),
    /// A source or sink failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Run a pipeline to the end of its source.
pub fn run(
    cfg: &PipelineConfig,
    source: &mut dyn Source,
    sink: &mut dyn Sink,
    mut dead_letters: Option<&mut dyn DeadLetterSink>,
) -> Result<Summary, PipelineError> {
    cfg.validate()?;
    let started = Instant::now();
    let mut buffer = Buffer::new(cfg.buffer);
    let (format, header) = match source.kind() {
        SourceKind::Rows(f) => (f, source.header()?),
        SourceKind::Columnar => (streamprep_core::RowFormat::Ndjson, None),
    };
    // Read ahead the first messages to infer the schema from enough rows.
    let mut ahead: VecDeque<Message> = VecDeque::new();
    let schema = match (&cfg.schema, source.kind()) {
        (Some(s), _) => s.clone(),
        (None, SourceKind::Columnar) => match buffer.next_message(source)? {
            Some(m) => {
                let s = match &m.payload {
                    streamprep_core::Payload::Columnar(b) => b.schema(),
                    _ => return Err(PipelineError::Schema("columnar source gave rows".into())),
                };
                ahead.push_back(m);
                s
            }
            None => arrow_schema::SchemaRef::new(arrow_schema::Schema::empty()),
        },
        (None, SourceKind::Rows(_)) => {
            let mut seen = 0;
            while seen < INFER_ROWS {
                match buffer.next_message(source)? {
                    Some(m) => {
                        seen += m.payload.rows();
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
            if sample.is_empty() && header.is_none() {
                // empty input: nothing to do
                return Ok(Summary {
                    seconds: started.elapsed().as_secs_f64(),
                    ..Summary::default()
                });
            }
            let sample = if cfg.compression == Compression::None {
                sample
            } else {
                Vec::new()
            };
            match infer_schema(format, header.as_deref(), &sample) {
                Ok(s) => s,
                Err(e) if cfg.compression != Compression::None => {
                    return Err(PipelineError::Schema(format!(
                        "{e}; compressed rows need a declared [schema]"
                    )))
                }
                Err(e) => return Err(PipelineError::Schema(e)),
            }
        }
    };
    let prepare = PrepareConfig {
        format,
        compression: cfg.compression,
        schema,
    };
    let encoding = sink.encoding();
    let workers = match cfg.method {
        Method::Inline => 1,
        Method::Pool { workers } => workers,
    };
    let chains = (0..workers)
        .map(|_| Chain::new(&cfg.chain, prepare.clone(), encoding))
        .collect::<Result<Vec<_>, _>>()?;

    let mut summary = Summary::default();
    let next = || -> Result<Option<Message>, IoError> {
        match ahead.pop_front() {
            Some(m) => Ok(Some(m)),
            None => buffer.next_message(source),
        }
    };
    let deliver = |p: Processed| -> Result<(), IoError> {
        summary.messages += 1;
        summary.rows_in += p.rows_in as u64;
        for d in &p.dead {
            summary.dead_letters += d.rows as u64;
            if let Some(dl) = dead_letters.as_deref_mut() {
                dl.write(d)?;
            }
        }
        if let Some(out) = p.output {
            summary.rows_out += out.batch.num_rows() as u64;
            sink.write(out)?;
        }
        Ok(())
    };
    let result = match cfg.method {
        Method::Inline => {
            let chain = chains
                .into_iter()
                .next()
                .ok_or_else(|| PipelineError::Config("no chain".into()))?;
            executor::inline(chain, next, deliver)
        }
        Method::Pool { workers } => executor::pool(chains, workers * 4, next, deliver),
    };
    result?;
    sink.finish()?;
    if let Some(dl) = dead_letters {
        dl.finish()?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
