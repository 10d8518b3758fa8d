//! Windows across message boundaries, per key: `rolling`, `ewm_mean` and `diff`. Each keeps,
//! for each key (the value of the `key` column; without one, the whole stream is one key) and
//! each numeric column, what the next rows need, so the output over the whole stream is
//! pandas' whatever the buffer:
//! - `rolling{window, agg}` = `df.groupby(key)[col].rolling(window).agg()` (agg `mean`, `sum`,
//!   `min`, `max`, `std`; `min_periods = window`: a window with a missing value, or not yet
//!   full, gives a missing value; `std` with `ddof = 1`);
//! - `ewm_mean{span}` = `.ewm(span=span, adjust=True).mean()` (missing values keep their place
//!   in the weights, pandas' `ignore_na=False`);
//! - `diff` = `.diff()` (the previous row of the same key; the key's first row is missing).
//!
//! Numeric columns become float64, as in pandas; the key and other columns pass through. A row
//! whose key is missing gets missing values (pandas' `groupby` leaves such rows out). The state
//! lives in the chain instance: the messages of a key must come to it in order (inline, or one
//! worker).

use std::collections::{HashMap, VecDeque};

use arrow_array::{Array, ArrayRef};
use streamprep_core::numeric::{from_f64, numeric_columns, replace_columns, to_f64};
use streamprep_core::{Batch, Step, StepError};

use crate::keystate::KeyStates;
use crate::registry::Options;

/// What a window step computes, with its per-(key, column) state.
pub trait Window: Send {
    /// The step's name.
    const NAME: &'static str;
    /// One key's and column's state.
    type State: Default + Send + serde::Serialize + serde::de::DeserializeOwned;
    /// The value for the next row `x` (NaN: missing) of a key's column.
    fn next(&self, state: &mut Self::State, x: f64) -> f64;
}

/// A window step: its computation, the key column, and the state by key and column.
pub struct Keyed<W: Window> {
    w: W,
    key: Option<String>,
    states: KeyStates<HashMap<String, W::State>>,
}

impl<W: Window> Keyed<W> {
    fn new(w: W, o: &Options) -> Result<Self, String> {
        Ok(Keyed {
            w,
            key: Some(o.text("key").to_string()).filter(|k| !k.is_empty()),
            states: KeyStates::from_options(o)?,
        })
    }
}

impl<W: Window> Drop for Keyed<W> {
    fn drop(&mut self) {
        report(W::NAME, &self.states);
    }
}

/// Say how many keys' states the bounds dropped (at the chain's end).
pub(crate) fn report<S>(step: &str, states: &KeyStates<S>) {
    if states.evicted + states.expired > 0 {
        tracing::info!(
            target: "streamprep::state",
            "{step}: {} key(s) dropped beyond max_keys, {} idle past key_ttl; {} kept",
            states.evicted,
            states.expired,
            states.len()
        );
    }
}

/// The key of each row (`None`: missing), as text; every row's is `""` without a key column.
pub(crate) fn row_keys(batch: &Batch, key: Option<&str>) -> Result<Vec<Option<String>>, String> {
    let n = batch.num_rows();
    let Some(key) = key else {
        return Ok(vec![Some(String::new()); n]);
    };
    let col = batch.column_by_name(key).ok_or_else(|| {
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        format!(
            "no key column '{key}' (the message has {})",
            names.join(", ")
        )
    })?;
    let fmt = arrow_cast::display::ArrayFormatter::try_new(col.as_ref(), &Default::default())
        .map_err(|e| e.to_string())?;
    Ok((0..n)
        .map(|i| col.is_valid(i).then(|| fmt.value(i).to_string()))
        .collect())
}

impl<W: Window> Step for Keyed<W> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn key_counts(&self) -> Option<streamprep_core::KeyCounts> {
        Some(self.states.counts())
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(self.states.save())
    }

    fn load_state(&mut self, state: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<(), String> {
        self.states.load(state, keep)
    }

    fn split_state(&self, state: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        KeyStates::<HashMap<String, W::State>>::split(state)
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        let keys = row_keys(&batch, self.key.as_deref()).map_err(|reason| StepError::BadInput {
            step: W::NAME,
            reason,
        })?;
        let now = std::time::Instant::now();
        self.states.expire(now);
        let (names, values) = value_columns(&batch, self.key.as_deref());
        let mut out = vec![vec![f64::NAN; keys.len()]; names.len()];
        // row by row: each row touches its key once (so a key dropped by max_keys within a
        // message is dropped for all its columns at once)
        for (r, k) in keys.iter().enumerate() {
            let Some(k) = k else { continue };
            let by_column = self.states.get(k, now);
            for (c, name) in names.iter().enumerate() {
                let state = match by_column.get_mut(name) {
                    Some(s) => s,
                    None => by_column.entry(name.clone()).or_default(),
                };
                out[c][r] = self.w.next(state, values[c][r]);
            }
        }
        let mut out = out.into_iter();
        map_value_columns(&batch, self.key.as_deref(), W::NAME, |_, _| {
            out.next().unwrap_or_default()
        })
    }
}

/// The numeric columns but the key: their names and values (missing = NaN), in order.
pub(crate) fn value_columns(batch: &Batch, key: Option<&str>) -> (Vec<String>, Vec<Vec<f64>>) {
    let schema = batch.schema();
    numeric_columns(&schema)
        .into_iter()
        .filter(|c| key != Some(schema.field(*c).name().as_str()))
        .map(|c| (schema.field(c).name().clone(), to_f64(batch.column(c))))
        .unzip()
}

/// Each numeric column but the key replaced by `f(name, values)` (float64; missing = NaN).
pub(crate) fn map_value_columns(
    batch: &Batch,
    key: Option<&str>,
    step: &'static str,
    mut f: impl FnMut(&str, Vec<f64>) -> Vec<f64>,
) -> Result<Batch, StepError> {
    let schema = batch.schema();
    let mut new_columns: Vec<(usize, ArrayRef)> = Vec::new();
    for c in numeric_columns(&schema) {
        let name = schema.field(c).name();
        if key == Some(name.as_str()) {
            continue;
        }
        new_columns.push((c, from_f64(f(name, to_f64(batch.column(c))))));
    }
    replace_columns(batch, new_columns).map_err(|e| StepError::Internal {
        step,
        reason: e.to_string(),
    })
}

/// `rolling{window, agg}`.
pub struct Rolling {
    window: usize,
    agg: Agg,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Agg {
    Mean,
    Sum,
    Min,
    Max,
    Std,
}

impl Window for Rolling {
    const NAME: &'static str = "rolling";
    /// The last `window` values (NaN for missing).
    type State = VecDeque<f64>;

    fn next(&self, last: &mut VecDeque<f64>, x: f64) -> f64 {
        if last.len() == self.window {
            last.pop_front();
        }
        last.push_back(x);
        if last.len() < self.window || last.iter().any(|v| v.is_nan()) {
            return f64::NAN;
        }
        let n = self.window as f64;
        match self.agg {
            Agg::Sum => last.iter().sum(),
            Agg::Mean => last.iter().sum::<f64>() / n,
            Agg::Min => last.iter().copied().fold(f64::INFINITY, f64::min),
            Agg::Max => last.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Agg::Std => {
                if self.window < 2 {
                    return f64::NAN;
                }
                let mean = last.iter().sum::<f64>() / n;
                let ss: f64 = last.iter().map(|v| (v - mean) * (v - mean)).sum();
                (ss / (n - 1.0)).max(0.0).sqrt()
            }
        }
    }
}

/// `ewm_mean{span}`: pandas' `ewm(span, adjust=True, ignore_na=False).mean()`, its own
/// recurrence (pandas/_libs/window/aggregations.pyx `ewm`).
pub struct EwmMean {
    alpha: f64,
}

/// The weighted mean so far, the weight of the old part, observations seen.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct EwmState {
    started: bool,
    weighted: f64,
    old_wt: f64,
    nobs: u64,
}

impl Window for EwmMean {
    const NAME: &'static str = "ewm_mean";
    type State = EwmState;

    fn next(&self, s: &mut EwmState, cur: f64) -> f64 {
        let is_obs = !cur.is_nan();
        if !s.started {
            s.started = true;
            s.weighted = cur;
            s.old_wt = 1.0;
            s.nobs = u64::from(is_obs);
        } else {
            s.nobs += u64::from(is_obs);
            if !s.weighted.is_nan() {
                // ignore_na=False: a missing value ages the old weight too
                s.old_wt *= 1.0 - self.alpha;
                if is_obs {
                    // adjust=True: the new value's weight is 1
                    if s.weighted != cur {
                        s.weighted = (s.old_wt * s.weighted + cur) / (s.old_wt + 1.0);
                    }
                    s.old_wt += 1.0;
                }
            } else if is_obs {
                s.weighted = cur;
            }
        }
        if s.nobs >= 1 {
            s.weighted
        } else {
            f64::NAN
        }
    }
}

/// `diff`: this row minus the previous row of its key.
pub struct Diff;

impl Window for Diff {
    const NAME: &'static str = "diff";
    /// The previous value (`None` before the key's first row).
    type State = Option<f64>;

    fn next(&self, prev: &mut Option<f64>, x: f64) -> f64 {
        let out = prev.map_or(f64::NAN, |p| x - p);
        *prev = Some(x);
        out
    }
}

/// `rolling` from its options: `window` (rows, at least 1), `agg`, `key`.
pub fn rolling(o: &Options) -> Result<Box<dyn Step>, String> {
    let agg = match o.choice("agg") {
        "sum" => Agg::Sum,
        "min" => Agg::Min,
        "max" => Agg::Max,
        "std" => Agg::Std,
        _ => Agg::Mean,
    };
    let window = usize::try_from(o.integer("window")).map_err(|_| "window: at least 1 row")?;
    if !(1..=1_000_000).contains(&window) {
        return Err(format!("window = {window}: give 1 to 1000000 rows"));
    }
    Ok(Box::new(Keyed::new(Rolling { window, agg }, o)?))
}

/// `ewm_mean` from its options: `span` (at least 1), `key`.
pub fn ewm_mean(o: &Options) -> Result<Box<dyn Step>, String> {
    let span = o.number("span");
    if !(span.is_finite() && span >= 1.0) {
        return Err(format!(
            "span = {span}: give a number of at least 1 (pandas' span)"
        ));
    }
    Ok(Box::new(Keyed::new(
        EwmMean {
            alpha: 2.0 / (span + 1.0),
        },
        o,
    )?))
}

/// `diff` from its options: `key`.
pub fn diff(o: &Options) -> Result<Box<dyn Step>, String> {
    Ok(Box::new(Keyed::new(Diff, o)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Options {
        let mut m = serde_json::Map::new();
        m.insert("key".into(), k.into());
        Options::from_map(m)
    }

    fn col<W: Window>(v: &[f64], w: W) -> Vec<f64> {
        let mut s = W::State::default();
        v.iter().map(|x| w.next(&mut s, *x)).collect()
    }

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-12 * y.abs().max(1.0)
            })
    }

    #[test]
    fn rolling_ewm_and_diff_follow_pandas_on_one_column() {
        let nan = f64::NAN;
        let v = [1.0, 2.0, nan, 4.0, 5.0, 6.0];
        // pd.Series(v).rolling(2).mean()
        let got = col(
            &v,
            Rolling {
                window: 2,
                agg: Agg::Mean,
            },
        );
        assert!(same(&got, &[nan, 1.5, nan, nan, 4.5, 5.5]), "{got:?}");
        // .rolling(3).std()
        let got = col(
            &[1.0, 2.0, 4.0, 8.0],
            Rolling {
                window: 3,
                agg: Agg::Std,
            },
        );
        assert!(
            same(&got, &[nan, nan, 1.5275252316519465, 3.055050463303893]),
            "{got:?}"
        );
        // pd.Series(v).ewm(span=3).mean()
        let got = col(&v, EwmMean { alpha: 0.5 });
        assert!(
            same(
                &got,
                &[
                    1.0,
                    1.6666666666666667,
                    1.6666666666666667,
                    3.3636363636363638,
                    4.333333333333333,
                    5.237288135593221
                ]
            ),
            "{got:?}"
        );
        let got = col(&v, Diff);
        assert!(same(&got, &[nan, 1.0, nan, nan, 1.0, 1.0]), "{got:?}");
    }

    #[test]
    fn a_key_dropped_within_a_message_is_dropped_for_every_column_at_once() {
        let mut m = serde_json::Map::new();
        m.insert("key".into(), "k".into());
        m.insert("max_keys".into(), 1.into());
        let o = Options::from_map(m);
        let mut step = Keyed::new(Diff, &o).expect("step");
        step.apply(streamprep_testkit::batch_from_json(
            r#"[{"k": "a", "u": 1.0, "v": 10.0}]"#,
        ))
        .expect("first");
        let out = step
            .apply(streamprep_testkit::batch_from_json(
                r#"[{"k": "a", "u": 2.0, "v": 12.0}, {"k": "b", "u": 5.0, "v": 5.0}, {"k": "a", "u": 3.0, "v": 13.0}]"#,
            ))
            .expect("second");
        let json = streamprep_testkit::batch_to_json(&out);
        // a's first row still has a's state in both columns; b then drops a; a comes back fresh
        assert!(json.starts_with(r#"[{"k":"a","u":1.0,"v":2.0}"#), "{json}");
        assert!(json.ends_with(r#"{"k":"a","u":null,"v":null}]"#), "{json}");
        assert_eq!(step.key_counts().map(|c| (c.live, c.evicted)), Some((1, 2)));
    }

    #[test]
    fn each_key_keeps_its_own_state_across_messages() {
        let mut step = Keyed::new(Diff, &key("k")).expect("step");
        let a =
            streamprep_testkit::batch_from_json(r#"[{"k": "x", "v": 1.0}, {"k": "y", "v": 10.0}]"#);
        let b = streamprep_testkit::batch_from_json(
            r#"[{"k": "x", "v": 3.0}, {"k": "y", "v": 15.0}, {"k": null, "v": 1.0}]"#,
        );
        step.apply(a).expect("first");
        let out = streamprep_testkit::batch_to_json(&step.apply(b).expect("second"));
        assert!(
            out.contains(r#"{"k":"x","v":2.0}"#) && out.contains(r#"{"k":"y","v":5.0}"#),
            "{out}"
        );
        assert!(
            out.contains(r#"{"k":null}"#) || out.contains(r#""v":null"#),
            "a missing key gives a missing value: {out}"
        );
        let err = Keyed::new(Diff, &key("nope"))
            .expect("step")
            .apply(streamprep_testkit::batch_from_json(r#"[{"v": 1.0}]"#))
            .expect_err("no key column");
        assert!(err.to_string().contains("no key column 'nope'"), "{err}");
    }
}
