//! The buffer: gathers rows from a source into messages of `size` rows (the buffering
//! factor `b`); the last message may be shorter.

use std::time::{Duration, Instant};

use streamprep_core::{DeadLetter, IoError, Message, Payload, RowBlock, Source, SourceKind};

/// Cuts a source's rows into numbered messages.
#[derive(Debug)]
pub struct Buffer {
    size: usize,
    next_seq: u64,
    avg_row: usize,
    ended: bool,
}

impl Buffer {
    /// A buffer of `size` rows a message (at least 1).
    pub fn new(size: usize) -> Self {
        Buffer {
            size: size.max(1),
            next_seq: 0,
            avg_row: 256,
            ended: false,
        }
    }

    /// A number for a message made outside the buffer (the end-of-stream messages).
    pub fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// Rows a message.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The source said its input is over.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Change the number of rows a message from the next message on (at least 1).
    pub fn set_size(&mut self, size: usize) {
        self.size = size.max(1);
    }

    /// Read the next message; `None` when the source is exhausted. A live source's message
    /// also closes when its oldest row has waited `max_wait`.
    pub fn next_message(
        &mut self,
        src: &mut dyn Source,
        max_wait: Option<Duration>,
    ) -> Result<Option<Message>, IoError> {
        self.next_block(src, max_wait, None)
    }

    /// [`Buffer::next_message`], but a live source with no row by `give_up_at` gives `None`
    /// without ending the input ([`Buffer::ended`] tells the two apart).
    pub fn next_block(
        &mut self,
        src: &mut dyn Source,
        max_wait: Option<Duration>,
        give_up_at: Option<Instant>,
    ) -> Result<Option<Message>, IoError> {
        if self.ended {
            return Ok(None);
        }
        let asked = Instant::now();
        let (payload, rejected, acks, first_at) = match src.kind() {
            SourceKind::Columnar => match src.next_batch(self.size)? {
                Some(b) => (Payload::Columnar(b), Vec::new(), Vec::new(), None),
                None => {
                    self.ended = true;
                    return Ok(None);
                }
            },
            SourceKind::Rows(format) => {
                let mut block = RowBlock {
                    bytes: Vec::with_capacity(self.size.min(1 << 16) * self.avg_row),
                    ends: Vec::with_capacity(self.size.min(1 << 16)),
                    give_up_at,
                    ..RowBlock::default()
                };
                src.read_block(self.size, max_wait, &mut block)?;
                self.ended = block.ended || (block.is_empty() && give_up_at.is_none());
                if block.is_empty() {
                    return Ok(None);
                }
                if !block.ends.is_empty() {
                    self.avg_row = block.bytes.len() / block.ends.len() + 1;
                }
                let rejected = block
                    .rejected
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
                        bytes: block.bytes,
                        ends: block.ends,
                    },
                    rejected,
                    block.acks,
                    block.first_at,
                )
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut msg = Message::new(seq, payload);
        msg.rejected = rejected;
        msg.acks = acks;
        msg.arrived = Some((first_at.unwrap_or(asked), Instant::now()));
        Ok(Some(msg))
    }
}
