//! PostgreSQL in and out, against a private server (Debian's initdb/pg_ctl on a free port):
//! the sink creates the table and writes each message by binary COPY (a row delivered again is
//! written once), the source reads a time range or a query back in batches, and a stop cancels
//! the query on the server.

use std::time::{Duration, Instant};

use streamprep_testkit::postgres::Postgres;

use super::cli::bin;

/// Rows from a file into a table through the paper's chain, back out by time range and by
/// query, equal to what the chain wrote to a file; a second run of the same rows adds none.
#[test]
fn rows_go_into_a_table_and_come_back_by_time_range_and_query() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tmp");
    let input = super::cli::gen(dir.path(), 5000);
    let chain = "fillna_zeros,normalizer";
    let sink = format!("{}?table=weather", pg.url());
    let run = |source: &str, sink: &str, extra: &[&str]| {
        let buffer: &[&str] = match extra.contains(&"--buffer") {
            true => &[],
            false => &["--buffer", "1000"],
        };
        let r = bin()
            .args(["run", "--chain", chain])
            .args(buffer)
            .args(["--source", source, "--sink", sink])
            .args(extra)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        assert!(r.status.success(), "{err}");
        err
    };
    let file_in = format!("file:{}", input.display());
    // what the chain writes to a file; the generator repeats some rows exactly (the paper's
    // duplicates), which a table keyed by its rows' values holds once
    let reference = dir.path().join("reference.ndjson");
    run(&file_in, &format!("file:{}", reference.display()), &[]);
    let text = std::fs::read_to_string(&reference).expect("reference");
    let distinct = text.lines().collect::<std::collections::HashSet<_>>().len();
    assert!(
        distinct < 5000,
        "the input has exact duplicates to keep once"
    );
    let err = run(&file_in, &sink, &[]);
    assert_eq!(
        pg.psql("SELECT count(*) FROM weather"),
        distinct.to_string()
    );
    assert!(
        err.contains(&format!("{} row(s) already in the table", 5000 - distinct)),
        "the rows not written are counted: {err}"
    );
    assert_eq!(
        pg.psql("SELECT data_type FROM information_schema.columns WHERE table_name = 'weather' AND column_name = 'temp_out'"),
        "double precision"
    );
    // the same rows again (a redelivery): written once
    let err = run(&file_in, &sink, &[]);
    assert_eq!(
        pg.psql("SELECT count(*) FROM weather"),
        distinct.to_string(),
        "{err}"
    );
    assert!(err.contains("5000 row(s) already in the table"), "{err}");
    // dedupe=none keeps every row
    run(
        &file_in,
        &format!("{}?table=every_row&dedupe=none", pg.url()),
        &[],
    );
    assert_eq!(pg.psql("SELECT count(*) FROM every_row"), "5000");
    // the sink writes two messages at once, on two connections: the same rows in two messages
    // written together, one in the other's reverse order (each waits for, or deadlocks on, the
    // other's uncommitted rows), and a third with them again, are in the table once
    let input_text = std::fs::read_to_string(&input).expect("input");
    let mut seen_in = std::collections::HashSet::new();
    let rows: Vec<&str> = input_text.lines().filter(|l| seen_in.insert(*l)).collect();
    let crossed = dir.path().join("crossed.ndjson");
    let mut text_x: Vec<&str> = rows.clone();
    text_x.extend(rows.iter().rev());
    text_x.extend(rows.iter());
    std::fs::write(&crossed, text_x.join("\n") + "\n").expect("crossed");
    let b = rows.len().to_string();
    let err = run(
        &format!("file:{}", crossed.display()),
        &format!("{}?table=crossed", pg.url()),
        &["--buffer", &b],
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM crossed"),
        rows.len().to_string(),
        "{err}"
    );
    assert!(
        err.contains(&format!("{} row(s) already in the table", 2 * rows.len())),
        "{err}"
    );
    let mut seen = std::collections::HashSet::new();
    let want: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| seen.insert(*l))
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect();
    // back out, a time range, ordered by time, through a chain that changes nothing
    let back = dir.path().join("back.ndjson");
    let r = bin()
        .args(["run", "--chain", "abs", "--buffer", "700"])
        .arg("--source")
        .arg(format!(
            "{}?table=weather&time_column=ts&from=2019-01-01T00:10:00&to=2019-01-01T01:00:00",
            pg.url()
        ))
        .arg("--sink")
        .arg(format!("file:{}", back.display()))
        .output()
        .expect("run");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got: Vec<serde_json::Value> = std::fs::read_to_string(&back)
        .expect("back")
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect();
    let in_range: Vec<&serde_json::Value> = want
        .iter()
        .filter(|r| {
            let ts = r["ts"].as_str().unwrap_or("");
            ("2019-01-01T00:10:00"..="2019-01-01T00:59:59").contains(&ts)
        })
        .collect();
    assert_eq!(got.len(), in_range.len());
    assert!(!got.is_empty());
    for (g, w) in got.iter().zip(&in_range) {
        for (k, v) in w.as_object().expect("row") {
            let same = match (v, &g[k]) {
                (serde_json::Value::Number(a), serde_json::Value::Number(b)) => {
                    (a.as_f64().unwrap_or(0.0).abs() - b.as_f64().unwrap_or(0.0)).abs() < 1e-12
                }
                (a, b) => a == b,
            };
            assert!(same, "{k}: {v} != {}", g[k]);
        }
    }
    // the whole table replayed at 5,000 rows a second, as a file would be: the same rows as
    // read at once, no sooner than their pace allows
    let whole = |rate: Option<&str>, out: &std::path::Path| {
        let mut cmd = bin();
        cmd.args(["run", "--chain", "abs", "--buffer", "500"])
            .arg("--source")
            .arg(format!("{}?table=weather&time_column=ts", pg.url()))
            .arg("--sink")
            .arg(format!("file:{}", out.display()));
        if let Some(r) = rate {
            cmd.args(["--rate", r]);
        }
        let started = Instant::now();
        let r = cmd.output().expect("run");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        (
            std::fs::read_to_string(out).expect("output"),
            started.elapsed().as_secs_f64(),
        )
    };
    let (at_once, _) = whole(None, &dir.path().join("at_once.ndjson"));
    let (paced, took) = whole(Some("5000"), &dir.path().join("paced.ndjson"));
    assert_eq!(paced, at_once, "a paced replay gives the same rows");
    let n = at_once.lines().count();
    assert_eq!(n, distinct);
    assert!(
        took >= n as f64 / 5000.0 * 0.9,
        "{n} rows in {took:.2} s: not paced"
    );
    // a query (URL-encoded), its types cast: a count per station
    let q = bin()
        .args(["run", "--chain", "abs", "--buffer", "10", "--sink", "-", "--sink-format", "ndjson"])
        .arg("--source")
        .arg(format!(
            "{}?query=SELECT+station,+count(*)+AS+n,+avg(temp_out)::real+AS+t+FROM+weather+GROUP+BY+station",
            pg.url()
        ))
        .output()
        .expect("run");
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let text = String::from_utf8_lossy(&q.stdout);
    assert!(text.contains(&format!("\"n\":{distinct}")), "{text}");
    // a bad query is a clear error before any row
    let bad = bin()
        .args(["run", "--chain", "abs", "--buffer", "10", "--sink", "-"])
        .arg("--source")
        .arg(format!("{}?query=SELECT+nope+FROM+weather", pg.url()))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("nope"), "{err}");
}

/// A stop (Ctrl-C) while the server is still computing a slow query cancels the query on the
/// server: it is gone from pg_stat_activity at once, not when it would have finished.
#[test]
fn a_stop_cancels_the_query_on_the_server() {
    let pg = Postgres::start();
    let child = bin()
        .args([
            "run",
            "--chain",
            "abs",
            "--buffer",
            "10",
            "--sink",
            "-",
            "--sink-format",
            "ndjson",
        ])
        .arg("--source")
        .arg(format!(
            "{}?query=SELECT+1.0::float8+AS+x,+pg_sleep(30)::text+AS+s",
            pg.url()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let active = || {
        pg.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%pg_sleep%' AND state = 'active'",
        )
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while active() != "1" {
        assert!(Instant::now() < deadline, "the query never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    while active() != "0" {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the query still runs on the server after a stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let gone = stopped.elapsed();
    eprintln!("the query left the server {gone:?} after the stop");
    let out = child.wait_with_output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        gone < Duration::from_millis(1000),
        "cancelled after {gone:?}"
    );
}

/// At least once into PostgreSQL: a run reading MQTT at QoS 1 into a table is killed (`kill
/// -9`) mid-stream and started again; the broker sends again what was not acknowledged, and the
/// table holds every row exactly once (each message is committed before its ack; a row
/// committed and not acknowledged comes again and is not written twice).
#[test]
fn kill_9_mid_stream_then_restart_leaves_every_row_once_in_the_table() {
    use super::mqtt::{Broker, Kind};
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Broker::start(Kind::Mosquitto, dir.path());
    let url = format!("{}?qos=1&client_id=pg-sink-test", broker.url("plant"));
    const ROWS: usize = 6000;
    let input = dir.path().join("in.ndjson");
    let st = bin()
        .args([
            "gen",
            "--rows",
            &ROWS.to_string(),
            "--seed",
            "9",
            "--stations",
            "4",
        ])
        .arg("--out")
        .arg(&input)
        .status()
        .expect("gen");
    assert!(st.success());
    let distinct = std::fs::read_to_string(&input)
        .expect("input")
        .lines()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let sink = format!("{}?table=plant", pg.url());
    let start = || {
        bin()
            .args(["run", "--source", &url, "--chain", "fillna_zeros"])
            .args(["--buffer", "200", "--max-wait", "50ms", "--sink", &sink])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run")
    };
    let count = || -> usize {
        let out = std::process::Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-d",
                &pg.url(),
                "-c",
                "SELECT count(*) FROM plant",
            ])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let mut first = start();
    // subscribed (the session exists) before anything is published
    std::thread::sleep(Duration::from_millis(700));
    let mut publisher = bin()
        .args([
            "gen",
            "--rows",
            &ROWS.to_string(),
            "--seed",
            "9",
            "--stations",
            "4",
        ])
        .args([
            "--rate",
            "2000",
            "--simulated-time",
            "--mqtt",
            &url.replace("client_id=pg-sink-test", "client_id=pg-sink-pub"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gen --mqtt");
    let deadline = Instant::now() + Duration::from_secs(20);
    while count() < 1500 {
        assert!(Instant::now() < deadline, "no rows reached the table");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().expect("kill -9");
    let _ = first.wait();
    let at_kill = count();
    assert!(at_kill < distinct, "killed mid-stream: {at_kill}");
    let mut second = start();
    let deadline = Instant::now() + Duration::from_secs(40);
    while count() < distinct {
        assert!(
            Instant::now() < deadline,
            "{} of {distinct} rows in the table after the restart",
            count()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = publisher.wait();
    // settle: nothing more arrives
    std::thread::sleep(Duration::from_millis(500));
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(count(), distinct, "every row once");
}

/// `follow=1`: after the range, rows newer than the last one (by the time column) are read as
/// they are added; a stop ends the run with every row written once.
#[test]
fn follow_reads_the_rows_added_later() {
    let pg = Postgres::start();
    pg.psql(
        "CREATE TABLE feed AS SELECT '2026-01-01T00:00:00Z'::timestamptz + n * interval '1 second' AS ts, \
         n::float8 AS x FROM generate_series(0, 9) AS n",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out.ndjson");
    let child = bin()
        .args([
            "run",
            "--chain",
            "abs",
            "--buffer",
            "100",
            "--max-wait",
            "20ms",
        ])
        .arg("--source")
        .arg(format!("{}?table=feed&time_column=ts&follow=1", pg.url()))
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let lines = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while lines() < 10 {
        assert!(Instant::now() < deadline, "the range never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    pg.psql(
        "INSERT INTO feed SELECT '2026-01-01T00:00:00Z'::timestamptz + n * interval '1 second', n::float8 \
         FROM generate_series(10, 14) AS n",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while lines() < 15 {
        assert!(
            Instant::now() < deadline,
            "the rows added later never arrived: {}",
            lines()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let r = child.wait_with_output().expect("run");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text = std::fs::read_to_string(&out).expect("output");
    let xs: Vec<f64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("row")["x"]
                .as_f64()
                .expect("x")
        })
        .collect();
    assert_eq!(
        xs,
        (0..15).map(f64::from).collect::<Vec<_>>(),
        "each row once, in order"
    );
}

/// TLS to PostgreSQL (`sslmode=require`): rows go in and come back over TLS (the server's own
/// view, `pg_stat_ssl`, says so), verified against the CA given by `sslrootcert`; a server
/// whose certificate another CA signed is refused, and so is a server without TLS.
#[test]
fn tls_verified_against_the_ca_or_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    super::mqtt::make_certs(dir.path(), "streamprep test CA");
    let pg = Postgres::start_tls(
        &dir.path().join("server.pem"),
        &dir.path().join("server.key"),
    );
    let ca = dir.path().join("ca.pem");
    let input = super::cli::gen(dir.path(), 500);
    let run = |source: &str, sink: &str| {
        bin()
            .args(["run", "--chain", "abs", "--buffer", "100"])
            .args(["--source", source, "--sink", sink])
            .output()
            .expect("run")
    };
    let tls = format!("sslmode=require&sslrootcert={}", ca.display());
    // into a table over TLS, and back out over TLS
    let r = run(
        &format!("file:{}", input.display()),
        &format!("{}?table=secure&{tls}", pg.url()),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let n: usize = pg
        .psql("SELECT count(*) FROM secure")
        .parse()
        .expect("count");
    assert!(n > 400 && n <= 500, "{n} rows");
    let back = dir.path().join("back.ndjson");
    let r = bin()
        .args(["run", "--chain", "abs", "--buffer", "100"])
        .args(["--source", &format!("{}?query=SELECT%20ssl%20FROM%20pg_stat_ssl%20WHERE%20pid%20%3D%20pg_backend_pid()&{tls}", pg.url())])
        .args(["--sink", &format!("file:{}", back.display())])
        .output()
        .expect("run");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        std::fs::read_to_string(&back).expect("back").trim(),
        r#"{"ssl":true}"#,
        "the server saw a TLS connection"
    );
    // another CA: refused before any row
    let other = tempfile::tempdir().expect("tmp");
    super::mqtt::make_certs(other.path(), "another CA");
    let r = run(
        &format!("file:{}", input.display()),
        &format!(
            "{}?table=not_verified&sslmode=require&sslrootcert={}",
            pg.url(),
            other.path().join("ca.pem").display()
        ),
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{err}");
    assert!(
        err.contains("connecting to") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    // a server without TLS: refused, not read in the clear
    let plain = Postgres::start();
    let r = run(
        &format!("file:{}", input.display()),
        &format!("{}?table=t&{tls}", plain.url()),
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{err}");
    assert!(err.contains("connecting to"), "{err}");
    // sslrootcert alone, or a mode streamprep does not have: refused before anything runs
    for bad in [
        "sslrootcert=/nonexistent.pem&sslmode=require",
        "sslmode=prefer",
    ] {
        let r = run(
            &format!("file:{}", input.display()),
            &format!("{}?table=t&{bad}", pg.url()),
        );
        assert!(!r.status.success());
        assert!(String::from_utf8_lossy(&r.stderr).contains("ssl"), "{bad}");
    }
}
