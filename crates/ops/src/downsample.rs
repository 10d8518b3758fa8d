//! Downsampling a whole series to the points a chart needs, with the indices the
//! `tsdownsample` library (PyPI) selects for the same input: `lttb`, `m4` and `minmax_lttb`
//! (its `LTTBDownsampler`, `M4Downsampler`, `MinMaxLTTBDownsampler(minmax_ratio=4)`, single
//! core). The step holds the stream's rows and gives, at its end, the rows selected for any
//! numeric column (each column a series of its own: x the time column as microseconds, or the
//! row's place without one; missing values left out), in their order; per key when keyed.
//! The algorithms follow tsdownsample's Rust code (downsample_rs) operation for operation:
//! equidistant bins on x found by its binary search with a pre-guessed middle and its epsilon,
//! the first index of a minimum and of a maximum, LTTB's areas compared by the bits of their
//! absolute value.

use std::collections::HashMap;

use arrow_array::{Array, StringArray, UInt32Array};
use arrow_schema::DataType;
use streamprep_core::time::parse_iso;
use streamprep_core::{Batch, Step, StepError};

use crate::registry::Options;

/// Which selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// Largest-Triangle-Three-Buckets.
    Lttb,
    /// First, min, max and last of each bin.
    M4,
    /// Min and max of `4 * points` bins, then LTTB over those.
    MinMaxLttb,
}

impl Algo {
    fn name(self) -> &'static str {
        match self {
            Algo::Lttb => "lttb",
            Algo::M4 => "m4",
            Algo::MinMaxLttb => "minmax_lttb",
        }
    }
}

/// The step.
pub struct Downsample {
    algo: Algo,
    points: usize,
    time_column: Option<String>,
    key: Option<String>,
    /// The stream so far, with each row's time as read when it came (read once).
    held: Vec<(Batch, Option<Vec<Option<i64>>>)>,
    /// Per key, the last time seen (rows must come in time order).
    last: HashMap<String, i64>,
}

/// A downsampling step from its options.
pub fn downsample(algo: Algo, o: &Options) -> Result<Box<dyn Step>, String> {
    let points = usize::try_from(o.integer("points")).unwrap_or(0);
    match algo {
        Algo::M4 if points < 4 || points % 4 != 0 => {
            return Err(format!(
                "m4: points = {points}: a multiple of 4 (tsdownsample's rule)"
            ))
        }
        _ if points < 3 => return Err(format!("{}: points = {points}: at least 3", algo.name())),
        _ => {}
    }
    Ok(Box::new(Downsample {
        algo,
        points,
        time_column: Some(o.text("time_column").to_string()).filter(|t| !t.is_empty()),
        key: Some(o.text("key").to_string()).filter(|k| !k.is_empty()),
        held: Vec::new(),
        last: HashMap::new(),
    }))
}

/// `lttb` from its options.
pub fn lttb(o: &Options) -> Result<Box<dyn Step>, String> {
    downsample(Algo::Lttb, o)
}

/// `m4` from its options.
pub fn m4(o: &Options) -> Result<Box<dyn Step>, String> {
    downsample(Algo::M4, o)
}

/// `minmax_lttb` from its options.
pub fn minmax_lttb(o: &Options) -> Result<Box<dyn Step>, String> {
    downsample(Algo::MinMaxLttb, o)
}

impl Downsample {
    fn bad(&self, reason: String) -> StepError {
        StepError::BadInput {
            step: self.algo.name(),
            reason,
        }
    }

    /// Each row's time (microseconds), or `None` without a time column; checked in order.
    fn times(&self, batch: &Batch) -> Result<Option<Vec<Option<i64>>>, StepError> {
        let Some(tc) = &self.time_column else {
            return Ok(None);
        };
        let col = batch.column_by_name(tc).ok_or_else(|| {
            self.bad(format!(
                "no time column '{tc}' (set time_column, or \"\" for the rows' order)"
            ))
        })?;
        let text = arrow_cast::cast(col, &DataType::Utf8)
            .map_err(|e| StepError::arrow(self.algo.name(), e))?;
        let text = text
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| self.bad("the time column is not text".into()))?;
        (0..text.len())
            .map(|i| {
                if text.is_null(i) {
                    return Ok(None);
                }
                parse_iso(text.value(i))
                    .map(|(t, _)| Some(t))
                    .ok_or_else(|| {
                        self.bad(format!(
                            "'{}' in '{tc}' is not a time (ISO 8601)",
                            text.value(i)
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

impl Step for Downsample {
    fn name(&self) -> &'static str {
        self.algo.name()
    }

    fn holds_rows(&self) -> bool {
        true
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        if batch.num_rows() == 0 {
            return Ok(batch);
        }
        // refused now, not at the end: the times must read and come in order per key
        let keys = crate::window::row_keys(&batch, self.key.as_deref()).map_err(|r| self.bad(r))?;
        let times = self.times(&batch)?;
        if let Some(times) = &times {
            let mut last = self.last.clone();
            for (k, t) in keys.iter().zip(times) {
                let (Some(k), Some(t)) = (k, t) else { continue };
                if let Some(prev) = last.get(k) {
                    if t < prev {
                        return Err(self.bad(format!(
                            "a row's time goes back ({} us before the one before it): {} needs each key's rows in time order",
                            prev - t,
                            self.algo.name()
                        )));
                    }
                }
                last.insert(k.clone(), *t);
            }
            self.last = last;
        }
        let empty = batch.slice(0, 0);
        self.held.push((batch, times));
        Ok(empty)
    }

    fn finish(&mut self) -> Result<Option<Batch>, StepError> {
        let held = std::mem::take(&mut self.held);
        self.last.clear();
        let Some((first, _)) = held.first() else {
            return Ok(None);
        };
        // the held messages are read where they are, one column at a time: no copy of the
        // whole stream (it would double the step's memory at the end)
        let schema = first.schema();
        for (b, _) in &held {
            let same = b.num_columns() == schema.fields().len()
                && b.schema()
                    .fields()
                    .iter()
                    .zip(schema.fields())
                    .all(|(f, g)| f.name() == g.name() && f.data_type() == g.data_type());
            if !same {
                return Err(self.bad(
                    "the messages' columns changed during the stream; the selection needs the same columns throughout".into(),
                ));
            }
        }
        let total: usize = held.iter().map(|(b, _)| b.num_rows()).sum();
        let times: Option<Vec<Option<i64>>> = self.time_column.as_ref().map(|_| {
            held.iter()
                .flat_map(|(_, t)| t.iter().flatten().copied())
                .collect()
        });
        // the rows of each key, in order
        let mut by_key: Vec<Vec<usize>> = Vec::new();
        {
            let mut at: HashMap<String, usize> = HashMap::new();
            let mut r = 0;
            for (b, _) in &held {
                for k in crate::window::row_keys(b, self.key.as_deref()).map_err(|e| self.bad(e))? {
                    if let Some(k) = k {
                        let g = *at.entry(k).or_insert_with(|| {
                            by_key.push(Vec::new());
                            by_key.len() - 1
                        });
                        by_key[g].push(r);
                    }
                    r += 1;
                }
            }
        }
        let value_columns: Vec<usize> = streamprep_core::numeric::numeric_columns(&schema)
            .into_iter()
            .filter(|&c| self.key.as_deref() != Some(schema.field(c).name().as_str()))
            .collect();
        let mut keep = vec![false; total];
        for c in value_columns {
            // this column, the whole stream (one column's values at a time)
            let mut col = Vec::with_capacity(total);
            for (b, _) in &held {
                col.extend(streamprep_core::numeric::to_f64(b.column(c)));
            }
            for rows in &by_key {
                // the series: this key's rows with a value (and a time)
                let rows: Vec<usize> = rows
                    .iter()
                    .copied()
                    .filter(|&r| !col[r].is_nan() && times.as_ref().is_none_or(|t| t[r].is_some()))
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let y: Vec<f64> = rows.iter().map(|&r| col[r]).collect();
                let picked = match &times {
                    Some(t) => {
                        let x: Vec<i64> = rows.iter().map(|&r| t[r].unwrap_or(0)).collect();
                        match self.algo {
                            Algo::Lttb => lttb_with_x(&x, &y, self.points),
                            Algo::M4 => m4_with_x(&x, &y, self.points),
                            Algo::MinMaxLttb => minmaxlttb_with_x(&x, &y, self.points, 4),
                        }
                    }
                    None => match self.algo {
                        Algo::Lttb => lttb_without_x(&y, self.points),
                        Algo::M4 => m4_without_x(&y, self.points),
                        Algo::MinMaxLttb => minmaxlttb_without_x(&y, self.points, 4),
                    },
                };
                for p in picked {
                    if let Some(&r) = rows.get(p) {
                        keep[r] = true;
                    }
                }
            }
        }
        // the kept rows of each message, in order
        let mut parts = Vec::new();
        let mut start = 0;
        for (b, _) in &held {
            let n = b.num_rows();
            let take: UInt32Array = (0..n as u32)
                .filter(|&r| keep[start + r as usize])
                .collect();
            start += n;
            if take.is_empty() {
                continue;
            }
            let cols = b
                .columns()
                .iter()
                .map(|c| arrow_select::take::take(c, &take, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StepError::arrow(self.algo.name(), e))?;
            parts.push(
                Batch::try_new(schema.clone(), cols)
                    .map_err(|e| StepError::arrow(self.algo.name(), e))?,
            );
        }
        drop(held);
        arrow_select::concat::concat_batches(&schema, &parts)
            .map(Some)
            .map_err(|e| StepError::arrow(self.algo.name(), e))
    }
}

// ---- tsdownsample's algorithms (downsample_rs, single core), operation for operation ----

/// An x value: tsdownsample's `AsPrimitive<f64>` and `FromPrimitive::from_f64`.
trait XValue: Copy + PartialOrd {
    fn as_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl XValue for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        // num-traits: in range, truncated toward zero
        v as i64
    }
}

impl XValue for usize {
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as usize
    }
}

/// The first index of the smallest and of the largest value (values are never missing here),
/// with the SIMD the CPU has, through the crate tsdownsample uses.
fn argminmax(y: &[f64]) -> (usize, usize) {
    argminmax::ArgMinMax::argminmax(&y)
}

fn binary_search_with_mid<T: XValue>(
    arr: &[T],
    value: T,
    mut left: usize,
    mut right: usize,
    mut mid: usize,
) -> usize {
    while left < right {
        if arr[mid] < value {
            left = mid + 1;
        } else {
            right = mid;
        }
        mid = left + (right - left) / 2;
    }
    if arr[left] <= value {
        left + 1
    } else {
        left
    }
}

const EPSILON: f64 = 1e-12;

fn equidistant_bins<T: XValue>(arr: &[T], nb_bins: usize) -> Vec<Option<(usize, usize)>> {
    let n = nb_bins as f64;
    let val_step = arr[arr.len() - 1].as_f64() / n - arr[0].as_f64() / n;
    let idx_step = arr.len() / nb_bins;
    let arr0 = arr[0].as_f64();
    let mut idx = 0usize;
    (0..nb_bins)
        .map(|i| {
            let start = idx;
            let mul_2 = (i + 1) as f64 / 2.0;
            let search = T::from_f64(arr0 + val_step * mul_2 + val_step * mul_2 + EPSILON);
            if arr[start] >= search {
                return None;
            }
            let mid = (idx + idx_step).min(arr.len() - 2);
            idx = binary_search_with_mid(arr, search, idx, arr.len() - 1, mid);
            Some((start, idx))
        })
        .collect()
}

fn sorted_pair(a: usize, b: usize) -> [usize; 2] {
    if a < b {
        [a, b]
    } else {
        [b, a]
    }
}

fn m4_with_x<T: XValue>(x: &[T], y: &[f64], n_out: usize) -> Vec<usize> {
    if n_out >= y.len() {
        return (0..y.len()).collect();
    }
    let mut out = Vec::with_capacity(n_out);
    for (s, e) in equidistant_bins(x, n_out / 4).into_iter().flatten() {
        if e <= s + 4 {
            out.extend(s..e);
        } else {
            let (lo, hi) = argminmax(&y[s..e]);
            out.push(s);
            out.extend(sorted_pair(lo + s, hi + s));
            out.push(e - 1);
        }
    }
    out
}

fn m4_without_x(y: &[f64], n_out: usize) -> Vec<usize> {
    if n_out >= y.len() {
        return (0..y.len()).collect();
    }
    let block = (y.len() - 1) as f64 / (n_out / 4) as f64;
    let mut out = Vec::with_capacity(n_out);
    let mut start = 0;
    for i in 0..n_out / 4 {
        let end = (block * (i + 1) as f64) as usize + 1;
        let (lo, hi) = argminmax(&y[start..end]);
        out.push(start);
        out.extend(sorted_pair(lo + start, hi + start));
        out.push(end - 1);
        start = end;
    }
    out
}

fn minmax_with_x<T: XValue>(x: &[T], y: &[f64], n_out: usize) -> Vec<usize> {
    if n_out >= y.len() {
        return (0..y.len()).collect();
    }
    let mut out = Vec::with_capacity(n_out);
    for (s, e) in equidistant_bins(x, n_out / 2).into_iter().flatten() {
        if e <= s + 2 {
            out.extend(s..e);
        } else {
            let (lo, hi) = argminmax(&y[s..e]);
            out.extend(sorted_pair(lo + s, hi + s));
        }
    }
    out
}

fn minmax_without_x(y: &[f64], n_out: usize) -> Vec<usize> {
    if n_out >= y.len() {
        return (0..y.len()).collect();
    }
    let block = (y.len() - 1) as f64 / (n_out / 2) as f64;
    let mut out = Vec::with_capacity(n_out);
    let mut start = 0;
    for i in 0..n_out / 2 {
        let end = (block * (i + 1) as f64) as usize + 1;
        let (lo, hi) = argminmax(&y[start..end]);
        out.extend(sorted_pair(lo + start, hi + start));
        start = end;
    }
    out
}

/// |area| compared as tsdownsample compares it: the bits of its absolute value.
fn area_bits(v: f64) -> i64 {
    (v.to_bits() as i64) & 0x7FFF_FFFF_FFFF_FFFF
}

fn average(y: &[f64]) -> f64 {
    y.iter().fold(0f64, |acc, &v| acc + v) / y.len() as f64
}

fn lttb_with_x<T: XValue>(x: &[T], y: &[f64], n_out: usize) -> Vec<usize> {
    if n_out >= x.len() {
        return (0..x.len()).collect();
    }
    let every = (x.len() - 2) as f64 / (n_out - 2) as f64;
    let mut a = 0usize;
    let mut out = vec![0usize; n_out];
    for i in 0..n_out - 2 {
        let avg_start = (every * (i + 1) as f64) as usize + 1;
        let avg_end = ((every * (i + 2) as f64) as usize + 1).min(x.len());
        let avg_y = average(&y[avg_start..avg_end]);
        let avg_x = (x[avg_end - 1].as_f64() + x[avg_start].as_f64()) / 2.0;
        let range_offs = (every * i as f64) as usize + 1;
        let range_to = avg_start;
        let (point_ax, point_ay) = (x[a].as_f64(), y[a]);
        let d1 = point_ax - avg_x;
        let d2 = avg_y - point_ay;
        let offset = d1 * point_ay + d2 * point_ax;
        let mut best = (-1i64, a);
        for (j, (yv, xv)) in y[range_offs..range_to]
            .iter()
            .zip(&x[range_offs..range_to])
            .enumerate()
        {
            let area = area_bits(d1 * yv + d2 * xv.as_f64() - offset);
            if area > best.0 {
                best = (area, j);
            }
        }
        a = best.1 + range_offs;
        out[i + 1] = a;
    }
    out[n_out - 1] = y.len() - 1;
    out
}

fn lttb_without_x(y: &[f64], n_out: usize) -> Vec<usize> {
    if n_out >= y.len() {
        return (0..y.len()).collect();
    }
    let every = (y.len() - 2) as f64 / (n_out - 2) as f64;
    let mut a = 0usize;
    let mut out = vec![0usize; n_out];
    for i in 0..n_out - 2 {
        let avg_start = (every * (i + 1) as f64) as usize + 1;
        let avg_end = ((every * (i + 2) as f64) as usize + 1).min(y.len());
        let avg_y = average(&y[avg_start..avg_end]);
        let avg_x = (avg_start + avg_end - 1) as f64 / 2.0;
        let range_offs = (every * i as f64) as usize + 1;
        let range_to = avg_start;
        let point_ay = y[a];
        let point_ax = a as f64;
        let d1 = point_ax - avg_x;
        let d2 = avg_y - point_ay;
        let mut ax_x = point_ax - range_offs as f64;
        let offset = d1 * point_ay;
        let mut best = (-1i64, a);
        for (j, yv) in y[range_offs..range_to].iter().enumerate() {
            let area = area_bits(d1 * yv - ax_x * d2 - offset);
            ax_x -= 1.0;
            if area > best.0 {
                best = (area, j + range_offs);
            }
        }
        a = best.1;
        out[i + 1] = a;
    }
    out[n_out - 1] = y.len() - 1;
    out
}

fn minmaxlttb_with_x<T: XValue>(x: &[T], y: &[f64], n_out: usize, ratio: usize) -> Vec<usize> {
    if x.len() / n_out > ratio {
        let n = x.len();
        let mut index = minmax_with_x(&x[1..n - 1], &y[1..n - 1], n_out * ratio);
        index.iter_mut().for_each(|i| *i += 1);
        index.insert(0, 0);
        index.push(n - 1);
        let xs: Vec<T> = index.iter().map(|&i| x[i]).collect();
        let ys: Vec<f64> = index.iter().map(|&i| y[i]).collect();
        return lttb_with_x(&xs, &ys, n_out)
            .into_iter()
            .map(|i| index[i])
            .collect();
    }
    lttb_with_x(x, y, n_out)
}

fn minmaxlttb_without_x(y: &[f64], n_out: usize, ratio: usize) -> Vec<usize> {
    if y.len() / n_out > ratio {
        let n = y.len();
        let mut index = minmax_without_x(&y[1..n - 1], n_out * ratio);
        index.iter_mut().for_each(|i| *i += 1);
        index.insert(0, 0);
        index.push(n - 1);
        let ys: Vec<f64> = index.iter().map(|&i| y[i]).collect();
        return lttb_with_x(&index, &ys, n_out)
            .into_iter()
            .map(|i| index[i])
            .collect();
    }
    lttb_without_x(y, n_out)
}

/// The algorithms on plain arrays (for the benchmark against tsdownsample): the indices of
/// `y` (with `x` when given) selected for `n_out` points.
pub fn select(algo: Algo, x: Option<&[i64]>, y: &[f64], n_out: usize) -> Vec<usize> {
    match (algo, x) {
        (Algo::Lttb, Some(x)) => lttb_with_x(x, y, n_out),
        (Algo::Lttb, None) => lttb_without_x(y, n_out),
        (Algo::M4, Some(x)) => m4_with_x(x, y, n_out),
        (Algo::M4, None) => m4_without_x(y, n_out),
        (Algo::MinMaxLttb, Some(x)) => minmaxlttb_with_x(x, y, n_out, 4),
        (Algo::MinMaxLttb, None) => minmaxlttb_without_x(y, n_out, 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsdownsamples_own_examples() {
        // downsample_rs' test: lttb_with_x on a line
        let x: Vec<i64> = (0..10).collect();
        let y: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(lttb_with_x(&x, &y, 4), vec![0, 1, 5, 9]);
        assert_eq!(lttb_without_x(&y, 4), vec![0, 1, 5, 9]);
        // fewer rows than points: every row
        assert_eq!(m4_without_x(&y, 12), (0..10).collect::<Vec<_>>());
        let m = m4_with_x(&x, &y, 4);
        assert_eq!(m, vec![0, 0, 9, 9]);
        // the lanes give the first index of a repeated extreme, as one pass does
        let mut v: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 101) as f64).collect();
        v[500] = -5.0;
        v[900] = -5.0;
        v[37] = 500.0;
        v[38] = 500.0;
        assert_eq!(argminmax(&v), (500, 37));
        for n in [32, 33, 47, 64, 999] {
            let w: Vec<f64> = (0..n).map(|i| ((i * 31) % 17) as f64).collect();
            let first = |f: f64| w.iter().position(|x| *x == f).unwrap_or(0);
            let mn = w.iter().cloned().fold(f64::INFINITY, f64::min);
            let mx = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(argminmax(&w), (first(mn), first(mx)), "{n}");
        }
    }
}
