//! What travels from the buffer to the chain, and what the chain rejects.

use crate::Batch;

/// How the rows of a raw payload are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowFormat {
    /// One JSON object per row (a row may also be a JSON array of objects).
    Ndjson,
    /// One CSV line per row; the header is kept as stream state.
    Csv,
}

/// The content of a message before `prepare`.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Rows as bytes, each ending in `\n`; `ends[i]` is the end offset of row `i` in `bytes`.
    Raw {
        /// The format of every row.
        format: RowFormat,
        /// All rows, back to back, each terminated by a newline.
        bytes: Vec<u8>,
        /// End offset of each row in `bytes`.
        ends: Vec<usize>,
    },
    /// Already columnar (e.g. read from Parquet).
    Columnar(Batch),
}

impl Payload {
    /// Number of rows (units) in the payload as the buffer counted them.
    pub fn rows(&self) -> usize {
        match self {
            Payload::Raw { ends, .. } => ends.len(),
            Payload::Columnar(b) => b.num_rows(),
        }
    }

    /// Iterate over the raw rows without their line ends (empty for a columnar payload).
    pub fn raw_rows(&self) -> impl Iterator<Item = &[u8]> {
        let (bytes, ends): (&[u8], &[usize]) = match self {
            Payload::Raw { bytes, ends, .. } => (bytes, ends),
            Payload::Columnar(_) => (&[], &[]),
        };
        split_rows(bytes, ends)
    }
}

/// The rows of back-to-back row bytes (`ends[i]` = end of row `i`), without their trailing
/// `\n` / `\r\n`.
pub fn split_rows<'a>(bytes: &'a [u8], ends: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let starts = std::iter::once(0).chain(ends.iter().copied());
    starts.zip(ends.iter().copied()).map(move |(s, e)| {
        let mut row = &bytes[s..e];
        while let [rest @ .., b'\n' | b'\r'] = row {
            row = rest;
        }
        row
    })
}

/// A message: what the buffer gathered, numbered in input order.
#[derive(Debug, Clone)]
pub struct Message {
    /// Sequence number in input order, starting at 0.
    pub seq: u64,
    /// The rows.
    pub payload: Payload,
    /// Rows the source itself refused (e.g. an oversized frame), carried along so dead
    /// letters reach their sink in input order.
    pub rejected: Vec<DeadLetter>,
    /// What the source wants acknowledged once this message has reached the sinks (MQTT
    /// publishes whose last row is in it).
    pub acks: Vec<crate::io::AckToken>,
    /// Rows shed by the `drop_oldest` policy: the payload is gone, only the count and the
    /// acknowledgements travel on, so the counters and the source's acks stay in order.
    pub dropped: usize,
    /// When its first row arrived and when the buffer closed it (for end-to-end latency).
    pub arrived: Option<(std::time::Instant, std::time::Instant)>,
    /// The end of the stream for this worker (no rows): the steps give what they still hold
    /// (a resample's last bin, a whole series' downsampled points).
    pub flush: Option<usize>,
}

impl Message {
    /// A message of `payload`, numbered `seq`, with nothing refused, acknowledged or dropped.
    pub fn new(seq: u64, payload: Payload) -> Self {
        Message {
            seq,
            payload,
            rejected: Vec::new(),
            acks: Vec::new(),
            dropped: 0,
            arrived: None,
            flush: None,
        }
    }

    /// The end of the stream for `worker`'s chain (see [`Message::flush`]).
    pub fn flush(seq: u64, worker: usize) -> Self {
        let mut m = Message::new(
            seq,
            Payload::Raw {
                format: crate::RowFormat::Ndjson,
                bytes: Vec::new(),
                ends: Vec::new(),
            },
        );
        m.flush = Some(worker);
        m
    }

    /// Shed this message's rows (policy `drop_oldest`), keeping its number, its acks and
    /// the source's rejections; returns how many rows were dropped.
    pub fn shed(&mut self) -> usize {
        let rows = self.payload.rows();
        match &mut self.payload {
            Payload::Raw { bytes, ends, .. } => {
                *bytes = Vec::new();
                *ends = Vec::new();
            }
            Payload::Columnar(b) => *b = Batch::new_empty(b.schema()),
        }
        self.dropped += rows;
        rows
    }
}

/// A row or a message that could not be processed, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Sequence number of the message it came from.
    pub seq: u64,
    /// The step that refused it (`prepare`, `normalizer`, ...).
    pub step: String,
    /// Why, and what to do about it.
    pub reason: String,
    /// The refused data as it arrived: one raw row, or the message's rows one a line. Kept
    /// as bytes, so a dead letter can be replayed even when the input was not UTF-8.
    pub data: Vec<u8>,
    /// How many rows it holds.
    pub rows: usize,
}

impl DeadLetter {
    /// The data as text when it is UTF-8; otherwise `None` (write it as base64).
    pub fn data_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }

    /// The JSON object the dead-letter output writes and the queue carries:
    /// `{"seq", "step", "reason", "rows", "data"}`, with `"data_base64"` instead of `"data"`
    /// when the data is not UTF-8 (kept exactly, so it can be replayed).
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine;
        let mut v = serde_json::json!({
            "seq": self.seq,
            "step": self.step,
            "reason": self.reason,
            "rows": self.rows,
        });
        match self.data_text() {
            Some(text) => v["data"] = text.into(),
            None => {
                v["data_base64"] = base64::engine::general_purpose::STANDARD
                    .encode(&self.data)
                    .into()
            }
        }
        v
    }

    /// Read back what [`DeadLetter::to_json`] wrote; `None` when it is not such an object.
    pub fn from_json(v: &serde_json::Value) -> Option<DeadLetter> {
        use base64::Engine;
        let data = match (v.get("data"), v.get("data_base64")) {
            (Some(d), _) => d.as_str()?.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.as_str()?)
                .ok()?,
            (None, None) => Vec::new(),
        };
        Some(DeadLetter {
            seq: v.get("seq")?.as_u64()?,
            step: v.get("step")?.as_str()?.to_string(),
            reason: v.get("reason")?.as_str()?.to_string(),
            data,
            rows: v.get("rows")?.as_u64()? as usize,
        })
    }
}

impl Payload {
    /// The rows of the payload as dead-letter data: raw rows one a line, exactly as they
    /// arrived (a columnar payload is written by the caller, which can encode it).
    pub fn raw_data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, row) in self.raw_rows().enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            out.extend_from_slice(row);
        }
        out
    }
}

/// How the `result` step encodes a batch for the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One JSON object per row, keys in schema order, missing values as `null`,
    /// floats shortest-round-trip.
    Ndjson,
    /// CSV lines without header (the sink writes the header once).
    Csv,
    /// No encoding: the sink takes the batch itself (Parquet).
    Columnar,
}

/// What a chain hands to the sinks for one message.
#[derive(Debug, Clone)]
pub struct Output {
    /// Sequence number of the message.
    pub seq: u64,
    /// The transformed batch. From a queue worker, when the sink takes only the encoded rows,
    /// an empty batch of the output's schema (the rows' columns stay on the worker): count with
    /// `rows`.
    pub batch: Batch,
    /// The batch encoded as the sink asked (empty for [`Encoding::Columnar`]).
    pub encoded: Vec<u8>,
    /// Rows in the output.
    pub rows: usize,
}
