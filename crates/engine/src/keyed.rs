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

    /// The worker of a row.
    fn worker_of(&self, format: RowFormat, row: &[u8]) -> usize {
        let key = match format {
            RowFormat::Ndjson => ndjson_field(row, &self.key),
            RowFormat::Csv => self
                .csv
                .and_then(|(i, sep)| csv_fields(row, sep).into_iter().nth(i)),
        };
        match key {
            None => 0,
            Some(k) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut h);
                (h.finish() % self.workers as u64) as usize
            }
        }
    }

    /// The parts of `msg`: `(worker, part)` in worker order, the empty ones left out (a
    /// message with no row still gives one part, so its acknowledgements travel). The first
    /// part carries the source's refusals and the dropped count, the last the acks.
    pub fn split(&self, msg: Message) -> Vec<(usize, Message)> {
        let Payload::Raw {
            format,
            bytes,
            ends,
        } = &msg.payload
        else {
            return vec![(0, msg)];
        };
        let (format, bytes, ends) = (*format, bytes, ends);
        let mut parts: Vec<(Vec<u8>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); self.workers];
        let mut start = 0;
        // a CSV record whose quoted field spans lines: its next lines go where its first went
        let mut open_record: Option<usize> = None;
        for &end in ends {
            let row = &bytes[start..end];
            let w = match open_record {
                Some(w) => w,
                None => self.worker_of(format, trim_eol(row)),
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
        let mut out: Vec<(usize, Message)> = parts
            .into_iter()
            .enumerate()
            .filter(|(_, (_, e))| !e.is_empty())
            .map(|(w, (bytes, ends))| {
                let mut m = Message::new(
                    msg.seq,
                    Payload::Raw {
                        format,
                        bytes,
                        ends,
                    },
                );
                m.arrived = msg.arrived;
                (w, m)
            })
            .collect();
        if out.is_empty() {
            return vec![(0, msg)];
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

/// The parts of the messages `next` gives, numbered from 0 in order, with their worker.
pub fn parts(
    router: KeyRouter,
    mut next: impl FnMut() -> Result<Option<Message>, IoError>,
) -> impl FnMut() -> Result<Option<(usize, Message)>, IoError> {
    let mut pending: VecDeque<(usize, Message)> = VecDeque::new();
    let mut seq = 0u64;
    move || {
        if pending.is_empty() {
            match next()? {
                Some(m) => pending.extend(router.split(m)),
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

fn trim_eol(row: &[u8]) -> &[u8] {
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
}
