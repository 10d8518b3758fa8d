//! The CLI's log: what streamprep's libraries report through `tracing` (a source listening or
//! subscribed, a reconnect, a warning) printed to stderr as `streamprep: ...` lines.

use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Print INFO and above: `streamprep: TEXT`, and `streamprep: warning: TEXT` for warnings.
struct Printer;

struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Printer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        // streamprep's own lines; the libraries under it (the embedded broker, the MQTT
        // client) log their own chatter, which the CLI never printed
        if level > Level::INFO || !event.metadata().target().starts_with("streamprep") {
            return;
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let kind = if level <= Level::WARN {
            "warning: "
        } else {
            ""
        };
        let _ = writeln!(std::io::stderr().lock(), "streamprep: {kind}{}", m.0);
    }
}

/// Install the printer for the whole process, and the layer that puts the user's processes'
/// lines into their run's events (the web app's log).
pub fn install() {
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(Printer)
            .with(streamprep_project::RunLog),
    );
}
