//! Running-fit scalers, per key: `{ step = "standard_scaler", fit = "running" }` (and
//! `min_max_scaler`, `max_abs_scaler`). For each message, the rows of each key go through that
//! key's scaler as scikit-learn's `partial_fit(rows)` then `transform(rows)`, with
//! scikit-learn's arithmetic: `_incremental_mean_and_var` (missing values skipped per column,
//! samples seen counted per column), `np.minimum`/`np.maximum` of the running extremes (a
//! missing value propagates), `_is_constant_feature` and `_handle_zeros_in_scale`. The quirks
//! come along: a column with no value in a key's first message leaves its statistics missing
//! for good (scikit-learn's NaN never goes away), so its values stay missing.
//!
//! A row whose key is missing gets missing values (the oracle's `groupby` leaves it out).
//! Numeric columns become float64; the key and other columns pass through.

use std::collections::HashMap;

use streamprep_core::numeric::{
    handle_zeros_in_scale, nan_min_max, nan_sum_count, np_maximum, np_minimum,
};
use streamprep_core::{Batch, Step, StepError};

use crate::keystate::KeyStates;

/// One running scaler of one key's column: fit on more rows, then transform them.
pub trait Fit: Send + serde::Serialize + serde::de::DeserializeOwned {
    /// `partial_fit(values)`.
    fn partial_fit(&mut self, values: &[f64]);
    /// `transform(value)` with the statistics so far.
    fn transform(&self, x: f64) -> f64;
}

/// scikit-learn's `StandardScaler` state of one column: samples seen, mean, variance.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Standard {
    n: f64,
    mean: f64,
    var: f64,
}

impl Fit for Standard {
    fn partial_fit(&mut self, x: &[f64]) {
        // _incremental_mean_and_var, one column, in scikit-learn's order of operations
        let (new_sum, count) = nan_sum_count(x);
        let new_n = count as f64;
        let last_sum = self.mean * self.n;
        let updated_n = self.n + new_n;
        let updated_mean = (last_sum + new_sum) / updated_n;
        let t = new_sum / new_n;
        let temp: Vec<f64> = x.iter().map(|v| v - t).collect();
        let (correction, _) = nan_sum_count(&temp);
        let sq: Vec<f64> = temp.iter().map(|d| d * d).collect();
        let (mut new_unnormalized, _) = nan_sum_count(&sq);
        new_unnormalized -= correction * correction / new_n;
        let last_unnormalized = self.var * self.n;
        let last_over_new = self.n / new_n;
        let mut updated_unnormalized = last_unnormalized
            + new_unnormalized
            + last_over_new / updated_n * (last_sum / last_over_new - new_sum).powi(2);
        if self.n == 0.0 {
            updated_unnormalized = new_unnormalized;
        }
        self.var = updated_unnormalized / updated_n;
        self.mean = updated_mean;
        self.n = updated_n;
    }

    fn transform(&self, x: f64) -> f64 {
        // _is_constant_feature, then _handle_zeros_in_scale with that mask
        let eps = f64::EPSILON;
        let upper = self.n * eps * self.var + (self.n * self.mean * eps).powi(2);
        let scale = if self.var <= upper {
            1.0
        } else {
            self.var.sqrt()
        };
        (x - self.mean) / scale
    }
}

/// scikit-learn's `MinMaxScaler` state of one column: the running minimum and maximum, and
/// the feature range.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct MinMax {
    seen: bool,
    min: f64,
    max: f64,
    lo: f64,
    hi: f64,
}

impl Default for MinMax {
    fn default() -> Self {
        MinMax {
            seen: false,
            min: f64::NAN,
            max: f64::NAN,
            lo: 0.0,
            hi: 1.0,
        }
    }
}

impl MinMax {
    /// A fresh state for `feature_range = [lo, hi]`.
    pub fn range(lo: f64, hi: f64) -> Self {
        MinMax {
            lo,
            hi,
            ..MinMax::default()
        }
    }
}

impl Fit for MinMax {
    fn partial_fit(&mut self, x: &[f64]) {
        let (mn, mx) = nan_min_max(x);
        if self.seen {
            self.min = np_minimum(self.min, mn);
            self.max = np_maximum(self.max, mx);
        } else {
            self.seen = true;
            self.min = mn;
            self.max = mx;
        }
    }

    fn transform(&self, x: f64) -> f64 {
        let scale = (self.hi - self.lo) / handle_zeros_in_scale(self.max - self.min);
        let min = self.lo - self.min * scale;
        x * scale + min
    }
}

/// scikit-learn's `MaxAbsScaler` state of one column: the running largest absolute value.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct MaxAbs {
    seen: bool,
    max_abs: f64,
}

impl Fit for MaxAbs {
    fn partial_fit(&mut self, x: &[f64]) {
        let abs: Vec<f64> = x.iter().map(|v| v.abs()).collect();
        let (_, mx) = nan_min_max(&abs);
        if self.seen {
            self.max_abs = np_maximum(self.max_abs, mx);
        } else {
            self.seen = true;
            self.max_abs = mx;
        }
    }

    fn transform(&self, x: f64) -> f64 {
        x / handle_zeros_in_scale(self.max_abs)
    }
}

/// A running scaler step: per key and column, a `F`.
pub struct Running<F: Fit> {
    name: &'static str,
    key: Option<String>,
    fresh: Box<dyn Fn() -> F + Send>,
    states: KeyStates<HashMap<String, F>>,
}

impl<F: Fit> Running<F> {
    /// A step named `name` whose column states start as `fresh()`; `key`, `key_ttl` and
    /// `max_keys` from `o`.
    pub fn new(
        name: &'static str,
        o: &crate::registry::Options,
        fresh: impl Fn() -> F + Send + 'static,
    ) -> Result<Self, String> {
        Ok(Running {
            name,
            key: Some(o.text("key").to_string()).filter(|k| !k.is_empty()),
            fresh: Box::new(fresh),
            states: KeyStates::from_options(o)?,
        })
    }
}

impl<F: Fit> Drop for Running<F> {
    fn drop(&mut self) {
        crate::window::report(self.name, &self.states);
    }
}

impl<F: Fit> Step for Running<F> {
    fn name(&self) -> &'static str {
        self.name
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
        KeyStates::<HashMap<String, F>>::split(state)
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        let keys = crate::window::row_keys(&batch, self.key.as_deref()).map_err(|reason| {
            StepError::BadInput {
                step: self.name,
                reason,
            }
        })?;
        // the rows of each key, in the order the keys first appear
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some(k) = k {
                let g = *at.entry(k.as_str()).or_insert_with(|| {
                    groups.push((k.clone(), Vec::new()));
                    groups.len() - 1
                });
                groups[g].1.push(i);
            }
        }
        let now = std::time::Instant::now();
        self.states.expire(now);
        let (names, values) = crate::window::value_columns(&batch, self.key.as_deref());
        let mut out = vec![vec![f64::NAN; keys.len()]; names.len()];
        // key by key, in the order they first appear: each key is touched once a message (so a
        // key dropped by max_keys is dropped for all its columns at once)
        for (k, rows) in &groups {
            let by_column = self.states.get(k, now);
            for (c, name) in names.iter().enumerate() {
                let x: Vec<f64> = rows.iter().map(|&r| values[c][r]).collect();
                let state = by_column.entry(name.clone()).or_insert_with(&self.fresh);
                state.partial_fit(&x);
                for (&r, v) in rows.iter().zip(&x) {
                    out[c][r] = state.transform(*v);
                }
            }
        }
        let mut out = out.into_iter();
        crate::window::map_value_columns(&batch, self.key.as_deref(), self.name, |_, _| {
            out.next().unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_standard_scaler_equals_one_fit_on_everything_seen() {
        // partial_fit([1, 2]) then partial_fit([3, 4]) has mean 2.5 and var 1.25 of all four
        let mut s = Standard::default();
        s.partial_fit(&[1.0, 2.0]);
        s.partial_fit(&[3.0, 4.0]);
        assert!((s.mean - 2.5).abs() < 1e-15 && (s.var - 1.25).abs() < 1e-15);
        assert!((s.transform(4.0) - 1.5 / 1.25f64.sqrt()).abs() < 1e-15);
        // a column with no value in the first message: NaN for good, as scikit-learn
        let mut s = Standard::default();
        s.partial_fit(&[f64::NAN]);
        s.partial_fit(&[1.0, 2.0]);
        assert!(s.transform(1.0).is_nan());
        let mut m = MinMax::default();
        m.partial_fit(&[2.0, 4.0]);
        m.partial_fit(&[0.0]);
        assert_eq!(m.transform(1.0), 0.25);
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use streamprep_core::Step;

    #[test]
    fn a_running_scaler_saved_and_taken_back_goes_on_as_if_never_stopped() {
        use arrow_array::{Float64Array, StringArray};
        let batch = |k: &[&str], x: &[f64]| {
            streamprep_core::Batch::try_from_iter(vec![
                (
                    "k",
                    std::sync::Arc::new(StringArray::from(k.to_vec())) as arrow_array::ArrayRef,
                ),
                (
                    "x",
                    std::sync::Arc::new(Float64Array::from(x.to_vec())) as _,
                ),
            ])
            .expect("batch")
        };
        let opts = || {
            let mut m = serde_json::Map::new();
            m.insert("fit".into(), "running".into());
            m.insert("key".into(), "k".into());
            crate::registry::Options::from_map(m)
        };
        for make in [
            (|o: &crate::registry::Options| -> Box<dyn Step> {
                Box::new(Running::new("standard_scaler", o, Standard::default).expect("step"))
            }) as fn(&crate::registry::Options) -> Box<dyn Step>,
            |o| Box::new(Running::new("max_abs_scaler", o, MaxAbs::default).expect("step")),
            |o| {
                Box::new(
                    Running::new("min_max_scaler", o, || MinMax::range(0.0, 1.0)).expect("step"),
                )
            },
        ] {
            let first = batch(&["a", "b", "a"], &[1.0, 5.0, f64::NAN]);
            let second = batch(&["a", "b", "b"], &[3.0, -2.0, 7.5]);
            let mut whole = make(&opts());
            whole.apply(first.clone()).expect("first");
            let want = whole.apply(second.clone()).expect("second");
            let mut before = make(&opts());
            before.apply(first).expect("first");
            let saved = before.save_state().expect("state");
            let mut after = make(&opts());
            after.load_state(&saved, &|_| true).expect("loads");
            let got = after.apply(second).expect("second");
            assert_eq!(got, want, "{}", after.name());
        }
    }
}
