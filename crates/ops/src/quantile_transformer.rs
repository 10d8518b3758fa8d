//! Shared kernel of `quantile_transformer_uniform` and `quantile_transformer_normal`:
//! scikit-learn's `QuantileTransformer(n_quantiles=min(1000, n_rows))` fitted on the message.
//!
//! Follows scikit-learn's `_dense_fit` and `_transform_col` step by step: the references are
//! `np.linspace(0, 1, n_quantiles)`; the quantiles are `np.nanpercentile(col, references * 100)`
//! made monotonic with `np.maximum.accumulate`; a value maps to the mean of the forward and
//! backward `np.interp` (so repeated quantiles map to their middle); bounds are pinned; the
//! normal output goes through the standard normal quantile function and is clipped to
//! `ppf(1e-7 - eps)` and `ppf(1 - (1e-7 - eps))`.
//!
//! scikit-learn subsamples (randomly) above 10,000 rows; we always use every row, so messages
//! of more than 10,000 rows follow `subsample=None`.

use streamprep_core::numeric::{map_numeric_to_f64, quantile_sorted, sorted_present};
use streamprep_core::{Batch, StepError};

const BOUNDS_THRESHOLD: f64 = 1e-7;

/// The output distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Uniform,
    Normal,
}

/// `np.linspace(0, 1, n)` exactly as NumPy computes it.
fn linspace01(n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![0.0];
    }
    let step = 1.0 / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step).collect();
    v[n - 1] = 1.0;
    v
}

/// `np.interp(x, xp, fp)` for finite `x` (NumPy's compiled loop, including its NaN fallback).
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if n == 1 {
        return fp[0];
    }
    if x > xp[n - 1] {
        return fp[n - 1];
    }
    if x < xp[0] {
        return fp[0];
    }
    // largest j with xp[j] <= x (none when xp holds NaN: then the first, not an underflow)
    let j = xp.partition_point(|&q| q <= x).saturating_sub(1);
    if j == n - 1 || xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let mut r = slope * (x - xp[j]) + fp[j];
    if r.is_nan() {
        r = slope * (x - xp[j + 1]) + fp[j + 1];
        if r.is_nan() && fp[j] == fp[j + 1] {
            r = fp[j];
        }
    }
    r
}

pub(crate) fn quantile_transform(
    batch: &Batch,
    out: Output,
    step: &'static str,
) -> Result<Batch, StepError> {
    quantile_transform_n(batch, out, 1000, step)
}

/// [`quantile_transform`] with `n_quantiles` (scikit-learn uses `min(n_quantiles, n_rows)`).
pub(crate) fn quantile_transform_n(
    batch: &Batch,
    out: Output,
    n_quantiles: usize,
    step: &'static str,
) -> Result<Batch, StepError> {
    let n_quantiles = batch.num_rows().min(n_quantiles).max(1);
    let references = linspace01(n_quantiles);
    // np.nanpercentile receives references * 100 and divides by 100 again
    let fractions: Vec<f64> = references.iter().map(|r| (r * 100.0) / 100.0).collect();
    let neg_ref_rev: Vec<f64> = references.iter().rev().map(|r| -r).collect();
    let clip_min = ndtri(BOUNDS_THRESHOLD - f64::EPSILON);
    let clip_max = ndtri(1.0 - (BOUNDS_THRESHOLD - f64::EPSILON));
    map_numeric_to_f64(batch, |mut v| {
        let sorted = sorted_present(&v);
        let mut quantiles: Vec<f64> = fractions
            .iter()
            .map(|&q| quantile_sorted(&sorted, q))
            .collect();
        // np.maximum.accumulate (propagates NaN)
        for i in 1..quantiles.len() {
            let (a, b) = (quantiles[i - 1], quantiles[i]);
            quantiles[i] = if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            };
        }
        let lo = quantiles[0];
        let hi = quantiles[quantiles.len() - 1];
        let neg_q_rev: Vec<f64> = quantiles.iter().rev().map(|q| -q).collect();
        for x in v.iter_mut() {
            let orig = *x;
            if orig.is_nan() {
                continue;
            }
            let (low, up) = match out {
                Output::Uniform => (orig == lo, orig == hi),
                Output::Normal => (orig - BOUNDS_THRESHOLD < lo, orig + BOUNDS_THRESHOLD > hi),
            };
            let mut y = 0.5
                * (interp(orig, &quantiles, &references) - interp(-orig, &neg_q_rev, &neg_ref_rev));
            if up {
                y = 1.0;
            }
            if low {
                y = 0.0;
            }
            if out == Output::Normal {
                y = ndtri(y).clamp(clip_min, clip_max);
            }
            *x = y;
        }
        v
    })
    .map_err(|e| StepError::arrow(step, e))
}

/// Quantile function of the standard normal distribution (Wichura's AS241, PPND16: relative
/// accuracy about 1e-16, the same as SciPy's `ndtri`). `ndtri(0) = -inf`, `ndtri(1) = inf`.
// The coefficients are Wichura's published constants, kept digit for digit as printed.
#[allow(clippy::excessive_precision, clippy::inconsistent_digit_grouping)]
pub(crate) fn ndtri(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q
            * (((((((2509.080_928_730_122_7 * r + 33430.575_583_588_128) * r
                + 67265.770_927_008_700)
                * r
                + 45921.953_931_549_871)
                * r
                + 13731.693_765_509_461)
                * r
                + 1971.590_950_306_551_3)
                * r
                + 133.141_667_891_784_38)
                * r
                + 3.387_132_872_796_366_5)
            / (((((((5226.495_278_852_545_4 * r + 28729.085_735_721_943) * r
                + 39307.895_800_092_710)
                * r
                + 21213.794_301_586_595)
                * r
                + 5394.196_021_424_751_1)
                * r
                + 687.187_007_492_057_91)
                * r
                + 42.313_330_701_600_911)
                * r
                + 1.0);
    }
    let mut r = if q < 0.0 { p } else { 1.0 - p };
    r = (-r.ln()).sqrt();
    let val = if r <= 5.0 {
        r -= 1.6;
        (((((((7.745_450_142_783_414_1e-4 * r + 0.022_723_844_989_269_184) * r
            + 0.241_780_725_177_450_61)
            * r
            + 1.270_458_252_452_368_4)
            * r
            + 3.647_848_324_763_204_5)
            * r
            + 5.769_497_221_460_691_4)
            * r
            + 4.630_337_846_156_545_3)
            * r
            + 1.423_437_110_749_683_5)
            / (((((((1.050_750_071_644_416_9e-9 * r + 5.475_938_084_995_344_9e-4) * r
                + 0.015_198_666_563_616_457)
                * r
                + 0.148_103_976_427_480_07)
                * r
                + 0.689_767_334_985_100_0)
                * r
                + 1.676_384_830_183_803_8)
                * r
                + 2.053_191_626_637_758_8)
                * r
                + 1.0)
    } else {
        r -= 5.0;
        (((((((2.010_334_399_292_288_1e-7 * r + 2.711_555_568_743_487_6e-5) * r
            + 0.001_242_660_947_388_078_4)
            * r
            + 0.026_532_189_526_576_123)
            * r
            + 0.296_560_571_828_504_89)
            * r
            + 1.784_826_539_917_291_3)
            * r
            + 5.463_784_911_164_114_4)
            * r
            + 6.657_904_643_501_103_3)
            / (((((((2.044_263_103_389_939_7e-15 * r + 1.421_511_758_316_446_0e-7) * r
                + 1.846_318_317_510_054_8e-5)
                * r
                + 7.868_691_311_456_132_6e-4)
                * r
                + 0.014_875_361_290_850_615)
                * r
                + 0.136_929_880_922_735_80)
                * r
                + 0.599_832_206_555_887_94)
                * r
                + 1.0)
    };
    if q < 0.0 {
        -val
    } else {
        val
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndtri_known_values() {
        assert_eq!(ndtri(0.5), 0.0);
        assert!((ndtri(0.975) - 1.959_963_984_540_054).abs() < 1e-14);
        assert!((ndtri(1e-7) + 5.199_337_582_192_817).abs() < 1e-12);
    }

    #[test]
    fn interp_matches_numpy_on_repeats() {
        let xp = [0.0, 1.0, 1.0, 2.0];
        let fp = [0.0, 0.25, 0.75, 1.0];
        assert_eq!(interp(1.0, &xp, &fp), 0.75);
        assert_eq!(interp(0.5, &xp, &fp), 0.125);
        assert_eq!(interp(3.0, &xp, &fp), 1.0);
    }
}

/// `quantile_transformer` with options: `QuantileTransformer(n_quantiles=min(n_quantiles,
/// n_rows), output_distribution=...)` per message.
#[derive(Debug)]
pub struct QuantileTransformer {
    n_quantiles: usize,
    output: Output,
}

impl QuantileTransformer {
    /// From validated options (`n_quantiles`, `output_distribution`).
    pub fn from_options(o: &crate::registry::Options) -> Result<Self, String> {
        Ok(QuantileTransformer {
            n_quantiles: o.integer("n_quantiles") as usize,
            output: match o.choice("output_distribution") {
                "normal" => Output::Normal,
                _ => Output::Uniform,
            },
        })
    }
}

impl streamprep_core::Step for QuantileTransformer {
    fn name(&self) -> &'static str {
        "quantile_transformer"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        quantile_transform_n(&batch, self.output, self.n_quantiles, self.name())
    }
}
