//! Files and standard streams: NDJSON and CSV read line by line (never the whole file in
//! memory), Parquet read batch by batch; sinks write what `result` encoded.

mod parquet;
mod sink;
mod source;

pub use parquet::{ParquetSink, ParquetSource};
pub use sink::WriterSink;
pub use source::LineSource;
