//! `streamprep plan`: from a `profile` CSV and an arrival rate, predict for each buffering
//! factor and worker count the utilisation and the latency (buffer fill + Erlang C wait +
//! service), and recommend the setting with the lowest latency that keeps `rho` under the
//! target.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::json;
use streamprep_engine::capacity::{predict_busy, Prediction};

#[derive(clap::Args)]
pub struct PlanArgs {
    /// The CSV `streamprep profile` wrote.
    #[arg(long)]
    profile: PathBuf,
    /// Rows a second the pipeline must take.
    #[arg(long)]
    arrival_rate: f64,
    /// Exactly this many workers.
    #[arg(long, conflicts_with = "max_workers")]
    workers: Option<usize>,
    /// Consider 1 up to this many workers (default: 8).
    #[arg(long)]
    max_workers: Option<usize>,
    /// Keep the utilisation under this.
    #[arg(long, default_value_t = 0.7)]
    target_rho: f64,
    /// Only settings whose predicted latency is under this many milliseconds.
    #[arg(long)]
    max_latency: Option<f64>,
    /// Cores of the host the pool would run on (default: this host's). The pool takes at most
    /// cores - 1 workers, leaving one for the web server, as the paper advises; more workers
    /// mean the queue method.
    #[arg(long)]
    cores: Option<usize>,
    /// Evaluate this method only (inline means one worker), instead of the pool up to
    /// cores - 1 workers and the queue beyond.
    #[arg(long, value_parser = ["inline", "pool", "queue"])]
    method: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One evaluated setting.
struct Row {
    method: &'static str,
    measured_with: String,
    p: Prediction,
    fits: bool,
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.arrival_rate.is_finite() && args.arrival_rate > 0.0,
        "--arrival-rate must be a positive number of rows a second"
    );
    anyhow::ensure!(
        args.target_rho > 0.0 && args.target_rho < 1.0,
        "--target-rho must be between 0 and 1 (a utilisation)"
    );
    if let Some(w) = args.workers.or(args.max_workers) {
        anyhow::ensure!(w >= 1, "the number of workers must be at least 1");
    }
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool_max = cores.saturating_sub(1).max(1);
    let profile = read_profile(&args.profile)?;
    let counts: Vec<usize> = match (args.method.as_deref(), args.workers, args.max_workers) {
        (Some("inline"), _, _) => vec![1],
        (_, Some(c), _) => vec![c],
        (_, None, m) => (1..=m.unwrap_or(8)).collect(),
    };
    let mut rows = Vec::new();
    for (&b, by_method) in &profile {
        for &c in &counts {
            let method = match args.method.as_deref() {
                Some("inline") => "inline",
                Some("pool") => "pool",
                Some(_) => "queue",
                None if c <= pool_max => "pool",
                None => "queue",
            };
            // the service time measured with the method the setting would use, else inline's
            let (measured_with, t) = [method, "inline", "pool", "queue"]
                .iter()
                .find_map(|m| by_method.get(*m).map(|t| (m.to_string(), *t)))
                .expect("every buffer has a measurement");
            let p = predict_busy(
                args.arrival_rate,
                b,
                c,
                t.service_us / 1e6,
                t.busy_us.unwrap_or(t.service_us) / 1e6,
            );
            let fits = p.rho < args.target_rho
                && args.max_latency.is_none_or(|ms| p.latency_s * 1e3 <= ms);
            rows.push(Row {
                method,
                measured_with,
                p,
                fits,
            });
        }
    }
    // lowest latency, then fewest workers
    let best = rows.iter().filter(|r| r.fits).min_by(|x, y| {
        x.p.latency_s
            .total_cmp(&y.p.latency_s)
            .then(x.p.workers.cmp(&y.p.workers))
    });
    if args.json {
        let setting = |r: &Row| {
            json!({
                "buffer": r.p.buffer,
                "workers": r.p.workers,
                "method": r.method,
                "service_time_from": r.measured_with,
                "service_ms": r.p.service_s * 1e3,
                "busy_ms": r.p.busy_s * 1e3,
                "rho": r.p.rho,
                "stable": r.p.stable(),
                "fill_ms": r.p.fill_s * 1e3,
                "wait_ms": finite(r.p.wait_s * 1e3),
                "latency_ms": finite(r.p.latency_s * 1e3),
                "max_rate_rows_per_s": r.p.max_rate,
                "rate_at_target_rows_per_s": r.p.max_rate * args.target_rho,
                "meets_target": r.fits,
            })
        };
        let out = json!({
            "arrival_rate_rows_per_s": args.arrival_rate,
            "target_rho": args.target_rho,
            "max_latency_ms": args.max_latency,
            "cores": cores,
            "settings": rows.iter().map(setting).collect::<Vec<_>>(),
            "recommendation": best.map(setting),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&args, cores, &rows, best));
    }
    Ok(ExitCode::SUCCESS)
}

fn finite(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

fn table(args: &PlanArgs, cores: usize, rows: &[Row], best: Option<&Row>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "arrival rate {} rows/s, target rho {}{}; pool up to {} worker(s) on {cores} core(s), queue beyond",
        args.arrival_rate,
        args.target_rho,
        args.max_latency
            .map(|m| format!(", latency under {m} ms"))
            .unwrap_or_default(),
        cores.saturating_sub(1).max(1),
    );
    let _ = writeln!(
        s,
        "{:>7} {:>7} {:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>11} {:>14}  note",
        "buffer",
        "workers",
        "method",
        "rho",
        "fill ms",
        "wait ms",
        "busy ms",
        "service ms",
        "latency ms",
        "max rows/s"
    );
    for r in rows {
        let p = &r.p;
        let note = if !p.stable() {
            "UNSTABLE (rho >= 1): the backlog grows without bound"
        } else if p.rho >= args.target_rho {
            "over the target rho"
        } else if !r.fits {
            "over the latency limit"
        } else {
            ""
        };
        let mut from = if r.measured_with == r.method {
            String::new()
        } else {
            format!(" (S(b) measured with {})", r.measured_with)
        };
        if r.method == "pool" && p.workers >= cores {
            // measured here: the workers, the reader and the sink share the cores, and a
            // preempted worker's service time grows (BENCHMARKS.md, docs/capacity.md)
            from.push_str(" (as many pool workers as cores: S(b) will grow)");
        }
        let _ = writeln!(
            s,
            "{:>7} {:>7} {:>6} {:>8.3} {:>10.3} {:>10} {:>10.3} {:>10.3} {:>11} {:>14.0}  {note}{from}",
            p.buffer,
            p.workers,
            r.method,
            p.rho,
            p.fill_s * 1e3,
            ms(p.wait_s),
            p.busy_s * 1e3,
            p.service_s * 1e3,
            ms(p.latency_s),
            p.max_rate,
        );
    }
    match best {
        Some(r) => {
            let _ = writeln!(
                s,
                "\nrecommendation: --buffer {} --method {}{}: rho {:.2}, latency {:.2} ms; sustains up to {:.0} rows/s at rho {} ({:.0} rows/s at rho 1)",
                r.p.buffer,
                r.method,
                match r.method {
                    "pool" => format!(" --workers {}", r.p.workers),
                    "inline" => String::new(),
                    _ => format!(" with {} worker process(es)", r.p.workers),
                },
                r.p.rho,
                r.p.latency_s * 1e3,
                r.p.max_rate * args.target_rho,
                args.target_rho,
                r.p.max_rate
            );
        }
        None => {
            let _ = writeln!(
                s,
                "\nrecommendation: none of these settings keeps rho under {}{}: allow more workers (--max-workers), profile larger buffers, or lower the rate",
                args.target_rho,
                args.max_latency
                    .map(|m| format!(" with latency under {m} ms"))
                    .unwrap_or_default()
            );
        }
    }
    s
}

fn ms(s: f64) -> String {
    if s.is_finite() {
        format!("{:.3}", s * 1e3)
    } else {
        "inf".into()
    }
}

/// The mean times of one (buffer, method) in a profile, µs.
#[derive(Debug, Clone, Copy, Default)]
struct Times {
    /// The chain's service time, from hand-over to result (stage `chain`).
    service_us: f64,
    /// The part that kept a worker busy (stage `busy`; profiles before it had none).
    busy_us: Option<f64>,
}

/// buffer -> method -> mean times of the chain, from `profile`'s CSV.
fn read_profile(path: &PathBuf) -> anyhow::Result<BTreeMap<usize, BTreeMap<String, Times>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--profile: reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header.iter().position(|h| *h == name).with_context(|| {
            format!(
                "--profile: {} has no '{name}' column; is it a CSV from `streamprep profile`?",
                path.display()
            )
        })
    };
    let (m, b, st, mean) = (
        col("method")?,
        col("buffer")?,
        col("stage")?,
        col("mean_us")?,
    );
    let mut out: BTreeMap<usize, BTreeMap<String, Times>> = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let field = |k: usize| {
            f.get(k)
                .copied()
                .with_context(|| format!("--profile: line {} is short", i + 2))
        };
        let stage = field(st)?;
        if stage != "chain" && stage != "busy" {
            continue;
        }
        let buffer: usize = field(b)?
            .parse()
            .with_context(|| format!("--profile: line {}: buffer", i + 2))?;
        let us: f64 = field(mean)?
            .parse()
            .with_context(|| format!("--profile: line {}: mean_us", i + 2))?;
        if !(us.is_finite() && us > 0.0) || buffer == 0 {
            bail!("--profile: line {}: not a measurement", i + 2);
        }
        let t = out
            .entry(buffer)
            .or_default()
            .entry(field(m)?.to_string())
            .or_default();
        if stage == "chain" {
            t.service_us = us;
        } else {
            t.busy_us = Some(us);
        }
    }
    // a method measured with a busy time but no chain line is not a measurement
    out.retain(|_, by_method| {
        by_method.retain(|_, t| t.service_us > 0.0);
        !by_method.is_empty()
    });
    anyhow::ensure!(
        !out.is_empty(),
        "--profile: {} holds no chain measurements",
        path.display()
    );
    Ok(out)
}
