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
    // Wq = C * S / (c (1 - rho)) = 0.1 * 2.5 ms / 1.5
    assert!((s["wait_ms"].as_f64().unwrap() - 0.1 * 2.5 / 1.5).abs() < 1e-9);
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
    // b=100 c=2: rho = 2000 * 0.0003 / 2 = 0.3, the lowest latency under 0.7
    let r = &v["recommendation"];
    assert_eq!(
        (r["buffer"].as_u64(), r["workers"].as_u64()),
        (Some(100), Some(2))
    );
    assert_eq!(r["method"], "pool");
    // every stable setting under the target with a lower latency would have been chosen
    let best = r["latency_ms"].as_f64().unwrap();
    for s in v["settings"].as_array().unwrap() {
        if s["meets_target"] == true {
            assert!(s["latency_ms"].as_f64().unwrap() >= best);
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
