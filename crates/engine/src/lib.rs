//! The streamprep engine: the [`buffer`] that cuts rows into messages, the [`chain`] that runs
//! `prepare`, the steps and `result` on one message, the executors (`inline`, `pool`) and the
//! [`pipeline`] that ties a source to its sinks.

pub mod adaptive;
pub mod buffer;
pub mod capacity;
pub mod chain;
mod counts;
pub mod events;
pub mod executor;
pub mod keyed;
pub mod keyed_buffer;
pub mod latency;
pub mod metrics;
mod monitor;
pub mod pipeline;
pub mod planner;
pub mod profile;
mod shed;
pub mod state;
pub mod stats;

pub use events::{DeadLetterView, Event, Events, Level, RunState, Stamped};
pub use executor::{run_guarded, Method, Remote, RemoteJob};
pub use latency::{LatencyProbe, LatencySummary};
pub use pipeline::{run, run_with, Backpressure, Ordered, PipelineConfig, PipelineError, Summary};
pub use stats::{Figures, LinkView, Sampled, Snapshot, Stats, Tap, TAP_ROWS_PER_S};
