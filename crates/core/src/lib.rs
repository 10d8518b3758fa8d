//! Shared vocabulary of streamprep: the columnar [`Batch`], the [`Step`] trait every
//! preprocessing step implements, the [`Message`] that travels from the buffer to the chain,
//! dead letters, and the numeric helpers that give every step pandas/NumPy semantics.
//!
//! Missing values are Arrow nulls on the wire and `NaN` inside numeric kernels, exactly as
//! pandas treats them; [`numeric::to_f64`] and [`numeric::from_f64`] convert between the two.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Float64Array, RecordBatch};
//! use streamprep_core::numeric::{numeric_columns, to_f64};
//!
//! let batch = RecordBatch::try_from_iter([(
//!     "t",
//!     Arc::new(Float64Array::from(vec![Some(1.5), None])) as _,
//! )])
//! .unwrap();
//! assert_eq!(numeric_columns(batch.schema_ref()), vec![0]);
//! let v = to_f64(batch.column(0));
//! assert!(v[1].is_nan());
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod io;
pub mod message;
pub mod numeric;
pub mod step;

pub use error::StepError;
pub use io::{
    AckToken, Acker, DeadLetterSink, IoError, LinkHealth, Read, RowBlock, Sink, Source, SourceKind,
};
pub use message::{DeadLetter, Encoding, Message, Output, Payload, RowFormat};
pub use step::{KeyCounts, Step};

/// A message in columnar form: the unit every step works on.
pub type Batch = arrow_array::RecordBatch;
