//! What travels through Redis: a task (the chain spec and one message) and its result (the
//! output batch as Arrow IPC, the bytes `result` encoded for the sink, the dead letters).
//! Both are flat lists of fields of one stream entry.

use std::io::Cursor;
use std::sync::Arc;

use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::Schema;
use serde_json::{json, Value};
use streamprep_core::{Batch, DeadLetter, Encoding, IoError, Message, Output, Payload, RowFormat};
use streamprep_engine::chain::Processed;
use streamprep_engine::RemoteJob;
use streamprep_ops::prepare::{Compression, PrepareConfig};

fn bad(what: impl std::fmt::Display) -> IoError {
    IoError::Protocol(format!("queue: malformed entry: {what}"))
}

/// The job as one JSON text: workers rebuild the chain from it through the registry (and
/// cache it under this text).
pub fn job_spec(job: &RemoteJob) -> String {
    json!({
        "chain": job.chain,
        "format": job.prepare.format,
        "compression": match job.prepare.compression {
            Compression::None => "none",
            Compression::ZlibBase64 => "zlib-base64",
        },
        "schema": serde_json::to_value(job.prepare.schema.as_ref()).unwrap_or(Value::Null),
        "csv_sep": job.prepare.csv_sep,
        "encoding": match job.encoding {
            Encoding::Ndjson => "ndjson",
            Encoding::Csv => "csv",
            Encoding::Columnar => "columnar",
        },
        "batch": job.want_batch,
    })
    .to_string()
}

/// Read a job spec back.
pub fn parse_job(spec: &[u8]) -> Result<RemoteJob, IoError> {
    let v: Value = serde_json::from_slice(spec).map_err(bad)?;
    let chain = v["chain"]
        .as_array()
        .ok_or_else(|| bad("no chain"))?
        .iter()
        .map(|s| s.as_str().map(String::from).ok_or_else(|| bad("chain")))
        .collect::<Result<Vec<_>, _>>()?;
    let format: RowFormat = serde_json::from_value(v["format"].clone()).map_err(bad)?;
    let compression = match v["compression"].as_str() {
        Some("zlib-base64") => Compression::ZlibBase64,
        _ => Compression::None,
    };
    let schema: Schema = serde_json::from_value(v["schema"].clone()).map_err(bad)?;
    let encoding = match v["encoding"].as_str() {
        Some("csv") => Encoding::Csv,
        Some("columnar") => Encoding::Columnar,
        _ => Encoding::Ndjson,
    };
    Ok(RemoteJob {
        chain,
        prepare: PrepareConfig {
            format,
            compression,
            csv_sep: v["csv_sep"]
                .as_u64()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(b','),
            schema: Arc::new(schema),
        },
        encoding,
        want_batch: v["batch"].as_bool().unwrap_or(true),
        key: None,
        max_keys: None,
        state: None,
    })
}

/// A batch as an Arrow IPC stream.
pub fn to_ipc(batch: &Batch) -> Result<Vec<u8>, IoError> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, batch.schema_ref()).map_err(bad)?;
    w.write(batch).map_err(bad)?;
    w.finish().map_err(bad)?;
    drop(w);
    Ok(out)
}

/// An Arrow IPC stream of one batch back.
pub fn from_ipc(bytes: &[u8]) -> Result<Batch, IoError> {
    let mut r = StreamReader::try_new(Cursor::new(bytes), None).map_err(bad)?;
    match r.next() {
        Some(b) => b.map_err(bad),
        None => Ok(Batch::new_empty(r.schema())),
    }
}

/// A stream entry's fields.
pub type Fields = Vec<(&'static str, Vec<u8>)>;

/// LZ4 (block format, the size first) when `lz4`, else as it is.
fn pack(data: Vec<u8>, lz4: bool) -> Vec<u8> {
    if lz4 {
        lz4_flex::compress_prepend_size(&data)
    } else {
        data
    }
}

/// Undo [`pack`]; a size the data cannot hold is refused before anything is allocated.
fn unpack(data: Vec<u8>) -> Result<Vec<u8>, IoError> {
    let Some(head) = data.get(..4) else {
        return Err(bad("compressed data too short"));
    };
    let size = u32::from_le_bytes(head.try_into().unwrap_or([0; 4])) as usize;
    // LZ4 expands at most 255 times
    if size > data.len().saturating_mul(255) {
        return Err(bad("compressed data claims an impossible size"));
    }
    lz4_flex::decompress_size_prepended(&data).map_err(bad)
}

fn is_lz4(fields: &[(Vec<u8>, Vec<u8>)]) -> bool {
    get(fields, "z") == Some(b"lz4")
}

/// A message as task fields (`spec` is the job's text; `reply` the stream for the result);
/// with `lz4`, its data (and then the result's) is LZ4-compressed. The rows move into the
/// task: a message of megabytes is not copied.
pub fn task(reply: &str, spec: &str, msg: Message, lz4: bool) -> Result<Fields, IoError> {
    let mut f: Fields = vec![
        ("reply", reply.as_bytes().to_vec()),
        ("seq", msg.seq.to_string().into_bytes()),
        ("spec", spec.as_bytes().to_vec()),
    ];
    if lz4 {
        f.push(("z", b"lz4".to_vec()));
    }
    match msg.payload {
        Payload::Raw {
            format,
            bytes,
            ends,
        } => {
            f.push(("kind", b"raw".to_vec()));
            f.push((
                "format",
                match format {
                    RowFormat::Ndjson => b"ndjson".to_vec(),
                    RowFormat::Csv => b"csv".to_vec(),
                },
            ));
            f.push(("data", pack(bytes, lz4)));
            f.push((
                "ends",
                ends.iter()
                    .flat_map(|&e| (e as u64).to_le_bytes())
                    .collect(),
            ));
        }
        Payload::Columnar(b) => {
            f.push(("kind", b"ipc".to_vec()));
            f.push(("data", pack(to_ipc(&b)?, lz4)));
        }
    }
    if !msg.rejected.is_empty() {
        f.push(("rejected", dead_json(&msg.rejected).into_bytes()));
    }
    Ok(f)
}

/// Move a field's value out of an entry (large payloads are not copied).
fn take(fields: &mut [(Vec<u8>, Vec<u8>)], key: &str) -> Result<Vec<u8>, IoError> {
    fields
        .iter_mut()
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| std::mem::take(v))
        .ok_or_else(|| bad(format!("no field '{key}'")))
}

fn get<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| v.as_slice())
}

fn need<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> Result<&'a [u8], IoError> {
    get(fields, key).ok_or_else(|| bad(format!("no field '{key}'")))
}

fn number(fields: &[(Vec<u8>, Vec<u8>)], key: &str) -> Result<u64, IoError> {
    std::str::from_utf8(need(fields, key)?)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("field '{key}' is not a number")))
}

/// A task read back: the reply stream, the job spec and the message.
pub struct Task {
    /// Where the result goes.
    pub reply: String,
    /// The job's text.
    pub spec: Vec<u8>,
    /// The message.
    pub msg: Message,
    /// The task came LZ4-compressed: so goes the result.
    pub lz4: bool,
    /// The coordinator leaves compression to the distance (`task_compression = "auto"`): a
    /// worker 1 ms or more from Redis compresses its result.
    pub auto: bool,
    /// A keyed task: its key's state so far (empty for a key seen first), for the steps to
    /// start from; the result brings the new state back.
    pub state: Option<Vec<u8>>,
}

/// Read a task's fields (taking the payload out of them).
pub fn parse_task(mut fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Task, IoError> {
    let reply = String::from_utf8_lossy(need(&fields, "reply")?).into_owned();
    let seq = number(&fields, "seq")?;
    let spec = take(&mut fields, "spec")?;
    let lz4 = is_lz4(&fields);
    let data = take(&mut fields, "data")?;
    let data = if lz4 { unpack(data)? } else { data };
    let payload = match need(&fields, "kind")? {
        b"raw" => {
            let format = match need(&fields, "format")? {
                b"csv" => RowFormat::Csv,
                _ => RowFormat::Ndjson,
            };
            let ends = need(&fields, "ends")?
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as usize)
                .collect::<Vec<_>>();
            let bytes = data;
            if ends.iter().any(|&e| e > bytes.len()) {
                return Err(bad("row ends past the data"));
            }
            Payload::Raw {
                format,
                bytes,
                ends,
            }
        }
        b"ipc" => Payload::Columnar(from_ipc(&data)?),
        k => return Err(bad(format!("kind '{}'", String::from_utf8_lossy(k)))),
    };
    let mut msg = Message::new(seq, payload);
    if let Some(r) = get(&fields, "rejected") {
        msg.rejected = parse_dead(r)?;
    }
    let state = get(&fields, "state")
        .is_some()
        .then(|| take(&mut fields, "state"))
        .transpose()?;
    Ok(Task {
        reply,
        spec,
        msg,
        lz4,
        auto: get(&fields, "z") == Some(b"auto"),
        state,
    })
}

fn dead_json(dead: &[DeadLetter]) -> String {
    Value::Array(dead.iter().map(|d| d.to_json()).collect()).to_string()
}

fn parse_dead(bytes: &[u8]) -> Result<Vec<DeadLetter>, IoError> {
    let v: Value = serde_json::from_slice(bytes).map_err(bad)?;
    v.as_array()
        .ok_or_else(|| bad("dead letters"))?
        .iter()
        .map(|d| DeadLetter::from_json(d).ok_or_else(|| bad("dead letter")))
        .collect()
}

/// How a result carries a message's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// The rows encoded for the sink, and the batch (Arrow IPC) when the sink wants it.
    Encoded {
        /// The sink wants the batch too (a Parquet file, the charts).
        want_batch: bool,
    },
    /// Only the batch, as Arrow IPC (about half the bytes of the NDJSON rows, a third after
    /// LZ4): the chain ran with its encoding deferred and the coordinator encodes the rows.
    Arrow,
}

/// A result as fields (the encoded rows are moved, not copied).
pub fn result(p: Processed, worker: &str, lz4: bool, carry: Carry) -> Result<Fields, IoError> {
    let stages: Vec<String> = p.stages.iter().map(|d| d.as_nanos().to_string()).collect();
    let mut f: Fields = vec![
        ("seq", p.seq.to_string().into_bytes()),
        ("rows_in", p.rows_in.to_string().into_bytes()),
        ("dead", dead_json(&p.dead).into_bytes()),
        ("service_ns", p.service.as_nanos().to_string().into_bytes()),
        ("stages_ns", stages.join(",").into_bytes()),
        (
            "dropped_columns",
            Value::from(p.dropped_columns.clone())
                .to_string()
                .into_bytes(),
        ),
        ("worker", worker.as_bytes().to_vec()),
    ];
    if lz4 {
        f.push(("z", b"lz4".to_vec()));
    }
    if let Some(out) = p.output {
        match carry {
            Carry::Encoded { want_batch } => {
                // without the batch, its schema (for a CSV header) and the row count
                let batch = if want_batch {
                    out.batch
                } else {
                    out.batch.slice(0, 0)
                };
                f.push(("out", pack(to_ipc(&batch)?, lz4)));
                f.push(("enc", pack(out.encoded, lz4)));
            }
            Carry::Arrow => {
                f.push(("out", pack(to_ipc(&out.batch)?, lz4)));
                f.push(("carry", b"arrow".to_vec()));
            }
        }
        f.push(("rows_out", out.rows.to_string().into_bytes()));
    }
    Ok(f)
}

/// The result carries its output as the batch alone ([`Carry::Arrow`]): the coordinator
/// encodes the rows (`streamprep_engine::chain::encode_output`).
pub fn is_arrow(fields: &[(Vec<u8>, Vec<u8>)]) -> bool {
    get(fields, "carry") == Some(b"arrow")
}

/// Take a keyed result's state out of its fields (before [`parse_result`]).
pub fn take_state(fields: &mut [(Vec<u8>, Vec<u8>)]) -> Option<Vec<u8>> {
    get(fields, "state")
        .is_some()
        .then(|| take(fields, "state").ok())
        .flatten()
}

/// The round trip to Redis the worker that wrote a result measured, microseconds (none from
/// an older worker).
pub fn rtt_of(fields: &[(Vec<u8>, Vec<u8>)]) -> Option<u64> {
    std::str::from_utf8(get(fields, "rtt_us")?)
        .ok()?
        .parse()
        .ok()
}

/// The name of the worker that wrote a result (empty from an older worker).
pub fn worker_of(fields: &[(Vec<u8>, Vec<u8>)]) -> &[u8] {
    get(fields, "worker").unwrap_or_default()
}

/// A result read back (acks and dropped rows are the coordinator's to add).
pub fn parse_result(mut fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Processed, IoError> {
    let seq = number(&fields, "seq")?;
    let rows_in = number(&fields, "rows_in")? as usize;
    let dead = parse_dead(need(&fields, "dead")?)?;
    let lz4 = is_lz4(&fields);
    let output = match get(&fields, "out") {
        Some(_) => {
            let ipc = take(&mut fields, "out")?;
            let ipc = if lz4 { unpack(ipc)? } else { ipc };
            // an Arrow result has no encoded rows: the coordinator encodes the batch
            let encoded = match is_arrow(&fields) {
                true => Vec::new(),
                false if lz4 => unpack(take(&mut fields, "enc")?)?,
                false => take(&mut fields, "enc")?,
            };
            let batch = from_ipc(&ipc)?;
            let rows = match get(&fields, "rows_out") {
                Some(_) => number(&fields, "rows_out")? as usize,
                None => batch.num_rows(),
            };
            Some(Output {
                seq,
                batch,
                encoded,
                rows,
            })
        }
        None => None,
    };
    let mut p = Processed::refused(seq, rows_in, dead);
    p.output = output;
    // times (absent from an older worker's results)
    let nanos = |t: &[u8]| {
        std::str::from_utf8(t)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .map(std::time::Duration::from_nanos)
    };
    p.service = get(&fields, "service_ns")
        .and_then(nanos)
        .unwrap_or_default();
    if let Some(cols) = get(&fields, "dropped_columns") {
        let v: Value = serde_json::from_slice(cols).map_err(bad)?;
        p.dropped_columns = v
            .as_array()
            .ok_or_else(|| bad("dropped columns"))?
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
    }
    p.stages = get(&fields, "stages_ns")
        .filter(|t| !t.is_empty())
        .map(|t| t.split(|&c| c == b',').filter_map(nanos).collect())
        .unwrap_or_default();
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Float64Array, StringArray};

    fn owned(f: Fields) -> Vec<(Vec<u8>, Vec<u8>)> {
        f.into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect()
    }

    #[test]
    fn tasks_results_and_jobs_survive_the_trip() {
        let batch = Batch::try_from_iter([
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(1.5), None])) as ArrayRef,
            ),
            ("s", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
        ])
        .unwrap();
        let job = RemoteJob {
            chain: vec!["fillna_zeros".into(), "normalizer".into()],
            prepare: PrepareConfig {
                format: RowFormat::Csv,
                compression: Compression::ZlibBase64,
                csv_sep: b',',
                schema: batch.schema(),
            },
            encoding: Encoding::Csv,
            want_batch: false,
            key: None,
            max_keys: None,
            state: None,
        };
        let back = parse_job(job_spec(&job).as_bytes()).unwrap();
        assert_eq!(back.chain, job.chain);
        assert!(!back.want_batch);
        assert_eq!(back.prepare.schema, job.prepare.schema);
        assert_eq!(
            (back.prepare.format, back.encoding),
            (RowFormat::Csv, Encoding::Csv)
        );

        let mut msg = Message::new(
            7,
            Payload::Raw {
                format: RowFormat::Ndjson,
                bytes: b"{\"x\":1}\n{\"x\":2}\n".to_vec(),
                ends: vec![8, 16],
            },
        );
        msg.rejected = vec![DeadLetter {
            seq: 7,
            step: "source".into(),
            reason: "too long".into(),
            data: vec![0xff, b'x'],
            rows: 1,
        }];
        for lz4 in [false, true] {
            let t = parse_task(owned(task("r", "{}", msg.clone(), lz4).unwrap())).unwrap();
            assert_eq!((t.reply.as_str(), t.msg.seq, t.lz4), ("r", 7, lz4));
            let rows: Vec<&[u8]> = t.msg.payload.raw_rows().collect();
            assert_eq!(rows, [&b"{\"x\":1}"[..], &b"{\"x\":2}"[..]]);
            assert_eq!(t.msg.rejected, msg.rejected);

            let col = Message::new(8, Payload::Columnar(batch.clone()));
            match parse_task(owned(task("r", "{}", col.clone(), lz4).unwrap()))
                .unwrap()
                .msg
                .payload
            {
                Payload::Columnar(b) => assert_eq!(b, batch),
                _ => panic!("not columnar"),
            }
        }

        let mut p = Processed::refused(9, 2, msg.rejected.clone());
        p.output = Some(Output {
            seq: 9,
            batch: batch.clone(),
            encoded: b"x,s\n".to_vec(),
            rows: 2,
        });
        p.service = std::time::Duration::from_nanos(123_456);
        p.stages = vec![
            std::time::Duration::from_nanos(7),
            std::time::Duration::from_nanos(8),
        ];
        let want_dead = p.dead.clone();
        let p2 = Processed {
            output: p.output.as_ref().map(|o| Output {
                seq: o.seq,
                batch: o.batch.clone(),
                encoded: o.encoded.clone(),
                rows: o.rows,
            }),
            dead: p.dead.clone(),
            stages: p.stages.clone(),
            dropped_columns: vec!["late".into(), "lat\"e2".into()],
            ..Processed::refused(9, 2, Vec::new())
        };
        let mut p3 = Processed::refused(9, 2, p.dead.clone());
        p3.output = p.output.as_ref().map(|o| Output {
            seq: o.seq,
            batch: o.batch.clone(),
            encoded: Vec::new(),
            rows: o.rows,
        });
        p3.stages = p.stages.clone();
        // plain with the batch; LZ4 without it (only its schema and row count come back);
        // LZ4 with the batch alone (the coordinator encodes it)
        for (p, lz4, carry) in [
            (p, false, Carry::Encoded { want_batch: true }),
            (p2, true, Carry::Encoded { want_batch: false }),
            (p3, true, Carry::Arrow),
        ] {
            let want_batch = carry != Carry::Encoded { want_batch: false };
            let fields = owned(result(p, "host-1-0", lz4, carry).unwrap());
            assert_eq!(worker_of(&fields), b"host-1-0");
            assert_eq!(is_arrow(&fields), carry == Carry::Arrow);
            let r = parse_result(fields).unwrap();
            assert_eq!(
                (r.seq, r.rows_in, r.dead.clone()),
                (9, 2, want_dead.clone())
            );
            assert_eq!(r.stages, [7, 8].map(std::time::Duration::from_nanos));
            let want_cols: &[&str] = match carry {
                Carry::Encoded { want_batch: false } => &["late", "lat\"e2"],
                _ => &[],
            };
            assert_eq!(r.dropped_columns, want_cols);
            if !lz4 {
                assert_eq!(r.service, std::time::Duration::from_nanos(123_456));
            }
            let out = r.output.unwrap();
            assert_eq!(out.rows, 2);
            let want_encoded: &[u8] = match carry {
                Carry::Arrow => b"",
                _ => b"x,s\n",
            };
            assert_eq!(out.encoded, want_encoded);
            if want_batch {
                assert_eq!(out.batch, batch);
            } else {
                assert_eq!(out.batch.num_rows(), 0);
                assert_eq!(out.batch.schema(), batch.schema());
            }
        }
        assert!(parse_task(Vec::new()).is_err());
    }

    #[test]
    fn compressed_data_that_lies_about_its_size_is_refused() {
        // claims 4 GiB from 8 bytes: refused before any allocation
        let mut lie = u32::MAX.to_le_bytes().to_vec();
        lie.extend_from_slice(b"abcd");
        assert!(unpack(lie)
            .unwrap_err()
            .to_string()
            .contains("impossible size"));
        assert!(unpack(vec![1, 2]).is_err());
        // and real data survives
        let text = b"{\"temp\":21.5,\"hum\":40}\n".repeat(100);
        let packed = pack(text.clone(), true);
        assert!(packed.len() < text.len() / 4);
        assert_eq!(unpack(packed).unwrap(), text);
    }
}
