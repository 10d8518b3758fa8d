//! Sources and sinks, one module per protocol: [`file`] (NDJSON, CSV, Parquet, stdin/stdout),
//! [`tcp`] (length-framed), [`mqtt`] (subscribe and publish), [`postgres`] (binary COPY both ways), [`generator`] (a simulated Davis weather station), and the
//! [`dead_letter`] output. [`spec`] turns the CLI's `file:PATH`, `tcp-listen:HOST:PORT`, ...
//! into endpoints and opens them.

pub mod dead_letter;
pub mod file;
pub mod generator;
pub mod mqtt;
pub mod paced;
pub mod postgres;
pub mod registry;
mod roots;
pub mod spec;
pub mod tcp;

pub use spec::{
    open_dead_letter, open_sink, open_source, Endpoint, FileFormat, SourceOptions, SpecError,
};
