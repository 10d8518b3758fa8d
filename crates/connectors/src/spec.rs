//! Endpoint specs as users write them: `file:PATH` (format from the extension), `-` for
//! stdin/stdout, `tcp-listen:HOST:PORT` (framed TCP source), `tcp:HOST:PORT` (framed TCP sink),
//! `generator:davis?rows=N&seed=S&rate=R&stations=K`, `mqtt://HOST:PORT/TOPIC?qos=1`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use streamprep_core::{DeadLetterSink, Encoding, IoError, RowFormat, Sink, Source};
use thiserror::Error;

use crate::registry::{lookup, Connector, CONNECTORS};

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

    /// The row format of a text format (`None` for Parquet).
    pub fn rows(self) -> Option<RowFormat> {
        match self {
            FileFormat::Ndjson => Some(RowFormat::Ndjson),
            FileFormat::Csv => Some(RowFormat::Csv),
            FileFormat::Parquet => None,
        }
    }

    /// What the `result` step encodes for a sink of this format.
    pub fn encoding(self) -> Encoding {
        match self {
            FileFormat::Ndjson => Encoding::Ndjson,
            FileFormat::Csv => Encoding::Csv,
            FileFormat::Parquet => Encoding::Columnar,
        }
    }
}

/// Where rows come from or go: a spec parsed by its connector (see [`crate::registry`]).
#[derive(Debug, Clone)]
pub struct Endpoint {
    scheme: &'static str,
    format: FileFormat,
    connector: Arc<dyn Connector>,
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.scheme == other.scheme
            && self.format == other.format
            && format!("{:?}", self.connector) == format!("{:?}", other.connector)
    }
}

impl Endpoint {
    /// The connector's scheme (`file`, `stdio`, `tcp-listen`, `tcp`, `generator`, `mqtt`).
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The format of its rows.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The file it names, if any.
    pub fn file(&self) -> Option<&Path> {
        self.connector.file()
    }

    /// A line for the log once it is open as a source (`listening on ...`).
    pub fn opened(&self) -> Option<String> {
        self.connector.opened()
    }

    /// The parsed endpoint, to look into (`downcast` through `Debug` is all tests need).
    pub fn connector(&self) -> &dyn Connector {
        self.connector.as_ref()
    }
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
/// format of stdin/stdout and TCP streams (NDJSON when not given). The connector is chosen by
/// the spec's prefix from the registry; a spec with no known prefix is a file path.
pub fn parse(spec: &str, format: Option<FileFormat>) -> Result<Endpoint, SpecError> {
    let spec_t = spec.trim();
    let (info, rest) = match lookup(spec_t) {
        Some(found) => found,
        None => {
            let scheme = spec_t.split_once(':').map(|(s, _)| s).filter(|s| {
                s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if scheme.is_some() {
                let known: Vec<&str> = CONNECTORS.iter().map(|c| c.syntax).collect();
                return Err(bad(
                    spec,
                    format!("unknown scheme; use {}", known.join(", ")),
                ));
            }
            let file = CONNECTORS
                .iter()
                .find(|c| c.scheme == "file")
                .ok_or_else(|| bad(spec, "no file connector"))?;
            (file, spec_t)
        }
    };
    let (connector, format) = (info.parse)(rest, format).map_err(|r| bad(spec, r))?;
    Ok(Endpoint {
        scheme: info.scheme,
        format,
        connector,
    })
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
    ep.connector.open_source(ep.format, opts)
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
    if let Some(path) = source.file() {
        seen.push(path);
    }
    for ep in outputs {
        let Some(path) = ep.file() else {
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
    ep.connector.open_sink(ep.format, opts)
}

/// Open a dead-letter output (NDJSON; `-` is stderr, so it never mixes with data on stdout).
pub fn open_dead_letter(ep: &Endpoint) -> Result<Box<dyn DeadLetterSink>, IoError> {
    ep.connector.open_dead_letter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(spec: &str, format: Option<FileFormat>) -> (String, FileFormat, String) {
        let e = parse(spec, format).expect(spec);
        (
            e.scheme().to_string(),
            e.format(),
            format!("{:?}", e.connector()),
        )
    }

    #[test]
    fn specs_parse() {
        let (scheme, format, what) = said("file:a/b.csv", None);
        assert_eq!((scheme.as_str(), format), ("file", FileFormat::Csv));
        assert!(what.contains("a/b.csv"), "{what}");
        assert_eq!(
            parse("x.jsonl", None).expect("x").file(),
            Some(Path::new("x.jsonl"))
        );
        assert_eq!(said("-", None).0, "stdio");
        assert_eq!(said("file:-", Some(FileFormat::Csv)).1, FileFormat::Csv);
        let (scheme, format, what) = said("tcp-listen:127.0.0.1:9000", Some(FileFormat::Csv));
        assert_eq!((scheme.as_str(), format), ("tcp-listen", FileFormat::Csv));
        assert!(what.contains("127.0.0.1:9000"), "{what}");
        assert!(parse("file:x.txt", None).is_err());
        // No extension: the error names the settings that set the format, and they work.
        let e = parse("file:/dev/null", None)
            .expect_err("no extension")
            .to_string();
        assert!(
            e.contains("sink_format") && e.contains("source_format"),
            "{e}"
        );
        assert_eq!(
            said("file:/dev/null", Some(FileFormat::Ndjson)).1,
            FileFormat::Ndjson
        );
        assert!(parse("mqtt://h/t", None).is_ok());
        assert!(parse("mqtt://h", None).is_err());
        let e = parse("nats://h/t", None).expect_err("unknown").to_string();
        assert!(
            e.contains("unknown scheme") && e.contains("tcp-listen:HOST:PORT"),
            "{e}"
        );
        assert!(parse("tcp:nohost", None).is_err());
        assert!(parse("-", Some(FileFormat::Parquet)).is_err());
        let g = parse("generator:davis?rows=5&seed=2", None).expect("generator");
        assert_eq!(g.scheme(), "generator");
        assert_eq!(
            format!("{:?}", g.connector()),
            format!(
                "{:?}",
                crate::generator::endpoint::GeneratorEndpoint {
                    rows: 5,
                    seed: 2,
                    rate: None,
                    stations: 1
                }
            )
        );
        assert!(parse("generator:davis?speed=3", None)
            .expect_err("unknown option")
            .to_string()
            .contains("rows, seed, rate, stations"));
    }
}
