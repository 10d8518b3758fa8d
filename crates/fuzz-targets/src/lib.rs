//! The fuzz targets' bodies. `fuzz/fuzz_targets/*.rs` (cargo-fuzz, libFuzzer) call these on
//! every input, and `tests/it/fuzz_replay.rs` calls them on the kept corpus and on every crash
//! found, so `cargo test` keeps what fuzzing fixed fixed. Each one feeds arbitrary bytes to a
//! place where outside bytes enter streamprep and checks what must hold: no panic, no hang,
//! memory bounded by the input, and the rows accounted for.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use streamprep_core::{Message, Payload, RowFormat};
use streamprep_ops::prepare::{infer_schema, Compression, Prepare, PrepareConfig};
use streamprep_ops::result::ResultStep;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (the folder names under `fuzz/corpus/` and `fuzz/regressions/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("ndjson", ndjson),
    ("csv", csv),
    ("framed", framed),
    ("zlib_base64", zlib_base64),
    ("project", project_file),
    ("mqtt_payload", mqtt_payload),
    ("queue_wire", queue_wire),
];

fn message(format: RowFormat, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    let mut ends = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue; // the sources leave blank lines out
        }
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
        ends.push(bytes.len());
    }
    Message::new(
        0,
        Payload::Raw {
            format,
            bytes,
            ends,
        },
    )
}

/// Decode `msg`, check every row is accounted for, run some steps and encode the result.
fn prepare_and_run(cfg: PrepareConfig, msg: &Message) {
    let lines = msg.payload.rows();
    let mut p = Prepare::new(cfg);
    let Ok(prepared) = p.apply(msg) else {
        return; // a refused message (a typed error) is an acceptable answer
    };
    let dead: usize = prepared.dead.iter().map(|d| d.rows).sum();
    // a JSON array line holds several rows (or none: `[]`); a CSV record may span lines
    if msg.payload.raw_rows().all(|r| !r.starts_with(b"[")) && lines > 0 {
        assert!(
            prepared.batch.num_rows() + dead >= 1,
            "{lines} rows in, nothing out and no dead letter"
        );
    }
    let mut batch = prepared.batch;
    for name in [
        "fillna_mean",
        "drop_duplicates",
        "standard_scaler",
        "quantile_transformer_uniform",
        "robust_scaler",
        "normalizer",
    ] {
        let mut step = streamprep_ops::registry::build_chain(&[name])
            .expect("registered")
            .remove(0);
        if let Ok(b) = step.apply(batch.clone()) {
            batch = b;
        }
    }
    for enc in [
        streamprep_core::Encoding::Ndjson,
        streamprep_core::Encoding::Csv,
    ] {
        let out = ResultStep::new(enc).encode(&batch).expect("encodes");
        if enc == streamprep_core::Encoding::Ndjson {
            assert_eq!(
                out.iter().filter(|&&b| b == b'\n').count(),
                batch.num_rows()
            );
        }
    }
}

/// NDJSON rows: inferred from the first lines, then decoded (the widening path included).
pub fn ndjson(data: &[u8]) {
    let msg = message(RowFormat::Ndjson, data);
    let sample: Vec<&[u8]> = msg.payload.raw_rows().take(1000).collect();
    let Ok(schema) = infer_schema(RowFormat::Ndjson, None, &sample[..sample.len() / 2], b',')
    else {
        return;
    };
    let cfg = PrepareConfig {
        format: RowFormat::Ndjson,
        compression: Compression::None,
        csv_sep: b',',
        schema,
    };
    prepare_and_run(cfg, &msg);
}

/// CSV: the first line is the header; the first byte picks the separator.
pub fn csv(data: &[u8]) {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let sep = [b',', b';', b'\t', b'|'][usize::from(first % 4)];
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (header, rows) = (&data[..nl], &data[nl + 1..]);
    let msg = message(RowFormat::Csv, rows);
    let sample: Vec<&[u8]> = msg.payload.raw_rows().take(1000).collect();
    let Ok(schema) = infer_schema(RowFormat::Csv, Some(header), &sample, sep) else {
        return;
    };
    let cfg = PrepareConfig {
        format: RowFormat::Csv,
        compression: Compression::None,
        csv_sep: sep,
        schema,
    };
    prepare_and_run(cfg, &msg);
}

/// Length-framed TCP: frames, oversized frames and torn ends, read to the end.
pub fn framed(data: &[u8]) {
    use streamprep_connectors::tcp::{read_frame, FrameRead};
    let mut r = std::io::Cursor::new(data);
    let mut reads = 0;
    loop {
        let mut buf = Vec::new();
        match read_frame(&mut r, &mut buf, 64) {
            Ok(None) => break,
            Ok(Some(FrameRead::Frame(n))) => assert_eq!(buf.len(), n),
            Ok(Some(FrameRead::TooLong(n))) => assert!(n > 64 && buf.is_empty()),
            Ok(Some(FrameRead::Torn { got, .. })) => {
                assert_eq!(buf.len(), got);
                break;
            }
            Err(_) => break,
        }
        // memory: a frame holds at most what arrived, whatever its length said
        assert!(buf.len() <= data.len());
        reads += 1;
        assert!(reads <= data.len() / 4 + 1, "no progress");
    }
}

/// `zlib-base64` rows into a declared schema.
pub fn zlib_base64(data: &[u8]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let cfg = PrepareConfig {
        format: RowFormat::Ndjson,
        compression: Compression::ZlibBase64,
        csv_sep: b',',
        schema,
    };
    prepare_and_run(cfg, &message(RowFormat::Ndjson, data));
}

/// A project file: parsed, and every value that has a meaning checked as `run` checks it.
pub fn project_file(data: &[u8]) {
    use streamprep_project::ProjectSpec;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = ProjectSpec::from_toml(text) else {
        return;
    };
    // written out and read back, a spec says the same (as TOML and as JSON)
    let once = p.to_toml();
    let again = ProjectSpec::from_toml(&once).expect("a written spec reads back");
    assert_eq!(again.to_toml(), once);
    if let Ok(j) = ProjectSpec::from_json(&p.to_json()) {
        assert_eq!(j.to_toml(), once);
    }
    // every field checked as `launch` checks it (but the output files, which plan() tries)
    let _ = p.resolve();
    if let Some(r) = &p.rate {
        let _ = r.steps();
    }
    for d in [&p.max_wait, &p.max_latency].into_iter().flatten() {
        let _ = streamprep_project::parse_duration(d);
    }
}

/// An MQTT publish split into rows (JSON and CSV): every row lies within the text.
pub fn mqtt_payload(data: &[u8]) {
    for format in [RowFormat::Ndjson, RowFormat::Csv] {
        let (text, rows) =
            streamprep_connectors::mqtt::publish_rows(bytes::Bytes::copy_from_slice(data), format);
        for r in rows {
            assert!(
                r.start <= r.end && r.end <= text.len(),
                "{r:?} of {}",
                text.len()
            );
        }
    }
}

/// The queue's wire format: a task, a result and a job spec from arbitrary fields.
pub fn queue_wire(data: &[u8]) {
    use streamprep_queue::wire::{parse_job, parse_result, parse_task};
    let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let fields: Vec<(Vec<u8>, Vec<u8>)> = parts
        .chunks(2)
        .map(|kv| (kv[0].to_vec(), kv.get(1).map_or(Vec::new(), |v| v.to_vec())))
        .collect();
    let _ = parse_task(fields.clone());
    let _ = parse_result(fields);
    let _ = parse_job(data);
}
