use streamprep_core::{IoError, Read, RowFormat, Source, SourceKind};

/// Bytes read from the input at a time.
const CHUNK: usize = 256 * 1024;

/// Rows from any reader, one per line (files, stdin). Reads in large blocks, finds row
/// boundaries with memchr and copies each message's rows out in one piece.
pub struct LineSource<R> {
    reader: R,
    format: RowFormat,
    header: Option<Vec<u8>>,
    header_read: bool,
    /// Read-ahead block; `carry[pos..]` is not yet handed out.
    carry: Vec<u8>,
    pos: usize,
    scratch: Box<[u8]>,
    eof: bool,
}

impl<R: std::io::Read + Send> LineSource<R> {
    /// Rows of `format` from `reader`; for CSV the first non-blank line is the header.
    pub fn new(reader: R, format: RowFormat) -> Self {
        LineSource {
            reader,
            format,
            header: None,
            header_read: format != RowFormat::Csv,
            carry: Vec::new(),
            pos: 0,
            scratch: vec![0u8; CHUNK].into_boxed_slice(),
            eof: false,
        }
    }

    /// Fill `bytes`/`ends` with up to `max` non-blank lines, each ending in `\n`. Rows are found
    /// in the read-ahead block with memchr and copied out in one piece per message.
    fn fill(
        &mut self,
        max: usize,
        bytes: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<(), IoError> {
        loop {
            // Copy whole rows out of carry[pos..]; `seg` is the start of the uncopied stretch.
            let mut seg = self.pos;
            let mut base = bytes.len();
            while ends.len() < max {
                let Some(i) = memchr::memchr(b'\n', &self.carry[self.pos..]) else {
                    break;
                };
                let end = self.pos + i + 1;
                if self.carry[self.pos..end]
                    .iter()
                    .all(u8::is_ascii_whitespace)
                {
                    // a blank line is not a row: copy what precedes it and skip it
                    bytes.extend_from_slice(&self.carry[seg..self.pos]);
                    seg = end;
                    base = bytes.len();
                } else {
                    ends.push(base + (end - seg));
                }
                self.pos = end;
            }
            bytes.extend_from_slice(&self.carry[seg..self.pos]);
            if ends.len() == max {
                return Ok(());
            }
            // Keep the partial last line, read more behind it.
            self.carry.drain(..self.pos);
            self.pos = 0;
            if self.eof {
                if !self.carry.iter().all(u8::is_ascii_whitespace) {
                    bytes.extend_from_slice(&self.carry);
                    bytes.push(b'\n');
                    ends.push(bytes.len());
                }
                self.carry.clear();
                return Ok(());
            }
            // Read into the scratch block (zeroed once) and append what came: cheaper than
            // zero-filling the carry before every read.
            let n = loop {
                match self.reader.read(&mut self.scratch[..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(IoError::io("reading input", e)),
                }
            };
            self.carry.extend_from_slice(&self.scratch[..n]);
            self.eof = n == 0;
        }
    }
}

impl<R: std::io::Read + Send> Source for LineSource<R> {
    fn kind(&self) -> SourceKind {
        SourceKind::Rows(self.format)
    }

    fn header(&mut self) -> Result<Option<Vec<u8>>, IoError> {
        if !self.header_read {
            self.header_read = true;
            let (mut b, mut e) = (Vec::new(), Vec::new());
            self.fill(1, &mut b, &mut e)?;
            if let Some(&end) = e.first() {
                let mut h = b[..end].to_vec();
                while matches!(h.last(), Some(b'\n' | b'\r')) {
                    h.pop();
                }
                self.header = Some(h);
            }
        }
        Ok(self.header.clone())
    }

    fn next_row(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError> {
        if !self.header_read {
            self.header()?;
        }
        let start = buf.len();
        let mut ends = Vec::with_capacity(1);
        self.fill(1, buf, &mut ends)?;
        if ends.is_empty() {
            return Ok(Read::End);
        }
        while buf.len() > start && matches!(buf[buf.len() - 1], b'\n' | b'\r') {
            buf.pop();
        }
        Ok(Read::Row)
    }

    fn next_rows(
        &mut self,
        max: usize,
        bytes: &mut Vec<u8>,
        ends: &mut Vec<usize>,
        _rejected: &mut Vec<(String, String)>,
    ) -> Result<(), IoError> {
        if !self.header_read {
            self.header()?;
        }
        self.fill(max, bytes, ends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_across_reads_blank_lines_and_missing_final_newline() {
        let text = b"h1,h2\r\n\n1,2\r\n\n  \n3,4\n5,6";
        let mut s = LineSource::new(&text[..], RowFormat::Csv);
        assert_eq!(s.header().unwrap().as_deref(), Some(&b"h1,h2"[..]));
        let (mut b, mut e, mut r) = (Vec::new(), Vec::new(), Vec::new());
        s.next_rows(2, &mut b, &mut e, &mut r).unwrap();
        assert_eq!(b, b"1,2\r\n3,4\n");
        assert_eq!(e, vec![5, 9]);
        let (mut b, mut e) = (Vec::new(), Vec::new());
        s.next_rows(2, &mut b, &mut e, &mut r).unwrap();
        assert_eq!((b.as_slice(), e), (&b"5,6\n"[..], vec![4]));
        let (mut b, mut e) = (Vec::new(), Vec::new());
        s.next_rows(2, &mut b, &mut e, &mut r).unwrap();
        assert!(b.is_empty() && e.is_empty());
    }
}
