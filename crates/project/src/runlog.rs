//! The user's processes' log lines as events of the run they belong to. The `exec` step's
//! processes write their stderr to `tracing` (target `streamprep::exec`, inside the run's
//! span); a host that installs [`RunLog`] in its subscriber (the CLI does, for `run`, `serve`
//! and `demo`) sees those lines in each run's events too: the web app's log shows them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use streamprep_engine::{Level, Stats};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The runs of this process, by id (weak: a run that ended is dropped as it is found).
static RUNS: Mutex<Option<HashMap<u64, Weak<Stats>>>> = Mutex::new(None);

/// Note a run (its events take the lines logged in its span).
pub(crate) fn register(id: u64, stats: &Arc<Stats>) {
    let mut g = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let runs = g.get_or_insert_with(HashMap::new);
    runs.retain(|_, s| s.strong_count() > 0);
    runs.insert(id, Arc::downgrade(stats));
}

fn stats_of(id: u64) -> Option<Arc<Stats>> {
    let g = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref()?.get(&id)?.upgrade()
}

/// The run id of a `run` span.
struct RunId(u64);

/// A `tracing` layer that turns the lines of the user's processes (target `streamprep::exec`,
/// info and above) logged inside a run's span into that run's log events.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunLog;

struct Field<'a>(&'a str, &'a mut Option<u64>, &'a mut String);

impl tracing::field::Visit for Field<'_> {
    fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
        if f.name() == self.0 {
            *self.1 = Some(v);
        }
    }

    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.2, "{v:?}");
        }
    }
}

impl<S> Layer<S> for RunLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "run" {
            return;
        }
        let (mut run, mut unused) = (None, String::new());
        attrs.record(&mut Field("run", &mut run, &mut unused));
        if let (Some(run), Some(span)) = (run, ctx.span(id)) {
            span.extensions_mut().insert(RunId(run));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::INFO || !meta.target().starts_with("streamprep::exec") {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(run) = scope
            .from_root()
            .find_map(|s| s.extensions().get::<RunId>().map(|r| r.0))
        else {
            return;
        };
        let Some(stats) = stats_of(run) else { return };
        let (mut unused, mut message) = (None, String::new());
        event.record(&mut Field("", &mut unused, &mut message));
        let level = if *meta.level() <= tracing::Level::WARN {
            Level::Warning
        } else {
            Level::Info
        };
        stats.events.log(level, message);
    }
}
