//! `quantile_transformer_normal`:
//! `QuantileTransformer(n_quantiles=min(1000, n_rows), output_distribution="normal")`.

use crate::quantile_transformer::{quantile_transform, Output};
use streamprep_core::{Batch, Step, StepError};

/// Maps each numeric column to a standard normal through its empirical CDF on the message.
#[derive(Debug, Default)]
pub struct QuantileTransformerNormal;

impl Step for QuantileTransformerNormal {
    fn name(&self) -> &'static str {
        "quantile_transformer_normal"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        quantile_transform(&batch, Output::Normal, self.name())
    }
}
