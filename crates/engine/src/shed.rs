//! The `drop_oldest` policy: the source is read on its own thread into a queue that holds at
//! most `capacity` messages with rows; when it is full, the oldest waiting message is shed (its
//! rows dropped and counted, its acknowledgements and the source's rejections kept, so the
//! counters and the source's acks still hold). Shed messages in a row merge into one, so the
//! queue stays short however far the source runs ahead. The source never waits for the chain.
//! The consumer numbers messages as it takes them (shedding merges numbers away).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use streamprep_core::{IoError, Message};

use crate::stats::Stats;

struct State {
    queue: VecDeque<Message>,
    /// Messages in the queue that still hold rows.
    live: usize,
    /// The reader is done: `Ok` at the end of the input, or the source's error.
    done: Option<Result<(), IoError>>,
    /// The consumer stopped (a sink failed): the reader should stop too.
    closed: bool,
}

/// A bounded queue that sheds its oldest message instead of blocking the producer.
pub(crate) struct SheddingQueue {
    capacity: usize,
    state: Mutex<State>,
    ready: Condvar,
}

impl SheddingQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        SheddingQueue {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                live: 0,
                done: None,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a message, shedding the oldest waiting one when full. False once the consumer
    /// has gone.
    pub(crate) fn push(&self, msg: Message, stats: &Stats) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        if s.live >= self.capacity {
            // shed messages gather at the front: the oldest live one follows them
            if let Some(i) = s
                .queue
                .iter()
                .position(|m| m.dropped == 0 && m.flush.is_none())
            {
                let rows = s.queue[i].shed();
                Stats::add(&stats.dropped, rows as u64);
                s.live -= 1;
                if i > 0 {
                    let old = s.queue.remove(i).expect("index found above");
                    let into = &mut s.queue[i - 1];
                    into.dropped += old.dropped;
                    into.acks.extend(old.acks);
                    into.rejected.extend(old.rejected);
                    // it is done with: count it as delivered (shed), as its merged peers are
                    Stats::add(&stats.messages, 1);
                }
            }
        }
        s.live += 1;
        s.queue.push_back(msg);
        self.ready.notify_one();
        true
    }

    /// The reader is done (the input ended or the source failed).
    pub(crate) fn finish(&self, result: Result<(), IoError>) {
        let mut s = self.lock();
        s.done = Some(result);
        self.ready.notify_all();
    }

    /// The consumer stops taking messages.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// The next message, waiting for one; `None` at the end of the input.
    pub(crate) fn pop(&self) -> Result<Option<Message>, IoError> {
        let mut s = self.lock();
        loop {
            if let Some(m) = s.queue.pop_front() {
                if m.dropped == 0 {
                    s.live -= 1;
                }
                return Ok(Some(m));
            }
            // at the end, hand out the source's error once, then report the end
            match &mut s.done {
                Some(done) => return std::mem::replace(done, Ok(())).map(|()| None),
                None => s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamprep_core::{Payload, RowFormat};

    fn msg(seq: u64, rows: usize) -> Message {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..rows {
            bytes.extend_from_slice(b"{}\n");
            ends.push(bytes.len());
        }
        let mut m = Message::new(
            seq,
            Payload::Raw {
                format: RowFormat::Ndjson,
                bytes,
                ends,
            },
        );
        m.acks = vec![seq];
        m
    }

    #[test]
    fn sheds_the_oldest_merging_shed_messages_and_keeps_acks() {
        let q = SheddingQueue::new(2);
        let stats = Stats::default();
        for seq in 0..5 {
            assert!(q.push(msg(seq, 3), &stats));
        }
        q.finish(Ok(()));
        let got: Vec<(u64, usize, usize, Vec<u64>)> = std::iter::from_fn(|| q.pop().unwrap())
            .map(|m| (m.seq, m.payload.rows(), m.dropped, m.acks))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, 9, vec![0, 1, 2]),
                (3, 3, 0, vec![3]),
                (4, 3, 0, vec![4]),
            ]
        );
        assert_eq!(stats.snapshot().dropped, 9);
        // however many are shed, the queue holds one shed message and `capacity` live ones
        let q = SheddingQueue::new(2);
        for seq in 0..10_000 {
            assert!(q.push(msg(seq, 1), &stats));
        }
        assert_eq!(q.lock().queue.len(), 3);
    }
}
