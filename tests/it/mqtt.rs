//! MQTT against real brokers: a private Mosquitto per test (from the `mosquitto` binary on
//! PATH, on a free port) and the embedded broker (`streamprep broker`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cli::{bin, gen};
use super::tcp::free_port;

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn need(tool: &str) {
    need_tool(
        tool,
        "Mosquitto (Debian: apt-get install mosquitto mosquitto-clients)",
    );
}

/// Fail, saying what to install, when `tool` is not on PATH (a test never skips).
pub fn need_tool(tool: &str, install: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{tool}` is not on PATH: install {install}; scripts/test.sh does this"
    );
}

/// A broker for one test; killed when dropped.
pub struct Broker {
    pub port: u16,
    child: Option<Child>,
    kind: Kind,
    dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Mosquitto,
    /// Mosquitto with a TLS listener only, its certificate signed by `ca.pem` in the dir.
    MosquittoTls,
    Embedded,
}

/// Make a CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it, with openssl.
pub(crate) fn make_certs(dir: &Path, ca_name: &str) {
    need("openssl");
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("san.cnf");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let subject = format!("/CN={ca_name}");
    let steps: [&[&str]; 3] = [
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days", "2", "-subj", &subject, "-keyout", "ca.key", "-out", "ca.pem",
            ],
        ]
        .concat(),
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
            "-out",
            "server.pem",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Mosquitto started as root reads them as the user `mosquitto`
    use std::os::unix::fs::PermissionsExt;
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
}

impl Broker {
    pub fn start(kind: Kind, dir: &Path) -> Broker {
        let mut b = Broker {
            port: free_port(),
            child: None,
            kind,
            dir: dir.to_path_buf(),
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let child = match self.kind {
            Kind::Mosquitto | Kind::MosquittoTls => {
                need("mosquitto");
                let conf = self.dir.join("mosquitto.conf");
                // started as root, Mosquitto runs as the user `mosquitto`: it must be able to
                // write its persistence file here, or a restart forgets every session
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o777))
                    .expect("chmod");
                let mut text = format!(
                    "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_inflight_messages 0\nmax_queued_messages 0\n",
                    self.port,
                    self.dir.display()
                );
                if self.kind == Kind::MosquittoTls {
                    let d = self.dir.display();
                    text += &format!(
                        "cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
                    );
                }
                std::fs::write(&conf, text).expect("config");
                Command::new("mosquitto")
                    .arg("-c")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("starting mosquitto")
            }
            Kind::Embedded => bin()
                .args(["broker", "--port", &self.port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting streamprep broker"),
        };
        self.child = Some(child);
        wait_listening(self.port, &format!("{:?} broker", self.kind));
    }

    /// Stop the broker as a service manager would (SIGTERM: Mosquitto saves its sessions and
    /// queued messages), keep it down for `down`, and start it again on the same port.
    pub fn restart(&mut self, down: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        std::thread::sleep(down);
        self.spawn();
    }

    pub fn url(&self, topic: &str) -> String {
        format!("mqtt://127.0.0.1:{}/{topic}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `streamprep run` from an MQTT source, started and subscribed.
struct Run {
    child: Child,
    stderr: std::sync::mpsc::Receiver<String>,
}

/// A failed test must not leave its processes running (they would hold the test's pipes).
impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Run {
    fn start(args: &[&str]) -> Run {
        let mut child = bin()
            .arg("run")
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("streamprep run");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let run = Run { child, stderr: rx };
        run.wait_for("subscribed to", Duration::from_secs(10));
        run
    }

    fn wait_for(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) if l.contains(text) => return l,
                Ok(_) => {}
                Err(_) => panic!("streamprep run never said '{text}'"),
            }
        }
    }

    /// Ctrl-C, then the summary line.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let summary = self.wait_for("rows in", Duration::from_secs(20));
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "run failed: {summary}");
        summary
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn wait_rows(path: &Path, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while lines(path).len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The same rows through the same row-wise chain from a file: what MQTT must deliver.
fn expected(dir: &Path, input: &Path, chain: &str) -> Vec<String> {
    let out = dir.join("expected.ndjson");
    let st = bin()
        .args(["run", "--quiet", "--buffer", "7", "--chain", chain])
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .status()
        .expect("run");
    assert!(st.success());
    lines(&out)
}

const ROWWISE: &str = "fillna_zeros,normalizer";

fn source_receives_published_rows(kind: Kind) {
    need("mosquitto_pub");
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(kind, dir.path());
    let out = dir.path().join("out.ndjson");
    let dl = dir.path().join("dl.ndjson");
    let run = Run::start(&[
        "--source",
        &format!("{}?qos=1", broker.url("wetter/+")),
        "--chain",
        ROWWISE,
        "--buffer",
        "10",
        "--max-wait",
        "30ms",
        "--method",
        "pool",
        "--workers",
        "2",
        "--sink",
        &format!("file:{}", out.display()),
        "--dead-letter",
        &format!("file:{}", dl.display()),
    ]);
    let input = gen(dir.path(), 40);
    let rows = lines(&input);
    // 30 rows one a publish (mosquitto_pub -l), 10 as one JSON array, then one bad publish
    let mut p = Command::new("mosquitto_pub")
        .args([
            "-p",
            &broker.port.to_string(),
            "-t",
            "wetter/a",
            "-q",
            "1",
            "-l",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    p.stdin
        .take()
        .expect("stdin")
        .write_all((rows[..30].join("\n") + "\n").as_bytes())
        .expect("publish");
    assert!(p.wait().expect("wait").success());
    let array = format!("[{}]", rows[30..].join(","));
    for (topic, msg) in [("wetter/b", array.as_str()), ("wetter/b", "{not json")] {
        let st = Command::new("mosquitto_pub")
            .args([
                "-p",
                &broker.port.to_string(),
                "-t",
                topic,
                "-q",
                "1",
                "-m",
                msg,
            ])
            .status()
            .expect("mosquitto_pub");
        assert!(st.success());
    }
    // the bad publish comes last: once its dead letter is written (flushed before its ack),
    // everything has been through the pipeline
    wait_rows(&out, 40, Duration::from_secs(10));
    wait_rows(&dl, 1, Duration::from_secs(10));
    let summary = run.stop();
    assert!(summary.contains("rows in 41,"), "{summary}");
    assert_eq!(lines(&out), expected(dir.path(), &input, ROWWISE));
    let dead = lines(&dl);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains("{not json"), "{}", dead[0]);
}

fn sink_publishes_rows(kind: Kind) {
    need("mosquitto_sub");
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(kind, dir.path());
    let input = gen(dir.path(), 250);
    let sub = Command::new("mosquitto_sub")
        .args([
            "-p",
            &broker.port.to_string(),
            "-t",
            "out",
            "-q",
            "1",
            "-C",
            "250",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(500)); // let it subscribe
    let st = bin()
        .args(["run", "--quiet", "--buffer", "100", "--chain", ROWWISE])
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .arg("--sink")
        .arg(format!("{}?qos=1&per=row", broker.url("out")))
        .status()
        .expect("run");
    assert!(st.success());
    let got = sub.wait_with_output().expect("mosquitto_sub");
    let got: Vec<String> = String::from_utf8_lossy(&got.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(got, expected(dir.path(), &input, ROWWISE));

    // per message: one JSON array a message
    let sub = Command::new("mosquitto_sub")
        .args(["-p", &broker.port.to_string(), "-t", "arrays", "-C", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(500));
    let st = bin()
        .args(["run", "--quiet", "--buffer", "100", "--chain", ROWWISE])
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .arg("--sink")
        .arg(broker.url("arrays"))
        .status()
        .expect("run");
    assert!(st.success());
    let got = sub.wait_with_output().expect("mosquitto_sub");
    let arrays: Vec<serde_json::Value> = String::from_utf8_lossy(&got.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON array"))
        .collect();
    let sizes: Vec<usize> = arrays
        .iter()
        .map(|a| a.as_array().expect("array").len())
        .collect();
    assert_eq!(sizes, vec![100, 100, 50]);
}

/// How often each `ts` (with `station`) occurs: rows of `gen` are told apart by these (its
/// exact duplicates share them, and must arrive as often as they were published).
fn row_keys(rows: &[String]) -> std::collections::HashMap<String, usize> {
    let mut keys = std::collections::HashMap::new();
    for r in rows {
        let v: serde_json::Value = serde_json::from_str(r).expect("a JSON row");
        *keys
            .entry(format!("{}/{}", v["station"], v["ts"]))
            .or_default() += 1;
    }
    keys
}

/// Rows in `want` that `got` lacks (counting duplicates).
fn missing(want: &HashMap<String, usize>, got: &HashMap<String, usize>) -> usize {
    want.iter()
        .map(|(k, n)| n.saturating_sub(got.get(k).copied().unwrap_or(0)))
        .sum()
}

use std::collections::HashMap;

/// At QoS 1, the broker stopped and started again while rows are published and processed:
/// every row published before, during and after reaches the sink at least once.
#[test]
fn mosquitto_restart_mid_stream_loses_no_row_at_qos1() {
    restart_mid_stream_loses_no_row(&[], 1);
}

/// The same with a key: rows gathered into messages per station (five stations), each
/// closing after 50 ms or 100 rows; an ack goes only once every row it covers is written.
#[test]
fn a_keyed_run_loses_no_row_at_qos1_when_mosquitto_restarts() {
    restart_mid_stream_loses_no_row(
        &["--key", "station", "--method", "pool", "--workers", "2"],
        5,
    );
}

fn restart_mid_stream_loses_no_row(extra: &[&str], stations: usize) {
    need("mosquitto");
    let dir = tempfile::tempdir().expect("tmp");
    let mut broker = Broker::start(Kind::Mosquitto, dir.path());
    let out = dir.path().join("out.ndjson");
    let url = format!("{}?qos=1", broker.url("wetter"));
    let sink = format!("file:{}", out.display());
    let mut args = vec![
        "--source",
        &url,
        "--chain",
        "fillna_zeros",
        "--buffer",
        "100",
        "--max-wait",
        "50ms",
        "--sink",
        &sink,
    ];
    args.extend_from_slice(extra);
    let run = Run::start(&args);
    const ROWS: usize = 6000;
    let input = dir.path().join("in.ndjson");
    let stations = stations.to_string();
    let st = bin()
        .args(["gen", "--rows", &ROWS.to_string(), "--seed", "3"])
        .args(["--stations", &stations, "--out"])
        .arg(&input)
        .status()
        .expect("gen");
    assert!(st.success());
    let want = row_keys(&lines(&input));
    // the same rows (same seed), published at 1500 rows/s: 4 s
    let mut publisher = Reaped(
        bin()
            .args(["gen", "--rows", &ROWS.to_string(), "--seed", "3"])
            .args(["--stations", &stations])
            .args(["--rate", "1500", "--simulated-time", "--mqtt", &url])
            .stderr(Stdio::piped())
            .spawn()
            .expect("gen --mqtt"),
    );
    wait_rows(&out, 1000, Duration::from_secs(10));
    assert!(
        lines(&out).len() < ROWS,
        "the stream ended before the restart"
    );
    broker.restart(Duration::from_millis(800));
    run.wait_for("reconnected", Duration::from_secs(15));
    // the publisher ends once the broker has confirmed every row
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = publisher.0.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the publisher did not finish: rows unconfirmed after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut publisher.0.stderr.take().expect("stderr"), &mut said)
        .expect("stderr");
    assert!(status.success(), "{said}");
    assert!(
        said.contains("reconnected"),
        "the publisher saw no restart: {said}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lost = usize::MAX;
    while lost > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        lost = missing(&want, &row_keys(&lines(&out)));
    }
    let summary = run.stop();
    assert_eq!(lost, 0, "{lost} of {ROWS} rows lost; {summary}");
    let got = lines(&out);
    assert!(got.len() >= ROWS, "{} rows", got.len());
    assert_eq!(missing(&want, &row_keys(&got)), 0);
}

/// mqtts:// both ways: rows published over TLS reach the chain, and its output is published
/// over TLS; a broker whose certificate the given CA did not sign is refused before anything
/// runs.
#[test]
fn mosquitto_tls_source_and_sink() {
    need("mosquitto_pub");
    need("mosquitto_sub");
    let dir = tempfile::tempdir().expect("tmp");
    make_certs(dir.path(), "streamprep test CA");
    let broker = Broker::start(Kind::MosquittoTls, dir.path());
    let ca = dir.path().join("ca.pem");
    let url = |topic: &str, opts: &str| {
        format!(
            "mqtts://127.0.0.1:{}/{topic}?ca={}{opts}",
            broker.port,
            ca.display()
        )
    };
    let cli = |tool: &str, topic: &str| {
        let mut c = Command::new(tool);
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            topic,
            "-q",
            "1",
        ])
        .arg("--cafile")
        .arg(&ca);
        c
    };
    let sub = cli("mosquitto_sub", "clean")
        .args(["-C", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    let run = Run::start(&[
        "--source",
        &url("wetter", "&qos=1"),
        "--chain",
        ROWWISE,
        "--buffer",
        "5",
        "--sink",
        &url("clean", "&qos=1&per=row"),
    ]);
    std::thread::sleep(Duration::from_millis(300)); // let mosquitto_sub subscribe
    let input = gen(dir.path(), 20);
    let mut p = cli("mosquitto_pub", "wetter")
        .arg("-l")
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    p.stdin
        .take()
        .expect("stdin")
        .write_all(std::fs::read(&input).expect("input").as_slice())
        .expect("publish");
    assert!(p.wait().expect("wait").success());
    let got = sub.wait_with_output().expect("mosquitto_sub");
    let summary = run.stop();
    let got: Vec<String> = String::from_utf8_lossy(&got.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(got, expected(dir.path(), &input, ROWWISE), "{summary}");

    // a CA that did not sign the broker's certificate
    let other = tempfile::tempdir().expect("tmp");
    make_certs(other.path(), "another CA");
    let out = bin()
        .args([
            "run", "--chain", ROWWISE, "--buffer", "5", "--sink", "-", "--source",
        ])
        .arg(format!(
            "mqtts://127.0.0.1:{}/wetter?ca={}",
            broker.port,
            other.path().join("ca.pem").display()
        ))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cannot connect") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn mosquitto_source_receives_rows_arrays_and_bad_publishes() {
    source_receives_published_rows(Kind::Mosquitto);
}

#[test]
fn embedded_broker_source_receives_rows_arrays_and_bad_publishes() {
    source_receives_published_rows(Kind::Embedded);
}

#[test]
fn mosquitto_sink_publishes_rows_and_arrays() {
    sink_publishes_rows(Kind::Mosquitto);
}

#[test]
fn embedded_broker_sink_publishes_rows_and_arrays() {
    sink_publishes_rows(Kind::Embedded);
}

/// README's main command: the embedded broker, the simulator and the paper's chain; it stops
/// cleanly after --seconds with every published row taken by the chain.
#[test]
fn demo_runs_on_the_embedded_broker_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("demo.ndjson");
    let port = free_port();
    let mut child = bin()
        .args([
            "demo",
            "--seconds",
            "4",
            "--rate",
            "500",
            "--port",
            &port.to_string(),
            "--addr",
            "127.0.0.1:0",
        ])
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .arg("--dead-letter")
        .arg(format!("file:{}", dir.path().join("dead.ndjson").display()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo");
    // the web app: the printed login works, and the paper's project is running there
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut err = String::new();
    let (addr, password) = loop {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).expect("read") > 0,
            "the demo never said where its app is: {err}"
        );
        err.push_str(&line);
        if let Some(found) = super::browser::demo_line(&line) {
            break found;
        }
    };
    assert!(addr.starts_with("127.0.0.1:"), "loopback only: {addr}");
    let (status, body) = super::api::http(
        &addr,
        "POST",
        "/api/v1/login",
        &[],
        &format!(r#"{{"name": "demo", "password": "{password}"}}"#),
    );
    assert_eq!(status, 200, "{body}");
    let (cookie, _) = super::api::login(&addr, "demo", &password);
    let (status, body) =
        super::api::http(&addr, "GET", "/api/v1/projects", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200, "{body}");
    let projects: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(projects[0]["name"], "demo", "{body}");
    assert_eq!(projects[0]["state"], "running", "{body}");
    let (status, page) = super::api::http(&addr, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200);
    assert!(
        page.contains(">demo</a>"),
        "the overview lists the project: {page}"
    );
    std::io::Read::read_to_string(&mut stderr, &mut err).expect("the rest");
    let status = child.wait().expect("demo");
    assert!(status.success(), "{err}");
    let err = err.as_str();
    let summary = err
        .lines()
        .find(|l| l.contains("published"))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    // "published N rows; rows in N, rows out M, ..."
    let num = |after: &str| -> u64 {
        let rest = &summary[summary.find(after).expect(after) + after.len()..];
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("a number")
    };
    let (published, rows_in, rows_out) = (num("published "), num("rows in "), num("rows out "));
    assert!(published > 500, "{summary}");
    assert_eq!(published, rows_in, "{summary}");
    assert_eq!(lines(&out).len() as u64, rows_out, "{summary}");
    // the paper's chain: normalized rows (each numeric row has unit L2 norm)
    let first: serde_json::Value = serde_json::from_str(&lines(&out)[0]).expect("json");
    assert!(first["temp_out"].as_f64().expect("temp_out").abs() <= 1.0);
}

/// Publish `args` (mosquitto_pub's) to the broker at QoS 1.
pub fn publish(broker: &Broker, topic: &str, args: &[&str]) {
    let st = Command::new("mosquitto_pub")
        .args(["-p", &broker.port.to_string(), "-t", topic, "-q", "1"])
        .args(args)
        .status()
        .expect("mosquitto_pub");
    assert!(st.success(), "mosquitto_pub {args:?}");
}

#[test]
fn garbage_first_a_narrow_first_row_an_oversized_and_an_empty_publish_cost_only_themselves() {
    need("mosquitto_pub");
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(Kind::Mosquitto, dir.path());
    let out = dir.path().join("out.ndjson");
    let dl = dir.path().join("dl.ndjson");
    let run = Run::start(&[
        "--source",
        &format!("{}?qos=1", broker.url("odd/+")),
        "--chain",
        "abs",
        "--buffer",
        "10",
        "--max-wait",
        "20ms",
        "--max-row",
        "1000000",
        "--sink",
        &format!("file:{}", out.display()),
        "--dead-letter",
        &format!("file:{}", dl.display()),
    ]);
    // the very first publishes are garbage: the live pipeline must not die of them
    publish(&broker, "odd/a", &["-m", "{not json"]);
    publish(&broker, "odd/a", &["-m", "42"]);
    // then a row of one column: it must not fix the schema to that column
    publish(&broker, "odd/a", &["-m", "{\"a\":-1}"]);
    // a publish over the limit (QoS 1): a dead letter, acknowledged, not redelivered for ever
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("{{\"a\":\"{}\"}}", "x".repeat(3_000_000))).expect("big");
    publish(&broker, "odd/b", &["-f", &big.display().to_string()]);
    // an empty publish: counted as a dead letter
    publish(&broker, "odd/b", &["-n"]);
    // a null in the first row of a column does not make it text
    for i in 0..200 {
        let b = if i == 0 {
            "null".to_string()
        } else {
            format!("{i}.5")
        };
        publish(
            &broker,
            "odd/c",
            &["-m", &format!("{{\"a\":-{i},\"b\":{b},\"c\":\"s{i}\"}}")],
        );
    }
    wait_rows(&out, 201, Duration::from_secs(30));
    wait_rows(&dl, 4, Duration::from_secs(10));
    let summary = run.stop();
    let rows = lines(&out);
    assert_eq!(rows.len(), 201, "{summary}");
    let last: serde_json::Value = serde_json::from_str(&rows[200]).expect("json");
    assert_eq!(last["a"], 199.0);
    assert_eq!(last["b"], 199.5, "a number, not text: {last}");
    assert_eq!(last["c"], "s199");
    let dead = lines(&dl);
    assert_eq!(dead.len(), 4, "{dead:?}");
    let all = dead.join("\n");
    assert!(all.contains("{not json") && all.contains("42"), "{all}");
    assert!(all.contains("larger than the maximum of 1000000"), "{all}");
    assert!(all.contains("empty MQTT publish"), "{all}");
    assert!(summary.contains("rows in 205, rows out 201,"), "{summary}");
    assert!(summary.contains("dead letters 4,"), "{summary}");
}
