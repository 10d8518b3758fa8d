use std::io::{BufWriter, Write};
use std::net::TcpStream;

use streamprep_core::{Encoding, IoError, Output, Sink};
use streamprep_ops::result::csv_header;

use super::{write_frame, EOT};

/// Sends each output message as one frame to a listening peer, then EOT.
pub struct FramedSink {
    addr: String,
    out: BufWriter<TcpStream>,
    encoding: Encoding,
    header_sent: bool,
}

/// How long connecting to the receiver may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long one write may wait for a receiver that does not read.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl FramedSink {
    /// Connect to `addr`.
    pub fn connect(addr: &str, encoding: Encoding) -> Result<Self, IoError> {
        let fail = |e| IoError::io(format!("connecting to tcp:{addr}"), e);
        let mut last = std::io::Error::from(std::io::ErrorKind::NotFound);
        let mut conn = None;
        for a in std::net::ToSocketAddrs::to_socket_addrs(addr).map_err(fail)? {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    conn = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let s = conn.ok_or_else(|| fail(last))?;
        let _ = s.set_nodelay(true);
        // a peer that stops reading stops the run with an error, not for ever
        let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
        Ok(FramedSink {
            addr: addr.to_string(),
            out: BufWriter::with_capacity(1 << 16, s),
            encoding,
            header_sent: false,
        })
    }

    fn err(&self, e: std::io::Error) -> IoError {
        IoError::io(format!("sending to tcp:{}", self.addr), e)
    }
}

impl Sink for FramedSink {
    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn write(&mut self, out: Output) -> Result<(), IoError> {
        if self.encoding == Encoding::Csv && !self.header_sent {
            self.header_sent = true;
            write_frame(&mut self.out, &csv_header(out.batch.schema_ref()))
                .map_err(|e| self.err(e))?;
        }
        write_frame(&mut self.out, &out.encoded).map_err(|e| self.err(e))
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.out.flush().map_err(|e| self.err(e))
    }

    fn finish(&mut self) -> Result<(), IoError> {
        write_frame(&mut self.out, &[EOT]).map_err(|e| self.err(e))?;
        self.out.flush().map_err(|e| self.err(e))
    }
}
