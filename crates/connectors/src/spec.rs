//! Endpoint specs as users write them: `file:PATH` (format from the extension), `-` for
//! stdin/stdout, `tcp-listen:HOST:PORT` (framed TCP source), `tcp:HOST:PORT` (framed TCP sink),
//! `generator:davis?rows=N&seed=S&rate=R&stations=K`, `mqtt://HOST:PORT/TOPIC?qos=1`.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use streamprep_core::{DeadLetterSink, Encoding, IoError, RowFormat, Sink, Source};
use thiserror::Error;

use crate::dead_letter::DeadLetterWriter;
use crate::file::{Interruptible, LineSource, ParquetSink, ParquetSource, WriterSink};
use crate::generator::DavisSource;
use crate::mqtt::{MqttSink, MqttSource, MqttUrl};
use crate::tcp::{FramedSink, FramedSource};

/// A file or stream format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One JSON object (or array of objects) per line.
    Ndjson,
    /// CSV with a header line.
    Csv,
    /// Apache Parquet (files only).
    Parquet,
}

impl FileFormat {
    /// The format a file name implies.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(FileFormat::Ndjson),
            "csv" => Some(FileFormat::Csv),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }

    fn rows(self) -> Option<RowFormat> {
        match self {
            FileFormat::Ndjson => Some(RowFormat::Ndjson),
            FileFormat::Csv => Some(RowFormat::Csv),
            FileFormat::Parquet => None,
        }
    }

    fn encoding(self) -> Encoding {
        match self {
            FileFormat::Ndjson => Encoding::Ndjson,
            FileFormat::Csv => Encoding::Csv,
            FileFormat::Parquet => Encoding::Columnar,
        }
    }
}

/// Where rows come from or go.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// A file.
    File {
        /// Its path.
        path: PathBuf,
        /// Its format.
        format: FileFormat,
    },
    /// stdin (as a source) or stdout (as a sink).
    Stdio {
        /// The format of the stream.
        format: FileFormat,
    },
    /// Listen on `HOST:PORT` for one connection sending length-framed rows.
    TcpListen {
        /// Address to bind.
        addr: String,
        /// Row format inside the frames.
        format: FileFormat,
    },
    /// Connect to `HOST:PORT` and send each output message as one frame.
    Tcp {
        /// Address to connect to.
        addr: String,
        /// Encoding of each frame.
        format: FileFormat,
    },
    /// The simulated Davis weather station.
    Generator {
        /// Rows to produce.
        rows: u64,
        /// Random seed.
        seed: u64,
        /// Rows a second (as fast as read when `None`).
        rate: Option<f64>,
        /// Stations whose rows interleave.
        stations: usize,
    },
    /// An MQTT topic (filter, for a source).
    Mqtt {
        /// The address.
        url: MqttUrl,
        /// Row format of the publishes.
        format: FileFormat,
    },
}

/// A spec that cannot be understood; nothing has been opened.
#[derive(Debug, Error, PartialEq)]
pub enum SpecError {
    /// Unknown scheme or malformed spec.
    #[error("'{spec}': {reason}")]
    Bad {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
}

fn bad(spec: &str, reason: impl Into<String>) -> SpecError {
    SpecError::Bad {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// Parse a spec. `format` overrides the format implied by a file extension and sets the
/// format of stdin/stdout and TCP streams (NDJSON when not given).
pub fn parse(spec: &str, format: Option<FileFormat>) -> Result<Endpoint, SpecError> {
    let spec_t = spec.trim();
    let stream_format = format.unwrap_or(FileFormat::Ndjson);
    if spec_t == "-" || spec_t == "file:-" {
        if stream_format == FileFormat::Parquet {
            return Err(bad(
                spec,
                "Parquet cannot be streamed through stdin/stdout; use a file",
            ));
        }
        return Ok(Endpoint::Stdio {
            format: stream_format,
        });
    }
    let addr = |rest: &str| -> Result<String, SpecError> {
        match rest.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(_)) => Ok(rest.to_string()),
            _ => Err(bad(spec, "expected HOST:PORT, e.g. 127.0.0.1:9000")),
        }
    };
    let tcp_format = || {
        if stream_format == FileFormat::Parquet {
            Err(bad(spec, "TCP frames carry NDJSON or CSV, not Parquet"))
        } else {
            Ok(stream_format)
        }
    };
    if let Some(rest) = spec_t.strip_prefix("tcp-listen:") {
        return Ok(Endpoint::TcpListen {
            addr: addr(rest)?,
            format: tcp_format()?,
        });
    }
    if let Some(rest) = spec_t.strip_prefix("tcp:") {
        return Ok(Endpoint::Tcp {
            addr: addr(rest)?,
            format: tcp_format()?,
        });
    }
    if let Some(rest) = spec_t.strip_prefix("generator:") {
        let (kind, query) = rest.split_once('?').unwrap_or((rest, ""));
        if kind != "davis" {
            return Err(bad(
                spec,
                "the only generator is 'davis' (generator:davis?rows=N&seed=S)",
            ));
        }
        let (mut rows, mut seed, mut rate, mut stations) = (None, 1u64, None, 1usize);
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(spec, format!("'{kv}' is not key=value")))?;
            let n = || -> Result<u64, SpecError> {
                v.parse()
                    .map_err(|_| bad(spec, format!("'{k}' needs a whole number, got '{v}'")))
            };
            match k {
                "rows" => rows = Some(n()?),
                "seed" => seed = n()?,
                "stations" => stations = n()?.clamp(1, 10_000) as usize,
                "rate" => {
                    let r: f64 = v
                        .parse()
                        .ok()
                        .filter(|r: &f64| r.is_finite() && *r > 0.0)
                        .ok_or_else(|| {
                            bad(spec, format!("rate is rows a second (> 0), got '{v}'"))
                        })?;
                    rate = Some(r);
                }
                _ => {
                    return Err(bad(
                        spec,
                        format!("unknown generator option '{k}' (rows, seed, rate, stations)"),
                    ))
                }
            }
        }
        // paced, it runs until stopped unless told how many rows
        let rows = rows.unwrap_or(if rate.is_some() { u64::MAX } else { 100_000 });
        return Ok(Endpoint::Generator {
            rows,
            seed,
            rate,
            stations,
        });
    }
    if spec_t.starts_with("mqtt://") || spec_t.starts_with("mqtts://") {
        let url = MqttUrl::parse(spec_t).map_err(|e| bad(spec, e))?;
        if stream_format == FileFormat::Parquet {
            return Err(bad(spec, "MQTT publishes carry NDJSON or CSV, not Parquet"));
        }
        return Ok(Endpoint::Mqtt {
            url,
            format: stream_format,
        });
    }
    let scheme = spec_t
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    let path = match (spec_t.strip_prefix("file:"), scheme) {
        (Some(p), _) => p,
        (None, Some(_)) => {
            return Err(bad(spec, "unknown scheme; use file:PATH, -, tcp-listen:HOST:PORT, tcp:HOST:PORT, mqtt://HOST:PORT/TOPIC or generator:davis"))
        }
        (None, None) => spec_t,
    };
    if path.is_empty() {
        return Err(bad(spec, "empty path"));
    }
    let path = PathBuf::from(path);
    let format = match format.or_else(|| FileFormat::from_path(&path)) {
        Some(f) => f,
        None => return Err(bad(spec, "cannot tell the format from the extension; use .ndjson/.jsonl, .csv or .parquet, or name the format (source_format or sink_format: ndjson, csv, parquet)")),
    };
    Ok(Endpoint::File { path, format })
}

/// Options of sources and sinks.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Largest TCP frame accepted, in bytes; a longer frame is refused (dead letter) unread.
    pub max_frame: usize,
    /// The run's stop signal (the same flag as the pipeline's): every source stops reading
    /// within a fraction of a second once it is set, a blocked read (stdin, a FIFO, a TCP
    /// accept, an MQTT wait) included.
    pub stop: Arc<AtomicBool>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            max_frame: 16 * 1024 * 1024,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Open a source (a listening TCP source binds here, before any data is read).
pub fn open_source(ep: &Endpoint, opts: SourceOptions) -> Result<Box<dyn Source>, IoError> {
    Ok(match ep {
        Endpoint::File { path, format } => match format.rows() {
            Some(rf) => {
                let f = std::fs::File::open(path)
                    .map_err(|e| IoError::io(format!("opening {}", path.display()), e))?;
                let regular = f.metadata().is_ok_and(|m| m.is_file());
                if regular {
                    Box::new(
                        LineSource::new(f, rf)
                            .with_max_row(opts.max_frame)
                            .with_stop(opts.stop.clone()),
                    )
                } else {
                    // a FIFO or a device may block in a read for ever: read it on a thread
                    let r = Interruptible::new(f, opts.stop.clone());
                    Box::new(
                        LineSource::new(r, rf)
                            .with_max_row(opts.max_frame)
                            .with_stop(opts.stop.clone()),
                    )
                }
            }
            None => Box::new(ParquetSource::open(path)?),
        },
        Endpoint::Stdio { format } => {
            let rf = format.rows().unwrap_or(RowFormat::Ndjson);
            let r = Interruptible::new(std::io::stdin(), opts.stop.clone());
            Box::new(
                LineSource::new(r, rf)
                    .with_max_row(opts.max_frame)
                    .with_stop(opts.stop.clone()),
            )
        }
        Endpoint::TcpListen { addr, format } => Box::new(FramedSource::bind_with(
            addr,
            format.rows().unwrap_or(RowFormat::Ndjson),
            opts.max_frame,
            crate::tcp::source::MAX_CONNECTIONS,
            opts.stop.clone(),
        )?),
        Endpoint::Tcp { addr, .. } => {
            return Err(IoError::Protocol(format!(
                "tcp:{addr} is a sink; a TCP source listens: tcp-listen:{addr}"
            )))
        }
        Endpoint::Generator {
            rows,
            seed,
            rate,
            stations,
        } => {
            let g = Box::new(DavisSource::stations(*seed, *rows, *stations));
            match rate {
                Some(r) => Box::new(crate::paced::Paced::new(g, *r, opts.stop.clone())),
                None => g,
            }
        }
        Endpoint::Mqtt { url, format } => Box::new(
            MqttSource::connect(
                url,
                format.rows().unwrap_or(RowFormat::Ndjson),
                opts.stop.clone(),
            )?
            .with_max_payload(opts.max_frame),
        ),
    })
}

/// Check every output file before any is created or truncated: each must be creatable or
/// writable where it is, no two may be the same file, and none may be the source's file. A
/// run refused here has touched nothing (a file that did not exist is created to try, then
/// removed).
pub fn check_outputs(source: &Endpoint, outputs: &[&Endpoint]) -> Result<(), IoError> {
    let same = |a: &std::path::Path, b: &std::path::Path| {
        a == b
            || matches!(
                (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                (Ok(x), Ok(y)) if x == y
            )
    };
    let mut seen: Vec<&std::path::Path> = Vec::new();
    if let Endpoint::File { path, .. } = source {
        seen.push(path);
    }
    for ep in outputs {
        let Endpoint::File { path, .. } = ep else {
            continue;
        };
        // a device (/dev/null, /dev/stdout) may be named as often as one likes
        let device = std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        if let Some(other) = seen.iter().find(|p| !device && same(p, path)) {
            return Err(IoError::Protocol(format!(
                "{} is named twice (as {} and as an output): it would be overwritten",
                path.display(),
                other.display()
            )));
        }
        seen.push(path);
        let what = |e| IoError::io(format!("cannot write {}", path.display()), e);
        if path.exists() {
            if path.is_dir() {
                return Err(IoError::Protocol(format!(
                    "{} is a directory, not a file",
                    path.display()
                )));
            }
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(what)?;
        } else {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(what)?;
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

/// Open a sink (a file is created, a TCP or MQTT sink connects).
pub fn open_sink(ep: &Endpoint, opts: &SourceOptions) -> Result<Box<dyn Sink>, IoError> {
    Ok(match ep {
        Endpoint::File {
            path,
            format: FileFormat::Parquet,
        } => Box::new(ParquetSink::create(path)?),
        Endpoint::File { path, format } => {
            let f = std::fs::File::create(path)
                .map_err(|e| IoError::io(format!("creating {}", path.display()), e))?;
            Box::new(WriterSink::new(f, format.encoding()))
        }
        Endpoint::Stdio { format } => {
            Box::new(WriterSink::new(std::io::stdout(), format.encoding()))
        }
        Endpoint::Tcp { addr, format } => Box::new(FramedSink::connect(addr, format.encoding())?),
        Endpoint::TcpListen { addr, .. } => {
            return Err(IoError::Protocol(format!(
                "tcp-listen:{addr} is a source; a TCP sink connects: tcp:{addr}"
            )))
        }
        Endpoint::Generator { .. } => {
            return Err(IoError::Protocol(
                "a generator is a source, not a sink".into(),
            ))
        }
        Endpoint::Mqtt { url, format } => {
            if *format == FileFormat::Csv {
                return Err(IoError::Protocol(
                    "the MQTT sink publishes JSON (a message as an array, or per=row)".into(),
                ));
            }
            Box::new(MqttSink::connect(url, opts.stop.clone())?)
        }
    })
}

/// Open a dead-letter output (NDJSON; `-` is stderr, so it never mixes with data on stdout).
pub fn open_dead_letter(ep: &Endpoint) -> Result<Box<dyn DeadLetterSink>, IoError> {
    Ok(match ep {
        Endpoint::File { path, .. } => {
            let f = std::fs::File::create(path)
                .map_err(|e| IoError::io(format!("creating {}", path.display()), e))?;
            Box::new(DeadLetterWriter::new(f))
        }
        Endpoint::Stdio { .. } => Box::new(DeadLetterWriter::new(std::io::stderr())),
        other => {
            return Err(IoError::Protocol(format!(
                "dead letters go to a file or '-', not {other:?}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            parse("file:a/b.csv", None),
            Ok(Endpoint::File {
                path: "a/b.csv".into(),
                format: FileFormat::Csv
            })
        );
        assert_eq!(
            parse("x.jsonl", None),
            Ok(Endpoint::File {
                path: "x.jsonl".into(),
                format: FileFormat::Ndjson
            })
        );
        assert_eq!(
            parse("-", None),
            Ok(Endpoint::Stdio {
                format: FileFormat::Ndjson
            })
        );
        assert_eq!(
            parse("tcp-listen:127.0.0.1:9000", Some(FileFormat::Csv)),
            Ok(Endpoint::TcpListen {
                addr: "127.0.0.1:9000".into(),
                format: FileFormat::Csv
            })
        );
        assert!(parse("file:x.txt", None).is_err());
        // No extension: the error names the flags that set the format, and they work.
        let e = parse("file:/dev/null", None)
            .expect_err("no extension")
            .to_string();
        assert!(
            e.contains("sink_format") && e.contains("source_format"),
            "{e}"
        );
        assert_eq!(
            parse("file:/dev/null", Some(FileFormat::Ndjson)),
            Ok(Endpoint::File {
                path: "/dev/null".into(),
                format: FileFormat::Ndjson
            })
        );
        assert!(parse("mqtt://h/t", None).is_ok());
        assert!(parse("mqtt://h", None).is_err());
        assert!(parse("nats://h/t", None).is_err());
        assert!(parse("tcp:nohost", None).is_err());
        assert_eq!(
            parse("generator:davis?rows=5&seed=2", None),
            Ok(Endpoint::Generator {
                rows: 5,
                seed: 2,
                rate: None,
                stations: 1
            })
        );
    }
}
