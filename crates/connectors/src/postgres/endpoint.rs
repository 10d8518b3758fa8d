//! `postgres://` as an endpoint: how it parses and opens.

use std::sync::Arc;

use streamprep_core::{IoError, Sink, Source};

use super::{PgSink, PgSource, PgUrl};
use crate::registry::Connector;
use crate::spec::{FileFormat, SourceOptions};

/// A table (or, as a source, a query) in a PostgreSQL database.
#[derive(Debug)]
pub struct PgEndpoint {
    /// The address.
    pub url: PgUrl,
}

/// The whole spec, `postgres://...`.
pub fn parse(
    spec: &str,
    _f: Option<FileFormat>,
) -> Result<(Arc<dyn Connector>, FileFormat), String> {
    let url = PgUrl::parse(spec)?;
    Ok((Arc::new(PgEndpoint { url }), FileFormat::Parquet))
}

impl Connector for PgEndpoint {
    fn open_source(
        &self,
        _format: FileFormat,
        opts: SourceOptions,
    ) -> Result<Box<dyn Source>, IoError> {
        Ok(Box::new(PgSource::open(&self.url, opts.stop.clone())?))
    }

    fn open_sink(
        &self,
        _format: FileFormat,
        _opts: &SourceOptions,
    ) -> Result<Box<dyn Sink>, IoError> {
        Ok(Box::new(PgSink::connect(&self.url)?))
    }

    fn opened(&self) -> Option<String> {
        Some(format!("reading {}", self.url.display()))
    }
}
