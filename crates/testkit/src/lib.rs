//! Test helpers shared by the crates' tests: batches from JSON literals, batches back to JSON,
//! and numeric comparison with stated tolerances.

pub mod postgres;

use std::sync::Arc;

use arrow_array::RecordBatch;

/// A batch from a JSON array of row objects, with the schema inferred (ints, floats, strings).
pub fn batch_from_json(json: &str) -> RecordBatch {
    let rows: Vec<serde_json::Value> = serde_json::from_str(json).expect("test JSON");
    let schema =
        arrow_json::reader::infer_json_schema_from_iterator(rows.iter().map(|r| Ok(r.clone())))
            .expect("inferable");
    let mut dec = arrow_json::ReaderBuilder::new(Arc::new(schema))
        .build_decoder()
        .expect("decoder");
    dec.serialize(&rows).expect("rows fit");
    dec.flush().expect("flush").expect("a batch")
}

/// A batch as a JSON array of row objects (explicit nulls), for assertions.
pub fn batch_to_json(batch: &RecordBatch) -> String {
    let mut out = Vec::new();
    let mut w = arrow_json::writer::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::JsonArray>(&mut out);
    w.write(batch).expect("encodable");
    w.finish().expect("finish");
    drop(w);
    let s = String::from_utf8(out).expect("utf8");
    if s.is_empty() {
        "[]".into()
    } else {
        s
    }
}

/// `|a - b| <= atol + rtol * |b|`, with NaN equal to NaN (both missing).
pub fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= atol + rtol * b.abs()
}
