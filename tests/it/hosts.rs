//! The queue method across real network links: test hosts in network namespaces on this
//! machine (`streamprep-netlab`: a hub with Redis, a namespace a host, veth links with a
//! `tbf` rate and a delaying proxy), and the faults a network brings. Each run's output must
//! be byte for byte what `inline` writes: nothing lost, nothing duplicated.
//!
//! Needs root (network namespaces) and iproute2, nftables and redis-server; `scripts/test.sh`
//! installs them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::cli::bin;
use super::queue::{finish, input, wait_for_output};

const CHAIN: &str = "fillna_zeros,normalizer,drop_duplicates";

fn netlab(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_streamprep-netlab"))
        .args(args)
        .output()
        .expect("streamprep-netlab");
    assert!(
        out.status.success(),
        "streamprep-netlab {}: {} (the test hosts need root and the packages iproute2, nftables and redis-server)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A lab of test hosts; taken down when dropped (also when the test fails), and swept by the
/// next lab if this process was killed.
pub struct Lab {
    name: String,
}

impl Lab {
    /// A hub with Redis and the given hosts (`("w1", "lan")`).
    pub fn up(hosts: &[(&str, &str)]) -> Lab {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "spl{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let specs: Vec<String> = hosts.iter().map(|(h, p)| format!("{h}={p}")).collect();
        let mut args = vec!["up", name.as_str()];
        args.extend(specs.iter().map(String::as_str));
        netlab(&args);
        Lab { name }
    }

    pub fn add(&self, host: &str, profile: &str) {
        netlab(&["add", &self.name, &format!("{host}={profile}")]);
    }

    pub fn link(&self, host: &str, up: bool) {
        netlab(&["link", &self.name, host, if up { "up" } else { "down" }]);
    }

    pub fn loss(&self, percent: f64) {
        netlab(&["loss", &self.name, &percent.to_string()]);
    }

    /// The Redis URL as `host` sees it (`hub`: Redis' own host).
    /// Packets dropped by `loss` so far.
    pub fn dropped(&self) -> u64 {
        netlab(&["dropped", &self.name]).parse().expect("a count")
    }

    pub fn url(&self, host: &str) -> String {
        netlab(&["url", &self.name, host])
    }

    /// `streamprep` on `host`.
    pub fn streamprep(&self, host: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{}-{host}", self.name)])
            .arg(bin().get_program());
        c
    }

    /// A worker on `host` (one thread, tasks taken over after 2 s of silence).
    pub fn worker(&self, host: &str) -> Child {
        self.streamprep(host)
            .args(["worker", "--broker", &self.url(host), "--claim-after", "2s"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("worker")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_streamprep-netlab"))
            .args(["down", &self.name])
            .status();
    }
}

/// Stop a worker as Ctrl-C does; what it said (its summary counts the tasks it took over).
fn stop(mut worker: Child) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &worker.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while worker.try_wait().expect("worker").is_none() {
        if Instant::now() > deadline {
            let _ = worker.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = worker.wait_with_output().expect("worker");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn args(chain: &str, input: &Path, out: &Path, buffer: usize) -> Vec<String> {
    vec![
        "run".into(),
        "--chain".into(),
        chain.into(),
        "--buffer".into(),
        buffer.to_string(),
        "--source".into(),
        format!("file:{}", input.display()),
        "--sink".into(),
        format!("file:{}", out.display()),
    ]
}

/// The coordinator on `host`, the queue method through `lab`'s Redis.
fn coordinator(lab: &Lab, host: &str, args: Vec<String>) -> Child {
    lab.streamprep(host)
        .args(args)
        .args(["--method", "queue", "--broker", &lab.url(host)])
        .stderr(Stdio::piped())
        .spawn()
        .expect("coordinator")
}

fn inline(args: Vec<String>) -> Vec<u8> {
    let out = PathBuf::from(&args[8]["file:".len()..]);
    let st = bin()
        .args(args)
        .stderr(Stdio::null())
        .status()
        .expect("inline");
    assert!(st.success());
    std::fs::read(out).expect("inline output")
}

fn wait_output(out: &Path, bytes: u64) {
    wait_for_output(out, bytes, Duration::from_secs(60));
}

fn taken_over(summary: &str) -> u64 {
    summary
        .lines()
        .rev()
        .find_map(|l| {
            let (head, _) = l.split_once(" taken over")?;
            head.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no summary from the worker: {summary}"))
}

/// A worker host's link goes down mid-run: its task is taken over by the other host's
/// worker after `--claim-after`, and the output is inline's.
#[test]
fn a_worker_hosts_link_down_mid_run_hands_its_tasks_to_the_other_host() {
    let dir = tempfile::tempdir().expect("tmp");
    let lab = Lab::up(&[("w1", "lan"), ("w2", "lan")]);
    let input = input(dir.path(), 40_000);
    let (w1, w2) = (lab.worker("w1"), lab.worker("w2"));
    let out = dir.path().join("queue.ndjson");
    let run = coordinator(&lab, "hub", args(CHAIN, &input, &out, 100));
    wait_output(&out, 100_000);
    lab.link("w1", false);
    let err = finish(run);
    let inline_out = inline(args(CHAIN, &input, &dir.path().join("inline.ndjson"), 100));
    assert!(
        std::fs::read(&out).expect("out") == inline_out,
        "differs from inline after a link went down: {err}"
    );
    let said = stop(w2);
    assert!(taken_over(&said) >= 1, "w2 took nothing over: {said}");
    drop(w1);
}

/// A worker host added while the run goes on takes work; the output is inline's.
#[test]
fn a_worker_host_added_mid_run_takes_work() {
    let dir = tempfile::tempdir().expect("tmp");
    let lab = Lab::up(&[("w1", "lan")]);
    let input = input(dir.path(), 40_000);
    let w1 = lab.worker("w1");
    let out = dir.path().join("queue.ndjson");
    let run = coordinator(&lab, "hub", args(CHAIN, &input, &out, 50));
    wait_output(&out, 100_000);
    lab.add("w2", "lan");
    let w2 = lab.worker("w2");
    let err = finish(run);
    let inline_out = inline(args(CHAIN, &input, &dir.path().join("inline.ndjson"), 50));
    assert!(
        std::fs::read(&out).expect("out") == inline_out,
        "differs from inline after a host joined: {err}"
    );
    // the summary counts the workers whose results came back
    assert!(err.contains("over 2 worker(s)"), "{err}");
    drop((w1, w2));
}

/// The coordinator's link to Redis goes down for 2 s and comes back: the run goes on, the
/// output is inline's.
#[test]
fn the_coordinators_link_to_redis_flapping_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let lab = Lab::up(&[("w1", "rack"), ("c", "rack")]);
    // row by row steps, so the paced replay's messages (cut by time) give inline's rows
    let chain = "fillna_zeros,normalizer";
    let input = input(dir.path(), 40_000);
    let w1 = lab.worker("w1");
    let out = dir.path().join("queue.ndjson");
    let mut a = args(chain, &input, &out, 100);
    a.extend(["--rate".into(), "8000".into()]); // about 5 s
    let run = coordinator(&lab, "c", a);
    wait_output(&out, 50_000);
    lab.link("c", false);
    std::thread::sleep(Duration::from_secs(2));
    lab.link("c", true);
    let err = finish(run);
    let inline_out = inline(args(chain, &input, &dir.path().join("inline.ndjson"), 100));
    let got = std::fs::read(&out).expect("out");
    assert_eq!(
        got.len(),
        inline_out.len(),
        "differs from inline after the link flapped: {err}"
    );
    assert!(
        got == inline_out,
        "differs from inline after the link flapped: {err}"
    );
    drop(w1);
}

/// 1% of the packets on every link dropped for the whole run (coordinator, two workers, each
/// on a host of its own): the output is inline's.
#[test]
fn one_percent_loss_on_every_link_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let lab = Lab::up(&[("w1", "lan"), ("w2", "lan"), ("c", "lan")]);
    lab.loss(1.0);
    let input = input(dir.path(), 30_000);
    let (w1, w2) = (lab.worker("w1"), lab.worker("w2"));
    let out = dir.path().join("queue.ndjson");
    let err = finish(coordinator(&lab, "c", args(CHAIN, &input, &out, 100)));
    let inline_out = inline(args(CHAIN, &input, &dir.path().join("inline.ndjson"), 100));
    assert!(
        std::fs::read(&out).expect("out") == inline_out,
        "differs from inline under 1% loss: {err}"
    );
    assert!(lab.dropped() > 0, "no packet was dropped");
    drop((w1, w2));
}

/// `--task-compression auto`: workers 2 ms from Redis get LZ4 tasks (the coordinator says so
/// once), a worker beside Redis does not; the output is inline's either way. A second run
/// knows the distance before its first task: the running worker said it in Redis.
#[test]
fn task_compression_auto_turns_lz4_on_across_a_slow_link_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let lab = Lab::up(&[("w1", "lan")]);
    let input = input(dir.path(), 20_000);
    let inline_out = inline(args(CHAIN, &input, &dir.path().join("inline.ndjson"), 100));
    let auto = |host: &str| {
        let w = lab.worker(host);
        let runs: Vec<String> = (0..2)
            .map(|i| {
                let out = dir.path().join(format!("{host}-{i}.ndjson"));
                let mut a = args(CHAIN, &input, &out, 100);
                a.extend(["--task-compression".into(), "auto".into()]);
                let err = finish(coordinator(&lab, "hub", a));
                assert!(
                    std::fs::read(&out).expect("out") == inline_out,
                    "differs from inline: {err}"
                );
                err
            })
            .collect();
        drop(stop(w));
        runs
    };
    let far = auto("w1");
    // the first run learns it from the results (or from Redis, had the worker connected
    // before it started); the second, from Redis before its first task
    assert!(far[0].contains("LZ4-compressed"), "{}", far[0]);
    assert!(
        far[1].contains("worker thread(s) running are") && far[1].contains("LZ4-compressed"),
        "{}",
        far[1]
    );
    let near = auto("hub");
    assert!(
        near.iter().all(|e| !e.contains("LZ4-compressed")),
        "{near:?}"
    );
}
