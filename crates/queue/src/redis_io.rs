//! The few Redis Streams commands the queue uses, on the synchronous client, and the parsing
//! of their replies.

use std::time::Duration;

use redis::{Connection, Value};
use streamprep_core::IoError;

use crate::wire::Fields;

/// The stream every coordinator sends tasks to and every worker reads (one consumer group).
pub const TASKS: &str = "streamprep:tasks";
/// The workers' consumer group.
pub const GROUP: &str = "workers";

/// An entry: its id and fields.
pub type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// Connect, with the URL in the error.
pub fn connect(url: &str) -> Result<Connection, IoError> {
    let client = redis::Client::open(url)
        .map_err(|e| IoError::Protocol(format!("{url}: not a Redis URL: {e}")))?;
    client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| IoError::Protocol(format!("cannot connect to Redis at {url}: {e}")))
}

/// A lost or refused connection becomes `IoError::Io` (the caller reconnects); anything else
/// (a command Redis refused) `IoError::Protocol`.
pub(crate) fn err(what: &str, e: redis::RedisError) -> IoError {
    if lost(&e) {
        IoError::io(
            format!("redis {what}"),
            std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e.to_string()),
        )
    } else {
        IoError::Protocol(format!("redis {what}: {e}"))
    }
}

fn lost(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// Whether an error means the connection is gone.
pub fn is_lost(e: &IoError) -> bool {
    matches!(e, IoError::Io { .. })
}

/// Create the task stream and the workers' group unless they exist.
pub fn ensure_group(con: &mut Connection) -> Result<(), IoError> {
    let r: Result<Value, _> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(TASKS)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(con);
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(err("XGROUP CREATE", e)),
    }
}

/// XADD an entry; returns its id.
pub fn xadd(con: &mut Connection, stream: &str, fields: &Fields) -> Result<String, IoError> {
    let mut c = redis::cmd("XADD");
    c.arg(stream).arg("*");
    for (k, v) in fields {
        c.arg(*k).arg(v.as_slice());
    }
    c.query(con).map_err(|e| err("XADD", e))
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
pub fn deliveries(con: &mut Connection, id: &str) -> Result<u64, IoError> {
    let v: Value = redis::cmd("XPENDING")
        .arg(TASKS)
        .arg(GROUP)
        .arg(id)
        .arg(id)
        .arg(1)
        .query(con)
        .map_err(|e| err("XPENDING", e))?;
    if let Value::Array(rows) = v {
        if let Some(Value::Array(row)) = rows.into_iter().next() {
            if let Some(Value::Int(n)) = row.get(3) {
                return Ok(*n as u64);
            }
        }
    }
    Ok(0)
}
