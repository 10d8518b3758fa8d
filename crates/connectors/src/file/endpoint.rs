//! `file:PATH` and `-` as endpoints: how they parse and open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use streamprep_core::{DeadLetterSink, IoError, RowFormat, Sink, Source};

use super::{Interruptible, LineSource, ParquetSink, ParquetSource, WriterSink};
use crate::dead_letter::DeadLetterWriter;
use crate::registry::Connector;
use crate::spec::{FileFormat, SourceOptions};

/// A file.
#[derive(Debug)]
pub struct FileEndpoint {
    path: PathBuf,
}

/// `file:PATH`: the format from the extension unless given.
pub fn parse_file(
    rest: &str,
    format: Option<FileFormat>,
) -> Result<(Arc<dyn Connector>, FileFormat), String> {
    if rest.is_empty() {
        return Err("empty path".into());
    }
    let path = PathBuf::from(rest);
    let format = format.or_else(|| FileFormat::from_path(&path)).ok_or(
        "cannot tell the format from the extension; use .ndjson/.jsonl, .csv or .parquet, or \
         name the format (source_format or sink_format: ndjson, csv, parquet)",
    )?;
    Ok((Arc::new(FileEndpoint { path }), format))
}

/// Rows, one a line, from `reader`, with the run's row limit and stop signal.
fn lines<R: std::io::Read + Send + 'static>(
    reader: R,
    format: FileFormat,
    opts: &SourceOptions,
) -> Box<dyn Source> {
    Box::new(
        LineSource::new(reader, format.rows().unwrap_or(RowFormat::Ndjson))
            .with_max_row(opts.max_frame)
            .with_stop(opts.stop.clone()),
    )
}

impl Connector for FileEndpoint {
    fn open_source(
        &self,
        format: FileFormat,
        opts: SourceOptions,
    ) -> Result<Box<dyn Source>, IoError> {
        let path = &self.path;
        if format == FileFormat::Parquet {
            return Ok(Box::new(ParquetSource::open(path)?));
        }
        let f = std::fs::File::open(path)
            .map_err(|e| IoError::io(format!("opening {}", path.display()), e))?;
        let regular = f.metadata().is_ok_and(|m| m.is_file());
        Ok(if regular {
            lines(f, format, &opts)
        } else {
            // a FIFO or a device may block in a read for ever: read it on a thread
            lines(Interruptible::new(f, opts.stop.clone()), format, &opts)
        })
    }

    fn open_sink(
        &self,
        format: FileFormat,
        _opts: &SourceOptions,
    ) -> Result<Box<dyn Sink>, IoError> {
        let path = &self.path;
        if format == FileFormat::Parquet {
            return Ok(Box::new(ParquetSink::create(path)?));
        }
        let f = std::fs::File::create(path)
            .map_err(|e| IoError::io(format!("creating {}", path.display()), e))?;
        Ok(Box::new(WriterSink::new(f, format.encoding())))
    }

    fn open_dead_letter(&self) -> Result<Box<dyn DeadLetterSink>, IoError> {
        let f = std::fs::File::create(&self.path)
            .map_err(|e| IoError::io(format!("creating {}", self.path.display()), e))?;
        Ok(Box::new(DeadLetterWriter::new(f)))
    }

    fn file(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// stdin, stdout (and stderr for dead letters).
#[derive(Debug)]
pub struct StdioEndpoint;

/// `-`: NDJSON unless told.
pub fn parse_stdio(
    _rest: &str,
    format: Option<FileFormat>,
) -> Result<(Arc<dyn Connector>, FileFormat), String> {
    let format = format.unwrap_or(FileFormat::Ndjson);
    if format == FileFormat::Parquet {
        return Err("Parquet cannot be streamed through stdin/stdout; use a file".into());
    }
    Ok((Arc::new(StdioEndpoint), format))
}

impl Connector for StdioEndpoint {
    fn open_source(
        &self,
        format: FileFormat,
        opts: SourceOptions,
    ) -> Result<Box<dyn Source>, IoError> {
        Ok(lines(
            Interruptible::new(std::io::stdin(), opts.stop.clone()),
            format,
            &opts,
        ))
    }

    fn open_sink(
        &self,
        format: FileFormat,
        _opts: &SourceOptions,
    ) -> Result<Box<dyn Sink>, IoError> {
        Ok(Box::new(WriterSink::new(
            std::io::stdout(),
            format.encoding(),
        )))
    }

    fn open_dead_letter(&self) -> Result<Box<dyn DeadLetterSink>, IoError> {
        Ok(Box::new(DeadLetterWriter::new(std::io::stderr())))
    }
}
