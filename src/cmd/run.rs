//! `streamprep run`: one pipeline from flags and/or a project file (flags override the file).
//! Everything is validated, and every endpoint opened, before the first row is read.

use std::process::ExitCode;

use anyhow::{bail, Context};
use streamprep_connectors::{
    open_dead_letter, open_sink, open_source, spec, FileFormat, SourceOptions,
};
use streamprep_engine::{Backpressure, Method, PipelineConfig, Stats};
use streamprep_ops::prepare::Compression;

use super::project::{
    declared_schema, parse_duration, split_chain, BackpressureName, BufferSetting, MethodName,
    ProjectConfig, RateSetting,
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
    method: Option<MethodName>,
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
    /// carry between hosts, more CPU at both ends.
    #[arg(long, value_parser = ["none", "lz4"])]
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
    /// A live source's (MQTT, paced generator) message is sent when it holds --buffer rows
    /// or when its oldest row has waited this long, whichever comes first (default 50ms).
    #[arg(long)]
    max_wait: Option<String>,
    /// When the chain cannot keep up: `block` the source (default; nothing lost) or
    /// `drop_oldest` (shed the oldest waiting message, count its rows).
    #[arg(long, value_enum)]
    backpressure: Option<BackpressureName>,
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

#[derive(Clone, Copy, clap::ValueEnum)]
enum CompressionArg {
    None,
    ZlibBase64,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let project = match &args.project {
        Some(p) => ProjectConfig::load(p)?,
        None => ProjectConfig::default(),
    };
    let source = args
        .source
        .or(project.source)
        .context("no source: give --source or `source =` in the project file")?;
    let sink = args
        .sink
        .or(project.sink)
        .context("no sink: give --sink or `sink =` in the project file")?;
    let chain = match args.chain {
        Some(c) => split_chain(&c),
        None => project
            .chain
            .map(|c| c.steps())
            .context("no chain: give --chain or `chain =` in the project file")?,
    };
    let setting = match args.buffer {
        Some(b) => Some(match b.trim().parse::<usize>() {
            Ok(n) => BufferSetting::Rows(n),
            Err(_) => BufferSetting::Word(b),
        }),
        None => project.buffer.clone(),
    }
    .context("no buffer size: give --buffer or `buffer =` in the project file")?;
    let adaptive = match &setting {
        BufferSetting::Rows(_) => None,
        BufferSetting::Word(w) if w.trim() == "auto" => {
            let t = args
                .max_latency
                .or(project.max_latency.clone())
                .unwrap_or_else(|| "100ms".into());
            Some(streamprep_engine::adaptive::Adaptive::new(
                parse_duration(&t).context("--max-latency")?,
            ))
        }
        BufferSetting::Word(w) => {
            bail!("--buffer: '{w}' is neither a number of rows nor 'auto'")
        }
    };
    let buffer = match setting {
        BufferSetting::Rows(n) => n,
        BufferSetting::Word(_) => 1,
    };
    let workers = args.workers.or(project.workers);
    let method = match args.method.or(project.method).unwrap_or(MethodName::Inline) {
        MethodName::Inline => {
            if workers.is_some_and(|w| w > 1) {
                bail!("--workers needs --method pool (inline runs on the reading thread)");
            }
            Method::Inline
        }
        MethodName::Pool => Method::Pool {
            workers: workers.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            }),
        },
        MethodName::Queue => {
            if workers.is_some() {
                bail!("--workers is for --method pool; queue workers are `streamprep worker` processes (--concurrency)");
            }
            Method::Queue {
                in_flight: args.in_flight.or(project.in_flight).unwrap_or(64),
            }
        }
    };
    let broker = args.broker.or(project.broker);
    let remote: Option<std::sync::Arc<dyn streamprep_engine::Remote>> = match (&method, broker) {
        (Method::Queue { .. }, Some(url)) => {
            let mut q = streamprep_queue::Queue::new(&url).context("--broker")?;
            q.lz4 = match args.task_compression.or(project.task_compression.clone()) {
                None => false,
                Some(z) if z == "none" => false,
                Some(z) if z == "lz4" => true,
                Some(z) => bail!("task_compression: '{z}' is not 'none' or 'lz4'"),
            };
            Some(std::sync::Arc::new(q))
        }
        (Method::Queue { .. }, None) => {
            bail!("--method queue needs --broker redis://HOST:PORT")
        }
        (_, Some(_)) => bail!("--broker is for --method queue"),
        (_, None) => None,
    };
    let compression = match args.compression {
        Some(CompressionArg::None) => Compression::None,
        Some(CompressionArg::ZlibBase64) => Compression::ZlibBase64,
        None => project.compression.unwrap_or_default(),
    };
    let schema = project.schema.as_ref().map(declared_schema).transpose()?;
    let max_wait = match args.max_wait.or(project.max_wait) {
        Some(t) => parse_duration(&t).context("--max-wait")?,
        // adaptive: a slow stream's message closes in time to keep the latency
        None => match &adaptive {
            Some(a) => a.max_latency / 2,
            None => std::time::Duration::from_millis(50),
        },
    };
    let backpressure = match args.backpressure.or(project.backpressure) {
        Some(BackpressureName::DropOldest) => Backpressure::DropOldest,
        _ => Backpressure::Block,
    };
    let mut cfg = PipelineConfig::new(chain, buffer);
    cfg.method = method;
    cfg.schema = schema;
    cfg.compression = compression;
    cfg.csv_sep = match args.csv_sep.or(project.csv_sep.clone()).as_deref() {
        None => b',',
        Some("\\t" | "\t" | "tab") => b'\t',
        Some(s) if s.len() == 1 && s != "\"" && s != "\n" && s != "\r" => s.as_bytes()[0],
        Some(s) => bail!("--csv-sep '{s}': give one character such as ';', '|' or '\\t'"),
    };
    cfg.max_wait = Some(max_wait);
    cfg.backpressure = backpressure;
    cfg.latency_field = args.latency_field;
    cfg.adaptive = adaptive;
    let metrics_addr = args.metrics_addr.clone();
    let timeline = args.timeline.clone();
    let rate = match args.rate.map(RateSetting::Steps).or(project.rate.clone()) {
        Some(r) => Some(r.steps()?),
        None => None,
    };
    cfg.remote = remote;
    cfg.validate()?;

    let source_format = args
        .source_format
        .map(FileFormat::from)
        .or(project.source_format);
    let sink_format = args
        .sink_format
        .map(FileFormat::from)
        .or(project.sink_format);
    let source_ep = spec::parse(&source, source_format).context("--source")?;
    let sink_ep = spec::parse(&sink, sink_format).context("--sink")?;
    let dl_ep = spec::parse(
        args.dead_letter
            .or(project.dead_letter)
            .as_deref()
            .unwrap_or("-"),
        Some(FileFormat::Ndjson),
    )
    .context("--dead-letter")?;
    let opts = SourceOptions {
        max_frame: args
            .max_row
            .or(project.max_row)
            .unwrap_or(SourceOptions::default().max_frame),
        stop: cfg.stop.clone(),
    };
    super::status::stop_on_ctrl_c(&cfg.stop)?;
    // no output file is created or truncated before every endpoint has been checked
    spec::check_outputs(&source_ep, &[&sink_ep, &dl_ep])?;

    // what can fail is tried before the source is opened and the sink's file created
    let stats = std::sync::Arc::new(Stats::default());
    let server = match &metrics_addr {
        Some(a) => Some(super::metrics::MetricsServer::start(a, stats.clone())?),
        None => None,
    };
    let timeline = match &timeline {
        Some(p) => {
            Some(std::fs::File::create(p).with_context(|| format!("--timeline: {}", p.display()))?)
        }
        None => None,
    };
    let mut src = open_source(&source_ep, opts.clone()).context("opening the source")?;
    if let Some(steps) = rate {
        anyhow::ensure!(
            !src.is_live() && src.kind() != streamprep_core::SourceKind::Columnar,
            "--rate replays a row file or stdin; this source sets its own pace"
        );
        src = Box::new(streamprep_connectors::paced::Paced::stepped(
            src,
            steps,
            cfg.stop.clone(),
        ));
    }
    match &source_ep {
        spec::Endpoint::TcpListen { addr, .. } => {
            eprintln!("streamprep: listening on {addr} for framed rows")
        }
        spec::Endpoint::Mqtt { url, .. } => {
            eprintln!("streamprep: subscribed to {}", url.display())
        }
        _ => {}
    }
    let mut sink = open_sink(&sink_ep, &opts).context("opening the sink")?;
    let mut dl = open_dead_letter(&dl_ep).context("opening the dead-letter output")?;

    let show =
        args.status || (src.is_live() && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let broker_health = cfg.remote.as_ref().and_then(|r| r.health());
    let status = StatusLine::with_timeline(
        stats.clone(),
        src.link(),
        broker_health,
        "run",
        show,
        timeline,
    );
    let result =
        streamprep_engine::run_with(&cfg, src.as_mut(), sink.as_mut(), Some(dl.as_mut()), &stats);
    status.stop();
    drop(server);
    let summary = result?;
    if !args.quiet {
        eprintln!("streamprep: {summary}");
        if let Some(l) = &summary.latency {
            eprintln!("streamprep: {l}");
        }
        eprintln!("streamprep: {}", summary.metrics);
    }
    Ok(ExitCode::SUCCESS)
}
