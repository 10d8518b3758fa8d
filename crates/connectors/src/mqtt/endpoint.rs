//! `mqtt://` and `mqtts://` as endpoints: how they parse and open.

use std::sync::Arc;

use streamprep_core::{IoError, RowFormat, Sink, Source};

use super::{MqttSink, MqttSource, MqttUrl};
use crate::registry::Connector;
use crate::spec::{FileFormat, SourceOptions};

/// A topic (a filter, as a source) on a broker.
#[derive(Debug)]
pub struct MqttEndpoint {
    /// The address.
    pub url: MqttUrl,
}

/// The whole spec, `mqtt[s]://...`.
pub fn parse(
    spec: &str,
    f: Option<FileFormat>,
) -> Result<(Arc<dyn Connector>, FileFormat), String> {
    let url = MqttUrl::parse(spec)?;
    let format = f.unwrap_or(FileFormat::Ndjson);
    if format == FileFormat::Parquet {
        return Err("MQTT publishes carry NDJSON or CSV, not Parquet".into());
    }
    Ok((Arc::new(MqttEndpoint { url }), format))
}

impl Connector for MqttEndpoint {
    fn open_source(
        &self,
        format: FileFormat,
        opts: SourceOptions,
    ) -> Result<Box<dyn Source>, IoError> {
        let rows = format.rows().unwrap_or(RowFormat::Ndjson);
        Ok(Box::new(
            MqttSource::connect(&self.url, rows, opts.stop.clone())?
                .with_max_payload(opts.max_frame),
        ))
    }

    fn open_sink(
        &self,
        format: FileFormat,
        opts: &SourceOptions,
    ) -> Result<Box<dyn Sink>, IoError> {
        if format == FileFormat::Csv {
            return Err(IoError::Protocol(
                "the MQTT sink publishes JSON (a message as an array, or per=row)".into(),
            ));
        }
        Ok(Box::new(MqttSink::connect(&self.url, opts.stop.clone())?))
    }

    fn opened(&self) -> Option<String> {
        Some(format!("subscribed to {}", self.url.display()))
    }
}
