//! The few Redis Streams commands the queue uses, on its own lean connection ([`Conn`]), and
//! the parsing of their replies.

use redis::Value;
use streamprep_core::IoError;

pub use crate::resp::Conn;
use crate::wire::Fields;

/// The stream every coordinator sends tasks to and every worker reads (one consumer group).
pub const TASKS: &str = "streamprep:tasks";
/// The workers' consumer group.
pub const GROUP: &str = "workers";

/// Each worker thread's last measured round trip to Redis: `consumer -> "<rtt_us> <unix_ms>"`
/// (`task_compression = "auto"` reads it before the first task).
pub const DISTANCES: &str = "streamprep:worker-rtt";

/// How often a worker thread says its round trip again (what is older than three times this is
/// taken for a worker gone).
pub const DISTANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Say how far this worker thread is from Redis.
pub fn announce_distance(
    con: &mut Conn,
    consumer: &str,
    rtt: std::time::Duration,
) -> Result<(), IoError> {
    let v = format!("{} {}", rtt.as_micros(), unix_ms());
    con.cmd(
        "HSET",
        &[
            b"HSET",
            DISTANCES.as_bytes(),
            consumer.as_bytes(),
            v.as_bytes(),
        ],
    )?;
    Ok(())
}

/// The mean round trip of the worker threads that said theirs lately, and how many did; the
/// ones silent for an hour are forgotten.
pub fn worker_distance(con: &mut Conn) -> Result<Option<(std::time::Duration, usize)>, IoError> {
    let Value::Array(kv) = con.cmd("HGETALL", &[b"HGETALL", DISTANCES.as_bytes()])? else {
        return Ok(None);
    };
    let now = unix_ms();
    let (mut sum, mut n, mut gone) = (0u64, 0usize, Vec::new());
    for pair in kv.chunks_exact(2) {
        let (Some(name), Some(v)) = (bytes(pair[0].clone()), text(&pair[1])) else {
            continue;
        };
        let mut parts = v.split(' ').map(str::parse::<u64>);
        let (Some(Ok(us)), Some(Ok(at))) = (parts.next(), parts.next()) else {
            continue;
        };
        let age = now.saturating_sub(at);
        if age <= 3 * DISTANCE_EVERY.as_millis() as u64 {
            sum += us;
            n += 1;
        } else if age > 3_600_000 {
            gone.push(name);
        }
    }
    if !gone.is_empty() {
        let mut hdel: Vec<&[u8]> = vec![b"HDEL", DISTANCES.as_bytes()];
        hdel.extend(gone.iter().map(Vec::as_slice));
        con.cmd("HDEL", &hdel)?;
    }
    Ok((n > 0).then(|| (std::time::Duration::from_micros(sum / n as u64), n)))
}

/// An entry: its id and fields.
pub type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// Connect, with the URL in the error.
pub fn connect(url: &str) -> Result<Conn, IoError> {
    Conn::connect(url)
}

/// Whether an error means the connection is gone (the caller reconnects); a command Redis
/// refused is not.
pub fn is_lost(e: &IoError) -> bool {
    matches!(e, IoError::Io { .. })
}

/// Create the task stream and the workers' group unless they exist.
pub fn ensure_group(con: &mut Conn) -> Result<(), IoError> {
    let args: [&[u8]; 6] = [
        b"XGROUP",
        b"CREATE",
        TASKS.as_bytes(),
        GROUP.as_bytes(),
        b"0",
        b"MKSTREAM",
    ];
    match con.cmd("XGROUP CREATE", &args) {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The arguments of `XADD stream * field value ...` (the values are not copied).
pub fn xadd_args<'a>(stream: &'a str, fields: &'a Fields) -> Vec<&'a [u8]> {
    let mut a: Vec<&[u8]> = vec![b"XADD", stream.as_bytes(), b"*"];
    for (k, v) in fields {
        a.push(k.as_bytes());
        a.push(v);
    }
    a
}

/// XADD an entry; returns its id.
pub fn xadd(con: &mut Conn, stream: &str, fields: &Fields) -> Result<String, IoError> {
    let v = con.cmd("XADD", &xadd_args(stream, fields))?;
    text(&v).ok_or_else(|| IoError::Protocol("redis XADD: no entry id in the reply".into()))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// `[id, [k, v, k, v, ...]]` (a deleted entry has no fields: `None`).
fn entry(v: Value) -> Option<Entry> {
    let Value::Array(mut parts) = v else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let fields = parts.pop()?;
    let id = text(&parts[0])?;
    let Value::Array(kv) = fields else {
        return None;
    };
    let mut out = Vec::with_capacity(kv.len() / 2);
    let mut it = kv.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((bytes(k)?, bytes(v)?));
    }
    Some((id, out))
}

/// The entries of an XREAD / XREADGROUP reply (one stream): nothing on a timeout.
pub fn stream_entries(v: Value) -> Vec<Entry> {
    let Value::Array(streams) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in streams {
        if let Value::Array(mut parts) = s {
            if parts.len() == 2 {
                if let Some(Value::Array(entries)) = parts.pop() {
                    out.extend(entries.into_iter().filter_map(entry));
                }
            }
        }
    }
    out
}

/// The entries of an XAUTOCLAIM reply.
pub fn claimed_entries(v: Value) -> Vec<Entry> {
    match v {
        Value::Array(mut parts) if parts.len() >= 2 => match parts.swap_remove(1) {
            Value::Array(entries) => entries.into_iter().filter_map(entry).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// How many times the group has delivered entry `id` (XPENDING's count).
pub fn deliveries(con: &mut Conn, id: &str) -> Result<u64, IoError> {
    let args: [&[u8]; 6] = [
        b"XPENDING",
        TASKS.as_bytes(),
        GROUP.as_bytes(),
        id.as_bytes(),
        id.as_bytes(),
        b"1",
    ];
    let v = con.cmd("XPENDING", &args)?;
    if let Value::Array(rows) = v {
        if let Some(Value::Array(row)) = rows.into_iter().next() {
            if let Some(Value::Int(n)) = row.get(3) {
                return Ok(*n as u64);
            }
        }
    }
    Ok(0)
}
