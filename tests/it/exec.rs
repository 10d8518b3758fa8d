//! The `exec` step with real processes: Python scripts using the shipped helper
//! (`python/streamprep_step.py`, pandas and pyarrow from the test script's venv) under `run`,
//! in every format, inline and on the pool; and the faults: a script that exits, one that
//! segfaults, one that hangs, one that writes garbage to stdout, one that raises, one that
//! changes its columns. Each costs
//! its message only (a dead letter with the reason), every other row arrives in order, and
//! the summary adds up. A command that does not exist is refused before anything is read.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::cli::bin;

/// The venv's Python (pandas, pyarrow); the test script makes it.
pub fn python() -> String {
    let venv = std::env::var("STREAMPREP_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/streamprep-venv",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let py = format!("{venv}/bin/python");
    assert!(
        Path::new(&py).exists(),
        "{py} is missing: run scripts/test.sh, which makes the venv with pandas and pyarrow"
    );
    py
}

/// The folder of the shipped helper.
fn helper_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// `rows` NDJSON rows `{"a": i, "b": i / 4, "s": "row i"}`.
fn input(dir: &Path, rows: usize) -> PathBuf {
    let p = dir.join("in.ndjson");
    let text: String = (0..rows)
        .map(|i| {
            format!(
                "{{\"a\": {i}, \"b\": {}, \"s\": \"row {i}\"}}\n",
                i as f64 / 4.0
            )
        })
        .collect();
    std::fs::write(&p, text).expect("input");
    p
}

/// A Python step script in `dir`: `body` is the function's body (the frame `df`).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    let text = format!(
        "import os, sys, time\nsys.path.insert(0, {:?})\nfrom streamprep_step import serve\n\ndef f(df):\n{}\n\nserve(f)\n",
        helper_dir().display().to_string(),
        body.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::fs::write(&p, text).expect("script");
    p
}

/// `run` with a project file holding the exec step.
fn run_exec(dir: &Path, script: &Path, format: &str, method: &str, extra: &str) -> Output {
    let project = dir.join("project.toml");
    let workers = if method == "pool" {
        "workers = 2\n"
    } else {
        ""
    };
    std::fs::write(
        &project,
        format!(
            "source = \"file:{}\"\nchain = [{{ step = \"exec\", command = [{:?}, {:?}], format = \"{format}\" {extra} }}]\nbuffer = 10\nmethod = \"{method}\"\n{workers}sink = \"file:{}\"\ndead_letter = \"file:{}\"\n",
            dir.join("in.ndjson").display(),
            python(),
            script.display().to_string(),
            dir.join("out.ndjson").display(),
            dir.join("dead.ndjson").display(),
        ),
    )
    .expect("project");
    bin().arg("run").arg(&project).output().expect("run")
}

fn rows(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// `name N` in the summary line.
fn count(summary: &str, name: &str) -> u64 {
    let rest = &summary[summary
        .find(name)
        .unwrap_or_else(|| panic!("no {name} in {summary}"))
        + name.len()..];
    rest.trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a number")
}

#[test]
fn a_pandas_function_in_every_format_inline_and_on_the_pool_keeps_the_order() {
    let dir = tempfile::tempdir().expect("tmp");
    input(dir.path(), 95);
    // the classifier of seed 004 in small: a new column from the row
    let s = script(
        dir.path(),
        "classify.py",
        "df['CLASSIFICATION'] = (df['a'] * 2 + df['b']).where(df['a'] % 3 != 0, -1.0)\nreturn df",
    );
    for format in ["arrow", "csv", "ndjson"] {
        for method in ["inline", "pool"] {
            let out = run_exec(dir.path(), &s, format, method, "");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{format} {method}: {err}");
            let got = rows(&dir.path().join("out.ndjson"));
            assert_eq!(got.len(), 95, "{format} {method}: {err}");
            for (i, r) in got.iter().enumerate() {
                assert_eq!(
                    r["a"].as_i64(),
                    Some(i as i64),
                    "{format} {method}: in input order"
                );
                let want = if i % 3 == 0 {
                    -1.0
                } else {
                    i as f64 * 2.0 + i as f64 / 4.0
                };
                assert_eq!(
                    r["CLASSIFICATION"].as_f64(),
                    Some(want),
                    "{format} {method} row {i}"
                );
                assert_eq!(r["s"], format!("row {i}"));
            }
        }
    }
}

#[test]
fn serve_arrow_hands_the_function_a_pyarrow_table() {
    let dir = tempfile::tempdir().expect("tmp");
    input(dir.path(), 30);
    let s = dir.path().join("table.py");
    std::fs::write(
        &s,
        format!(
            "import sys\nsys.path.insert(0, {:?})\nimport pyarrow.compute as pc\nfrom streamprep_step import serve_arrow\nserve_arrow(lambda t: t.append_column('c', pc.multiply(t['b'], 4)))\n",
            helper_dir().display().to_string()
        ),
    )
    .expect("script");
    let out = run_exec(dir.path(), &s, "arrow", "pool", "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = rows(&dir.path().join("out.ndjson"));
    assert_eq!(got.len(), 30);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r["c"].as_f64(), Some(i as f64), "b * 4 = i, in order");
    }
}

#[test]
fn exits_segfaults_hangs_garbage_and_exceptions_cost_only_their_message() {
    let dir = tempfile::tempdir().expect("tmp");
    input(dir.path(), 100);
    // rows 10-19 are message 1, 30-39 message 3, ...; each fault hits one message
    let s = script(
        dir.path(),
        "faulty.py",
        "a = set(df['a'])
if 13 in a:
    print('giving up on 13', file=sys.stderr); sys.exit(3)
if 27 in a:
    os.kill(os.getpid(), 11)
if 42 in a:
    time.sleep(60)
if 55 in a:
    os.write(1, b'garbage on stdout'); time.sleep(60)
if 68 in a:
    raise ValueError('68 is not a row I like')
if 81 in a:
    return df.assign(extra=1)
return df",
    );
    let out = run_exec(dir.path(), &s, "arrow", "pool", ", timeout = \"3s\"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let got = rows(&dir.path().join("out.ndjson"));
    let bad = [1, 2, 4, 5, 6, 8];
    let want: Vec<i64> = (0..100).filter(|i| !bad.contains(&(i / 10))).collect();
    let got_a: Vec<i64> = got.iter().filter_map(|r| r["a"].as_i64()).collect();
    assert_eq!(got_a, want, "every other row, in order: {err}");
    let dead = rows(&dir.path().join("dead.ndjson"));
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    let all = reasons.join("\n");
    for expected in [
        "exited with status 3",
        "giving up on 13",
        "killed by signal 11",
        "no answer within",
        "not a frame",
        "68 is not a row I like",
        "answered with the columns",
    ] {
        assert!(all.contains(expected), "a reason says {expected:?}: {all}");
    }
    let summary = err
        .lines()
        .find(|l| l.contains("rows in"))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    assert_eq!(count(summary, "rows in"), 100, "{summary}");
    assert_eq!(count(summary, "rows out"), 40, "{summary}");
    assert_eq!(count(summary, "dead letters"), 60, "{summary}");
}

#[test]
fn a_command_that_does_not_exist_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().expect("tmp");
    input(dir.path(), 10);
    let out = bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", dir.path().join("in.ndjson").display()))
        .args([
            "--chain",
            r#"exec{"command": ["no-such-program-anywhere", "x.py"]}"#,
        ])
        .args(["--buffer", "5", "--sink"])
        .arg(format!("file:{}", dir.path().join("out.ndjson").display()))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no-such-program-anywhere") && err.contains("PATH"),
        "{err}"
    );
    assert!(!dir.path().join("out.ndjson").exists(), "nothing written");
}

#[test]
fn stderr_goes_to_the_log_and_ctrl_c_closes_stdin_then_the_processes_end() {
    let dir = tempfile::tempdir().expect("tmp");
    input(dir.path(), 3000);
    let pids = dir.path().join("pids");
    // each process notes its pid when it starts and "bye" when its stdin closes
    let s = dir.path().join("noisy.py");
    std::fs::write(
        &s,
        format!(
            "import os, sys\nsys.path.insert(0, {helper:?})\nfrom streamprep_step import serve\nopen({pids:?}, 'a').write(str(os.getpid()) + '\\n')\ndef f(df):\n    print('hello from the script', file=sys.stderr)\n    return df\nserve(f)\nopen({pids:?}, 'a').write('bye\\n')\n",
            helper = helper_dir().display().to_string(),
            pids = pids.display().to_string(),
        ),
    )
    .expect("script");
    let child = bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", dir.path().join("in.ndjson").display()))
        .args([
            "--rate",
            "100",
            "--buffer",
            "10",
            "--method",
            "pool",
            "--workers",
            "2",
        ])
        .arg("--chain")
        .arg(format!(
            "exec{{\"command\": [{:?}, {:?}]}}",
            python(),
            s.display().to_string()
        ))
        .arg("--sink")
        .arg(format!("file:{}", dir.path().join("out.ndjson").display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    // both processes started (the sink writes its file in large chunks: watch the pids)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&pids)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the processes did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = child.wait_with_output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("exec-") && err.contains(": hello from the script"),
        "the processes' stderr is in the log, each named: {err}"
    );
    let noted = std::fs::read_to_string(&pids).expect("pids");
    let started: Vec<&str> = noted.lines().filter(|l| *l != "bye").collect();
    assert_eq!(started.len(), 2, "one process a worker: {noted}");
    assert_eq!(
        noted.lines().filter(|l| *l == "bye").count(),
        2,
        "each saw its stdin close and ended on its own: {noted}"
    );
    for pid in started {
        let alive = std::process::Command::new("kill")
            .args(["-0", pid])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(!alive, "process {pid} outlived the run");
    }
    // what was read was processed: every output row is whole and in order
    let got: Vec<i64> = rows(&dir.path().join("out.ndjson"))
        .iter()
        .filter_map(|r| r["a"].as_i64())
        .collect();
    assert!(
        got.len() >= 10 && got.len() < 3000,
        "stopped midway: {}",
        got.len()
    );
    assert_eq!(got, (0..got.len() as i64).collect::<Vec<_>>());
}

/// Seed 004 end to end (examples/seed004): the sender's frames over TCP, 100 rows a message,
/// the black box in two Python processes, the framed TCP sink to the receiver; byte for byte
/// the old single-process pandas pipeline's output, in the same order.
#[test]
fn seed_004_on_streamprep_writes_what_the_single_process_pandas_pipeline_writes() {
    let dir = tempfile::tempdir().expect("tmp");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed004");
    let py = python();
    let input = dir.path().join("in.csv");
    let ok = |mut c: std::process::Command| {
        let out = c.output().expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut gen = std::process::Command::new(&py);
    gen.arg(example.join("gen_input.py"))
        .arg("1234")
        .arg(&input);
    ok(gen);
    let mut old = std::process::Command::new(&py);
    old.arg(example.join("old_pipeline.py"))
        .arg(&input)
        .arg(dir.path().join("old.csv"))
        .current_dir(&example)
        .env("BLACKBOX_WORK", "200");
    ok(old);
    let mut new = std::process::Command::new(example.join("run.sh"));
    new.arg("2")
        .arg(&input)
        .arg(dir.path().join("new.csv"))
        .arg(env!("CARGO_BIN_EXE_streamprep"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PYTHON", &py)
        .env("BLACKBOX_WORK", "200")
        .env("SRC_PORT", super::tcp::free_port().to_string())
        .env("DST_PORT", super::tcp::free_port().to_string());
    ok(new);
    let old = std::fs::read_to_string(dir.path().join("old.csv")).expect("old");
    let new = std::fs::read_to_string(dir.path().join("new.csv")).expect("new");
    assert_eq!(old.lines().count(), 1234);
    assert!(old.lines().all(|l| l.split(',').count() == 7), "classified");
    assert_eq!(new, old, "the same rows in the same order");
}

/// `eval` from the command line: seed 002's beam position and more in one step; a column the
/// stream does not have, or an expression that does not parse, is refused before any row is
/// processed, naming what is wrong (exact values: the golden test against pandas' df.eval).
#[test]
fn eval_derives_columns_and_refuses_a_bad_expression_or_column_before_any_row() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("buttons.ndjson");
    std::fs::write(
        &input,
        "{\"a\": 1.0, \"b\": 2.0, \"c\": 3.0, \"d\": 4.0}\n{\"a\": 2.0, \"b\": 2.0, \"c\": 2.0, \"d\": 2.0}\n",
    )
    .expect("input");
    let run = |expr: &str| {
        bin()
            .args(["run", "--source"])
            .arg(format!("file:{}", input.display()))
            .args(["--buffer", "10", "--chain"])
            .arg(format!("eval{}", serde_json::json!({ "expr": expr })))
            .args(["--sink", "-"])
            .output()
            .expect("run")
    };
    let out = run("x = 12.5 * (a + d - b - c) / (a + b + c + d)\ny = 12.5 * (a + b - c - d) / (a + b + c + d); near = abs(x) < 1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(rows[0]["x"], 0.0);
    assert_eq!(rows[0]["y"], -5.0);
    assert_eq!(rows[0]["near"], true);
    assert_eq!(rows[1]["x"], 0.0);
    for (expr, says) in [
        ("x = a + e", "no column 'e' (the message has a, b, c, d)"),
        ("x = a +", "ends too early"),
        ("x = frob(a)", "not a function"),
    ] {
        let out = run(expr);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{expr}: {err}");
        assert!(err.contains(says), "{expr}: {err}");
        assert!(out.stdout.is_empty(), "{expr}: no row written");
    }
}

/// In the app, the processes' stderr is in the run's log (the project page's log stream).
#[test]
fn in_the_app_the_processes_stderr_is_in_the_runs_log() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tmp");
    input(dir.path(), 50);
    let s = script(
        dir.path(),
        "noisy.py",
        "print('hello from the script', file=sys.stderr, flush=True)\nreturn df",
    );
    let (mut child, _err, addr) = super::api::serve(dir.path());
    let (cookie, csrf) = super::api::login(&addr, "admin", super::browser::ADMIN_PW);
    let root = std::fs::canonicalize(dir.path()).expect("dir");
    let spec = serde_json::json!({
        "name": "noisy",
        "source": format!("file:{}", root.join("in.ndjson").display()),
        "rate": 20,
        "chain": [{ "step": "exec", "command": [python(), s.display().to_string()] }],
        "buffer": 5,
        "sink": format!("file:{}", root.join("out.ndjson").display()),
    });
    let hdr = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let (st, body) = super::api::http(&addr, "POST", "/api/v1/projects", &hdr, &spec.to_string());
    assert_eq!(st, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (st, body) = super::api::http(
        &addr,
        "POST",
        &format!("/api/v1/projects/{id}/start"),
        &hdr,
        "",
    );
    assert_eq!(st, 202, "{body}");
    // the page's live stream: its `log` events
    let mut c = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        c,
        "GET /projects/{id}/stream HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n"
    )
    .expect("request");
    c.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .expect("timeout");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = String::new();
    while !seen.contains("hello from the script") {
        assert!(
            std::time::Instant::now() < deadline,
            "no log line from the process: {seen}"
        );
        let mut buf = [0u8; 8192];
        if let Ok(n) = c.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.contains("event: log"), "{seen}");
    assert!(seen.contains("exec-"), "the process is named: {seen}");
    let _ = child.kill();
    let _ = child.wait();
}

/// With the queue method, each `streamprep worker` runs the processes on its own host (here:
/// 2 workers of concurrency 2, 4 processes); the output is inline's, in order.
#[test]
fn under_the_queue_method_each_worker_runs_its_processes_and_the_output_is_inlines() {
    let dir = tempfile::tempdir().expect("tmp");
    input(dir.path(), 200);
    let s = script(
        dir.path(),
        "pids.py",
        "df['pid'] = os.getpid()\ndf['twice'] = df['a'] * 2\nreturn df",
    );
    let redis = super::queue::Redis::start();
    let _workers = [
        super::queue::Worker::start(&redis.url(), 2),
        super::queue::Worker::start(&redis.url(), 2),
    ];
    let out = bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", dir.path().join("in.ndjson").display()))
        .args([
            "--buffer",
            "10",
            "--method",
            "queue",
            "--broker",
            &redis.url(),
        ])
        .arg("--chain")
        .arg(format!(
            "exec{{\"command\": [{:?}, {:?}]}}",
            python(),
            s.display().to_string()
        ))
        .arg("--sink")
        .arg(format!("file:{}", dir.path().join("out.ndjson").display()))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = rows(&dir.path().join("out.ndjson"));
    assert_eq!(got.len(), 200);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r["a"].as_i64(), Some(i as i64), "in order");
        assert_eq!(r["twice"].as_i64(), Some(2 * i as i64));
    }
    let pids: std::collections::HashSet<i64> =
        got.iter().filter_map(|r| r["pid"].as_i64()).collect();
    assert!(
        pids.len() >= 2 && pids.len() <= 4,
        "the workers' processes: {pids:?}"
    );
}
