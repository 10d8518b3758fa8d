//! The traits sources and sinks implement. Sources and sinks are blocking: the engine runs
//! them on their own threads, the steps on others.

use crate::{Batch, DeadLetter, Encoding, Output, RowFormat};
use thiserror::Error;

/// What a source delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Text rows of this format, decoded by `prepare`.
    Rows(RowFormat),
    /// Columnar batches (Parquet).
    Columnar,
}

/// One read from a row source.
#[derive(Debug, PartialEq)]
pub enum Read {
    /// A row was appended to the buffer.
    Row,
    /// The source refused a row (e.g. a frame over the size limit); it goes to dead letters.
    Rejected {
        /// Why.
        reason: String,
        /// A printable excerpt of what was refused.
        data: String,
    },
    /// The input is over.
    End,
}

/// A source or sink failed. Whose fault, and whether retrying could help, is in the variant.
#[derive(Debug, Error)]
pub enum IoError {
    /// The operating system refused (file missing, connection reset): outside our control.
    #[error("{what}: {cause}")]
    Io {
        /// What we were doing.
        what: String,
        /// The OS error (shown in the message, so not chained again as a source).
        cause: std::io::Error,
    },
    /// The data or the peer broke the protocol or format.
    #[error("{0}")]
    Protocol(String),
}

impl IoError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, cause: std::io::Error) -> Self {
        IoError::Io {
            what: what.into(),
            cause,
        }
    }
}

/// Where rows come from.
pub trait Source: Send {
    /// What this source delivers.
    fn kind(&self) -> SourceKind;

    /// The CSV header line of the stream (read on first call); `None` for other formats.
    fn header(&mut self) -> Result<Option<Vec<u8>>, IoError> {
        Ok(None)
    }

    /// Append the next row (without its newline) to `buf`.
    fn next_row(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError>;

    /// Append up to `max` rows to `bytes`, each followed by `\n`, pushing each row's end
    /// offset to `ends`; rows the source refuses go to `rejected` as `(reason, data)`. Blank
    /// lines are not rows. Fewer than `max` rows means the input is over. The default reads
    /// row by row with [`Source::next_row`]; a source may override it to read in bulk.
    fn next_rows(
        &mut self,
        max: usize,
        bytes: &mut Vec<u8>,
        ends: &mut Vec<usize>,
        rejected: &mut Vec<(String, String)>,
    ) -> Result<(), IoError> {
        while ends.len() < max {
            let start = bytes.len();
            match self.next_row(bytes)? {
                Read::Row => {
                    if bytes[start..].iter().all(u8::is_ascii_whitespace) {
                        bytes.truncate(start);
                        continue;
                    }
                    bytes.push(b'\n');
                    ends.push(bytes.len());
                }
                Read::Rejected { reason, data } => {
                    bytes.truncate(start);
                    rejected.push((reason, data));
                }
                Read::End => break,
            }
        }
        Ok(())
    }

    /// The next batch of at most `max_rows` rows from a columnar source; `None` at the end.
    fn next_batch(&mut self, max_rows: usize) -> Result<Option<Batch>, IoError> {
        let _ = max_rows;
        Err(IoError::Protocol(
            "this source delivers rows, not batches".into(),
        ))
    }
}

/// Where transformed messages go.
pub trait Sink: Send {
    /// The encoding the sink wants from the `result` step.
    fn encoding(&self) -> Encoding;

    /// Write one message's output (called in input order). The output is handed over, so a
    /// sink may pass its bytes to another thread without copying them.
    fn write(&mut self, out: Output) -> Result<(), IoError>;

    /// Flush and close.
    fn finish(&mut self) -> Result<(), IoError>;
}

/// Where refused rows and messages go.
pub trait DeadLetterSink: Send {
    /// Write one dead letter.
    fn write(&mut self, dead: &DeadLetter) -> Result<(), IoError>;

    /// Flush and close.
    fn finish(&mut self) -> Result<(), IoError>;
}
