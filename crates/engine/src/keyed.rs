//! Keyed routing on the pool: each message is cut into one part per worker by the hash of its
//! rows' key (the `key` column's value), and each part goes to its worker, so a key's rows
//! always reach the same chain, in order, and the steps that keep state per key need no lock
//! and see every row of their keys. Parts are numbered in order (a message's parts one after
//! the other), so the ordered sink writes each message's rows grouped by worker: each key's
//! rows stay in input order; across keys, rows keep their message's place.
//!
//! The key is read from the raw row (NDJSON: the field, CSV: the column of the header) on the
//! reading thread. A row whose key cannot be read (no such field, a compressed or columnar
//! message) goes to the first worker with the others like it, as a missing key.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use streamprep_core::{IoError, Message, Payload, RowFormat};

use crate::chain::Processed;

/// Cuts messages into per-worker parts by key.
#[derive(Debug, Clone)]
pub struct KeyRouter {
    key: String,
    workers: usize,
    /// CSV: the key's column in the header, and the separator.
    csv: Option<(usize, u8)>,
}

impl KeyRouter {
    /// A router of `key` over `workers`; `header` and `sep` for CSV rows.
    pub fn new(key: &str, workers: usize, header: Option<&[u8]>, sep: u8) -> Self {
        let csv = header.and_then(|h| {
            csv_fields(h, sep)
                .iter()
                .position(|f| f.as_slice() == key.as_bytes())
                .map(|i| (i, sep))
        });
        KeyRouter {
            key: key.to_string(),
            workers: workers.max(1),
            csv,
        }
    }

    /// The column rows are routed by.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key of a row (without its line end), `None` when it has none.
    pub fn key_of(&self, format: RowFormat, row: &[u8]) -> Option<Vec<u8>> {
        match format {
            RowFormat::Ndjson => ndjson_field(row, &self.key),
            RowFormat::Csv => self
                .csv
                .and_then(|(i, sep)| csv_fields(row, sep).into_iter().nth(i)),
        }
    }

    /// The worker of a key (a missing key: the first).
    pub fn worker_of_key(&self, key: Option<&[u8]>) -> usize {
        match key {
            None => 0,
            Some(k) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut h);
                (h.finish() % self.workers as u64) as usize
            }
        }
    }

    /// The worker of a row.
    fn worker_of(&self, format: RowFormat, row: &[u8]) -> usize {
        self.worker_of_key(self.key_of(format, row).as_deref())
    }

    /// The worker of a message the keyed buffer made (one key: its first row's).
    pub fn worker_of_message(&self, msg: &Message) -> usize {
        match &msg.payload {
            Payload::Raw { format, .. } => msg
                .payload
                .raw_rows()
                .next()
                .map_or(0, |row| self.worker_of(*format, row)),
            Payload::Columnar(_) => 0,
        }
    }

    /// The parts of `msg`: `(worker, part)` in worker order, the empty ones left out (a
    /// message with no row still gives one part, so its acknowledgements travel). The first
    /// part carries the source's refusals and the dropped count, the last the acks.
    pub fn split(&self, msg: Message) -> Vec<(usize, Message)> {
        self.split_with_rows(msg)
            .into_iter()
            .map(|(w, m, _)| (w, m))
            .collect()
    }

    /// [`KeyRouter::split`], with each part's records' places in the message (a CSV record
    /// over several lines is one record).
    pub fn split_with_rows(&self, msg: Message) -> Vec<(usize, Message, Vec<u32>)> {
        let Payload::Raw {
            format,
            bytes,
            ends,
        } = &msg.payload
        else {
            let n = msg.payload.rows() as u32;
            return vec![(0, msg, (0..n).collect())];
        };
        let (format, bytes, ends) = (*format, bytes, ends);
        let mut parts: Vec<(Vec<u8>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); self.workers];
        let mut places: Vec<Vec<u32>> = vec![Vec::new(); self.workers];
        let mut record = 0u32;
        let mut start = 0;
        // a CSV record whose quoted field spans lines: its next lines go where its first went
        let mut open_record: Option<usize> = None;
        for &end in ends {
            let row = &bytes[start..end];
            let w = match open_record {
                Some(w) => w,
                None => {
                    let w = self.worker_of(format, trim_eol(row));
                    places[w].push(record);
                    record += 1;
                    w
                }
            };
            if format == RowFormat::Csv {
                let quotes = row.iter().filter(|b| **b == b'"').count();
                let open_before = open_record.is_some();
                // an odd number of quotes toggles whether the record is still open
                open_record = if (quotes % 2 == 1) != open_before {
                    Some(w)
                } else {
                    None
                };
            }
            let (b, e) = &mut parts[w];
            b.extend_from_slice(row);
            e.push(b.len());
            start = end;
        }
        let mut out: Vec<(usize, Message, Vec<u32>)> = parts
            .into_iter()
            .zip(places)
            .enumerate()
            .filter(|(_, ((_, e), _))| !e.is_empty())
            .map(|(w, ((bytes, ends), places))| {
                let mut m = Message::new(
                    msg.seq,
                    Payload::Raw {
                        format,
                        bytes,
                        ends,
                    },
                );
                m.arrived = msg.arrived;
                (w, m, places)
            })
            .collect();
        if out.is_empty() {
            return vec![(0, msg, Vec::new())];
        }
        let Message {
            rejected,
            acks,
            dropped,
            ..
        } = msg;
        out[0].1.rejected = rejected;
        out[0].1.dropped = dropped;
        if let Some(last) = out.last_mut() {
            last.1.acks = acks;
        }
        out
    }
}

/// The parts of the messages `next` gives, numbered from 0 in order, with their worker; each
/// message's parts' record places go to `places` (for [`Merger`]).
pub fn parts(
    router: KeyRouter,
    places: Places,
    mut next: impl FnMut() -> Result<Option<Message>, IoError>,
) -> impl FnMut() -> Result<Option<(usize, Message)>, IoError> {
    let mut pending: VecDeque<(usize, Message)> = VecDeque::new();
    let mut seq = 0u64;
    move || {
        if pending.is_empty() {
            match next()? {
                Some(m) if m.flush.is_some() => {
                    // the end of the stream goes to its worker as it is
                    places
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(vec![Vec::new()]);
                    pending.push_back((m.flush.unwrap_or(0), m));
                }
                Some(m) => {
                    let split = router.split_with_rows(m);
                    places
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(split.iter().map(|(_, _, p)| p.clone()).collect());
                    pending.extend(split.into_iter().map(|(w, m, _)| (w, m)));
                }
                None => return Ok(None),
            }
        }
        Ok(pending.pop_front().map(|(w, mut m)| {
            m.seq = seq;
            seq += 1;
            (w, m)
        }))
    }
}

/// Each split message's parts' record places, in order (from the reader to the sink's side).
pub type Places = std::sync::Arc<std::sync::Mutex<VecDeque<Vec<Vec<u32>>>>>;

/// Puts a split message back together on the sink's side (`ordered = "global"` on the pool):
/// its parts come one after the other; once all are in, the last carries the message's output
/// with the rows in their input places, the others none. That needs every part to have given
/// one output row per record it took (no row dropped, refused or added) and the same columns;
/// otherwise the parts go on as they are, each key's rows still in order.
pub struct Merger {
    places: Places,
    held: Vec<Processed>,
    csv: bool,
}

impl Merger {
    /// A merger of the parts `parts` numbers, encoded as CSV (`csv`) or NDJSON.
    pub fn new(places: Places, csv: bool) -> Self {
        Merger {
            places,
            held: Vec::new(),
            csv,
        }
    }

    /// Take a delivered part; give what is ready to go on, in order.
    pub fn take(&mut self, p: Processed) -> Vec<Processed> {
        self.held.push(p);
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        let Some(want) = places.front() else {
            return std::mem::take(&mut self.held);
        };
        if self.held.len() < want.len() {
            return Vec::new();
        }
        let want = places.pop_front().unwrap_or_default();
        drop(places);
        let mut parts = std::mem::take(&mut self.held);
        if parts.len() > 1 {
            if let Some(merged) = merge_outputs(&parts, &want, self.csv) {
                for p in parts.iter_mut() {
                    p.output = None;
                }
                if let Some(last) = parts.last_mut() {
                    last.output = Some(merged);
                }
            }
        }
        parts
    }
}

/// The parts' outputs as one, rows in their input places; `None` when they cannot be.
fn merge_outputs(
    parts: &[Processed],
    places: &[Vec<u32>],
    csv: bool,
) -> Option<streamprep_core::Output> {
    let mut outs = Vec::with_capacity(parts.len());
    for (p, want) in parts.iter().zip(places) {
        let o = p.output.as_ref()?;
        if o.rows != want.len() || !p.dead.is_empty() {
            return None;
        }
        outs.push(o);
    }
    let schema = outs.first()?.batch.schema();
    if outs.iter().any(|o| o.batch.schema() != schema) {
        return None;
    }
    let total: usize = places.iter().map(Vec::len).sum();
    // (part, row in part) of each place
    let mut at = vec![(0usize, 0usize); total];
    for (i, want) in places.iter().enumerate() {
        for (j, &place) in want.iter().enumerate() {
            *at.get_mut(place as usize)? = (i, j);
        }
    }
    // the encoded rows: NDJSON lines, or CSV records (a quoted field may hold line ends)
    let records: Vec<Vec<&[u8]>> = outs.iter().map(|o| records_of(&o.encoded, csv)).collect();
    let encoded = if outs.iter().all(|o| o.encoded.is_empty()) {
        Vec::new()
    } else {
        if records.iter().zip(&outs).any(|(r, o)| r.len() != o.rows) {
            return None;
        }
        let mut e = Vec::with_capacity(outs.iter().map(|o| o.encoded.len()).sum());
        for &(i, j) in &at {
            e.extend_from_slice(records[i][j]);
        }
        e
    };
    // the batch (a Parquet sink writes it; the latency probe reads it): taken in the same order
    // when the parts carry their rows, else the parts' (empty) batches as they are
    let batch = if outs.iter().all(|o| o.batch.num_rows() == o.rows) {
        let batches: Vec<&streamprep_core::Batch> = outs.iter().map(|o| &o.batch).collect();
        arrow_select::interleave::interleave_record_batch(&batches, &at).ok()?
    } else {
        outs[0].batch.clone()
    };
    Some(streamprep_core::Output {
        seq: outs[0].seq,
        batch,
        encoded,
        rows: total,
    })
}

/// The rows of encoded output: lines; in CSV a line end inside double quotes stays in its
/// record (NDJSON escapes line ends in strings).
fn records_of(bytes: &[u8], csv: bool) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' if csv => quoted = !quoted,
            b'\n' if !quoted => {
                out.push(&bytes[start..=i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < bytes.len() {
        out.push(&bytes[start..]);
    }
    out
}

pub(crate) fn trim_eol(row: &[u8]) -> &[u8] {
    let row = row.strip_suffix(b"\n").unwrap_or(row);
    row.strip_suffix(b"\r").unwrap_or(row)
}

/// The value of the top-level `field` of an NDJSON object (a string's text, or a number's or
/// literal's), or `None`: one pass over the bytes, keys compared where they stand (at the
/// object's top level, outside strings); a value with escapes goes through serde_json.
fn ndjson_field(row: &[u8], field: &str) -> Option<Vec<u8>> {
    let want = field.as_bytes();
    let (mut depth, mut i, mut expect_key) = (0usize, 0usize, false);
    while i < row.len() {
        match row[i] {
            b'"' => {
                // a string: find its end, noting escapes
                let start = i + 1;
                let mut j = start;
                let mut escaped = false;
                while j < row.len() && row[j] != b'"' {
                    if row[j] == b'\\' {
                        escaped = true;
                        j += 1;
                    }
                    j += 1;
                }
                let text = row.get(start..j)?;
                i = j + 1;
                if depth == 1 && expect_key {
                    expect_key = false;
                    if !escaped && text == want {
                        // the value after the colon
                        while i < row.len() && (row[i] == b':' || row[i].is_ascii_whitespace()) {
                            i += 1;
                        }
                        return value_at(row, i, field);
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                expect_key = row[i] == b'{' && depth == 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b',' => {
                expect_key = depth == 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// The value starting at `row[i]`: a plain string's text, a number or literal's text; a
/// string with escapes (or anything odd) through serde_json.
fn value_at(row: &[u8], i: usize, field: &str) -> Option<Vec<u8>> {
    match row.get(i)? {
        b'"' => {
            let rest = &row[i + 1..];
            let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
            if rest[end] == b'"' {
                Some(rest[..end].to_vec())
            } else {
                ndjson_field_slow(row, field)
            }
        }
        b'n' if row[i..].starts_with(b"null") => None,
        b'{' | b'[' => ndjson_field_slow(row, field),
        _ => {
            let end = row[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .map_or(row.len(), |e| i + e);
            Some(row[i..end].to_vec())
        }
    }
}

/// [`ndjson_field`] through serde_json (values with escapes, nested values).
fn ndjson_field_slow(row: &[u8], field: &str) -> Option<Vec<u8>> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    struct Seed<'a>(&'a str);
    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = Option<Vec<u8>>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Seed<'_> {
        type Value = Option<Vec<u8>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if k == self.0 && found.is_none() {
                    let v: serde_json::Value = map.next_value()?;
                    found = match v {
                        serde_json::Value::Null => None,
                        serde_json::Value::String(s) => Some(s.into_bytes()),
                        other => Some(other.to_string().into_bytes()),
                    };
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(row);
    Seed(field).deserialize(&mut de).ok().flatten()
}

/// The fields of a CSV line (quotes honoured, `""` inside quotes is a quote).
fn csv_fields(line: &[u8], sep: u8) -> Vec<Vec<u8>> {
    let line = trim_eol(line);
    let mut out = Vec::new();
    let mut field = Vec::new();
    let mut quoted = false;
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if quoted {
            if c == b'"' {
                if line.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == b'"' {
            quoted = true;
        } else if c == sep {
            out.push(std::mem::take(&mut field));
        } else {
            field.push(c);
        }
        i += 1;
    }
    out.push(field);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_from_ndjson_and_csv_rows() {
        assert_eq!(
            ndjson_field(br#"{"a": 1, "k": "x y", "b": [1, {"k": 2}]}"#, "k"),
            Some(b"x y".to_vec())
        );
        assert_eq!(ndjson_field(br#"{"k": 12.5}"#, "k"), Some(b"12.5".to_vec()));
        assert_eq!(ndjson_field(br#"{"k": null}"#, "k"), None);
        assert_eq!(ndjson_field(br#"not json"#, "k"), None);
        // a key inside a nested object or a string is not the field
        assert_eq!(
            ndjson_field(br#"{"m": {"k": 1}, "s": "\"k\": 2", "k": 3}"#, "k"),
            Some(b"3".to_vec())
        );
        assert_eq!(ndjson_field(br#"{"m": {"k": 1}}"#, "k"), None);
        assert_eq!(
            ndjson_field(br#"{"k": "a\"b"}"#, "k"),
            Some(b"a\"b".to_vec())
        );
        assert_eq!(
            ndjson_field(br#"{ "k" : -12 , "x": 1}"#, "k"),
            Some(b"-12".to_vec())
        );
        for row in [
            &br#"{"a": [1, {"k": 9}], "k": "x"}"#[..],
            br#"{"k": true}"#,
            br#"{"kk": 1, "k": "2.5e3"}"#,
            br#"{"k": "\u00e9t\u00e9"}"#,
        ] {
            assert_eq!(
                ndjson_field(row, "k"),
                ndjson_field_slow(row, "k"),
                "{}",
                String::from_utf8_lossy(row)
            );
        }
        assert_eq!(
            csv_fields(b"a,\"x, \"\"y\"\"\",3\n", b','),
            vec![b"a".to_vec(), b"x, \"y\"".to_vec(), b"3".to_vec()]
        );
    }

    #[test]
    fn a_csv_record_spanning_lines_stays_together() {
        let router = KeyRouter::new("k", 8, Some(b"k,note"), b',');
        let text = "a,\"one\nline two\nthree\"\nb,plain\nc,\"x\"\"y\"\n";
        let mut ends = Vec::new();
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                ends.push(i + 1);
            }
        }
        let msg = Message::new(
            0,
            Payload::Raw {
                format: RowFormat::Csv,
                bytes: text.as_bytes().to_vec(),
                ends,
            },
        );
        let parts = router.split(msg);
        let holding_a = parts
            .iter()
            .find(|(_, m)| m.payload.raw_rows().any(|r| r.starts_with(b"a,")))
            .expect("a's part");
        let rows: Vec<&[u8]> = holding_a.1.payload.raw_rows().collect();
        let at = rows.iter().position(|r| r.starts_with(b"a,")).expect("a");
        assert_eq!(
            &rows[at..at + 3],
            &[&b"a,\"one"[..], b"line two", b"three\""],
            "the three lines of a's record together"
        );
        assert_eq!(
            parts.iter().map(|(_, m)| m.payload.rows()).sum::<usize>(),
            5
        );
    }

    #[test]
    fn a_message_splits_by_key_and_its_acks_ride_with_the_last_part() {
        let router = KeyRouter::new("k", 4, None, b',');
        let rows: Vec<String> = (0..40)
            .map(|i| format!("{{\"k\": \"key{}\", \"i\": {i}}}\n", i % 7))
            .collect();
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for r in &rows {
            bytes.extend_from_slice(r.as_bytes());
            ends.push(bytes.len());
        }
        let msg = Message::new(
            3,
            Payload::Raw {
                format: RowFormat::Ndjson,
                bytes,
                ends,
            },
        );
        let parts = router.split(msg);
        assert!(parts.len() > 1 && parts.len() <= 4);
        assert_eq!(
            parts.iter().map(|(_, m)| m.payload.rows()).sum::<usize>(),
            40
        );
        // every key's rows in one part, in order
        for k in 0..7 {
            let holding: Vec<usize> = parts
                .iter()
                .filter(|(_, m)| {
                    m.payload
                        .raw_rows()
                        .any(|r| r.windows(4).any(|w| w == format!("key{k}").as_bytes()))
                })
                .map(|(w, _)| *w)
                .collect();
            assert_eq!(holding.len(), 1, "key{k} in one part: {holding:?}");
        }
        assert!(parts.windows(2).all(|w| w[0].0 < w[1].0), "in worker order");
    }

    fn part(seq: u64, encoded: &str, rows: usize) -> Processed {
        let schema = std::sync::Arc::new(arrow_schema::Schema::empty());
        let mut p = Processed::refused(seq, rows, Vec::new());
        p.output = Some(streamprep_core::Output {
            seq,
            batch: streamprep_core::Batch::new_empty(schema),
            encoded: encoded.as_bytes().to_vec(),
            rows,
        });
        p
    }

    #[test]
    fn the_merger_puts_a_messages_rows_back_in_their_places() {
        let places = Places::default();
        // message 0: records 0, 2, 3 on one worker, 1 and 4 on the other; message 1: one part
        places
            .lock()
            .unwrap()
            .extend([vec![vec![0, 2, 3], vec![1, 4]], vec![vec![0]]]);
        let mut m = Merger::new(places.clone(), true);
        assert!(m.take(part(0, "r0\n\"r2\nstill r2\"\nr3\n", 3)).is_empty());
        let out = m.take(part(1, "r1\n\"r4 \"\"q\"\"\"\n", 2));
        assert_eq!(out.len(), 2);
        assert!(out[0].output.is_none());
        let merged = out[1].output.as_ref().expect("merged");
        assert_eq!(
            String::from_utf8_lossy(&merged.encoded),
            "r0\nr1\n\"r2\nstill r2\"\nr3\n\"r4 \"\"q\"\"\"\n"
        );
        assert_eq!(merged.rows, 5);
        assert_eq!(m.take(part(2, "x\n", 1)).len(), 1);
        // a part that lost a row: the parts go on as they are
        places.lock().unwrap().push_back(vec![vec![0, 1], vec![2]]);
        assert!(m.take(part(3, "a\n", 1)).is_empty());
        let out = m.take(part(4, "c\n", 1));
        assert_eq!(
            out.iter()
                .map(
                    |p| String::from_utf8_lossy(&p.output.as_ref().expect("own").encoded)
                        .into_owned()
                )
                .collect::<Vec<_>>(),
            ["a\n", "c\n"]
        );
    }
}
