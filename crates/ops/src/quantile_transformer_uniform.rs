//! `quantile_transformer_uniform`:
//! `QuantileTransformer(n_quantiles=min(1000, n_rows), output_distribution="uniform")`.

use crate::quantile_transformer::{quantile_transform, Output};
use streamprep_core::{Batch, Step, StepError};

/// Maps each numeric column to its empirical CDF on the message.
#[derive(Debug, Default)]
pub struct QuantileTransformerUniform;

impl Step for QuantileTransformerUniform {
    fn name(&self) -> &'static str {
        "quantile_transformer_uniform"
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        quantile_transform(&batch, Output::Uniform, self.name())
    }
}
