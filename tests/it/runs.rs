//! Many runs in one process through the project library: every kind of source (files in
//! NDJSON, CSV and Parquet, a FIFO read like stdin, `tcp-listen` waiting and mid-stream, MQTT
//! on a private Mosquitto, the generator plain and paced, a paced file, the queue method on a
//! private redis-server), watched with `view()` while they run, then stopped: each `stop()`
//! returns at once, each run reports `finished` within a second, every sink holds whole rows
//! only, and each summary adds up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use streamprep_project::{launch, ProjectSpec, RunHandle, RunState};

use super::cli::{bin, gen, ok};
use super::mqtt::{publish, Broker, Kind};
use super::queue::{Redis, Worker};
use super::tcp::free_port;

/// Chains that keep every row (rows in = rows out + dead letters + dropped).
const CHAIN: &str = "[\"fillna_zeros\", \"abs\"]";

struct Case {
    name: String,
    handle: RunHandle,
    sink: Option<PathBuf>,
}

fn start(dir: &Path, name: &str, toml_body: &str, sink_ext: Option<&str>) -> Case {
    let sink = sink_ext.map(|ext| dir.join(format!("{name}.{ext}")));
    let mut text = format!("name = \"{name}\"\nchain = {CHAIN}\n");
    if let Some(s) = &sink {
        text.push_str(&format!("sink = \"file:{}\"\n", s.display()));
    }
    text.push_str(&format!(
        "dead_letter = \"file:{}\"\n",
        dir.join(format!("{name}.dead.ndjson")).display()
    ));
    text.push_str(toml_body);
    let spec = ProjectSpec::from_toml(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
    let handle = launch(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    Case {
        name: name.into(),
        handle,
        sink,
    }
}

/// Lines of a file sink: each a whole row (JSON that parses; CSV with the header's fields).
fn whole_rows(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "{}: a torn last row",
        path.display()
    );
    let text = String::from_utf8(bytes).expect("utf-8");
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => {
            let mut lines = text.lines();
            let Some(header) = lines.next() else {
                return 0;
            };
            let fields = header.split(',').count();
            let mut n = 0;
            for l in lines {
                assert_eq!(l.split(',').count(), fields, "{}: {l}", path.display());
                n += 1;
            }
            n
        }
        _ => {
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()));
                assert!(v.is_object(), "{l}");
            }
            text.lines().count() as u64
        }
    }
}

/// Rows of a Parquet file, read back through a run.
fn parquet_rows(path: &Path) -> u64 {
    let spec = ProjectSpec::from_toml(&format!(
        "source = \"file:{}\"\nchain = [\"abs\"]\nbuffer = 1000\nsink = \"file:/dev/null\"\nsink_format = \"ndjson\"\ndead_letter = \"file:/dev/null\"\n",
        path.display()
    ))
    .expect("spec");
    launch(&spec)
        .expect("launch")
        .wait()
        .expect("read back")
        .rows_out
}

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(st.success());
}

#[test]
fn twenty_runs_in_one_process_are_watched_and_each_stops_within_a_second() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // inputs: a file big enough to be mid-read when stopped, and its CSV and Parquet forms
    let big = gen(d, 150_000);
    let small = d.join("small.ndjson");
    ok(bin()
        .args(["gen", "--rows", "20000", "--seed", "7", "--out"])
        .arg(&small)
        .output()
        .expect("gen"));
    let csv = d.join("big.csv");
    let parquet = d.join("big.parquet");
    for out in [&csv, &parquet] {
        ok(bin()
            .args(["run", "--chain", "abs", "--buffer", "1000", "-q"])
            .arg("--source")
            .arg(format!("file:{}", big.display()))
            .arg("--sink")
            .arg(format!("file:{}", out.display()))
            .output()
            .expect("convert"));
    }
    let broker = Broker::start(Kind::Mosquitto, d);
    let redis = Redis::start();
    let _worker = Worker::start(&redis.url(), 1);
    let tcp_idle = free_port();
    let tcp_busy = free_port();
    let fifo_idle = d.join("idle.fifo.ndjson");
    let fifo_busy = d.join("busy.fifo.ndjson");
    mkfifo(&fifo_idle);
    mkfifo(&fifo_busy);
    // a TCP receiver for the run whose sink is framed TCP
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let receiver_port = receiver.local_addr().expect("addr").port();
    let received = std::thread::spawn(move || {
        let (s, _) = receiver.accept().expect("accept");
        let mut r = std::io::BufReader::new(s);
        let mut rows = 0u64;
        let mut buf = Vec::new();
        while let Ok(Some(streamprep_connectors::tcp::FrameRead::Frame(_))) =
            streamprep_connectors::tcp::read_frame(&mut r, &mut buf, 1 << 30)
        {
            if buf == [4u8] {
                break; // the sink's end of transmission
            }
            rows += buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
            buf.clear();
        }
        rows
    });

    let f = |p: &Path| format!("file:{}", p.display());
    let cases = vec![
        start(d, "file_inline", &format!("source = \"{}\"\nbuffer = 10\n", f(&big)), Some("ndjson")),
        start(
            d,
            "file_pool",
            &format!("source = \"{}\"\nbuffer = 10\nmethod = \"pool\"\nworkers = 2\n", f(&big)),
            Some("ndjson"),
        ),
        start(d, "csv_file", &format!("source = \"{}\"\nbuffer = 10\n", f(&csv)), Some("csv")),
        start(d, "parquet_file", &format!("source = \"{}\"\nbuffer = 10\n", f(&parquet)), Some("parquet")),
        start(d, "fifo_waiting", &format!("source = \"{}\"\nbuffer = 10\n", f(&fifo_idle)), Some("ndjson")),
        start(d, "fifo_mid_stream", &format!("source = \"{}\"\nbuffer = 10\n", f(&fifo_busy)), Some("ndjson")),
        start(
            d,
            "tcp_waiting",
            &format!("source = \"tcp-listen:127.0.0.1:{tcp_idle}\"\nbuffer = 10\n"),
            Some("ndjson"),
        ),
        start(
            d,
            "tcp_mid_stream",
            &format!("source = \"tcp-listen:127.0.0.1:{tcp_busy}\"\nbuffer = 10\n"),
            Some("ndjson"),
        ),
        start(
            d,
            "mqtt_rows",
            &format!("source = \"{}?qos=1\"\nbuffer = 10\nmax_wait = \"20ms\"\n", broker.url("runs/a")),
            Some("ndjson"),
        ),
        start(
            d,
            "mqtt_quiet",
            &format!("source = \"{}?qos=1\"\nbuffer = 10\n", broker.url("runs/b")),
            Some("ndjson"),
        ),
        start(d, "generator", "source = \"generator:davis?rows=1000000000\"\nbuffer = 50\n", Some("ndjson")),
        start(
            d,
            "generator_paced",
            "source = \"generator:davis?rate=500&stations=3\"\nbuffer = 20\n",
            Some("ndjson"),
        ),
        start(
            d,
            "paced_file",
            &format!("source = \"{}\"\nbuffer = 10\nrate = 2000\n", f(&small)),
            Some("ndjson"),
        ),
        start(
            d,
            "queue",
            &format!(
                "source = \"{}\"\nbuffer = 100\nmethod = \"queue\"\nbroker = \"{}\"\nin_flight = 4\n",
                f(&big),
                redis.url()
            ),
            Some("ndjson"),
        ),
        start(
            d,
            "drop_oldest",
            "source = \"generator:davis?rate=2000\"\nbuffer = 10\nbackpressure = \"drop_oldest\"\n",
            Some("ndjson"),
        ),
        start(
            d,
            "adaptive",
            "source = \"generator:davis?rate=1000\"\nbuffer = \"auto\"\nmax_latency = \"50ms\"\n",
            Some("ndjson"),
        ),
        start(d, "to_csv", "source = \"generator:davis?rows=1000000000\"\nbuffer = 30\n", Some("csv")),
        start(d, "to_parquet", "source = \"generator:davis?rows=1000000000\"\nbuffer = 30\n", Some("parquet")),
        start(
            d,
            "to_tcp",
            &format!("source = \"generator:davis?rate=1000\"\nbuffer = 10\nsink = \"tcp:127.0.0.1:{receiver_port}\"\n"),
            None,
        ),
        start(
            d,
            "to_mqtt",
            &format!("source = \"generator:davis?rate=1000\"\nbuffer = 10\nsink = \"{}\"\n", broker.url("runs/out")),
            None,
        ),
    ];
    assert!(cases.len() >= 20, "{} runs", cases.len());

    // a FIFO opens when both ends do: hold a writer on each (one never writes, like a quiet
    // stdin), feed the mid-stream sources, and leave their writers open
    let _quiet_writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo_idle)
        .expect("open the FIFO");
    let mut fifo_writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo_busy)
        .expect("open the FIFO");
    for i in 0..500 {
        writeln!(fifo_writer, "{{\"a\": {i}, \"b\": -1.5}}").expect("fifo");
    }
    fifo_writer.flush().expect("flush");
    let mut tcp_writer = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match std::net::TcpStream::connect(("127.0.0.1", tcp_busy)) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "tcp-listen: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    };
    for i in 0..300 {
        streamprep_connectors::tcp::write_frame(
            &mut tcp_writer,
            format!("{{\"a\": {i}, \"b\": 2.5}}").as_bytes(),
        )
        .expect("frame");
    }
    tcp_writer.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(30);
    while cases.iter().any(|c| c.handle.state() == RunState::Starting) {
        assert!(Instant::now() < deadline, "runs still starting");
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines: Vec<String> = (0..200)
        .map(|i| format!("{{\"a\": {i}, \"b\": 1}}"))
        .collect();
    publish(&broker, "runs/a", &["-m", &lines.join("\n")]);

    // watch them run: every view reads and serialises; the busy ones move
    std::thread::sleep(Duration::from_millis(2500));
    for c in &cases {
        let v = c.handle.view();
        assert_eq!(v.state, RunState::Running, "{}: {v:?}", c.name);
        let json = serde_json::to_value(&v).expect("a view serialises");
        assert_eq!(json["name"], c.name.as_str());
        assert!(json["counts"]["rows_read"].is_u64(), "{json}");
        assert!(json["live"]["rho_measured"].is_f64(), "{json}");
    }
    for name in [
        "file_inline",
        "file_pool",
        "csv_file",
        "parquet_file",
        "fifo_mid_stream",
        "tcp_mid_stream",
        "mqtt_rows",
        "generator",
        "generator_paced",
        "paced_file",
        "to_csv",
        "to_tcp",
    ] {
        let c = cases.iter().find(|c| c.name == name).expect(name);
        assert!(
            c.handle.view().figures.counts.rows_read > 0,
            "{name} read nothing in 2.5 s"
        );
    }
    // one /metrics for all of them, each sample labelled by its pipeline
    let all = streamprep_project::Runs::default();
    for c in &cases {
        all.add(c.handle.clone());
    }
    let text = all.prometheus();
    for c in &cases {
        assert!(
            text.contains(&format!(
                "streamprep_rows_read_total{{pipeline=\"{}\",run=\"{}\"}}",
                c.name,
                c.handle.id()
            )),
            "{}: {text}",
            c.name
        );
    }
    assert_eq!(
        text.matches("# TYPE streamprep_rho_measured gauge").count(),
        1
    );
    assert!(all.cores_busy() > 0.0, "busy runs keep cores busy: {text}");
    let events = cases[0].handle.events();

    // stop them all, one after the other: each stop() returns at once, and each run reports
    // `finished` within a second of its stop() (all twenty stopping at once on this machine)
    let mut stopped = Vec::new();
    for c in &cases {
        let t0 = Instant::now();
        c.handle.stop();
        assert!(
            t0.elapsed() < Duration::from_millis(100),
            "{}: stop() blocked",
            c.name
        );
        stopped.push(t0);
    }
    let mut slowest = (Duration::ZERO, String::new());
    let mut over: Vec<Option<Duration>> = vec![None; cases.len()];
    while over.iter().any(Option::is_none) {
        for (i, c) in cases.iter().enumerate() {
            if over[i].is_none() && c.handle.state().is_over() {
                over[i] = Some(stopped[i].elapsed());
            }
            if over[i].is_none() {
                assert!(
                    stopped[i].elapsed() < Duration::from_secs(1),
                    "{}: not finished 1 s after stop(): {:?}",
                    c.name,
                    c.handle.view()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for (c, took) in cases.iter().zip(&over) {
        let took = took.expect("over");
        if took > slowest.0 {
            slowest = (took, c.name.clone());
        }
        let summary = c
            .handle
            .wait()
            .unwrap_or_else(|e| panic!("{}: failed: {e}", c.name));
        assert_eq!(c.handle.state(), RunState::Finished, "{}", c.name);
        assert_eq!(
            summary.rows_in,
            summary.rows_out + summary.dead_letters + summary.dropped,
            "{}: {summary}",
            c.name
        );
        if let Some(sink) = &c.sink {
            let rows = match sink.extension().and_then(|e| e.to_str()) {
                Some("parquet") => parquet_rows(sink),
                _ => whole_rows(sink),
            };
            assert_eq!(rows, summary.rows_out, "{}: {summary}", c.name);
        }
    }
    eprintln!("slowest stop: {} in {:?}", slowest.1, slowest.0);
    drop(fifo_writer);
    drop(tcp_writer);
    let sent_by_tcp = received.join().expect("receiver");
    let to_tcp = cases.iter().find(|c| c.name == "to_tcp").expect("to_tcp");
    assert_eq!(
        sent_by_tcp,
        to_tcp.handle.wait().expect("summary").rows_out,
        "the TCP receiver got every row written"
    );
    // the first run's events: starting, running, stopping, finished, in that order
    let states: Vec<String> = events
        .iter()
        .filter_map(|s| match s.event {
            streamprep_project::Event::State { state } => Some(state.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(states, ["starting", "running", "stopping", "finished"]);
}

/// `streamprep run` reading stdin that stays open and silent (a blocked read) stops on
/// SIGTERM within a second, with what it had read processed and its summary printed.
#[test]
fn a_run_blocked_reading_stdin_stops_on_sigterm_within_a_second() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out.ndjson");
    let mut child = bin()
        .args(["run", "--source", "-", "--chain", "abs", "--buffer", "1000"])
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 0..10 {
        writeln!(stdin, "{{\"a\": -{i}}}").expect("write");
    }
    stdin.flush().expect("flush");
    // ten rows are read; the run waits for the rest of its 1000-row message
    std::thread::sleep(Duration::from_millis(1500));
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let t0 = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "still running 1 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(
        err.contains("rows in 10, rows out 10"),
        "the rows read before the stop are processed: {err}"
    );
    assert_eq!(whole_rows(&out), 10);
    drop(stdin);
}
