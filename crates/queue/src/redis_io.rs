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
