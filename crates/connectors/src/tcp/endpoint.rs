//! `tcp-listen:HOST:PORT` and `tcp:HOST:PORT` as endpoints: how they parse and open.

use std::net::ToSocketAddrs;
use std::sync::Arc;

use streamprep_core::{IoError, RowFormat, Sink, Source};

use super::{FramedSink, FramedSource};
use crate::registry::Connector;
use crate::spec::{FileFormat, SourceOptions};

/// Listen for framed rows.
#[derive(Debug)]
pub struct ListenEndpoint {
    addr: String,
}

/// Connect and send frames.
#[derive(Debug)]
pub struct ConnectEndpoint {
    addr: String,
}

fn addr(rest: &str) -> Result<String, String> {
    match rest.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(_)) => Ok(rest.to_string()),
        _ => Err("expected HOST:PORT, e.g. 127.0.0.1:9000".into()),
    }
}

fn format(format: Option<FileFormat>) -> Result<FileFormat, String> {
    match format.unwrap_or(FileFormat::Ndjson) {
        FileFormat::Parquet => Err("TCP frames carry NDJSON or CSV, not Parquet".into()),
        f => Ok(f),
    }
}

/// `tcp-listen:HOST:PORT`.
pub fn parse_listen(
    rest: &str,
    f: Option<FileFormat>,
) -> Result<(Arc<dyn Connector>, FileFormat), String> {
    Ok((Arc::new(ListenEndpoint { addr: addr(rest)? }), format(f)?))
}

/// `tcp:HOST:PORT`.
pub fn parse_connect(
    rest: &str,
    f: Option<FileFormat>,
) -> Result<(Arc<dyn Connector>, FileFormat), String> {
    Ok((Arc::new(ConnectEndpoint { addr: addr(rest)? }), format(f)?))
}

impl Connector for ListenEndpoint {
    fn open_source(
        &self,
        format: FileFormat,
        opts: SourceOptions,
    ) -> Result<Box<dyn Source>, IoError> {
        let rows = format.rows().unwrap_or(RowFormat::Ndjson);
        Ok(Box::new(FramedSource::bind_with(
            &self.addr,
            rows,
            opts.max_frame,
            super::source::MAX_CONNECTIONS,
            opts.stop.clone(),
        )?))
    }

    fn open_sink(&self, _: FileFormat, _: &SourceOptions) -> Result<Box<dyn Sink>, IoError> {
        Err(IoError::Protocol(format!(
            "tcp-listen:{} is a source; a TCP sink connects: tcp:{}",
            self.addr, self.addr
        )))
    }

    fn opened(&self) -> Option<String> {
        Some(format!("listening on {} for framed rows", self.addr))
    }
}

impl Connector for ConnectEndpoint {
    fn open_source(&self, _: FileFormat, _: SourceOptions) -> Result<Box<dyn Source>, IoError> {
        Err(IoError::Protocol(format!(
            "tcp:{} is a sink; a TCP source listens: tcp-listen:{}",
            self.addr, self.addr
        )))
    }

    fn open_sink(&self, format: FileFormat, _: &SourceOptions) -> Result<Box<dyn Sink>, IoError> {
        Ok(Box::new(FramedSink::connect(
            &self.addr,
            format.encoding(),
        )?))
    }
}
