//! The live one-line status of a running pipeline (rows/s in and out, backlog, messages,
//! dead letters, dropped rows, the source's connection) and Ctrl-C handling.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streamprep_core::LinkHealth;
use streamprep_engine::Stats;

/// Make Ctrl-C set `stop` (live sources then end and the pipeline drains and finishes);
/// a second Ctrl-C exits at once.
pub fn stop_on_ctrl_c(stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let stop = stop.clone();
    let installed = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstreamprep: stopping (Ctrl-C again to exit at once)");
    });
    match installed {
        // a second pipeline in one process (tests) keeps the first handler
        Ok(()) | Err(ctrlc::Error::MultipleHandlers) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot handle Ctrl-C: {e}")),
    }
}

/// How often the status thread wakes to see whether a second has passed.
const TICK: Duration = Duration::from_millis(200);

/// A thread printing the status every second until stopped. Stopping wakes it at once (it
/// waits on a channel, not in a sleep), so a short run does not end up to a tick later.
pub struct StatusLine {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StatusLine {
    /// Sample the metrics every second (and warn when the pipeline stays saturated); with
    /// `show`, also print the status line.
    pub fn start(
        stats: Arc<Stats>,
        link: Option<Arc<LinkHealth>>,
        label: &'static str,
        show: bool,
    ) -> Self {
        Self::with_timeline(stats, link, None, label, show, None)
    }

    /// [`StatusLine::start`], also appending one CSV line a second to `timeline`: seconds
    /// since the start, rows a second in, the buffer size, measured and predicted rho, the
    /// mean row latency of that second, the backlog.
    pub fn with_timeline(
        stats: Arc<Stats>,
        link: Option<Arc<LinkHealth>>,
        broker: Option<Arc<LinkHealth>>,
        label: &'static str,
        show: bool,
        timeline: Option<std::fs::File>,
    ) -> Self {
        Self::spawn(stats, link, broker, label, show, timeline, TICK)
    }

    fn spawn(
        stats: Arc<Stats>,
        link: Option<Arc<LinkHealth>>,
        broker: Option<Arc<LinkHealth>>,
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
                let mut last = stats.snapshot();
                let mut at = Instant::now();
                stats.metrics.sample(last);
                // a tick every TICK; stop() drops the sender, which ends the wait at once
                while let Err(mpsc::RecvTimeoutError::Timeout) = d.recv_timeout(tick) {
                    if at.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    let now = stats.snapshot();
                    let dt = at.elapsed().as_secs_f64();
                    at = Instant::now();
                    let warning = stats.metrics.sample(now);
                    if let Some(f) = timeline.as_mut() {
                        let live = stats.metrics.live();
                        let _ = writeln!(
                            f,
                            "{:.1},{:.0},{},{:.3},{:.3},{:.3},{}",
                            began.elapsed().as_secs_f64(),
                            (now.rows_read - last.rows_read) as f64 / dt,
                            stats.metrics.buffer(),
                            live.rho_measured,
                            live.rho_predicted,
                            live.latency_s * 1e3,
                            now.backlog
                        );
                    }
                    if let Some(w) = &warning {
                        if show && tty {
                            eprintln!();
                        }
                        eprintln!("streamprep: warning: {w}");
                    }
                    if !show {
                        last = now;
                        continue;
                    }
                    let link = link.as_ref().map_or(String::new(), |l| health("source", l));
                    let broker = broker.as_ref().map_or(String::new(), |b| health("broker", b));
                    let live = stats.metrics.live();
                    let columns = match stats.dropped_columns().len() {
                        0 => String::new(),
                        n => format!(" | {n} column(s) the sink cannot take"),
                    };
                    let line = format!(
                        "[{label}] in {:.0} rows/s, out {:.0} rows/s | backlog {} msg | rho {:.3} (predicted {:.3}, {} worker(s)) | messages {} | dead letters {} | dropped {}{columns}{link}{broker}",
                        (now.rows_read - last.rows_read) as f64 / dt,
                        (now.rows_out - last.rows_out) as f64 / dt,
                        now.backlog,
                        live.rho_measured,
                        live.rho_predicted,
                        live.workers,
                        now.messages,
                        now.dead_letters,
                        now.dropped,
                    );
                    last = now;
                    let mut err = std::io::stderr().lock();
                    if tty {
                        let _ = write!(err, "\r\x1b[2K{line}");
                    } else {
                        let _ = writeln!(err, "{line}");
                    }
                    let _ = err.flush();
                }
                if show && tty {
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
fn health(name: &str, l: &LinkHealth) -> String {
    let state = if l.connected.load(Ordering::Relaxed) {
        "connected"
    } else {
        "RECONNECTING"
    };
    format!(
        " | {name} {state}, {} disconnect(s)",
        l.disconnects.load(Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stopping does not wait for the next tick: with a 60 s tick, a thread that slept would
    /// hold `stop` for a minute (every `streamprep run` used to end up to 200 ms late).
    #[test]
    fn stop_wakes_the_status_thread_at_once() {
        let stats = Arc::new(Stats::default());
        let line = StatusLine::spawn(stats, None, None, "t", false, None, Duration::from_secs(60));
        let t0 = Instant::now();
        line.stop();
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    }
}
