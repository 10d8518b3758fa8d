use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use streamprep_core::{Encoding, IoError, Output, Sink};
use streamprep_ops::result::csv_header;

/// Chunks queued for the writer thread: enough to overlap writing with the next chain run,
/// few enough that a slow disk pushes back on the pipeline.
const QUEUED: usize = 4;

/// Messages are gathered up to this many bytes before they go to the writer thread, so a
/// message of a few rows does not cost a thread wake-up. They are gathered by moving the
/// buffers, not copying them: the writer thread does the copying, off the chain's thread.
const GATHER: usize = 1024 * 1024;

/// Writes encoded messages to any writer (a file, stdout) on its own thread, so the system
/// calls overlap the chain; CSV gets its header once.
/// What the writer thread is asked to do.
enum Job {
    Write(Vec<Vec<u8>>),
    /// Write out everything so far, then answer.
    Flush(SyncSender<()>),
}

pub struct WriterSink {
    tx: Option<SyncSender<Job>>,
    pending: Vec<Vec<u8>>,
    pending_bytes: usize,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    encoding: Encoding,
    header_written: bool,
}

impl WriterSink {
    /// A sink writing `encoding` to `w`.
    pub fn new<W: Write + Send + 'static>(w: W, encoding: Encoding) -> Self {
        let (tx, rx) = sync_channel::<Job>(QUEUED);
        let thread = std::thread::Builder::new()
            .name("streamprep-sink".into())
            .spawn(move || {
                // every system call ends at the end of a message (messages hold whole rows)
                let mut w = super::UnitWriter::new(w, GATHER);
                for job in rx {
                    match job {
                        Job::Write(chunks) => {
                            for chunk in chunks {
                                w.unit(&chunk)?;
                            }
                        }
                        Job::Flush(done) => {
                            w.flush()?;
                            let _ = done.send(());
                        }
                    }
                }
                w.flush()
            });
        match thread {
            Ok(t) => WriterSink {
                tx: Some(tx),
                pending: Vec::new(),
                pending_bytes: 0,
                thread: Some(t),
                encoding,
                header_written: false,
            },
            // no thread to be had: fail on first write rather than here (new() cannot fail)
            Err(_) => WriterSink {
                tx: None,
                pending: Vec::new(),
                pending_bytes: 0,
                thread: None,
                encoding,
                header_written: false,
            },
        }
    }

    /// Queue a message's bytes; hand the gathered ones over once there are enough.
    fn push(&mut self, bytes: Vec<u8>) -> Result<(), IoError> {
        self.pending_bytes += bytes.len();
        self.pending.push(bytes);
        if self.pending_bytes >= GATHER {
            self.pending_bytes = 0;
            let chunks = std::mem::take(&mut self.pending);
            self.send(chunks)?;
        }
        Ok(())
    }

    fn send(&mut self, bytes: Vec<Vec<u8>>) -> Result<(), IoError> {
        self.send_job(Job::Write(bytes))
    }

    fn send_job(&mut self, job: Job) -> Result<(), IoError> {
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(job).is_ok())
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
        if !self.pending.is_empty() {
            let chunk = std::mem::take(&mut self.pending);
            if let Some(tx) = self.tx.as_ref() {
                let _ = tx.send(Job::Write(chunk)); // a failed send shows as the thread's error below
            }
        }
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
            self.push(csv_header(out.batch.schema_ref()))?;
            self.header_written = true;
        }
        if out.encoded.is_empty() {
            return Ok(());
        }
        self.push(out.encoded)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        let chunks = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        if !chunks.is_empty() {
            self.send(chunks)?;
        }
        let (done_tx, done_rx) = sync_channel(1);
        self.send_job(Job::Flush(done_tx))?;
        if done_rx.recv().is_err() {
            // the writer stopped before answering: its error says why
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| IoError::Protocol("the output writer stopped".into())));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), IoError> {
        self.join()
    }
}
