//! `streamprep serve` as a real server on a free port, fuzzed by schemathesis (PyPI, in the
//! test script's venv) from its own OpenAPI document with an operator's API token: no answer
//! is a 5xx and none breaks the document (status codes, content types, schemas).

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};

use super::cli::bin;

/// One HTTP/1.1 request; the status and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("answer");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Log in over a raw connection: the session cookie and the CSRF token.
pub fn login(addr: &str, name: &str, password: &str) -> (String, String) {
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    let b = format!(r#"{{"name": "{name}", "password": "{password}"}}"#);
    write!(
        c,
        "POST /api/v1/login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    )
    .expect("login");
    let mut text = String::new();
    c.read_to_string(&mut text).expect("answer");
    let cookie = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in {text}"))
        .to_string();
    let csrf = field(text.split_once("\r\n\r\n").expect("body").1, "csrf");
    (cookie, csrf)
}

fn field(json: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        .to_string()
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_openapi_document() {
    let venv = std::env::var("STREAMPREP_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/streamprep-venv",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let st = format!("{venv}/bin/schemathesis");
    assert!(
        std::path::Path::new(&st).exists(),
        "{st} is missing: run scripts/test.sh, which installs the pinned schemathesis into the venv"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let admin_pw = super::browser::ADMIN_PW;
    let (mut child, mut err, addr) = serve(dir.path());
    // an operator with an API token, made through the API by the admin
    let (s, body) = http(
        &addr,
        "POST",
        "/api/v1/login",
        &[],
        &format!(r#"{{"name": "admin", "password": "{admin_pw}"}}"#),
    );
    assert_eq!(s, 200, "{body}");
    let (s, body) = http(&addr, "POST", "/api/v1/tokens", &[], r#"{"label": "x"}"#);
    assert_eq!(s, 401, "a token needs a login: {body}");
    let admin = login(&addr, "admin", admin_pw);
    let hdr = [
        ("Cookie", admin.0.as_str()),
        ("X-CSRF-Token", admin.1.as_str()),
    ];
    let (s, body) = http(
        &addr,
        "POST",
        "/api/v1/users",
        &hdr,
        r#"{"name": "ops", "role": "operator", "password": "the operator's password"}"#,
    );
    assert_eq!(s, 201, "{body}");
    let (s, body) = http(
        &addr,
        "POST",
        "/api/v1/login",
        &[],
        r#"{"name": "ops", "password": "the operator's password"}"#,
    );
    assert_eq!(s, 200, "{body}");
    let (cookie, csrf) = login(&addr, "ops", "the operator's password");
    let (s, body) = http(
        &addr,
        "POST",
        "/api/v1/tokens",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        r#"{"label": "schemathesis"}"#,
    );
    assert_eq!(s, 201, "{body}");
    let token = field(&body, "token");
    let out = Command::new(&st)
        .args(["run", &format!("http://{addr}/api/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "30", "--seed", "1"])
        // the whole suite runs beside it on two cores: a slow answer is not a wrong one
        .args(["--request-timeout", "60"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis");
    let text = String::from_utf8_lossy(&out.stdout);
    let generated = text
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or("(no count)")
        .trim()
        .to_string();
    eprintln!("schemathesis: {generated}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}\nserver:\n{}",
        String::from_utf8_lossy(&out.stderr),
        {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            rest
        }
    );
    assert!(generated.contains("generated"), "{text}");
}

/// Start `serve` on a free port with its store in `dir` (the admin's password:
/// [`super::browser::ADMIN_PW`]); the process, its stderr and its address.
pub fn serve(
    dir: &std::path::Path,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
    String,
) {
    let mut child = bin()
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("store"))
        .arg("--files-dir")
        .arg(dir)
        .current_dir(dir)
        .env("STREAMPREP_ADMIN_PASSWORD", super::browser::ADMIN_PW)
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    for _ in 0..10 {
        let mut line = String::new();
        err.read_line(&mut line).expect("a line");
        if let Some(a) = line.split("http://").nth(1) {
            let addr = a.split_whitespace().next().unwrap_or_default().to_string();
            return (child, err, addr);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve never said where it listens");
}

/// A project running when `serve` stops (SIGTERM) is stopped cleanly, its run recorded as
/// interrupted, and started again when `serve` starts again on the same store.
#[test]
fn serve_restarts_the_projects_that_were_running_when_it_stopped() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut child, mut err, addr) = serve(dir.path());
    let (cookie, csrf) = login(&addr, "admin", "the admin's long password");
    let h = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let out = dir.path().join("out.ndjson");
    let spec = serde_json::json!({
        "name": "paced", "source": "generator:davis?rate=300", "chain": ["abs"], "buffer": 10,
        "sink": format!("file:{}", out.display()),
        "dead_letter": format!("file:{}", dir.path().join("dead.ndjson").display())
    });
    let (s, body) = http(&addr, "POST", "/api/v1/projects", &h, &spec.to_string());
    assert_eq!(s, 201, "{body}");
    let id = field(&body, "id");
    let (s, body) = http(
        &addr,
        "POST",
        &format!("/api/v1/projects/{id}/start"),
        &h,
        "",
    );
    assert_eq!(s, 202, "{body}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    assert!(child.wait().expect("exit").success());
    let mut said = String::new();
    let _ = err.read_to_string(&mut said);
    assert!(said.contains("stopped serving"), "{said}");
    // the sink holds whole rows only
    let rows = std::fs::read_to_string(&out).expect("output");
    assert!(
        rows.ends_with('\n') && rows.lines().count() > 100,
        "{} bytes",
        rows.len()
    );
    // started again on the same store
    let (mut child, mut err, addr) = serve(dir.path());
    // the next lines: where files go, then the project started again
    let mut said = String::new();
    for _ in 0..2 {
        let _ = err.read_line(&mut said);
    }
    assert!(said.contains("started project \"paced\" again"), "{said}");
    let (cookie, csrf) = login(&addr, "admin", "the admin's long password");
    let h = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let (s, body) = http(&addr, "GET", &format!("/api/v1/projects/{id}"), &h, "");
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"running\":true"), "{body}");
    let (_, runs) = http(&addr, "GET", &format!("/api/v1/projects/{id}/runs"), &h, "");
    let runs: serde_json::Value = serde_json::from_str(&runs).expect("runs");
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "{runs}");
    assert!(
        runs[1]["state"]
            .as_str()
            .unwrap_or("")
            .starts_with("interrupted"),
        "{runs}"
    );
    assert_eq!(runs[1]["started_by"], "admin");
    assert_eq!(runs[0]["started_by"], "streamprep");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
