//! `streamprep worker`: serve `--method queue` pipelines from Redis until Ctrl-C.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use streamprep_queue::{WorkerConfig, WorkerStats};

use super::status::stop_on_ctrl_c;

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Redis (redis://HOST:PORT), the same as the pipelines' --broker.
    #[arg(long)]
    broker: String,
    /// Threads, each running one task at a time.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Tasks a thread takes from Redis in one round trip: `auto` takes as many as the chain
    /// needs to cover the measured round trip (1 on a fast link, more across a slow one, up to
    /// 16); a number fixes it. Results go back with the next read, in the same round trip.
    #[arg(long, default_value = "auto")]
    prefetch: String,
    /// Take over a task left pending this long by a worker that stopped answering.
    #[arg(long, default_value = "10s")]
    claim_after: String,
    /// Give a task up as a dead letter after this many deliveries.
    #[arg(long, default_value_t = 3)]
    max_attempts: u64,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.concurrency <= streamprep_engine::pipeline::MAX_WORKERS,
        "--concurrency {} is more than the limit of {} threads",
        args.concurrency,
        streamprep_engine::pipeline::MAX_WORKERS
    );
    anyhow::ensure!(args.max_attempts >= 1, "--max-attempts must be at least 1");
    let max = streamprep_queue::worker::MAX_PREFETCH;
    let prefetch = match args.prefetch.as_str() {
        "auto" => None,
        n => Some(
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    anyhow::anyhow!("--prefetch {n}: auto or a number from 1 to {max}")
                })?,
        ),
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    stop_on_ctrl_c(&stop)?;
    let cfg = WorkerConfig {
        url: args.broker.clone(),
        concurrency: args.concurrency,
        claim_after: super::duration(&args.claim_after, "--claim-after")?,
        max_attempts: args.max_attempts,
        prefetch,
        stop,
    };
    let stats = WorkerStats::default();
    let started = Instant::now();
    // "serving" only once Redis has answered
    streamprep_queue::worker::run(&cfg, &stats, || {
        eprintln!(
            "streamprep worker: serving {} with {} thread(s) (Ctrl-C to stop)",
            args.broker, args.concurrency
        )
    })?;
    eprintln!(
        "streamprep worker: {} task(s), {} row(s), {} taken over, {} given up, {:.1} s",
        stats.tasks.load(Ordering::Relaxed),
        stats.rows.load(Ordering::Relaxed),
        stats.claimed.load(Ordering::Relaxed),
        stats.poisoned.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
