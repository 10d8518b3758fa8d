//! The one literal list of connectors: each scheme with what it is (source, sink), its syntax,
//! its options (name, type, default, doc) and the function that parses it. It drives
//! `spec::parse`, the checks before a run, `streamprep list`, and the UI's forms to come.
//! Adding a connector: a module with its `Source`/`Sink` and a [`Connector`] (how an endpoint
//! of its scheme opens), and one entry here.

use std::path::Path;
use std::sync::Arc;

use streamprep_core::{DeadLetterSink, IoError, Sink, Source};

use crate::spec::{FileFormat, SourceOptions};

/// One option of a connector (a `?key=value` of its spec, or a part of its address).
#[derive(Debug, Clone, Copy)]
pub struct OptionInfo {
    /// Its name.
    pub name: &'static str,
    /// Its type, as users read it (`integer`, `number`, `0 | 1`, `path`, ...).
    pub kind: &'static str,
    /// Its default, or `""` when it has none.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// An endpoint of one scheme, parsed: how it opens.
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// Open it as a source of `format` rows (a listening source binds here).
    fn open_source(
        &self,
        format: FileFormat,
        opts: SourceOptions,
    ) -> Result<Box<dyn Source>, IoError> {
        let _ = (format, opts);
        Err(IoError::Protocol(format!("{self:?} is not a source")))
    }

    /// Open it as a sink of `format` (a file is created, a TCP or MQTT sink connects).
    fn open_sink(
        &self,
        format: FileFormat,
        opts: &SourceOptions,
    ) -> Result<Box<dyn Sink>, IoError> {
        let _ = (format, opts);
        Err(IoError::Protocol(format!("{self:?} is not a sink")))
    }

    /// Open it as the dead-letter output (NDJSON).
    fn open_dead_letter(&self) -> Result<Box<dyn DeadLetterSink>, IoError> {
        Err(IoError::Protocol(format!(
            "dead letters go to a file or '-', not {self:?}"
        )))
    }

    /// The file it names, if any (checked before any output file is created).
    fn file(&self) -> Option<&Path> {
        None
    }

    /// A line for the log once it is open as a source (`listening on ...`).
    fn opened(&self) -> Option<String> {
        None
    }
}

/// Parses the part of a spec after its prefix, with the format given (if any); returns the
/// endpoint and the format it carries.
pub type ParseFn =
    fn(rest: &str, format: Option<FileFormat>) -> Result<(Arc<dyn Connector>, FileFormat), String>;

/// One registry entry.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorInfo {
    /// Its name (`file`, `tcp-listen`, `mqtt`).
    pub scheme: &'static str,
    /// The prefixes that select it (`tcp-listen:`; `mqtt://` and `mqtts://`).
    pub prefixes: &'static [&'static str],
    /// How a spec of it reads.
    pub syntax: &'static str,
    /// One line: what it is.
    pub summary: &'static str,
    /// Usable as a source.
    pub source: bool,
    /// Usable as a sink.
    pub sink: bool,
    /// Its options.
    pub options: &'static [OptionInfo],
    /// Its parser.
    pub parse: ParseFn,
}

const FORMAT: OptionInfo = OptionInfo {
    name: "format",
    kind: "ndjson | csv",
    default: "ndjson",
    doc: "the rows' format (source_format / sink_format)",
};

/// Every connector streamprep knows, in the order `streamprep list` shows them.
pub const CONNECTORS: &[ConnectorInfo] = &[
    ConnectorInfo {
        scheme: "file",
        prefixes: &["file:"],
        syntax: "file:PATH (or a bare PATH)",
        summary: "a file: NDJSON (.ndjson, .jsonl), CSV (.csv) or Parquet (.parquet), read as a stream; a FIFO is read like stdin",
        source: true,
        sink: true,
        options: &[OptionInfo { name: "format", kind: "ndjson | csv | parquet", default: "from the extension", doc: "the file's format when its extension does not tell (source_format / sink_format)" }],
        parse: crate::file::endpoint::parse_file,
    },
    ConnectorInfo {
        scheme: "stdio",
        prefixes: &["-"],
        syntax: "-",
        summary: "stdin as a source, stdout as a sink (dead letters: stderr)",
        source: true,
        sink: true,
        options: &[FORMAT],
        parse: crate::file::endpoint::parse_stdio,
    },
    ConnectorInfo {
        scheme: "tcp-listen",
        prefixes: &["tcp-listen:"],
        syntax: "tcp-listen:HOST:PORT",
        summary: "length-framed TCP: listen, read every connection (each in order; 256 at most)",
        source: true,
        sink: false,
        options: &[FORMAT],
        parse: crate::tcp::endpoint::parse_listen,
    },
    ConnectorInfo {
        scheme: "tcp",
        prefixes: &["tcp:"],
        syntax: "tcp:HOST:PORT",
        summary: "length-framed TCP: connect and send each message as one frame, then a lone 0x04",
        source: false,
        sink: true,
        options: &[FORMAT],
        parse: crate::tcp::endpoint::parse_connect,
    },
    ConnectorInfo {
        scheme: "generator",
        prefixes: &["generator:"],
        syntax: "generator:davis?rows=N&seed=S&rate=R&stations=K",
        summary: "the simulated Davis weather station (paced and live with rate)",
        source: true,
        sink: false,
        options: &[
            OptionInfo { name: "rows", kind: "integer", default: "100000 (unbounded with rate)", doc: "rows to produce" },
            OptionInfo { name: "seed", kind: "integer", default: "1", doc: "random seed" },
            OptionInfo { name: "rate", kind: "number > 0", default: "", doc: "rows a second (as fast as read without it)" },
            OptionInfo { name: "stations", kind: "integer 1..10000", default: "1", doc: "stations whose rows interleave" },
        ],
        parse: crate::generator::endpoint::parse,
    },
    ConnectorInfo {
        scheme: "mqtt",
        prefixes: &["mqtt://", "mqtts://"],
        syntax: "mqtt[s]://[USER:PASS@]HOST:PORT/TOPIC[?qos=1&...]",
        summary: "an MQTT topic (a filter with + and # as a source), acknowledged after the sinks hold the rows",
        source: true,
        sink: true,
        options: &[
            OptionInfo { name: "qos", kind: "0 | 1", default: "0", doc: "quality of service of the subscription or the publishes" },
            OptionInfo { name: "client_id", kind: "string", default: "derived from the topic", doc: "the client id (the same id keeps the broker session)" },
            OptionInfo { name: "keep_alive", kind: "seconds", default: "30", doc: "MQTT keep-alive" },
            OptionInfo { name: "per", kind: "message | row", default: "message", doc: "sink: a message as one JSON array, or each row" },
            OptionInfo { name: "header", kind: "string", default: "", doc: "sink: a CSV header line sent first" },
            OptionInfo { name: "ca", kind: "path", default: "the system's roots", doc: "mqtts: the CA certificate (PEM)" },
            OptionInfo { name: "cert", kind: "path", default: "", doc: "mqtts: the client certificate (PEM)" },
            OptionInfo { name: "key", kind: "path", default: "", doc: "mqtts: the client key (PEM)" },
            FORMAT,
        ],
        parse: crate::mqtt::endpoint::parse,
    },
    ConnectorInfo {
        scheme: "postgres",
        prefixes: &["postgres://", "postgresql://"],
        syntax: "postgres://USER[:PASS]@HOST:PORT/DB?table=NAME[&time_column=ts&from=...&to=...] (or ?query=SELECT...)",
        summary: "PostgreSQL: a sink writing each message by binary COPY in one transaction (table created, a row delivered again written once); a source reading a table's time range or a query by binary COPY, a batch at a time, cancelled on the server at a stop",
        source: true,
        sink: true,
        options: &[
            OptionInfo { name: "table", kind: "name or schema.name", default: "", doc: "the table written (sink) or read (source)" },
            OptionInfo { name: "time_column", kind: "column", default: "", doc: "source: the column rows are ordered, ranged and followed by" },
            OptionInfo { name: "from", kind: "time", default: "", doc: "source: the first time read (inclusive), e.g. 2026-01-01T00:00:00Z" },
            OptionInfo { name: "to", kind: "time", default: "", doc: "source: the time the range ends before" },
            OptionInfo { name: "query", kind: "SELECT (URL-encoded)", default: "", doc: "source: a query instead of a table" },
            OptionInfo { name: "follow", kind: "0 | 1", default: "0", doc: "source: after the range, read newer rows (by time_column) every second" },
            OptionInfo { name: "dedupe", kind: "row | none", default: "row", doc: "sink: a row delivered again (after a restart) is written once (a hash of its values is the key); none: every row, straight" },
        ],
        parse: crate::postgres::endpoint::parse,
    },
];

/// The entry whose prefix opens `spec`, and the rest after it (a spec without a known
/// prefix is a file path).
pub fn lookup(spec: &str) -> Option<(&'static ConnectorInfo, &str)> {
    if spec == "-" || spec == "file:-" {
        return CONNECTORS
            .iter()
            .find(|c| c.scheme == "stdio")
            .map(|c| (c, ""));
    }
    CONNECTORS.iter().find_map(|c| {
        c.prefixes.iter().filter(|p| **p != "-").find_map(|p| {
            spec.strip_prefix(p).map(|rest| {
                (
                    c,
                    if matches!(c.scheme, "mqtt" | "postgres") {
                        spec
                    } else {
                        rest
                    },
                )
            })
        })
    })
}

/// The entry of a scheme.
pub fn find(scheme: &str) -> Option<&'static ConnectorInfo> {
    CONNECTORS.iter().find(|c| c.scheme == scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_unique_documented_and_select_their_entry() {
        let mut seen = std::collections::HashSet::new();
        for c in CONNECTORS {
            assert!(seen.insert(c.scheme), "duplicate {}", c.scheme);
            assert!(!c.summary.is_empty() && !c.syntax.is_empty());
            assert!(c.source || c.sink, "{} is neither", c.scheme);
            for o in c.options {
                assert!(!o.doc.is_empty(), "{}.{}", c.scheme, o.name);
            }
            for p in c.prefixes {
                let spec = format!("{p}x");
                let spec = if *p == "-" { "-".to_string() } else { spec };
                assert_eq!(
                    lookup(&spec).map(|(e, _)| e.scheme),
                    Some(c.scheme),
                    "{spec}"
                );
            }
        }
        // the longer prefix wins: tcp-listen: is not tcp:
        assert_eq!(
            lookup("tcp-listen:h:1").map(|(c, _)| c.scheme),
            Some("tcp-listen")
        );
        assert!(lookup("out.ndjson").is_none());
    }
}
