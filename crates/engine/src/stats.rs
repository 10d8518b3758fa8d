//! A run's live state: counters (once per message), metrics, events, and the links of its
//! source and broker; [`Stats::figures`] is the serialisable view of all of it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use crate::counts::Snapshot;

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
    /// What happened: warnings, links going down and up, the first dead letters.
    pub events: crate::events::Events,
    /// The source's and the broker's connections, as `(name, health)` (set by the run).
    pub links: std::sync::Mutex<Vec<(String, std::sync::Arc<streamprep_core::LinkHealth>)>>,
    /// Output rows sampled for live charts, while someone listens.
    pub tap: Tap,
    /// The keys each worker's chain holds and dropped, as of its last message.
    pub keys: std::sync::Mutex<Vec<Option<streamprep_core::KeyCounts>>>,
    /// The busiest keys of the last second (keyed runs; the inspector).
    pub busiest: std::sync::Mutex<Vec<crate::keyed_buffer::BusyKey>>,
}

/// A Prometheus label value: backslash, quote and line feed escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Output rows a run samples per second, at most, for live charts (only NDJSON output).
pub const TAP_ROWS_PER_S: u32 = 100;
/// Sampled rows kept at full rate (the last 20 seconds at [`TAP_ROWS_PER_S`]).
pub const TAP_KEEP: usize = 2_000;
/// Older sampled rows kept, one in [`TAP_THIN`] (5 more minutes at the full rate).
pub const TAP_KEEP_OLDER: usize = 3_000;
/// Of the rows leaving the full-rate window, one in this many is kept longer.
pub const TAP_THIN: u64 = 10;
/// The sampling budget is spent per slice of this many milliseconds, so a second's rows are
/// spread over the second.
const TAP_SLICE_MS: u64 = 100;

/// A sampled output row: its number, when it was sampled (ms since 1970), the NDJSON line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampled {
    /// Numbered from 0 in sampling order.
    pub n: u64,
    /// When the sink's side saw it, milliseconds since 1970.
    pub at_ms: u64,
    /// The row as written (NDJSON).
    pub row: String,
}

/// Output rows sampled for live charts: nothing is done while nobody listens; with listeners,
/// at most [`TAP_ROWS_PER_S`] rows a second are copied, spread over the second (a slice of
/// 100 ms takes a tenth, picked evenly across each message's rows). The latest [`TAP_KEEP`]
/// are kept, and one in [`TAP_THIN`] of the rows before them, up to [`TAP_KEEP_OLDER`], so a
/// chart can show the last minutes.
#[derive(Debug, Default)]
pub struct Tap {
    listeners: std::sync::atomic::AtomicUsize,
    inner: std::sync::Mutex<TapInner>,
}

#[derive(Debug, Default)]
struct TapInner {
    rows: std::collections::VecDeque<Sampled>,
    older: std::collections::VecDeque<Sampled>,
    next: u64,
    slice: u64,
    taken: u32,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Tap {
    /// Start listening (sampling goes on while anyone listens): call [`Tap::leave`] once done.
    pub fn join(&self) {
        self.listeners.fetch_add(1, Relaxed);
    }

    /// The end of a [`Tap::join`].
    pub fn leave(&self) {
        self.listeners.fetch_sub(1, Relaxed);
    }

    /// Offer a message's NDJSON output (cheap when nobody listens).
    pub fn offer(&self, ndjson: &[u8]) {
        if self.listeners.load(Relaxed) == 0 || ndjson.is_empty() {
            return;
        }
        let at_ms = now_ms();
        let slice = at_ms / TAP_SLICE_MS;
        let per_slice = (TAP_ROWS_PER_S as u64 * TAP_SLICE_MS / 1000).max(1) as u32;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.slice != slice {
            g.slice = slice;
            g.taken = 0;
        }
        let budget = per_slice.saturating_sub(g.taken) as usize;
        if budget == 0 {
            return;
        }
        let lines: Vec<&[u8]> = ndjson
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let take = budget.min(lines.len());
        for k in 0..take {
            // evenly across the message: the k-th of `take` picks
            let line = lines[k * lines.len() / take];
            g.taken += 1;
            let n = g.next;
            g.next += 1;
            if g.rows.len() == TAP_KEEP {
                if let Some(old) = g.rows.pop_front() {
                    if old.n.is_multiple_of(TAP_THIN) {
                        if g.older.len() == TAP_KEEP_OLDER {
                            g.older.pop_front();
                        }
                        g.older.push_back(old);
                    }
                }
            }
            g.rows.push_back(Sampled {
                n,
                at_ms,
                row: String::from_utf8_lossy(line).into_owned(),
            });
        }
    }

    /// The sampled rows numbered `from` or later that are still kept at full rate, and the
    /// number to ask from next time.
    pub fn since(&self, from: u64) -> (Vec<Sampled>, u64) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rows = g.rows.iter().filter(|s| s.n >= from).cloned().collect();
        (rows, g.next)
    }

    /// Every kept row sampled at `from_ms` or later, oldest first (thinned before the
    /// full-rate window), and the number to ask [`Tap::since`] from next.
    pub fn history(&self, from_ms: u64) -> (Vec<Sampled>, u64) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rows = g
            .older
            .iter()
            .chain(g.rows.iter())
            .filter(|s| s.at_ms >= from_ms)
            .cloned()
            .collect();
        (rows, g.next)
    }
}

/// A connection's state in [`Figures`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkView {
    /// `source` or `broker`.
    pub name: String,
    /// Up now.
    pub connected: bool,
    /// Connections lost so far.
    pub disconnects: u64,
}

/// Everything a status line, a `/metrics` page or a UI shows of a run, at one moment.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    /// The counters.
    pub counts: Snapshot,
    /// Rates and utilisation as of the last second's sample.
    pub live: crate::metrics::Live,
    /// Service time per step and chain, row latency percentiles, rho over the run so far.
    pub report: crate::metrics::Report,
    /// The buffer size in force (rows a message).
    pub buffer: usize,
    /// Columns the sink could not take.
    pub dropped_columns: Vec<String>,
    /// The source's and the broker's connections (none for files).
    pub links: Vec<LinkView>,
    /// The keys the steps that keep state per key hold and dropped, over the workers (none
    /// without such a step).
    pub keys: Option<streamprep_core::KeyCounts>,
    /// The busiest keys of the last second, with their rows/s and last-seen time (keyed runs).
    #[serde(default)]
    pub busiest: Vec<crate::keyed_buffer::BusyKey>,
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

    /// Note a worker's keys after a message.
    pub fn record_keys(&self, worker: usize, keys: Option<streamprep_core::KeyCounts>) {
        if keys.is_none() {
            return;
        }
        let mut k = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if k.len() <= worker {
            k.resize(worker + 1, None);
        }
        k[worker] = keys;
    }

    /// The keys over the workers (each holds its own keys: routed, they do not overlap).
    pub fn key_counts(&self) -> Option<streamprep_core::KeyCounts> {
        let k = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        k.iter().flatten().fold(None, |acc, c| {
            let a = acc.unwrap_or_default();
            Some(streamprep_core::KeyCounts {
                live: a.live + c.live,
                expired: a.expired + c.expired,
                evicted: a.evicted + c.evicted,
            })
        })
    }

    /// The links' states now.
    pub fn link_views(&self) -> Vec<LinkView> {
        use std::sync::atomic::Ordering::Relaxed;
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, l)| LinkView {
                name: name.clone(),
                connected: l.connected.load(Relaxed),
                disconnects: l.disconnects.load(Relaxed),
            })
            .collect()
    }

    /// Everything at this moment.
    pub fn figures(&self) -> Figures {
        Figures {
            counts: self.snapshot(),
            live: self.metrics.live(),
            report: self.metrics.report(),
            buffer: self.metrics.buffer(),
            dropped_columns: self.dropped_columns(),
            links: self.link_views(),
            keys: self.key_counts(),
            busiest: self.busiest(),
        }
    }

    /// Note the busiest keys of the last second.
    pub fn set_busiest(&self, top: Vec<crate::keyed_buffer::BusyKey>) {
        *self.busiest.lock().unwrap_or_else(|e| e.into_inner()) = top;
    }

    /// The busiest keys of the last second.
    pub fn busiest(&self) -> Vec<crate::keyed_buffer::BusyKey> {
        self.busiest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The metrics and counters in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        let mut text = self.metrics.prometheus(self.snapshot());
        if let Some(k) = self.key_counts() {
            use std::fmt::Write as _;
            let _ = write!(
                text,
                "# HELP streamprep_keys Keys the steps that keep state per key hold.\n# TYPE streamprep_keys gauge\nstreamprep_keys {}\n\
                 # HELP streamprep_keys_expired_total Keys dropped after key_ttl without a row.\n# TYPE streamprep_keys_expired_total counter\nstreamprep_keys_expired_total {}\n\
                 # HELP streamprep_keys_evicted_total Keys dropped beyond max_keys.\n# TYPE streamprep_keys_evicted_total counter\nstreamprep_keys_evicted_total {}\n",
                k.live, k.expired, k.evicted
            );
        }
        let busiest = self.busiest();
        if !busiest.is_empty() {
            use std::fmt::Write as _;
            text.push_str(
                "# HELP streamprep_key_rows_per_second Rows a second of the busiest keys over the last second.\n\
                 # TYPE streamprep_key_rows_per_second gauge\n",
            );
            for b in &busiest {
                let _ = writeln!(
                    text,
                    "streamprep_key_rows_per_second{{key=\"{}\"}} {}",
                    label_value(&b.key),
                    b.rows_per_s
                );
            }
        }
        text
    }

    /// A warning: to the run's events and to the host's log (`tracing`).
    pub fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.events.log(crate::events::Level::Warning, message);
    }

    /// A line for the log: to the run's events and to the host's log (`tracing`).
    pub fn info(&self, message: String) {
        tracing::info!("{message}");
        self.events.log(crate::events::Level::Info, message);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tap_samples_only_while_listened_to_and_at_most_its_rate() {
        let tap = Tap::default();
        let message: String = (0..300).map(|i| format!("{{\"a\":{i}}}\n")).collect();
        tap.offer(message.as_bytes());
        assert_eq!(tap.since(0).0.len(), 0, "nobody listens: nothing kept");
        tap.join();
        tap.offer(message.as_bytes());
        tap.offer(message.as_bytes());
        tap.leave();
        let (rows, next) = tap.since(0);
        // two messages in (almost surely) one 100 ms slice: a slice's budget, once (or twice
        // when the slice turned between them)
        let per_slice = TAP_ROWS_PER_S as usize / 10;
        assert!(
            rows.len() >= per_slice && rows.len() <= 2 * per_slice,
            "{}",
            rows.len()
        );
        // spread evenly over the message, not its first rows
        assert_eq!(rows[0].row, "{\"a\":0}");
        assert_eq!(rows[1].row, format!("{{\"a\":{}}}", 300 / per_slice));
        assert_eq!(tap.since(next).0.len(), 0);
        tap.offer(message.as_bytes());
        assert_eq!(tap.since(next).0.len(), 0, "the listener left");
        assert_eq!(tap.history(0).0.len(), rows.len());
        assert_eq!(tap.history(u64::MAX).0.len(), 0);
    }

    #[test]
    fn the_busiest_keys_reach_prometheus_with_their_labels_escaped() {
        let stats = Stats::default();
        assert!(!stats
            .prometheus()
            .contains("streamprep_key_rows_per_second"));
        stats.set_busiest(vec![crate::keyed_buffer::BusyKey {
            key: "a \"b\"\\c\nd".into(),
            rows_per_s: 12.5,
            last_seen_s: 0.25,
        }]);
        let text = stats.prometheus();
        assert!(
            text.contains("streamprep_key_rows_per_second{key=\"a \\\"b\\\"\\\\c\\nd\"} 12.5"),
            "{text}"
        );
        assert_eq!(stats.figures().busiest.len(), 1);
    }
}
