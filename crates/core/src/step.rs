//! The one trait a preprocessing step implements.

use crate::{Batch, StepError};

/// One preprocessing operation applied to a message.
///
/// Steps are synchronous and CPU-bound. A chain owns its steps (`&mut self`), and every worker
/// of the pool builds its own chain, so a step may keep scratch buffers between messages
/// without locking.
pub trait Step: Send {
    /// The registry name of the step (`standard_scaler`, ...).
    fn name(&self) -> &'static str;

    /// Transform one message. A step must accept an empty (0-row) batch and a batch without
    /// numeric columns, returning them unchanged unless its semantics say otherwise.
    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError>;

    /// Whether the step applied to an empty message gives the columns (and types) it gives
    /// every message with those columns, so a sink that cannot add columns can be set up from
    /// it. False for `exec`: the user's code may type a column by the values it sees.
    fn columns_from_empty(&self) -> bool {
        true
    }

    /// For a step that keeps state per key: the keys it holds, and those it dropped (idle
    /// past `key_ttl`, beyond `max_keys`) so far.
    fn key_counts(&self) -> Option<KeyCounts> {
        None
    }

    /// Whether the step may hold rows back until the end of the stream (a resample's open
    /// bin, a whole series to downsample): the chain then gets an end-of-stream message.
    fn holds_rows(&self) -> bool {
        false
    }

    /// The end of the stream: the rows the step still holds, if any.
    fn finish(&mut self) -> Result<Option<Batch>, StepError> {
        Ok(None)
    }

    /// The state the step keeps from message to message, to carry over a stop (`None`: it
    /// keeps none).
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Take back state [`Step::save_state`] gave (of this step in a chain like this one),
    /// adding to what the step holds; a step keeping state per key takes the keys `keep`
    /// accepts (the others belong to another worker).
    fn load_state(&mut self, state: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<(), String> {
        let _ = (state, keep);
        Ok(())
    }

    /// Cut state [`Step::save_state`] gave into one piece a key (each as `save_state` gives a
    /// single key's), for hosts that keep each key's state apart (the queue method).
    fn split_state(&self, state: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        let _ = state;
        Ok(Vec::new())
    }
}

/// The keys a step keeps state for (the seed-003 inspector's figures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyCounts {
    /// Keys held now.
    pub live: u64,
    /// Keys dropped after `key_ttl` without a row.
    pub expired: u64,
    /// Keys dropped beyond `max_keys`.
    pub evicted: u64,
}
