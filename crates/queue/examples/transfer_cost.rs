//! How long a large payload takes to go into Redis and come back out, through redis-rs and
//! through the queue's own connection ([`streamprep_queue::resp::Conn`]: the command head, then
//! the payload as it is; bulk strings read straight into buffers of their size). A measurement
//! for BENCHMARKS.md, not a test:
//!
//! `cargo run --release -p streamprep-queue --example transfer_cost -- redis://127.0.0.1:6379 [BYTES]`
//!
//! It writes to and deletes the stream `streamprep:transfer-cost`.

use std::time::{Duration, Instant};

use redis::Value;
use streamprep_queue::redis_io::xadd;
use streamprep_queue::resp::Conn;

const STREAM: &str = "streamprep:transfer-cost";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: transfer_cost redis://HOST:PORT [BYTES]")?;
    let bytes: usize = args.next().map_or(Ok(9_200_000), |b| b.parse())?;
    let mut rs = redis::Client::open(url.as_str())?.get_connection()?;
    let mut conn = Conn::connect(&url)?;
    let data = vec![b'x'; bytes];
    let mut rows: Vec<[Duration; 4]> = Vec::new();
    for _ in 0..5 {
        // redis-rs packs the command into one buffer, then writes it
        let t = Instant::now();
        let id: String = redis::cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("enc")
            .arg(&data[..])
            .query(&mut rs)?;
        let xadd_rs = t.elapsed();
        let t = Instant::now();
        let v: Value = redis::cmd("XRANGE")
            .arg(STREAM)
            .arg(&id)
            .arg(&id)
            .query(&mut rs)?;
        let read_rs = t.elapsed();
        drop(v);
        // the queue's connection
        let t = Instant::now();
        let id = xadd(&mut conn, STREAM, &vec![("enc", data.clone())])?;
        let xadd_conn = t.elapsed();
        let t = Instant::now();
        let v = conn.cmd(
            "XRANGE",
            &[b"XRANGE", STREAM.as_bytes(), id.as_bytes(), id.as_bytes()],
        )?;
        let read_conn = t.elapsed();
        // XRANGE: [[id, [field, value]]]
        let whole = match v {
            Value::Array(entries) => match entries.first() {
                Some(Value::Array(e)) => match e.get(1) {
                    Some(Value::Array(kv)) => {
                        matches!(kv.get(1), Some(Value::BulkString(b)) if b.len() == bytes)
                    }
                    _ => false,
                },
                _ => false,
            },
            _ => false,
        };
        if !whole {
            return Err("the payload did not come back whole".into());
        }
        rows.push([xadd_rs, xadd_conn, read_rs, read_conn]);
    }
    conn.cmd("DEL", &[b"DEL", STREAM.as_bytes()])?;
    println!("{bytes} bytes; milliseconds, 5 rounds");
    println!("XADD redis-rs | XADD queue's Conn | read back redis-rs | read back queue's Conn");
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
