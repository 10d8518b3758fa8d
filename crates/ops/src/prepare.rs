//! `prepare`: opens every chain. Decodes a message's raw rows (NDJSON, a JSON array of rows,
//! or CSV lines; optionally each row zlib-compressed and base64-encoded, as the paper's
//! application sent them) into a columnar batch of the stream's frozen schema.
//!
//! A row that does not fit the schema (bad JSON, a string where a number belongs, a wrong
//! number of CSV fields) is isolated and returned as a dead letter with the reason; the good
//! rows of the same message go on. Decoding the whole message at once is the fast path; the
//! row-by-row pass only runs for a message that failed it.

use std::io::Read;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use base64::Engine;
use streamprep_core::message::split_rows;
use streamprep_core::{Batch, DeadLetter, Message, Payload, RowFormat, StepError};

use crate::codec::json_decode::{self, FlatJsonDecoder};

const NAME: &str = "prepare";

/// pandas' default missing-value markers (`pd.read_csv`'s `na_values`): a CSV field that is
/// exactly one of these is missing, as pandas reads it, not a bad value.
static NA_VALUES: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"^(|#N/A|#N/A N/A|#NA|-1\.#IND|-1\.#QNAN|-NaN|-nan|1\.#IND|1\.#QNAN|<NA>|N/A|NA|NULL|NaN|None|n/a|nan|null)$",
    )
    .expect("a valid pattern")
});

/// The most bytes one `zlib-base64` row may inflate to.
pub const MAX_INFLATED: usize = 16 << 20;

/// How each raw row is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// Plain text rows.
    #[default]
    None,
    /// Each row is `base64(zlib(text))`.
    ZlibBase64,
}

/// What `prepare` decodes.
#[derive(Debug, Clone)]
pub struct PrepareConfig {
    /// Row format.
    pub format: RowFormat,
    /// Row wrapping.
    pub compression: Compression,
    /// The CSV field separator (pandas' `sep`), `b','` by default.
    pub csv_sep: u8,
    /// The stream's schema (declared or inferred, then frozen).
    pub schema: SchemaRef,
}

/// The decoded message and the rows that could not be decoded.
#[derive(Debug)]
pub struct Prepared {
    /// The good rows.
    pub batch: Batch,
    /// The refused rows, each with its reason.
    pub dead: Vec<DeadLetter>,
}

/// Decoders for the stream's schema widened by columns that appeared after it was fixed, kept
/// for the next messages (a new column usually stays).
const WIDENED_KEPT: usize = 8;

/// The prepare step of one chain (one per worker; it keeps its decoders between messages).
///
/// **Columns that appear later.** The stream's schema is fixed from its first rows; a JSON row
/// with a key outside it widens the schema *for its message*: the message's batch holds the
/// stream's columns and then every other key its rows have, typed from this message's values
/// (as `pd.DataFrame(rows)` would), so no column is ever dropped. Which columns a message has
/// depends on its rows alone, never on which worker decoded it or what came before, so the
/// pool's output equals inline's.
pub struct Prepare {
    cfg: PrepareConfig,
    /// The one-pass decoder for flat schemas (the usual case).
    flat: Option<FlatJsonDecoder>,
    /// arrow-json, for schemas with other types.
    json: Option<(usize, arrow_json::reader::Decoder)>,
    /// Whether this decoder widens its schema for keys outside it (not for a widened one).
    widen: bool,
    /// The last message had columns outside the schema: look for them before decoding.
    scan_first: bool,
    /// Decoders of widened schemas, most recent last.
    widened: Vec<Prepare>,
}

impl Prepare {
    /// A prepare step for a stream with this configuration. Columns of type `Null` (seen with
    /// nulls only so far) are typed by each message from its values, like new columns.
    pub fn new(mut cfg: PrepareConfig) -> Self {
        if cfg
            .schema
            .fields()
            .iter()
            .any(|f| f.data_type() == &DataType::Null)
        {
            let known: Vec<Field> = cfg
                .schema
                .fields()
                .iter()
                .filter(|f| f.data_type() != &DataType::Null)
                .map(|f| f.as_ref().clone())
                .collect();
            cfg.schema = Arc::new(Schema::new(known));
        }
        let flat = (cfg.format == RowFormat::Ndjson && json_decode::supports(&cfg.schema))
            .then(|| FlatJsonDecoder::new(cfg.schema.clone()));
        Prepare {
            cfg,
            flat,
            json: None,
            widen: true,
            scan_first: false,
            widened: Vec::new(),
        }
    }

    /// The columns of these rows outside the stream's schema, typed from their values here
    /// (text for a column that only holds nulls in them).
    fn extra_columns(&self, bytes: &[u8], ends: &[usize]) -> Vec<Field> {
        let rows: Vec<&[u8]> = split_rows(bytes, ends).collect();
        let (cols, _) = json_decode::scan_columns(&rows);
        let mut extra: Vec<Field> = cols
            .into_iter()
            .filter(|(name, _)| self.cfg.schema.index_of(name).is_err())
            .map(|(name, k)| Field::new(name, k.data_type().unwrap_or(DataType::Utf8), true))
            .collect();
        // by name, so the order does not depend on which row showed a column first
        extra.sort_by(|a, b| a.name().cmp(b.name()));
        extra
    }

    /// Decode with the last widened schema, when it is exactly what these rows call for: no
    /// key outside it, and each extra column's type the one its values here give (columns
    /// absent here are left out). `None` when it is not: the caller scans the rows.
    fn try_last_widened(
        &mut self,
        seq: u64,
        (bytes, ends): (&[u8], &[usize]),
    ) -> Result<Option<Prepared>, StepError> {
        let base = self.cfg.schema.fields().len();
        let Some(last) = self.widened.last_mut() else {
            return Ok(None);
        };
        let prepared = last.decode_rows(seq, RowFormat::Ndjson, bytes, ends)?;
        let Some(flat) = last.flat.as_ref() else {
            return Ok(None);
        };
        // a refused row may hold values the decoder did not count (it stops at the error):
        // only a clean message proves the counts are those of a scan
        if flat.saw_unknown_key() || !prepared.dead.is_empty() {
            return Ok(None);
        }
        let fields = last.cfg.schema.fields();
        let mut keep: Vec<usize> = (0..base).collect();
        for (i, k) in flat.tallies().iter().enumerate() {
            let present = k.ints + k.floats + k.strings + k.bools + k.nested + k.nulls;
            if present == 0 {
                continue; // not in this message: not in its batch
            }
            if k.data_type().unwrap_or(DataType::Utf8) != *fields[base + i].data_type() {
                return Ok(None);
            }
            keep.push(base + i);
        }
        let batch = if keep.len() == fields.len() {
            prepared.batch
        } else {
            prepared
                .batch
                .project(&keep)
                .map_err(|e| StepError::arrow(NAME, e))?
        };
        Ok(Some(Prepared {
            batch,
            dead: prepared.dead,
        }))
    }

    /// Decode with the schema widened by `extra` columns.
    fn apply_widened(
        &mut self,
        extra: Vec<Field>,
        seq: u64,
        (bytes, ends): (&[u8], &[usize]),
        mut dead: Vec<DeadLetter>,
    ) -> Result<Prepared, StepError> {
        let fields: Vec<Field> = self
            .cfg
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .chain(extra)
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let base = self.cfg.schema.fields().len();
        let mut p = match self.widened.iter().position(|p| p.cfg.schema == schema) {
            Some(i) => self.widened.remove(i),
            None => {
                if self.widened.len() == WIDENED_KEPT {
                    self.widened.remove(0);
                }
                let mut p = Prepare::new(PrepareConfig {
                    format: self.cfg.format,
                    compression: Compression::None,
                    csv_sep: b',',
                    schema,
                });
                p.widen = false;
                if let Some(f) = p.flat.as_mut() {
                    f.tally_from(base);
                }
                p
            }
        };
        let prepared = p.decode_rows(seq, RowFormat::Ndjson, bytes, ends);
        self.widened.push(p); // the most recent last
        let prepared = prepared?;
        dead.extend(prepared.dead);
        Ok(Prepared {
            batch: prepared.batch,
            dead,
        })
    }

    /// Decode one message.
    pub fn apply(&mut self, msg: &Message) -> Result<Prepared, StepError> {
        let (format, bytes, ends) = match &msg.payload {
            Payload::Columnar(b) => {
                return Ok(Prepared {
                    batch: b.clone(),
                    dead: Vec::new(),
                })
            }
            Payload::Raw {
                format,
                bytes,
                ends,
            } => (*format, bytes, ends),
        };
        let mut dead = Vec::new();
        let plain;
        let (bytes, ends): (&[u8], &[usize]) = if self.cfg.compression == Compression::ZlibBase64 {
            plain = unwrap_rows(msg, &mut dead);
            (&plain.0, &plain.1)
        } else {
            (bytes, ends)
        };
        if self.widen && format == RowFormat::Ndjson {
            // the arrow-json path skips unknown keys without a word: always look for them
            if self.scan_first || self.flat.is_none() {
                // the columns of the last message usually stay: try its decoder first
                if self.scan_first {
                    if let Some(p) = self.try_last_widened(msg.seq, (bytes, ends))? {
                        dead.extend(p.dead);
                        return Ok(Prepared {
                            batch: p.batch,
                            dead,
                        });
                    }
                }
                let extra = self.extra_columns(bytes, ends);
                self.scan_first = !extra.is_empty();
                if !extra.is_empty() {
                    return self.apply_widened(extra, msg.seq, (bytes, ends), dead);
                }
            } else {
                let prepared = self.decode_rows(msg.seq, format, bytes, ends)?;
                let unknown = self.flat.as_ref().is_some_and(|f| f.saw_unknown_key());
                let extra = if unknown {
                    self.extra_columns(bytes, ends)
                } else {
                    Vec::new()
                };
                if extra.is_empty() {
                    dead.extend(prepared.dead);
                    return Ok(Prepared {
                        batch: prepared.batch,
                        dead,
                    });
                }
                self.scan_first = true;
                return self.apply_widened(extra, msg.seq, (bytes, ends), dead);
            }
        }
        let prepared = self.decode_rows(msg.seq, format, bytes, ends)?;
        dead.extend(prepared.dead);
        Ok(Prepared {
            batch: prepared.batch,
            dead,
        })
    }

    /// Decode plain rows with this decoder's schema (keys outside it are skipped).
    fn decode_rows(
        &mut self,
        seq: u64,
        format: RowFormat,
        bytes: &[u8],
        ends: &[usize],
    ) -> Result<Prepared, StepError> {
        let mut dead = Vec::new();
        let rows = ends.len();
        if let (RowFormat::Ndjson, Some(flat)) = (format, self.flat.as_mut()) {
            let (batch, errors) = flat
                .decode(split_rows(bytes, ends), rows)
                .map_err(|e| StepError::arrow(NAME, e))?;
            for (i, reason) in errors {
                let row = split_rows(bytes, ends).nth(i).unwrap_or_default();
                dead.push(DeadLetter {
                    seq,
                    step: NAME.into(),
                    reason: format!("bad JSON row: {reason}"),
                    data: row.to_vec(),
                    rows: 1,
                });
            }
            return Ok(Prepared { batch, dead });
        }
        match self.decode(format, bytes, rows) {
            Ok(batch) => Ok(Prepared { batch, dead }),
            Err(_) => {
                // Slow path: find the bad rows one by one, then decode the good ones together.
                let mut good = Vec::with_capacity(bytes.len());
                let mut good_rows = 0;
                // CSV rows are records: a quoted field may hold line breaks
                let records: Vec<&[u8]> = match format {
                    RowFormat::Csv => csv_records(bytes),
                    RowFormat::Ndjson => split_rows(bytes, ends).collect(),
                };
                for (k, row) in records.into_iter().enumerate() {
                    let mut one = row.to_vec();
                    one.push(b'\n');
                    match self.decode(format, &one, 1) {
                        Ok(_) => {
                            good.extend_from_slice(&one);
                            good_rows += 1;
                        }
                        Err(e) => dead.push(DeadLetter {
                            seq,
                            step: NAME.into(),
                            reason: describe(format, &e, k, seq),
                            data: row.to_vec(),
                            rows: 1,
                        }),
                    }
                }
                let batch =
                    self.decode(format, &good, good_rows)
                        .map_err(|e| StepError::Internal {
                            step: NAME,
                            reason: format!("rows that decoded alone failed together: {e}"),
                        })?;
                Ok(Prepared { batch, dead })
            }
        }
    }

    fn decode(
        &mut self,
        format: RowFormat,
        bytes: &[u8],
        rows: usize,
    ) -> Result<Batch, arrow_schema::ArrowError> {
        match format {
            RowFormat::Ndjson => self.decode_json(bytes, rows),
            RowFormat::Csv => decode_csv(&self.cfg.schema, self.cfg.csv_sep, bytes, rows),
        }
    }

    fn decode_json(
        &mut self,
        bytes: &[u8],
        rows: usize,
    ) -> Result<Batch, arrow_schema::ArrowError> {
        // A JSON-array row holds several rows, so the decoder's batch must not end early.
        let capacity = rows.max(1024);
        if !matches!(&self.json, Some((c, _)) if *c >= capacity) {
            let d = arrow_json::ReaderBuilder::new(self.cfg.schema.clone())
                .with_batch_size(capacity)
                .with_coerce_primitive(true)
                .with_flatten(true)
                .build_decoder()?;
            self.json = Some((capacity, d));
        }
        let Some((_, dec)) = self.json.as_mut() else {
            unreachable!("decoder was just built")
        };
        let result = (|| {
            let mut off = 0;
            while off < bytes.len() {
                let n = dec.decode(&bytes[off..])?;
                if n == 0 {
                    let more = dec.flush()?;
                    return more.ok_or_else(|| {
                        arrow_schema::ArrowError::JsonError(
                            "message holds more rows than the decoder's batch".into(),
                        )
                    });
                }
                off += n;
            }
            if dec.has_partial_record() {
                return Err(arrow_schema::ArrowError::JsonError(
                    "a row ends in the middle of a JSON value".into(),
                ));
            }
            Ok(dec
                .flush()?
                .unwrap_or_else(|| Batch::new_empty(self.cfg.schema.clone())))
        })();
        if result.is_err() {
            self.json = None; // a failed decoder holds a half-read row: start afresh
        }
        result
    }
}

fn decode_csv(
    schema: &SchemaRef,
    sep: u8,
    bytes: &[u8],
    rows: usize,
) -> Result<Batch, arrow_schema::ArrowError> {
    let mut dec = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_delimiter(sep)
        .with_null_regex(NA_VALUES.clone())
        .with_batch_size(rows.max(1))
        .build_decoder();
    let mut off = 0;
    let mut out = Vec::new();
    while off < bytes.len() {
        let n = dec.decode(&bytes[off..])?;
        if n == 0 {
            out.extend(dec.flush()?);
        }
        off += n;
    }
    dec.decode(&[])?;
    out.extend(dec.flush()?);
    match out.len() {
        0 => Ok(Batch::new_empty(schema.clone())),
        1 => Ok(out.remove(0)),
        _ => arrow_select::concat::concat_batches(schema, &out),
    }
}

/// The CSV records of back-to-back lines, without their line ends: a line break inside a
/// quoted field does not end a record. Blank records are left out.
fn csv_records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                let rec = trim_newline(&bytes[start..i]);
                if !rec.iter().all(u8::is_ascii_whitespace) {
                    out.push(rec);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let rec = trim_newline(&bytes[start..]);
    if !rec.iter().all(u8::is_ascii_whitespace) {
        out.push(rec);
    }
    out
}

fn trim_newline(mut r: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = r {
        r = rest;
    }
    r
}

/// Undo `base64(zlib(..))` row by row; rows that fail go to the dead letters.
fn unwrap_rows(msg: &Message, dead: &mut Vec<DeadLetter>) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for row in msg.payload.raw_rows() {
        let row = trim_newline(row);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(row)
            .map_err(|e| format!("row is not base64: {e}"))
            .and_then(|z| {
                let mut s = Vec::new();
                // inflated at most to the limit: a small row that inflates to gigabytes
                // (a zip bomb) costs MAX_INFLATED bytes, not the gigabytes
                flate2::read::ZlibDecoder::new(&z[..])
                    .take(MAX_INFLATED as u64 + 1)
                    .read_to_end(&mut s)
                    .map_err(|e| format!("row is not zlib data: {e}"))
                    .and_then(|n| {
                        if n > MAX_INFLATED {
                            Err(format!(
                                "row inflates to more than {MAX_INFLATED} bytes (the most a \
                                 compressed row may hold); refused"
                            ))
                        } else {
                            Ok(s)
                        }
                    })
            });
        match decoded {
            Ok(text) => {
                // one compressed unit may hold several lines
                for line in text
                    .split(|b| *b == b'\n')
                    .filter(|l| !trim_newline(l).is_empty())
                {
                    bytes.extend_from_slice(trim_newline(line));
                    bytes.push(b'\n');
                    ends.push(bytes.len());
                }
            }
            Err(reason) => dead.push(DeadLetter {
                seq: msg.seq,
                step: NAME.into(),
                reason,
                data: row.to_vec(),
                rows: 1,
            }),
        }
    }
    (bytes, ends)
}

/// Why a row alone did not decode. Arrow numbers lines within what it was given (always
/// "line 1" for a row decoded alone): say where the row is instead.
fn describe(format: RowFormat, e: &arrow_schema::ArrowError, row: usize, seq: u64) -> String {
    let what = match format {
        RowFormat::Ndjson => "JSON row",
        RowFormat::Csv => "CSV row",
    };
    let mut e = e.to_string();
    if let Some(at) = e.find(" at line ") {
        let digits = e[at + 9..].bytes().take_while(u8::is_ascii_digit).count();
        e.replace_range(at..at + 9 + digits, "");
    }
    format!(
        "{what} {row} of message {seq} does not fit the stream's schema: {e}. Fix the row, \
         or declare the column's type in the project's [schema]"
    )
}

/// Infer a stream schema from sample rows (the first rows of the stream), then make it fit
/// for a stream: columns never seen with a value become nullable strings, and CSV dates and
/// times stay strings so they pass through unchanged.
pub fn infer_schema(
    format: RowFormat,
    header: Option<&[u8]>,
    sample: &[&[u8]],
    csv_sep: u8,
) -> Result<SchemaRef, String> {
    let schema = match format {
        RowFormat::Ndjson => {
            let rows: Vec<&[u8]> = sample.iter().map(|r| trim_newline(r)).collect();
            // No JSON object among them (a first publish of garbage): start with no columns;
            // each message then brings its own (see `Prepare`), and the bad rows are refused.
            let schema = json_decode::infer_flat(&rows).unwrap_or_else(Schema::empty);
            return Ok(Arc::new(normalise(schema, false)));
        }
        RowFormat::Csv => {
            let header = header.ok_or("a CSV stream needs a header line")?;
            infer_csv(trim_newline(header), sample, csv_sep)?
        }
    };
    Ok(Arc::new(normalise(schema, true)))
}

/// A declared schema over an inferred one: the inferred columns in their order, each with its
/// declared type where it has one, then the declared columns the sample did not hold. A
/// declared column gets its type; the others are not dropped.
pub fn with_declared(declared: &Schema, inferred: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| match declared.field_with_name(f.name()) {
            Ok(d) => d.clone(),
            Err(_) => f.as_ref().clone(),
        })
        .collect();
    for d in declared.fields() {
        if inferred.index_of(d.name()).is_err() {
            fields.push(d.as_ref().clone());
        }
    }
    Arc::new(Schema::new(fields))
}

/// CSV inference row by row: a row that does not parse (a wrong number of fields) is left out
/// (prepare refuses it later), and each column takes the type of the majority of its values,
/// as for JSON, so one bad value does not turn a numeric column into text.
fn infer_csv(header: &[u8], sample: &[&[u8]], sep: u8) -> Result<Schema, String> {
    let format = arrow_csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(sep)
        .with_null_regex(NA_VALUES.clone());
    let (head, _) = format
        .infer_schema(std::io::Cursor::new([header, b"\n"].concat()), None)
        .map_err(|e| format!("bad CSV header: {e}"))?;
    // duplicate names get pandas' suffixes (a, a.1, a.2), so no two columns share a name
    let head = dedupe_names(&head);
    let n = head.fields().len();
    let (mut ints, mut floats, mut others) = (vec![0usize; n], vec![0usize; n], vec![0usize; n]);
    let mut text = Vec::new();
    for row in sample {
        text.clear();
        text.extend_from_slice(header);
        text.push(b'\n');
        text.extend_from_slice(trim_newline(row));
        text.push(b'\n');
        let Ok((one, _)) = format.infer_schema(std::io::Cursor::new(&text), None) else {
            continue; // a ragged row: refused later by prepare
        };
        for (i, f) in one.fields().iter().enumerate().take(n) {
            match f.data_type() {
                DataType::Null => {}
                DataType::Int64 => ints[i] += 1,
                DataType::Float64 => floats[i] += 1,
                _ => others[i] += 1,
            }
        }
    }
    let fields: Vec<Field> = head
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let numbers = ints[i] + floats[i];
            let dt = if numbers > 0 && numbers > others[i] {
                if floats[i] > 0 {
                    DataType::Float64
                } else {
                    DataType::Int64
                }
            } else {
                DataType::Utf8 // text, dates and times pass through as written
            };
            Field::new(f.name(), dt, true)
        })
        .collect();
    Ok(Schema::new(fields))
}

/// The schema a sink that cannot add columns later (CSV, Parquet) is given: the stream's, with
/// the columns not typed yet as text.
pub fn output_schema(schema: &Schema) -> SchemaRef {
    Arc::new(normalise(schema.clone(), true))
}

/// `a, a, b, a` -> `a, a.1, b, a.2`, as `pd.read_csv` names repeated header fields.
fn dedupe_names(schema: &Schema) -> Schema {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut name = f.name().clone();
            let mut k = 0;
            while seen.contains(&name) {
                k += 1;
                name = format!("{}.{k}", f.name());
            }
            seen.insert(name.clone());
            f.as_ref().clone().with_name(name)
        })
        .collect();
    Schema::new(fields)
}

fn normalise(schema: Schema, untyped_as_text: bool) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let dt = match f.data_type() {
                DataType::Null if !untyped_as_text => DataType::Null,
                DataType::Null
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(_, _)
                | DataType::Time32(_)
                | DataType::Time64(_) => DataType::Utf8,
                dt => dt.clone(),
            };
            Field::new(f.name(), dt, true)
        })
        .collect();
    Schema::new(fields)
}
