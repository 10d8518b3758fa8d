//! Live counters of a running pipeline, read by the status line while it runs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters updated as messages are read and delivered (once per message, never per row).
#[derive(Debug, Default)]
pub struct Stats {
    /// Rows the buffer took from the source.
    pub rows_read: AtomicU64,
    /// Messages the buffer cut.
    pub messages_read: AtomicU64,
    /// Rows that went through the chain.
    pub rows_in: AtomicU64,
    /// Rows written to the sink.
    pub rows_out: AtomicU64,
    /// Messages delivered (processed or shed).
    pub messages: AtomicU64,
    /// Rows sent to dead letters.
    pub dead_letters: AtomicU64,
    /// Rows shed by the `drop_oldest` policy.
    pub dropped: AtomicU64,
    /// Service times, latency and utilisation (recorded per delivered message).
    pub metrics: crate::metrics::Metrics,
    /// Columns that appeared after the schema was fixed and that the sink could not take
    /// (their values were left out), in the order first seen.
    pub dropped_columns: std::sync::Mutex<Vec<String>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// See [`Stats::rows_read`].
    pub rows_read: u64,
    /// See [`Stats::messages_read`].
    pub messages_read: u64,
    /// See [`Stats::rows_in`].
    pub rows_in: u64,
    /// See [`Stats::rows_out`].
    pub rows_out: u64,
    /// See [`Stats::messages`].
    pub messages: u64,
    /// Messages read but not yet delivered.
    pub backlog: u64,
    /// See [`Stats::dead_letters`].
    pub dead_letters: u64,
    /// See [`Stats::dropped`].
    pub dropped: u64,
}

impl Stats {
    /// Read every counter.
    pub fn snapshot(&self) -> Snapshot {
        let messages = self.messages.load(Relaxed);
        let messages_read = self.messages_read.load(Relaxed);
        Snapshot {
            rows_read: self.rows_read.load(Relaxed),
            messages_read,
            rows_in: self.rows_in.load(Relaxed),
            rows_out: self.rows_out.load(Relaxed),
            messages,
            backlog: messages_read.saturating_sub(messages),
            dead_letters: self.dead_letters.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
        }
    }

    /// Record columns a sink could not take; returns those not recorded before (to be
    /// reported once).
    pub fn drop_columns(&self, names: &[String]) -> Vec<String> {
        if names.is_empty() {
            return Vec::new();
        }
        let mut all = self
            .dropped_columns
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let new: Vec<String> = names.iter().filter(|n| !all.contains(n)).cloned().collect();
        all.extend(new.iter().cloned());
        new
    }

    /// The columns dropped so far (see [`Stats::dropped_columns`]).
    pub fn dropped_columns(&self) -> Vec<String> {
        self.dropped_columns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
