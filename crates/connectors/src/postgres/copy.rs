//! PostgreSQL's binary `COPY` format, both ways: Arrow columns to rows of fields (the sink),
//! and rows of fields back to Arrow batches (the source). Header: the signature, flags and an
//! extension length; each row: its field count, then each field's length (-1: NULL) and bytes
//! (numbers big-endian); the end: a field count of -1.

use std::io::Read;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema};
use streamprep_core::Batch;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// How a column is written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    /// `double precision`.
    Float8,
    /// `bigint`.
    Int8,
    /// `boolean`.
    Bool,
    /// `text`.
    Text,
    /// `timestamptz` (read only: as text, UTC, `...Z`).
    TimestampTz,
    /// `timestamp` (read only: as text).
    Timestamp,
}

impl PgType {
    /// How an Arrow column is written.
    pub fn of(dt: &DataType) -> PgType {
        match dt {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => PgType::Float8,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => PgType::Int8,
            DataType::Boolean => PgType::Bool,
            _ => PgType::Text,
        }
    }

    /// Its SQL name in a `CREATE TABLE`.
    pub fn sql(self) -> &'static str {
        match self {
            PgType::Float8 => "double precision",
            PgType::Int8 => "bigint",
            PgType::Bool => "boolean",
            PgType::Text => "text",
            PgType::TimestampTz => "timestamptz",
            PgType::Timestamp => "timestamp",
        }
    }

    /// The Arrow type it is read as.
    fn arrow(self) -> DataType {
        match self {
            PgType::Float8 => DataType::Float64,
            PgType::Int8 => DataType::Int64,
            PgType::Bool => DataType::Boolean,
            _ => DataType::Utf8,
        }
    }
}

/// The start of a binary COPY stream.
pub fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// The end of a binary COPY stream.
pub fn trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// The column whose time leads a row's key: the first named `ts`, `time`, `timestamp` or
/// `datetime` (any case), else the first of a timestamp type.
pub fn time_column(schema: &Schema) -> Option<usize> {
    let fields = schema.fields();
    fields
        .iter()
        .position(|f| {
            matches!(
                f.name().to_ascii_lowercase().as_str(),
                "ts" | "time" | "timestamp" | "datetime"
            )
        })
        .or_else(|| {
            fields
                .iter()
                .position(|f| matches!(f.data_type(), DataType::Timestamp(..)))
        })
}

/// A row's key (16 bytes, a `uuid`) from the 128-bit hash of its fields and the text of its
/// time column: the time (microseconds, big-endian, ordered) then the hash's low 64 bits, so
/// rows that come in time order are added at the end of the key's index (a random key costs
/// PostgreSQL a descent to a random leaf a row); without a time that reads as one, the whole
/// hash. Two rows share a key only when their times and 64-bit hashes, or their 128-bit hashes,
/// are equal.
fn row_key(hash: u128, time: Option<&str>) -> [u8; 16] {
    let mut key = hash.to_be_bytes();
    if let Some((us, _)) = time.and_then(streamprep_core::time::parse_iso) {
        key[..8].copy_from_slice(&((us as u64) ^ (1 << 63)).to_be_bytes());
    }
    key
}

/// Append a batch's rows; with `key`, each row gets one more field: its identity for writing it
/// once, from a 128-bit hash of its fields (xxh3) and its time ([`time_column`], [`row_key`]).
pub fn encode(batch: &Batch, key: bool, out: &mut Vec<u8>) -> Result<(), String> {
    let cols: Vec<(PgType, ArrayRef)> = batch
        .columns()
        .iter()
        .map(|c| {
            let t = PgType::of(c.data_type());
            arrow_cast::cast(c, &t.arrow())
                .map(|a| (t, a))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let fields = i16::try_from(cols.len() + usize::from(key)).map_err(|_| "too many columns")?;
    let time = key
        .then(|| time_column(batch.schema_ref()))
        .flatten()
        .and_then(|i| arrow_cast::cast(batch.column(i), &DataType::Utf8).ok());
    let time = time
        .as_ref()
        .and_then(|a| a.as_any().downcast_ref::<StringArray>());
    for r in 0..batch.num_rows() {
        let start = out.len();
        out.extend_from_slice(&fields.to_be_bytes());
        for (t, a) in &cols {
            if a.is_null(r) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            match t {
                PgType::Float8 => {
                    let v = a
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .map(|a| a.value(r));
                    field(out, &v.unwrap_or(f64::NAN).to_be_bytes());
                }
                PgType::Int8 => {
                    let v = a.as_any().downcast_ref::<Int64Array>().map(|a| a.value(r));
                    field(out, &v.unwrap_or(0).to_be_bytes());
                }
                PgType::Bool => {
                    let v = a
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .map(|a| a.value(r));
                    field(out, &[u8::from(v.unwrap_or(false))]);
                }
                _ => {
                    let v = a.as_any().downcast_ref::<StringArray>().map(|a| a.value(r));
                    field(out, v.unwrap_or("").as_bytes());
                }
            }
        }
        if key {
            let h = xxhash_rust::xxh3::xxh3_128(&out[start..]);
            let t = time.filter(|a| a.is_valid(r)).map(|a| a.value(r));
            field(out, &row_key(h, t));
        }
    }
    Ok(())
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

enum Builder {
    F64(Float64Builder),
    I64(Int64Builder),
    Bool(BooleanBuilder),
    Text(StringBuilder),
}

/// Reads a binary COPY stream into Arrow batches of typed columns.
pub struct Decoder<R: Read> {
    r: std::io::BufReader<R>,
    names: Vec<String>,
    types: Vec<PgType>,
    started: bool,
    ended: bool,
    buf: Vec<u8>,
    /// A timestamp's text, written in place.
    text: Vec<u8>,
    /// The last row's value of this column (its raw bytes), when asked for (follow mode).
    pub watch: Option<usize>,
    /// See `watch`.
    pub last_watched: Option<Vec<u8>>,
}

impl<R: Read> Decoder<R> {
    /// A decoder of rows whose columns are `names` of `types`.
    pub fn new(r: R, names: Vec<String>, types: Vec<PgType>) -> Self {
        Decoder {
            r: std::io::BufReader::with_capacity(1 << 16, r),
            names,
            types,
            started: false,
            ended: false,
            buf: Vec::new(),
            text: Vec::new(),
            watch: None,
            last_watched: None,
        }
    }

    fn bad(what: impl std::fmt::Display) -> String {
        format!("PostgreSQL's COPY data: {what}")
    }

    fn exact(&mut self, n: usize) -> Result<(), String> {
        self.buf.resize(n, 0);
        self.r.read_exact(&mut self.buf).map_err(Self::bad)
    }

    /// The next batch of at most `max` rows (`None` at the end).
    pub fn next_batch(&mut self, max: usize) -> Result<Option<Batch>, String> {
        if self.ended {
            return Ok(None);
        }
        if !self.started {
            self.exact(SIGNATURE.len() + 8)?;
            if &self.buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(Self::bad("no binary COPY signature"));
            }
            let ext = i32::from_be_bytes(self.buf[15..19].try_into().unwrap_or([0; 4]));
            self.exact(usize::try_from(ext).map_err(|_| Self::bad("header"))?)?;
            self.started = true;
        }
        let mut builders: Vec<Builder> = self
            .types
            .iter()
            .map(|t| match t {
                PgType::Float8 => Builder::F64(Float64Builder::with_capacity(max.min(1 << 16))),
                PgType::Int8 => Builder::I64(Int64Builder::with_capacity(max.min(1 << 16))),
                PgType::Bool => Builder::Bool(BooleanBuilder::with_capacity(max.min(1 << 16))),
                _ => Builder::Text(StringBuilder::new()),
            })
            .collect();
        let mut rows = 0;
        while rows < max {
            self.exact(2)?;
            let n = i16::from_be_bytes([self.buf[0], self.buf[1]]);
            if n == -1 {
                self.ended = true;
                break;
            }
            if n as usize != self.types.len() {
                return Err(Self::bad(format!(
                    "{n} fields, {} expected",
                    self.types.len()
                )));
            }
            for (c, builder) in builders.iter_mut().enumerate() {
                self.exact(4)?;
                let len = i32::from_be_bytes(self.buf[..4].try_into().unwrap_or([0; 4]));
                let value = if len < 0 {
                    None
                } else {
                    self.exact(len as usize)?;
                    Some(self.buf.as_slice())
                };
                if self.watch == Some(c) {
                    self.last_watched = value.map(<[u8]>::to_vec);
                }
                let t = self.types[c];
                match (builder, value) {
                    (Builder::F64(b), Some(v)) => b.append_value(f64::from_be_bytes(
                        v.try_into()
                            .map_err(|_| Self::bad("a float8 of another size"))?,
                    )),
                    (Builder::I64(b), Some(v)) => b.append_value(i64::from_be_bytes(
                        v.try_into()
                            .map_err(|_| Self::bad("an int8 of another size"))?,
                    )),
                    (Builder::Bool(b), Some(v)) => b.append_value(v.first() == Some(&1)),
                    (Builder::Text(b), Some(v)) => match t {
                        PgType::TimestampTz | PgType::Timestamp => {
                            let us = i64::from_be_bytes(
                                v.try_into()
                                    .map_err(|_| Self::bad("a timestamp of another size"))?,
                            );
                            timestamp_into(us, t == PgType::TimestampTz, &mut self.text);
                            b.append_value(std::str::from_utf8(&self.text).unwrap_or_default())
                        }
                        _ => b.append_value(
                            std::str::from_utf8(v).map_err(|_| Self::bad("text not UTF-8"))?,
                        ),
                    },
                    (Builder::F64(b), None) => b.append_null(),
                    (Builder::I64(b), None) => b.append_null(),
                    (Builder::Bool(b), None) => b.append_null(),
                    (Builder::Text(b), None) => b.append_null(),
                }
            }
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = builders
            .into_iter()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::F64(mut b) => Arc::new(b.finish()),
                    Builder::I64(mut b) => Arc::new(b.finish()),
                    Builder::Bool(mut b) => Arc::new(b.finish()),
                    Builder::Text(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let schema = Schema::new(
            self.names
                .iter()
                .zip(&self.types)
                .map(|(n, t)| Field::new(n, t.arrow(), true))
                .collect::<Vec<_>>(),
        );
        Batch::try_new(Arc::new(schema), arrays)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// [`timestamp_text`] into `out`, without allocating.
fn timestamp_into(us: i64, utc: bool, out: &mut Vec<u8>) {
    if us == i64::MAX || us == i64::MIN {
        out.clear();
        out.extend_from_slice(timestamp_text(us, utc).as_bytes());
        return;
    }
    streamprep_core::time::format_iso_into(us + 10_957 * streamprep_core::time::DAY_US, utc, out);
}

/// A PostgreSQL timestamp (microseconds since 2000-01-01) as ISO 8601 text, `Z` for UTC
/// (`timestamptz`); infinities as PostgreSQL writes them.
pub fn timestamp_text(us: i64, utc: bool) -> String {
    if us == i64::MAX {
        return "infinity".into();
    }
    if us == i64::MIN {
        return "-infinity".into();
    }
    // 2000-01-01 is 10,957 days after 1970-01-01
    streamprep_core::time::format_iso(us + 10_957 * streamprep_core::time::DAY_US, utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_postgresql_writes_them() {
        assert_eq!(timestamp_text(0, true), "2000-01-01T00:00:00Z");
        assert_eq!(timestamp_text(-1, false), "1999-12-31T23:59:59.999999");
        // 2026-12-06 07:05:30.25 UTC
        let us = ((9836 * 86_400 + 7 * 3600 + 5 * 60 + 30) * 1_000_000) + 250_000;
        assert_eq!(timestamp_text(us, true), "2026-12-06T07:05:30.25Z");
        assert_eq!(timestamp_text(i64::MAX, true), "infinity");
    }

    #[test]
    fn a_batch_written_reads_back_the_same() {
        let batch = Batch::try_from_iter(vec![
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-0.0)])) as ArrayRef,
            ),
            (
                "n",
                Arc::new(Int64Array::from(vec![Some(-3), Some(4), None])) as _,
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("é\"\n"), None, Some("")])) as _,
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])) as _,
            ),
        ])
        .expect("batch");
        let mut bytes = Vec::new();
        header(&mut bytes);
        encode(&batch, false, &mut bytes).expect("encode");
        trailer(&mut bytes);
        let names = vec!["x".into(), "n".into(), "s".into(), "b".into()];
        let types = vec![PgType::Float8, PgType::Int8, PgType::Text, PgType::Bool];
        let mut d = Decoder::new(bytes.as_slice(), names, types);
        let first = d.next_batch(2).expect("first").expect("rows");
        let rest = d.next_batch(2).expect("second").expect("rows");
        assert!(d.next_batch(2).expect("end").is_none());
        for (got, want) in [(first, batch.slice(0, 2)), (rest, batch.slice(2, 1))] {
            for c in 0..4 {
                assert_eq!(
                    got.column(c).as_ref(),
                    want.column(c).as_ref(),
                    "column {c}"
                );
            }
        }
        // with the key, each row's hash follows it, the same for the same row
        let mut a = Vec::new();
        encode(&batch.slice(0, 1), true, &mut a).expect("a");
        let mut b = Vec::new();
        encode(&batch.slice(0, 1), true, &mut b).expect("b");
        assert_eq!(a, b);
        let mut c = Vec::new();
        encode(&batch.slice(1, 1), true, &mut c).expect("c");
        assert_ne!(a[a.len() - 16..], c[c.len() - 16..]);
    }

    /// Rows in time order get increasing keys (PostgreSQL adds them at the end of the index);
    /// the same row the same key; a row without a readable time its whole hash.
    #[test]
    fn keys_lead_with_the_row_s_time() {
        let ts = [
            "1969-12-31T23:59:59",
            "2019-01-01T00:00:00",
            "2019-01-01T00:00:00.5Z",
        ];
        let batch = |ts: Vec<Option<&str>>, x: Vec<f64>| {
            Batch::try_from_iter(vec![
                ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
                ("TS", Arc::new(StringArray::from(ts)) as _),
            ])
            .expect("batch")
        };
        let keys = |b: &Batch| {
            let mut out = Vec::new();
            encode(b, true, &mut out).expect("encode");
            // each row: the field count, (length, bytes) a field; the key is the last 16
            let mut keys = Vec::new();
            let mut at = 0;
            for _ in 0..b.num_rows() {
                at += 2;
                for _ in 0..3 {
                    let n = i32::from_be_bytes(out[at..at + 4].try_into().expect("len"));
                    at += 4 + n.max(0) as usize;
                }
                keys.push(out[at - 16..at].to_vec());
            }
            keys
        };
        let b = batch(ts.iter().map(|t| Some(*t)).collect(), vec![3.0, 1.0, 2.0]);
        assert_eq!(time_column(b.schema_ref()), Some(1));
        let k = keys(&b);
        assert!(k[0] < k[1] && k[1] < k[2], "{k:?}");
        // 2019-01-01T00:00:00 UTC in microseconds, the sign bit flipped
        let us: u64 = 1_546_300_800_000_000;
        assert_eq!(k[1][..8], (us ^ (1 << 63)).to_be_bytes());
        assert_eq!(keys(&b), k, "the same rows, the same keys");
        // another value, the same time: the same first half, another second
        let other = keys(&batch(vec![Some(ts[1])], vec![1.5]));
        assert_eq!(other[0][..8], k[1][..8]);
        assert_ne!(other[0][8..], k[1][8..]);
        // no time to read: the whole 128-bit hash
        let none = keys(&batch(vec![None, Some("soon")], vec![1.0, 1.0]));
        assert_ne!(none[0], none[1]);
        assert_ne!(none[0][..8], k[1][..8]);
        // without a time column, the first timestamp-typed one; else none
        let typed = Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new(
                "at",
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None),
                true,
            ),
        ]);
        assert_eq!(time_column(&typed), Some(1));
        assert_eq!(
            time_column(&Schema::new(vec![Field::new("x", DataType::Utf8, true)])),
            None
        );
    }
}
