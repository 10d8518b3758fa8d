//! The live one-line status of a running pipeline (rows/s in and out, backlog, messages,
//! dead letters, dropped rows, the source's connection), read from the run's view once a
//! second, and Ctrl-C handling.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streamprep_engine::LinkView;
use streamprep_project::RunHandle;

/// Make Ctrl-C set `stop` (live sources then end and the pipeline drains and finishes);
/// a second Ctrl-C exits at once.
pub fn stop_on_ctrl_c(stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let stop = stop.clone();
    on_ctrl_c(move || stop.store(true, Ordering::SeqCst))
}

/// Make Ctrl-C (and SIGTERM, SIGHUP) call `stop` once; a second one exits at once.
pub fn on_ctrl_c(stop: impl Fn() + Send + 'static) -> anyhow::Result<()> {
    let seen = AtomicBool::new(false);
    let installed = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        stop();
        eprintln!("\nstreamprep: stopping (Ctrl-C again to exit at once)");
    });
    match installed {
        // a second pipeline in one process (tests) keeps the first handler
        Ok(()) | Err(ctrlc::Error::MultipleHandlers) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot handle Ctrl-C: {e}")),
    }
}

/// How often the status thread wakes to see whether a new sample is there.
const TICK: Duration = Duration::from_millis(200);

/// A thread printing the status every second until stopped. Stopping wakes it at once (it
/// waits on a channel, not in a sleep), so a short run does not end up to a tick later.
pub struct StatusLine {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StatusLine {
    /// Print the status line each second when `show` (or, for a live source, when stderr is
    /// a terminal); append one CSV line a second to `timeline`: seconds since the start, rows
    /// a second in, the buffer size, measured and predicted rho, the mean row latency of that
    /// second, the backlog.
    pub fn start(
        run: RunHandle,
        label: &'static str,
        show: bool,
        timeline: Option<std::fs::File>,
    ) -> Self {
        Self::spawn(run, label, show, timeline, TICK)
    }

    fn spawn(
        run: RunHandle,
        label: &'static str,
        show: bool,
        mut timeline: Option<std::fs::File>,
        tick: Duration,
    ) -> Self {
        let (done, d) = mpsc::channel::<()>();
        if let Some(f) = timeline.as_mut() {
            let _ = writeln!(
                f,
                "seconds,rows_per_s,buffer,rho_measured,rho_predicted,latency_ms,backlog"
            );
        }
        let began = Instant::now();
        let thread = std::thread::Builder::new()
            .name("streamprep-status".into())
            .spawn(move || {
                let tty = std::io::stderr().is_terminal();
                let mut seen = 0;
                let mut printed = false;
                // a tick every TICK; stop() drops the sender, which ends the wait at once
                while let Err(mpsc::RecvTimeoutError::Timeout) = d.recv_timeout(tick) {
                    // one line per sample of the run's monitor (one a second); the whole view
                    // (percentiles included) only then
                    if run.live().samples == seen {
                        continue;
                    }
                    if timeline.is_none() && !(show || (run.is_live() && tty)) {
                        // nothing to write (and no allocation: a thread that allocates costs
                        // the process an allocator heap of its own)
                        continue;
                    }
                    let v = run.view();
                    let live = v.figures.live;
                    seen = live.samples;
                    if let Some(f) = timeline.as_mut() {
                        let _ = writeln!(
                            f,
                            "{:.1},{:.0},{},{:.3},{:.3},{:.3},{}",
                            began.elapsed().as_secs_f64(),
                            live.rows_in_per_s,
                            v.figures.buffer,
                            live.rho_measured,
                            live.rho_predicted,
                            live.latency_s * 1e3,
                            v.figures.counts.backlog
                        );
                    }
                    if !(show || (run.is_live() && tty)) {
                        continue;
                    }
                    let links: String = v.figures.links.iter().map(health).collect();
                    let columns = match v.figures.dropped_columns.len() {
                        0 => String::new(),
                        n => format!(" | {n} column(s) the sink cannot take"),
                    };
                    let now = v.figures.counts;
                    let line = format!(
                        "[{label}] in {:.0} rows/s, out {:.0} rows/s | backlog {} msg | rho {:.3} (predicted {:.3}, {} worker(s)) | messages {} | dead letters {} | dropped {}{columns}{links}",
                        live.rows_in_per_s,
                        live.rows_out_per_s,
                        now.backlog,
                        live.rho_measured,
                        live.rho_predicted,
                        live.workers,
                        now.messages,
                        now.dead_letters,
                        now.dropped,
                    );
                    let mut err = std::io::stderr().lock();
                    if tty {
                        let _ = write!(err, "\r\x1b[2K{line}");
                        printed = true;
                    } else {
                        let _ = writeln!(err, "{line}");
                    }
                    let _ = err.flush();
                }
                if printed {
                    eprintln!();
                }
            })
            .ok();
        StatusLine {
            done: Some(done),
            thread,
        }
    }

    pub fn stop(mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// ` | NAME connected, N disconnect(s)` (or RECONNECTING) for a status line.
fn health(l: &LinkView) -> String {
    let state = if l.connected {
        "connected"
    } else {
        "RECONNECTING"
    };
    format!(" | {} {state}, {} disconnect(s)", l.name, l.disconnects)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stopping does not wait for the next tick: with a 60 s tick, a thread that slept would
    /// hold `stop` for a minute (every `streamprep run` used to end up to 200 ms late).
    #[test]
    fn stop_wakes_the_status_thread_at_once() {
        let spec = streamprep_project::ProjectSpec {
            source: Some("generator:davis?rows=10".into()),
            chain: Some(streamprep_project::ChainSpec::List(vec!["abs".into()])),
            buffer: Some(streamprep_project::BufferSetting::Rows(5)),
            sink: Some("file:/dev/null".into()),
            sink_format: Some(streamprep_connectors::FileFormat::Ndjson),
            dead_letter: Some("file:/dev/null".into()),
            ..Default::default()
        };
        let run = streamprep_project::launch(&spec).expect("launch");
        let line = StatusLine::spawn(run.clone(), "t", false, None, Duration::from_secs(60));
        let t0 = Instant::now();
        line.stop();
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
        run.wait().expect("the run ends");
    }
}
