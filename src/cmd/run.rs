//! `streamprep run`: one pipeline from flags and/or a project file (flags override the file),
//! launched through the project library: the flags fill in a spec, the spec is checked field
//! by field before anything is opened, and the run is watched until it ends.

use std::process::ExitCode;

use streamprep_connectors::FileFormat;
use streamprep_ops::prepare::Compression;
use streamprep_project::spec::split_chain;
use streamprep_project::{
    BackpressureName, BufferSetting, ChainSpec, MethodName, OrderedName, ProjectSpec, RateSetting,
    SpecError,
};

use super::status::StatusLine;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Project file (TOML); flags override what it says.
    project: Option<std::path::PathBuf>,
    /// Source: file:PATH (.ndjson/.jsonl, .csv, .parquet), `-` (stdin), tcp-listen:HOST:PORT, generator:davis?rows=N.
    #[arg(long)]
    source: Option<String>,
    /// Steps, comma-separated (prepare and result are implied). See `streamprep list`.
    #[arg(long)]
    chain: Option<String>,
    /// Buffering factor: rows a message, or `auto` to follow the load (see --max-latency).
    #[arg(long)]
    buffer: Option<String>,
    /// With --buffer auto: the latency a row should stay under (default 100ms); the buffer
    /// stays as small as keeps rho under 0.7.
    #[arg(long)]
    max_latency: Option<String>,
    /// Where the chain runs.
    #[arg(long, value_enum)]
    method: Option<MethodArg>,
    /// Worker threads for `--method pool` (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Redis for `--method queue` (redis://HOST:PORT); `streamprep worker` processes on any
    /// host serve it.
    #[arg(long)]
    broker: Option<String>,
    /// `--method queue`: messages sent to workers and not yet delivered, at most (default 64).
    #[arg(long)]
    in_flight: Option<usize>,
    /// The queue method: compress tasks and results with LZ4 (`lz4`; default `none`): less to
    /// carry between hosts, more CPU at both ends; `auto`: LZ4 once the workers turn out to be
    /// 1 ms or more from Redis (they say how far when they connect, and with each result).
    #[arg(long, value_parser = ["none", "lz4", "auto"])]
    task_compression: Option<String>,
    /// Sink: file:PATH (.ndjson/.jsonl, .csv, .parquet), `-` (stdout), tcp:HOST:PORT.
    #[arg(long)]
    sink: Option<String>,
    /// Dead-letter output (NDJSON): file:PATH or `-` (stderr, the default).
    #[arg(long)]
    dead_letter: Option<String>,
    /// Row format of a stdin or TCP source (files: from the extension).
    #[arg(long, value_enum)]
    source_format: Option<Format>,
    /// Format of a stdout or TCP sink (files: from the extension).
    #[arg(long, value_enum)]
    sink_format: Option<Format>,
    /// Rows arrive wrapped: `zlib-base64` = each row is base64(zlib(text)).
    #[arg(long, value_enum)]
    compression: Option<CompressionArg>,
    /// Largest row accepted from any source, in bytes: a line of a file or stdin, a TCP frame,
    /// an MQTT publish (longer ones are skipped without being held, into dead letters).
    /// Default 16 MiB.
    #[arg(long, visible_alias = "max-frame")]
    max_row: Option<usize>,
    /// The CSV field separator of the source (pandas' `sep`), one character: `;`, `\t`, `|`.
    #[arg(long)]
    csv_sep: Option<String>,
    /// The column whose value a row's state belongs to (`station`): `rolling`, `ewm_mean` and
    /// `diff` keep their state per value of it.
    #[arg(long)]
    key: Option<String>,
    /// A key with no row for this long ("5m") has its state dropped (counted).
    #[arg(long)]
    key_ttl: Option<String>,
    /// Beyond this many keys, the least recently seen key's state is dropped (counted).
    #[arg(long)]
    max_keys: Option<usize>,
    /// With --key: `key` gathers messages per key (each key's rows in order, keys as their
    /// messages close); `global` cuts them from the stream and keeps its order.
    #[arg(long, value_enum)]
    ordered: Option<OrderedArg>,
    /// A file keeping the steps' per-key state (running scalers, windows) from one run to
    /// the next (default: beside a file sink, its path + `.state`).
    #[arg(long)]
    state: Option<String>,
    /// A live source's (MQTT, paced generator) message is sent when it holds --buffer rows
    /// or when its oldest row has waited this long, whichever comes first (default 50ms).
    #[arg(long)]
    max_wait: Option<String>,
    /// When the chain cannot keep up: `block` the source (default; nothing lost) or
    /// `drop_oldest` (shed the oldest waiting message, count its rows).
    #[arg(long, value_enum)]
    backpressure: Option<BackpressureArg>,
    /// Measure end-to-end latency from this column: the time each row was sent, in
    /// microseconds since 1970 (`streamprep gen --mqtt ... --stamp` writes `sent_us`); the
    /// summary gives p50, p99 and max from send to sink.
    #[arg(long)]
    latency_field: Option<String>,
    /// Replay the source (a file or stdin) at this many rows a second, as if its rows were
    /// arriving live (messages then also close after --max-wait); or in steps,
    /// RATE:DURATION,... (e.g. 20000:10s,200000:10s,20000:10s; the last rate goes on).
    #[arg(long)]
    rate: Option<String>,
    /// Serve the metrics in Prometheus' text format at http://HOST:PORT/metrics while the
    /// pipeline runs (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics_addr: Option<String>,
    /// Write one CSV line a second to this file: rows/s in, buffer size, measured and
    /// predicted rho, mean row latency, backlog.
    #[arg(long)]
    timeline: Option<std::path::PathBuf>,
    /// Print a live status line every second (on by default for live sources on a terminal).
    #[arg(long)]
    status: bool,
    /// Do not print the summary line.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Ndjson,
    Csv,
    Parquet,
}

impl From<Format> for FileFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Ndjson => FileFormat::Ndjson,
            Format::Csv => FileFormat::Csv,
            Format::Parquet => FileFormat::Parquet,
        }
    }
}

/// Where the chain runs.
#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    /// In the thread that reads the source.
    Inline,
    /// On a pool of worker threads.
    Pool,
    /// As tasks through Redis to `streamprep worker` processes.
    Queue,
}

/// What a saturated pipeline does.
/// The order of a keyed run's rows.
#[derive(Clone, Copy, clap::ValueEnum)]
enum OrderedArg {
    /// Messages per key; each key's rows in input order.
    Key,
    /// Messages cut from the stream; the stream's order.
    Global,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackpressureArg {
    /// Stop reading the source until the chain catches up (nothing lost).
    Block,
    /// Shed the oldest waiting message and count its rows.
    #[value(name = "drop_oldest", alias = "drop-oldest")]
    DropOldest,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CompressionArg {
    None,
    ZlibBase64,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut spec = match &args.project {
        Some(p) => ProjectSpec::load(p).map_err(flagged)?,
        None => ProjectSpec::default(),
    };
    // the flags override the file
    let set = |slot: &mut Option<String>, flag: Option<String>| {
        if flag.is_some() {
            *slot = flag;
        }
    };
    set(&mut spec.source, args.source);
    set(&mut spec.sink, args.sink);
    set(&mut spec.dead_letter, args.dead_letter);
    set(&mut spec.broker, args.broker);
    set(&mut spec.max_latency, args.max_latency);
    set(&mut spec.max_wait, args.max_wait);
    set(&mut spec.csv_sep, args.csv_sep);
    set(&mut spec.key, args.key);
    set(&mut spec.key_ttl, args.key_ttl);
    set(&mut spec.state, args.state);
    if args.max_keys.is_some() {
        spec.max_keys = args.max_keys;
    }
    set(&mut spec.task_compression, args.task_compression);
    if let Some(c) = args.chain {
        spec.chain = Some(ChainSpec::List(split_chain(&c)));
    }
    if let Some(b) = args.buffer {
        spec.buffer = Some(match b.trim().parse::<usize>() {
            Ok(n) => BufferSetting::Rows(n),
            Err(_) => BufferSetting::Word(b),
        });
    }
    if let Some(m) = args.method {
        spec.method = Some(match m {
            MethodArg::Inline => MethodName::Inline,
            MethodArg::Pool => MethodName::Pool,
            MethodArg::Queue => MethodName::Queue,
        });
    }
    if let Some(b) = args.backpressure {
        spec.backpressure = Some(match b {
            BackpressureArg::Block => BackpressureName::Block,
            BackpressureArg::DropOldest => BackpressureName::DropOldest,
        });
    }
    if let Some(o) = args.ordered {
        spec.ordered = Some(match o {
            OrderedArg::Key => OrderedName::Key,
            OrderedArg::Global => OrderedName::Global,
        });
    }
    spec.workers = args.workers.or(spec.workers);
    spec.in_flight = args.in_flight.or(spec.in_flight);
    spec.max_row = args.max_row.or(spec.max_row);
    spec.source_format = args
        .source_format
        .map(FileFormat::from)
        .or(spec.source_format);
    spec.sink_format = args.sink_format.map(FileFormat::from).or(spec.sink_format);
    if let Some(c) = args.compression {
        spec.compression = Some(match c {
            CompressionArg::None => Compression::None,
            CompressionArg::ZlibBase64 => Compression::ZlibBase64,
        });
    }
    if let Some(r) = args.rate {
        spec.rate = Some(RateSetting::Steps(r));
    }
    let mut plan = spec.plan().map_err(flagged)?;
    plan.config.latency_field = args.latency_field;

    // what can fail is tried before the source is opened and the sink's file created
    let slot = std::sync::Arc::new(std::sync::OnceLock::<streamprep_project::RunHandle>::new());
    let server = match &args.metrics_addr {
        Some(a) => {
            let slot = slot.clone();
            Some(super::metrics::MetricsServer::start(
                a,
                std::sync::Arc::new(move || slot.get().map(|h| h.prometheus()).unwrap_or_default()),
            )?)
        }
        None => None,
    };
    let timeline = match &args.timeline {
        Some(p) => Some(
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("--timeline: {}: {e}", p.display()))?,
        ),
        None => None,
    };
    // the pipeline runs on this thread; the status line and Ctrl-C watch it through the handle
    let (handle, runner) = streamprep_project::prepare(plan);
    {
        let handle = handle.clone();
        super::status::on_ctrl_c(move || handle.stop())?;
    }
    let _ = slot.set(handle.clone());
    let status = StatusLine::start(handle.clone(), "run", args.status, timeline);
    runner.run();
    let result = handle.wait();
    status.stop();
    drop(server);
    let summary = result.map_err(anyhow::Error::msg)?;
    if !args.quiet {
        eprintln!("streamprep: {summary}");
        if let Some(l) = &summary.latency {
            eprintln!("streamprep: {l}");
        }
        eprintln!("streamprep: {}", summary.metrics);
    }
    Ok(ExitCode::SUCCESS)
}

/// A spec's errors as the CLI says them: each field with the flag that sets it.
pub fn flagged(e: SpecError) -> anyhow::Error {
    let lines: Vec<String> = e
        .errors
        .iter()
        .map(|f| {
            let field = f.field.split('.').next().unwrap_or(&f.field);
            match field {
                "project" | "schema" => format!("{}: {}", f.field, f.message),
                _ => format!("{} (--{}): {}", f.field, field.replace('_', "-"), f.message),
            }
        })
        .collect();
    anyhow::anyhow!("{}", lines.join("; "))
}
