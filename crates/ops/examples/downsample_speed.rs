//! The downsampling steps' selection on plain arrays, timed (bench/downsample.sh): reads x
//! (i64, little-endian) and y (f64) from files, runs m4, minmax_lttb and lttb with x for
//! `n_out` points (best of `repeat`), prints the seconds of each and writes the indices
//! (u64 little-endian) beside `out` for the script to compare with tsdownsample's.
//!
//! `cargo run --release -p streamprep-ops --example downsample_speed -- X Y N_OUT OUT [REPEAT]`

use std::time::Instant;

use streamprep_ops::downsample::{select, Algo};

fn read<T>(path: &str, conv: fn([u8; 8]) -> T) -> Vec<T> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes
        .chunks_exact(8)
        .map(|c| conv(c.try_into().unwrap_or([0; 8])))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: downsample_speed X.bin Y.bin N_OUT OUT_PREFIX [REPEAT]");
        std::process::exit(2);
    }
    let x = read(&args[1], i64::from_le_bytes);
    let y = read(&args[2], f64::from_le_bytes);
    let n_out: usize = args[3].parse().expect("n_out");
    let repeat: usize = args.get(5).and_then(|r| r.parse().ok()).unwrap_or(3);
    for (name, algo) in [
        ("m4", Algo::M4),
        ("minmax_lttb", Algo::MinMaxLttb),
        ("lttb", Algo::Lttb),
    ] {
        let mut best = f64::MAX;
        let mut idx = Vec::new();
        for _ in 0..repeat {
            let t = Instant::now();
            idx = select(algo, Some(&x), &y, n_out);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let bytes: Vec<u8> = idx.iter().flat_map(|&i| (i as u64).to_le_bytes()).collect();
        std::fs::write(format!("{}.{name}", args[4]), bytes).expect("write indices");
        println!("{name} {best:.6}");
    }
}
