//! The preprocessing steps of streamprep, one file each, with pandas / scikit-learn semantics,
//! and the [`registry`] that names them.
//!
//! Every numeric step acts on the integer and float columns of a message; other columns pass
//! through. Scalers are fitted on the message they transform (`fit_transform` per message).
//! Missing values are Arrow nulls; the kernels see them as NaN, as NumPy does.
//!
//! ```
//! use streamprep_ops::registry::build_chain;
//! let chain = build_chain(&["fillna_zeros", "normalizer", "drop_duplicates"]).unwrap();
//! assert_eq!(chain[1].name(), "normalizer");
//! ```
#![deny(missing_docs)]

mod abs;
mod aggregated_sum;
pub mod codec;
pub mod downsample;
mod drop_duplicates;
pub mod eval;
pub mod exec;
mod fillna_mean;
mod fillna_median;
mod fillna_zeros;
mod handling_missing;
pub mod keystate;
mod max_abs_scaler;
mod min_max_scaler;
mod min_max_scaler_0_1;
mod min_max_scaler_m1_1;
mod normalizer;
pub mod prepare;
mod quantile_transformer;
mod quantile_transformer_normal;
mod quantile_transformer_uniform;
pub mod registry;
mod resample;
pub mod result;
mod robust_scaler;
pub mod running;
mod standard_scaler;
pub mod window;

pub use abs::Abs;
pub use aggregated_sum::AggregatedSum;
pub use drop_duplicates::DropDuplicates;
pub use fillna_mean::FillnaMean;
pub use fillna_median::FillnaMedian;
pub use fillna_zeros::FillnaZeros;
pub use handling_missing::HandlingMissing;
pub use max_abs_scaler::MaxAbsScaler;
pub use min_max_scaler::MinMaxScaler;
pub use min_max_scaler_0_1::MinMaxScaler01;
pub use min_max_scaler_m1_1::MinMaxScalerM11;
pub use normalizer::Normalizer;
pub use quantile_transformer::QuantileTransformer;
pub use quantile_transformer_normal::QuantileTransformerNormal;
pub use quantile_transformer_uniform::QuantileTransformerUniform;
pub use robust_scaler::RobustScaler;
pub use standard_scaler::StandardScaler;
