//! Every step against the golden outputs of the real pandas / scikit-learn
//! (`tests/oracle/make_golden.py`, pinned versions). Tolerance: 1e-9 relative and absolute,
//! 1e-7 for `quantile_transformer_normal`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use serde_json::Value;
use streamprep_core::{Message, Payload, RowFormat, StepError};
use streamprep_ops::prepare::{Compression, Prepare, PrepareConfig};
use streamprep_ops::registry::{build_chain, StepKind, STEPS};
use streamprep_testkit::{batch_to_json, close};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

fn schema_of(dir: &Path) -> Arc<Schema> {
    let text = std::fs::read_to_string(dir.join("schema.json")).expect("schema.json");
    let map: serde_json::Map<String, Value> = serde_json::from_str(&text).expect("schema json");
    let fields: Vec<Field> = map
        .iter()
        .map(|(name, t)| {
            let dt = match t.as_str() {
                Some("float64") => DataType::Float64,
                Some("int64") => DataType::Int64,
                _ => DataType::Utf8,
            };
            Field::new(name, dt, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn input_message(dir: &Path) -> Message {
    let text = std::fs::read(dir.join("input.ndjson")).expect("input");
    let mut ends = Vec::new();
    for (i, b) in text.iter().enumerate() {
        if *b == b'\n' {
            ends.push(i + 1);
        }
    }
    Message::new(
        0,
        Payload::Raw {
            format: RowFormat::Ndjson,
            bytes: text,
            ends,
        },
    )
}

fn rows(text: &str) -> Vec<serde_json::Map<String, Value>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("row json"))
        .collect()
}

fn compare(
    case: &str,
    step: &str,
    got: &[serde_json::Map<String, Value>],
    want: &[serde_json::Map<String, Value>],
) -> Vec<String> {
    let tol = if step.ends_with("normal") { 1e-7 } else { 1e-9 };
    let mut errs = Vec::new();
    if got.len() != want.len() {
        errs.push(format!(
            "{case}/{step}: {} rows, pandas/sklearn gave {}",
            got.len(),
            want.len()
        ));
        return errs;
    }
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        let gk: Vec<_> = g.keys().collect();
        let wk: Vec<_> = w.keys().collect();
        if gk != wk {
            errs.push(format!("{case}/{step} row {r}: columns {gk:?} != {wk:?}"));
            continue;
        }
        for (k, wv) in w {
            let gv = &g[k];
            let ok = match (gv, wv) {
                (Value::Null, Value::Null) => true,
                (Value::Number(a), Value::Number(b)) => close(
                    a.as_f64().unwrap_or(f64::NAN),
                    b.as_f64().unwrap_or(f64::NAN),
                    tol,
                    tol,
                ),
                (a, b) => a == b,
            };
            if !ok {
                errs.push(format!(
                    "{case}/{step} row {r} column {k}: got {gv}, want {wv}"
                ));
            }
        }
    }
    errs
}

/// The option cases: file label -> chain entry (`tests/data/golden/OPTIONS.json`).
fn with_options() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(golden_dir().join("OPTIONS.json"))
        .expect("OPTIONS.json: run tests/oracle/make_golden.py (the test script does)");
    let map: serde_json::Map<String, Value> = serde_json::from_str(&text).expect("json");
    assert!(map.len() >= 5, "the option cases");
    map.into_iter()
        .map(|(k, v)| (k, v.as_str().expect("an entry").to_string()))
        .collect()
}

#[test]
fn every_step_matches_pandas_and_scikit_learn() {
    let root = golden_dir();
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}. Run tests/oracle/make_golden.py (the test script does)",
                root.display()
            )
        })
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the golden cases, found {}",
        cases.len()
    );
    let mut errors = Vec::new();
    let mut checked = 0;
    for dir in &cases {
        let case = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let mut prepare = Prepare::new(PrepareConfig {
            format: RowFormat::Ndjson,
            compression: Compression::None,
            csv_sep: b',',
            schema: schema_of(dir),
        });
        let prepared = prepare
            .apply(&input_message(dir))
            .expect("golden input decodes");
        assert!(
            prepared.dead.is_empty(),
            "{case}: golden input rows refused: {:?}",
            prepared.dead
        );
        // every step by its name (defaults for those with options), then the option cases
        let mut entries: Vec<(String, String)> = STEPS
            .iter()
            .filter(|i| matches!(i.kind, StepKind::Transform(_) | StepKind::WithOptions(_)))
            .map(|i| (i.name.to_string(), i.name.to_string()))
            .collect();
        entries.extend(with_options());
        for (label, entry) in &entries {
            if !dir.join(format!("{label}.ndjson")).exists()
                && !dir.join(format!("{label}.error")).exists()
                && !with_options().iter().any(|(l, _)| l == label)
            {
                // a step with options is checked through its labelled cases
                continue;
            }
            let mut step = build_chain(&[entry]).expect("registered").remove(0);
            let result = step.apply(prepared.batch.clone());
            let err_file = dir.join(format!("{label}.error"));
            if err_file.exists() {
                match result {
                    Err(StepError::BadInput { .. }) => checked += 1,
                    other => errors.push(format!(
                        "{case}/{label}: scikit-learn refused ({}), we gave {other:?}",
                        std::fs::read_to_string(&err_file)
                            .unwrap_or_default()
                            .trim()
                    )),
                }
                continue;
            }
            let want = std::fs::read_to_string(dir.join(format!("{label}.ndjson")))
                .unwrap_or_else(|e| panic!("{case}/{label}: {e}"));
            match result {
                Ok(batch) => {
                    let got_json = batch_to_json(&batch);
                    let got: Vec<serde_json::Map<String, Value>> =
                        serde_json::from_str(&got_json).expect("our json");
                    errors.extend(compare(&case, label, &got, &rows(&want)));
                    checked += 1;
                }
                Err(e) => errors.push(format!(
                    "{case}/{label}: we refused ({e}), pandas/sklearn did not"
                )),
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} mismatches (of {checked} checks):\n{}",
        errors.len(),
        errors
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        checked >= 150,
        "only {checked} step/case pairs were checked"
    );
}

/// `batch` cut into messages of `b` rows through one instance of the step `entry`, in order:
/// the output rows.
fn through(
    entry: &str,
    batch: &arrow_array::RecordBatch,
    b: usize,
) -> Vec<serde_json::Map<String, Value>> {
    let n = batch.num_rows();
    let mut step = build_chain(&[entry]).expect("registered").remove(0);
    let mut got = Vec::with_capacity(n);
    for start in (0..n).step_by(b) {
        let out = step
            .apply(batch.slice(start, b.min(n - start)))
            .unwrap_or_else(|e| panic!("{entry} at b={b}: {e}"));
        let json: Vec<serde_json::Map<String, Value>> =
            serde_json::from_str(&batch_to_json(&out)).expect("our json");
        got.extend(json);
    }
    got
}

/// The windows across messages (`rolling`, `ewm_mean`, `diff`, per key) against pandas over
/// the whole stream (`tests/data/golden_stream`): the same rows cut into messages of 1, 7, 100
/// and 1000 rows give pandas' values, one step instance carrying the state from message to
/// message.
#[test]
fn windows_across_messages_match_pandas_over_the_whole_stream_at_every_buffer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let cases: std::collections::BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("CASES.json"))
            .expect("CASES.json: run tests/oracle/make_golden.py (the test script does)"),
    )
    .expect("cases");
    assert!(cases.len() >= 10, "{cases:?}");
    let mut prepare = Prepare::new(PrepareConfig {
        format: RowFormat::Ndjson,
        compression: Compression::None,
        csv_sep: b',',
        schema: schema_of(&dir),
    });
    let batch = prepare
        .apply(&input_message(&dir))
        .expect("the stream decodes")
        .batch;
    let n = batch.num_rows();
    assert!(n >= 1000);
    let mut errors = Vec::new();
    let mut checked = 0;
    for (label, entry) in &cases {
        let want =
            rows(&std::fs::read_to_string(dir.join(format!("{label}.ndjson"))).expect("golden"));
        for b in [1, 7, 100, 1000] {
            let got = through(entry, &batch, b);
            errors.extend(compare(&format!("b={b}"), label, &got, &want));
            checked += 1;
        }
    }
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors[..errors.len().min(20)].join("\n")
    );
    assert_eq!(checked, cases.len() * 4);
}

/// The running-fit scalers against scikit-learn's `partial_fit` then `transform`, per key and
/// message, at each buffer (their output depends on where messages end, as the oracle's does).
#[test]
fn running_scalers_match_scikit_learn_partial_fit_per_key_at_every_buffer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let cases: std::collections::BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("RUNNING.json"))
            .expect("RUNNING.json: run tests/oracle/make_golden.py (the test script does)"),
    )
    .expect("cases");
    assert!(cases.len() >= 5, "{cases:?}");
    let mut prepare = Prepare::new(PrepareConfig {
        format: RowFormat::Ndjson,
        compression: Compression::None,
        csv_sep: b',',
        schema: schema_of(&dir),
    });
    let batch = prepare.apply(&input_message(&dir)).expect("decodes").batch;
    let mut errors = Vec::new();
    for (label, entry) in &cases {
        for b in [1, 7, 100, 1000] {
            let want = rows(
                &std::fs::read_to_string(dir.join(format!("running__{label}__b{b}.ndjson")))
                    .expect("golden"),
            );
            let got = through(entry, &batch, b);
            errors.extend(compare(&format!("b={b}"), label, &got, &want));
        }
    }
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors[..errors.len().min(20)].join("\n")
    );
}

/// The same through `run`: `--key k` gives the window its key, messages of 7 rows, inline.
#[test]
fn run_with_a_key_gives_pandas_windows_per_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out.ndjson");
    let run = super::cli::bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", dir.join("input.ndjson").display()))
        .args([
            "--key",
            "k",
            "--buffer",
            "7",
            "--chain",
            r#"rolling{"window": 3, "agg": "mean"}"#,
        ])
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .output()
        .expect("run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // messages per key: each key's rows in order, keys as their messages close; pandas'
    // values row for row once put back in input order (each row's "s" is its number)
    let mut got = rows(&std::fs::read_to_string(&out).expect("output"));
    got.sort_by_key(|r| {
        r["s"]
            .as_str()
            .and_then(|s| s[1..].parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    });
    let want = rows(&std::fs::read_to_string(dir.join("rolling__3_mean.ndjson")).expect("golden"));
    let errors = compare("run --key k", "rolling", &got, &want);
    assert!(
        errors.is_empty(),
        "{}",
        errors[..errors.len().min(10)].join("\n")
    );
    // without a key, a pool of 2 would split the one stream's state: refused before anything runs
    let run = super::cli::bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", dir.join("input.ndjson").display()))
        .args(["--buffer", "7", "--method", "pool", "--workers", "2"])
        .args(["--chain", "diff", "--sink", "-"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("diff keep state") && err.contains("Give the project a key"),
        "{err}"
    );
}

/// A keyed run through `run --key k` (messages gathered per key, closed when full, beyond
/// `--max-keys` waiting keys, and at the end), inline and on pools of 2 and 4 workers, against
/// the oracle's simulation of the same messages through pandas / scikit-learn (keys evicted
/// beyond max_keys start afresh when they come back, in both): the same rows, in the same order.
/// The cases with `max_keys` run inline only: on the pool each worker's steps hold up to
/// max_keys keys of their own, so fewer keys are dropped there (README says so).
#[test]
fn keyed_runs_match_the_oracle_inline_and_on_the_pool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let cases: std::collections::BTreeMap<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("KEYED.json"))
            .expect("KEYED.json: run tests/oracle/make_golden.py (the test script does)"),
    )
    .expect("cases");
    assert!(cases.len() >= 10, "{cases:?}");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut errors = Vec::new();
    let mut evictions = 0;
    for (label, case) in &cases {
        let want = rows(
            &std::fs::read_to_string(dir.join(format!("keyed__{label}.ndjson"))).expect("golden"),
        );
        let methods: &[&[&str]] = if case["max_keys"].is_null() {
            &[
                &["--method", "inline"],
                &["--method", "pool", "--workers", "2"],
                &["--method", "pool", "--workers", "4"],
            ]
        } else {
            &[&["--method", "inline"]]
        };
        for method in methods {
            let out = tmp
                .path()
                .join(format!("{label}-{}.ndjson", method.join("-")));
            let mut cmd = super::cli::bin();
            cmd.args(["run", "--source"])
                .arg(format!("file:{}", dir.join("input.ndjson").display()))
                .args([
                    "--key",
                    "k",
                    "--chain",
                    case["chain"].as_str().expect("chain"),
                ])
                .args(["--buffer", &case["buffer"].to_string()])
                .args(*method)
                .arg("--sink")
                .arg(format!("file:{}", out.display()));
            if let Some(m) = case["max_keys"].as_u64() {
                cmd.args(["--max-keys", &m.to_string()]);
            }
            let r = cmd.output().expect("run");
            let err = String::from_utf8_lossy(&r.stderr);
            assert!(r.status.success(), "{label}: {err}");
            if err.contains("dropped beyond max_keys") && !err.contains(" 0 key(s) dropped beyond")
            {
                evictions += 1;
            }
            let got = rows(&std::fs::read_to_string(&out).expect("output"));
            errors.extend(compare(&method.join(" "), label, &got, &want));
        }
    }
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors[..errors.len().min(20)].join("\n")
    );
    assert!(
        evictions > 0,
        "the cases with max_keys evict keys that come back"
    );
}

/// With a key, the pool routes each key to one worker: on 2 and 4 workers every window and
/// running scaler gives, per key, exactly what inline gives (and pandas over the stream).
#[test]
fn a_keyed_pool_gives_each_key_what_inline_gives() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let tmp = tempfile::tempdir().expect("tmp");
    let chain = r#"fillna_zeros,rolling{"window": 3, "agg": "std"},ewm_mean{"span": 4},diff,standard_scaler{"fit": "running"}"#;
    let run = |method: &[&str], out: &str| {
        let out = tmp.path().join(out);
        let r = super::cli::bin()
            .args(["run", "--source"])
            .arg(format!("file:{}", dir.join("input.ndjson").display()))
            .args(["--key", "k", "--buffer", "7", "--chain", chain])
            .args(method)
            .arg("--sink")
            .arg(format!("file:{}", out.display()))
            .output()
            .expect("run");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        rows(&std::fs::read_to_string(&out).expect("output"))
    };
    let by_key = |rows: Vec<serde_json::Map<String, Value>>| {
        let mut m: std::collections::BTreeMap<String, Vec<serde_json::Map<String, Value>>> =
            Default::default();
        for r in rows {
            m.entry(r["k"].to_string()).or_default().push(r);
        }
        m
    };
    let inline = run(&[], "inline.ndjson");
    let n = inline.len();
    let inline = by_key(inline);
    for workers in ["2", "4"] {
        let pooled = run(
            &["--method", "pool", "--workers", workers],
            &format!("pool{workers}.ndjson"),
        );
        assert_eq!(pooled.len(), n, "every row, {workers} workers");
        let pooled = by_key(pooled);
        assert_eq!(pooled.len(), inline.len());
        for (k, want) in &inline {
            let got = &pooled[k];
            let errors = compare(&format!("{workers} workers"), k, got, want);
            assert!(
                errors.is_empty(),
                "{}",
                errors[..errors.len().min(5)].join("\n")
            );
        }
    }
    // ordered = "global": messages cut from the stream; inline keeps the input's order, and
    // the pool gives exactly what inline gives, in the same order (each message's parts put
    // back together: this chain keeps every row)
    let global = run(&["--ordered", "global"], "global.ndjson");
    let numbers: Vec<usize> = global
        .iter()
        .filter_map(|r| r["s"].as_str().and_then(|s| s[1..].parse().ok()))
        .collect();
    assert_eq!(numbers, (0..n).collect::<Vec<_>>(), "the input's order");
    for workers in ["2", "4"] {
        let pooled = run(
            &[
                "--ordered",
                "global",
                "--method",
                "pool",
                "--workers",
                workers,
            ],
            &format!("global{workers}.ndjson"),
        );
        let errors = compare(
            &format!("global, {workers} workers"),
            "chain",
            &pooled,
            &global,
        );
        assert!(
            errors.is_empty(),
            "{}",
            errors[..errors.len().min(5)].join("\n")
        );
    }
}

/// The contract's bounds: a million rows with a million distinct keys through a step that keeps
/// state, `--max-keys 10000`: memory stays bounded (peak resident under 200 MB) and the count of
/// keys dropped is exact.
#[test]
fn a_million_distinct_keys_stay_within_max_keys() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("keys.ndjson");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("input"));
        for i in 0..1_000_000u64 {
            writeln!(f, "{{\"id\": \"device-{i}\", \"v\": {}}}", i % 97).expect("row");
        }
    }
    let mut child = super::cli::bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", input.display()))
        .args([
            "--key",
            "id",
            "--max-keys",
            "10000",
            "--buffer",
            "1000",
            "--chain",
            "diff",
        ])
        .arg("--sink")
        .arg(format!("file:{}", tmp.path().join("out.ndjson").display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    // the peak resident size, read while it runs
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    while child.try_wait().expect("wait").is_none() {
        if let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "diff: 990000 key(s) dropped beyond max_keys, 0 idle past key_ttl; 10000 kept"
        ),
        "the count: {err}"
    );
    assert!(
        peak_kb > 0 && peak_kb < 200 * 1024,
        "peak resident {peak_kb} kB"
    );
}

/// The inspector's figures: a keyed run's view and its Prometheus text count the keys held
/// and dropped, over the pool's workers.
#[test]
fn a_keyed_runs_view_counts_its_keys() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let spec = streamprep_project::ProjectSpec::from_toml(&format!(
        "source = \"file:{}\"\nchain = [\"fillna_zeros\", {{ step = \"diff\" }}]\nkey = \"k\"\nmax_keys = 2\nbuffer = 10\nmethod = \"pool\"\nworkers = 2\nsink = \"file:/dev/null\"\nsink_format = \"ndjson\"\n",
        dir.join("input.ndjson").display()
    ))
    .expect("spec");
    let handle = streamprep_project::launch(&spec).expect("launch");
    handle.wait().expect("runs");
    let keys = handle.view().figures.keys.expect("keys counted");
    // 5 keys (k0..k3 and solo) over 2 workers with at most 2 each: at most 4 held, and each
    // key that came back after its eviction was dropped again
    assert!(keys.live >= 2 && keys.live <= 4, "{keys:?}");
    assert!(keys.evicted > 0 && keys.expired == 0, "{keys:?}");
    let text = handle.prometheus();
    assert!(
        text.contains(&format!("streamprep_keys {}", keys.live)),
        "{text}"
    );
    assert!(text.contains(&format!("streamprep_keys_evicted_total {}", keys.evicted)));
}

/// State survives a stop: a keyed run stopped half-way (Ctrl-C while a paced replay runs) and
/// started again on the rest of the input, its steps' state kept in a file between the two,
/// gives what one uninterrupted run gives: windows and running scalers per key (messages of
/// one row, so a scaler's messages are the same whatever the stop closed).
#[test]
fn a_keyed_run_stopped_and_started_again_equals_one_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let input = std::fs::read_to_string(dir.join("input.ndjson")).expect("input");
    let lines: Vec<&str> = input.lines().collect();
    let tmp = tempfile::tempdir().expect("tmp");
    // (the scaler first: after a window, a key's first one-row message is all missing, which
    // leaves scikit-learn's statistics NaN for good)
    let chain = r#"fillna_zeros,standard_scaler{"fit": "running"},rolling{"window": 4, "agg": "std"},ewm_mean{"span": 3},diff"#;
    let state = tmp.path().join("keyed.state");
    let run = |input: &Path, out: &str, extra: &[&str]| {
        let mut cmd = super::cli::bin();
        cmd.args(["run", "--source"])
            .arg(format!("file:{}", input.display()))
            .args(["--key", "k", "--buffer", "1", "--chain", chain])
            .args(extra)
            .arg("--sink")
            .arg(format!("file:{}", tmp.path().join(out).display()));
        cmd
    };
    let by_key = |file: &str| {
        let text = std::fs::read_to_string(tmp.path().join(file)).expect("output");
        let mut m: std::collections::BTreeMap<String, Vec<serde_json::Map<String, Value>>> =
            Default::default();
        for r in rows(&text) {
            m.entry(r["k"].to_string()).or_default().push(r);
        }
        m
    };
    let whole_state = tmp.path().join("whole.state").display().to_string();
    let whole = run(
        &dir.join("input.ndjson"),
        "whole.ndjson",
        &["--state", &whole_state],
    )
    .output()
    .expect("run");
    assert!(whole.status.success());
    // the first part, stopped by Ctrl-C while it replays at 1,000 rows/s
    let state_arg = state.display().to_string();
    let child = run(
        &dir.join("input.ndjson"),
        "first.ndjson",
        &["--rate", "1000", "--state", &state_arg],
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("run");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let first = child.wait_with_output().expect("first part");
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{err}");
    let done: usize = err
        .split("rows in ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("rows in");
    assert!(
        done > 50 && done < lines.len() - 50,
        "stopped half-way: {done}"
    );
    assert!(err.contains("state is saved in"), "{err}");
    // the rest, started again with the saved state
    let rest = tmp.path().join("rest.ndjson");
    std::fs::write(&rest, lines[done..].join("\n") + "\n").expect("rest");
    let second = run(&rest, "second.ndjson", &["--state", &state_arg])
        .output()
        .expect("second part");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err}");
    assert!(err.contains("taken back"), "{err}");
    let (mut got, want) = (by_key("first.ndjson"), by_key("whole.ndjson"));
    for (k, more) in by_key("second.ndjson") {
        got.entry(k).or_default().extend(more);
    }
    assert_eq!(got.len(), want.len());
    let numbers = want
        .values()
        .flatten()
        .filter(|r| r["u"].as_f64().is_some_and(|u| u != 0.0))
        .count();
    assert!(numbers > 1000, "the chain gives values: {numbers}");
    for (k, w) in &want {
        let errors = compare("stopped and started again", k, &got[k], w);
        assert!(
            errors.is_empty(),
            "{}",
            errors[..errors.len().min(5)].join("\n")
        );
    }
    // without the saved state the rest starts afresh: different (the test can fail)
    let none_state = tmp.path().join("none.state").display().to_string();
    let fresh = run(&rest, "fresh.ndjson", &["--state", &none_state])
        .output()
        .expect("fresh");
    assert!(fresh.status.success());
    let mut fresh_got = by_key("first.ndjson");
    for (k, more) in by_key("fresh.ndjson") {
        fresh_got.entry(k).or_default().extend(more);
    }
    assert!(want
        .iter()
        .any(|(k, w)| !compare("fresh", k, &fresh_got[k], w).is_empty()));
    // a changed chain cannot take the state: said, and the run starts afresh
    let changed = super::cli::bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", rest.display()))
        .args(["--key", "k", "--chain", "diff", "--state", &state_arg])
        .args([
            "--buffer",
            "10",
            "--sink",
            "file:/dev/null",
            "--sink-format",
            "ndjson",
        ])
        .output()
        .expect("changed");
    let err = String::from_utf8_lossy(&changed.stderr);
    assert!(changed.status.success(), "{err}");
    assert!(
        err.contains("the saved state is of another chain") && err.contains("start afresh"),
        "{err}"
    );
}

/// Keyed state saved by a pool of 2 workers goes to the right workers of a pool of 4 (each
/// takes its own keys), and `ordered = "global"` restarted at a message boundary gives, byte
/// for byte, what one run gives.
#[test]
fn saved_state_follows_its_keys_to_other_workers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let input = std::fs::read_to_string(dir.join("input.ndjson")).expect("input");
    let lines: Vec<&str> = input.lines().collect();
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a.ndjson"), tmp.path().join("b.ndjson"));
    std::fs::write(&a, lines[..700].join("\n") + "\n").expect("a");
    std::fs::write(&b, lines[700..].join("\n") + "\n").expect("b");
    let chain = r#"fillna_zeros,rolling{"window": 3},diff,min_max_scaler{"fit": "running"}"#;
    let run = |input: &Path, out: &str, workers: &str| {
        let r = super::cli::bin()
            .args(["run", "--source"])
            .arg(format!("file:{}", input.display()))
            .args(["--key", "k", "--ordered", "global", "--buffer", "100"])
            .args(["--chain", chain, "--method", "pool", "--workers", workers])
            .arg("--state")
            .arg(tmp.path().join(if out == "whole" {
                "whole.state"
            } else {
                "parts.state"
            }))
            .arg("--sink")
            .arg(format!(
                "file:{}",
                tmp.path().join(format!("{out}.ndjson")).display()
            ))
            .output()
            .expect("run");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        std::fs::read_to_string(tmp.path().join(format!("{out}.ndjson"))).expect("output")
    };
    let whole = run(&dir.join("input.ndjson"), "whole", "2");
    let first = run(&a, "first", "2");
    let second = run(&b, "second", "4");
    assert_eq!(first + &second, whole, "one run's output, byte for byte");
}

/// Idle expiry (`key_ttl`) against the oracle: the stream replayed at 500 rows a second with
/// `--key-ttl 300ms`; the key silent for 400 rows (800 ms) starts afresh when it comes back,
/// the keys silent for a few rows keep their state, as in the oracle's running scaler and
/// diff per key and stretch (its cut: a gap of more than 100 rows, far from both).
#[test]
fn a_key_idle_past_key_ttl_starts_afresh_as_in_the_oracle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("TTL.json"))
            .expect("TTL.json: run tests/oracle/make_golden.py (the test script does)"),
    )
    .expect("case");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out.ndjson");
    let r = super::cli::bin()
        .args(["run", "--source"])
        .arg(format!("file:{}", dir.join("ttl_input.ndjson").display()))
        .args(["--key", "k", "--buffer", "1"])
        .args(["--rate", &case["rate"].to_string()])
        .args(["--key-ttl", &format!("{}ms", case["key_ttl_ms"])])
        .args(["--chain", case["chain"].as_str().expect("chain")])
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(
        err.contains("idle past key_ttl"),
        "the expiry is counted: {err}"
    );
    let got = rows(&std::fs::read_to_string(&out).expect("output"));
    let want = rows(&std::fs::read_to_string(dir.join("ttl_expected.ndjson")).expect("golden"));
    let errors = compare("key_ttl", "standard_scaler+diff", &got, &want);
    assert!(
        errors.is_empty(),
        "{}",
        errors[..errors.len().min(10)].join("\n")
    );
}

/// The cases of a step over the whole stream (`tests/data/golden_stream/{cases}`: label ->
/// chain entry and whether keyed), run through `run` on `input` at each buffer (keyed ones
/// inline and on a pool of 2) and compared with `{prefix}__{label}.ndjson`, both sorted by `key`.
fn whole_stream_cases(
    cases: &str,
    prefix: &str,
    input: &str,
    buffers: &[&str],
    key: fn(&serde_json::Map<String, Value>) -> String,
) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden_stream");
    let cases: std::collections::BTreeMap<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join(cases))
            .expect("the cases: run tests/oracle/make_golden.py (the test script does)"),
    )
    .expect("cases");
    assert!(cases.len() >= 8, "{cases:?}");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut errors = Vec::new();
    let sorted = |mut rows: Vec<serde_json::Map<String, Value>>| {
        rows.sort_by_key(key);
        rows
    };
    for (label, case) in &cases {
        let keyed = case["keyed"].as_bool().unwrap_or(false);
        let want = sorted(rows(
            &std::fs::read_to_string(dir.join(format!("{prefix}__{label}.ndjson")))
                .expect("golden"),
        ));
        let methods: &[&[&str]] = if keyed {
            &[
                &["--key", "k"],
                &["--key", "k", "--method", "pool", "--workers", "2"],
            ]
        } else {
            &[&[]]
        };
        for b in buffers {
            for m in methods {
                let out = tmp.path().join(format!("{label}-{b}-{}.ndjson", m.len()));
                let r = super::cli::bin()
                    .args(["run", "--source"])
                    .arg(format!("file:{}", dir.join(input).display()))
                    .args([
                        "--buffer",
                        b,
                        "--chain",
                        case["chain"].as_str().expect("chain"),
                    ])
                    .args(*m)
                    .arg("--sink")
                    .arg(format!("file:{}", out.display()))
                    .output()
                    .expect("run");
                assert!(
                    r.status.success(),
                    "{label}: {}",
                    String::from_utf8_lossy(&r.stderr)
                );
                let got = sorted(rows(&std::fs::read_to_string(&out).expect("output")));
                errors.extend(compare(&format!("b={b} {m:?}"), label, &got, &want));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors[..errors.len().min(20)].join("\n")
    );
}

/// `resample` against pandas over the whole stream (`df.resample(interval, on="ts")[num]
/// .agg(agg)`, per key `df.groupby("k").resample(...)`): bins across message boundaries, empty
/// bins, missing values, over midnight, at buffers 1, 7, 100 and 1000, inline and (keyed) on
/// a pool of 2. Keyed bins leave as they close; compared key by key.
#[test]
fn resample_matches_pandas_over_the_whole_stream_at_every_buffer() {
    whole_stream_cases(
        "RESAMPLE.json",
        "resample",
        "resample_input.ndjson",
        &["1", "7", "100", "1000"],
        |r| format!("{:?} {}", r.get("k"), r["ts"]),
    );
}

/// `lttb`, `m4` and `minmax_lttb` select, for each series, the indices `tsdownsample` selects
/// (its own Rust code, through its Python package, pinned): with the time as x and without,
/// ties, gaps that leave bins empty, missing values, fewer rows than points, per key; at
/// buffers 7, 100 and 1000 (the step holds the whole stream and gives it at its end), and
/// keyed on a pool of 2.
#[test]
fn downsampling_selects_what_tsdownsample_selects() {
    whole_stream_cases(
        "DOWNSAMPLE.json",
        "downsample",
        "downsample_input.ndjson",
        &["7", "100", "1000"],
        |r| r["ts"].to_string(),
    );
}
