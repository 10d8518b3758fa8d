//! The dead-letter output: one NDJSON object per refused row or message:
//! `{"seq": .., "step": .., "reason": .., "rows": .., "data": ..}`. Data that is not UTF-8 is
//! kept exactly, as `"data_base64": ..` instead of `"data"`, so every dead letter can be
//! replayed byte for byte.

use std::io::{BufWriter, Write};

use streamprep_core::{DeadLetter, DeadLetterSink, IoError};

/// Writes dead letters as NDJSON to any writer.
pub struct DeadLetterWriter<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write + Send> DeadLetterWriter<W> {
    /// A dead-letter output on `w`.
    pub fn new(w: W) -> Self {
        DeadLetterWriter {
            out: BufWriter::new(w),
        }
    }
}

impl<W: Write + Send> DeadLetterSink for DeadLetterWriter<W> {
    fn write(&mut self, d: &DeadLetter) -> Result<(), IoError> {
        let line = d.to_json();
        serde_json::to_writer(&mut self.out, &line)
            .map_err(|e| IoError::io("writing dead letters", e.into()))?;
        self.out
            .write_all(b"\n")
            .map_err(|e| IoError::io("writing dead letters", e))
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.out
            .flush()
            .map_err(|e| IoError::io("flushing dead letters", e))
    }

    fn finish(&mut self) -> Result<(), IoError> {
        self.out
            .flush()
            .map_err(|e| IoError::io("flushing dead letters", e))
    }
}
