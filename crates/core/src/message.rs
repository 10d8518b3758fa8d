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
    /// Rows as bytes, concatenated; `ends[i]` is the end offset of row `i` in `bytes`.
    Raw {
        /// The format of every row.
        format: RowFormat,
        /// All rows, back to back, without separators.
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

    /// Iterate over the raw rows (empty for a columnar payload).
    pub fn raw_rows(&self) -> impl Iterator<Item = &[u8]> {
        let (bytes, ends): (&[u8], &[usize]) = match self {
            Payload::Raw { bytes, ends, .. } => (bytes, ends),
            Payload::Columnar(_) => (&[], &[]),
        };
        let starts = std::iter::once(0).chain(ends.iter().copied());
        starts
            .zip(ends.iter().copied())
            .map(move |(s, e)| &bytes[s..e])
    }
}

/// A message: what the buffer gathered, numbered in input order.
#[derive(Debug, Clone)]
pub struct Message {
    /// Sequence number in input order, starting at 0.
    pub seq: u64,
    /// The rows.
    pub payload: Payload,
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
    /// The refused data: one raw row, or the whole message as NDJSON rows.
    pub data: String,
    /// How many rows it holds.
    pub rows: usize,
}
