//! `normalizer`: `sklearn.preprocessing.Normalizer()` (l2 norm, per row, over the numeric
//! columns). scikit-learn refuses input with missing values; so do we: the whole message goes
//! to the dead-letter output with a reason naming the column and the fix.

use streamprep_core::numeric::{
    from_f64, handle_zeros_in_scale, numeric_columns, replace_columns, to_f64,
};
use streamprep_core::{Batch, Step, StepError};

/// Scales each row to unit l2 norm.
#[derive(Debug, Default)]
pub struct Normalizer;

const NAME: &str = "normalizer";

impl Step for Normalizer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        let schema = batch.schema();
        let idx = numeric_columns(&schema);
        if idx.is_empty() || batch.num_rows() == 0 {
            return Ok(batch);
        }
        let mut cols: Vec<Vec<f64>> = Vec::with_capacity(idx.len());
        for &i in &idx {
            let c = to_f64(batch.column(i));
            if let Some(row) = c.iter().position(|x| !x.is_finite()) {
                return Err(StepError::BadInput {
                    step: NAME,
                    reason: format!(
                        "column '{}' has a missing or infinite value (row {row} of the message); \
                         scikit-learn's Normalizer refuses NaN. Put fillna_zeros, fillna_mean, \
                         fillna_median or handling_missing before normalizer",
                        schema.field(i).name()
                    ),
                });
            }
            cols.push(c);
        }
        let rows = batch.num_rows();
        let mut norms = vec![0.0f64; rows];
        for c in &cols {
            for (n, x) in norms.iter_mut().zip(c) {
                *n += x * x;
            }
        }
        for n in norms.iter_mut() {
            *n = handle_zeros_in_scale(n.sqrt());
        }
        let repl = idx
            .into_iter()
            .zip(cols)
            .map(|(i, mut c)| {
                c.iter_mut().zip(&norms).for_each(|(x, n)| *x /= n);
                (i, from_f64(c))
            })
            .collect();
        replace_columns(&batch, repl).map_err(|e| StepError::arrow(NAME, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_testkit::{batch_from_json, batch_to_json};

    #[test]
    fn rows_get_unit_norm_and_zero_rows_stay_zero() {
        let b = batch_from_json(r#"[{"a":3.0,"b":4,"s":"x"},{"a":0.0,"b":0,"s":"y"}]"#);
        let out = Normalizer.apply(b).unwrap();
        assert_eq!(
            batch_to_json(&out),
            r#"[{"a":0.6,"b":0.8,"s":"x"},{"a":0.0,"b":0.0,"s":"y"}]"#
        );
    }

    #[test]
    fn missing_value_is_refused_with_a_remedy() {
        let b = batch_from_json(r#"[{"a":3.0},{"a":null}]"#);
        let err = Normalizer.apply(b).unwrap_err();
        assert!(matches!(err, StepError::BadInput { .. }));
        assert!(err.to_string().contains("fillna_zeros"), "{err}");
    }
}
