//! What a queue result would cost as Arrow IPC instead of the NDJSON rows the sink wants, on a
//! slow link (issue 20: "Arrow IPC versus raw rows"). A result is today the message's output
//! encoded for the sink (NDJSON), optionally LZ4; as IPC the worker would send the batch and
//! the coordinator would encode the NDJSON. For each buffer size: the bytes of each encoding,
//! the worker's and the coordinator's CPU for it, and the transfer at 100 Mbit/s and 1 Gbit/s.
//! A measurement for BENCHMARKS.md, not a test:
//!
//! `cargo run --release -p streamprep-queue --example result_encodings -- OUTPUT.ndjson [B...]`
//!
//! where OUTPUT.ndjson is a chain's output (`streamprep run ... --sink file:OUTPUT.ndjson`).

use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: result_encodings OUTPUT.ndjson [BUFFER...]")?;
    let mut buffers: Vec<usize> = args.map(|b| b.parse()).collect::<Result<_, _>>()?;
    if buffers.is_empty() {
        buffers = vec![100, 10_000];
    }
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(&path)?)
        .lines()
        .collect::<Result<_, _>>()?;
    let schema = {
        let sample = lines
            .iter()
            .take(1000)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        let (s, _) = arrow_json::reader::infer_json_schema(sample.as_bytes(), None)?;
        Arc::new(s)
    };
    println!("| buffer | NDJSON bytes | NDJSON+LZ4 | IPC | IPC+LZ4 | worker us: LZ4 NDJSON / IPC / IPC+LZ4 | coordinator us: un-LZ4 / IPC to NDJSON / un-LZ4 + IPC to NDJSON | 100 Mbit/s ms: NDJSON+LZ4 / IPC+LZ4 | 1 Gbit/s ms: NDJSON+LZ4 / IPC+LZ4 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for b in buffers {
        // messages of b rows, as many as the file holds (at least one), times the median
        let chunks: Vec<&[String]> = lines.chunks(b).filter(|c| c.len() == b).take(20).collect();
        if chunks.is_empty() {
            eprintln!("{path}: fewer than {b} rows");
            continue;
        }
        let mut m: Vec<[f64; 10]> = Vec::new();
        for chunk in chunks {
            let ndjson = (chunk.join("\n") + "\n").into_bytes();
            let batch: RecordBatch = arrow_json::ReaderBuilder::new(schema.clone())
                .with_batch_size(b)
                .build(ndjson.as_slice())?
                .next()
                .ok_or("no rows")??;
            let t = Instant::now();
            let nd_lz4 = lz4_flex::compress_prepend_size(&ndjson);
            let w_lz4 = t.elapsed();
            let t = Instant::now();
            let ipc = {
                let mut out = Vec::new();
                let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
                w.write(&batch)?;
                w.finish()?;
                drop(w);
                out
            };
            let w_ipc = t.elapsed();
            let t = Instant::now();
            let ipc_lz4 = lz4_flex::compress_prepend_size(&ipc);
            let w_ipc_lz4 = w_ipc + t.elapsed();
            // the coordinator: NDJSON+LZ4 is decompressed; IPC is read and encoded as NDJSON
            let t = Instant::now();
            let back = lz4_flex::decompress_size_prepended(&nd_lz4)?;
            let c_lz4 = t.elapsed();
            assert_eq!(back.len(), ndjson.len());
            let t = Instant::now();
            let to_ndjson = |ipc: &[u8]| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
                let mut r = arrow_ipc::reader::StreamReader::try_new(ipc, None)?;
                let batch = r.next().ok_or("no batch")??;
                let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
                w.write(&batch)?;
                w.finish()?;
                Ok(w.into_inner())
            };
            let text = to_ndjson(&ipc)?;
            let c_ipc = t.elapsed();
            let t = Instant::now();
            let raw = lz4_flex::decompress_size_prepended(&ipc_lz4)?;
            let _ = to_ndjson(&raw)?;
            let c_ipc_lz4 = t.elapsed();
            assert!(!text.is_empty());
            let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
            m.push([
                ndjson.len() as f64,
                nd_lz4.len() as f64,
                ipc.len() as f64,
                ipc_lz4.len() as f64,
                us(w_lz4),
                us(w_ipc),
                us(w_ipc_lz4),
                us(c_lz4),
                us(c_ipc),
                us(c_ipc_lz4),
            ]);
        }
        let med = |k: usize| {
            let mut v: Vec<f64> = m.iter().map(|r| r[k]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let ms_at = |bytes: f64, mbit: f64| bytes * 8.0 / (mbit * 1e6) * 1e3;
        println!(
            "| {b} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.2} / {:.2} | {:.3} / {:.3} |",
            med(0),
            med(1),
            med(2),
            med(3),
            med(4),
            med(5),
            med(6),
            med(7),
            med(8),
            med(9),
            ms_at(med(1), 100.0),
            ms_at(med(3), 100.0),
            ms_at(med(1), 1000.0),
            ms_at(med(3), 1000.0),
        );
    }
    Ok(())
}
