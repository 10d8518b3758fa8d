//! `robust_scaler`: `RobustScaler().fit_transform` per message: `(x - median) / (q75 - q25)`,
//! percentiles by NumPy's linear method over the present values; a zero IQR leaves the column
//! centred but unscaled.

use streamprep_core::numeric::{
    handle_zeros_in_scale, map_numeric_to_f64, median_sorted, quantile_sorted, sorted_present,
};
use streamprep_core::{Batch, Step, StepError};

/// Centres on the median and scales by the interquartile range.
#[derive(Debug, Default)]
pub struct RobustScaler;

impl Step for RobustScaler {
    fn name(&self) -> &'static str {
        "robust_scaler"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        map_numeric_to_f64(&batch, |mut v| {
            let s = sorted_present(&v);
            let center = median_sorted(&s);
            let scale =
                handle_zeros_in_scale(quantile_sorted(&s, 0.75) - quantile_sorted(&s, 0.25));
            v.iter_mut().for_each(|x| *x = (*x - center) / scale);
            v
        })
        .map_err(|e| StepError::arrow("robust_scaler", e))
    }
}
