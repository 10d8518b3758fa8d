//! `streamprep demo`: everything in one process, nothing to install. An MQTT broker embedded
//! in the process (rumqttd; or `--broker` for an existing one), the weather-station simulator
//! publishing to topic `wetter`, and a project running the paper's chain
//! `fillna_zeros,normalizer,drop_duplicates` on the pool, with a live status line until
//! Ctrl-C (or `--seconds`), then a clean shutdown and the summary.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use streamprep_connectors::generator::Stations;
use streamprep_connectors::mqtt::{MqttSource, MqttUrl, Publisher};
use streamprep_connectors::{open_dead_letter, open_sink, spec, FileFormat, SourceOptions};
use streamprep_core::{RowFormat, Source};
use streamprep_engine::{Method, PipelineConfig, Stats};

use super::project::parse_duration;
use super::status::{stop_on_ctrl_c, StatusLine};

/// The paper's chain.
pub const CHAIN: &str = "fillna_zeros,normalizer,drop_duplicates";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Use this broker (mqtt://HOST:PORT) instead of the embedded one.
    #[arg(long)]
    broker: Option<String>,
    /// Port of the embedded broker (on 127.0.0.1).
    #[arg(long, default_value_t = 1884)]
    port: u16,
    /// Rows a second the simulated stations publish.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Simulated stations.
    #[arg(long, default_value_t = 3)]
    stations: usize,
    /// Buffering factor: rows a message.
    #[arg(long, default_value_t = 100)]
    buffer: usize,
    /// A message is also sent when its oldest row has waited this long.
    #[arg(long, default_value = "50ms")]
    max_wait: String,
    /// Worker threads of the pool (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// QoS of the subscription and the simulator's publishes (0 or 1).
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// Where the results go.
    #[arg(long, default_value = "file:streamprep-demo.ndjson")]
    sink: String,
    /// Dead-letter output.
    #[arg(long, default_value = "file:streamprep-demo-dead.ndjson")]
    dead_letter: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<f64>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.qos <= 1, "--qos must be 0 or 1");
    let mut cfg = PipelineConfig::new(CHAIN.split(',').map(String::from).collect(), args.buffer);
    cfg.method = Method::Pool {
        workers: args.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
    };
    cfg.max_wait = Some(parse_duration(&args.max_wait).context("--max-wait")?);
    cfg.validate()?;
    // Ctrl-C (or --seconds) stops the simulator first; the pipeline (`stop`) stops once it has
    // taken every row the simulator published, so the summary adds up
    let stop = cfg.stop.clone();
    let user_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    stop_on_ctrl_c(&user_stop)?;
    let sim_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let base = match &args.broker {
        Some(b) => b.trim_end_matches('/').to_string(),
        None => {
            start_embedded_broker(args.port)?;
            format!("mqtt://127.0.0.1:{}", args.port)
        }
    };
    let url = |q: &str| MqttUrl::parse(&format!("{base}/wetter{q}"));
    let qos = format!("?qos={}", args.qos);
    let src_url = url(&qos).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
    let mut src = MqttSource::connect(&src_url, RowFormat::Ndjson, stop.clone())
        .context("connecting the source")?;
    let opts = SourceOptions {
        stop: stop.clone(),
        ..SourceOptions::default()
    };
    let sink_ep = spec::parse(&args.sink, None).context("--sink")?;
    let mut sink = open_sink(&sink_ep, &opts).context("opening the sink")?;
    let dl_ep =
        spec::parse(&args.dead_letter, Some(FileFormat::Ndjson)).context("--dead-letter")?;
    let mut dl = open_dead_letter(&dl_ep).context("opening the dead-letter output")?;

    // the simulator
    let pub_url = url(&qos).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
    let mut publisher = Publisher::connect(&pub_url, "simulator", sim_stop.clone())
        .context("starting the simulator")?;
    let (rate, stations) = (args.rate, args.stations);
    let sim_stop_for_thread = sim_stop.clone();
    let simulator = std::thread::Builder::new()
        .name("streamprep-simulator".into())
        .spawn(move || -> anyhow::Result<u64> {
            let n = super::gen::simulate(
                &mut publisher,
                Stations::new(1, stations),
                rate,
                u64::MAX,
                false,
                &sim_stop_for_thread,
            )?;
            publisher.close()?;
            Ok(n)
        })
        .context("starting the simulator")?;
    if let Some(secs) = args.seconds {
        let stop = user_stop.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    eprintln!(
        "streamprep demo: broker {base}, {stations} simulated station(s) at {rate} rows/s to topic wetter (QoS {}), chain {CHAIN} on {:?}, buffer {} -> {} (Ctrl-C to stop)",
        args.qos, cfg.method, args.buffer, args.sink
    );
    let stats = Arc::new(Stats::default());
    let status = StatusLine::start(stats.clone(), src.link(), "demo", true);
    let shutdown = {
        let (stats, stop) = (stats.clone(), stop.clone());
        std::thread::spawn(move || -> anyhow::Result<u64> {
            while !user_stop.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            sim_stop.store(true, Ordering::SeqCst);
            let published = simulator
                .join()
                .map_err(|_| anyhow::anyhow!("the simulator panicked"))?;
            // let the pipeline take what was published (a few seconds at most)
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Ok(n) = &published {
                if stats.snapshot().rows_read >= *n
                    || Instant::now() > deadline
                    || stop.load(Ordering::Relaxed)
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, Ordering::SeqCst);
            published
        })
    };
    let result =
        streamprep_engine::run_with(&cfg, &mut src, sink.as_mut(), Some(dl.as_mut()), &stats);
    status.stop();
    stop.store(true, Ordering::SeqCst);
    let published = shutdown
        .join()
        .map_err(|_| anyhow::anyhow!("the shutdown thread panicked"))??;
    let summary = result?;
    eprintln!("streamprep demo: published {published} rows; {summary}");
    eprintln!("streamprep demo: {}", summary.metrics);
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "embedded-broker")]
pub fn start_embedded_broker(port: u16) -> anyhow::Result<()> {
    use std::collections::HashMap;

    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    if std::net::TcpStream::connect(addr).is_ok() {
        anyhow::bail!(
            "port {port} is taken; give the demo another --port, or use that broker with --broker mqtt://127.0.0.1:{port}"
        );
    }
    let server = rumqttd::ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1 << 20,
            max_inflight_count: 10_000,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 1000,
            max_segment_size: 64 << 20,
            max_segment_count: 4,
            ..rumqttd::RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..rumqttd::Config::default()
    };
    std::thread::Builder::new()
        .name("streamprep-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("streamprep: embedded broker stopped: {e}");
            }
        })
        .context("starting the embedded broker")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the embedded broker did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
pub fn start_embedded_broker(_port: u16) -> anyhow::Result<()> {
    anyhow::bail!(
        "this binary was built without the embedded broker (feature embedded-broker); use --broker mqtt://HOST:PORT"
    )
}

#[derive(clap::Args)]
pub struct BrokerArgs {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 1884)]
    port: u16,
}

/// `streamprep broker`: the embedded MQTT broker alone, until Ctrl-C.
pub fn broker(args: BrokerArgs) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    stop_on_ctrl_c(&stop)?;
    start_embedded_broker(args.port)?;
    eprintln!(
        "streamprep: MQTT broker listening on mqtt://127.0.0.1:{}",
        args.port
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ExitCode::SUCCESS)
}
