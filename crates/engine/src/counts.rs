//! A copy of a run's counters at one moment (the counters themselves are in
//! [`crate::stats::Stats`]); shared by the stats and the metrics without either importing the
//! other.

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// See [`crate::Stats::rows_read`].
    pub rows_read: u64,
    /// See [`crate::Stats::messages_read`].
    pub messages_read: u64,
    /// See [`crate::Stats::rows_in`].
    pub rows_in: u64,
    /// See [`crate::Stats::rows_out`].
    pub rows_out: u64,
    /// See [`crate::Stats::messages`].
    pub messages: u64,
    /// Messages read but not yet delivered.
    pub backlog: u64,
    /// See [`crate::Stats::dead_letters`].
    pub dead_letters: u64,
    /// See [`crate::Stats::dropped`].
    pub dropped: u64,
}
