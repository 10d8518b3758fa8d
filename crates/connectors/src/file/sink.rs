use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use streamprep_core::{Encoding, IoError, Output, Sink};
use streamprep_ops::result::csv_header;

/// Messages queued for the writer thread: enough to overlap writing with the next chain run,
/// few enough that a slow disk pushes back on the pipeline.
const QUEUED: usize = 4;

/// Writes encoded messages to any writer (a file, stdout) on its own thread, so the system
/// calls overlap the chain; CSV gets its header once.
pub struct WriterSink {
    tx: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    encoding: Encoding,
    header_written: bool,
}

impl WriterSink {
    /// A sink writing `encoding` to `w`.
    pub fn new<W: Write + Send + 'static>(mut w: W, encoding: Encoding) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUED);
        let thread = std::thread::Builder::new()
            .name("streamprep-sink".into())
            .spawn(move || {
                for chunk in rx {
                    w.write_all(&chunk)?;
                }
                w.flush()
            });
        match thread {
            Ok(t) => WriterSink {
                tx: Some(tx),
                thread: Some(t),
                encoding,
                header_written: false,
            },
            // no thread to be had: fail on first write rather than here (new() cannot fail)
            Err(_) => WriterSink {
                tx: None,
                thread: None,
                encoding,
                header_written: false,
            },
        }
    }

    fn send(&mut self, bytes: Vec<u8>) -> Result<(), IoError> {
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(bytes).is_ok())
            .unwrap_or(false);
        if sent {
            Ok(())
        } else {
            // the writer thread stopped: its error says why
            Err(self
                .join()
                .err()
                .unwrap_or_else(|| IoError::Protocol("the output writer stopped".into())))
        }
    }

    fn join(&mut self) -> Result<(), IoError> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => match t.join() {
                Ok(r) => r.map_err(|e| IoError::io("writing output", e)),
                Err(_) => Err(IoError::Protocol("the output writer panicked".into())),
            },
            None => Err(IoError::Protocol("the output writer is not running".into())),
        }
    }
}

impl Sink for WriterSink {
    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn write(&mut self, out: Output) -> Result<(), IoError> {
        if self.encoding == Encoding::Csv && !self.header_written {
            self.send(csv_header(out.batch.schema_ref()))?;
            self.header_written = true;
        }
        if out.encoded.is_empty() {
            return Ok(());
        }
        self.send(out.encoded)
    }

    fn finish(&mut self) -> Result<(), IoError> {
        self.join()
    }
}
