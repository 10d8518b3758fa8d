use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use streamprep_core::{Batch, Encoding, IoError, Output, Read, Sink, Source, SourceKind};

/// Batches from a Parquet file, read row group by row group.
pub struct ParquetSource {
    path: PathBuf,
    file: Option<File>,
    reader: Option<ParquetRecordBatchReader>,
}

impl ParquetSource {
    /// Open a Parquet file (the reader is built on the first read, with the buffer's size).
    pub fn open(path: &Path) -> Result<Self, IoError> {
        let file =
            File::open(path).map_err(|e| IoError::io(format!("opening {}", path.display()), e))?;
        Ok(ParquetSource {
            path: path.to_path_buf(),
            file: Some(file),
            reader: None,
        })
    }
}

impl Source for ParquetSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Columnar
    }

    fn next_row(&mut self, _buf: &mut Vec<u8>) -> Result<Read, IoError> {
        Err(IoError::Protocol(
            "a Parquet source delivers batches, not rows".into(),
        ))
    }

    fn next_batch(&mut self, max_rows: usize) -> Result<Option<Batch>, IoError> {
        if let Some(file) = self.file.take() {
            let bad = |e: parquet::errors::ParquetError| {
                IoError::Protocol(format!("{}: {e}", self.path.display()))
            };
            let r = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(bad)?
                .with_batch_size(max_rows.max(1))
                .build()
                .map_err(bad)?;
            self.reader = Some(r);
        }
        match self.reader.as_mut().and_then(|r| r.next()) {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(IoError::Protocol(format!("{}: {e}", self.path.display()))),
        }
    }
}

/// Writes every output batch to one Parquet file.
pub struct ParquetSink {
    path: PathBuf,
    file: Option<File>,
    writer: Option<ArrowWriter<File>>,
}

impl ParquetSink {
    /// Create the file (the writer starts with the first batch's schema).
    pub fn create(path: &Path) -> Result<Self, IoError> {
        let file = File::create(path)
            .map_err(|e| IoError::io(format!("creating {}", path.display()), e))?;
        Ok(ParquetSink {
            path: path.to_path_buf(),
            file: Some(file),
            writer: None,
        })
    }

    fn err(&self, e: parquet::errors::ParquetError) -> IoError {
        IoError::Protocol(format!("writing {}: {e}", self.path.display()))
    }
}

impl Sink for ParquetSink {
    fn encoding(&self) -> Encoding {
        Encoding::Columnar
    }

    fn write(&mut self, out: Output) -> Result<(), IoError> {
        if let Some(file) = self.file.take() {
            let w =
                ArrowWriter::try_new(file, out.batch.schema(), None).map_err(|e| self.err(e))?;
            self.writer = Some(w);
        }
        match self.writer.as_mut() {
            Some(w) => w
                .write(&out.batch)
                .map_err(|e| IoError::Protocol(format!("writing {}: {e}", self.path.display()))),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<(), IoError> {
        match self.writer.take() {
            Some(w) => w.close().map(|_| ()).map_err(|e| self.err(e)),
            None => Ok(()),
        }
    }
}
