//! `streamprep demo`: everything in one process, nothing to install. An MQTT broker embedded
//! in the process (rumqttd; or `--broker` for an existing one), the weather-station simulator
//! (three stations, rows stamped with the wall clock) publishing to topic `wetter`, and the web
//! app on 127.0.0.1:8080 (loopback only; an in-memory store, a `demo` user whose password is
//! printed) running the paper's project `fillna_zeros,normalizer,drop_duplicates` on the pool,
//! buffer 100, with a live status line until Ctrl-C (or `--seconds`), then a clean shutdown
//! and the summary.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use streamprep_connectors::generator::Stations;
use streamprep_connectors::mqtt::{MqttUrl, Publisher};
use streamprep_project::{BufferSetting, ChainSpec, MethodName, ProjectSpec};

use super::run::flagged;
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
    /// Where the web app listens (loopback only; port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<f64>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.qos <= 1, "--qos must be 0 or 1");
    let addr: std::net::SocketAddr = args.addr.parse().map_err(|_| {
        anyhow::anyhow!(
            "--addr: '{}' is not an address like 127.0.0.1:8080",
            args.addr
        )
    })?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--addr: the demo listens on loopback only (127.0.0.1 or [::1]); `streamprep serve` serves others"
    );
    let base = match &args.broker {
        Some(b) => b.trim_end_matches('/').to_string(),
        None => format!("mqtt://127.0.0.1:{}", args.port),
    };
    let qos = format!("?qos={}", args.qos);
    let topic = format!("{base}/wetter{qos}");
    // the app keeps a project's files under one directory: the sink's (by default this one)
    let cwd = std::env::current_dir().context("the current directory")?;
    let absolute = |spec: &str| match spec.strip_prefix("file:") {
        Some(p) if !std::path::Path::new(p).is_absolute() => {
            format!("file:{}", cwd.join(p).display())
        }
        _ => spec.to_string(),
    };
    let (sink, dead_letter) = (absolute(&args.sink), absolute(&args.dead_letter));
    let files_root = sink
        .strip_prefix("file:")
        .and_then(|p| std::path::Path::new(p).parent())
        .map_or_else(|| cwd.clone(), std::path::Path::to_path_buf);
    let files_root = std::fs::canonicalize(&files_root)
        .with_context(|| format!("--sink: {} is not a directory", files_root.display()))?;
    let canon = |spec: String| match spec.strip_prefix("file:") {
        Some(p) => {
            let p = std::path::Path::new(p);
            match (
                p.parent().and_then(|d| std::fs::canonicalize(d).ok()),
                p.file_name(),
            ) {
                (Some(d), Some(f)) => format!("file:{}", d.join(f).display()),
                _ => spec,
            }
        }
        None => spec,
    };
    let (sink, dead_letter) = (canon(sink), canon(dead_letter));
    // the demo is a project like any other, run by the web app through the project library
    let spec = ProjectSpec {
        name: Some("demo".into()),
        description: Some("the paper's chain on the simulated weather stations".into()),
        source: Some(topic.clone()),
        chain: Some(ChainSpec::Text(CHAIN.into())),
        buffer: Some(BufferSetting::Rows(args.buffer)),
        method: Some(MethodName::Pool),
        workers: args.workers,
        max_wait: Some(args.max_wait.clone()),
        sink: Some(sink),
        dead_letter: Some(dead_letter),
        arrival_rate: Some(args.rate),
        ..ProjectSpec::default()
    };
    let plan = spec.clone().plan().map_err(flagged)?;
    let method = plan.config.method;
    // Ctrl-C (or --seconds) stops the simulator first; the run stops once it has taken every
    // row the simulator published, so the summary adds up
    let user_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    stop_on_ctrl_c(&user_stop)?;
    let sim_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.broker.is_none() {
        start_embedded_broker(args.port)?;
    }

    // the web app: an in-memory store, one user, the project started
    let rt = super::serve::web_runtime()?;
    let password = streamprep_serve::auth::random_hex(8);
    let (state, listener, project) = rt.block_on(async {
        let store = streamprep_serve::store::Store::memory().await?;
        store
            .add_user("demo", streamprep_serve::store::Role::Admin, &password)
            .await?;
        let mut state = streamprep_serve::AppState::new(store);
        state.files_root = Some(files_root.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("--addr: cannot listen on {addr} (another program has it? give --addr 127.0.0.1:0 for any free port)")
        })?;
        let id = match streamprep_serve::projects::save(&state, "demo", None, spec).await {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => anyhow::bail!("{e}"),
            Err(e) => anyhow::bail!("{}", e.message),
        };
        streamprep_serve::projects::start_project(&state, &id, "demo")
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        anyhow::Ok((state, listener, id))
    })?;
    let local = listener.local_addr()?;
    let app = streamprep_serve::router(state.clone());
    let closing = state.shutting_down.clone();
    let (quit_tx, quit_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = quit_rx.await;
                closing.store(true, Ordering::SeqCst);
            })
            .await
    });
    let run = state
        .active
        .get(&project)
        .map(|c| c.handle)
        .context("the demo project did not start")?;

    // the simulator publishes once the run has subscribed (nothing published is missed)
    while run.state() == streamprep_project::RunState::Starting {
        std::thread::sleep(Duration::from_millis(10));
    }
    if let streamprep_project::RunState::Failed { reason } = run.state() {
        anyhow::bail!("{reason}");
    }
    let pub_url = MqttUrl::parse(&topic).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
    let mut publisher = match Publisher::connect(&pub_url, "simulator", sim_stop.clone()) {
        Ok(p) => p,
        Err(e) => {
            run.stop();
            let _ = run.wait();
            return Err(e).context("starting the simulator");
        }
    };
    let (rate, stations) = (args.rate, args.stations);
    let sim_stop_for_thread = sim_stop.clone();
    let simulator = std::thread::Builder::new()
        .name("streamprep-simulator".into())
        .spawn(move || -> anyhow::Result<u64> {
            // live rows: the wall-clock time in ts, and the publish time in sent_us (the
            // project page measures publish-to-chart latency with it)
            let n = super::gen::simulate(
                &mut publisher,
                Stations::new(1, stations).wall_clock(),
                rate,
                u64::MAX,
                true,
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
        "streamprep demo: broker {base}, {stations} simulated station(s) at {rate} rows/s to topic wetter (QoS {}), chain {CHAIN} on {method:?}, buffer {} -> {} (Ctrl-C to stop)",
        args.qos, args.buffer, args.sink
    );
    eprintln!(
        "streamprep demo: the app is at http://{local}/ : log in as demo with the password {password} (this run only)"
    );
    let status = StatusLine::start(run.clone(), "demo", true, None);
    let shutdown = {
        let run = run.clone();
        std::thread::spawn(move || -> anyhow::Result<u64> {
            while !user_stop.load(Ordering::Relaxed) && !run.state().is_over() {
                std::thread::sleep(Duration::from_millis(50));
            }
            sim_stop.store(true, Ordering::SeqCst);
            let published = simulator
                .join()
                .map_err(|_| anyhow::anyhow!("the simulator panicked"))?;
            // let the run take what was published (a few seconds at most)
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Ok(n) = &published {
                if run.view().figures.counts.rows_read >= *n
                    || Instant::now() > deadline
                    || run.state().is_over()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            published
        })
    };
    // the run stops when the simulator is done (or stops on its own: stopped in the app)
    while !shutdown.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = rt.block_on(streamprep_serve::projects::stop_project(
        &state, &project, "demo",
    ));
    let result = run.wait();
    status.stop();
    let published = shutdown
        .join()
        .map_err(|_| anyhow::anyhow!("the shutdown thread panicked"))??;
    // the app stops: its live streams end, the run's end is recorded
    let _ = quit_tx.send(());
    let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await });
    rt.shutdown_timeout(Duration::from_secs(1));
    let summary = result.map_err(anyhow::Error::msg)?;
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
