//! `handling_missing`: `df.dropna()`: drops every row with a missing value in any column.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, BooleanArray};
use arrow_buffer::BooleanBuffer;
use arrow_schema::DataType;
use arrow_select::filter::filter_record_batch;
use streamprep_core::{Batch, Step, StepError};

/// Drops rows holding a null (or NaN) anywhere.
#[derive(Debug, Default)]
pub struct HandlingMissing;

impl Step for HandlingMissing {
    fn name(&self) -> &'static str {
        "handling_missing"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        let n = batch.num_rows();
        let mut keep = BooleanBuffer::new_set(n);
        let mut any = false;
        for col in batch.columns() {
            if let Some(nulls) = col.logical_nulls() {
                if nulls.null_count() > 0 {
                    keep = &keep & nulls.inner();
                    any = true;
                }
            }
            let nan: Option<BooleanBuffer> = match col.data_type() {
                DataType::Float64 => {
                    let v = col.as_primitive::<Float64Type>().values();
                    v.iter()
                        .any(|x| x.is_nan())
                        .then(|| v.iter().map(|x| !x.is_nan()).collect())
                }
                DataType::Float32 => {
                    let v = col.as_primitive::<Float32Type>().values();
                    v.iter()
                        .any(|x| x.is_nan())
                        .then(|| v.iter().map(|x| !x.is_nan()).collect())
                }
                _ => None,
            };
            if let Some(nan) = nan {
                keep = &keep & &nan;
                any = true;
            }
        }
        if !any {
            return Ok(batch);
        }
        filter_record_batch(&batch, &BooleanArray::new(keep, None))
            .map_err(|e| StepError::arrow("handling_missing", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_testkit::{batch_from_json, batch_to_json};

    #[test]
    fn drops_rows_with_any_missing_value() {
        let b = batch_from_json(
            r#"[{"a":1,"s":"x"},{"a":null,"s":"y"},{"a":2,"s":null},{"a":3,"s":"z"}]"#,
        );
        let out = HandlingMissing.apply(b).unwrap();
        assert_eq!(batch_to_json(&out), r#"[{"a":1,"s":"x"},{"a":3,"s":"z"}]"#);
    }
}
