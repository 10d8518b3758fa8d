//! How long a large payload takes to go into Redis and come back out, through redis-rs (as
//! the queue method sends tasks and results) and through a bare socket (what a leaner client
//! could reach). A measurement for BENCHMARKS.md, not a test:
//!
//! `cargo run --release -p streamprep-queue --example transfer_cost -- redis://127.0.0.1:6379 [BYTES]`
//!
//! It writes to and deletes the stream `streamprep:transfer-cost`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

const STREAM: &str = "streamprep:transfer-cost";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: transfer_cost redis://HOST:PORT [BYTES]")?;
    let bytes: usize = args.next().map_or(Ok(9_200_000), |b| b.parse())?;
    let addr = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let mut con = streamprep_queue::redis_io::connect(&url)?;
    let data = vec![b'x'; bytes];
    let mut rows: Vec<[Duration; 4]> = Vec::new();
    for _ in 0..5 {
        // redis-rs: XADD (the command is packed into one buffer first), then read it back
        let t = Instant::now();
        let fields: streamprep_queue::wire::Fields = vec![("enc", data.clone())];
        let id = streamprep_queue::redis_io::xadd(&mut con, STREAM, &fields)?;
        let xadd_rs = t.elapsed();
        let t = Instant::now();
        let v: redis::Value = redis::cmd("XRANGE")
            .arg(STREAM)
            .arg(&id)
            .arg(&id)
            .query(&mut con)?;
        let read_rs = t.elapsed();
        drop(v);
        // a bare socket: the command head, then the payload as it is
        let mut s = std::net::TcpStream::connect(&addr)?;
        let t = Instant::now();
        let head = format!(
            "*5\r\n$4\r\nXADD\r\n${}\r\n{STREAM}\r\n$1\r\n*\r\n$3\r\nenc\r\n${}\r\n",
            STREAM.len(),
            data.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(&data)?;
        s.write_all(b"\r\n")?;
        let mut reply = [0u8; 64];
        let n = s.read(&mut reply)?;
        let xadd_raw = t.elapsed();
        let raw_id = String::from_utf8_lossy(&reply[..n]);
        let raw_id = raw_id
            .trim()
            .trim_start_matches('$')
            .split("\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let cmd = format!(
            "*4\r\n$6\r\nXRANGE\r\n${}\r\n{STREAM}\r\n${}\r\n{raw_id}\r\n${}\r\n{raw_id}\r\n",
            STREAM.len(),
            raw_id.len(),
            raw_id.len()
        );
        let t = Instant::now();
        s.write_all(cmd.as_bytes())?;
        let mut buf = vec![0u8; bytes + 4096];
        let mut got = 0;
        while got < bytes {
            let n = s.read(&mut buf[got..])?;
            if n == 0 {
                return Err("Redis closed the connection".into());
            }
            got += n;
        }
        let read_raw = t.elapsed();
        rows.push([xadd_rs, xadd_raw, read_rs, read_raw]);
    }
    let _: redis::Value = redis::cmd("DEL").arg(STREAM).query(&mut con)?;
    println!("{bytes} bytes; milliseconds, 5 rounds");
    println!("XADD redis-rs | XADD bare socket | read back redis-rs | read back bare socket");
    for r in rows {
        println!(
            "{:.1} | {:.1} | {:.1} | {:.1}",
            r[0].as_secs_f64() * 1e3,
            r[1].as_secs_f64() * 1e3,
            r[2].as_secs_f64() * 1e3,
            r[3].as_secs_f64() * 1e3
        );
    }
    Ok(())
}
