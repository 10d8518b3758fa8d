use std::io::BufReader;
use std::net::{TcpListener, TcpStream};

use streamprep_core::{IoError, Read, RowFormat, Source, SourceKind};

use super::{read_frame, FrameRead, EOT};

/// Listens on an address and reads framed rows from the first connection.
pub struct FramedSource {
    listener: TcpListener,
    conn: Option<BufReader<TcpStream>>,
    format: RowFormat,
    max_frame: usize,
    header: Option<Vec<u8>>,
    header_read: bool,
    ended: bool,
}

impl FramedSource {
    /// Bind now (so a sender can connect as soon as this returns); accept on first read.
    pub fn bind(addr: &str, format: RowFormat, max_frame: usize) -> Result<Self, IoError> {
        let listener =
            TcpListener::bind(addr).map_err(|e| IoError::io(format!("listening on {addr}"), e))?;
        Ok(FramedSource {
            listener,
            conn: None,
            format,
            max_frame,
            header: None,
            header_read: format != RowFormat::Csv,
            ended: false,
        })
    }

    fn frame(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError> {
        if self.ended {
            return Ok(Read::End);
        }
        if self.conn.is_none() {
            let (s, _) = self
                .listener
                .accept()
                .map_err(|e| IoError::io("accepting a connection", e))?;
            self.conn = Some(BufReader::with_capacity(1 << 16, s));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Read::End);
        };
        let start = buf.len();
        match read_frame(conn, buf, self.max_frame).map_err(|e| IoError::io("reading a frame", e))? {
            None => {
                self.ended = true; // the sender closed without EOT: the input is over
                Ok(Read::End)
            }
            Some(FrameRead::Frame(1)) if buf[start] == EOT => {
                buf.truncate(start);
                self.ended = true;
                Ok(Read::End)
            }
            Some(FrameRead::Frame(_)) => {
                while buf.len() > start && matches!(buf[buf.len() - 1], b'\n' | b'\r') {
                    buf.pop();
                }
                Ok(Read::Row)
            }
            Some(FrameRead::TooLong(n)) => Ok(Read::Rejected {
                reason: format!("frame of {n} bytes is longer than the maximum of {} bytes (--max-frame); skipped", self.max_frame),
                data: Vec::new(),
            }),
        }
    }
}

impl Source for FramedSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Rows(self.format)
    }

    fn header(&mut self) -> Result<Option<Vec<u8>>, IoError> {
        if !self.header_read {
            self.header_read = true;
            let mut h = Vec::new();
            if let Read::Row = self.frame(&mut h)? {
                self.header = Some(h);
            }
        }
        Ok(self.header.clone())
    }

    fn next_row(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError> {
        if !self.header_read {
            self.header()?;
        }
        self.frame(buf)
    }
}
