//! The one explicit list of steps. It drives chain parsing, `streamprep list`, and the test
//! that every step is documented and unique.

use streamprep_core::Step;
use thiserror::Error;

use crate::*;

/// How a registry entry is used.
#[derive(Clone, Copy)]
pub enum StepKind {
    /// `prepare` or `result`: implied at the ends of every chain, built by the engine.
    Boundary,
    /// A transform step, built fresh for each chain instance.
    Transform(fn() -> Box<dyn Step>),
    /// A transform step that takes options (declared in [`StepInfo::options`]), built from
    /// them; an error says which value cannot work.
    WithOptions(fn(&Options) -> Result<Box<dyn Step>, String>),
}

/// The type of a step option.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptionKind {
    /// Two numbers, `[low, high]`.
    Range,
    /// A whole number of at least this.
    Integer {
        /// The smallest allowed.
        min: i64,
    },
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A non-empty list of strings (a command and its arguments).
    Strings,
    /// A string.
    Text,
    /// A number.
    Number,
}

impl OptionKind {
    /// The type as users read it (`[low, high]`, `integer >= 1`, `uniform | normal`).
    pub fn describe(&self) -> String {
        match self {
            OptionKind::Range => "[low, high]".into(),
            OptionKind::Integer { min } => format!("integer >= {min}"),
            OptionKind::Choice(words) => words.join(" | "),
            OptionKind::Strings => "[strings]".into(),
            OptionKind::Text => "text".into(),
            OptionKind::Number => "number".into(),
        }
    }
}

/// One option a step takes.
#[derive(Debug, Clone, Copy)]
pub struct OptionInfo {
    /// Its name in a chain entry (`feature_range`).
    pub name: &'static str,
    /// Its type.
    pub kind: OptionKind,
    /// Its default, as JSON (`[0, 1]`).
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// A step's options, checked against its declaration, defaults filled in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    values: serde_json::Map<String, serde_json::Value>,
}

impl Options {
    /// Options as given (unchecked; for tests and the steps' own helpers).
    pub fn from_map(values: serde_json::Map<String, serde_json::Value>) -> Self {
        Options { values }
    }

    /// A range option (checked: two numbers).
    pub fn range(&self, name: &str) -> (f64, f64) {
        let v = self.values.get(name).and_then(|v| v.as_array());
        let n = |i: usize| {
            v.and_then(|a| a.get(i))
                .and_then(|x| x.as_f64())
                .unwrap_or(f64::NAN)
        };
        (n(0), n(1))
    }

    /// An integer option (checked).
    pub fn integer(&self, name: &str) -> i64 {
        self.values
            .get(name)
            .and_then(|v| v.as_i64())
            .unwrap_or_default()
    }

    /// A choice option (checked).
    pub fn choice(&self, name: &str) -> &str {
        self.values
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    /// A list-of-strings option (checked).
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A number option (checked).
    pub fn number(&self, name: &str) -> f64 {
        self.values
            .get(name)
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NAN)
    }

    /// A string option (checked).
    pub fn text(&self, name: &str) -> &str {
        self.values
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    /// Check `given` against `declared`, filling in defaults.
    fn check(
        step: &str,
        declared: &[OptionInfo],
        given: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, ChainError> {
        let bad = |message: String| ChainError::BadOptions {
            step: step.to_string(),
            message,
        };
        let mut values = serde_json::Map::new();
        for (k, v) in &given {
            let Some(info) = declared.iter().find(|o| o.name == k) else {
                let known: Vec<&str> = declared.iter().map(|o| o.name).collect();
                return Err(bad(if known.is_empty() {
                    format!("takes no options, got '{k}'")
                } else {
                    format!("has no option '{k}' (it takes {})", known.join(", "))
                }));
            };
            let ok = match info.kind {
                OptionKind::Range => v.as_array().is_some_and(|a| {
                    a.len() == 2 && a.iter().all(|x| x.as_f64().is_some_and(f64::is_finite))
                }),
                OptionKind::Integer { min } => v.as_i64().is_some_and(|n| n >= min),
                OptionKind::Choice(words) => v.as_str().is_some_and(|w| words.contains(&w)),
                OptionKind::Strings => v.as_array().is_some_and(|a| {
                    !a.is_empty() && a.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty()))
                }),
                OptionKind::Text => v.as_str().is_some(),
                OptionKind::Number => v.as_f64().is_some_and(f64::is_finite),
            };
            if !ok {
                let want = match info.kind {
                    OptionKind::Range => "two numbers, [low, high]".to_string(),
                    OptionKind::Integer { min } => format!("a whole number of at least {min}"),
                    OptionKind::Choice(words) => format!("one of {}", words.join(", ")),
                    OptionKind::Strings => {
                        "a list of strings, [\"python3\", \"classify.py\"]".to_string()
                    }
                    OptionKind::Text => "a string".to_string(),
                    OptionKind::Number => "a number".to_string(),
                };
                return Err(bad(format!("{k} = {v}: give {want} ({})", info.doc)));
            }
            values.insert(k.clone(), v.clone());
        }
        for o in declared {
            if !values.contains_key(o.name) {
                let v = serde_json::from_str(o.default).unwrap_or(serde_json::Value::Null);
                values.insert(o.name.to_string(), v);
            }
        }
        Ok(Options { values })
    }
}

/// One registry entry.
#[derive(Clone, Copy)]
pub struct StepInfo {
    /// The step's name in chains and project files.
    pub name: &'static str,
    /// One line: what it does.
    pub summary: &'static str,
    /// The pandas / scikit-learn expression it equals.
    pub equals: &'static str,
    /// How it is built.
    pub kind: StepKind,
    /// The scikit-learn class whose input check this step shares: it refuses a message holding
    /// an infinite value, as scikit-learn's `check_array` does (`ValueError: Input X contains
    /// infinity`). `None` for pandas steps, which take infinities as values.
    pub refuses_infinity: Option<&'static str>,
    /// The options it takes (only [`StepKind::WithOptions`] steps take any).
    pub options: &'static [OptionInfo],
    /// A name kept from the paper for a step with fixed options: `(step, options as JSON)`.
    pub alias_of: Option<(&'static str, &'static str)>,
}

impl StepInfo {
    /// With these options it keeps state from message to message, per key: a window step
    /// always, a scaler with `fit = "running"`.
    pub fn keeps_state(&self, options: &serde_json::Map<String, serde_json::Value>) -> bool {
        let has = |n: &str| self.options.iter().any(|o| o.name == n);
        has("key")
            && (!has("fit") || options.get("fit").and_then(|v| v.as_str()) == Some("running"))
    }
}

fn boxed<S: Step + Default + 'static>() -> Box<dyn Step> {
    Box::new(S::default())
}

/// `fit = "running"`: scikit-learn's `partial_fit` then `transform` per message and key.
fn running(o: &Options) -> bool {
    o.choice("fit") == "running"
}

fn min_max_scaler(o: &Options) -> Result<Box<dyn Step>, String> {
    let per_message = MinMaxScaler::from_options(o)?;
    if running(o) {
        let (lo, hi) = o.range("feature_range");
        return Ok(Box::new(crate::running::Running::new(
            "min_max_scaler",
            o,
            move || crate::running::MinMax::range(lo, hi),
        )?));
    }
    Ok(Box::new(per_message))
}

fn standard_scaler(o: &Options) -> Result<Box<dyn Step>, String> {
    if running(o) {
        return Ok(Box::new(crate::running::Running::new(
            "standard_scaler",
            o,
            crate::running::Standard::default,
        )?));
    }
    Ok(Box::new(StandardScaler))
}

fn max_abs_scaler(o: &Options) -> Result<Box<dyn Step>, String> {
    if running(o) {
        return Ok(Box::new(crate::running::Running::new(
            "max_abs_scaler",
            o,
            crate::running::MaxAbs::default,
        )?));
    }
    Ok(Box::new(MaxAbsScaler))
}

fn eval(o: &Options) -> Result<Box<dyn Step>, String> {
    Ok(Box::new(crate::eval::Eval::from_options(o)?))
}

fn exec(o: &Options) -> Result<Box<dyn Step>, String> {
    Ok(Box::new(crate::exec::Exec::from_options(o)?))
}

fn quantile_transformer(o: &Options) -> Result<Box<dyn Step>, String> {
    Ok(Box::new(QuantileTransformer::from_options(o)?))
}

/// `fit`: per message (the paper's `fit_transform`) or running (`partial_fit` per key).
const FIT: OptionInfo = OptionInfo {
    name: "fit",
    kind: OptionKind::Choice(&["message", "running"]),
    default: "\"message\"",
    doc: "message: fit_transform on each message alone (the paper's); running: scikit-learn's partial_fit on the key's rows of each message, then transform (state per key, across messages)",
};

/// The option of the steps that keep state per key.
const KEY: OptionInfo = OptionInfo {
    name: "key",
    kind: OptionKind::Text,
    default: "\"\"",
    doc: "the column whose value a row's state belongs to (a project's `key` fills it in); empty: the whole stream is one key",
};

/// The bounds on a step's per-key state (a project's `key_ttl` and `max_keys` fill them in).
const KEY_TTL: OptionInfo = OptionInfo {
    name: "key_ttl",
    kind: OptionKind::Text,
    default: "\"\"",
    doc: "a key with no row for this long (\"5m\") has its state dropped (counted); empty: never",
};

/// See [`KEY_TTL`].
const MAX_KEYS: OptionInfo = OptionInfo {
    name: "max_keys",
    kind: OptionKind::Integer { min: 0 },
    default: "0",
    doc: "beyond this many keys the least recently seen one's state is dropped (counted); 0: no bound",
};

/// The points a downsampling step gives.
const POINTS: OptionInfo = OptionInfo {
    name: "points",
    kind: OptionKind::Integer { min: 3 },
    default: "2000",
    doc: "rows kept for each series (m4: a multiple of 4)",
};

/// The x of a downsampled series.
const DS_TIME: OptionInfo = OptionInfo {
    name: "time_column",
    kind: OptionKind::Text,
    default: "\"ts\"",
    doc: "the column of ISO 8601 times that is x (in order per key); \"\" for the rows' order",
};

/// Every step streamprep knows, in the order `streamprep list` shows them.
pub const STEPS: &[StepInfo] = &[
    StepInfo { name: "prepare", summary: "decode the message's rows (NDJSON, JSON arrays, CSV; optionally zlib+base64) into a batch; bad rows go to dead letters", equals: "pd.DataFrame(rows)", kind: StepKind::Boundary, refuses_infinity: None, options: &[], alias_of: None },
    StepInfo { name: "abs", summary: "absolute value of numeric columns", equals: "df[num].abs()", kind: StepKind::Transform(boxed::<Abs>), refuses_infinity: None, options: &[], alias_of: None },
    StepInfo { name: "aggregated_sum", summary: "sum of each numeric column as a one-row message", equals: "df[num].sum()", kind: StepKind::Transform(boxed::<AggregatedSum>), refuses_infinity: None, options: &[], alias_of: None },
    StepInfo { name: "drop_duplicates", summary: "drop repeated rows (all columns), keep the first", equals: "df.drop_duplicates()", kind: StepKind::Transform(boxed::<DropDuplicates>), refuses_infinity: None, options: &[], alias_of: None },
    StepInfo { name: "handling_missing", summary: "drop rows with a missing value in any column", equals: "df.dropna()", kind: StepKind::Transform(boxed::<HandlingMissing>), refuses_infinity: None, options: &[], alias_of: None },
    StepInfo { name: "eval", summary: "derived columns from arithmetic on columns: `x = 12.5 * (a + d - b - c) / (a + b + c + d)`, several assignments separated by ; or new lines", equals: "df.eval(expr) (where, minimum, maximum: NumPy's)", kind: StepKind::WithOptions(eval), refuses_infinity: None, options: &[OptionInfo { name: "expr", kind: OptionKind::Text, default: "\"\"", doc: "assignments `name = expression`: + - * / // % **, comparisons, & | ~ (and or not), numbers, and abs sqrt exp log log10 log1p expm1 sin cos tan arcsin arccos arctan sinh cosh tanh floor ceil arctan2 where minimum maximum" }], alias_of: None },
    StepInfo { name: "lttb", summary: "a whole series downsampled to `points` rows by Largest-Triangle-Three-Buckets (each numeric column; per key when keyed), given at the end of the stream", equals: "tsdownsample.LTTBDownsampler().downsample(x, y, n_out=points) (the same indices)", kind: StepKind::WithOptions(crate::downsample::lttb), refuses_infinity: None, options: &[POINTS, DS_TIME, KEY], alias_of: None },
    StepInfo { name: "m4", summary: "a whole series downsampled by M4: the first, min, max and last row of `points / 4` equal time bins (each numeric column; per key when keyed), given at the end of the stream", equals: "tsdownsample.M4Downsampler().downsample(x, y, n_out=points) (the same indices)", kind: StepKind::WithOptions(crate::downsample::m4), refuses_infinity: None, options: &[POINTS, DS_TIME, KEY], alias_of: None },
    StepInfo { name: "minmax_lttb", summary: "a whole series downsampled by MinMaxLTTB: min and max of 4 x points bins, then LTTB (each numeric column; per key when keyed), given at the end of the stream", equals: "tsdownsample.MinMaxLTTBDownsampler().downsample(x, y, n_out=points, minmax_ratio=4) (the same indices)", kind: StepKind::WithOptions(crate::downsample::minmax_lttb), refuses_infinity: None, options: &[POINTS, DS_TIME, KEY], alias_of: None },
    StepInfo { name: "resample", summary: "time bins across messages (per key when keyed): the mean, sum, min, max, first, last or count of each numeric column in each `interval`, empty bins included", equals: "df.resample(interval, on=time_column)[num].agg(agg) (origin start_day, closed and labelled left), over the whole stream", kind: StepKind::WithOptions(crate::resample::resample), refuses_infinity: None, options: &[OptionInfo { name: "interval", kind: OptionKind::Text, default: "\"1s\"", doc: "the bin width, pandas' alias: 500ms, 1s, 1min, 1h, 1D (dividing a day)" }, OptionInfo { name: "agg", kind: OptionKind::Choice(&["mean", "sum", "min", "max", "first", "last", "count"]), default: "\"mean\"", doc: "what of each bin" }, OptionInfo { name: "time_column", kind: OptionKind::Text, default: "\"ts\"", doc: "the column of ISO 8601 times the rows are binned by (in time order per key)" }, KEY, KEY_TTL, MAX_KEYS], alias_of: None },
    StepInfo { name: "rolling", summary: "a rolling window per key across messages: mean, sum, min, max or std of the last `window` rows of each numeric column", equals: "df.groupby(key)[num].rolling(window).agg() over the whole stream", kind: StepKind::WithOptions(crate::window::rolling), refuses_infinity: None, options: &[OptionInfo { name: "window", kind: OptionKind::Integer { min: 1 }, default: "10", doc: "rows in the window (min_periods = window: until it is full, or with a missing value in it, the value is missing)" }, OptionInfo { name: "agg", kind: OptionKind::Choice(&["mean", "sum", "min", "max", "std"]), default: "\"mean\"", doc: "what of the window (std: ddof 1)" }, KEY, KEY_TTL, MAX_KEYS], alias_of: None },
    StepInfo { name: "ewm_mean", summary: "the exponentially weighted mean per key across messages", equals: "df.groupby(key)[num].ewm(span=span, adjust=True).mean() over the whole stream", kind: StepKind::WithOptions(crate::window::ewm_mean), refuses_infinity: None, options: &[OptionInfo { name: "span", kind: OptionKind::Number, default: "10", doc: "pandas' span (at least 1): alpha = 2 / (span + 1)" }, KEY, KEY_TTL, MAX_KEYS], alias_of: None },
    StepInfo { name: "diff", summary: "each numeric value minus the previous row's of the same key, across messages", equals: "df.groupby(key)[num].diff() over the whole stream", kind: StepKind::WithOptions(crate::window::diff), refuses_infinity: None, options: &[KEY, KEY_TTL, MAX_KEYS], alias_of: None },
    StepInfo { name: "exec", summary: "the user's own code: each message to a long-lived process of `command` and back (one process a worker; see the wire protocol in README)", equals: "fn(df) in the process (python/streamprep_step.py: serve(fn))", kind: StepKind::WithOptions(exec), refuses_infinity: None, options: &[OptionInfo { name: "command", kind: OptionKind::Strings, default: "[\"cat\"]", doc: "the program and its arguments, started once a worker (`cat` echoes each frame: the identity)" }, OptionInfo { name: "format", kind: OptionKind::Choice(&["arrow", "csv", "ndjson"]), default: "\"arrow\"", doc: "the frames' format: an Arrow IPC stream, CSV with a header, or NDJSON" }, OptionInfo { name: "timeout", kind: OptionKind::Text, default: "\"30s\"", doc: "the longest a message may take (\"30s\", \"500ms\", \"2m\"); longer: the process is killed and replaced, the message is a dead letter" }, OptionInfo { name: "processes", kind: OptionKind::Integer { min: 1 }, default: "1", doc: "processes running the command: one a worker, so with method = \"pool\" this sets the workers (inline has one; queue workers run --concurrency each)" }], alias_of: None },
    StepInfo { name: "fillna_mean", summary: "fill missing numeric values with the column mean", equals: "df[num].fillna(df[num].mean())", kind: StepKind::Transform(boxed::<FillnaMean>), refuses_infinity: None, options: &[], alias_of: None },
    StepInfo { name: "fillna_median", summary: "fill missing numeric values with the column median", equals: "df[num].fillna(df[num].median())", kind: StepKind::Transform(boxed::<FillnaMedian>), refuses_infinity: None, options: &[], alias_of: None },
    StepInfo { name: "fillna_zeros", summary: "fill missing numeric values with 0", equals: "df[num].fillna(0)", kind: StepKind::Transform(boxed::<FillnaZeros>), refuses_infinity: None, options: &[], alias_of: None },
    StepInfo { name: "max_abs_scaler", summary: "divide each numeric column by its largest absolute value", equals: "MaxAbsScaler().fit_transform", kind: StepKind::WithOptions(max_abs_scaler), refuses_infinity: Some("MaxAbsScaler"), options: &[FIT, KEY, KEY_TTL, MAX_KEYS], alias_of: None },
    StepInfo { name: "min_max_scaler_0_1", summary: "scale each numeric column to [0, 1]", equals: "MinMaxScaler((0, 1)).fit_transform", kind: StepKind::Transform(boxed::<MinMaxScaler01>), refuses_infinity: Some("MinMaxScaler"), options: &[], alias_of: Some(("min_max_scaler", r#"{"feature_range": [0, 1]}"#)) },
    StepInfo { name: "min_max_scaler_m1_1", summary: "scale each numeric column to [-1, 1]", equals: "MinMaxScaler((-1, 1)).fit_transform", kind: StepKind::Transform(boxed::<MinMaxScalerM11>), refuses_infinity: Some("MinMaxScaler"), options: &[], alias_of: Some(("min_max_scaler", r#"{"feature_range": [-1, 1]}"#)) },
    StepInfo { name: "min_max_scaler", summary: "scale each numeric column to feature_range", equals: "MinMaxScaler(feature_range).fit_transform", kind: StepKind::WithOptions(min_max_scaler), refuses_infinity: Some("MinMaxScaler"), options: &[OptionInfo { name: "feature_range", kind: OptionKind::Range, default: "[0, 1]", doc: "the range each column is scaled to; low < high" }, FIT, KEY, KEY_TTL, MAX_KEYS], alias_of: None },
    StepInfo { name: "normalizer", summary: "scale each row of numeric values to unit l2 norm (refuses missing values)", equals: "Normalizer().fit_transform", kind: StepKind::Transform(boxed::<Normalizer>), refuses_infinity: None, options: &[], alias_of: None },
    StepInfo { name: "quantile_transformer_normal", summary: "map numeric columns to a standard normal via their quantiles", equals: "QuantileTransformer(n_quantiles=min(1000, n), output_distribution='normal').fit_transform", kind: StepKind::Transform(boxed::<QuantileTransformerNormal>), refuses_infinity: Some("QuantileTransformer"), options: &[], alias_of: Some(("quantile_transformer", r#"{"output_distribution": "normal"}"#)) },
    StepInfo { name: "quantile_transformer_uniform", summary: "map numeric columns to [0, 1] via their quantiles", equals: "QuantileTransformer(n_quantiles=min(1000, n)).fit_transform", kind: StepKind::Transform(boxed::<QuantileTransformerUniform>), refuses_infinity: Some("QuantileTransformer"), options: &[], alias_of: Some(("quantile_transformer", r#"{"output_distribution": "uniform"}"#)) },
    StepInfo { name: "quantile_transformer", summary: "map numeric columns to output_distribution via their quantiles", equals: "QuantileTransformer(n_quantiles=min(n_quantiles, n), output_distribution).fit_transform", kind: StepKind::WithOptions(quantile_transformer), refuses_infinity: Some("QuantileTransformer"), options: &[OptionInfo { name: "n_quantiles", kind: OptionKind::Integer { min: 1 }, default: "1000", doc: "quantiles computed (at most the rows of the message)" }, OptionInfo { name: "output_distribution", kind: OptionKind::Choice(&["uniform", "normal"]), default: "\"uniform\"", doc: "the distribution mapped to" }], alias_of: None },
    StepInfo { name: "robust_scaler", summary: "centre on the median, scale by the interquartile range", equals: "RobustScaler().fit_transform", kind: StepKind::Transform(boxed::<RobustScaler>), refuses_infinity: Some("RobustScaler"), options: &[], alias_of: None },
    StepInfo { name: "standard_scaler", summary: "centre on the mean, scale by the population standard deviation", equals: "StandardScaler().fit_transform", kind: StepKind::WithOptions(standard_scaler), refuses_infinity: Some("StandardScaler"), options: &[FIT, KEY, KEY_TTL, MAX_KEYS], alias_of: None },
    StepInfo { name: "result", summary: "encode the batch for the sinks and hand it over", equals: "df.to_json(orient='records', lines=True)", kind: StepKind::Boundary, refuses_infinity: None, options: &[], alias_of: None },
];

/// A chain that cannot be built.
#[derive(Debug, Error, PartialEq)]
pub enum ChainError {
    /// A name that is not in the registry.
    #[error("unknown step '{0}' ({hint}see `streamprep list`)", hint = did_you_mean(.0))]
    Unknown(String),
    /// `prepare` or `result` anywhere but at its end of the chain.
    #[error("'{0}' may only open (prepare) or close (result) a chain")]
    Misplaced(String),
    /// A step's options cannot work.
    #[error("step '{step}': {message}")]
    BadOptions {
        /// The step.
        step: String,
        /// What is wrong and what would be right.
        message: String,
    },
}

/// `did you mean 'x'? ` for the registered step closest to a misspelt name (at most a third of
/// its letters off), or nothing.
fn did_you_mean(name: &str) -> String {
    STEPS
        .iter()
        .map(|s| (edit_distance(name, s.name), s.name))
        .filter(|(d, s)| *d > 0 && *d <= s.len().max(name.len()) / 3)
        .min()
        .map_or(String::new(), |(_, s)| format!("did you mean '{s}'? "))
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Look a step up by name.
pub fn find(name: &str) -> Option<&'static StepInfo> {
    STEPS.iter().find(|s| s.name == name)
}

/// Split a chain entry into its step name and options: `name` or `name{"option": value}`
/// (a JSON object; a TOML chain's table `{ step = "name", option = value }` becomes this).
pub fn split_entry(
    entry: &str,
) -> Result<(&str, serde_json::Map<String, serde_json::Value>), ChainError> {
    let entry = entry.trim();
    let Some(brace) = entry.find('{') else {
        return Ok((entry, serde_json::Map::new()));
    };
    let name = entry[..brace].trim();
    let options: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&entry[brace..])
        .map_err(|e| ChainError::BadOptions {
            step: name.to_string(),
            message: format!(
                "the options must be a JSON object, e.g. {name}{{\"feature_range\": [-1, 1]}}: {e}"
            ),
        })?;
    Ok((name, options))
}

/// Check a chain and return its transform steps (without the implied `prepare`/`result`),
/// each with its options checked.
pub fn validate_chain<S: AsRef<str>>(
    entries: &[S],
) -> Result<Vec<(&'static StepInfo, Options)>, ChainError> {
    let mut out = Vec::new();
    let last = entries.len().saturating_sub(1);
    for (i, e) in entries.iter().enumerate() {
        let (n, given) = split_entry(e.as_ref())?;
        let info = find(n).ok_or_else(|| ChainError::Unknown(n.to_string()))?;
        let options = Options::check(n, info.options, given)?;
        match info.kind {
            StepKind::Boundary => {
                let ok = (n == "prepare" && i == 0) || (n == "result" && i == last);
                if !ok {
                    return Err(ChainError::Misplaced(n.to_string()));
                }
            }
            StepKind::WithOptions(build) => {
                // values that pass their types but cannot work together (low >= high)
                build(&options).map_err(|message| ChainError::BadOptions {
                    step: n.to_string(),
                    message,
                })?;
                out.push((info, options));
            }
            StepKind::Transform(_) => out.push((info, options)),
        }
    }
    Ok(out)
}

/// Build fresh instances of a chain's transform steps.
pub fn build_chain<S: AsRef<str>>(names: &[S]) -> Result<Vec<Box<dyn Step>>, ChainError> {
    let mut out = Vec::new();
    for (info, options) in validate_chain(names)? {
        let step = match info.kind {
            StepKind::Transform(build) => build(),
            StepKind::WithOptions(build) => {
                build(&options).map_err(|message| ChainError::BadOptions {
                    step: info.name.to_string(),
                    message,
                })?
            }
            StepKind::Boundary => continue,
        };
        out.push(match info.refuses_infinity {
            None => step,
            Some(class) => Box::new(RefuseInfinity { inner: step, class }),
        });
    }
    Ok(out)
}

/// scikit-learn's input check (`check_array(..., ensure_all_finite="allow-nan")`) in front of
/// a step: a message with an infinite value in a numeric column is refused whole, with the
/// column and row, as scikit-learn raises `ValueError` for it. NaN (missing) passes.
struct RefuseInfinity {
    inner: Box<dyn Step>,
    class: &'static str,
}

impl Step for RefuseInfinity {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn columns_from_empty(&self) -> bool {
        self.inner.columns_from_empty()
    }

    fn key_counts(&self) -> Option<streamprep_core::KeyCounts> {
        self.inner.key_counts()
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        self.inner.save_state()
    }

    fn load_state(&mut self, state: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<(), String> {
        self.inner.load_state(state, keep)
    }

    fn split_state(&self, state: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        self.inner.split_state(state)
    }

    fn apply(
        &mut self,
        batch: streamprep_core::Batch,
    ) -> Result<streamprep_core::Batch, streamprep_core::StepError> {
        let schema = batch.schema();
        for (c, f) in schema.fields().iter().enumerate() {
            let Some(a) = batch
                .column(c)
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
            else {
                continue; // only floats hold infinities
            };
            if let Some(row) = a.iter().position(|x| x.is_some_and(f64::is_infinite)) {
                return Err(streamprep_core::StepError::BadInput {
                    step: self.inner.name(),
                    reason: format!(
                        "column '{}' holds {} (row {row} of the message); scikit-learn's {} \
                         refuses it (ValueError: Input X contains infinity or a value too large \
                         for dtype('float64')). Clip or drop such values before this step",
                        f.name(),
                        if a.value(row) > 0.0 {
                            "+infinity"
                        } else {
                            "-infinity"
                        },
                        self.class
                    ),
                });
            }
        }
        self.inner.apply(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_documented_and_match_the_step() {
        let mut seen = std::collections::HashSet::new();
        for s in STEPS {
            assert!(seen.insert(s.name), "duplicate {}", s.name);
            assert!(
                !s.summary.is_empty() && !s.equals.is_empty(),
                "{} undocumented",
                s.name
            );
            if let StepKind::Transform(build) = s.kind {
                assert_eq!(build().name(), s.name);
            }
            if let StepKind::WithOptions(build) = s.kind {
                let defaults = Options::check(s.name, s.options, Default::default())
                    .expect("the defaults pass");
                assert_eq!(build(&defaults).expect("builds").name(), s.name);
            }
            for o in s.options {
                assert!(!o.doc.is_empty(), "{}.{} undocumented", s.name, o.name);
            }
            if let Some((step, options)) = s.alias_of {
                assert!(find(step).is_some(), "{} aliases nothing", s.name);
                let _: serde_json::Value = serde_json::from_str(options).expect("alias options");
            }
        }
        // the paper's 15 transforms, prepare, result, the two that take options, exec, eval,
        // the windows rolling, ewm_mean, diff, resample and the downsamplers lttb, m4,
        // minmax_lttb
        assert_eq!(STEPS.len(), 28);
    }

    #[test]
    fn chains_are_checked() {
        assert_eq!(build_chain(&["prepare", "abs", "result"]).unwrap().len(), 1);
        assert_eq!(
            build_chain(&["nope"]).err(),
            Some(ChainError::Unknown("nope".into()))
        );
        assert_eq!(
            build_chain(&["abs", "prepare"]).err(),
            Some(ChainError::Misplaced("prepare".into()))
        );
    }

    #[test]
    fn options_are_checked_by_name_type_and_meaning() {
        let err = |entry: &str| {
            build_chain(&[entry])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(build_chain(&[r#"min_max_scaler{"feature_range": [-1, 1]}"#]).is_ok());
        assert!(build_chain(&["min_max_scaler", "quantile_transformer"]).is_ok());
        assert!(
            err(r#"min_max_scaler{"feature_rang": [0, 1]}"#)
                .contains("has no option 'feature_rang' (it takes feature_range, fit, key, key_ttl, max_keys)"),
            "{}",
            err(r#"min_max_scaler{"feature_rang": [0, 1]}"#)
        );
        assert!(err(r#"min_max_scaler{"feature_range": [1]}"#).contains("two numbers"));
        assert!(err(r#"min_max_scaler{"feature_range": [2, 1]}"#)
            .contains("the minimum must be smaller than the maximum"));
        assert!(err(r#"quantile_transformer{"n_quantiles": 0}"#).contains("at least 1"));
        assert!(
            err(r#"quantile_transformer{"output_distribution": "gauss"}"#)
                .contains("one of uniform, normal")
        );
        assert!(err(r#"abs{"x": 1}"#).contains("takes no options"));
        assert!(err(r#"abs{"x": "#).contains("must be a JSON object"));
        // the paper's names stand for the step with fixed options
        let info = find("min_max_scaler_m1_1").expect("alias");
        assert_eq!(
            info.alias_of,
            Some(("min_max_scaler", r#"{"feature_range": [-1, 1]}"#))
        );
    }

    #[test]
    fn a_misspelt_step_gets_the_closest_name() {
        let msg = |n: &str| ChainError::Unknown(n.into()).to_string();
        assert_eq!(
            msg("fillna_zero"),
            "unknown step 'fillna_zero' (did you mean 'fillna_zeros'? see `streamprep list`)"
        );
        assert!(msg("standard_scalar").contains("did you mean 'standard_scaler'?"));
        assert!(msg("min_max_scaler_01").contains("did you mean 'min_max_scaler_0_1'?"));
        // nothing close: no guess
        assert_eq!(msg("nope"), "unknown step 'nope' (see `streamprep list`)");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
