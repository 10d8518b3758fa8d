//! `min_max_scaler_0_1`: `MinMaxScaler(feature_range=(0, 1)).fit_transform` per message.

use streamprep_core::{Batch, Step, StepError};

/// Scales each numeric column to [0, 1].
#[derive(Debug, Default)]
pub struct MinMaxScaler01;

impl Step for MinMaxScaler01 {
    fn name(&self) -> &'static str {
        "min_max_scaler_0_1"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        crate::min_max_scaler::min_max(&batch, 0.0, 1.0, self.name())
    }
}
