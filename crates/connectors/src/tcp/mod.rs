//! Length-framed TCP (seed 004, the Wallaroo job): every frame is a 4-byte big-endian length
//! followed by that many bytes. A source frame holds one row (for CSV, the first frame is the
//! header line); a frame holding the single byte `0x04` (EOT) ends the input. A sink sends each
//! output message as one frame (CSV: the header first), then EOT.

pub mod endpoint;
mod sink;
pub mod source;

pub use sink::FramedSink;
pub use source::FramedSource;

use std::io::{Read as _, Write};

/// The end-of-transmission frame body.
pub const EOT: u8 = 0x04;

/// Write one frame.
pub fn write_frame<W: Write>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let len =
        u32::try_from(body.len()).map_err(|_| std::io::Error::other("frame longer than 4 GiB"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(body)
}

/// Read one frame body into `buf` (appended), refusing bodies longer than `max`.
/// `Ok(None)` at a clean end of stream (between frames).
pub fn read_frame<R: std::io::Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<FrameRead>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..])?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Ok(Some(FrameRead::Torn {
                    announced: 0,
                    got: 0,
                }))
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        // Skip the body without allocating it.
        let skipped = std::io::copy(&mut r.take(len as u64), &mut std::io::sink())?;
        if (skipped as usize) < len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stream ended inside an oversized frame",
            ));
        }
        return Ok(Some(FrameRead::TooLong(len)));
    }
    // Allocated as the bytes arrive, not as announced: a length of 4 GiB followed by nothing
    // costs nothing.
    let start = buf.len();
    let got = r.take(len as u64).read_to_end(buf)?;
    if got < len {
        return Ok(Some(FrameRead::Torn {
            announced: len,
            got: buf.len() - start,
        }));
    }
    Ok(Some(FrameRead::Frame(len)))
}

/// What [`read_frame`] read.
#[derive(Debug, PartialEq)]
pub enum FrameRead {
    /// A frame of this many bytes was appended.
    Frame(usize),
    /// A frame of this many bytes was over the limit and skipped.
    TooLong(usize),
    /// The stream ended inside a frame: `got` of its `announced` bytes were appended.
    Torn {
        /// The frame's length.
        announced: usize,
        /// The bytes that arrived.
        got: usize,
    },
}
