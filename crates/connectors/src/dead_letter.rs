//! The dead-letter output: one NDJSON object per refused row or message:
//! `{"seq": .., "step": .., "reason": .., "rows": .., "data": ..}`. Data that is not UTF-8 is
//! kept exactly, as `"data_base64": ..` instead of `"data"`, so every dead letter can be
//! replayed byte for byte.

use std::io::Write;

use crate::file::UnitWriter;

use streamprep_core::{DeadLetter, DeadLetterSink, IoError};

/// Writes dead letters as NDJSON to any writer.
pub struct DeadLetterWriter<W: Write> {
    out: UnitWriter<W>,
    line: Vec<u8>,
}

impl<W: Write + Send> DeadLetterWriter<W> {
    /// A dead-letter output on `w`.
    pub fn new(w: W) -> Self {
        DeadLetterWriter {
            // whole lines per write call: a kill leaves no torn dead letter
            out: UnitWriter::new(w, 64 * 1024),
            line: Vec::new(),
        }
    }
}

impl<W: Write + Send> DeadLetterSink for DeadLetterWriter<W> {
    fn write(&mut self, d: &DeadLetter) -> Result<(), IoError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, &d.to_json())
            .map_err(|e| IoError::io("writing dead letters", e.into()))?;
        self.line.push(b'\n');
        self.out
            .unit(&self.line)
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
