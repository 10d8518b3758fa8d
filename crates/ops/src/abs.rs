//! `abs`: `df[num].abs()`. Types are kept; integers wrap at their minimum like NumPy.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type};
use arrow_array::ArrayRef;
use arrow_schema::DataType;
use std::sync::Arc;
use streamprep_core::numeric::{numeric_columns, replace_columns};
use streamprep_core::{Batch, Step, StepError};

/// Absolute value of every numeric column.
#[derive(Debug, Default)]
pub struct Abs;

fn abs_column(a: &ArrayRef) -> Option<ArrayRef> {
    let out: ArrayRef = match a.data_type() {
        DataType::Float64 => Arc::new(
            a.as_primitive::<Float64Type>()
                .unary::<_, Float64Type>(f64::abs),
        ),
        DataType::Float32 => Arc::new(
            a.as_primitive::<Float32Type>()
                .unary::<_, Float32Type>(f32::abs),
        ),
        DataType::Int64 => Arc::new(
            a.as_primitive::<Int64Type>()
                .unary::<_, Int64Type>(i64::wrapping_abs),
        ),
        DataType::Int32 => Arc::new(
            a.as_primitive::<Int32Type>()
                .unary::<_, Int32Type>(i32::wrapping_abs),
        ),
        DataType::Int16 => Arc::new(
            a.as_primitive::<Int16Type>()
                .unary::<_, Int16Type>(i16::wrapping_abs),
        ),
        DataType::Int8 => Arc::new(
            a.as_primitive::<Int8Type>()
                .unary::<_, Int8Type>(i8::wrapping_abs),
        ),
        _ => return None, // unsigned: already non-negative
    };
    Some(out)
}

impl Step for Abs {
    fn name(&self) -> &'static str {
        "abs"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        let repl: Vec<_> = numeric_columns(batch.schema_ref())
            .into_iter()
            .filter_map(|i| abs_column(batch.column(i)).map(|c| (i, c)))
            .collect();
        if repl.is_empty() {
            return Ok(batch);
        }
        replace_columns(&batch, repl).map_err(|e| StepError::arrow("abs", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_testkit::batch_from_json;

    #[test]
    fn negative_values_become_positive_and_strings_pass() {
        let b = batch_from_json(r#"[{"a":-1.5,"i":-3,"s":"x"},{"a":null,"i":2,"s":"y"}]"#);
        let out = Abs.apply(b).unwrap();
        assert_eq!(
            streamprep_testkit::batch_to_json(&out),
            r#"[{"a":1.5,"i":3,"s":"x"},{"a":null,"i":2,"s":"y"}]"#
        );
    }
}
