//! `streamprep plan` on a profile with known service times: the queueing-theory figures, the
//! recommendation, an unstable setting flagged, and bad input refused.

use std::path::Path;

use super::cli::bin;

/// inline and pool measured at b = 1, 100, 1000 (µs a message); queue at 100 and 1000 only.
fn profile(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("profile.csv");
    let mut s = String::from(
        "method,buffer,stage,messages,mean_us,sd_us,mean_us_per_row,sd_us_per_row,dead_rows\n",
    );
    for (m, b, us) in [
        ("inline", 1, 20.0),
        ("inline", 100, 250.0),
        ("inline", 1000, 2000.0),
        ("pool", 1, 40.0),
        ("pool", 100, 300.0),
        ("pool", 1000, 2500.0),
        ("queue", 100, 600.0),
        ("queue", 1000, 5000.0),
    ] {
        s.push_str(&format!(
            "{m},{b},chain,75,{us},1,{},0.01,0\n",
            us / b as f64
        ));
        s.push_str(&format!("{m},{b},prepare,75,{},1,0,0,0\n", us / 3.0));
    }
    std::fs::write(&p, s).expect("profile");
    p
}

fn plan_json(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = bin()
        .args(["plan", "--cores", "3", "--json", "--profile"])
        .arg(profile(dir))
        .args(extra)
        .output()
        .expect("streamprep plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn setting(v: &serde_json::Value, b: u64, c: u64) -> &serde_json::Value {
    v["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|s| s["buffer"] == b && s["workers"] == c)
        .unwrap_or_else(|| panic!("no setting b={b} c={c}"))
}

#[test]
fn plan_predicts_rho_and_latency_and_recommends() {
    let dir = tempfile::tempdir().unwrap();
    // 200,000 rows/s; pool up to 2 workers on 3 cores, queue beyond
    let v = plan_json(
        dir.path(),
        &["--arrival-rate", "200000", "--max-workers", "4"],
    );
    // b=1000, c=2 (pool, S = 2.5 ms): 200 msg/s, rho = 200 * 0.0025 / 2 = 0.25
    let s = setting(&v, 1000, 2);
    assert_eq!(s["method"], "pool");
    assert!((s["rho"].as_f64().unwrap() - 0.25).abs() < 1e-9);
    assert!((s["fill_ms"].as_f64().unwrap() - 999.0 / 400_000.0 * 1e3).abs() < 1e-9);
    // Erlang C, c = 2, a = 0.5: (a^2/2 / (1 - rho)) / (1 + a + a^2/2 / (1 - rho)) = 0.1;
    // M/M/c's Wq = C * S / (c (1 - rho)) = 0.1 * 2.5 ms / 1.5, times Allen-Cunneen's
    // (Ca^2 + Cs^2) / 2 for G/G/c: rows at random make 1000-row messages with Ca^2 = 1/1000,
    // and the profile's spread (1 µs on 2500) gives Cs^2 = (1/2500)^2
    let factor = (1.0 / 1000.0 + (1.0f64 / 2500.0).powi(2)) / 2.0;
    assert!((s["wait_ms"].as_f64().unwrap() - 0.1 * 2.5 / 1.5 * factor).abs() < 1e-12);
    // a steady stream (a sampling clock): Ca^2 = 0
    let steady = plan_json(
        dir.path(),
        &[
            "--arrival-rate",
            "200000",
            "--max-workers",
            "4",
            "--arrivals",
            "regular",
        ],
    );
    let r = setting(&steady, 1000, 2);
    let factor = (1.0f64 / 2500.0).powi(2) / 2.0;
    assert!((r["wait_ms"].as_f64().unwrap() - 0.1 * 2.5 / 1.5 * factor).abs() < 1e-15);
    assert_eq!(steady["arrivals"], "regular");
    assert_eq!(r["rho"], s["rho"]);
    assert!((s["max_rate_rows_per_s"].as_f64().unwrap() - 800_000.0).abs() < 1e-6);
    // c = 3 is the queue method, with the queue's own measurement
    let q = setting(&v, 1000, 3);
    assert_eq!(q["method"], "queue");
    assert_eq!(q["service_time_from"], "queue");
    assert!((q["service_ms"].as_f64().unwrap() - 5.0).abs() < 1e-9);
    // b=1 was not profiled with the queue: inline's time stands in, and says so
    assert_eq!(setting(&v, 1, 3)["service_time_from"], "inline");
    // b=1 on 1 worker: 200,000 msg/s of 40 µs: rho 8, unstable, no latency
    let u = setting(&v, 1, 1);
    assert_eq!(u["stable"], false);
    assert!(u["latency_ms"].is_null());
    // b=100: the lowest latency under 0.7 is 2 workers (rho 0.3), but 1 worker (rho
    // 2000 * 0.0003 = 0.6) is within 1% of it (0.797 against 0.795 ms: 100 random rows a
    // message hardly wait), and the fewest workers win there
    let r = &v["recommendation"];
    assert_eq!(
        (r["buffer"].as_u64(), r["workers"].as_u64()),
        (Some(100), Some(1))
    );
    assert_eq!(r["method"], "pool");
    assert!((r["rho"].as_f64().unwrap() - 0.6).abs() < 1e-9);
    let two = setting(&v, 100, 2)["latency_ms"].as_f64().unwrap();
    let best = r["latency_ms"].as_f64().unwrap();
    assert!(best > two && best <= two * 1.01, "{best} {two}");
    // no setting under the target is more than 1% faster
    for s in v["settings"].as_array().unwrap() {
        if s["meets_target"] == true {
            assert!(s["latency_ms"].as_f64().unwrap() * 1.01 >= best, "{s}");
        }
    }
}

#[test]
fn plan_table_flags_unstable_settings_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "plan",
            "--cores",
            "3",
            "--workers",
            "1",
            "--arrival-rate",
            "600000",
        ])
        .arg("--profile")
        .arg(profile(dir.path()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // b=1000 on 1 worker: 600 msg/s of 2.5 ms = rho 1.5
    assert!(text.contains("UNSTABLE"), "{text}");
    assert!(
        !text.contains("S(b) will grow"),
        "1 worker on 3 cores: {text}"
    );
    assert!(text.contains("recommendation: none"), "{text}");
    // a latency limit no setting meets
    let v = plan_json(
        dir.path(),
        &["--arrival-rate", "1000", "--max-latency", "0.001"],
    );
    assert!(v["recommendation"].is_null());
}

#[test]
fn plan_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n").unwrap();
    for (args, says) in [
        (vec!["--arrival-rate", "-5"], "--arrival-rate"),
        (
            vec!["--arrival-rate", "100", "--target-rho", "1.5"],
            "--target-rho",
        ),
        (
            vec!["--arrival-rate", "100", "--workers", "0"],
            "at least 1",
        ),
        // compression is about a link: refused without one, and only the known kinds
        (
            vec!["--arrival-rate", "100", "--task-compression", "lz4"],
            "--link-rtt",
        ),
        (
            vec![
                "--arrival-rate",
                "100",
                "--link-rtt",
                "2ms",
                "--link-bandwidth",
                "1gbit",
                "--task-compression",
                "zstd",
            ],
            "lz4",
        ),
    ] {
        let out = bin()
            .arg("plan")
            .arg("--profile")
            .arg(profile(dir.path()))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}"
        );
    }
    let out = bin()
        .args(["plan", "--arrival-rate", "100", "--profile"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no 'method' column"));
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s)
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[test]
fn run_serves_prometheus_metrics_while_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = super::tcp::free_port();
    // 2,000 rows/s for 3 s, messages of 50 rows
    let child = bin()
        .args(["run", "--source", "generator:davis?rate=2000&rows=6000"])
        .args([
            "--chain",
            "fillna_zeros,normalizer,drop_duplicates",
            "--buffer",
            "50",
        ])
        .args(["--method", "pool", "--workers", "2", "--max-wait", "1s"])
        .arg("--sink")
        .arg(format!("file:{}", dir.path().join("out.ndjson").display()))
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("streamprep run");
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let text = http_get(port, "/metrics").expect("the metrics endpoint answers");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("Content-Type: text/plain; version=0.0.4"));
    let read = value(&text, "streamprep_rows_read_total");
    assert!(read > 1000.0 && read < 6000.0, "mid-run: {read}");
    // the smoothed arrival rate is near the paced 2,000 rows/s
    let rate = value(&text, "streamprep_arrival_rows_per_second");
    assert!((1400.0..2600.0).contains(&rate), "{rate}");
    assert_eq!(value(&text, "streamprep_workers"), 2.0);
    assert_eq!(value(&text, "streamprep_buffer_rows"), 50.0);
    let rho = value(&text, "streamprep_rho_measured");
    assert!(rho > 0.0 && rho < 0.5, "a light load: {rho}");
    for step in [
        "prepare",
        "fillna_zeros",
        "normalizer",
        "drop_duplicates",
        "result",
    ] {
        let n = value(
            &text,
            &format!("streamprep_step_service_seconds_count{{step=\"{step}\"}}"),
        );
        assert!(n >= 20.0, "{step}: {n}");
    }
    let p99 = value(&text, "streamprep_latency_seconds{quantile=\"0.99\"}");
    // a 50-row message fills in 25 ms at 2,000 rows/s: the mean row waits about 12 ms
    assert!(p99 > 0.005 && p99 < 1.0, "{p99}");
    assert!(http_get(port, "/nothing")
        .expect("answers")
        .starts_with("HTTP/1.1 404"));
    let out = child.wait_with_output().expect("run ends");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("per step (mean ms/msg): prepare"), "{err}");
    assert!(err.contains("over 2 worker(s)"), "{err}");
    // the port is released when the run ends
    assert!(http_get(port, "/metrics").is_none());
}

#[test]
fn a_saturated_pipeline_warns_and_names_the_remedy() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    // one worker on a heavy chain, fed as fast as the generator goes: busy all the time;
    // stopped as soon as it has warned
    let mut child = bin()
        .args(["run", "--source", "generator:davis?rows=100000000"])
        .args([
            "--chain",
            "quantile_transformer_normal,robust_scaler",
            "--buffer",
            "100",
        ])
        .args(["--method", "pool", "--workers", "1", "--quiet"])
        .arg("--sink")
        .arg(format!("file:{}", dir.path().join("out.ndjson").display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("streamprep run");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    });
    let stderr = child.stderr.take().expect("stderr");
    let warning = std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("warning: saturated"));
    let _ = child.kill();
    let _ = child.wait();
    drop(watchdog);
    let w = warning.expect("a saturation warning within 60 s");
    assert!(w.contains("measured rho"), "{w}");
    assert!(w.contains("1 worker(s)"), "{w}");
    assert!(w.contains("more workers (about"), "{w}");
    assert!(w.contains("larger buffer than 100"), "{w}");
}

#[test]
fn adaptive_buffer_grows_with_the_load_and_shrinks_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = super::cli::gen(dir.path(), 26_200);
    let timeline = dir.path().join("timeline.csv");
    let out_file = dir.path().join("out.ndjson");
    // slow, then faster than one-row messages can take (this is a debug build: about 2,500
    // one-row messages a second here), then slow for long enough to see the buffer shrink
    // after the backlog of the fast phase is gone (a debug build on a busy 2-core machine
    // takes seconds to catch up with 30,000 rows/s, which once left no slow phase to see)
    let out = bin()
        .args([
            "run",
            "--rate",
            "200:3s,12000:2s,200:8s",
            "--buffer",
            "auto",
        ])
        .args(["--max-latency", "50ms"])
        .args(["--chain", "fillna_zeros,normalizer,drop_duplicates"])
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .arg("--sink")
        .arg(format!("file:{}", out_file.display()))
        .arg("--timeline")
        .arg(&timeline)
        .output()
        .expect("streamprep run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // every row arrives (minus exact duplicates within a message, which depend on b, so
    // compare with the rows read instead)
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rows in 26200"), "{err}");
    let text = std::fs::read_to_string(&timeline).expect("timeline");
    let rows: Vec<(f64, usize)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().expect("seconds"),
                f[2].parse().expect("buffer"),
            )
        })
        .collect();
    let at = |lo: f64, hi: f64| -> Vec<usize> {
        rows.iter()
            .filter(|(t, _)| *t > lo && *t <= hi)
            .map(|r| r.1)
            .collect()
    };
    assert!(at(0.0, 3.0).iter().all(|&b| b <= 2), "slow start: {text}");
    // how far it grows depends on the machine (a faster one keeps up with 12,000 rows/s at
    // b = 4): it must at least double past the slow start's
    let peak = rows.iter().map(|r| r.1).max().unwrap_or(0);
    assert!(peak >= 4, "the buffer never grew: {text}");
    let end = rows.last().expect("a line a second").1;
    assert!(end < peak / 2, "the buffer did not shrink again: {text}");
}

#[test]
fn buffer_and_rate_settings_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = super::cli::gen(dir.path(), 10);
    for (args, says) in [
        (
            vec!["--buffer", "lots"],
            "neither a number of rows nor 'auto'",
        ),
        (
            vec!["--buffer", "auto", "--max-latency", "soon"],
            "--max-latency",
        ),
        (
            vec!["--buffer", "10", "--rate", "fast"],
            "not a number of rows a second",
        ),
        (
            vec!["--buffer", "10", "--rate", "100:5s,-3"],
            "positive number",
        ),
    ] {
        let out = bin()
            .args(["run", "--chain", "abs", "--sink", "file:/dev/null"])
            .arg("--source")
            .arg(format!("file:{}", input.display()))
            .args(&args)
            .output()
            .expect("streamprep run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("rows in"), "{args:?} ran: {err}");
    }
}

#[test]
fn plan_warns_when_pool_workers_take_every_core() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .args(["plan", "--cores", "2", "--method", "pool", "--workers", "2"])
        .args(["--arrival-rate", "1000", "--profile"])
        .arg(profile(dir.path()))
        .output()
        .expect("streamprep plan");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("as many pool workers as cores"), "{text}");
}

#[test]
fn a_taken_metrics_port_is_refused_before_the_sink_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = super::cli::gen(dir.path(), 10);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let sink = dir.path().join("out.ndjson");
    let out = bin()
        .args(["run", "--chain", "abs", "--buffer", "5"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .arg("--source")
        .arg(format!("file:{}", input.display()))
        .arg("--sink")
        .arg(format!("file:{}", sink.display()))
        .output()
        .expect("streamprep run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-addr"));
    assert!(!sink.exists(), "the sink was created before the refusal");
}

#[test]
fn profile_at_an_arrival_rate_hands_messages_over_at_that_pace() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, svg) = (dir.path().join("p.csv"), dir.path().join("p.svg"));
    // 3 warm-up and 40 measured messages of 10 rows at 500 rows/s: one every 20 ms, so the
    // 43 messages take at least 42 x 20 ms; back to back they take a few milliseconds
    let started = std::time::Instant::now();
    let out = bin()
        .args(["profile", "--buffers", "10", "--messages", "40"])
        .args(["--arrival-rate", "500", "--csv"])
        .arg(&csv)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took >= std::time::Duration::from_millis(840), "{took:?}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let chain = text
        .lines()
        .find(|l| l.starts_with("inline,10,chain,40,"))
        .unwrap_or_else(|| panic!("{text}"));
    let mean_us: f64 = chain.split(',').nth(4).unwrap().parse().unwrap();
    // the service time leaves out the waits between messages
    assert!(mean_us > 0.0 && mean_us < 20_000.0, "{chain}");

    for rate in ["0", "-3", "nan"] {
        let out = bin()
            .args(["profile", "--buffers", "10", "--messages", "2"])
            .arg(format!("--arrival-rate={rate}"))
            .arg("--csv")
            .arg(&csv)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{rate}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--arrival-rate"),
            "{rate}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn plan_counts_the_busy_time_in_rho_and_the_whole_service_time_in_latency() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("busy.csv");
    // the pool: 300 µs from hand-over to result, of which the chain kept the worker busy 200
    std::fs::write(
        &p,
        "method,buffer,stage,messages,mean_us,sd_us,mean_us_per_row,sd_us_per_row,dead_rows\n\
         pool,100,chain,75,300,1,3,0.01,0\n\
         pool,100,busy,75,200,1,2,0.01,0\n",
    )
    .unwrap();
    let out = bin()
        .args(["plan", "--json", "--workers", "1", "--method", "pool"])
        .args(["--arrival-rate", "100000", "--profile"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = setting(&v, 100, 1);
    // 1,000 messages a second of 200 µs busy: rho 0.2 (300 µs would make it 0.3)
    assert!((s["rho"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{s}");
    assert!((s["busy_ms"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{s}");
    assert!((s["max_rate_rows_per_s"].as_f64().unwrap() - 500_000.0).abs() < 1e-3);
    // latency: fill 99/200000 s + the wait on the busy time (M/M/1's, times (Ca^2 + Cs^2) / 2:
    // 100 random rows a message, 1 µs of spread on 200) + the whole 300 µs
    let factor = (1.0 / 100.0 + (1.0f64 / 200.0).powi(2)) / 2.0;
    let wait_ms = 0.2 * 0.2 / (1.0 - 0.2) * factor;
    let want = 99.0 / 200.0 + wait_ms + 0.3;
    assert!(
        (s["latency_ms"].as_f64().unwrap() - want).abs() < 1e-9,
        "{s}"
    );
    // the table shows both times beside rho
    let out = bin()
        .args(["plan", "--workers", "1", "--method", "pool"])
        .args(["--arrival-rate", "100000", "--profile"])
        .arg(&p)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("busy ms service ms"), "{table}");
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.trim_start().starts_with("100 "))
        .unwrap_or_else(|| panic!("{table}"))
        .split_whitespace()
        .collect();
    // the wait: 0.05 ms for M/M/1, times (1/100 + (1/200)^2) / 2 for G/G/1
    assert_eq!(&row[3..7], ["0.200", "0.495", "0.000", "0.200"], "{table}");
    assert_eq!(row[7], "0.300", "{table}");
}
