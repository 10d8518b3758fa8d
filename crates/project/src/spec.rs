//! The project spec: everything a pipeline is (source, chain, buffer, method, sinks, runtime
//! knobs), one typed struct read and written as TOML (the CLI's project file) and JSON (the
//! API), and [`ProjectSpec::plan`], which checks every field and says, per field, what is
//! wrong and what would be right.
//!
//! ```toml
//! name = "weather"                 # optional: names the run in logs and metrics
//! source = "file:weather.ndjson"   # or "-", "tcp-listen:127.0.0.1:9000", "generator:davis?rows=1000", "mqtt://HOST:PORT/TOPIC?qos=1"
//! source_format = "ndjson"         # for stdin, TCP and MQTT (files: from the extension)
//! chain = ["fillna_zeros", "normalizer", "drop_duplicates"]
//! buffer = 100                     # rows a message, or "auto" (with max_latency)
//! method = "pool"                  # or "inline", or "queue" (with broker = "redis://...")
//! workers = 2
//! sink = "file:out.ndjson"
//! dead_letter = "file:dead.ndjson" # default: stderr
//! compression = "none"             # or "zlib-base64" (each row base64(zlib(text)))
//! max_row = 16777216               # largest row (line, TCP frame, MQTT publish), bytes
//! csv_sep = ";"                    # CSV field separator (pandas' sep), default ","
//!
//! [schema]                         # optional: declared instead of inferred from the first rows
//! ts = "string"
//! temp_out = "float64"
//! hum_out = "int64"
//! ```

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use streamprep_connectors::FileFormat;
use streamprep_ops::prepare::Compression;

/// Where the chain runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    /// In the thread that reads the source.
    Inline,
    /// On a pool of worker threads.
    Pool,
    /// As tasks through Redis to `streamprep worker` processes.
    Queue,
}

/// A chain is a list, or one comma-separated string. A list's entry is a step name, or a
/// table with the step and its options:
/// `["fillna_zeros", { step = "min_max_scaler", feature_range = [-1, 1] }]`. Inside, an entry
/// with options is kept as `name{"option": value}` (JSON), the form the engine, the queue's
/// wire and `--chain` take.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub enum ChainSpec {
    /// `["abs", "normalizer"]`
    List(Vec<String>),
    /// `"abs,normalizer"`
    Text(String),
}

impl TryFrom<toml::Value> for ChainSpec {
    type Error = String;

    fn try_from(v: toml::Value) -> Result<Self, String> {
        let bad = |v: &toml::Value| {
            format!(
                "chain = {v}: give a list of step names (or tables with options), [\"fillna_zeros\", {{ step = \"min_max_scaler\", \
                 feature_range = [-1, 1] }}], or one string, \"fillna_zeros,normalizer\" \
                 (`streamprep list` names them and their options)"
            )
        };
        match v {
            toml::Value::String(s) => Ok(ChainSpec::Text(s)),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Table(t) => {
                        let Some(toml::Value::String(step)) = t.get("step") else {
                            return Err(format!(
                                "chain entry {i}: a table names its step, {{ step = \"min_max_scaler\", feature_range = [-1, 1] }}"
                            ));
                        };
                        let mut options = serde_json::Map::new();
                        for (k, v) in t.iter().filter(|(k, _)| k.as_str() != "step") {
                            let v = serde_json::to_value(v).map_err(|e| e.to_string())?;
                            options.insert(k.clone(), v);
                        }
                        Ok(if options.is_empty() {
                            step.clone()
                        } else {
                            format!("{step}{}", serde_json::Value::Object(options))
                        })
                    }
                    other => Err(bad(other)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(ChainSpec::List),
            other => Err(bad(&other)),
        }
    }
}

impl Serialize for ChainSpec {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Entry<'a>(&'a str);
        impl Serialize for Entry<'_> {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                match streamprep_ops::registry::split_entry(self.0) {
                    Ok((name, options)) if !options.is_empty() => {
                        let mut m = ser.serialize_map(Some(options.len() + 1))?;
                        m.serialize_entry("step", name)?;
                        for (k, v) in &options {
                            m.serialize_entry(k, v)?;
                        }
                        m.end()
                    }
                    _ => ser.serialize_str(self.0),
                }
            }
        }
        let steps = self.steps();
        let mut seq = ser.serialize_seq(Some(steps.len()))?;
        for s in &steps {
            seq.serialize_element(&Entry(s))?;
        }
        seq.end()
    }
}

impl ChainSpec {
    /// The entries, in order.
    pub fn steps(&self) -> Vec<String> {
        match self {
            ChainSpec::List(v) => v.clone(),
            ChainSpec::Text(s) => split_chain(s),
        }
    }
}

/// `a, b{"x": [1, 2]},c` -> `["a", "b{\"x\": [1, 2]}", "c"]`: split at the commas outside
/// an entry's options.
pub fn split_chain(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut start, mut quoted) = (0i32, 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' | '[' if !quoted => depth += 1,
            '}' | ']' if !quoted => depth -= 1,
            ',' if depth <= 0 && !quoted => {
                out.push(s[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim().to_string());
    out.retain(|x| !x.is_empty());
    out
}

/// Everything a project says; every field may be left out where a default exists (and
/// `source`, `chain`, `buffer` and `sink`, which have none, may come from elsewhere, such as
/// the CLI's flags, before [`ProjectSpec::plan`]). Unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    /// The project's name: names its runs in logs and metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the project is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where rows come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Format of a stdin or TCP source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_format: Option<FileFormat>,
    /// The steps, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainSpec>,
    /// Buffering factor: rows a message, or "auto".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<BufferSetting>,
    /// With `buffer = "auto"`: the latency a row should stay under ("50ms").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<String>,
    /// `inline` or `pool`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<MethodName>,
    /// Worker threads of the pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// The queue method's Redis (`redis://HOST:PORT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// The queue method: messages sent and not yet delivered, at most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    /// The queue method's task and result compression: "none", "lz4", or "auto" (LZ4 once the
    /// workers turn out to be 1 ms or more from Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_compression: Option<String>,
    /// Where results go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// Format of a stdout or TCP sink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink_format: Option<FileFormat>,
    /// Where refused rows go (default: stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    /// How rows are wrapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Largest row accepted (a line, a TCP frame, an MQTT publish), in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(alias = "max_frame")]
    pub max_row: Option<usize>,
    /// The CSV field separator of the source (pandas' `sep`): ";", "\t", "|".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv_sep: Option<String>,
    /// A live source's message closes when its oldest row has waited this long ("50ms").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
    /// `block` or `drop_oldest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backpressure: Option<BackpressureName>,
    /// Replay a file or stdin at this many rows a second, or in steps ("20000:10s,200000:10s").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateSetting>,
    /// The column whose value a row's state belongs to (`station`): the steps that keep state
    /// (`rolling`, `ewm_mean`, `diff`) keep it per value of this column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A key with no row for this long ("5m") has its state dropped (counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ttl: Option<String>,
    /// Beyond this many keys, the least recently seen key's state is dropped (counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<usize>,
    /// With a key: `key` (default) gathers messages per key, each key's rows in order;
    /// `global` cuts messages from the stream and keeps its order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered: Option<OrderedName>,
    /// A file that keeps the steps' per-key state (running scalers, windows) from one run to
    /// the next (default: beside a file sink, its path + `.state`; `serve` keeps it in its
    /// store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The rows a second the project is expected to take (the paper's arrival rate): the
    /// planner judges the buffer, method and workers against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival_rate: Option<f64>,
    /// Declared schema: column name -> type, in column order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<toml::Table>,
}

/// `buffer = 100`, `buffer = "100"` or `buffer = "auto"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "toml::Value", untagged)]
pub enum BufferSetting {
    /// Rows a message.
    Rows(usize),
    /// "auto" (anything else is refused when the run starts).
    Word(String),
}

impl TryFrom<toml::Value> for BufferSetting {
    type Error = String;

    fn try_from(v: toml::Value) -> Result<Self, String> {
        let bad = |v: &dyn std::fmt::Display| {
            format!("buffer = {v}: give a number of rows (1 or more), or \"auto\"")
        };
        match v {
            toml::Value::Integer(n) => usize::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .map(BufferSetting::Rows)
                .ok_or_else(|| bad(&n)),
            toml::Value::String(s) => match s.trim().parse::<usize>() {
                // a TOML integer is an i64: a larger number would not be written back
                Ok(n) if n >= 1 && i64::try_from(n).is_ok() => Ok(BufferSetting::Rows(n)),
                _ if s.trim() == "auto" => Ok(BufferSetting::Word(s)),
                _ => Err(bad(&format!("{s:?}"))),
            },
            other => Err(bad(&other)),
        }
    }
}

/// `rate = 20000` or `rate = "20000:10s,200000:10s"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RateSetting {
    /// Rows a second.
    Rows(f64),
    /// Steps of `RATE:DURATION`, comma-separated; the last rate goes on.
    Steps(String),
}

impl RateSetting {
    /// `(rows a second, seconds)` steps.
    pub fn steps(&self) -> Result<Vec<(f64, f64)>, String> {
        let steps = match self {
            RateSetting::Rows(r) => vec![(*r, f64::INFINITY)],
            RateSetting::Steps(s) => s
                .split(',')
                .map(|step| {
                    let (r, d) = match step.split_once(':') {
                        Some((r, d)) => (r, Some(d)),
                        None => (step, None),
                    };
                    let rate: f64 = r
                        .trim()
                        .parse()
                        .map_err(|_| format!("'{r}' is not a number of rows a second"))?;
                    let secs = match d {
                        Some(d) => parse_duration(d.trim())?.as_secs_f64(),
                        None => f64::INFINITY,
                    };
                    Ok((rate, secs))
                })
                .collect::<Result<Vec<_>, String>>()?,
        };
        for &(r, _) in &steps {
            if !(r.is_finite() && r > 0.0) {
                return Err(
                    "give rows a second (a positive number), or steps like 20000:10s,200000:10s"
                        .into(),
                );
            }
        }
        Ok(steps)
    }
}

/// What a saturated pipeline does, as users write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackpressureName {
    /// Stop reading the source until the chain catches up (nothing lost).
    Block,
    /// Shed the oldest waiting message and count its rows.
    #[serde(alias = "drop-oldest")]
    DropOldest,
}

/// The order a keyed run's rows leave in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderedName {
    /// Messages per key; each key's rows in input order.
    Key,
    /// Messages cut from the stream; the stream's order.
    Global,
}

pub use streamprep_core::parse_duration;

/// A declared schema from `[schema]`.
pub fn declared_schema(table: &toml::Table) -> Result<SchemaRef, String> {
    let mut fields = Vec::new();
    for (name, t) in table {
        let Some(t) = t.as_str() else {
            return Err(format!(
                "{name}: the type must be a string such as \"float64\""
            ));
        };
        let dt = match t.to_ascii_lowercase().as_str() {
            "float64" | "float" | "double" | "f64" => DataType::Float64,
            "float32" | "f32" => DataType::Float32,
            "int64" | "int" | "integer" | "i64" => DataType::Int64,
            "int32" | "i32" => DataType::Int32,
            "string" | "str" | "utf8" | "text" => DataType::Utf8,
            "bool" | "boolean" => DataType::Boolean,
            other => {
                return Err(format!(
                    "{name}: unknown type '{other}' (float64, float32, int64, int32, string, bool)"
                ))
            }
        };
        fields.push(Field::new(name, dt, true));
    }
    if fields.is_empty() {
        return Err("it is empty; leave it out to infer the schema from the first rows".into());
    }
    Ok(Arc::new(Schema::new(fields)))
}
