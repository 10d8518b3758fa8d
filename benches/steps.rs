//! Criterion benches: every step, and the paper's chain `fillna_zeros,normalizer,drop_duplicates`,
//! at buffering factors 1, 10, 100, 1000, 10000 on Davis-station rows (the paper's figures 8
//! and 9: time per message; criterion's throughput line gives rows/s, i.e. time per row).
//!
//! `cargo bench --bench steps` (all), `cargo bench --bench steps -- chain` (the chain only) or
//! `cargo bench --bench steps -- codec` (JSON decode and encode alone).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use streamprep_connectors::generator::DavisGenerator;
use streamprep_core::{Batch, Encoding, Message, Payload, RowFormat};
use streamprep_engine::chain::Chain;
use streamprep_ops::prepare::{infer_schema, Compression, Prepare, PrepareConfig};
use streamprep_ops::registry::{build_chain, StepKind, STEPS};
use streamprep_ops::result::ResultStep;

// The allocator the binary uses (src/main.rs): the benches measure what `streamprep run` runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 5] = [1, 10, 100, 1000, 10_000];
const CHAIN: [&str; 3] = ["fillna_zeros", "normalizer", "drop_duplicates"];

fn message(rows: usize) -> Message {
    let mut g = DavisGenerator::new(42);
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for _ in 0..rows {
        g.write_row(&mut bytes);
        bytes.push(b'\n');
        ends.push(bytes.len());
    }
    Message::new(
        0,
        Payload::Raw {
            format: RowFormat::Ndjson,
            bytes,
            ends,
        },
    )
}

fn prepare_config() -> PrepareConfig {
    let sample = message(1000);
    let rows: Vec<&[u8]> = sample.payload.raw_rows().collect();
    let schema = infer_schema(RowFormat::Ndjson, None, &rows, b',').expect("schema");
    PrepareConfig {
        format: RowFormat::Ndjson,
        compression: Compression::None,
        csv_sep: b',',
        schema,
    }
}

fn decoded(cfg: &PrepareConfig, rows: usize) -> Batch {
    Prepare::new(cfg.clone())
        .apply(&message(rows))
        .expect("decodes")
        .batch
}

fn steps(c: &mut Criterion) {
    let cfg = prepare_config();
    for info in STEPS {
        let StepKind::Transform(_) = info.kind else {
            continue;
        };
        let mut group = c.benchmark_group(format!("step/{}", info.name));
        for &b in &SIZES {
            let mut batch = decoded(&cfg, b);
            if info.name == "normalizer" {
                // Normalizer refuses missing values, as scikit-learn does: feed it filled rows.
                batch = build_chain(&["fillna_zeros"])
                    .expect("step")
                    .remove(0)
                    .apply(batch)
                    .expect("fill");
            }
            let mut step = build_chain(&[info.name]).expect("registered").remove(0);
            group.throughput(Throughput::Elements(b as u64));
            group.bench_with_input(BenchmarkId::from_parameter(b), &batch, |bench, batch| {
                bench.iter(|| black_box(step.apply(batch.clone()).expect("step")))
            });
        }
        group.finish();
    }
}

fn chain(c: &mut Criterion) {
    let cfg = prepare_config();
    // The three steps on a decoded batch.
    let mut group = c.benchmark_group("chain/steps");
    for &b in &SIZES {
        let batch = decoded(&cfg, b);
        let mut steps = build_chain(&CHAIN).expect("chain");
        group.throughput(Throughput::Elements(b as u64));
        group.bench_with_input(BenchmarkId::from_parameter(b), &batch, |bench, batch| {
            bench.iter(|| {
                let mut x = batch.clone();
                for s in steps.iter_mut() {
                    x = s.apply(x).expect("step");
                }
                black_box(x)
            })
        });
    }
    group.finish();
    // The whole chained task as the paper measured it: prepare (decode JSON) + steps + result (encode JSON).
    let mut group = c.benchmark_group("chain/prepare+steps+result");
    for &b in &SIZES {
        let msg = message(b);
        let mut chain = Chain::new(&CHAIN, cfg.clone(), Encoding::Ndjson).expect("chain");
        group.throughput(Throughput::Elements(b as u64));
        group.bench_with_input(BenchmarkId::from_parameter(b), &msg, |bench, msg| {
            bench.iter(|| black_box(chain.run(&mut msg.clone())))
        });
    }
    group.finish();
}

/// The two codecs alone: `prepare` (JSON rows -> batch) and `result` (batch after the chain -> NDJSON).
fn codec(c: &mut Criterion) {
    let cfg = prepare_config();
    let mut group = c.benchmark_group("codec/decode");
    for &b in &SIZES {
        let msg = message(b);
        let mut prepare = Prepare::new(cfg.clone());
        group.throughput(Throughput::Elements(b as u64));
        group.bench_with_input(BenchmarkId::from_parameter(b), &msg, |bench, msg| {
            bench.iter(|| black_box(prepare.apply(msg).expect("decodes")))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("codec/encode");
    for &b in &SIZES {
        let mut batch = decoded(&cfg, b);
        for s in build_chain(&CHAIN).expect("chain").iter_mut() {
            batch = s.apply(batch).expect("step");
        }
        let mut result = ResultStep::new(Encoding::Ndjson);
        group.throughput(Throughput::Elements(b as u64));
        group.bench_with_input(BenchmarkId::from_parameter(b), &batch, |bench, batch| {
            bench.iter(|| black_box(result.encode(batch).expect("encodes")))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = chain, codec, steps }
criterion_main!(benches);
