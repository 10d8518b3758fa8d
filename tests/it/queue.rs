//! The queue method against a real Redis (a private `redis-server` per test on a free port)
//! and real `streamprep worker` processes: output identical to `inline` with 1 and 3 workers,
//! after a worker is killed with SIGKILL mid-run, and after Redis restarts empty mid-run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cli::bin;
use super::tcp::free_port;

const CHAIN: &str = "fillna_zeros,normalizer,drop_duplicates";

/// A private redis-server (nothing kept on disk); killed when dropped.
pub struct Redis {
    port: u16,
    child: Option<Child>,
    extra: Vec<String>,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_with(&[])
    }

    /// A private redis-server with more settings (`--proto-max-bulk-len 1mb`).
    pub fn start_with(extra: &[&str]) -> Redis {
        super::mqtt::need_tool(
            "redis-server",
            "Redis (Debian: apt-get install redis-server)",
        );
        let mut r = Redis {
            port: free_port(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill it (everything it held is gone) and start an empty one on the same port.
    fn restart_empty(&mut self, down: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(down);
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Entries in the task stream (XLEN, through redis-cli).
    fn tasks_waiting(&self) -> u64 {
        let len = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "XLEN", "streamprep:tasks"])
            .output()
            .expect("redis-cli (Debian: apt-get install redis-tools)");
        String::from_utf8_lossy(&len.stdout)
            .trim()
            .parse()
            .expect("XLEN answers a number")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `streamprep worker`; killed when dropped.
pub struct Worker(Child);

impl Worker {
    pub fn start(url: &str, concurrency: usize) -> Worker {
        Worker(
            bin()
                .args(["worker", "--broker", url, "--claim-after", "1s"])
                .args(["--concurrency", &concurrency.to_string()])
                .stderr(Stdio::null())
                .spawn()
                .expect("streamprep worker"),
        )
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn input(dir: &Path, rows: u64) -> PathBuf {
    let p = dir.join("in.ndjson");
    let st = bin()
        .args(["gen", "--rows", &rows.to_string(), "--seed", "11", "--out"])
        .arg(&p)
        .status()
        .expect("gen");
    assert!(st.success());
    p
}

fn run(input: &Path, out: &Path, buffer: usize, method: &[&str]) -> Child {
    run_chain(CHAIN, input, out, buffer, method)
}

fn run_chain(chain: &str, input: &Path, out: &Path, buffer: usize, extra: &[&str]) -> Child {
    bin()
        .args(["run", "--chain", chain])
        .args(["--buffer", &buffer.to_string()])
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run")
}

/// Wait until the run has written some output (it is mid-run then).
fn wait_output(out: &Path) {
    wait_for_output(out, 200_000, Duration::from_secs(20));
}

/// Wait until `out` holds `bytes` (the run is under way), at most `within`.
pub(super) fn wait_for_output(out: &Path, bytes: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while std::fs::metadata(out).map_or(0, |m| m.len()) < bytes {
        assert!(Instant::now() < deadline, "no output within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait for a run to succeed; returns what it said on stderr (status lines, summary).
pub(super) fn finish(child: Child) -> String {
    let out = child.wait_with_output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// The run's output is byte for byte what `inline` writes.
fn assert_like_inline(dir: &Path, input: &Path, out: &Path, buffer: usize, after: &str) {
    assert!(
        std::fs::read(out).expect("output") == inline(dir, input, buffer),
        "output differs from inline {after}"
    );
}

fn inline(dir: &Path, input: &Path, buffer: usize) -> Vec<u8> {
    let out = dir.join(format!("inline-{buffer}.ndjson"));
    finish(run(input, &out, buffer, &[]));
    std::fs::read(out).expect("inline output")
}

#[test]
fn queue_with_one_and_three_workers_equals_inline() {
    let dir = tempfile::tempdir().expect("tmp");
    let redis = Redis::start();
    let input = input(dir.path(), 3000);
    let url = redis.url();
    for workers in [1, 3] {
        let pool: Vec<Worker> = (0..workers).map(|_| Worker::start(&url, 1)).collect();
        for (buffer, z) in [(1, "none"), (7, "none"), (100, "none"), (100, "lz4")] {
            let out = dir
                .path()
                .join(format!("queue-{workers}-{buffer}-{z}.ndjson"));
            finish(run(
                &input,
                &out,
                buffer,
                &[
                    "--method",
                    "queue",
                    "--broker",
                    &url,
                    "--task-compression",
                    z,
                ],
            ));
            assert!(
                std::fs::read(&out).expect("output") == inline(dir.path(), &input, buffer),
                "queue with {workers} worker(s) differs from inline at buffer {buffer} ({z})"
            );
        }
        // CSV: the header comes from the schema, which travels without the batch; with LZ4
        // the batch travels alone and the coordinator encodes the rows
        let i = dir.path().join("i.csv");
        finish(run(&input, &i, 50, &[]));
        for z in ["none", "lz4"] {
            let q = dir.path().join(format!("q-{z}.csv"));
            finish(run(
                &input,
                &q,
                50,
                &[
                    "--method",
                    "queue",
                    "--broker",
                    &url,
                    "--task-compression",
                    z,
                ],
            ));
            let got = std::fs::read(&q).expect("queue CSV");
            assert!(got.starts_with(b"ts,station,"), "no CSV header");
            assert!(
                got == std::fs::read(&i).expect("inline CSV"),
                "CSV differs ({workers}, {z})"
            );
        }
        drop(pool);
    }
}

#[test]
fn a_worker_killed_mid_run_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let redis = Redis::start();
    let input = input(dir.path(), 60_000);
    let url = redis.url();
    let mut victim = Worker::start(&url, 2);
    let _survivor = Worker::start(&url, 1);
    let out = dir.path().join("queue.ndjson");
    let child = run(&input, &out, 10, &["--method", "queue", "--broker", &url]);
    // let the victim take tasks, then kill it without warning
    wait_output(&out);
    victim.0.kill().expect("kill -9");
    let _ = victim.0.wait();
    finish(child);
    assert_like_inline(dir.path(), &input, &out, 10, "after a worker was killed");
}

#[test]
fn redis_restarted_empty_mid_run_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut redis = Redis::start();
    let input = input(dir.path(), 60_000);
    let url = redis.url();
    let _workers = Worker::start(&url, 2);
    let out = dir.path().join("queue.ndjson");
    let child = run(
        &input,
        &out,
        10,
        &["--method", "queue", "--broker", &url, "--status"],
    );
    wait_output(&out);
    redis.restart_empty(Duration::from_millis(1500));
    let err = finish(child);
    assert_like_inline(dir.path(), &input, &out, 10, "after Redis restarted");
    // the status line said so while it was down
    assert!(err.contains("| broker RECONNECTING"), "{err}");
}

#[test]
fn unreachable_redis_is_a_clear_error_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = input(dir.path(), 10);
    let out = dir.path().join("never.ndjson");
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let r = run(&input, &out, 5, &["--method", "queue", "--broker", &url])
        .wait_with_output()
        .expect("run");
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(!out.exists());
    // and --method queue without a broker
    let r = run(&input, &out, 5, &["--method", "queue"])
        .wait_with_output()
        .expect("run");
    assert!(String::from_utf8_lossy(&r.stderr).contains("--broker"));
    // a worker: the same clear error, and it does not claim to be serving first
    let w = bin()
        .args(["worker", "--broker", &url])
        .output()
        .expect("worker");
    let err = String::from_utf8_lossy(&w.stderr);
    assert_eq!(w.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot connect to Redis at {url}")),
        "{err}"
    );
    assert!(!err.contains("serving"), "{err}");
}

/// One worker serves two runs at once (different chains, different buffers), each exactly as
/// `inline` would have made it.
#[test]
fn one_worker_serves_two_runs_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let redis = Redis::start();
    let input = input(dir.path(), 20_000);
    let url = redis.url();
    let _worker = Worker::start(&url, 2);
    let other = "abs,standard_scaler";
    let out_a = dir.path().join("a.ndjson");
    let out_b = dir.path().join("b.ndjson");
    let a = run(&input, &out_a, 50, &["--method", "queue", "--broker", &url]);
    let b = run_chain(
        other,
        &input,
        &out_b,
        30,
        &["--method", "queue", "--broker", &url],
    );
    finish(a);
    finish(b);
    assert!(std::fs::read(&out_a).expect("a") == inline(dir.path(), &input, 50));
    let want_b = dir.path().join("want-b.ndjson");
    finish(run_chain(other, &input, &want_b, 30, &[]));
    assert!(std::fs::read(&out_b).expect("b") == std::fs::read(&want_b).expect("want"));
}

/// A message whose task has been delivered more than --max-attempts times without being
/// finished (workers that took it died) ends in dead letters; the rest of the run goes on.
#[test]
fn a_message_no_worker_finishes_ends_in_dead_letters() {
    let dir = tempfile::tempdir().expect("tmp");
    let redis = Redis::start();
    let input = input(dir.path(), 25);
    let url = redis.url();
    let out = dir.path().join("out.ndjson");
    let dead = dir.path().join("dead.ndjson");
    // the run sends its 3 messages (10 + 10 + 5 rows) before any worker exists
    let dead_letters = format!("file:{}", dead.display());
    let child = run(
        &input,
        &out,
        10,
        &[
            "--method",
            "queue",
            "--broker",
            &url,
            "--dead-letter",
            &dead_letters,
        ],
    );
    let cli = |args: &[&str]| -> String {
        let o = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (Debian: apt-get install redis-tools)");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli(&["XLEN", "streamprep:tasks"]).trim() != "3" {
        assert!(Instant::now() < deadline, "the tasks never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    // a worker that takes the first task and dies, five times over
    let took = cli(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "dead-worker",
        "COUNT",
        "1",
        "STREAMS",
        "streamprep:tasks",
        ">",
    ]);
    let id = took
        .lines()
        .find(|l| l.contains('-') && l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .expect("a task id")
        .trim()
        .to_string();
    cli(&[
        "XCLAIM",
        "streamprep:tasks",
        "workers",
        "dead-worker",
        "0",
        &id,
        "RETRYCOUNT",
        "5",
    ]);
    let _worker = Worker::start(&url, 1); // --claim-after 1s, --max-attempts 3 (default)
    finish(child);
    let dead = std::fs::read_to_string(&dead).expect("dead letters");
    let dead: Vec<&str> = dead.lines().collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains("given up after"), "{}", dead[0]);
    // the other two messages went through (15 rows, fewer if some were duplicates)
    let n = std::fs::read_to_string(&out).expect("out").lines().count();
    assert!(n > 0 && n <= 15, "{n} rows out");
}

/// One line of `profile`'s CSV.
struct ProfileLine {
    method: String,
    buffer: usize,
    stage: String,
    messages: usize,
    mean_us: f64,
    sd_us: f64,
    dead_rows: usize,
    /// Mean bytes of a message's rows and of its output.
    bytes: (f64, f64),
    /// The same with LZ4 (the output as Arrow IPC).
    bytes_lz4: (f64, f64),
}

fn profile_lines(csv: &Path) -> Vec<ProfileLine> {
    let text = std::fs::read_to_string(csv).expect("profile CSV");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("method,buffer,stage,messages,mean_us,sd_us,mean_us_per_row,sd_us_per_row,dead_rows,bytes_in,bytes_out,bytes_in_lz4,bytes_out_lz4")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 13, "{l}");
            let per_row: f64 = f[6].parse().expect("a number");
            let mean: f64 = f[4].parse().expect("a number");
            let buffer: usize = f[1].parse().expect("a number");
            assert!(
                (per_row * buffer as f64 - mean).abs() <= 1e-3 * mean.max(1.0),
                "{l}"
            );
            ProfileLine {
                method: f[0].into(),
                buffer,
                stage: f[2].into(),
                messages: f[3].parse().expect("a number"),
                mean_us: mean,
                sd_us: f[5].parse().expect("a number"),
                dead_rows: f[8].parse().expect("a number"),
                bytes: (
                    f[9].parse().expect("a number"),
                    f[10].parse().expect("a number"),
                ),
                bytes_lz4: (
                    f[11].parse().expect("a number"),
                    f[12].parse().expect("a number"),
                ),
            }
        })
        .collect()
}

#[test]
fn profile_measures_inline_pool_and_queue_one_message_at_a_time() {
    let redis = Redis::start();
    let _w = Worker::start(&redis.url(), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 500);
    let (csv, svg) = (dir.path().join("p.csv"), dir.path().join("p.svg"));
    let out = bin()
        .args([
            "profile",
            "--method",
            "inline,pool,queue",
            "--broker",
            &redis.url(),
        ])
        // 20 messages a size: the means stand one preemption of this 2-core machine under the
        // whole test suite's load (with 6, one such pause once made the stages look like less
        // than half of the chain)
        .args(["--buffers", "1,50,200", "--messages", "20", "--warmup", "2"])
        .arg("--input")
        .arg(&input)
        .arg("--csv")
        .arg(&csv)
        .arg("--plot")
        .arg(&svg)
        .output()
        .expect("streamprep profile");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("queue us/msg"), "{stdout}");
    let lines = profile_lines(&csv);
    let stages = [
        "prepare",
        "fillna_zeros",
        "normalizer",
        "drop_duplicates",
        "result",
    ];
    for m in ["inline", "pool", "queue"] {
        for b in [1, 50, 200] {
            let chain = lines
                .iter()
                .find(|l| l.method == m && l.buffer == b && l.stage == "chain")
                .unwrap_or_else(|| panic!("no chain line for {m} at {b}"));
            assert_eq!(chain.messages, 20);
            assert_eq!(chain.dead_rows, 0);
            assert!(chain.mean_us > 0.0 && chain.sd_us >= 0.0);
            // what a queue task and its result carry (plan --link-rtt uses them): the rows as
            // read and the output, both growing with the buffer (the gen rows are about 570
            // bytes each)
            let (bytes_in, bytes_out) = chain.bytes;
            assert!(
                (400.0..800.0).contains(&(bytes_in / b as f64)) && bytes_out > bytes_in / 2.0,
                "{:?} at {b}",
                chain.bytes
            );
            // compressed (plan --task-compression lz4): less, from 50 rows on a half at most
            let (zin, zout) = chain.bytes_lz4;
            assert!(
                zin > 0.0 && zin < bytes_in && zout > 0.0,
                "{:?}",
                chain.bytes_lz4
            );
            if b >= 50 {
                assert!(
                    zin < bytes_in / 2.0 && zout < bytes_out / 2.0,
                    "{:?}",
                    chain.bytes_lz4
                );
            }
            // the time the chain kept the worker busy: at most the whole service time (the
            // queue's round trips and the pool's hand-off are not in it)
            let busy = lines
                .iter()
                .find(|l| l.method == m && l.buffer == b && l.stage == "busy")
                .unwrap_or_else(|| panic!("no busy line for {m} at {b}"));
            assert_eq!(busy.messages, 20);
            assert!(busy.mean_us > 0.0 && busy.mean_us <= chain.mean_us * 1.0001);
            if m == "queue" {
                assert!(
                    busy.mean_us < chain.mean_us,
                    "the round trips are not busy time"
                );
            }
            let staged: Vec<&ProfileLine> = lines
                .iter()
                .filter(|l| {
                    l.method == m && l.buffer == b && l.stage != "chain" && l.stage != "busy"
                })
                .collect();
            if m == "inline" {
                let names: Vec<&str> = staged.iter().map(|l| l.stage.as_str()).collect();
                assert_eq!(names, stages);
                let sum: f64 = staged.iter().map(|l| l.mean_us).sum();
                assert!(sum <= chain.mean_us * 1.0001, "{sum} > {}", chain.mean_us);
                assert!(
                    sum >= chain.mean_us * 0.5,
                    "the stages miss most of the chain"
                );
            } else {
                assert!(staged.is_empty(), "{m} has no per-stage times");
            }
        }
    }
    // a 200-row message costs more than a 1-row one, through every method
    for m in ["inline", "pool", "queue"] {
        let at = |b| {
            lines
                .iter()
                .find(|l| l.method == m && l.buffer == b && l.stage == "chain")
                .expect("a chain line")
                .mean_us
        };
        assert!(at(200) > at(1), "{m}: {} <= {}", at(200), at(1));
    }
    let plot = std::fs::read_to_string(&svg).expect("the plot");
    assert!(plot.starts_with("<svg") && plot.contains("</svg>"));
    for label in ["inline", "pool", "queue", "service time per row"] {
        assert!(plot.contains(label), "the plot has no '{label}'");
    }
}

#[test]
fn profile_without_a_worker_says_so_and_profile_counts_dead_rows() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = input(dir.path(), 200);
    let csv = dir.path().join("p.csv");
    let run = |extra: &[&str]| {
        bin()
            .args([
                "profile",
                "--buffers",
                "20",
                "--messages",
                "3",
                "--warmup",
                "0",
                "--timeout",
                "2s",
            ])
            .arg("--input")
            .arg(&input)
            .arg("--csv")
            .arg(&csv)
            .arg("--plot")
            .arg(dir.path().join("p.svg"))
            .args(extra)
            .output()
            .expect("streamprep profile")
    };
    // the normalizer refuses messages with missing values (2% of gen's values are missing)
    let out = run(&["--chain", "normalizer"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dead letters"));
    let lines = profile_lines(&csv);
    assert!(lines.iter().any(|l| l.stage == "chain" && l.dead_rows > 0));
    // a queue nobody serves
    let out = run(&["--method", "queue", "--broker", &redis.url()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no result from any worker for 2 s"), "{err}");
    assert!(err.contains("streamprep worker --broker redis://"), "{err}");
    // and it withdrew its task: a worker started later finds nothing to do
    assert_eq!(redis.tasks_waiting(), 0);
}

#[test]
fn a_worker_that_cannot_build_the_chain_answers_with_dead_letters_and_goes_on() {
    use streamprep_core::{Encoding, Message, Payload, RowFormat};
    let redis = Redis::start();
    let mut worker = Worker::start(&redis.url(), 1);
    // a task whose chain this worker does not know (another streamprep version, say): the
    // coordinator refuses unknown steps itself, so the task is written here directly
    let schema = std::sync::Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "x",
        arrow_schema::DataType::Float64,
        true,
    )]));
    let job = streamprep_engine::RemoteJob {
        chain: vec!["no_such_step".into()],
        prepare: streamprep_ops::prepare::PrepareConfig {
            format: RowFormat::Ndjson,
            compression: Default::default(),
            csv_sep: b',',
            schema,
        },
        encoding: Encoding::Ndjson,
        want_batch: true,
        key: None,
        max_keys: None,
        state: None,
    };
    let row = b"{\"x\":1.5}\n".to_vec();
    let msg = Message::new(
        0,
        Payload::Raw {
            format: RowFormat::Ndjson,
            ends: vec![row.len()],
            bytes: row,
        },
    );
    let spec = streamprep_queue::wire::job_spec(&job);
    let fields = streamprep_queue::wire::task("test:reply", &spec, msg, false).expect("task");
    let mut con = streamprep_queue::redis_io::connect(&redis.url()).expect("redis");
    streamprep_queue::redis_io::ensure_group(&mut con).expect("group");
    streamprep_queue::redis_io::xadd(&mut con, "streamprep:tasks", &fields).expect("xadd");
    let reply = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "XREAD",
            "COUNT",
            "1",
            "BLOCK",
            "10000",
        ])
        .args(["STREAMS", "test:reply", "0"])
        .output()
        .expect("redis-cli (Debian: apt-get install redis-tools)");
    let text = String::from_utf8_lossy(&reply.stdout);
    assert!(text.contains("cannot build the chain"), "{text}");
    assert!(text.contains("no_such_step"), "{text}");
    assert!(text.contains("same streamprep version"), "{text}");
    assert!(
        text.contains(r#"{\"x\":1.5}"#) || text.contains(r#"{"x":1.5}"#),
        "the row travels with it: {text}"
    );
    // the worker acknowledged the task and is still serving
    assert!(
        worker.0.try_wait().expect("worker").is_none(),
        "the worker stopped"
    );
    assert_eq!(redis.tasks_waiting(), 0);
}

#[test]
fn a_worker_that_joins_mid_run_takes_a_share_of_the_messages() {
    let dir = tempfile::tempdir().expect("tmp");
    let redis = Redis::start();
    let input = input(dir.path(), 60_000);
    let url = redis.url();
    let _first = Worker::start(&url, 1);
    let out = dir.path().join("queue.ndjson");
    let child = run(&input, &out, 10, &["--method", "queue", "--broker", &url]);
    wait_output(&out);
    let _second = Worker::start(&url, 1);
    let err = finish(child);
    assert_like_inline(dir.path(), &input, &out, 10, "after a worker joined");
    // the summary counts the workers whose results came back
    assert!(err.contains("over 2 worker(s)"), "{err}");
}

/// A task over the broker's limit for one value is a dead letter holding its rows, and the run
/// goes on; a task Redis refuses (our limit set above the broker's) ends the run at once with a
/// clear error instead of resending it for ever. The broker's limit is
/// lowered to 1 MB (`proto-max-bulk-len`) so the test moves megabytes, not Redis' 512 MB.
#[test]
fn a_task_over_the_broker_limit_is_a_dead_letter_and_a_refused_one_ends_the_run() {
    use streamprep_engine::{Method, PipelineConfig};
    let redis = Redis::start_with(&["--proto-max-bulk-len", "1mb"]);
    let _worker = Worker::start(&redis.url(), 1);
    // 50 rows in messages of 5; the fifth message's rows carry 300 KB each
    let mut input = Vec::new();
    for i in 0..50 {
        let pad = if (20..25).contains(&i) { 300_000 } else { 10 };
        input.extend(format!("{{\"a\": {i}, \"pad\": \"{}\"}}\n", "x".repeat(pad)).bytes());
    }
    let run = |max_task: usize| {
        let mut q = streamprep_queue::Queue::new(&redis.url()).expect("queue");
        q.max_task_bytes = max_task;
        let mut cfg = PipelineConfig::new(vec!["abs".into()], 5);
        cfg.method = Method::Queue { in_flight: 4 };
        cfg.remote = Some(std::sync::Arc::new(q));
        let mut src = streamprep_connectors::file::LineSource::new(
            &input[..],
            streamprep_core::RowFormat::Ndjson,
        );
        let mut sink = super::pipeline::Mem::default();
        let dead = super::pipeline::Mem::default();
        let mut dl = streamprep_connectors::dead_letter::DeadLetterWriter::new(dead.clone());
        let t0 = Instant::now();
        let r = streamprep_engine::run(
            &cfg,
            &mut src,
            &mut sink,
            Some(&mut dl as &mut dyn streamprep_core::DeadLetterSink),
        );
        let dead: Vec<serde_json::Value> = String::from_utf8(dead.bytes())
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        (r, sink.bytes(), dead, t0.elapsed())
    };
    let (r, out, dead, _) = run(1 << 20);
    let summary = r.expect("the run goes on past the large message");
    assert_eq!(summary.dead_letters, 5, "{summary}");
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 45);
    assert_eq!(summary.rows_in, summary.rows_out + summary.dead_letters);
    assert_eq!(dead.len(), 1, "one message");
    let reason = dead[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("over Redis' limit of 1 MB"), "{reason}");
    assert_eq!(dead[0]["rows"], 5);
    let data = dead[0]["data"].as_str().expect("data");
    assert!(data.len() > 1_400_000, "the dead letter holds the rows");
    // our limit above the broker's: Redis refuses that XADD; the run ends at once, saying why
    // (it used to resend the task for ever)
    let (r, _, _, took) = run(streamprep_queue::MAX_TASK_BYTES);
    let e = r.expect_err("refused by the broker").to_string();
    assert!(
        e.contains("message 4's task (1.4 MB)") && e.contains("proto-max-bulk-len"),
        "{e}"
    );
    assert!(took < Duration::from_secs(30), "gave up in {took:?}");
}

/// A live source that hands over its rows and then waits for more until told to stop (an MQTT
/// topic gone quiet).
struct QuietAfter {
    rows: Vec<Vec<u8>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl streamprep_core::Source for QuietAfter {
    fn kind(&self) -> streamprep_core::SourceKind {
        streamprep_core::SourceKind::Rows(streamprep_core::RowFormat::Ndjson)
    }

    fn next_row(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> Result<streamprep_core::Read, streamprep_core::IoError> {
        loop {
            if let Some(r) = self.rows.pop() {
                buf.extend_from_slice(&r);
                return Ok(streamprep_core::Read::Row);
            }
            if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(streamprep_core::Read::End);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn is_live(&self) -> bool {
        true
    }
}

/// The coordinator reads the source on a thread of its own: when the run fails (here Redis
/// refuses a task), a live source still waiting for rows is told to stop, and the run ends
/// with the error instead of waiting for rows that never come.
#[test]
fn a_failed_queue_run_does_not_wait_for_a_quiet_live_source() {
    use streamprep_engine::{Method, PipelineConfig};
    let redis = Redis::start_with(&["--proto-max-bulk-len", "1mb"]);
    let _worker = Worker::start(&redis.url(), 1);
    let mut q = streamprep_queue::Queue::new(&redis.url()).expect("queue");
    q.max_task_bytes = streamprep_queue::MAX_TASK_BYTES; // above the broker's: refused
    let mut cfg = PipelineConfig::new(vec!["abs".into()], 5);
    cfg.method = Method::Queue { in_flight: 4 };
    cfg.remote = Some(std::sync::Arc::new(q));
    cfg.max_wait = Some(Duration::from_millis(50));
    // five small rows, then five of 300 KB (one message Redis refuses), popped from the end
    let mut rows: Vec<Vec<u8>> = (0..10)
        .map(|i| {
            let pad = if i >= 5 { 300_000 } else { 10 };
            format!("{{\"a\": {i}, \"pad\": \"{}\"}}", "x".repeat(pad)).into_bytes()
        })
        .collect();
    rows.reverse();
    let mut src = QuietAfter {
        rows,
        stop: cfg.stop.clone(),
    };
    let mut sink = super::pipeline::Mem::default();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = streamprep_engine::run(&cfg, &mut src, &mut sink, None);
        let _ = tx.send(r.map(|s| s.to_string()).map_err(|e| e.to_string()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the run ended (it waited for a quiet source before)");
    let e = r.expect_err("refused by the broker");
    assert!(e.contains("proto-max-bulk-len"), "{e}");
}

/// A keyed run on the queue: each key's state travels with its tasks (one task of a key at a
/// time), so 3 worker slots give byte for byte what inline gives (windows and a running
/// scaler per station); a worker killed mid-run changes nothing (its tasks are claimed with
/// the same state); and the state saved at the end is what the next run (here inline) takes.
#[test]
fn a_keyed_run_on_the_queue_equals_inline_even_when_a_worker_dies() {
    let dir = tempfile::tempdir().expect("tmp");
    let redis = Redis::start();
    let url = redis.url();
    let input = dir.path().join("stations.ndjson");
    let st = bin()
        .args([
            "gen",
            "--rows",
            "30000",
            "--seed",
            "5",
            "--stations",
            "7",
            "--out",
        ])
        .arg(&input)
        .status()
        .expect("gen");
    assert!(st.success());
    let chain = r#"fillna_zeros,standard_scaler{"fit": "running"},rolling{"window": 5},diff"#;
    let keyed = |out: &Path, extra: &[&str]| {
        let mut args = vec!["--key", "station"];
        args.extend_from_slice(extra);
        run_chain(chain, &input, out, 10, &args)
    };
    let want_file = dir.path().join("inline.ndjson");
    finish(keyed(&want_file, &[]));
    let want = std::fs::read(&want_file).expect("inline");
    let mut victim = Worker::start(&url, 2);
    let _survivor = Worker::start(&url, 1);
    let out = dir.path().join("queue.ndjson");
    let child = keyed(&out, &["--method", "queue", "--broker", &url]);
    wait_output(&out);
    victim.0.kill().expect("kill -9");
    let _ = victim.0.wait();
    let err = finish(child);
    assert!(
        std::fs::read(&out).expect("output") == want,
        "a keyed queue run differs from inline: {err}"
    );
    // the keys' states saved at the end are those one inline run leaves
    let saved = std::fs::read(dir.path().join("queue.ndjson.state")).expect("queue state");
    let inline_saved = std::fs::read(dir.path().join("inline.ndjson.state")).expect("inline state");
    assert!(!saved.is_empty() && !inline_saved.is_empty());
    // the next run (inline) goes on from the queue's state as from inline's
    let again = |state: &str, out: &str| {
        let out = dir.path().join(out);
        finish(keyed(
            &out,
            &["--state", dir.path().join(state).to_str().expect("path")],
        ));
        std::fs::read(out).expect("again")
    };
    assert!(
        again("queue.ndjson.state", "after-queue.ndjson")
            == again("inline.ndjson.state", "after-inline.ndjson")
    );
    // ordered = "global" cannot carry per-key state on the queue: refused before anything runs
    let r = bin()
        .args([
            "run",
            "--chain",
            "diff",
            "--key",
            "station",
            "--ordered",
            "global",
        ])
        .args(["--buffer", "10", "--method", "queue", "--broker", &url])
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .args(["--sink", "-"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains("ordered = \"key\""), "{err}");
}
