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

/// A word-at-a-time hash of the encoded row (FxHash's mixing, 8 bytes a step, with a
/// murmur3 finaliser so hashbrown's top bits are well spread). Rows are hashed once per
/// message and compared byte for byte on a hit, so speed matters more than DoS resistance.
#[derive(Default)]
struct RowHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for RowHasher {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w) ^ rest.len() as u64).wrapping_mul(K);
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
        let mut seen: HashSet<&[u8], BuildHasherDefault<RowHasher>> =
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
