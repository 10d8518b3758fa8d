//! `min_max_scaler` (with its option `feature_range`), and the kernel it shares with
//! `min_max_scaler_0_1` and `min_max_scaler_m1_1`: scikit-learn's
//! `MinMaxScaler(feature_range=(lo, hi))`: `scale = (hi - lo) / range`, `min = lo - data_min * scale`,
//! `x * scale + min`, in that order.

use streamprep_core::numeric::{handle_zeros_in_scale, map_numeric_to_f64, nan_min_max};
use streamprep_core::{Batch, StepError};

pub(crate) fn min_max(
    batch: &Batch,
    lo: f64,
    hi: f64,
    step: &'static str,
) -> Result<Batch, StepError> {
    map_numeric_to_f64(batch, |mut v| {
        let (mn, mx) = nan_min_max(&v);
        let scale = (hi - lo) / handle_zeros_in_scale(mx - mn);
        let min = lo - mn * scale;
        v.iter_mut().for_each(|x| *x = *x * scale + min);
        v
    })
    .map_err(|e| StepError::arrow(step, e))
}

/// `min_max_scaler`: `MinMaxScaler(feature_range=(lo, hi)).fit_transform` per message.
#[derive(Debug)]
pub struct MinMaxScaler {
    lo: f64,
    hi: f64,
}

impl MinMaxScaler {
    /// From validated options (`feature_range`).
    pub fn from_options(o: &crate::registry::Options) -> Result<Self, String> {
        let (lo, hi) = o.range("feature_range");
        if lo >= hi {
            // scikit-learn: "Minimum of desired feature range must be smaller than maximum."
            return Err(format!(
                "feature_range = [{lo}, {hi}]: the minimum must be smaller than the maximum"
            ));
        }
        Ok(MinMaxScaler { lo, hi })
    }
}

impl streamprep_core::Step for MinMaxScaler {
    fn name(&self) -> &'static str {
        "min_max_scaler"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        min_max(&batch, self.lo, self.hi, self.name())
    }
}
