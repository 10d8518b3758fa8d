use std::io::BufRead;

use streamprep_core::{IoError, Read, RowFormat, Source, SourceKind};

/// Rows from any buffered reader, one per line (files, stdin).
pub struct LineSource<R> {
    reader: R,
    format: RowFormat,
    header: Option<Vec<u8>>,
    header_read: bool,
}

impl<R: BufRead + Send> LineSource<R> {
    /// Rows of `format` from `reader`; for CSV the first non-empty line is the header.
    pub fn new(reader: R, format: RowFormat) -> Self {
        LineSource {
            reader,
            format,
            header: None,
            header_read: format != RowFormat::Csv,
        }
    }

    fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<bool, IoError> {
        let start = buf.len();
        let n = self
            .reader
            .read_until(b'\n', buf)
            .map_err(|e| IoError::io("reading input", e))?;
        if n == 0 {
            return Ok(false);
        }
        while buf.len() > start && matches!(buf[buf.len() - 1], b'\n' | b'\r') {
            buf.pop();
        }
        Ok(true)
    }
}

impl<R: BufRead + Send> Source for LineSource<R> {
    fn kind(&self) -> SourceKind {
        SourceKind::Rows(self.format)
    }

    fn header(&mut self) -> Result<Option<Vec<u8>>, IoError> {
        if !self.header_read {
            self.header_read = true;
            let mut h = Vec::new();
            while self.read_line(&mut h)? {
                if !h.iter().all(u8::is_ascii_whitespace) {
                    self.header = Some(h);
                    break;
                }
                h.clear();
            }
        }
        Ok(self.header.clone())
    }

    fn next_row(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError> {
        if !self.header_read {
            self.header()?;
        }
        Ok(if self.read_line(buf)? {
            Read::Row
        } else {
            Read::End
        })
    }
}
