//! A lean Redis connection (RESP2 over TCP) for the queue's commands. Payloads of megabytes go
//! out as they are, after the command's head (no packing into one buffer first), and bulk
//! strings are read straight into buffers of their size: through redis-rs, a 9.2 MB XADD took
//! twice as long as from a bare socket (`examples/transfer_cost.rs`). redis-rs still parses the
//! URL; replies are `redis::Value`s, so the parsing helpers serve both.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use redis::{ConnectionAddr, Value};
use streamprep_core::IoError;

/// The largest bulk string Redis sends (its `proto-max-bulk-len`).
const MAX_BULK: usize = 512 << 20;

/// How long a new connection waits for Redis to answer its first command.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection; after an I/O error it is closed (`is_open` false) and the caller reconnects.
pub struct Conn {
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
    open: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("open", &self.open).finish()
    }
}

/// A reply line, or the server's error message.
type Reply = Result<Value, String>;

impl Conn {
    /// Connect to `redis://[USER:PASS@]HOST:PORT[/DB]` (5 s at most), authenticate, select the
    /// database and check with PING; errors name the URL.
    pub fn connect(url: &str) -> Result<Conn, IoError> {
        let client = redis::Client::open(url)
            .map_err(|e| IoError::Protocol(format!("{url}: not a Redis URL: {e}")))?;
        let info = client.get_connection_info();
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            return Err(IoError::Protocol(format!(
                "{url}: the queue speaks to Redis over plain TCP (redis://HOST:PORT)"
            )));
        };
        let fail =
            |e: std::io::Error| IoError::Protocol(format!("cannot connect to Redis at {url}: {e}"));
        let addr = (host.as_str(), *port)
            .to_socket_addrs()
            .map_err(fail)?
            .next()
            .ok_or_else(|| fail(std::io::ErrorKind::NotFound.into()))?;
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(fail)?;
        s.set_nodelay(true).map_err(fail)?;
        // a peer that accepts and never answers is not Redis: the handshake waits 5 s
        s.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(fail)?;
        let mut c = Conn {
            r: BufReader::with_capacity(1 << 16, s.try_clone().map_err(fail)?),
            w: BufWriter::with_capacity(1 << 16, s),
            open: true,
        };
        let settings = info.redis_settings();
        let refused = |e: IoError| IoError::Protocol(format!("Redis at {url}: {e}"));
        if let Some(pw) = settings.password() {
            match settings.username() {
                Some(user) => c.cmd("AUTH", &[b"AUTH", user.as_bytes(), pw.as_bytes()]),
                None => c.cmd("AUTH", &[b"AUTH", pw.as_bytes()]),
            }
            .map_err(refused)?;
        }
        if settings.db() != 0 {
            c.cmd("SELECT", &[b"SELECT", settings.db().to_string().as_bytes()])
                .map_err(refused)?;
        }
        c.cmd("PING", &[b"PING"]).map_err(|e| match e {
            IoError::Io { cause, .. }
                if matches!(
                    cause.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                IoError::Protocol(format!(
                    "{url} accepted the connection but did not answer PING within {} s: is it \
                     Redis?",
                    HANDSHAKE_TIMEOUT.as_secs()
                ))
            }
            e => refused(e),
        })?;
        // a peer that vanished without closing is noticed (the longest BLOCK is 0.5 s)
        c.w.get_ref()
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(fail)?;
        Ok(c)
    }

    /// Whether the connection still works.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Send one command and read its reply.
    pub fn cmd(&mut self, what: &str, args: &[&[u8]]) -> Result<Value, IoError> {
        let mut v = self.pipe(what, &[args])?;
        Ok(v.pop().unwrap_or(Value::Nil))
    }

    /// Send commands in one write and read their replies, in one round trip. A command Redis
    /// refuses is an error once every reply has been read (the connection stays usable).
    pub fn pipe(&mut self, what: &str, cmds: &[&[&[u8]]]) -> Result<Vec<Value>, IoError> {
        let lost = |c: &mut Conn, e: std::io::Error| {
            c.open = false;
            IoError::io(format!("redis {what}"), e)
        };
        if let Err(e) = self.send(cmds) {
            return Err(lost(self, e));
        }
        let mut out = Vec::with_capacity(cmds.len());
        let mut refused = None;
        for _ in cmds {
            match self.read() {
                Ok(Ok(v)) => out.push(v),
                Ok(Err(msg)) => {
                    refused.get_or_insert(msg);
                    out.push(Value::Nil);
                }
                Err(e) => return Err(lost(self, e)),
            }
        }
        match refused {
            Some(msg) => Err(IoError::Protocol(format!("redis {what}: {msg}"))),
            None => Ok(out),
        }
    }

    fn send(&mut self, cmds: &[&[&[u8]]]) -> std::io::Result<()> {
        for args in cmds {
            write!(self.w, "*{}\r\n", args.len())?;
            for a in *args {
                write!(self.w, "${}\r\n", a.len())?;
                // a payload larger than the buffer goes to the socket as it is
                self.w.write_all(a)?;
                self.w.write_all(b"\r\n")?;
            }
        }
        self.w.flush()
    }

    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l)?;
        if !l.ends_with(b"\r\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            ));
        }
        l.truncate(l.len() - 2);
        Ok(l)
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        let l = self.line()?;
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a Redis reply");
        let (&kind, rest) = l.split_first().ok_or_else(bad)?;
        let number = || -> std::io::Result<i64> {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|n| n.parse().ok())
                .ok_or_else(bad)
        };
        Ok(Ok(match kind {
            b'+' if rest == b"OK" => Value::Okay,
            b'+' => Value::SimpleString(String::from_utf8_lossy(rest).into_owned()),
            b'-' => return Ok(Err(String::from_utf8_lossy(rest).into_owned())),
            b':' => Value::Int(number()?),
            b'$' => {
                let n = number()?;
                if n < 0 {
                    return Ok(Ok(Value::Nil));
                }
                let n = n as usize;
                if n > MAX_BULK {
                    return Err(bad());
                }
                // read into a buffer of its size, without zero-filling it first
                let mut data = Vec::with_capacity(n + 2);
                (&mut self.r).take(n as u64 + 2).read_to_end(&mut data)?;
                if data.len() != n + 2 || !data.ends_with(b"\r\n") {
                    return Err(bad());
                }
                data.truncate(n);
                Value::BulkString(data)
            }
            b'*' => {
                let n = number()?;
                if n < 0 {
                    return Ok(Ok(Value::Nil));
                }
                // every item is read, even after an error in one, so the next reply starts
                // where it should
                let mut items = Vec::with_capacity((n as usize).min(1 << 16));
                let mut refused = None;
                for _ in 0..n {
                    match self.read()? {
                        Ok(v) => items.push(v),
                        Err(msg) => {
                            refused.get_or_insert(msg);
                        }
                    }
                }
                if let Some(msg) = refused {
                    return Ok(Err(msg));
                }
                Value::Array(items)
            }
            _ => return Err(bad()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A fake Redis that answers each command (one read) with the next canned reply, then
    /// closes.
    fn fake(replies: Vec<Vec<u8>>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            // PING first
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"+PONG\r\n").unwrap();
            for r in replies {
                let _ = s.read(&mut buf).unwrap();
                s.write_all(&r).unwrap();
            }
        });
        format!("redis://127.0.0.1:{port}")
    }

    #[test]
    fn reads_nested_replies_errors_and_large_bulk_strings() {
        let big = vec![b'z'; 300_000];
        let mut bulk = format!("${}\r\n", big.len()).into_bytes();
        bulk.extend_from_slice(&big);
        bulk.extend_from_slice(b"\r\n");
        let url = fake(vec![
            b"*3\r\n$3\r\nabc\r\n*1\r\n:5\r\n$-1\r\n".to_vec(),
            // an error inside an array (EXEC can send one): the whole array is read
            b"*2\r\n-ERR inner\r\n:7\r\n".to_vec(),
            b"-BUSYGROUP Consumer Group name already exists\r\n".to_vec(),
            bulk,
            b"+OK\r\n".to_vec(),
        ]);
        let mut c = Conn::connect(&url).unwrap();
        assert_eq!(
            c.cmd("X", &[b"X"]).unwrap(),
            Value::Array(vec![
                Value::BulkString(b"abc".to_vec()),
                Value::Array(vec![Value::Int(5)]),
                Value::Nil
            ])
        );
        let e = c.cmd("EXEC", &[b"EXEC"]).unwrap_err();
        assert!(e.to_string().contains("inner"), "{e}");
        let e = c.cmd("XGROUP", &[b"XGROUP"]).unwrap_err();
        assert!(e.to_string().contains("BUSYGROUP"), "{e}");
        assert!(
            c.is_open(),
            "a refused command leaves the connection usable"
        );
        assert_eq!(c.cmd("GET", &[b"GET"]).unwrap(), Value::BulkString(big));
        assert_eq!(c.cmd("SET", &[b"SET"]).unwrap(), Value::Okay);
        // the fake closes now: the connection is lost, and says so
        let e = c.cmd("GET", &[b"GET"]).unwrap_err();
        assert!(crate::redis_io::is_lost(&e), "{e}");
        assert!(!c.is_open());
    }

    #[test]
    fn a_bulk_string_past_redis_limit_is_refused_unread() {
        let url = fake(vec![format!("${}\r\n", MAX_BULK + 1).into_bytes()]);
        let mut c = Conn::connect(&url).unwrap();
        assert!(c.cmd("GET", &[b"GET"]).is_err());
        assert!(!c.is_open());
    }

    #[test]
    fn an_unreachable_server_is_named() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = Conn::connect(&format!("redis://127.0.0.1:{port}")).unwrap_err();
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[test]
    fn a_peer_that_accepts_and_never_answers_is_refused_within_the_handshake_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let held = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            std::thread::sleep(Duration::from_secs(8));
            drop(s);
        });
        let t = std::time::Instant::now();
        let e = Conn::connect(&format!("redis://127.0.0.1:{port}")).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
        assert!(e.to_string().contains("did not answer PING"), "{e}");
        let _ = held;
    }
}
