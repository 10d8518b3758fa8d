use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use streamprep_core::{IoError, Read, RowFormat, Source, SourceKind};

/// Bytes read from the input at a time.
const CHUNK: usize = 256 * 1024;

/// Rows from any reader, one per line (files, stdin). Reads in large blocks straight into its
/// own buffer (no `BufReader` in front: that would be one more copy of every byte), finds row
/// boundaries with memchr and copies each message's rows out in one piece.
pub struct LineSource<R> {
    reader: R,
    format: RowFormat,
    header: Option<Vec<u8>>,
    header_read: bool,
    /// Read-ahead block, zeroed once; `buf[pos..hi]` is read but not yet handed out.
    buf: Vec<u8>,
    pos: usize,
    hi: usize,
    /// `buf[pos..scan]` is known to hold no '\n' (a long line arriving in short reads is
    /// searched once, not once a read).
    scan: usize,
    eof: bool,
    /// The longest row taken; a longer one is skipped without being held, as a dead letter.
    max_row: usize,
    /// Skipping an oversized row: its length so far and its first bytes.
    skipping: Option<(usize, Vec<u8>)>,
    /// Rows refused (too long), handed out with the next rows.
    refused: Vec<(String, Vec<u8>)>,
    /// Set to stop: no more is read; the rows already read are handed out, a line begun is
    /// not a row.
    stop: Option<Arc<AtomicBool>>,
}

/// A reader that may block for ever (stdin, a FIFO) made stoppable: a thread reads it into a
/// short queue of blocks, and `read` waits on the queue in short slices, answering
/// `Interrupted` once `stop` is set (the thread stays blocked in its read until the input
/// ends or the process does; it holds at most a few blocks).
pub struct Interruptible {
    blocks: Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    stop: Arc<AtomicBool>,
    ended: bool,
}

impl Interruptible {
    /// Read `reader` on a thread of its own.
    pub fn new<R: std::io::Read + Send + 'static>(mut reader: R, stop: Arc<AtomicBool>) -> Self {
        let (tx, blocks) = crossbeam_channel::bounded(4);
        let _ = std::thread::Builder::new()
            .name("streamprep-stdin".into())
            .spawn(move || loop {
                let mut block = vec![0u8; CHUNK];
                match reader.read(&mut block) {
                    Ok(n) => {
                        block.truncate(n);
                        if tx.send(Ok(block)).is_err() || n == 0 {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            });
        Interruptible {
            blocks,
            current: Vec::new(),
            at: 0,
            stop,
            ended: false,
        }
    }
}

impl std::io::Read for Interruptible {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            if self.stop.load(Ordering::SeqCst) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            match self.blocks.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(b)) => {
                    self.ended = b.is_empty();
                    (self.current, self.at) = (b, 0);
                }
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The first bytes of an oversized row kept in its dead letter.
const EXCERPT: usize = 256;

impl<R: std::io::Read + Send> LineSource<R> {
    /// Rows of `format` from `reader`; for CSV the first non-blank line is the header.
    pub fn new(reader: R, format: RowFormat) -> Self {
        LineSource {
            reader,
            format,
            header: None,
            header_read: format != RowFormat::Csv,
            buf: vec![0u8; CHUNK],
            pos: 0,
            hi: 0,
            scan: 0,
            eof: false,
            max_row: usize::MAX,
            skipping: None,
            refused: Vec::new(),
            stop: None,
        }
    }

    /// Stop reading when `stop` is set (checked before each block is read; a reader that
    /// blocks, like stdin, should be [`Interruptible`] so the check comes in time).
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Refuse rows longer than `max` bytes: each is skipped as it is read (memory stays at
    /// about `max` whatever the line's length) and becomes a dead letter with its first bytes.
    pub fn with_max_row(mut self, max: usize) -> Self {
        self.max_row = max.max(1);
        self
    }

    fn refuse_skipped(&mut self) {
        if let Some((len, head)) = self.skipping.take() {
            self.refused.push((
                format!(
                    "row of {len} bytes is longer than the maximum of {} bytes (max_row); \
                     skipped (its first {} bytes are kept here)",
                    self.max_row,
                    head.len()
                ),
                head,
            ));
        }
    }

    /// Append up to `max` rows (each ending in '\n') to `bytes`, their ends to `ends`. Blank
    /// lines are skipped; a last line without '\n' gets one.
    fn fill(
        &mut self,
        max: usize,
        bytes: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<(), IoError> {
        loop {
            if let Some((len, _)) = self.skipping.as_mut() {
                // drop the oversized row's bytes up to its newline
                match memchr::memchr(b'\n', &self.buf[self.pos..self.hi]) {
                    Some(i) => {
                        *len += i;
                        self.pos += i + 1;
                        self.scan = self.pos;
                        self.refuse_skipped();
                    }
                    None => {
                        *len += self.hi - self.pos;
                        if self.skip_buffered()? {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }
            {
                // Copy whole rows out of buf[pos..hi]; `seg` is the start of the uncopied stretch.
                let data = &self.buf[..self.hi];
                let mut whole_refused = Vec::new();
                let mut seg = self.pos;
                let mut base = bytes.len();
                while ends.len() < max {
                    let from = self.scan.max(self.pos);
                    let Some(i) = memchr::memchr(b'\n', &data[from..]) else {
                        self.scan = self.hi;
                        break;
                    };
                    let end = from + i + 1;
                    if end - self.pos - 1 > self.max_row {
                        // a whole oversized row in the block: refuse it, keep its start
                        bytes.extend_from_slice(&data[seg..self.pos]);
                        let head = data[self.pos..self.pos + EXCERPT.min(end - self.pos)].to_vec();
                        whole_refused.push((end - self.pos - 1, head));
                        seg = end;
                        base = bytes.len();
                        self.pos = end;
                        continue;
                    }
                    if data[self.pos..end].iter().all(u8::is_ascii_whitespace) {
                        // a blank line: copy what came before it, skip it
                        bytes.extend_from_slice(&data[seg..self.pos]);
                        seg = end;
                        base = bytes.len();
                    } else {
                        ends.push(base + (end - seg));
                    }
                    self.pos = end;
                }
                bytes.extend_from_slice(&data[seg..self.pos]);
                for skipped in whole_refused {
                    self.skipping = Some(skipped);
                    self.refuse_skipped();
                }
            }
            if ends.len() == max {
                return Ok(());
            }
            // No '\n' left: what remains is the start of a line. Move it to the front.
            self.buf.copy_within(self.pos..self.hi, 0);
            self.hi -= self.pos;
            self.scan = self.hi;
            self.pos = 0;
            if self.hi > self.max_row {
                // the start of a row already over the limit: skip the rest as it comes
                let head = self.buf[..EXCERPT.min(self.hi)].to_vec();
                self.skipping = Some((self.hi, head));
                if self.skip_buffered()? {
                    return Ok(());
                }
                continue;
            }
            if self.eof {
                let rest = &self.buf[..self.hi];
                if !rest.iter().all(u8::is_ascii_whitespace) {
                    bytes.extend_from_slice(rest);
                    bytes.push(b'\n');
                    ends.push(bytes.len());
                }
                self.hi = 0;
                self.scan = 0;
                return Ok(());
            }
            if self.buf.len() - self.hi < CHUNK / 2 {
                // a line longer than the block so far: grow it
                self.buf.resize(self.hi + CHUNK, 0);
            }
            self.read_more()?;
        }
    }

    /// Drop what is buffered (the part of an oversized row read so far) and read on; true when
    /// the input is over (the row's dead letter is then made).
    fn skip_buffered(&mut self) -> Result<bool, IoError> {
        (self.pos, self.hi, self.scan) = (0, 0, 0);
        if self.eof {
            self.refuse_skipped();
            return Ok(true);
        }
        self.read_more()?;
        Ok(false)
    }

    /// Read what comes next into `buf[hi..]`.
    fn read_more(&mut self) -> Result<(), IoError> {
        let n = loop {
            if self.stopped() {
                // stopped: the input ends here; the start of a line is dropped, not a row
                (self.pos, self.hi, self.scan) = (0, 0, 0);
                self.skipping = None;
                self.eof = true;
                return Ok(());
            }
            match self.reader.read(&mut self.buf[self.hi..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(IoError::io("reading input", e)),
            }
        };
        self.hi += n;
        self.eof = n == 0;
        Ok(())
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
        if !self.refused.is_empty() {
            let (reason, data) = self.refused.remove(0);
            return Ok(Read::Rejected { reason, data });
        }
        self.fill(1, buf, &mut ends)?;
        if ends.is_empty() {
            if let Some((reason, data)) = (!self.refused.is_empty()).then(|| self.refused.remove(0))
            {
                return Ok(Read::Rejected { reason, data });
            }
        }
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
        rejected: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), IoError> {
        if !self.header_read {
            self.header()?;
        }
        self.fill(max, bytes, ends)?;
        rejected.append(&mut self.refused);
        Ok(())
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

    /// A reader that hands out at most 7 bytes a read.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(7).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Lines longer than the read-ahead block (it grows) and rows that arrive a few bytes a
    /// read come out whole and in order, whatever the message size.
    #[test]
    fn long_lines_and_short_reads_come_out_whole() {
        let mut text = Vec::new();
        let mut want = Vec::new();
        for i in 0..40 {
            let len = if i % 9 == 0 { 3 * CHUNK + i } else { 50 + i };
            let line = format!("{{\"i\":{i},\"s\":\"{}\"}}\n", "x".repeat(len));
            text.extend_from_slice(line.as_bytes());
            want.push(line);
            if i % 5 == 0 {
                text.extend_from_slice(b"  \n");
            }
        }
        for max in [1, 3, 40] {
            let mut s = LineSource::new(Trickle(&text), RowFormat::Ndjson);
            let mut got = Vec::new();
            loop {
                let (mut b, mut e, mut r) = (Vec::new(), Vec::new(), Vec::new());
                s.next_rows(max, &mut b, &mut e, &mut r).unwrap();
                let mut start = 0;
                for end in &e {
                    got.push(String::from_utf8(b[start..*end].to_vec()).unwrap());
                    start = *end;
                }
                assert_eq!(start, b.len());
                if e.len() < max {
                    break;
                }
            }
            assert_eq!(got, want, "max {max}");
        }
        let mut s = LineSource::new(&text[..], RowFormat::Ndjson);
        let (mut b, mut e, mut r) = (Vec::new(), Vec::new(), Vec::new());
        s.next_rows(1000, &mut b, &mut e, &mut r).unwrap();
        assert_eq!(e.len(), 40);
        assert_eq!(b, want.concat().into_bytes());
    }
}
