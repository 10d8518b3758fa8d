//! The `streamprep` binary as users call it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test; `STREAMPREP_BIN` names another one (an older build, to see which
/// regression tests it fails: `STREAMPREP_BIN=/path/to/old cargo test --test it robust::`).
pub fn bin() -> Command {
    match std::env::var_os("STREAMPREP_BIN") {
        Some(other) => Command::new(other),
        None => Command::new(env!("CARGO_BIN_EXE_streamprep")),
    }
}

pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "streamprep failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn gen(dir: &Path, rows: u64) -> std::path::PathBuf {
    let p = dir.join("in.ndjson");
    ok(bin()
        .args(["gen", "--rows", &rows.to_string(), "--seed", "5", "--out"])
        .arg(&p)
        .output()
        .expect("gen"));
    p
}

fn s(p: &Path) -> String {
    format!("file:{}", p.display())
}

#[test]
fn gen_is_deterministic_and_has_33_fields() {
    let a = bin()
        .args(["gen", "--rows", "300", "--seed", "9"])
        .output()
        .expect("gen");
    let b = bin()
        .args(["gen", "--rows", "300", "--seed", "9"])
        .output()
        .expect("gen");
    let c = bin()
        .args(["gen", "--rows", "300", "--seed", "10"])
        .output()
        .expect("gen");
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    let text = String::from_utf8(a.stdout).expect("utf8");
    assert_eq!(text.lines().count(), 300);
    for l in text.lines() {
        let row: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(l).expect("json row");
        assert_eq!(row.len(), 33);
    }
}

#[test]
fn run_prints_a_summary_and_pool_equals_inline() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = gen(dir.path(), 2500);
    let a = dir.path().join("a.ndjson");
    let b = dir.path().join("b.ndjson");
    let chain = "fillna_zeros,normalizer,drop_duplicates";
    let out = ok(bin()
        .args([
            "run",
            "--source",
            &s(&input),
            "--chain",
            chain,
            "--buffer",
            "100",
            "--sink",
            &s(&a),
        ])
        .output()
        .expect("run"));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("rows in 2500,")
            && summary.contains("messages 25,")
            && summary.contains("rows/s"),
        "{summary}"
    );
    ok(bin()
        .args([
            "run",
            "--source",
            &s(&input),
            "--chain",
            chain,
            "--buffer",
            "100",
            "--method",
            "pool",
            "--workers",
            "3",
            "--sink",
            &s(&b),
        ])
        .output()
        .expect("run"));
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
}

#[test]
fn bad_flags_and_projects_fail_before_reading_anything() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = gen(dir.path(), 10);
    let out_file = dir.path().join("out.ndjson");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--chain".into(), "abs,nonsense".into()],
            "unknown step 'nonsense'",
        ),
        (
            vec!["--chain".into(), "fillna_zero".into()],
            "unknown step 'fillna_zero' (did you mean 'fillna_zeros'?",
        ),
        (
            vec![
                "--chain".into(),
                "abs".into(),
                "--buffer".into(),
                "0".into(),
            ],
            "buffer (--buffer): must be at least 1",
        ),
        (
            vec!["--chain".into(), "abs,prepare".into()],
            "'prepare' may only open",
        ),
        (
            vec![
                "--chain".into(),
                "abs".into(),
                "--workers".into(),
                "2".into(),
            ],
            "workers (--workers): needs method = \"pool\"",
        ),
    ];
    for (extra, want) in cases {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--source".into(),
            s(&input),
            "--sink".into(),
            s(&out_file),
        ];
        if !extra.iter().any(|a| a == "--buffer") {
            args.extend(["--buffer".into(), "10".into()]);
        }
        args.extend(extra);
        let out = bin().args(&args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: expected '{want}' in: {err}");
        assert_eq!(err.matches(want).count(), 1, "{args:?}: said twice: {err}");
        assert!(
            !out_file.exists(),
            "{args:?}: the sink was created before the config was checked"
        );
    }
    let out = bin()
        .args([
            "run",
            "--source",
            "file:nope.ndjson",
            "--chain",
            "abs",
            "--buffer",
            "3",
            "--sink",
            &s(&out_file),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.ndjson"));
    let out = bin()
        .args([
            "run",
            "--source",
            "file:in.txt",
            "--chain",
            "abs",
            "--buffer",
            "3",
            "--sink",
            "-",
        ])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("extension"));

    let project = dir.path().join("p.toml");
    std::fs::write(
        &project,
        "source = \"x.ndjson\"\nchain = [\"abs\"]\nbufer = 3\n",
    )
    .expect("write");
    let out = bin().arg("run").arg(&project).output().expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bufer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn project_file_runs_and_flags_override_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = gen(dir.path(), 300);
    let from_file = dir.path().join("f.csv");
    let overridden = dir.path().join("o.ndjson");
    let project = dir.path().join("p.toml");
    std::fs::write(
        &project,
        format!(
            "source = \"{}\"\nchain = \"fillna_mean, standard_scaler\"\nbuffer = 50\nmethod = \"pool\"\nworkers = 2\nsink = \"{}\"\n",
            s(&input),
            s(&from_file)
        ),
    )
    .expect("write");
    ok(bin().arg("run").arg(&project).output().expect("run"));
    let csv = std::fs::read_to_string(&from_file).expect("csv");
    assert!(
        csv.starts_with("ts,station,temp_out,"),
        "{}",
        &csv[..80.min(csv.len())]
    );
    assert_eq!(csv.lines().count(), 301);
    ok(bin()
        .arg("run")
        .arg(&project)
        .args(["--sink", &s(&overridden), "--buffer", "300"])
        .output()
        .expect("run"));
    assert_eq!(
        std::fs::read_to_string(&overridden)
            .expect("ndjson")
            .lines()
            .count(),
        300
    );
}

#[test]
fn declared_schema_and_parquet_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("in.ndjson");
    std::fs::write(
        &input,
        "{\"t\": \"a\", \"x\": 1}\n{\"t\": \"b\", \"x\": null}\n{\"t\": \"c\", \"x\": -3}\n",
    )
    .expect("write");
    let pq = dir.path().join("mid.parquet");
    let back = dir.path().join("back.ndjson");
    let project = dir.path().join("p.toml");
    std::fs::write(&project, format!("source = \"{}\"\nchain = []\nbuffer = 2\nsink = \"{}\"\n[schema]\nt = \"string\"\nx = \"float64\"\n", s(&input), s(&pq))).expect("w");
    ok(bin().arg("run").arg(&project).output().expect("run"));
    ok(bin()
        .args([
            "run",
            "--source",
            &s(&pq),
            "--chain",
            "abs",
            "--buffer",
            "2",
            "--sink",
            &s(&back),
        ])
        .output()
        .expect("run"));
    assert_eq!(
        std::fs::read_to_string(&back).expect("back"),
        "{\"t\":\"a\",\"x\":1.0}\n{\"t\":\"b\",\"x\":null}\n{\"t\":\"c\",\"x\":3.0}\n"
    );
}

#[test]
fn stdin_to_stdout() {
    use std::io::Write;
    let mut child = bin()
        .args([
            "run",
            "--source",
            "-",
            "--chain",
            "aggregated_sum",
            "--buffer",
            "2",
            "--sink",
            "-",
            "-q",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"{\"a\":1,\"b\":0.5,\"s\":\"x\"}\n{\"a\":2,\"b\":null,\"s\":\"y\"}\n{\"a\":5,\"b\":1.25,\"s\":\"z\"}\n").expect("write");
    let out = ok(child.wait_with_output().expect("wait"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"a\":3,\"b\":0.5}\n{\"a\":5,\"b\":1.25}\n"
    );
}

#[test]
fn list_names_every_step() {
    let out = ok(bin().arg("list").output().expect("list"));
    let text = String::from_utf8_lossy(&out.stdout);
    for step in [
        "prepare",
        "abs",
        "quantile_transformer_normal",
        "standard_scaler",
        "result",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(step)),
            "{step} missing from list"
        );
    }
}

#[test]
fn the_example_projects_parse_and_the_weather_example_runs() {
    // README's main command runs examples/weather.toml; run it here with a smaller row count.
    let dir = tempfile::tempdir().expect("tmp");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.path().join("w.ndjson");
    let run = ok(bin()
        .current_dir(dir.path())
        .arg("run")
        .arg(root.join("examples/weather.toml"))
        .args([
            "--source",
            "generator:davis?rows=5000&seed=1",
            "--sink",
            &s(&out),
        ])
        .output()
        .expect("run"));
    assert!(String::from_utf8_lossy(&run.stderr).contains("rows in 5000,"));
    assert!(std::fs::read_to_string(&out).expect("out").lines().count() > 4900);
    // the Wallaroo example is well-formed (it would listen, so only check it is refused for the right reason)
    let text = std::fs::read_to_string(root.join("examples/wallaroo.toml")).expect("example");
    assert!(text.contains("tcp-listen:") && text.contains("sink_format = \"csv\""));
}

/// `streamprep serve` on port 0: says where it listens, answers /healthz and the API over a
/// real socket, and stops cleanly on SIGTERM.
#[test]
fn serve_answers_over_a_real_socket_and_stops_on_sigterm() {
    use std::io::{BufRead, Read, Write};
    let data = tempfile::tempdir().expect("tmp");
    let mut child = bin()
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    // the first start makes the admin and shows its password once
    let mut line = String::new();
    err.read_line(&mut line).expect("a line");
    assert!(
        line.contains("created the user admin with the password "),
        "{line}"
    );
    let mut line = String::new();
    err.read_line(&mut line).expect("a line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let get = |path: &str| -> String {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("answer");
        text
    };
    let health = get("/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let doc = get("/api/openapi.json");
    assert!(doc.contains("/api/v1/validate"), "{doc}");
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    err.read_to_string(&mut rest).expect("stderr");
    assert!(rest.contains("stopped serving"), "{rest}");
}

/// `streamprep user`: add (password from the environment), list, passwd (from stdin), del; a
/// short password is refused; the password never shows in the output.
#[test]
fn users_are_managed_from_the_command_line() {
    use std::io::Write;
    let data = tempfile::tempdir().expect("tmp");
    let user = |args: &[&str], env_pw: Option<&str>, stdin: &str| -> Output {
        let mut c = bin();
        c.arg("user").args(args).arg("--data-dir").arg(data.path());
        c.env_remove("STREAMPREP_PASSWORD");
        if let Some(p) = env_pw {
            c.env("STREAMPREP_PASSWORD", p);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("user");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write");
        child.wait_with_output().expect("user")
    };
    let secret = "a secret long password";
    let o = user(&["add", "ops", "--role", "operator"], Some(secret), "");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = user(&["list"], None, "");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ops\toperator\n");
    let o = user(&["passwd", "ops"], None, "another long password\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = user(&["add", "bob"], Some("short"), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("12 to 1024 characters"));
    let o = user(&["add", "x", "--role", "root"], Some(secret), "");
    assert!(String::from_utf8_lossy(&o.stderr).contains("viewer, operator or admin"));
    let o = user(&["del", "ops"], None, "");
    assert!(o.status.success());
    let o = user(&["list"], None, "");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    let o = user(&["del", "ops"], None, "");
    assert_eq!(o.status.code(), Some(2), "no such user");
    let o = user(&["add", "eve", "--role", "viewer"], Some(secret), "");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success() && !all.contains(secret), "{all}");
}
