//! `drop_duplicates`: `df.drop_duplicates()` over all columns, the first occurrence kept.
//!
//! Fast path (numbers, strings, booleans): a 64-bit hash per row built column by column, and a
//! value-by-value comparison only when two rows hash alike. Missing values compare equal (as
//! pandas compares NaN equal) and `-0.0` equals `0.0` (pandas hashes them alike). Other column
//! types, or two different rows with one hash, take the general path: Arrow's row format and a
//! hash set of encoded rows.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray};
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
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

fn mix(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(K)
}

/// Fold one column into the per-row hashes; `false` if the type has no fast path.
fn hash_column(col: &ArrayRef, hashes: &mut [u64]) -> bool {
    const NULL: u64 = 0x9e37_79b9_7f4a_7c15;
    let nulls = col.logical_nulls();
    let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
    match col.data_type() {
        DataType::Float64 => {
            let v = col.as_primitive::<Float64Type>().values();
            for (i, h) in hashes.iter_mut().enumerate() {
                *h = mix(
                    *h,
                    if valid(i) {
                        (v[i] + 0.0).to_bits()
                    } else {
                        NULL
                    },
                );
            }
        }
        DataType::Int64 => {
            let v = col.as_primitive::<Int64Type>().values();
            for (i, h) in hashes.iter_mut().enumerate() {
                *h = mix(*h, if valid(i) { v[i] as u64 } else { NULL });
            }
        }
        DataType::Utf8 => {
            let a = col.as_string::<i32>();
            for (i, h) in hashes.iter_mut().enumerate() {
                let v = if valid(i) {
                    let mut rh = RowHasher::default();
                    rh.write(a.value(i).as_bytes());
                    rh.0 ^ a.value(i).len() as u64
                } else {
                    NULL
                };
                *h = mix(*h, v);
            }
        }
        DataType::Boolean => {
            let a = col.as_boolean();
            for (i, h) in hashes.iter_mut().enumerate() {
                *h = mix(
                    *h,
                    if valid(i) {
                        u64::from(a.value(i)) + 1
                    } else {
                        NULL
                    },
                );
            }
        }
        _ => return false,
    }
    true
}

/// Rows `a` and `b` hold equal values in every column (nulls equal, `-0.0 == 0.0`).
fn rows_equal(columns: &[ArrayRef], a: usize, b: usize) -> bool {
    columns
        .iter()
        .all(|c| match (c.is_valid(a), c.is_valid(b)) {
            (false, false) => true,
            (true, true) => match c.data_type() {
                DataType::Float64 => {
                    let v = c.as_primitive::<Float64Type>().values();
                    v[a] == v[b]
                }
                _ => c.slice(a, 1).as_ref() == c.slice(b, 1).as_ref(),
            },
            _ => false,
        })
}

/// The rows to keep by hashing, or `None` when the general path must decide.
fn keep_by_hash(columns: &[ArrayRef], n: usize) -> Option<Vec<u32>> {
    let mut hashes = vec![0u64; n];
    for c in columns {
        if !hash_column(c, &mut hashes) {
            return None;
        }
    }
    let mut first: HashMap<u64, u32, BuildHasherDefault<RowHasher>> =
        HashMap::with_capacity_and_hasher(n, Default::default());
    let mut keep = Vec::with_capacity(n);
    for (i, h) in hashes.into_iter().enumerate() {
        match first.entry(h) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i as u32);
                keep.push(i as u32);
            }
            std::collections::hash_map::Entry::Occupied(e) => {
                if !rows_equal(columns, *e.get() as usize, i) {
                    return None; // two different rows share a hash: let the general path decide
                }
            }
        }
    }
    Some(keep)
}

impl DropDuplicates {
    /// The general path: encode rows with Arrow's row format, keep the first of each.
    fn keep_by_rows(&mut self, batch: &Batch) -> Result<Vec<u32>, StepError> {
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
            return Err(StepError::Internal {
                step: NAME,
                reason: "no row converter".into(),
            });
        };
        let rows = conv
            .convert_columns(batch.columns())
            .map_err(|e| StepError::arrow(NAME, e))?;
        let mut seen: HashSet<&[u8], BuildHasherDefault<RowHasher>> =
            HashSet::with_capacity_and_hasher(rows.num_rows(), Default::default());
        Ok((0..rows.num_rows())
            .filter(|&i| seen.insert(rows.row(i).data()))
            .map(|i| i as u32)
            .collect())
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
        let keep = match keep_by_hash(batch.columns(), batch.num_rows()) {
            Some(keep) => keep,
            None => self.keep_by_rows(&batch)?,
        };
        if keep.len() == batch.num_rows() {
            return Ok(batch);
        }
        // `keep` is ascending: a mask lets the filter kernel copy the runs between dropped rows
        // in pieces (most rows are kept), where `take` gathers row by row
        let mut mask = vec![false; batch.num_rows()];
        for &i in &keep {
            mask[i as usize] = true;
        }
        filter_record_batch(&batch, &BooleanArray::from(mask))
            .map_err(|e| StepError::arrow(NAME, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_testkit::{batch_from_json, batch_to_json};

    #[test]
    fn negative_zero_equals_zero_and_other_types_take_the_general_path() {
        let b = batch_from_json(r#"[{"a":0.0,"s":"x"},{"a":-0.0,"s":"x"},{"a":1.5,"s":"x"}]"#);
        assert_eq!(DropDuplicates::default().apply(b).unwrap().num_rows(), 2);
        let nested = batch_from_json(r#"[{"l":[1,2]},{"l":[1,2]},{"l":[3]}]"#);
        let out = DropDuplicates::default().apply(nested).unwrap();
        assert_eq!(batch_to_json(&out), r#"[{"l":[1,2]},{"l":[3]}]"#);
    }

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
