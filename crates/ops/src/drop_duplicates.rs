//! `drop_duplicates`: `df.drop_duplicates()` over all columns, the first occurrence kept.
//!
//! Rows are encoded with Arrow's row format (nulls compare equal, as pandas compares NaN equal)
//! and deduplicated with a hash set; the converter is kept between messages of one schema.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use arrow_array::UInt32Array;
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use arrow_select::take::take_record_batch;
use streamprep_core::{Batch, Step, StepError};

/// Removes repeated rows, keeping the first.
#[derive(Default)]
pub struct DropDuplicates {
    converter: Option<(SchemaRef, RowConverter)>,
}

const NAME: &str = "drop_duplicates";

/// FNV-1a over the row bytes: the rows are short and hashed once, so a simple hash beats SipHash.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

impl Step for DropDuplicates {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        if batch.num_rows() < 2 || batch.num_columns() == 0 {
            return Ok(batch);
        }
        let schema = batch.schema();
        let stale = !matches!(&self.converter, Some((s, _)) if *s == schema);
        if stale {
            let fields = schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect();
            let conv = RowConverter::new(fields).map_err(|e| StepError::arrow(NAME, e))?;
            self.converter = Some((schema.clone(), conv));
        }
        let Some((_, conv)) = self.converter.as_mut() else {
            return Ok(batch);
        };
        let rows = conv
            .convert_columns(batch.columns())
            .map_err(|e| StepError::arrow(NAME, e))?;
        let mut seen: HashSet<&[u8], BuildHasherDefault<Fnv>> =
            HashSet::with_capacity_and_hasher(rows.num_rows(), Default::default());
        let keep: Vec<u32> = (0..rows.num_rows())
            .filter(|&i| seen.insert(rows.row(i).data()))
            .map(|i| i as u32)
            .collect();
        if keep.len() == batch.num_rows() {
            return Ok(batch);
        }
        take_record_batch(&batch, &UInt32Array::from(keep)).map_err(|e| StepError::arrow(NAME, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_testkit::{batch_from_json, batch_to_json};

    #[test]
    fn keeps_first_of_each_duplicate_including_nulls() {
        let b = batch_from_json(
            r#"[{"a":1,"s":"x"},{"a":null,"s":"y"},{"a":1,"s":"x"},{"a":null,"s":"y"},{"a":1,"s":"z"}]"#,
        );
        let out = DropDuplicates::default().apply(b).unwrap();
        assert_eq!(
            batch_to_json(&out),
            r#"[{"a":1,"s":"x"},{"a":null,"s":"y"},{"a":1,"s":"z"}]"#
        );
    }
}
