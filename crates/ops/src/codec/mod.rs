//! Fast NDJSON codecs for flat rows (numbers, strings, booleans), used by `prepare` and
//! `result`. arrow-json stays the fallback for every other type. Messages are small and rows
//! are flat, so a single pass that matches keys in schema order beats a general JSON tape
//! (measured in BENCHMARKS.md).

pub mod json_decode;
pub mod json_encode;
