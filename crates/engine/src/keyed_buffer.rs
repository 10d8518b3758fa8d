//! The keyed buffer (seed 003's director): with a `key`, rows are gathered into messages **per
//! key**. A key's message closes when it holds `buffer` rows, when its oldest row has waited
//! `max_wait` (live sources), when the key had no row for `key_ttl`, when more than `max_keys`
//! keys wait (the one waiting longest closes first), when the rows waiting pass a memory bound,
//! and at the end of the input (or a stop), oldest first. Messages are numbered in the order
//! they close; that is the order they reach the sinks, so `inline` and the pool give the same
//! output, each key's rows in input order.
//!
//! Acknowledgements: a source block's acks travel with the message whose closing leaves no row
//! of that block (or of any block before it) waiting, so an ack is sent only once every row it
//! covers has reached the sinks (delivery follows the numbering).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use streamprep_core::{AckToken, Message, Payload, RowFormat};

use crate::keyed::KeyRouter;

/// Rows waiting in the keyed buffer, at most (bytes): beyond, the key waiting longest closes.
pub const MAX_PENDING_BYTES: usize = 64 << 20;

/// How often idle keys are looked for (`key_ttl`).
const SWEEP: Duration = Duration::from_millis(100);

/// The bounds a keyed buffer closes messages by, besides its size.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyedBounds {
    /// A live source's key closes its message when its oldest row waited this long.
    pub max_wait: Option<Duration>,
    /// A key with no row for this long closes its message.
    pub key_ttl: Option<Duration>,
    /// At most this many keys wait.
    pub max_keys: Option<usize>,
    /// At most this many bytes of rows wait.
    pub max_bytes: usize,
}

/// One key's waiting rows.
struct Bucket {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// Row number (in the input) of its first row: the order buckets close in at the end.
    first_no: u64,
    first_at: Instant,
    last_at: Instant,
    /// Rows of each source block, `(block, rows)`, in order.
    blocks: Vec<(u64, usize)>,
}

/// The busiest keys over the last second (the inspector): `(key, rows/s, last seen)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BusyKey {
    /// The key as it appears in the rows (missing: empty).
    pub key: String,
    /// Rows a second over the last second.
    pub rows_per_s: f64,
    /// Seconds since its last row (at the time of the sample).
    pub last_seen_s: f64,
}

/// Counts rows per key over one-second windows, bounded: a window counts at most
/// `INSPECT_KEYS` distinct keys (the rest are not ranked that second).
struct Inspector {
    window: HashMap<Vec<u8>, (u64, Instant)>,
    started: Instant,
    top: Vec<BusyKey>,
    fresh: bool,
}

const INSPECT_KEYS: usize = 4096;
const TOP_KEYS: usize = 10;

impl Inspector {
    fn new() -> Self {
        Inspector {
            window: HashMap::new(),
            started: Instant::now(),
            top: Vec::new(),
            fresh: false,
        }
    }

    fn count(&mut self, key: &[u8], now: Instant) {
        if let Some(e) = self.window.get_mut(key) {
            e.0 += 1;
            e.1 = now;
        } else if self.window.len() < INSPECT_KEYS {
            self.window.insert(key.to_vec(), (1, now));
        }
    }

    fn roll(&mut self, now: Instant) {
        let span = now.duration_since(self.started);
        if span < Duration::from_secs(1) {
            return;
        }
        let secs = span.as_secs_f64();
        let mut all: Vec<(Vec<u8>, (u64, Instant))> = self.window.drain().collect();
        all.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
        self.top = all
            .into_iter()
            .take(TOP_KEYS)
            .map(|(k, (n, seen))| BusyKey {
                key: String::from_utf8_lossy(&k).into_owned(),
                rows_per_s: n as f64 / secs,
                last_seen_s: now.duration_since(seen).as_secs_f64(),
            })
            .collect();
        self.started = now;
        self.fresh = true;
    }
}

/// Gathers rows into messages per key.
pub struct KeyedBuffer {
    router: KeyRouter,
    size: usize,
    bounds: KeyedBounds,
    /// Key (`[1] ++ key`, or `[0]` for a row without one) -> its waiting rows.
    buckets: HashMap<Vec<u8>, Bucket>,
    /// Waiting keys by their first row's number (oldest first).
    by_first: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    row_no: u64,
    /// Source blocks whose acks are not out yet: `(rows not yet in a closed message, acks)`,
    /// the first being block `ledger_base`.
    ledger: VecDeque<(usize, Vec<AckToken>)>,
    ledger_base: u64,
    ready: VecDeque<Message>,
    seq: u64,
    last_sweep: Instant,
    /// A CSV record whose quoted field spans lines: the key its next lines belong to.
    open_record: Option<Vec<u8>>,
    inspector: Inspector,
    scratch: Vec<u8>,
    /// The rows' format (from the blocks).
    format: RowFormat,
}

impl KeyedBuffer {
    /// A keyed buffer of `size` rows a key's message.
    pub fn new(router: KeyRouter, size: usize, bounds: KeyedBounds) -> Self {
        KeyedBuffer {
            router,
            size: size.max(1),
            bounds,
            buckets: HashMap::new(),
            by_first: BTreeMap::new(),
            pending_bytes: 0,
            row_no: 0,
            ledger: VecDeque::new(),
            ledger_base: 0,
            ready: VecDeque::new(),
            seq: 0,
            last_sweep: Instant::now(),
            open_record: None,
            inspector: Inspector::new(),
            scratch: Vec::new(),
            format: RowFormat::Ndjson,
        }
    }

    /// Change the rows a key's message (adaptive buffering).
    pub fn set_size(&mut self, size: usize) {
        self.size = size.max(1);
    }

    /// A number for a message made outside the buffer (the end-of-stream messages).
    pub fn take_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq - 1
    }

    /// The next closed message, numbered.
    pub fn pop(&mut self) -> Option<Message> {
        self.ready.pop_front()
    }

    /// Keys waiting now.
    pub fn waiting_keys(&self) -> usize {
        self.buckets.len()
    }

    /// The busiest keys of the last second, once a second (`None` in between).
    pub fn busiest(&mut self) -> Option<Vec<BusyKey>> {
        self.inspector.roll(Instant::now());
        if std::mem::take(&mut self.inspector.fresh) {
            Some(self.inspector.top.clone())
        } else {
            None
        }
    }

    /// When the reader should give up waiting for a row to close waiting keys' messages
    /// (`None`: nothing waits on time).
    pub fn give_up_at(&self) -> Option<Instant> {
        if self.buckets.is_empty() {
            return None;
        }
        let wait = self.bounds.max_wait.and_then(|w| {
            let (_, key) = self.by_first.iter().next()?;
            Some(self.buckets.get(key)?.first_at + w)
        });
        let sweep = self.bounds.key_ttl.map(|_| Instant::now() + SWEEP);
        match (wait, sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Take a block the source gave (a message of the plain buffer): its rows go to their
    /// keys' messages, the source's refusals straight on in a message of their own.
    pub fn push(&mut self, msg: Message) {
        let now = Instant::now();
        let block = self.ledger_base + self.ledger.len() as u64;
        let Message {
            payload,
            rejected,
            acks,
            dropped,
            arrived,
            ..
        } = msg;
        let (format, bytes, ends) = match payload {
            Payload::Raw {
                format,
                bytes,
                ends,
            } => (format, bytes, ends),
            Payload::Columnar(b) => {
                // a columnar block is not cut by key: it goes on whole (its steps still keep
                // their state per key)
                self.ledger.push_back((0, acks));
                let mut m = Message::new(0, Payload::Columnar(b));
                m.rejected = rejected;
                m.dropped = dropped;
                m.arrived = arrived;
                self.close_message(m);
                return;
            }
        };
        self.format = format;
        self.ledger.push_back((ends.len(), acks));
        if !rejected.is_empty() || dropped > 0 {
            let mut m = Message::new(
                0,
                Payload::Raw {
                    format,
                    bytes: Vec::new(),
                    ends: Vec::new(),
                },
            );
            m.rejected = rejected;
            m.dropped = dropped;
            m.arrived = arrived;
            self.close_message(m);
        }
        let first_at = arrived.map_or(now, |(first, _)| first);
        let mut start = 0;
        for &end in &ends {
            let row = &bytes[start..end];
            start = end;
            let (key, was_open) = match self.open_record.take() {
                Some(k) => (k, true),
                None => {
                    let mut k = std::mem::take(&mut self.scratch);
                    k.clear();
                    match self
                        .router
                        .key_of(format, crate::keyed::trim_eol(row))
                        .as_deref()
                    {
                        Some(v) => {
                            k.push(1);
                            k.extend_from_slice(v);
                        }
                        None => k.push(0),
                    }
                    (k, false)
                }
            };
            // a CSV record whose quoted field goes on to the next line keeps its key open
            let record_open = format == RowFormat::Csv
                && (row.iter().filter(|b| **b == b'"').count() % 2 == 1) != was_open;
            if !was_open {
                self.inspector.count(&key[1..], now);
            }
            let row_no = self.row_no;
            self.row_no += 1;
            if !self.buckets.contains_key(&key) {
                self.by_first.insert(row_no, key.clone());
                self.buckets.insert(
                    key.clone(),
                    Bucket {
                        bytes: Vec::new(),
                        ends: Vec::new(),
                        first_no: row_no,
                        first_at,
                        last_at: now,
                        blocks: Vec::new(),
                    },
                );
            }
            let Some(bucket) = self.buckets.get_mut(&key) else {
                continue;
            };
            bucket.bytes.extend_from_slice(row);
            bucket.ends.push(bucket.bytes.len());
            bucket.last_at = now;
            match bucket.blocks.last_mut() {
                Some((b, n)) if *b == block => *n += 1,
                _ => bucket.blocks.push((block, 1)),
            }
            self.pending_bytes += row.len();
            let full = bucket.ends.len() >= self.size;
            if record_open {
                self.open_record = Some(key);
            } else {
                if full {
                    self.close(&key);
                }
                self.scratch = key;
            }
            // the bounds on waiting keys and bytes hold after every row
            while self.bounds.max_keys.is_some_and(|m| self.buckets.len() > m)
                || self.pending_bytes > self.bounds.max_bytes.max(1)
            {
                match self.oldest() {
                    Some(k) => self.close(&k),
                    None => break,
                }
            }
        }
        if ends.is_empty() && self.ledger.len() == 1 && self.ready.is_empty() {
            // nothing but acknowledgements (and nothing before them waits): they go on now
            self.close_message(Message::new(
                0,
                Payload::Raw {
                    format,
                    bytes: Vec::new(),
                    ends: Vec::new(),
                },
            ));
        }
        self.enforce_bounds(now);
    }

    /// Close every waiting key's message, oldest first (end of input, a stop).
    pub fn flush(&mut self) {
        self.open_record = None;
        let keys: Vec<Vec<u8>> = self.by_first.values().cloned().collect();
        for key in keys {
            self.close(&key);
        }
    }

    /// Close what waited too long (call when the source gave nothing by `give_up_at`).
    pub fn tick(&mut self) {
        self.enforce_bounds(Instant::now());
    }

    /// The waiting key whose first row came first, leaving out a CSV record still open.
    fn oldest(&self) -> Option<Vec<u8>> {
        self.by_first
            .values()
            .find(|k| self.open_record.as_ref() != Some(*k))
            .cloned()
    }

    fn enforce_bounds(&mut self, now: Instant) {
        if let Some(w) = self.bounds.max_wait {
            while let Some(key) = self.oldest() {
                match self.buckets.get(&key) {
                    Some(b) if now.duration_since(b.first_at) >= w => self.close(&key),
                    _ => break,
                }
            }
        }
        if let Some(ttl) = self.bounds.key_ttl {
            if now.duration_since(self.last_sweep) >= SWEEP {
                self.last_sweep = now;
                let mut idle: Vec<(u64, Vec<u8>)> = self
                    .buckets
                    .iter()
                    .filter(|(k, b)| {
                        now.duration_since(b.last_at) > ttl && self.open_record.as_ref() != Some(*k)
                    })
                    .map(|(k, b)| (b.first_no, k.clone()))
                    .collect();
                idle.sort();
                for (_, key) in idle {
                    self.close(&key);
                }
            }
        }
    }

    /// Close a key's message.
    fn close(&mut self, key: &[u8]) {
        let Some(b) = self.buckets.remove(key) else {
            return;
        };
        self.by_first.remove(&b.first_no);
        self.pending_bytes -= b.bytes.len();
        for (block, n) in &b.blocks {
            if let Some(e) = self.ledger.get_mut((block - self.ledger_base) as usize) {
                e.0 -= n;
            }
        }
        let mut m = Message::new(
            0,
            Payload::Raw {
                format: self.format,
                bytes: b.bytes,
                ends: b.ends,
            },
        );
        m.arrived = Some((b.first_at, Instant::now()));
        self.close_message(m);
    }

    /// Number a closed message and give it the acks no waiting row holds back any more.
    fn close_message(&mut self, mut m: Message) {
        while self.ledger.front().is_some_and(|(n, _)| *n == 0) {
            if let Some((_, acks)) = self.ledger.pop_front() {
                m.acks.extend(acks);
            }
            self.ledger_base += 1;
        }
        m.seq = self.seq;
        self.seq += 1;
        self.ready.push_back(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(rows: &[&str], acks: &[u64]) -> Message {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for r in rows {
            bytes.extend_from_slice(r.as_bytes());
            bytes.push(b'\n');
            ends.push(bytes.len());
        }
        let mut m = Message::new(
            0,
            Payload::Raw {
                format: RowFormat::Ndjson,
                bytes,
                ends,
            },
        );
        m.acks = acks.to_vec();
        m
    }

    fn text(m: &Message) -> Vec<String> {
        m.payload
            .raw_rows()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    fn buffer(size: usize, bounds: KeyedBounds) -> KeyedBuffer {
        KeyedBuffer::new(
            KeyRouter::new("k", 1, None, b','),
            size,
            KeyedBounds {
                max_bytes: MAX_PENDING_BYTES,
                ..bounds
            },
        )
    }

    #[test]
    fn a_keys_message_closes_when_full_and_the_rest_at_the_end_oldest_first() {
        let mut kb = buffer(2, KeyedBounds::default());
        kb.push(block(
            &[
                r#"{"k":"a","i":0}"#,
                r#"{"k":"b","i":1}"#,
                r#"{"i":2}"#,
                r#"{"k":"a","i":3}"#,
                r#"{"k":"c","i":4}"#,
            ],
            &[7],
        ));
        let first = kb.pop().expect("a is full");
        assert_eq!(first.seq, 0);
        assert_eq!(text(&first), [r#"{"k":"a","i":0}"#, r#"{"k":"a","i":3}"#]);
        assert!(first.acks.is_empty(), "rows of the block still wait");
        assert!(kb.pop().is_none());
        assert_eq!(kb.waiting_keys(), 3);
        kb.flush();
        let rest: Vec<Message> = std::iter::from_fn(|| kb.pop()).collect();
        let rows: Vec<Vec<String>> = rest.iter().map(text).collect();
        assert_eq!(
            rows,
            [
                vec![r#"{"k":"b","i":1}"#.to_string()],
                vec![r#"{"i":2}"#.to_string()],
                vec![r#"{"k":"c","i":4}"#.to_string()]
            ]
        );
        assert_eq!(
            rest.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1, 2, 3],
            "numbered as they close"
        );
        // the block's ack goes with the message that leaves none of its rows waiting
        assert_eq!(rest[2].acks, [7]);
        assert!(rest[0].acks.is_empty() && rest[1].acks.is_empty());
    }

    #[test]
    fn acks_wait_for_every_earlier_block() {
        let mut kb = buffer(2, KeyedBounds::default());
        kb.push(block(&[r#"{"k":"a"}"#], &[1]));
        kb.push(block(&[r#"{"k":"b"}"#, r#"{"k":"b"}"#], &[2]));
        // b's message is full and holds all of block 2, but block 1's row still waits
        let b = kb.pop().expect("b");
        assert!(b.acks.is_empty(), "{:?}", b.acks);
        kb.push(block(&[r#"{"k":"a"}"#], &[3]));
        let a = kb.pop().expect("a");
        assert_eq!(a.acks, [1, 2, 3], "in order, once nothing before waits");
    }

    #[test]
    fn max_keys_and_max_wait_close_the_oldest_waiting_key() {
        let mut kb = buffer(
            10,
            KeyedBounds {
                max_keys: Some(2),
                ..KeyedBounds::default()
            },
        );
        kb.push(block(
            &[
                r#"{"k":"a"}"#,
                r#"{"k":"b"}"#,
                r#"{"k":"a"}"#,
                r#"{"k":"c"}"#,
            ],
            &[],
        ));
        let m = kb.pop().expect("a closed for c");
        assert_eq!(text(&m), [r#"{"k":"a"}"#, r#"{"k":"a"}"#]);
        assert_eq!(kb.waiting_keys(), 2);
        let mut kb = buffer(
            10,
            KeyedBounds {
                max_wait: Some(Duration::from_millis(30)),
                key_ttl: Some(Duration::from_millis(30)),
                ..KeyedBounds::default()
            },
        );
        kb.push(block(&[r#"{"k":"a"}"#], &[]));
        assert!(kb.pop().is_none());
        let give_up = kb.give_up_at().expect("a waits on time");
        assert!(give_up <= Instant::now() + Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(120));
        kb.tick();
        assert_eq!(text(&kb.pop().expect("closed by time")), [r#"{"k":"a"}"#]);
        assert!(kb.give_up_at().is_none(), "nothing waits");
    }

    #[test]
    fn a_csv_record_over_lines_stays_in_one_message() {
        let mut kb = KeyedBuffer::new(
            KeyRouter::new("k", 1, Some(b"k,note"), b','),
            1,
            KeyedBounds {
                max_bytes: MAX_PENDING_BYTES,
                ..KeyedBounds::default()
            },
        );
        let text_in = "a,\"one\nline two\"\nb,x\n";
        let mut ends = Vec::new();
        for (i, b) in text_in.bytes().enumerate() {
            if b == b'\n' {
                ends.push(i + 1);
            }
        }
        kb.push(Message::new(
            0,
            Payload::Raw {
                format: RowFormat::Csv,
                bytes: text_in.as_bytes().to_vec(),
                ends,
            },
        ));
        let a = kb.pop().expect("a");
        assert_eq!(
            text(&a),
            ["a,\"one", "line two\""],
            "both lines of a's record"
        );
        assert_eq!(text(&kb.pop().expect("b")), ["b,x"]);
    }

    #[test]
    fn the_inspector_ranks_the_busiest_keys() {
        let mut kb = buffer(1000, KeyedBounds::default());
        let rows: Vec<String> = (0..300)
            .map(|i| format!("{{\"k\":\"{}\"}}", if i % 3 == 0 { "hot" } else { "cold" }))
            .chain((0..50).map(|i| format!("{{\"k\":\"x{i}\"}}")))
            .collect();
        let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
        kb.push(block(&refs, &[]));
        kb.inspector.started -= Duration::from_secs(2);
        let top = kb.busiest().expect("a second went by");
        assert_eq!(top.len(), TOP_KEYS);
        assert_eq!((top[0].key.as_str(), top[1].key.as_str()), ("cold", "hot"));
        assert!((top[0].rows_per_s - 100.0).abs() < 5.0, "{top:?}");
        assert!(kb.busiest().is_none(), "once a second");
    }
}
