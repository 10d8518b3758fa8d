//! `streamprep plan`: from a `profile` CSV and an arrival rate, predict for each buffering
//! factor and worker count the utilisation and the latency (buffer fill + Erlang C wait +
//! service), and recommend the setting with the lowest latency that keeps `rho` under the
//! target.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use streamprep_engine::planner::{self, parse_profile, PlanRequest, PlanRow};

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
    /// The queue's workers are on other hosts, across a link with this round trip (`2ms`,
    /// `0.2ms`; with --link-bandwidth): each queue setting then adds the round trip and the
    /// transfer of its task and result, and counts the links' capacity. The profile is the
    /// queue measured with its worker beside Redis (its task and result bytes are in it).
    #[arg(long, requires = "link_bandwidth")]
    link_rtt: Option<String>,
    /// The link's bandwidth each way: `100mbit`, `1gbit`, `10gbit`.
    #[arg(long, requires = "link_rtt")]
    link_bandwidth: Option<String>,
    /// Worker hosts, each behind such a link; the workers are spread evenly over them.
    #[arg(long, default_value_t = 1, requires = "link_rtt")]
    worker_hosts: usize,
    /// How the rows arrive: `random` (many independent sensors) or `regular` (a sampling
    /// clock, a replay at `--rate`). The wait for a worker follows it and the chain's spread in
    /// the profile (G/G/c, Allen-Cunneen): a steady stream waits far less than a random one.
    #[arg(long, default_value = "random", value_parser = ["random", "regular"])]
    arrivals: String,
    /// Tasks and results across the link LZ4-compressed (`lz4`; the profile's LZ4 sizes), as
    /// they are (`none`), or `auto` (LZ4 from a 1 ms round trip), as `run --task-compression`.
    #[arg(long, default_value = "none", value_parser = ["none", "lz4", "auto"], requires = "link_rtt")]
    task_compression: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `100mbit`, `1gbit`, `1.5gbit`, `500kbit` -> megabits a second.
fn mbit(s: &str) -> anyhow::Result<f64> {
    let l = s.to_ascii_lowercase();
    let (n, unit) = [("gbit", 1e3), ("mbit", 1.0), ("kbit", 1e-3)]
        .into_iter()
        .find_map(|(u, m)| l.strip_suffix(u).map(|n| (n.to_string(), m)))
        .ok_or_else(|| anyhow::anyhow!("--link-bandwidth {s}: a rate such as 100mbit or 1gbit"))?;
    let v: f64 = n
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--link-bandwidth {s}: a rate such as 100mbit or 1gbit"))?;
    Ok(v * unit)
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
    let text = std::fs::read_to_string(&args.profile)
        .with_context(|| format!("--profile: reading {}", args.profile.display()))?;
    let profile = parse_profile(&text)
        .map_err(|e| anyhow::anyhow!("--profile: {}: {e}", args.profile.display()))?;
    let req = PlanRequest {
        arrival_rate: args.arrival_rate,
        target_rho: args.target_rho,
        max_latency_ms: args.max_latency,
        cores,
        method: args.method.clone(),
        workers: args.workers,
        max_workers: args.max_workers,
        link: match (&args.link_rtt, &args.link_bandwidth) {
            (Some(rtt), Some(bw)) => planner::link(
                Some(super::duration(rtt, "--link-rtt")?.as_secs_f64() * 1e3),
                Some(mbit(bw)?),
                Some(args.worker_hosts),
                Some(&args.task_compression),
            )
            .map_err(anyhow::Error::msg)?,
            _ => None,
        },
        arrivals: planner::Arrivals::parse(Some(&args.arrivals)).map_err(anyhow::Error::msg)?,
    };
    let plan = planner::plan(&profile, &req).map_err(anyhow::Error::msg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan.to_json())?);
    } else {
        let best = plan.best.map(|i| &plan.rows[i]);
        print!("{}", table(&args, cores, &plan.rows, best));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(args: &PlanArgs, cores: usize, rows: &[PlanRow], best: Option<&PlanRow>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "arrival rate {} rows/s ({} arrivals), target rho {}{}; pool up to {} worker(s) on {cores} core(s), queue beyond",
        args.arrival_rate,
        args.arrivals,
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
