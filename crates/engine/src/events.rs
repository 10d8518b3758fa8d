//! What happens in a run, as it happens: state changes, warnings (saturation, a column a sink
//! cannot take), a source's or broker's link going down and up, the first dead letters, and
//! log lines. A run keeps the latest [`KEPT`] events; each subscriber gets those first, then
//! every new one (a subscriber that falls [`BACKLOG`] events behind misses the newer ones
//! rather than slow the pipeline).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};

/// Events a run keeps for late subscribers.
pub const KEPT: usize = 256;
/// Events a subscriber may fall behind before it misses some.
pub const BACKLOG: usize = 4096;
/// Dead letters reported one by one as events; later ones are only counted.
pub const FIRST_DEAD_LETTERS: u64 = 10;

/// Where a run is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    /// Opening its source and sinks (connecting to a broker, binding a port).
    Starting,
    /// Reading and processing.
    Running,
    /// Told to stop: no more reading; what was read is being processed and flushed.
    Stopping,
    /// Ended (its input was over, or it was stopped) with every processed row in the sinks.
    Finished,
    /// Ended on an error.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

impl RunState {
    /// Finished or failed.
    pub fn is_over(&self) -> bool {
        matches!(self, RunState::Finished | RunState::Failed { .. })
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunState::Starting => write!(f, "starting"),
            RunState::Running => write!(f, "running"),
            RunState::Stopping => write!(f, "stopping"),
            RunState::Finished => write!(f, "finished"),
            RunState::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Something the user should know happened (listening, subscribed, reconnected).
    Info,
    /// Something the user should act on.
    Warning,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The run moved to this state.
    State {
        /// The new state.
        #[serde(flatten)]
        state: RunState,
    },
    /// A line for the log.
    Log {
        /// Info or warning.
        level: Level,
        /// The text.
        message: String,
    },
    /// A source's or broker's connection went down or came back.
    Link {
        /// `source` or `broker`.
        link: String,
        /// Up now.
        connected: bool,
        /// Connections lost so far.
        disconnects: u64,
    },
    /// One of the run's first dead letters.
    DeadLetter {
        /// The message it came from.
        seq: u64,
        /// The step (or `source`, `prepare`) that refused it.
        step: String,
        /// Why.
        reason: String,
        /// Rows it holds.
        rows: usize,
    },
}

/// An event and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// Milliseconds since 1970.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// A run's events: the latest kept, and the subscribers.
#[derive(Debug, Default)]
pub struct Events {
    inner: Mutex<Inner>,
}

/// Dead letters a run keeps for its view (the dead-letter output holds them all).
pub const LAST_DEAD_LETTERS: usize = 50;

/// A dead letter as a run's view shows it (its reason, not its data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterView {
    /// Milliseconds since 1970.
    pub at_ms: u64,
    /// The message it came from.
    pub seq: u64,
    /// The step (or `source`, `prepare`) that refused it.
    pub step: String,
    /// Why.
    pub reason: String,
    /// Rows it holds.
    pub rows: usize,
}

#[derive(Debug, Default)]
struct Inner {
    kept: VecDeque<Stamped>,
    last_dead: VecDeque<DeadLetterView>,
    subscribers: Vec<Sender<Stamped>>,
    closed: bool,
    dead_letters: u64,
}

impl Events {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record an event and hand it to every subscriber.
    pub fn push(&self, event: Event) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let stamped = Stamped { at_ms, event };
        let mut g = self.lock();
        g.subscribers.retain(|s| {
            !matches!(
                s.try_send(stamped.clone()),
                Err(TrySendError::Disconnected(_))
            )
        });
        if g.kept.len() == KEPT {
            g.kept.pop_front();
        }
        g.kept.push_back(stamped);
    }

    /// A log line (also what the host's `tracing` subscriber sees, through the caller).
    pub fn log(&self, level: Level, message: impl Into<String>) {
        self.push(Event::Log {
            level,
            message: message.into(),
        });
    }

    /// A dead letter: reported as an event while it is one of the first
    /// [`FIRST_DEAD_LETTERS`].
    pub fn dead_letter(&self, d: &streamprep_core::DeadLetter) {
        let n = {
            let mut g = self.lock();
            g.dead_letters += 1;
            if g.last_dead.len() == LAST_DEAD_LETTERS {
                g.last_dead.pop_front();
            }
            g.last_dead.push_back(DeadLetterView {
                at_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                seq: d.seq,
                step: d.step.clone(),
                reason: d.reason.clone(),
                rows: d.rows,
            });
            g.dead_letters
        };
        if n <= FIRST_DEAD_LETTERS {
            self.push(Event::DeadLetter {
                seq: d.seq,
                step: d.step.clone(),
                reason: d.reason.clone(),
                rows: d.rows,
            });
        }
        if n == FIRST_DEAD_LETTERS {
            self.log(
                Level::Info,
                format!(
                    "{FIRST_DEAD_LETTERS} dead letters so far; later ones are counted, not \
                     reported one by one (the dead-letter output holds them all)"
                ),
            );
        }
    }

    /// The events kept, then every new one until the run is over (the channel then ends).
    pub fn subscribe(&self) -> Receiver<Stamped> {
        let (tx, rx) = crossbeam_channel::bounded(BACKLOG + KEPT);
        let mut g = self.lock();
        for e in &g.kept {
            let _ = tx.try_send(e.clone());
        }
        if !g.closed {
            g.subscribers.push(tx);
        }
        rx
    }

    /// The last dead letters (at most [`LAST_DEAD_LETTERS`]), oldest first.
    pub fn last_dead_letters(&self) -> Vec<DeadLetterView> {
        self.lock().last_dead.iter().cloned().collect()
    }

    /// The events kept (the latest [`KEPT`]).
    pub fn recent(&self) -> Vec<Stamped> {
        self.lock().kept.iter().cloned().collect()
    }

    /// No more events: every subscriber's channel ends once drained.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.subscribers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_subscriber_gets_what_was_kept_then_what_comes_and_the_channel_ends() {
        let e = Events::default();
        e.log(Level::Info, "one");
        let early = e.subscribe();
        e.push(Event::State {
            state: RunState::Running,
        });
        let late = e.subscribe();
        e.log(Level::Warning, "two");
        e.close();
        e.log(Level::Info, "after the close: kept, sent to nobody");
        let texts = |rx: Receiver<Stamped>| -> Vec<String> {
            rx.iter()
                .map(|s| serde_json::to_string(&s.event).expect("json"))
                .collect()
        };
        let early = texts(early);
        let late = texts(late);
        assert_eq!(early, late);
        assert_eq!(early.len(), 3);
        assert_eq!(early[1], r#"{"kind":"state","state":"running"}"#);
        assert_eq!(
            early[2],
            r#"{"kind":"log","level":"warning","message":"two"}"#
        );
        assert_eq!(e.recent().len(), 4);
    }

    #[test]
    fn only_the_first_dead_letters_are_events_and_kept_events_are_bounded() {
        let e = Events::default();
        for i in 0..100 {
            e.dead_letter(&streamprep_core::DeadLetter {
                seq: i,
                step: "prepare".into(),
                reason: "bad".into(),
                data: Vec::new(),
                rows: 1,
            });
        }
        let r = e.recent();
        let dl = r
            .iter()
            .filter(|s| matches!(s.event, Event::DeadLetter { .. }))
            .count();
        assert_eq!(dl as u64, FIRST_DEAD_LETTERS);
        let last = e.last_dead_letters();
        assert_eq!(last.len(), LAST_DEAD_LETTERS);
        assert_eq!(last.last().map(|d| d.seq), Some(99));
        for i in 0..1000 {
            e.log(Level::Info, format!("{i}"));
        }
        assert_eq!(e.recent().len(), KEPT);
        let failed = serde_json::to_string(&Event::State {
            state: RunState::Failed { reason: "x".into() },
        })
        .expect("json");
        assert_eq!(failed, r#"{"kind":"state","state":"failed","reason":"x"}"#);
    }
}
