//! `fillna_median`: `df[num].fillna(df[num].median())`; numeric columns come out as float64.

use streamprep_core::numeric::{map_numeric_to_f64, median_sorted, sorted_present};
use streamprep_core::{Batch, Step, StepError};

/// Fills missing numeric values with the column median of the message.
#[derive(Debug, Default)]
pub struct FillnaMedian;

impl Step for FillnaMedian {
    fn name(&self) -> &'static str {
        "fillna_median"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        map_numeric_to_f64(&batch, |mut v| {
            if v.iter().any(|x| x.is_nan()) {
                let m = median_sorted(&sorted_present(&v));
                v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = m);
            }
            v
        })
        .map_err(|e| StepError::arrow("fillna_median", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_testkit::{batch_from_json, batch_to_json};

    #[test]
    fn fills_with_median() {
        let b = batch_from_json(r#"[{"a":1.0},{"a":null},{"a":4.0},{"a":10.0}]"#);
        let out = FillnaMedian.apply(b).unwrap();
        assert_eq!(
            batch_to_json(&out),
            r#"[{"a":1.0},{"a":4.0},{"a":4.0},{"a":10.0}]"#
        );
    }
}
