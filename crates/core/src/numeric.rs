//! Numeric helpers with NumPy's exact arithmetic, shared by the steps.
//!
//! The steps promise results within 1e-9 of pandas and scikit-learn, so the reductions here
//! follow NumPy's own order of operations: pairwise summation (`np.add.reduce`), the `linear`
//! percentile with NumPy's two-sided `_lerp`, and scikit-learn's `_handle_zeros_in_scale`.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow_buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Schema};

/// True for the types pandas' `select_dtypes(include="number")` selects: integers and floats
/// (not booleans, strings, timestamps).
pub fn is_numeric(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
    )
}

/// True for integer types.
pub fn is_integer(dt: &DataType) -> bool {
    is_numeric(dt) && !matches!(dt, DataType::Float32 | DataType::Float64)
}

/// Indices of the numeric columns of a schema, in schema order.
pub fn numeric_columns(schema: &Schema) -> Vec<usize> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| is_numeric(f.data_type()))
        .map(|(i, _)| i)
        .collect()
}

fn prim_to_f64<T, F>(a: &dyn Array, conv: F) -> Vec<f64>
where
    T: arrow_array::ArrowPrimitiveType,
    F: Fn(T::Native) -> f64,
{
    let p = a.as_primitive::<T>();
    match p.nulls() {
        None => p.values().iter().map(|v| conv(*v)).collect(),
        Some(n) => p
            .values()
            .iter()
            .zip(n.iter())
            .map(|(v, valid)| if valid { conv(*v) } else { f64::NAN })
            .collect(),
    }
}

/// A numeric column as `f64`, missing values as `NaN` (what `df[col].to_numpy(float)` gives).
/// Non-numeric columns give an empty vector.
pub fn to_f64(a: &ArrayRef) -> Vec<f64> {
    let a = a.as_ref();
    match a.data_type() {
        DataType::Float64 => prim_to_f64::<Float64Type, _>(a, |v| v),
        DataType::Float32 => prim_to_f64::<Float32Type, _>(a, f64::from),
        DataType::Int64 => prim_to_f64::<Int64Type, _>(a, |v| v as f64),
        DataType::Int32 => prim_to_f64::<Int32Type, _>(a, f64::from),
        DataType::Int16 => prim_to_f64::<Int16Type, _>(a, f64::from),
        DataType::Int8 => prim_to_f64::<Int8Type, _>(a, f64::from),
        DataType::UInt64 => prim_to_f64::<UInt64Type, _>(a, |v| v as f64),
        DataType::UInt32 => prim_to_f64::<UInt32Type, _>(a, f64::from),
        DataType::UInt16 => prim_to_f64::<UInt16Type, _>(a, f64::from),
        DataType::UInt8 => prim_to_f64::<UInt8Type, _>(a, f64::from),
        _ => Vec::new(),
    }
}

/// Build a `Float64` column; `NaN` becomes null (pandas' missing value).
pub fn from_f64(values: Vec<f64>) -> ArrayRef {
    let has_nan = values.iter().any(|v| v.is_nan());
    let nulls = if has_nan {
        Some(NullBuffer::new(BooleanBuffer::from_iter(
            values.iter().map(|v| !v.is_nan()),
        )))
    } else {
        None
    };
    Arc::new(Float64Array::new(ScalarBuffer::from(values), nulls))
}

/// True when the column holds a missing value (null, or NaN in a float column).
pub fn has_missing(a: &ArrayRef) -> bool {
    if a.null_count() > 0 {
        return true;
    }
    match a.data_type() {
        DataType::Float64 => a
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .any(|v| v.is_nan()),
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .any(|v| v.is_nan()),
        _ => false,
    }
}

/// Replace some columns of a batch (by index). The schema is reused when no column changes
/// type, so a step costs no schema rebuild on the (common) same-type path.
pub fn replace_columns(
    batch: &RecordBatch,
    replacements: Vec<(usize, ArrayRef)>,
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let mut fields: Option<Vec<FieldRef>> = None;
    for (i, col) in replacements {
        let f = schema.field(i);
        if f.data_type() != col.data_type() || (!f.is_nullable() && col.null_count() > 0) {
            let fs = fields.get_or_insert_with(|| schema.fields().iter().cloned().collect());
            fs[i] = Arc::new(Field::new(f.name(), col.data_type().clone(), true));
        }
        columns[i] = col;
    }
    let schema = match fields {
        None => schema,
        Some(fs) => Arc::new(Schema::new_with_metadata(fs, schema.metadata().clone())),
    };
    RecordBatch::try_new(schema, columns)
}

/// Apply `f` to every numeric column as `f64` and write the result back as `Float64`
/// (scikit-learn transformers return float64 whatever the input dtype).
pub fn map_numeric_to_f64<F>(batch: &RecordBatch, mut f: F) -> Result<RecordBatch, ArrowError>
where
    F: FnMut(Vec<f64>) -> Vec<f64>,
{
    let idx = numeric_columns(batch.schema_ref());
    if idx.is_empty() || batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let repl = idx
        .into_iter()
        .map(|i| (i, from_f64(f(to_f64(batch.column(i))))))
        .collect();
    replace_columns(batch, repl)
}

const PW_BLOCKSIZE: usize = 128;

/// NumPy's pairwise summation (`np.add.reduce` on a contiguous float64 array), bit for bit.
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for v in a {
            res += v;
        }
        res
    } else if n <= PW_BLOCKSIZE {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// `(sum, count)` ignoring NaN, as pandas' `nanops` does: NaN replaced by 0, then summed.
pub fn nan_sum_count(a: &[f64]) -> (f64, usize) {
    let count = a.iter().filter(|v| !v.is_nan()).count();
    if count == a.len() {
        return (pairwise_sum(a), count);
    }
    let filled: Vec<f64> = a
        .iter()
        .map(|v| if v.is_nan() { 0.0 } else { *v })
        .collect();
    (pairwise_sum(&filled), count)
}

/// `np.nanmean`: NaN when every value is missing.
pub fn nan_mean(a: &[f64]) -> f64 {
    let (s, n) = nan_sum_count(a);
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// The non-missing values, sorted ascending.
pub fn sorted_present(a: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = a.iter().copied().filter(|v| !v.is_nan()).collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// NumPy's `_lerp`: `a + (b - a) * t`, computed from `b` when `t >= 0.5` for symmetry.
pub fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// `np.percentile(..., method="linear")` on sorted, NaN-free data; `q` is a fraction in [0, 1].
/// NaN for empty input (what `np.nanpercentile` returns for an all-NaN column).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let vi = (n - 1) as f64 * q;
    if vi >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    if vi < 0.0 {
        return sorted[0];
    }
    let prev = vi.floor();
    let i = prev as usize;
    lerp(sorted[i], sorted[i + 1], vi - prev)
}

/// `np.nanmedian` on sorted, NaN-free data.
pub fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// scikit-learn's `_handle_zeros_in_scale` without a constant mask: a scale below
/// `10 * eps` becomes 1 so constant features are left unscaled instead of divided by zero.
pub fn handle_zeros_in_scale(scale: f64) -> f64 {
    if scale < 10.0 * f64::EPSILON {
        1.0
    } else {
        scale
    }
}

/// `np.minimum`: a NaN on either side gives NaN.
pub fn np_minimum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// `np.maximum`: a NaN on either side gives NaN.
pub fn np_maximum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// `(np.nanmin(x), np.nanmax(x))`: NaN only when every value is.
pub fn nan_min_max(x: &[f64]) -> (f64, f64) {
    let (mut mn, mut mx) = (f64::NAN, f64::NAN);
    for &v in x.iter().filter(|v| !v.is_nan()) {
        if mn.is_nan() || v < mn {
            mn = v;
        }
        if mx.is_nan() || v > mx {
            mx = v;
        }
    }
    (mn, mx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_matches_naive_on_small_and_splits_large() {
        assert_eq!(pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        assert_eq!(pairwise_sum(&v), 499_500.0);
        // 0.1 added 10 times: naive gives 0.9999999999999999, NumPy's unrolled sum gives 1.0
        assert_eq!(pairwise_sum(&[0.1; 10]), 1.0);
    }

    #[test]
    fn quantiles_follow_numpy_linear() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&s, 0.25), 1.75);
        assert_eq!(quantile_sorted(&s, 0.75), 3.25);
        assert_eq!(quantile_sorted(&s, 1.0), 4.0);
        assert_eq!(median_sorted(&s), 2.5);
        assert!(quantile_sorted(&[], 0.5).is_nan());
    }

    #[test]
    fn nan_becomes_null() {
        let a = from_f64(vec![1.0, f64::NAN]);
        assert_eq!(a.null_count(), 1);
        assert!(has_missing(&a));
    }
}
