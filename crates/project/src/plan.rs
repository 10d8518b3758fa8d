//! From a spec to what runs: [`ProjectSpec::plan`] checks every field and resolves the
//! defaults into a [`Plan`] (the engine's configuration, the endpoints, the source options),
//! or says per field what is wrong and what would be right. Nothing is opened here.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use streamprep_connectors::{spec, Endpoint, FileFormat, SourceOptions};
use streamprep_engine::adaptive::Adaptive;
use streamprep_engine::{Backpressure, Method, Ordered, PipelineConfig};

use crate::spec::{
    declared_schema, parse_duration, BackpressureName, BufferSetting, MethodName, OrderedName,
    ProjectSpec,
};

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The field, as the spec names it (`buffer`, `source`, `schema.temp`).
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// Why a spec cannot run: one entry per field found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{}", .errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct SpecError {
    /// Every problem found.
    pub errors: Vec<FieldError>,
}

impl SpecError {
    /// One field's problem.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            errors: vec![FieldError {
                field: field.into(),
                message: message.into(),
            }],
        }
    }
}

/// A spec checked and resolved: everything needed to open the endpoints and run.
#[derive(Clone)]
pub struct Plan {
    /// The project's name (`name`, or the source when there is none).
    pub name: String,
    /// The engine's configuration; its `stop` is the run's one stop signal.
    pub config: PipelineConfig,
    /// Where rows come from.
    pub source: Endpoint,
    /// Where results go.
    pub sink: Endpoint,
    /// Where refused rows go.
    pub dead_letter: Endpoint,
    /// The sources' and sinks' options; `stop` is `config.stop`.
    pub options: SourceOptions,
    /// Replay steps `(rows a second, seconds)` for a file or stdin.
    pub rate: Option<Vec<(f64, f64)>>,
    /// The queue method's broker and whether its tasks are LZ4-compressed.
    pub queue: Option<(String, (bool, bool))>,
    /// Where the steps' per-key state is kept between runs (a chain that keeps state, with
    /// `state` or a file sink: the sink's path + `.state`); the host may keep it elsewhere.
    pub state_file: Option<std::path::PathBuf>,
    /// A step keeps state per key from message to message (windows, running scalers).
    pub keeps_state: bool,
    /// The spec names its own state file (`state`): a host keeps it there too.
    pub state_named: bool,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

/// The chain with the project's `key`, `key_ttl` and `max_keys` given to every step that keeps
/// state per key and does not name its own.
fn with_key(
    chain: Vec<String>,
    key: Option<&str>,
    ttl: Option<&str>,
    max_keys: Option<usize>,
) -> Vec<String> {
    let settings: Vec<(&str, serde_json::Value)> = [
        (
            "key",
            key.map(|k| k.trim())
                .filter(|k| !k.is_empty())
                .map(serde_json::Value::from),
        ),
        (
            "key_ttl",
            ttl.map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .map(serde_json::Value::from),
        ),
        ("max_keys", max_keys.map(serde_json::Value::from)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    if settings.is_empty() {
        return chain;
    }
    chain
        .into_iter()
        .map(
            |entry| match streamprep_ops::registry::split_entry(&entry) {
                Ok((name, mut options))
                    if streamprep_ops::registry::find(name)
                        .is_some_and(|s| s.keeps_state(&options)) =>
                {
                    for (k, v) in &settings {
                        options.entry(k.to_string()).or_insert_with(|| v.clone());
                    }
                    format!("{name}{}", serde_json::Value::Object(options))
                }
                _ => entry,
            },
        )
        .collect()
}

/// The steps of `chain` that keep state from message to message.
fn stateful(chain: &[String]) -> Vec<String> {
    chain
        .iter()
        .filter_map(|e| streamprep_ops::registry::split_entry(e).ok())
        .filter(|(name, options)| {
            streamprep_ops::registry::find(name).is_some_and(|s| s.keeps_state(options))
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The `processes` of each `exec` step of `chain` that gives them, without repeats.
fn exec_processes(chain: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    for entry in chain {
        if let Ok(("exec", options)) = streamprep_ops::registry::split_entry(entry) {
            if let Some(p) = options.get("processes").and_then(serde_json::Value::as_u64) {
                let p = p as usize;
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The default worker count of the pool: one a core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl ProjectSpec {
    /// Read a spec from TOML (the CLI's project file).
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        toml::from_str(text).map_err(|e| {
            let field = e
                .span()
                .and_then(|sp| field_at(text, sp.start))
                .unwrap_or_else(|| "project".into());
            SpecError::field(field, e.message().trim().to_string())
        })
    }

    /// Write the spec as TOML; [`ProjectSpec::from_toml`] reads it back equal.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Read a spec from JSON (the API's).
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        serde_json::from_str(text).map_err(|e| SpecError::field("project", e.to_string()))
    }

    /// Write the spec as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Read a project file.
    pub fn load(path: &std::path::Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SpecError::field(
                "project",
                format!("cannot read the project file {}: {e}", path.display()),
            )
        })?;
        Self::from_toml(&text).map_err(|mut e| {
            for f in &mut e.errors {
                f.message = format!("{} (in {})", f.message, path.display());
            }
            e
        })
    }

    /// Check every field and resolve the defaults, then check every output file (each must
    /// be creatable, none named twice; a file that did not exist is created to try and
    /// removed). Nothing is opened, created or truncated.
    pub fn plan(&self) -> Result<Plan, SpecError> {
        let plan = self.resolve()?;
        if let Err(e) = spec::check_outputs(&plan.source, &[&plan.sink]) {
            return Err(SpecError::field("sink", e.to_string()));
        }
        if let Err(e) = spec::check_outputs(&plan.source, &[&plan.sink, &plan.dead_letter]) {
            return Err(SpecError::field("dead_letter", e.to_string()));
        }
        Ok(plan)
    }

    /// Check every field and resolve the defaults, touching nothing outside (not even the
    /// output files: [`ProjectSpec::plan`] checks those too).
    pub fn resolve(&self) -> Result<Plan, SpecError> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.into(),
                message,
            })
        };
        // an endpoint is an address or a path: no markup, quotes or control characters
        for (field, v) in [
            ("source", &self.source),
            ("sink", &self.sink),
            ("dead_letter", &self.dead_letter),
            ("broker", &self.broker),
        ] {
            if let Some(c) = v
                .as_deref()
                .and_then(|v| v.chars().find(|c| "<>\"'`".contains(*c) || c.is_control()))
            {
                bad(
                    field,
                    format!(
                        "{c:?} is not allowed in an address or path (no quotes, angle brackets \
                         or control characters)"
                    ),
                );
            }
        }
        let source = match &self.source {
            None => {
                bad(
                    "source",
                    "missing: say where rows come from, e.g. file:weather.ndjson, -, \
                     tcp-listen:127.0.0.1:9000, mqtt://HOST:1883/TOPIC or generator:davis"
                        .into(),
                );
                None
            }
            Some(s) => spec::parse(s, self.source_format)
                .map_err(|e| bad("source", e.to_string()))
                .ok(),
        };
        let sink = match &self.sink {
            None => {
                bad(
                    "sink",
                    "missing: say where results go, e.g. file:out.ndjson, -, tcp:HOST:PORT or \
                     mqtt://HOST:1883/TOPIC"
                        .into(),
                );
                None
            }
            Some(s) => spec::parse(s, self.sink_format)
                .map_err(|e| bad("sink", e.to_string()))
                .ok(),
        };
        let dead_letter = spec::parse(
            self.dead_letter.as_deref().unwrap_or("-"),
            Some(FileFormat::Ndjson),
        )
        .map_err(|e| bad("dead_letter", e.to_string()))
        .ok();
        let chain = match &self.chain {
            Some(c) => with_key(
                c.steps(),
                self.key.as_deref(),
                self.key_ttl.as_deref(),
                self.max_keys,
            ),
            None => {
                bad(
                    "chain",
                    "missing: name the steps, e.g. [\"fillna_zeros\", \"normalizer\"] \
                     (`streamprep list` names them all)"
                        .into(),
                );
                Vec::new()
            }
        };
        let mut adaptive = None;
        let buffer = match &self.buffer {
            None => {
                bad(
                    "buffer",
                    "missing: give the rows a message (e.g. 100), or \"auto\"".into(),
                );
                1
            }
            Some(BufferSetting::Rows(n)) => *n,
            Some(BufferSetting::Word(w)) if w.trim() == "auto" => {
                let t = self.max_latency.as_deref().unwrap_or("100ms");
                match parse_duration(t) {
                    Ok(d) if d > Duration::ZERO => adaptive = Some(Adaptive::new(d)),
                    Ok(_) => bad("max_latency", "must be more than 0 (e.g. 100ms)".into()),
                    Err(e) => bad("max_latency", e),
                }
                1
            }
            Some(BufferSetting::Word(w)) => {
                bad(
                    "buffer",
                    format!("'{w}' is neither a number of rows nor 'auto' (e.g. 100, or \"auto\")"),
                );
                1
            }
        };
        if self.max_latency.is_some() && adaptive.is_none() && self.buffer.is_some() {
            if let Some(BufferSetting::Rows(_)) = self.buffer {
                bad(
                    "max_latency",
                    "is for buffer = \"auto\"; a fixed buffer has no latency target".into(),
                );
            }
        }
        // `exec`'s processes: one a worker, so `processes = N` is the pool's workers
        let processes = exec_processes(&chain);
        let method = match self.method.unwrap_or(MethodName::Inline) {
            _ if processes.len() > 1 => {
                bad(
                    "chain",
                    format!(
                        "exec steps ask for {processes:?} processes: exec runs one process a worker, so give them all the same processes"
                    ),
                );
                Method::Inline
            }
            MethodName::Pool if !processes.is_empty() => {
                let p = processes[0];
                match self.workers {
                    Some(w) if w != p => bad(
                        "chain",
                        format!(
                            "exec processes = {p} but workers = {w}: exec runs one process a worker; leave processes out or make them equal"
                        ),
                    ),
                    _ => {}
                }
                Method::Pool { workers: p }
            }
            MethodName::Inline if processes.iter().any(|p| *p > 1) => {
                bad(
                    "chain",
                    format!(
                        "exec processes = {} needs method = \"pool\" (exec runs one process a worker; inline has one)",
                        processes[0]
                    ),
                );
                Method::Inline
            }
            MethodName::Queue if processes.iter().any(|p| *p > 1) => {
                bad(
                    "chain",
                    "exec processes: with the queue method each `streamprep worker --concurrency N` runs N processes on its host; leave processes out".into(),
                );
                Method::Inline
            }
            MethodName::Inline => {
                if self.workers.is_some_and(|w| w > 1) {
                    bad(
                        "workers",
                        "needs method = \"pool\" (inline runs on the reading thread)".into(),
                    );
                }
                Method::Inline
            }
            MethodName::Pool => Method::Pool {
                workers: self.workers.unwrap_or_else(default_workers),
            },
            MethodName::Queue => {
                if self.workers.is_some() {
                    bad(
                        "workers",
                        "is for method = \"pool\"; queue workers are `streamprep worker` \
                         processes (--concurrency)"
                            .into(),
                    );
                }
                Method::Queue {
                    in_flight: self.in_flight.unwrap_or(64),
                }
            }
        };
        // a step that keeps state needs every message of a key on one chain, or (the queue
        // method) the key's state with each of its tasks, one message of a key at a time
        let keeps_state = stateful(&chain);
        let keyed = self.key.as_deref().is_some_and(|k| !k.trim().is_empty());
        let global = self.ordered == Some(OrderedName::Global);
        let spread = match method {
            Method::Inline | Method::Pool { workers: 1 } => false,
            Method::Pool { .. } => !keyed,
            Method::Queue { .. } => !keyed || global,
        };
        if !keeps_state.is_empty() && spread {
            bad(
                "method",
                format!(
                    "{} keep state from message to message: every row of a key must reach the same chain. {}",
                    keeps_state.join(", "),
                    if matches!(method, Method::Queue { .. }) && keyed {
                        "With ordered = \"global\" a message holds many keys, whose state cannot travel with one task: use ordered = \"key\" (the default) with the queue method"
                    } else {
                        "Give the project a key (the pool routes each key to one worker, the queue sends each key's state with its tasks), or use method = \"inline\""
                    }
                ),
            );
        }
        // steps that hold rows to the end of the stream (resample's open bins) end each
        // worker's chain with an end-of-stream message, which the queue does not carry yet
        if matches!(method, Method::Queue { .. })
            && streamprep_ops::registry::build_chain(&chain)
                .is_ok_and(|steps| steps.iter().any(|s| s.holds_rows()))
        {
            bad(
                "method",
                "a step of the chain (resample) holds rows until the end of the stream, which the queue method does not carry yet: use method = \"pool\" (with a key) or \"inline\"".into(),
            );
        }
        if self.in_flight.is_some() && !matches!(method, Method::Queue { .. }) {
            bad("in_flight", "is for method = \"queue\"".into());
        }
        let lz4 = match self.task_compression.as_deref() {
            None | Some("none") => (false, false),
            Some("lz4") => (true, false),
            Some("auto") => (false, true),
            Some(z) => {
                bad(
                    "task_compression",
                    format!("'{z}' is not \"none\", \"lz4\" or \"auto\""),
                );
                (false, false)
            }
        };
        let queue = match (&method, &self.broker) {
            (Method::Queue { .. }, Some(url)) => Some((url.clone(), lz4)),
            (Method::Queue { .. }, None) => {
                bad(
                    "broker",
                    "the queue method needs a Redis broker, redis://HOST:PORT, which \
                     `streamprep worker` processes serve"
                        .into(),
                );
                None
            }
            (_, Some(_)) => {
                bad("broker", "is for method = \"queue\"".into());
                None
            }
            (_, None) => None,
        };
        let schema = match &self.schema {
            Some(t) => declared_schema(t).map_err(|e| bad("schema", e)).ok(),
            None => None,
        };
        let max_wait = match &self.max_wait {
            Some(t) => match parse_duration(t) {
                Ok(d) if d > Duration::ZERO => Some(d),
                Ok(_) => {
                    bad("max_wait", "must be more than 0 (e.g. 50ms)".into());
                    None
                }
                Err(e) => {
                    bad("max_wait", e);
                    None
                }
            },
            // adaptive: a slow stream's message closes in time to keep the latency
            None => Some(match &adaptive {
                Some(a) => a.max_latency / 2,
                None => Duration::from_millis(50),
            }),
        };
        let csv_sep = match self.csv_sep.as_deref() {
            None => b',',
            Some("\\t" | "\t" | "tab") => b'\t',
            Some(s) if s.len() == 1 && s != "\"" && s != "\n" && s != "\r" => s.as_bytes()[0],
            Some(s) => {
                bad(
                    "csv_sep",
                    format!("'{s}': give one character such as ';', '|' or '\\t'"),
                );
                b','
            }
        };
        let rate = match &self.rate {
            Some(r) => r.steps().map_err(|e| bad("rate", e)).ok(),
            None => None,
        };
        if let Some(r) = self.arrival_rate {
            if !(r.is_finite() && r > 0.0) {
                bad(
                    "arrival_rate",
                    format!("{r}: give the rows a second expected, a positive number"),
                );
            }
        }
        let max_row = self.max_row.unwrap_or(SourceOptions::default().max_frame);
        if max_row == 0 {
            bad("max_row", "must be at least 1 byte".into());
        }

        let mut config = PipelineConfig::new(chain, buffer);
        config.method = method;
        config.schema = schema;
        config.compression = self.compression.unwrap_or_default();
        config.csv_sep = csv_sep;
        config.max_wait = max_wait;
        config.backpressure = match self.backpressure {
            Some(BackpressureName::DropOldest) => Backpressure::DropOldest,
            _ => Backpressure::Block,
        };
        config.adaptive = adaptive;
        config.key = self
            .key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        config.ordered = match self.ordered {
            Some(OrderedName::Global) => Ordered::Global,
            _ => Ordered::Key,
        };
        // the keyed buffer closes an idle key's message and bounds its waiting keys the same
        config.key_ttl = self
            .key_ttl
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .and_then(|t| parse_duration(t).ok());
        config.max_keys = self.max_keys.filter(|m| *m > 0);
        if self.ordered.is_some() && config.key.is_none() {
            bad(
                "ordered",
                "is for a keyed project: give the project a key (the column rows are gathered by)"
                    .into(),
            );
        }
        if self.chain.is_some() && self.buffer.is_some() {
            // the engine's own checks (steps, limits), named by field
            match config.check() {
                // the broker is connected when the run is launched
                Err(("broker", _)) if queue.is_some() => {}
                Err((field, message)) => bad(field, message),
                Ok(()) => {}
            }
        }
        let (Some(source), Some(sink), Some(dead_letter), true) =
            (source, sink, dead_letter, errors.is_empty())
        else {
            return Err(SpecError { errors });
        };
        let stop: Arc<AtomicBool> = config.stop.clone();
        let options = SourceOptions {
            max_frame: max_row,
            stop,
        };
        let name = self
            .name
            .clone()
            .or_else(|| self.source.clone())
            .unwrap_or_default();
        let state_file = if keeps_state.is_empty() {
            None
        } else {
            match self.state.as_deref().map(str::trim) {
                Some(p) if !p.is_empty() => Some(std::path::PathBuf::from(p)),
                _ => sink.file().map(|f| {
                    let mut p = f.as_os_str().to_owned();
                    p.push(".state");
                    std::path::PathBuf::from(p)
                }),
            }
        };
        Ok(Plan {
            name,
            config,
            source,
            sink,
            dead_letter,
            options,
            rate,
            queue,
            state_file,
            keeps_state: !keeps_state.is_empty(),
            state_named: self.state.as_deref().is_some_and(|s| !s.trim().is_empty()),
        })
    }
}

/// The top-level key of a TOML document whose value holds byte `at`.
fn field_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line = before.rsplit('\n').next().unwrap_or(before);
    let start = before.len() - line.len();
    let whole = text[start..].lines().next()?;
    let key = whole.split('=').next()?.trim();
    (!key.is_empty() && !key.starts_with('[') && key.len() < 64)
        .then(|| key.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
name = "weather"
description = "the paper's chain"
source = "tcp-listen:127.0.0.1:9000"
source_format = "csv"
chain = ["fillna_zeros", { step = "min_max_scaler", feature_range = [-1, 1] }, "drop_duplicates"]
buffer = 100
method = "pool"
workers = 2
sink = "-"
sink_format = "ndjson"
dead_letter = "-"
compression = "zlib-base64"
max_row = 1000
csv_sep = ";"
max_wait = "20ms"
backpressure = "drop_oldest"
rate = "200:1s,400:2s"

[schema]
ts = "string"
temp_out = "float64"
"#;

    #[test]
    fn a_spec_reads_and_writes_as_toml_and_json_unchanged() {
        let spec = ProjectSpec::from_toml(FULL).expect("reads");
        assert_eq!(spec.name.as_deref(), Some("weather"));
        let toml = spec.to_toml();
        assert_eq!(ProjectSpec::from_toml(&toml).expect("toml back"), spec);
        let json = spec.to_json();
        assert_eq!(ProjectSpec::from_json(&json).expect("json back"), spec);
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["buffer"], 100);
        assert_eq!(v["chain"][0], "fillna_zeros");
        assert_eq!(v["chain"][1]["step"], "min_max_scaler");
        assert_eq!(v["chain"][1]["feature_range"][0], -1);
        assert!(toml.contains("step = \"min_max_scaler\""), "{toml}");
        assert_eq!(
            spec.chain.as_ref().map(|c| c.steps()[1].clone()),
            Some(r#"min_max_scaler{"feature_range":[-1,1]}"#.to_string())
        );
        // on the command line, the options ride in the entry and commas inside stay there
        assert_eq!(
            crate::spec::split_chain(r#"abs, min_max_scaler{"feature_range": [-1, 1]},normalizer"#),
            [
                "abs",
                r#"min_max_scaler{"feature_range": [-1, 1]}"#,
                "normalizer"
            ]
        );
        assert_eq!(v["schema"]["temp_out"], "float64");
        // a comma-separated chain and a quoted buffer are read as the CLI always read them
        let short = ProjectSpec::from_toml("chain = \"abs, normalizer\"\nbuffer = \"auto\"")
            .expect("reads");
        assert_eq!(
            short.chain.map(|c| c.steps()),
            Some(vec!["abs".to_string(), "normalizer".to_string()])
        );
        assert_eq!(short.buffer, Some(BufferSetting::Word("auto".into())));
        // found by fuzzing: a buffer written as a string over i64 could not be written back
        assert!(ProjectSpec::from_toml("buffer = \"13070817209629016063\"").is_err());
        let plan = spec.resolve().expect("a good spec resolves");
        assert_eq!(plan.name, "weather");
        assert_eq!(plan.config.csv_sep, b';');
        assert_eq!(plan.options.max_frame, 1000);
        assert!(
            Arc::ptr_eq(&plan.options.stop, &plan.config.stop),
            "one stop signal"
        );
    }

    #[test]
    fn every_wrong_field_is_named_with_what_would_be_right() {
        let fields = |text: &str| -> Vec<String> {
            let e = ProjectSpec::from_toml(text)
                .expect("reads")
                .resolve()
                .expect_err("refused");
            e.errors.iter().map(|f| f.field.clone()).collect()
        };
        assert_eq!(fields(""), ["source", "sink", "chain", "buffer"]);
        let bad = r#"
source = "file:in.txt"
sink = "nats://x/y"
chain = ["abs", "nonsense"]
buffer = 10
method = "inline"
workers = 4
broker = "redis://127.0.0.1:1"
csv_sep = "ab"
max_wait = "soon"
rate = "fast"
task_compression = "zip"

[schema]
a = "complex"
"#;
        let e = ProjectSpec::from_toml(bad)
            .expect("reads")
            .resolve()
            .expect_err("refused");
        let got: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        for want in [
            "source",
            "sink",
            "workers",
            "broker",
            "csv_sep",
            "max_wait",
            "rate",
            "task_compression",
            "schema",
        ] {
            assert!(got.contains(&want), "{want} not named: {e}");
        }
        let text = e.to_string();
        assert!(text.contains("unknown type 'complex'"), "{text}");
        assert!(
            !text.contains("--"),
            "no CLI flag in a library error: {text}"
        );
        // a word the CLI's --buffer passes on
        let mut spec =
            ProjectSpec::from_toml("source = \"-\"\nsink = \"-\"\nchain = \"abs\"").expect("reads");
        spec.buffer = Some(BufferSetting::Word("lots".into()));
        let e = spec.resolve().expect_err("refused");
        assert_eq!(e.errors[0].field, "buffer");
        assert!(
            e.to_string().contains("'lots' is neither a number of rows"),
            "{e}"
        );
        // the chain is checked once the rest can run
        let e = ProjectSpec::from_toml(
            "source = \"-\"\nsink = \"-\"\nchain = [\"abs\", \"nonsense\"]\nbuffer = 10",
        )
        .expect("reads")
        .resolve()
        .expect_err("refused");
        assert_eq!(e.errors[0].field, "chain", "{e}");
        assert!(
            e.errors[0].message.contains("unknown step 'nonsense'"),
            "{e}"
        );
    }

    #[test]
    fn exec_processes_set_the_pools_workers_and_nothing_else() {
        let plan = |extra: &str| {
            ProjectSpec::from_toml(&format!(
                "source = \"-\"\nsink = \"-\"\nbuffer = 10\nchain = [{{ step = \"exec\", command = [\"cat\"], processes = 3 }}]\n{extra}"
            ))
            .expect("reads")
            .resolve()
        };
        let p = plan("method = \"pool\"").expect("pool");
        assert_eq!(p.config.method, Method::Pool { workers: 3 });
        assert!(plan("method = \"pool\"\nworkers = 3").is_ok());
        for (extra, says) in [
            (
                "method = \"pool\"\nworkers = 2",
                "processes = 3 but workers = 2",
            ),
            ("method = \"inline\"", "needs method = \"pool\""),
            (
                "method = \"queue\"\nbroker = \"redis://127.0.0.1:6379\"",
                "--concurrency",
            ),
        ] {
            let e = plan(extra).expect_err(extra);
            assert_eq!(e.errors[0].field, "chain", "{e}");
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }

    #[test]
    fn the_key_reaches_the_steps_that_keep_state_and_they_need_one_worker() {
        let plan = |extra: &str| {
            ProjectSpec::from_toml(&format!(
                "source = \"-\"\nsink = \"-\"\nbuffer = 10\nkey = \"station\"\nchain = [\"fillna_zeros\", {{ step = \"rolling\", window = 3 }}, {{ step = \"diff\", key = \"line\" }}]\n{extra}"
            ))
            .expect("reads")
            .resolve()
        };
        let p = plan("").expect("inline");
        assert_eq!(
            p.config.chain[0], "fillna_zeros",
            "a step without state is left alone"
        );
        assert!(
            p.config.chain[1].contains(r#""key":"station""#),
            "{:?}",
            p.config.chain
        );
        assert!(
            p.config.chain[2].contains(r#""key":"line""#),
            "a step's own key stays: {:?}",
            p.config.chain
        );
        assert!(plan("method = \"pool\"\nworkers = 1").is_ok());
        // with the key, the pool routes each key to one worker
        let p = plan("method = \"pool\"\nworkers = 2").expect("keyed pool");
        assert_eq!(p.config.key.as_deref(), Some("station"));
        // with the key, the queue sends each key's state with its tasks; ordered = "global"
        // (messages of many keys) cannot, and is refused
        assert!(plan("method = \"queue\"\nbroker = \"redis://127.0.0.1:1\"").is_ok());
        let e = plan("method = \"queue\"\nbroker = \"redis://127.0.0.1:1\"\nordered = \"global\"")
            .expect_err("queue, global");
        assert_eq!(e.errors[0].field, "method", "{e}");
        assert!(e.to_string().contains("rolling, diff keep state"), "{e}");
        assert!(e.to_string().contains("ordered = \"key\""), "{e}");
    }

    #[test]
    fn unknown_and_mistyped_keys_are_refused_by_name() {
        let e = ProjectSpec::from_toml("bufer = 10").expect_err("unknown key");
        assert_eq!(e.errors[0].field, "bufer", "{e}");
        assert!(e.errors[0].message.contains("unknown field"), "{e}");
        let e = ProjectSpec::from_toml("chain = 42").expect_err("a number is no chain");
        assert_eq!(e.errors[0].field, "chain", "{e}");
        assert!(
            e.errors[0].message.contains("give a list of step names"),
            "{e}"
        );
        let e = ProjectSpec::from_json(r#"{"buffer": 0}"#).expect_err("0 rows");
        assert!(e.to_string().contains("number of rows (1 or more)"), "{e}");
    }
}
