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
pub mod time;

pub use error::StepError;
pub use io::{
    AckToken, Acker, DeadLetterSink, IoError, LinkHealth, Read, RowBlock, Sink, Source, SourceKind,
};
pub use message::{DeadLetter, Encoding, Message, Output, Payload, RowFormat};
pub use step::{KeyCounts, Step};

/// A message in columnar form: the unit every step works on.
pub type Batch = arrow_array::RecordBatch;

/// A duration as users write it: `250us`, `50ms`, `2s`, `1m`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("'{text}' is not a duration (e.g. 50ms, 2s)"))?;
    let secs = match unit.trim() {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("'{text}': give a unit: us, ms, s or m (e.g. 50ms)")),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}
