//! Framed TCP (seed 004): the Wallaroo job reproduced, and frames over the size limit.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use streamprep_connectors::tcp::{read_frame, write_frame, FrameRead, EOT};

use crate::cli::{bin, gen, ok};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn connect(port: u16, child: &mut Child) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            return s;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("streamprep exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "streamprep did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A framed-TCP receiver that writes every frame body to a file until EOT (the Wallaroo sink).
fn receiver(out: &Path) -> (u16, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let out = out.to_path_buf();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().expect("accept");
        let mut r = BufReader::new(s);
        let mut file = std::fs::File::create(out).expect("create");
        let mut frames = 0;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match read_frame(&mut r, &mut buf, 1 << 30).expect("frame") {
                Some(FrameRead::Frame(1)) if buf[0] == EOT => break,
                Some(FrameRead::Frame(_)) => {
                    file.write_all(&buf).expect("write");
                    frames += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        frames
    });
    (port, h)
}

#[test]
fn wallaroo_job_over_framed_tcp_is_byte_identical_to_inline() {
    let dir = tempfile::tempdir().expect("tmp");
    let nd = gen(dir.path(), 3000);
    let csv = dir.path().join("in.csv");
    ok(bin()
        .args([
            "run",
            "--source",
            &format!("file:{}", nd.display()),
            "--chain",
            "",
            "--buffer",
            "500",
            "--sink",
            &format!("file:{}", csv.display()),
        ])
        .output()
        .expect("to csv"));
    let heavy = "fillna_median,quantile_transformer_normal,robust_scaler,quantile_transformer_uniform,standard_scaler,min_max_scaler_m1_1";

    let serial = dir.path().join("serial.csv");
    ok(bin()
        .args([
            "run",
            "--source",
            &format!("file:{}", csv.display()),
            "--chain",
            heavy,
            "--buffer",
            "100",
            "--sink",
            &format!("file:{}", serial.display()),
        ])
        .output()
        .expect("serial"));

    let parallel = dir.path().join("parallel.csv");
    let (sink_port, rx) = receiver(&parallel);
    let port = free_port();
    let mut child = bin()
        .args([
            "run",
            "--source",
            &format!("tcp-listen:127.0.0.1:{port}"),
            "--source-format",
            "csv",
            "--chain",
            heavy,
            "--buffer",
            "100",
        ])
        .args([
            "--method",
            "pool",
            "--workers",
            "4",
            "--sink",
            &format!("tcp:127.0.0.1:{sink_port}"),
            "--sink-format",
            "csv",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut s = connect(port, &mut child);
    let text = std::fs::read_to_string(&csv).expect("csv");
    for line in text.lines() {
        write_frame(&mut s, line.as_bytes()).expect("send");
    }
    write_frame(&mut s, &[EOT]).expect("eot");
    s.flush().expect("flush");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = rx.join().expect("receiver");
    assert_eq!(
        frames,
        1 + 30,
        "header frame + one frame per message of 100 rows"
    );
    let a = std::fs::read(&serial).expect("serial");
    let b = std::fs::read(&parallel).expect("parallel");
    assert_eq!(a.len(), b.len());
    assert!(a == b, "framed pool output differs from the serial run");
    assert_eq!(String::from_utf8_lossy(&a).lines().count(), 3001);
}

#[test]
fn oversized_frame_is_refused_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out.ndjson");
    let dead = dir.path().join("dead.ndjson");
    let port = free_port();
    let mut child = bin()
        .args([
            "run",
            "--source",
            &format!("tcp-listen:127.0.0.1:{port}"),
            "--chain",
            "abs",
            "--buffer",
            "2",
            "--max-frame",
            "64",
        ])
        .args([
            "--sink",
            &format!("file:{}", out.display()),
            "--dead-letter",
            &format!("file:{}", dead.display()),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut s = connect(port, &mut child);
    write_frame(&mut s, b"{\"a\": -1}").expect("send");
    write_frame(&mut s, &vec![b' '; 1_000_000]).expect("send big");
    write_frame(&mut s, b"{\"a\": -2}\n").expect("send");
    write_frame(&mut s, b"{\"a\": 3}").expect("send");
    write_frame(&mut s, &[EOT]).expect("eot");
    let status = child.wait_with_output().expect("wait");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"
    );
    let mut d = String::new();
    std::fs::File::open(&dead)
        .expect("dead")
        .read_to_string(&mut d)
        .expect("read");
    assert!(
        d.contains("1000000 bytes is longer than the maximum of 64"),
        "{d}"
    );
}

fn listen(port: u16, dir: &Path, extra: &[&str]) -> Child {
    bin()
        .args(["run", "--source", &format!("tcp-listen:127.0.0.1:{port}")])
        .args(["--chain", "abs", "--buffer", "7"])
        .args(extra)
        .args([
            "--sink",
            &format!("file:{}", dir.join("out.ndjson").display()),
            "--dead-letter",
            &format!("file:{}", dir.join("dead.ndjson").display()),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn every_connection_is_read_in_its_order_and_an_idle_one_blocks_nobody() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let mut child = listen(port, dir.path(), &["--method", "pool", "--workers", "2"]);
    // first in: a sender that says nothing
    let idle = connect(port, &mut child);
    let senders: Vec<_> = (0..60)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                for i in 0..10 {
                    write_frame(&mut s, format!("{{\"c\":{c},\"i\":{i}}}").as_bytes())
                        .expect("send");
                    if i == 4 {
                        std::thread::sleep(Duration::from_millis(5)); // interleave
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    let mut last = connect(port, &mut child);
    write_frame(&mut last, &[EOT]).expect("eot");
    drop(last);
    drop(idle);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("out.ndjson")).expect("out");
    let mut next = vec![0i64; 60];
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let (c, i) = (
            v["c"].as_i64().expect("c") as usize,
            v["i"].as_i64().expect("i"),
        );
        assert_eq!(i, next[c], "connection {c}'s rows out of order");
        next[c] += 1;
    }
    assert!(next.iter().all(|&n| n == 10), "rows missing: {next:?}");
    let c = crate::robust::counts(&out.stderr);
    crate::robust::adds_up(c, 600, 0);
}

#[test]
fn a_torn_frame_is_a_dead_letter_and_the_rows_before_it_are_written() {
    for (good, torn) in [
        (1500usize, &[0u8, 0, 0, 100, b'{', b'"'][..]),
        (3, &[0u8, 0][..]),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let mut child = listen(port, dir.path(), &[]);
        let mut s = connect(port, &mut child);
        for i in 0..good {
            write_frame(&mut s, format!("{{\"a\":{i}}}").as_bytes()).expect("send");
        }
        s.write_all(torn).expect("torn frame");
        drop(s); // closed inside a frame
        let mut last = connect(port, &mut child);
        write_frame(&mut last, &[EOT]).expect("eot");
        drop(last);
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = std::fs::read_to_string(dir.path().join("out.ndjson")).expect("out");
        assert_eq!(rows.lines().count(), good);
        let (dead, dead_rows) = crate::robust::dead_letters(&dir.path().join("dead.ndjson"));
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert!(
            dead[0]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("closed inside a frame"),
            "{dead:?}"
        );
        crate::robust::adds_up(crate::robust::counts(&out.stderr), good, dead_rows);
    }
}
