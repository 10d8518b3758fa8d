//! `standard_scaler`: `StandardScaler().fit_transform` per message: `(x - mean) / std` with the
//! population standard deviation, computed as scikit-learn's `_incremental_mean_and_var` does
//! (two passes with a correction term). A column scikit-learn deems constant
//! (`_is_constant_feature`) is centred but not scaled.

use streamprep_core::numeric::{map_numeric_to_f64, nan_sum_count};
use streamprep_core::{Batch, Step, StepError};

/// Standardises each numeric column of the message.
#[derive(Debug, Default)]
pub struct StandardScaler;

impl Step for StandardScaler {
    fn name(&self) -> &'static str {
        "standard_scaler"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        map_numeric_to_f64(&batch, |mut v| {
            let (sum, count) = nan_sum_count(&v);
            let n = count as f64;
            let mean = sum / n;
            let dev: Vec<f64> = v.iter().map(|x| x - mean).collect();
            let (correction, _) = nan_sum_count(&dev);
            let sq: Vec<f64> = dev.iter().map(|d| d * d).collect();
            let (unnormalized, _) = nan_sum_count(&sq);
            let var = (unnormalized - correction * correction / n) / n;
            let eps = f64::EPSILON;
            let upper = n * eps * var + (n * mean * eps) * (n * mean * eps);
            let constant = var <= upper;
            let scale = if constant { 1.0 } else { var.sqrt() };
            v.iter_mut().for_each(|x| *x = (*x - mean) / scale);
            v
        })
        .map_err(|e| StepError::arrow("standard_scaler", e))
    }
}
