//! The traits sources and sinks implement. Sources and sinks are blocking: the engine runs
//! them on their own threads, the steps on others.

use std::time::Duration;

use crate::{Batch, DeadLetter, Encoding, Output, RowFormat};

/// Something a source wants back once the rows it covers have reached the sinks (for MQTT:
/// the connection epoch, QoS and packet id of a publish). Opaque to the engine.
pub type AckToken = u64;

/// Sends a source's acknowledgements; called (in input order) after the sinks have flushed
/// the messages the tokens came with. Lives apart from the source, on the delivering thread.
pub trait Acker: Send {
    /// Acknowledge these tokens, in order.
    fn ack(&mut self, tokens: &[AckToken]);
}

/// The state of a networked source's connection, shared with status lines.
#[derive(Debug, Default)]
pub struct LinkHealth {
    /// Connected right now.
    pub connected: std::sync::atomic::AtomicBool,
    /// Connections lost (each followed by reconnect attempts with backoff).
    pub disconnects: std::sync::atomic::AtomicU64,
}

/// The rows of one message as a source delivers them.
#[derive(Debug, Default)]
pub struct RowBlock {
    /// The rows, back to back, each followed by `\n`.
    pub bytes: Vec<u8>,
    /// End offset of each row in `bytes`.
    pub ends: Vec<usize>,
    /// Rows the source refused, as `(reason, data)`.
    pub rejected: Vec<(String, Vec<u8>)>,
    /// Acknowledgements owed once these rows have reached the sinks.
    pub acks: Vec<AckToken>,
    /// The input is over (no more rows will come after these).
    pub ended: bool,
    /// When the first of these rows arrived, set by sources that wait for rows (MQTT, a
    /// paced replay); otherwise the buffer takes the time it asked for them.
    pub first_at: Option<std::time::Instant>,
    /// Set by the caller: a live source that has no row by then returns the block empty and
    /// not ended (the keyed buffer closes its waiting keys' messages meanwhile). `None`: wait
    /// for the first row as long as it takes.
    pub give_up_at: Option<std::time::Instant>,
}

/// [`Source::read_block`] for a source that never waits: up to `max` rows through
/// [`Source::next_rows`]; fewer mean the input is over.
pub fn read_block_now<S: Source + ?Sized>(
    src: &mut S,
    max: usize,
    block: &mut RowBlock,
) -> Result<(), IoError> {
    let before = block.ends.len();
    src.next_rows(max, &mut block.bytes, &mut block.ends, &mut block.rejected)?;
    block.ended = block.ends.len() - before < max;
    Ok(())
}

impl RowBlock {
    /// Nothing at all was read.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty() && self.rejected.is_empty() && self.acks.is_empty()
    }
}
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
        /// What was refused (its first bytes when it was too long to keep).
        data: Vec<u8>,
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
        rejected: &mut Vec<(String, Vec<u8>)>,
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

    /// True for sources whose rows arrive over time (MQTT, a paced generator): the buffer
    /// then also closes a message when its oldest row has waited `max_wait`.
    fn is_live(&self) -> bool {
        false
    }

    /// Read the rows of one message into `block`: up to `max` rows and, for a live source,
    /// no longer than `max_wait` after the first row arrived (a live source waits for the
    /// first row as long as it takes, unless it is told to stop). The default serves
    /// sources that never wait, through [`Source::next_rows`].
    fn read_block(
        &mut self,
        max: usize,
        max_wait: Option<Duration>,
        block: &mut RowBlock,
    ) -> Result<(), IoError> {
        let _ = max_wait;
        read_block_now(self, max, block)
    }

    /// The acknowledger of a source that wants its rows acknowledged after delivery (taken
    /// once, before the first read); `None` for sources that do not.
    fn acker(&mut self) -> Option<Box<dyn Acker>> {
        None
    }

    /// The connection state of a networked source, for status lines; `None` otherwise.
    fn link(&self) -> Option<std::sync::Arc<LinkHealth>> {
        None
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

    /// Make sure everything written so far has reached its destination (the OS for a file,
    /// the peer for a socket or broker), so the source may acknowledge it.
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }

    /// Flush and close.
    fn finish(&mut self) -> Result<(), IoError>;
}

/// Where refused rows and messages go.
pub trait DeadLetterSink: Send {
    /// Write one dead letter.
    fn write(&mut self, dead: &DeadLetter) -> Result<(), IoError>;

    /// Make sure every dead letter written so far has reached its destination.
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }

    /// Flush and close.
    fn finish(&mut self) -> Result<(), IoError>;
}
