//! `fillna_mean`: `df[num].fillna(df[num].mean())`.
//!
//! Numeric columns come out as float64 (pandas holds any column with a missing value as
//! float64, and a fixed output type keeps the stream's schema stable). A column with no value
//! at all stays missing, as in pandas (its mean is NaN).

use streamprep_core::numeric::{map_numeric_to_f64, nan_mean};
use streamprep_core::{Batch, Step, StepError};

/// Fills missing numeric values with the column mean of the message.
#[derive(Debug, Default)]
pub struct FillnaMean;

impl Step for FillnaMean {
    fn name(&self) -> &'static str {
        "fillna_mean"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        map_numeric_to_f64(&batch, |mut v| {
            if v.iter().any(|x| x.is_nan()) {
                let m = nan_mean(&v);
                v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = m);
            }
            v
        })
        .map_err(|e| StepError::arrow("fillna_mean", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_testkit::{batch_from_json, batch_to_json};

    #[test]
    fn fills_with_mean_of_present_values() {
        let b = batch_from_json(r#"[{"a":1.0,"i":1},{"a":null,"i":null},{"a":4.0,"i":4}]"#);
        let out = FillnaMean.apply(b).unwrap();
        assert_eq!(
            batch_to_json(&out),
            r#"[{"a":1.0,"i":1.0},{"a":2.5,"i":2.5},{"a":4.0,"i":4.0}]"#
        );
    }
}
