//! `streamprep`: real-time preprocessing of streaming sensor data.
//!
//! One file per subcommand under `src/cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

// Messages allocate many small buffers (one per column and step); mimalloc halves the cost of
// that against glibc's malloc at small buffer sizes (measured: BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Real-time preprocessing of streaming sensor data: pandas/scikit-learn steps on Arrow batches.
#[derive(Parser)]
#[command(name = "streamprep", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// parsed once at start: the size of its largest variant does not matter
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run a pipeline: source -> buffer -> chain of steps -> sink.
    Run(cmd::run::RunArgs),
    /// Everything embedded: an MQTT broker, the weather-station simulator and the paper's
    /// chain on the pool, with a live status line until Ctrl-C.
    Demo(cmd::demo::DemoArgs),
    /// Run the embedded MQTT broker alone (what `demo` starts), until Ctrl-C.
    Broker(cmd::demo::BrokerArgs),
    /// Serve `--method queue` pipelines: take tasks from Redis, run their chains, send the
    /// results back (any number of workers, on any host).
    Worker(cmd::worker::WorkerArgs),
    /// Measure the chain's service time per message and per row at several buffer sizes,
    /// one message at a time (the paper's procedure): a table, a CSV and an SVG plot.
    Profile(cmd::profile::ProfileArgs),
    /// Size a pipeline from a profile: predicted utilisation and latency for each buffer size
    /// and worker count at an arrival rate (queueing theory), and a recommendation.
    Plan(cmd::plan::PlanArgs),
    /// Write Davis-weather-station-like test data (NDJSON), or publish it to MQTT at a rate.
    Gen(cmd::gen::GenArgs),
    /// List the steps with one-line descriptions.
    List,
    /// The web server: the JSON API (step and connector catalogue, checking a project spec),
    /// health, metrics and the OpenAPI document. Projects, runs and users come next.
    Serve(cmd::serve::ServeArgs),
    /// The users of `serve`: add, passwd, del, list.
    User(cmd::user::UserArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::log::install();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Broker(args) => cmd::demo::broker(args),
        Command::Gen(args) => cmd::gen::run(args),
        Command::Worker(args) => cmd::worker::run(args),
        Command::Profile(args) => cmd::profile::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::List => cmd::list::run(),
        Command::Serve(args) => cmd::serve::run(args),
        Command::User(args) => cmd::user::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamprep: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
