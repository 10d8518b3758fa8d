//! `min_max_scaler_m1_1`: `MinMaxScaler(feature_range=(-1, 1)).fit_transform` per message.

use streamprep_core::{Batch, Step, StepError};

/// Scales each numeric column to [-1, 1].
#[derive(Debug, Default)]
pub struct MinMaxScalerM11;

impl Step for MinMaxScalerM11 {
    fn name(&self) -> &'static str {
        "min_max_scaler_m1_1"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        crate::min_max_scaler::min_max(&batch, -1.0, 1.0, self.name())
    }
}
