//! Files and standard streams: NDJSON and CSV read line by line (never the whole file in
//! memory), Parquet read batch by batch; sinks write what `result` encoded.

pub mod endpoint;
mod parquet;
mod sink;
mod source;

pub use parquet::{ParquetSink, ParquetSource};
pub use sink::WriterSink;
pub use source::{Interruptible, LineSource};

/// A buffered writer that only ever hands whole units (rows, or messages of whole rows) to
/// the system: each `write` system call ends at the end of a unit, so a process killed
/// between two calls (even by `kill -9`) leaves no torn row behind.
pub struct UnitWriter<W: std::io::Write> {
    inner: W,
    buf: Vec<u8>,
    cap: usize,
}

impl<W: std::io::Write> UnitWriter<W> {
    /// Gather up to `cap` bytes of whole units before writing them.
    pub fn new(inner: W, cap: usize) -> Self {
        UnitWriter {
            inner,
            buf: Vec::with_capacity(cap),
            cap,
        }
    }

    /// Queue one whole unit (it should end with its newline).
    pub fn unit(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.buf.len() + bytes.len() > self.cap && !self.buf.is_empty() {
            self.write_out()?;
        }
        if bytes.len() >= self.cap {
            // a unit larger than the buffer goes in one call of its own
            return self.inner.write_all(bytes);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn write_out(&mut self) -> std::io::Result<()> {
        let r = self.inner.write_all(&self.buf);
        self.buf.clear();
        r
    }

    /// Write out every queued unit and flush the writer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.write_out()?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::UnitWriter;

    /// Records the size of every write call.
    struct Calls(Vec<Vec<u8>>);

    impl std::io::Write for Calls {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_write_call_ends_at_the_end_of_a_unit() {
        let mut w = UnitWriter::new(Calls(Vec::new()), 64);
        let mut all = Vec::new();
        for i in 0..200 {
            let unit = format!("{{\"row\":{}}}\n", "x".repeat(i % 90));
            all.extend_from_slice(unit.as_bytes());
            w.unit(unit.as_bytes()).expect("unit");
        }
        w.flush().expect("flush");
        let calls = &w.inner.0;
        assert!(calls.len() > 10);
        assert!(
            calls.iter().all(|c| c.ends_with(b"\n")),
            "a call ended mid-row"
        );
        assert_eq!(calls.concat(), all);
    }
}
