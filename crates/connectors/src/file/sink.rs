use std::io::{BufWriter, Write};

use streamprep_core::{Encoding, IoError, Output, Sink};
use streamprep_ops::result::csv_header;

/// Writes encoded messages to any writer (a file, stdout); CSV gets its header once.
pub struct WriterSink<W: Write> {
    out: BufWriter<W>,
    encoding: Encoding,
    header_written: bool,
}

impl<W: Write + Send> WriterSink<W> {
    /// A sink writing `encoding` to `w`.
    pub fn new(w: W, encoding: Encoding) -> Self {
        WriterSink {
            out: BufWriter::with_capacity(1 << 20, w),
            encoding,
            header_written: false,
        }
    }
}

impl<W: Write + Send> Sink for WriterSink<W> {
    fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn write(&mut self, out: &Output) -> Result<(), IoError> {
        if self.encoding == Encoding::Csv && !self.header_written {
            self.out
                .write_all(&csv_header(out.batch.schema_ref()))
                .map_err(|e| IoError::io("writing output", e))?;
            self.header_written = true;
        }
        self.out
            .write_all(&out.encoded)
            .map_err(|e| IoError::io("writing output", e))
    }

    fn finish(&mut self) -> Result<(), IoError> {
        self.out
            .flush()
            .map_err(|e| IoError::io("flushing output", e))
    }
}
