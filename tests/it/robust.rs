//! Messy input never loses a good row (issue 13): each test is a class of bad input, at several
//! positions and through several sources, and checks that the summary's counts add up:
//! rows in = rows out + rows in dead letters + dropped, for chains that keep rows.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::cli::bin;

/// The counts of a run's summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub rows_in: u64,
    pub rows_out: u64,
    pub dead: u64,
    pub dropped: u64,
}

/// Read `rows in A, rows out B, messages M, dead letters D, [dropped X, ]` from stderr.
pub fn counts(stderr: &[u8]) -> Counts {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("streamprep: ")
                .filter(|l| l.starts_with("rows in "))
        })
        .unwrap_or_else(|| panic!("no summary line in:\n{text}"));
    let num = |key: &str| -> u64 {
        line.split(", ")
            .find_map(|part| part.strip_prefix(key))
            .map_or(0, |n| n.trim().parse().unwrap_or(0))
    };
    Counts {
        rows_in: num("rows in "),
        rows_out: num("rows out "),
        dead: num("dead letters "),
        dropped: num("dropped "),
    }
}

/// The summary adds up, and agrees with what reached the files.
pub fn adds_up(c: Counts, out_rows: usize, dead_rows: u64) {
    assert_eq!(
        c.rows_in,
        c.rows_out + c.dead + c.dropped,
        "rows in != rows out + dead letters + dropped: {c:?}"
    );
    assert_eq!(
        c.rows_out, out_rows as u64,
        "rows out vs the sink's rows: {c:?}"
    );
    assert_eq!(
        c.dead, dead_rows,
        "dead letters vs the dead-letter file: {c:?}"
    );
}

/// Dead letters of a file, as JSON objects, and how many rows they hold.
pub fn dead_letters(path: &Path) -> (Vec<Value>, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter json"))
        .collect();
    let rows = v.iter().map(|d| d["rows"].as_u64().unwrap_or(0)).sum();
    (v, rows)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Run `chain` over `input` (a file with extension `ext`) to `out.<sink_ext>` and `dead.ndjson`.
fn run(dir: &Path, input: &[u8], ext: &str, chain: &str, extra: &[&str], sink_ext: &str) -> Output {
    let src = dir.join(format!("in.{ext}"));
    std::fs::write(&src, input).expect("write input");
    bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", src.display()))
        .args(["--chain", chain, "--sink"])
        .arg(format!(
            "file:{}",
            dir.join(format!("out.{sink_ext}")).display()
        ))
        .arg("--dead-letter")
        .arg(format!("file:{}", dir.join("dead.ndjson").display()))
        .args(extra)
        .output()
        .expect("run streamprep")
}

fn good_row(i: usize) -> String {
    format!(
        "{{\"station\":\"s{}\",\"temp\":{}.5,\"hum\":{}}}",
        i % 3,
        i % 40,
        i % 97
    )
}

#[test]
fn an_infinity_is_refused_as_scikit_learn_refuses_it_and_costs_only_its_message() {
    // every scaler and transformer, the infinity at the first, a middle and the last row
    for step in [
        "standard_scaler",
        "robust_scaler",
        "min_max_scaler_0_1",
        "min_max_scaler_m1_1",
        "max_abs_scaler",
        "quantile_transformer_uniform",
        "quantile_transformer_normal",
    ] {
        for (pos, value) in [(0usize, "1e400"), (57, "-1e400"), (299, "1E999")] {
            let dir = tempfile::tempdir().expect("tmp");
            let mut input = String::new();
            for i in 0..300 {
                if i == pos {
                    input.push_str(&format!(
                        "{{\"station\":\"s0\",\"temp\":{value},\"hum\":1}}\n"
                    ));
                } else {
                    input.push_str(&good_row(i));
                    input.push('\n');
                }
            }
            let out = run(
                dir.path(),
                input.as_bytes(),
                "ndjson",
                step,
                &["--buffer", "100"],
                "ndjson",
            );
            assert!(
                out.status.success(),
                "{step}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let c = counts(&out.stderr);
            let (dead, dead_rows) = dead_letters(&dir.path().join("dead.ndjson"));
            adds_up(c, lines(&dir.path().join("out.ndjson")).len(), dead_rows);
            // the message holding it (100 rows) is refused whole, with its rows; the others pass
            assert_eq!(
                (c.rows_in, c.rows_out, c.dead),
                (300, 200, 100),
                "{step} at {pos}"
            );
            assert_eq!(dead.len(), 1, "{step}: {dead:?}");
            let reason = dead[0]["reason"].as_str().unwrap_or("");
            assert!(
                reason.contains("column 'temp'") && reason.contains("infinity"),
                "{step}: {reason}"
            );
            let data = dead[0]["data"].as_str().unwrap_or("");
            assert_eq!(
                data.lines().count(),
                100,
                "{step}: the message's rows travel with it"
            );
        }
    }
}

#[test]
fn odd_rows_and_cells_early_in_a_stream_cost_only_themselves() {
    // a row that is not an object, or a cell that is an array or object where numbers are
    let odd_rows = [
        "[1,2]",
        "42",
        "\"text\"",
        "null",
        "true",
        "[{\"temp\":1.5},7]",
    ];
    let odd_cells = [
        "{\"station\":\"s1\",\"temp\":[1,2],\"hum\":3}",
        "{\"station\":\"s1\",\"temp\":{\"v\":1},\"hum\":3}",
        "{\"station\":\"s1\",\"temp\":1.5,\"hum\":[]}",
    ];
    for chain in ["fillna_zeros,normalizer", "abs"] {
        for positions in [
            &[0usize][..],
            &[0, 1, 2],
            &[1, 500, 999],
            &[998, 999, 1000, 4999],
        ] {
            let dir = tempfile::tempdir().expect("tmp");
            let mut input = String::new();
            let mut bad = 0;
            let mut good = 0;
            for i in 0..5000 {
                if let Some(k) = positions.iter().position(|&p| p == i) {
                    let all: Vec<&str> = odd_rows.iter().chain(&odd_cells).copied().collect();
                    input.push_str(all[(k * 5 + i) % all.len()]);
                    bad += 1;
                } else {
                    input.push_str(&good_row(i));
                    good += 1;
                }
                input.push('\n');
            }
            let out = run(
                dir.path(),
                input.as_bytes(),
                "ndjson",
                chain,
                &["--buffer", "250"],
                "ndjson",
            );
            assert!(
                out.status.success(),
                "{chain} {positions:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let c = counts(&out.stderr);
            let (_, dead_rows) = dead_letters(&dir.path().join("dead.ndjson"));
            let out_rows = lines(&dir.path().join("out.ndjson"));
            adds_up(c, out_rows.len(), dead_rows);
            // "[{..},7]" holds a good row before the bad element: the unit is refused whole
            assert_eq!(c.rows_out, good, "{chain} {positions:?}: {c:?}");
            assert_eq!(c.dead, bad, "{chain} {positions:?}: {c:?}");
            // the numeric columns stayed numeric
            let first: Value = serde_json::from_str(&out_rows[0]).expect("json");
            assert!(
                first["temp"].is_number() && first["hum"].is_number(),
                "{first}"
            );
        }
    }
}

#[test]
fn a_column_that_appears_late_is_never_dropped_silently() {
    // "late" appears after the inference sample (row 1500), "nulls" is null in every early row
    let mut input = String::new();
    for i in 0..3000 {
        let late = if i >= 1500 {
            format!(",\"late\":{i}")
        } else {
            String::new()
        };
        let nulls = if i >= 2000 {
            format!("{}.25", i % 7)
        } else {
            "null".into()
        };
        input.push_str(&format!(
            "{{\"station\":\"s{}\",\"temp\":{}.5,\"nulls\":{nulls}{late}}}\n",
            i % 3,
            i % 40
        ));
    }
    for method in [
        &["--method", "inline"][..],
        &["--method", "pool", "--workers", "3"],
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut args = vec!["--buffer", "100"];
        args.extend_from_slice(method);
        // NDJSON follows: every late value is there, and numbers stay numbers
        let out = run(
            dir.path(),
            input.as_bytes(),
            "ndjson",
            "max_abs_scaler",
            &args,
            "ndjson",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<Value> = lines(&dir.path().join("out.ndjson"))
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(rows.len(), 3000);
        assert!(rows[..1500].iter().all(|r| r.get("late").is_none()));
        // scaled per message by max_abs_scaler: a number in [0, 1], not the text or the input
        assert!(rows[1500..]
            .iter()
            .all(|r| r["late"].as_f64().is_some_and(|x| x > 0.0 && x <= 1.0)));
        assert!(rows[2000..].iter().all(|r| r["nulls"]
            .as_f64()
            .is_some_and(|x| (0.0..=1.0).contains(&x))));
        assert!(rows[..2000].iter().all(|r| r["nulls"].is_null()));
        adds_up(counts(&out.stderr), 3000, 0);

        // CSV cannot add a column once its header is written: said once, and in the summary
        let out = run(dir.path(), input.as_bytes(), "ndjson", "abs", &args, "csv");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches("warning: column 'late'").count(), 1, "{err}");
        assert!(
            err.contains("columns the sink could not take: late"),
            "{err}"
        );
        let csv = lines(&dir.path().join("out.csv"));
        assert_eq!(csv[0], "station,temp,nulls");
        assert_eq!(csv.len(), 3001);
        assert!(
            csv.iter().all(|l| l.split(',').count() == 3),
            "aligned with the header"
        );
    }
}

#[test]
fn a_partial_schema_types_its_columns_and_keeps_the_others() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut input = String::new();
    for i in 0..50 {
        input.push_str(&good_row(i));
        input.push('\n');
    }
    let src = dir.path().join("in.ndjson");
    std::fs::write(&src, &input).expect("write");
    let project = dir.path().join("p.toml");
    std::fs::write(
        &project,
        format!(
            "source = \"file:{}\"\nbuffer = 10\nchain = [\"abs\"]\nsink = \"file:{}\"\n[schema]\nhum = \"float64\"\n",
            src.display(),
            dir.path().join("out.ndjson").display()
        ),
    )
    .expect("project");
    let out = bin().arg("run").arg(&project).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = lines(&dir.path().join("out.ndjson"));
    assert_eq!(rows.len(), 50);
    let r: Value = serde_json::from_str(&rows[3]).expect("json");
    assert_eq!(r["station"], "s0");
    assert_eq!(r["temp"], 3.5);
    // declared float64: written as a float
    assert!(rows[3].contains("\"hum\":3.0"), "{}", rows[3]);
}

#[test]
fn a_bad_endpoint_or_setting_is_refused_before_any_file_is_touched() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"a\":1}\n").expect("input");
    let out = dir.path().join("out.ndjson");
    let dead = dir.path().join("dead.ndjson");
    let keep = b"precious rows\n";
    let f = |p: &Path| format!("file:{}", p.display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--dead-letter".into(), "file:/proc/nope/d.ndjson".into()],
            "/proc/nope/d.ndjson",
        ),
        (
            vec!["--dead-letter".into(), f(dir.path())],
            "is a directory",
        ),
        (vec!["--dead-letter".into(), f(&out)], "named twice"),
        (vec!["--dead-letter".into(), f(&input)], "named twice"),
        (
            vec![
                "--workers".into(),
                "100000".into(),
                "--method".into(),
                "pool".into(),
            ],
            "limit of 1024",
        ),
        (
            vec![
                "--workers".into(),
                "18446744073709551615".into(),
                "--method".into(),
                "pool".into(),
            ],
            "limit of 1024",
        ),
        (
            vec!["--buffer".into(), "1000000000".into()],
            "limit of 10000000",
        ),
        (
            vec!["--chain".into(), vec!["abs"; 1_001].join(",")],
            "at most 1000",
        ),
    ];
    for (args, want) in cases {
        std::fs::write(&out, keep).expect("out");
        std::fs::write(&dead, keep).expect("dead");
        let mut cmd = bin();
        cmd.args(["run", "--source", &f(&input), "--sink", &f(&out)]);
        if !args.iter().any(|a| a == "--chain") {
            cmd.args(["--chain", "abs"]);
        }
        if !args.iter().any(|a| a == "--buffer") {
            cmd.args(["--buffer", "10"]);
        }
        if !args.iter().any(|a| a == "--dead-letter") {
            cmd.args(["--dead-letter", &f(&dead)]);
        }
        let o = cmd.args(&args).output().expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(
            std::fs::read(&out).expect("out"),
            keep,
            "{args:?}: the sink was touched"
        );
        assert_eq!(std::fs::read(&dead).expect("dead"), keep, "{args:?}");
        assert_eq!(
            std::fs::read(&input).expect("in"),
            b"{\"a\":1}\n",
            "{args:?}"
        );
    }
    // a device may be named twice
    let o = bin()
        .args([
            "run",
            "--source",
            &f(&input),
            "--chain",
            "abs",
            "--buffer",
            "10",
        ])
        .args(["--sink", "file:/dev/null", "--sink-format", "ndjson"])
        .args(["--dead-letter", "file:/dev/null"])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn sigterm_stops_like_ctrl_c_and_kill_9_tears_no_row() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = crate::cli::gen(dir.path(), 60_000);
    let out = dir.path().join("out.ndjson");
    let spawn = |rate: &str| {
        bin()
            .args(["run", "--source", &format!("file:{}", input.display())])
            .args(["--rate", rate, "--chain", "fillna_zeros,normalizer"])
            .args(["--buffer", "50", "--max-wait", "10ms", "--sink"])
            .arg(format!("file:{}", out.display()))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let signal = |pid: u32, sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    };
    // SIGTERM: a summary, exit 0, and what the summary says is in the file
    let child = spawn("20000");
    std::thread::sleep(std::time::Duration::from_millis(700));
    signal(child.id(), "-TERM");
    let o = child.wait_with_output().expect("wait");
    assert!(
        o.status.success(),
        "{:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let c = counts(&o.stderr);
    assert!(c.rows_in > 0 && c.rows_in < 60_000, "{c:?}");
    adds_up(c, lines(&out).len(), 0);
    // kill -9 at several moments: every line in the file is a whole row
    for ms in [60u64, 150, 300, 450] {
        let child = spawn("100000");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        signal(child.id(), "-KILL");
        let _ = child.wait_with_output();
        let text = std::fs::read(&out).expect("out");
        assert!(
            text.is_empty() || text.ends_with(b"\n"),
            "a torn last row after {ms} ms"
        );
        for l in String::from_utf8_lossy(&text).lines() {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("torn row {l:?}: {e}"));
        }
    }
}

#[test]
fn an_oversized_row_is_skipped_into_a_dead_letter_from_a_file_and_from_stdin() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut input = Vec::new();
    let mut good = 0u64;
    for i in 0..3000 {
        match i {
            // a long row in the middle, one right after another, and the last one unended
            1000 | 1001 => input.extend_from_slice(
                format!("{{\"a\":\"{}\"}}\n", "y".repeat(5_000_000 + i)).as_bytes(),
            ),
            _ => {
                input.extend_from_slice(good_row(i).as_bytes());
                input.push(b'\n');
                good += 1;
            }
        }
    }
    input.extend_from_slice(b"{\"a\":\"");
    input.extend(std::iter::repeat_n(b'z', 300_000));
    for via_stdin in [false, true] {
        let out = if via_stdin {
            let mut child = bin()
                .args(["run", "--source", "-", "--chain", "abs", "--buffer", "100"])
                .args(["--max-row", "100000", "--sink"])
                .arg(format!("file:{}", dir.path().join("out.ndjson").display()))
                .arg("--dead-letter")
                .arg(format!("file:{}", dir.path().join("dead.ndjson").display()))
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut stdin = child.stdin.take().expect("stdin");
            let data = input.clone();
            let feeder = std::thread::spawn(move || {
                // in short pieces, as a pipe delivers them
                for piece in data.chunks(7_777) {
                    std::io::Write::write_all(&mut stdin, piece).expect("feed");
                }
            });
            feeder.join().expect("feeder");
            child.wait_with_output().expect("wait")
        } else {
            run(
                dir.path(),
                &input,
                "ndjson",
                "abs",
                &["--buffer", "100", "--max-row", "100000"],
                "ndjson",
            )
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (dead, dead_rows) = dead_letters(&dir.path().join("dead.ndjson"));
        adds_up(
            counts(&out.stderr),
            lines(&dir.path().join("out.ndjson")).len(),
            dead_rows,
        );
        assert_eq!(dead.len(), 3, "stdin {via_stdin}: {dead:?}");
        assert_eq!(counts(&out.stderr).rows_out, good);
        for (d, len) in dead.iter().zip([5_001_008usize, 5_001_009, 300_006]) {
            let reason = d["reason"].as_str().unwrap_or("");
            assert!(
                reason.contains(&format!("row of {len} bytes"))
                    && reason.contains("maximum of 100000"),
                "{reason}"
            );
            assert!(
                d["data"].as_str().is_some_and(|s| s.len() == 256),
                "an excerpt: {d}"
            );
        }
    }
}

#[test]
fn a_compressed_row_that_inflates_past_the_limit_is_refused_alone() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tmp");
    let pack = |text: &[u8]| {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(text).expect("zlib");
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            z.finish().expect("zlib"),
        )
    };
    let bomb = vec![b' '; 40 << 20]; // 40 MiB of spaces: about 40 KB compressed
    let mut input = String::new();
    for i in 0..50 {
        input.push_str(&pack(format!("{{\"a\":{i}}}").as_bytes()));
        input.push('\n');
        if i == 25 {
            input.push_str(&pack(&bomb));
            input.push('\n');
        }
    }
    let src = dir.path().join("in.ndjson");
    std::fs::write(&src, input).expect("write");
    let project = dir.path().join("p.toml");
    std::fs::write(
        &project,
        format!(
            "source = \"file:{}\"\nbuffer = 10\nchain = [\"abs\"]\ncompression = \"zlib-base64\"\nsink = \"file:{}\"\ndead_letter = \"file:{}\"\n[schema]\na = \"int64\"\n",
            src.display(),
            dir.path().join("out.ndjson").display(),
            dir.path().join("dead.ndjson").display()
        ),
    )
    .expect("project");
    let out = bin().arg("run").arg(&project).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (dead, dead_rows) = dead_letters(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("inflates to more than"));
    adds_up(counts(&out.stderr), 50, dead_rows);
}

#[test]
fn the_smaller_things_users_hit() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |name: &str| dir.path().join(name);
    // project values of the wrong shape get a message that says the right shape
    let input = p("in.ndjson");
    std::fs::write(&input, "{\"a\":1}\n").expect("in");
    for (line, want) in [
        ("chain = 42", "give a list of step names"),
        ("chain = [1, 2]", "give a list of step names"),
        ("buffer = -5", "give a number of rows"),
        ("buffer = \"lots\"", "give a number of rows"),
    ] {
        let project = p("bad.toml");
        let chain = if line.starts_with("chain") {
            ""
        } else {
            "chain = [\"abs\"]\n"
        };
        let buffer = if line.starts_with("buffer") {
            ""
        } else {
            "buffer = 5\n"
        };
        std::fs::write(
            &project,
            format!(
                "source = \"file:{}\"\n{chain}{buffer}{line}\n",
                input.display()
            ),
        )
        .expect("project");
        let o = bin().arg("run").arg(&project).output().expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{line}: {err}");
        assert!(err.contains(want), "{line}: {err}");
        assert!(!err.contains("untagged"), "{line}: {err}");
    }
    // buffer = "100" is a number
    let project = p("ok.toml");
    std::fs::write(
        &project,
        format!(
            "source = \"file:{}\"\nchain = \"abs\"\nbuffer = \"100\"\nsink = \"file:{}\"\n",
            input.display(),
            p("ok.ndjson").display()
        ),
    )
    .expect("project");
    let o = bin().arg("run").arg(&project).output().expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // a bad topic filter is refused up front with the rule it breaks
    for topic in ["a/b#", "a/#/c", "a+/b"] {
        let o = bin()
            .args([
                "run",
                "--source",
                &format!("mqtt://127.0.0.1:1/{topic}"),
                "--chain",
                "abs",
            ])
            .args(["--buffer", "5", "--sink", "-"])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{topic}: {err}");
        assert!(err.contains("must be a whole level"), "{topic}: {err}");
    }

    // CSV: pandas' missing markers are missing, repeated header names get pandas' suffixes,
    // a bad row's reason says where it is, a quoted newline is one row, `;` as the separator
    let csv = "t;v;v;w\n1;NA;2;x\n2;2.5;3;\"multi\nline\"\n3;abc;4;y\n4;;5;NULL\n5;1.5;#N/A;z\n6;7;8;n/a\n";
    let out = run(
        dir.path(),
        csv.as_bytes(),
        "csv",
        "fillna_zeros",
        &["--buffer", "10", "--csv-sep", ";"],
        "ndjson",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = lines(&p("out.ndjson"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let (dead, dead_rows) = dead_letters(&p("dead.ndjson"));
    adds_up(counts(&out.stderr), rows.len(), dead_rows);
    assert_eq!(rows.len(), 5, "{rows:?} {dead:?}");
    assert_eq!(rows[0]["v"], 0.0, "NA is missing, then filled: {}", rows[0]);
    assert_eq!(rows[0]["v.1"], 2.0, "{}", rows[0]);
    assert_eq!(rows[1]["w"], "multi\nline");
    assert!(rows[2]["w"].is_null(), "NULL is missing: {}", rows[2]);
    assert_eq!(rows[3]["v.1"], 0.0, "#N/A is missing: {}", rows[3]);
    assert!(rows[4]["w"].is_null(), "n/a is missing: {}", rows[4]);
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("CSV row 2 of message 0") && !reason.contains("line 1"),
        "{reason}"
    );

    // dead letters keep bytes that are not UTF-8, exactly, for replay
    let mut bad = b"{\"a\":1}\n{\"a\":\"".to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(b"\"}\n{\"a\":2}\n");
    let out = run(
        dir.path(),
        &bad,
        "ndjson",
        "abs",
        &["--buffer", "10"],
        "ndjson",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (dead, _) = dead_letters(&p("dead.ndjson"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].get("data").is_none(), "{}", dead[0]);
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        dead[0]["data_base64"].as_str().expect("data_base64"),
    )
    .expect("base64");
    assert_eq!(raw, &bad[8..bad.len() - 9], "the row's bytes, exactly");
}

/// `drop_oldest` on a saturated pipeline: rows are shed, counted as dropped, and the summary
/// still adds up against what the files hold (shed rows came in; they are not lost silently).
#[test]
fn rows_shed_by_drop_oldest_are_counted_and_the_summary_adds_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out.ndjson");
    let dead = dir.path().join("dead.ndjson");
    // 50,000 rows/s into one worker running a heavy chain on 10-row messages
    let o = bin()
        .args(["run", "--source", "generator:davis?rate=50000&rows=20000"])
        .args([
            "--chain",
            "quantile_transformer_normal,robust_scaler,quantile_transformer_uniform",
        ])
        .args(["--buffer", "10", "--method", "pool", "--workers", "1"])
        .args(["--backpressure", "drop_oldest"])
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .arg("--dead-letter")
        .arg(format!("file:{}", dead.display()))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let c = counts(&o.stderr);
    assert!(c.dropped > 0, "a saturated run sheds rows: {err}");
    assert_eq!(c.rows_in, 20_000, "every generated row came in: {err}");
    let (_, dead_rows) = dead_letters(&dead);
    adds_up(c, lines(&out).len(), dead_rows);
}
