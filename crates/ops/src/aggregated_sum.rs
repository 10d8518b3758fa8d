//! `aggregated_sum`: `df[num].sum()` as a one-row message.
//!
//! Missing values are skipped (pandas `skipna=True`, `min_count=0`), so an all-missing column
//! sums to 0. Integer columns sum as wrapping `i64` (NumPy's behaviour), floats with NumPy's
//! pairwise summation. Non-numeric columns are dropped, as `df[num]` drops them.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, UInt64Array};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema};
use streamprep_core::numeric::{is_integer, nan_sum_count, numeric_columns, to_f64};
use streamprep_core::{Batch, Step, StepError};

/// Column sums as a one-row message.
#[derive(Debug, Default)]
pub struct AggregatedSum;

const NAME: &str = "aggregated_sum";

impl Step for AggregatedSum {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        let schema = batch.schema();
        let mut fields = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for i in numeric_columns(&schema) {
            let f = schema.field(i);
            let col = batch.column(i);
            let out: ArrayRef = match f.data_type() {
                DataType::UInt64 | DataType::UInt32 | DataType::UInt16 | DataType::UInt8 => {
                    let c = cast(col, &DataType::UInt64).map_err(|e| StepError::arrow(NAME, e))?;
                    let s = c
                        .as_primitive::<UInt64Type>()
                        .iter()
                        .flatten()
                        .fold(0u64, u64::wrapping_add);
                    Arc::new(UInt64Array::from(vec![s]))
                }
                dt if is_integer(dt) => {
                    let c = cast(col, &DataType::Int64).map_err(|e| StepError::arrow(NAME, e))?;
                    let s = c
                        .as_primitive::<arrow_array::types::Int64Type>()
                        .iter()
                        .flatten()
                        .fold(0i64, i64::wrapping_add);
                    Arc::new(Int64Array::from(vec![s]))
                }
                _ => Arc::new(Float64Array::from(vec![nan_sum_count(&to_f64(col)).0])),
            };
            fields.push(Field::new(f.name(), out.data_type().clone(), true));
            cols.push(out);
        }
        let schema = Arc::new(Schema::new(fields));
        if cols.is_empty() {
            return RecordBatch::try_new_with_options(
                schema,
                cols,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(1)),
            )
            .map_err(|e| StepError::arrow(NAME, e));
        }
        RecordBatch::try_new(schema, cols).map_err(|e| StepError::arrow(NAME, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_testkit::{batch_from_json, batch_to_json};

    #[test]
    fn sums_skip_missing_and_drop_strings() {
        let b = batch_from_json(
            r#"[{"a":1.5,"i":3,"s":"x","n":null},{"a":null,"i":2,"s":"y","n":null}]"#,
        );
        let out = AggregatedSum.apply(b).unwrap();
        // `n` is entirely missing in both rows and inferred as a null column: not numeric.
        assert_eq!(batch_to_json(&out), r#"[{"a":1.5,"i":5}]"#);
    }
}
