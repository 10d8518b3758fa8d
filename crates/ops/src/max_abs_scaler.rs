//! `max_abs_scaler`: `sklearn.preprocessing.MaxAbsScaler().fit_transform` per message.
//!
//! `x / max(|x|)` per column, ignoring missing values; a column whose maximum absolute value is
//! (near) zero is left unscaled (`_handle_zeros_in_scale`).

use streamprep_core::numeric::{handle_zeros_in_scale, map_numeric_to_f64};
use streamprep_core::{Batch, Step, StepError};

/// Scales each numeric column by its maximum absolute value.
#[derive(Debug, Default)]
pub struct MaxAbsScaler;

impl Step for MaxAbsScaler {
    fn name(&self) -> &'static str {
        "max_abs_scaler"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        map_numeric_to_f64(&batch, |mut v| {
            // np.nanmax: NaN only when every value is NaN
            let max_abs = v
                .iter()
                .filter(|x| !x.is_nan())
                .map(|x| x.abs())
                .fold(f64::NAN, |m, x| if m.is_nan() || x > m { x } else { m });
            let scale = handle_zeros_in_scale(max_abs);
            v.iter_mut().for_each(|x| *x /= scale);
            v
        })
        .map_err(|e| StepError::arrow("max_abs_scaler", e))
    }
}
