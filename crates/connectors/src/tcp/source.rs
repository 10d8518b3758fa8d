use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use streamprep_core::{IoError, Read, RowFormat, Source, SourceKind};

use super::{read_frame, FrameRead, EOT};

/// Connections read at once by default; one more is refused at accept, with a log line.
pub const MAX_CONNECTIONS: usize = 256;
/// A connection silent for this long is closed (it would hold its place for ever).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a connection's reader thread hands to the source, in the connection's order.
enum Event {
    /// A frame (a row; for CSV the connection's first frame is its header).
    Frame(u64, Vec<u8>),
    /// A frame the source refuses: too long, or torn by the connection closing.
    Refused(String, Vec<u8>),
    /// The sender sent EOT: the input is over once the other connections are done.
    Eot,
    /// The connection closed (after EOT, or without it), or failed.
    Closed(u64, Option<String>),
}

/// Listens on an address and reads framed rows from every connection, each on its own thread,
/// so a slow or idle sender blocks nobody; each connection's rows stay in their order. The
/// input ends at the first EOT frame, once every connection open then has ended (EOT or
/// close), or when the run is stopped. A connection beyond the limit is refused at accept.
pub struct FramedSource {
    rx: Receiver<Event>,
    format: RowFormat,
    header: Option<Vec<u8>>,
    header_read: bool,
    /// Per connection: its header was read (CSV), and whether it matched the stream's.
    conns: std::collections::HashMap<u64, bool>,
    open: Arc<AtomicUsize>,
    /// Set at the first EOT: no new connection is taken.
    ending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    ended: bool,
    /// Refusals read while looking for the CSV header, handed out first.
    pending: std::collections::VecDeque<Read>,
}

impl FramedSource {
    /// Bind now (so a sender can connect as soon as this returns) and accept in the background.
    pub fn bind(addr: &str, format: RowFormat, max_frame: usize) -> Result<Self, IoError> {
        Self::bind_with(
            addr,
            format,
            max_frame,
            MAX_CONNECTIONS,
            Arc::new(AtomicBool::new(false)),
        )
    }

    /// [`FramedSource::bind`] with a connection limit and a stop flag (checked every 50 ms).
    pub fn bind_with(
        addr: &str,
        format: RowFormat,
        max_frame: usize,
        max_connections: usize,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, IoError> {
        let listener =
            TcpListener::bind(addr).map_err(|e| IoError::io(format!("listening on {addr}"), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| IoError::io("listening", e))?;
        let (tx, rx) = bounded(1024);
        let open = Arc::new(AtomicUsize::new(0));
        let ending = Arc::new(AtomicBool::new(false));
        let (o, e, s) = (open.clone(), ending.clone(), stop.clone());
        // its logs belong to the run that opened the source
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("tcp-accept".into())
            .spawn(move || {
                let _run = span.enter();
                accept(listener, tx, o, e, s, max_frame, max_connections)
            })
            .map_err(|e| IoError::io("starting the TCP listener", e))?;
        Ok(FramedSource {
            rx,
            format,
            header: None,
            header_read: format != RowFormat::Csv,
            conns: Default::default(),
            open,
            ending,
            stop,
            ended: false,
            pending: Default::default(),
        })
    }

    /// The next event, waiting as long as it takes unless the run is stopped.
    fn event(&mut self) -> Option<Event> {
        loop {
            if self.ending.load(Ordering::SeqCst) && self.open.load(Ordering::SeqCst) == 0 {
                // every connection is done: take what they left in the channel, then end
                return self.rx.try_recv().ok();
            }
            match self.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(e) => return Some(e),
                Err(RecvTimeoutError::Timeout) if self.stop.load(Ordering::SeqCst) => return None,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn frame(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError> {
        loop {
            if self.ended {
                return Ok(Read::End);
            }
            let Some(ev) = self.event() else {
                self.ended = true;
                return Ok(Read::End);
            };
            match ev {
                Event::Frame(conn, mut body) => {
                    while matches!(body.last(), Some(b'\n' | b'\r')) {
                        body.pop();
                    }
                    if self.format == RowFormat::Csv {
                        match self.conns.get(&conn) {
                            None => {
                                // the connection's first frame: its header
                                let same = match &self.header {
                                    None => {
                                        self.header = Some(body.clone());
                                        true
                                    }
                                    Some(h) => *h == body,
                                };
                                self.conns.insert(conn, same);
                                if !same {
                                    return Ok(Read::Rejected {
                                        reason: "a connection's CSV header differs from the \
                                                 stream's (its rows are refused too)"
                                            .into(),
                                        data: body,
                                    });
                                }
                                if !self.header_read {
                                    // header() asked for it
                                    return Ok(Read::Row);
                                }
                                continue;
                            }
                            Some(false) => {
                                return Ok(Read::Rejected {
                                    reason: "row of a connection whose CSV header differs \
                                             from the stream's"
                                        .into(),
                                    data: body,
                                })
                            }
                            Some(true) => {}
                        }
                    }
                    buf.extend_from_slice(&body);
                    return Ok(Read::Row);
                }
                Event::Refused(reason, data) => return Ok(Read::Rejected { reason, data }),
                Event::Eot => self.ending.store(true, Ordering::SeqCst),
                Event::Closed(conn, why) => {
                    self.conns.remove(&conn);
                    if let Some(why) = why {
                        tracing::info!("a framed-TCP connection ended: {why}");
                    }
                }
            }
        }
    }
}

fn accept(
    listener: TcpListener,
    tx: Sender<Event>,
    open: Arc<AtomicUsize>,
    ending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    max_frame: usize,
    max_connections: usize,
) {
    let mut next_id = 0u64;
    while !ending.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, peer)) => {
                if open.load(Ordering::SeqCst) >= max_connections {
                    tracing::warn!(
                        "refused a framed-TCP connection from {peer}: \
                         {max_connections} connections are open (the limit)"
                    );
                    drop(conn);
                    continue;
                }
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(IDLE_TIMEOUT));
                open.fetch_add(1, Ordering::SeqCst);
                let id = next_id;
                next_id += 1;
                let (tx, still_open) = (tx.clone(), open.clone());
                let span = tracing::Span::current();
                let spawned = std::thread::Builder::new()
                    .name(format!("tcp-conn-{id}"))
                    .spawn(move || {
                        let _run = span.enter();
                        let why = read_connection(conn, id, &tx, max_frame);
                        let _ = tx.send(Event::Closed(id, why));
                        still_open.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    tracing::warn!("refused a framed-TCP connection from {peer}: no thread for it");
                    open.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("accepting a framed-TCP connection: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Read one connection's frames to its end; `Some(reason)` when it ended badly.
fn read_connection(
    conn: TcpStream,
    id: u64,
    tx: &Sender<Event>,
    max_frame: usize,
) -> Option<String> {
    let mut r = BufReader::with_capacity(1 << 16, conn);
    loop {
        let mut buf = Vec::new();
        let ev = match read_frame(&mut r, &mut buf, max_frame) {
            Ok(None) => return None, // closed between frames
            Ok(Some(FrameRead::Frame(1))) if buf[0] == EOT => {
                let _ = tx.send(Event::Eot);
                return None;
            }
            Ok(Some(FrameRead::Frame(_))) => Event::Frame(id, buf),
            Ok(Some(FrameRead::TooLong(n))) => Event::Refused(
                format!(
                    "frame of {n} bytes is longer than the maximum of {max_frame} bytes \
                     (max_row); skipped"
                ),
                Vec::new(),
            ),
            Ok(Some(FrameRead::Torn { announced, got })) => {
                let _ = tx.send(Event::Refused(
                    format!(
                        "the connection closed inside a frame ({got} of its {announced} bytes \
                         arrived)"
                    ),
                    buf,
                ));
                return Some("closed inside a frame".into());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Some(format!("silent for {} s, closed", IDLE_TIMEOUT.as_secs()));
            }
            Err(e) => return Some(e.to_string()),
        };
        if tx.send(ev).is_err() {
            return None; // the run is over
        }
    }
}

impl Source for FramedSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Rows(self.format)
    }

    fn header(&mut self) -> Result<Option<Vec<u8>>, IoError> {
        while !self.header_read {
            // the first connection's first frame; its rows follow
            let mut h = Vec::new();
            match self.frame(&mut h)? {
                Read::Row | Read::End => self.header_read = true,
                refused => self.pending.push_back(refused),
            }
        }
        Ok(self.header.clone())
    }

    fn next_row(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError> {
        if !self.header_read {
            self.header()?;
        }
        if let Some(r) = self.pending.pop_front() {
            return Ok(r);
        }
        self.frame(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    #[test]
    fn a_connection_over_the_limit_is_refused_at_accept() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let stop = Arc::new(AtomicBool::new(false));
        let mut src = FramedSource::bind_with(
            &format!("127.0.0.1:{port}"),
            RowFormat::Ndjson,
            1024,
            1,
            stop.clone(),
        )
        .expect("bind");
        let mut a = TcpStream::connect(("127.0.0.1", port)).expect("a");
        super::super::write_frame(&mut a, b"{\"x\":1}").expect("send");
        let mut row = Vec::new();
        assert_eq!(src.next_row(&mut row).expect("row"), Read::Row);
        assert_eq!(row, b"{\"x\":1}");
        // a second connection while the first is open: closed by the listener
        let mut b = TcpStream::connect(("127.0.0.1", port)).expect("b");
        b.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = b.write_all(&[0, 0, 0, 1, b'x']);
        let mut byte = [0u8; 1];
        assert!(matches!(b.read(&mut byte), Ok(0) | Err(_)), "refused");
        // stopping ends the source even with a connection open
        stop.store(true, Ordering::SeqCst);
        row.clear();
        assert_eq!(src.next_row(&mut row).expect("end"), Read::End);
    }
}
