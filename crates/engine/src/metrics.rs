//! Capacity metrics of a running pipeline, recorded once per delivered message (never per
//! row): service time of each stage and of the whole chain, end-to-end latency, each worker's
//! busy time; sampled about once a second into smoothed arrival rates, the measured
//! utilisation (busy time / (workers x wall time)) and the utilisation predicted from the
//! queueing formula `rho = lambda_r * S(b) / (b * c)`. Rendered in Prometheus' text format.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::chain::Processed;
use crate::counts::Snapshot;

/// The measured utilisation above which the pipeline is called saturated.
pub const SATURATED_RHO: f64 = 0.9;
/// Samples in a row above [`SATURATED_RHO`] before the warning.
const SATURATED_SAMPLES: u32 = 5;
/// Weight of a new sample in the smoothed rates.
const SMOOTHING: f64 = 0.3;

/// Histograms and the live utilisation; inside [`Stats`].
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    stages: Vec<String>,
    /// The configured number of workers (0: the queue method, counted from results).
    workers: usize,
    buffer: usize,
    chain: Histogram<u64>,
    stage: Vec<Histogram<u64>>,
    latency: Histogram<u64>,
    busy: Vec<Duration>,
    live: Live,
    /// Service time and rows of the messages since the last sample.
    window: (Duration, u64, u64),
    /// Row latency summed, and messages, since the last sample.
    latency_window: (Duration, u64),
    last: Option<(Instant, Snapshot, Duration)>,
    warned_at: Option<Instant>,
    high: u32,
}

/// The utilisation as of the last sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Live {
    /// Smoothed rows a second read from the source.
    pub arrival_rows: f64,
    /// Smoothed messages a second cut by the buffer.
    pub arrival_messages: f64,
    /// Smoothed mean service time of the chain on one message, seconds.
    pub service_s: f64,
    /// Smoothed mean rows a message.
    pub rows_per_message: f64,
    /// Workers counted in the utilisation.
    pub workers: usize,
    /// Busy time / (workers x wall time), over the last sample.
    pub rho_measured: f64,
    /// `lambda_r * S(b) / (b * c)` with the smoothed values.
    pub rho_predicted: f64,
    /// Mean row latency (arrival to sink) of the messages delivered since the last sample,
    /// seconds.
    pub latency_s: f64,
    /// Samples taken so far.
    pub samples: u64,
    /// Rows read from the source in the last sample's second (not smoothed).
    pub rows_in_per_s: f64,
    /// Rows written to the sink in the last sample's second.
    pub rows_out_per_s: f64,
}

/// A histogram of microseconds from 1 µs to 1 hour, 3 significant digits (also the latency
/// probe's).
pub(crate) fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            started: Instant::now(),
            stages: Vec::new(),
            workers: 1,
            buffer: 1,
            chain: hist(),
            stage: Vec::new(),
            latency: hist(),
            busy: Vec::new(),
            live: Live::default(),
            window: (Duration::ZERO, 0, 0),
            latency_window: (Duration::ZERO, 0),
            last: None,
            warned_at: None,
            high: 0,
        }
    }
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Messages recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    Percentiles {
        count: h.len(),
        mean_us: if h.is_empty() { 0.0 } else { h.mean() },
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
    }
}

/// Everything the summary prints.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The whole chain on one message.
    pub chain: Percentiles,
    /// Each stage, by name.
    pub stages: Vec<(String, Percentiles)>,
    /// From a row's arrival to its sink, per message (the mean over its rows).
    pub latency: Percentiles,
    /// Busy time / (workers x wall time) over the whole run.
    pub rho: f64,
    /// Workers counted.
    pub workers: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |us: f64| us / 1000.0;
        write!(
            f,
            "chain {:.3} ms/msg mean, p99 {:.3} ms; row latency mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms; rho {:.3} over {} worker(s)",
            ms(self.chain.mean_us),
            ms(self.chain.p99_us as f64),
            ms(self.latency.mean_us),
            ms(self.latency.p50_us as f64),
            ms(self.latency.p99_us as f64),
            self.rho,
            self.workers
        )?;
        if !self.stages.is_empty() {
            write!(f, "; per step (mean ms/msg):")?;
            for (name, p) in &self.stages {
                write!(f, " {name} {:.3}", ms(p.mean_us))?;
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// Set what the pipeline runs: stage names, workers (0 for the queue method: counted from
    /// the results) and the buffer size. Resets the clock.
    pub fn configure(&self, stages: Vec<String>, workers: usize, buffer: usize) {
        let mut m = self.lock();
        m.stage = stages.iter().map(|_| hist()).collect();
        m.stages = stages;
        m.workers = workers;
        m.buffer = buffer.max(1);
        m.started = Instant::now();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record a delivered message; `at_sink` is when the sinks took it.
    pub fn record(&self, p: &Processed, at_sink: Instant) {
        let mut m = self.lock();
        if p.rows_in > 0 {
            let _ = m.chain.record(us(p.service));
            for (h, d) in m.stage.iter_mut().zip(&p.stages) {
                let _ = h.record(us(*d));
            }
            if m.busy.len() <= p.worker {
                m.busy.resize(p.worker + 1, Duration::ZERO);
            }
            m.busy[p.worker] += p.service;
            m.window.0 += p.service;
            m.window.1 += p.rows_in as u64;
            m.window.2 += 1;
        }
        // a message that brought no rows (only refusals, or shed by drop_oldest) has no latency
        if let (Some((first, closed)), true) = (p.arrived, p.rows_in > 0) {
            // rows arrive between the first and the closing of the message: the mean row
            // waited from the middle of that span
            let mid = first + closed.saturating_duration_since(first) / 2;
            let waited = at_sink.saturating_duration_since(mid);
            let _ = m.latency.record(us(waited));
            m.latency_window.0 += waited;
            m.latency_window.1 += 1;
        }
    }

    /// Update the smoothed rates and utilisation if a second has passed since the last
    /// sample; returns a warning to print when the pipeline has stayed saturated.
    pub fn sample(&self, now_counts: Snapshot) -> Option<String> {
        let mut m = self.lock();
        let now = Instant::now();
        let busy: Duration = m.busy.iter().sum();
        let Some((at, before, busy_before)) = m.last else {
            m.last = Some((now, now_counts, busy));
            return None;
        };
        let dt = now.duration_since(at).as_secs_f64();
        if dt < 0.95 {
            return None;
        }
        let workers = if m.workers == 0 {
            m.busy.len().max(1)
        } else {
            m.workers
        };
        let rows = now_counts.rows_read.saturating_sub(before.rows_read) as f64 / dt;
        let msgs = now_counts
            .messages_read
            .saturating_sub(before.messages_read) as f64
            / dt;
        let smooth = |old: f64, new: f64, first: bool| {
            if first {
                new
            } else {
                old + SMOOTHING * (new - old)
            }
        };
        let out = now_counts.rows_out.saturating_sub(before.rows_out) as f64 / dt;
        let first = m.live.workers == 0;
        let (svc, rows_done, msgs_done) = std::mem::take(&mut m.window);
        let mut live = m.live;
        live.workers = workers;
        live.rows_in_per_s = rows;
        live.rows_out_per_s = out;
        live.arrival_rows = smooth(live.arrival_rows, rows, first);
        live.arrival_messages = smooth(live.arrival_messages, msgs, first);
        if msgs_done > 0 {
            let s = svc.as_secs_f64() / msgs_done as f64;
            let b = rows_done as f64 / msgs_done as f64;
            let no_prior = live.service_s == 0.0;
            live.service_s = smooth(live.service_s, s, no_prior);
            live.rows_per_message = smooth(live.rows_per_message, b, no_prior);
        }
        live.rho_measured = (busy - busy_before).as_secs_f64() / (workers as f64 * dt);
        live.rho_predicted = if live.rows_per_message > 0.0 {
            live.arrival_rows * live.service_s / (live.rows_per_message * workers as f64)
        } else {
            0.0
        };
        let (waited, n) = std::mem::take(&mut m.latency_window);
        if n > 0 {
            live.latency_s = waited.as_secs_f64() / n as f64;
        }
        live.samples += 1;
        m.live = live;
        m.last = Some((now, now_counts, busy));
        m.high = if live.rho_measured > SATURATED_RHO {
            m.high + 1
        } else {
            0
        };
        let quiet = m
            .warned_at
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(60));
        if m.high >= SATURATED_SAMPLES && quiet {
            m.warned_at = Some(now);
            return Some(remedy(&live, m.buffer));
        }
        None
    }

    /// The buffer size now in use (adaptive buffering changes it).
    pub fn set_buffer(&self, b: usize) {
        self.lock().buffer = b.max(1);
    }

    /// The buffer size in use.
    pub fn buffer(&self) -> usize {
        self.lock().buffer
    }

    /// The utilisation as of the last sample.
    pub fn live(&self) -> Live {
        self.lock().live
    }

    /// The whole run so far.
    pub fn report(&self) -> Report {
        let m = self.lock();
        let workers = if m.workers == 0 {
            m.busy.len().max(1)
        } else {
            m.workers
        };
        let wall = m.started.elapsed().as_secs_f64();
        let busy: Duration = m.busy.iter().sum();
        Report {
            chain: percentiles(&m.chain),
            stages: m
                .stages
                .iter()
                .cloned()
                .zip(m.stage.iter().map(percentiles))
                .collect(),
            latency: percentiles(&m.latency),
            rho: if wall > 0.0 {
                busy.as_secs_f64() / (workers as f64 * wall)
            } else {
                0.0
            },
            workers,
        }
    }

    /// The metrics and the counters `c` in Prometheus' text exposition format.
    pub fn prometheus(&self, c: Snapshot) -> String {
        let m = self.lock();
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                s,
                "# HELP streamprep_{name} {help}\n# TYPE streamprep_{name} counter\nstreamprep_{name} {v}"
            );
        };
        counter(
            "rows_read_total",
            "Rows taken from the source.",
            c.rows_read,
        );
        counter(
            "messages_read_total",
            "Messages cut by the buffer.",
            c.messages_read,
        );
        counter(
            "rows_in_total",
            "Rows that went through the chain.",
            c.rows_in,
        );
        counter("rows_out_total", "Rows written to the sink.", c.rows_out);
        counter("messages_total", "Messages delivered.", c.messages);
        counter(
            "dead_letters_total",
            "Rows sent to the dead-letter output.",
            c.dead_letters,
        );
        counter(
            "dropped_rows_total",
            "Rows shed by the drop_oldest policy.",
            c.dropped,
        );
        let live = m.live;
        let mut gauge = |name: &str, help: &str, v: f64| {
            let _ = writeln!(
                s,
                "# HELP streamprep_{name} {help}\n# TYPE streamprep_{name} gauge\nstreamprep_{name} {v}"
            );
        };
        gauge(
            "backlog_messages",
            "Messages read and not yet delivered.",
            c.backlog as f64,
        );
        gauge(
            "arrival_rows_per_second",
            "Smoothed rows a second from the source.",
            live.arrival_rows,
        );
        gauge(
            "arrival_messages_per_second",
            "Smoothed messages a second from the buffer.",
            live.arrival_messages,
        );
        gauge(
            "rho_measured",
            "Busy time / (workers x wall time) over the last second.",
            live.rho_measured,
        );
        gauge(
            "rho_predicted",
            "lambda_r * S(b) / (b * c) with the smoothed arrival rate and service time.",
            live.rho_predicted,
        );
        gauge("workers", "Workers counted in rho.", live.workers as f64);
        gauge("buffer_rows", "The buffering factor b.", m.buffer as f64);
        let wall = m.started.elapsed().as_secs_f64().max(1e-9);
        let _ = writeln!(
            s,
            "# HELP streamprep_worker_busy_ratio Fraction of the run each worker spent in the chain.\n# TYPE streamprep_worker_busy_ratio gauge"
        );
        for (i, b) in m.busy.iter().enumerate() {
            let _ = writeln!(
                s,
                "streamprep_worker_busy_ratio{{worker=\"{i}\"}} {}",
                b.as_secs_f64() / wall
            );
        }
        summary(
            &mut s,
            "service_seconds",
            "Service time of the whole chain on one message.",
            &[(None, &m.chain)],
        );
        let stages: Vec<(Option<&str>, &Histogram<u64>)> = m
            .stages
            .iter()
            .map(|n| Some(n.as_str()))
            .zip(&m.stage)
            .collect();
        summary(
            &mut s,
            "step_service_seconds",
            "Service time of each step on one message.",
            &stages,
        );
        summary(
            &mut s,
            "latency_seconds",
            "From a row's arrival to its sink (per message, the mean over its rows).",
            &[(None, &m.latency)],
        );
        s
    }
}

/// A Prometheus summary (quantiles, sum, count) of histograms in microseconds.
fn summary(s: &mut String, name: &str, help: &str, hs: &[(Option<&str>, &Histogram<u64>)]) {
    let _ = writeln!(
        s,
        "# HELP streamprep_{name} {help}\n# TYPE streamprep_{name} summary"
    );
    for (step, h) in hs {
        let label = |q: Option<&str>| {
            let mut l: Vec<String> = Vec::new();
            if let Some(st) = step {
                l.push(format!("step=\"{st}\""));
            }
            if let Some(q) = q {
                l.push(format!("quantile=\"{q}\""));
            }
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", l.join(","))
            }
        };
        for q in ["0.5", "0.9", "0.99"] {
            let v = h.value_at_quantile(q.parse().unwrap_or(0.5)) as f64 / 1e6;
            let _ = writeln!(s, "streamprep_{name}{} {v}", label(Some(q)));
        }
        let sum = if h.is_empty() {
            0.0
        } else {
            h.mean() * h.len() as f64 / 1e6
        };
        let _ = writeln!(s, "streamprep_{name}_sum{} {sum}", label(None));
        let _ = writeln!(s, "streamprep_{name}_count{} {}", label(None), h.len());
    }
}

/// What to do about a saturated pipeline, with numbers.
fn remedy(l: &Live, buffer: usize) -> String {
    let c = l.workers.max(1);
    // workers that bring the predicted rho to 0.7 at this rate and service time
    let need = if l.rows_per_message > 0.0 {
        (l.arrival_rows * l.service_s / (l.rows_per_message * 0.7)).ceil() as usize
    } else {
        c + 1
    };
    format!(
        "saturated: measured rho {:.2} for {SATURATED_SAMPLES} s ({} worker(s), {:.0} rows/s arriving, {:.3} ms a {:.0}-row message); the backlog will grow. Remedies: more workers (about {} for rho 0.7: the workers setting, or the queue method with more `streamprep worker`s), or a larger buffer than {buffer} (fewer, larger messages cost less a row; `streamprep plan` computes one)",
        l.rho_measured,
        c,
        l.arrival_rows,
        l.service_s * 1e3,
        l.rows_per_message,
        need.max(c + 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processed(worker: usize, rows: usize, service_ms: u64) -> Processed {
        let mut p = Processed::refused(0, rows, Vec::new());
        p.worker = worker;
        p.service = Duration::from_millis(service_ms);
        p.stages = vec![Duration::from_millis(service_ms / 2); 2];
        p
    }

    #[test]
    fn records_service_busy_time_and_latency_per_message() {
        let m = Metrics::default();
        m.configure(vec!["prepare".into(), "result".into()], 2, 100);
        let now = Instant::now();
        let mut p = processed(1, 100, 4);
        p.arrived = Some((
            now - Duration::from_millis(30),
            now - Duration::from_millis(10),
        ));
        m.record(&p, now);
        m.record(&processed(0, 100, 2), now);
        let r = m.report();
        assert_eq!(r.chain.count, 2);
        assert!(
            (r.chain.mean_us - 3000.0).abs() < 10.0,
            "{}",
            r.chain.mean_us
        );
        assert_eq!(r.stages.len(), 2);
        assert!((r.stages[0].1.mean_us - 1500.0).abs() < 10.0);
        // the middle of the message's arrivals was 20 ms before the sink
        assert_eq!(r.latency.count, 1);
        assert!((r.latency.p50_us as f64 - 20_000.0).abs() < 50.0);
        assert_eq!(r.workers, 2);
        let text = m.prometheus(Snapshot::default());
        assert!(text.contains("streamprep_step_service_seconds_count{step=\"prepare\"} 2"));
        assert!(text.contains("streamprep_worker_busy_ratio{worker=\"1\"}"));
        assert!(text.contains("# TYPE streamprep_rho_measured gauge"));
    }

    #[test]
    fn sampling_measures_and_predicts_rho_and_warns_when_saturated() {
        let m = Metrics::default();
        m.configure(vec![], 1, 10);
        assert!(m.sample(Snapshot::default()).is_none()); // the first sample sets the clock
        let mut warned = None;
        for i in 1..=6u64 {
            // one second a sample, in which the worker was busy 0.95 s on 100 messages of
            // 10 rows: 1,000 rows/s of 9.5 ms messages -> predicted rho 0.95
            {
                let mut g = m.lock();
                let (at, snap, busy) = g.last.expect("sampled");
                g.last = Some((at - Duration::from_secs(1), snap, busy));
            }
            for _ in 0..100 {
                let mut p = processed(0, 10, 0);
                p.service = Duration::from_micros(9500);
                m.record(&p, Instant::now());
            }
            let snap = Snapshot {
                rows_read: 1000 * i,
                messages_read: 100 * i,
                ..Snapshot::default()
            };
            if let Some(w) = m.sample(snap) {
                warned = Some((i, w));
            }
        }
        let l = m.live();
        assert!((l.rho_measured - 0.95).abs() < 0.03, "{l:?}");
        assert!((l.rho_predicted - 0.95).abs() < 0.03, "{l:?}");
        assert!((l.arrival_rows - 1000.0).abs() < 30.0, "{l:?}");
        let (at, w) = warned.expect("a warning");
        assert_eq!(at, 5, "after 5 saturated samples");
        assert!(w.contains("more workers (about 2"), "{w}");
        assert!(w.contains("larger buffer than 10"), "{w}");
    }
}
