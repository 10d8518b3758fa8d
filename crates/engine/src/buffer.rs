//! The buffer: gathers rows from a source into messages of `size` rows (the buffering
//! factor `b`); the last message may be shorter.

use streamprep_core::{DeadLetter, IoError, Message, Payload, Source, SourceKind};

/// Cuts a source's rows into numbered messages.
#[derive(Debug)]
pub struct Buffer {
    size: usize,
    next_seq: u64,
    avg_row: usize,
}

impl Buffer {
    /// A buffer of `size` rows a message (at least 1).
    pub fn new(size: usize) -> Self {
        Buffer {
            size: size.max(1),
            next_seq: 0,
            avg_row: 256,
        }
    }

    /// Read the next message; `None` when the source is exhausted.
    pub fn next_message(&mut self, src: &mut dyn Source) -> Result<Option<Message>, IoError> {
        let (payload, rejected) = match src.kind() {
            SourceKind::Columnar => match src.next_batch(self.size)? {
                Some(b) => (Payload::Columnar(b), Vec::new()),
                None => return Ok(None),
            },
            SourceKind::Rows(format) => {
                let mut bytes = Vec::with_capacity(self.size * self.avg_row);
                let mut ends = Vec::with_capacity(self.size);
                let mut refused = Vec::new();
                src.next_rows(self.size, &mut bytes, &mut ends, &mut refused)?;
                if ends.is_empty() && refused.is_empty() {
                    return Ok(None);
                }
                if !ends.is_empty() {
                    self.avg_row = bytes.len() / ends.len() + 1;
                }
                let rejected = refused
                    .into_iter()
                    .map(|(reason, data)| DeadLetter {
                        seq: self.next_seq,
                        step: "source".into(),
                        reason,
                        data,
                        rows: 1,
                    })
                    .collect();
                (
                    Payload::Raw {
                        format,
                        bytes,
                        ends,
                    },
                    rejected,
                )
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(Some(Message {
            seq,
            payload,
            rejected,
        }))
    }
}
