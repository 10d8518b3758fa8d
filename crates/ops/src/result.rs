//! `result`: closes every chain. Encodes the batch for the sinks on the worker that ran the
//! chain, so encoding runs in parallel under the pool method, and the ordered sink only
//! writes bytes.

use arrow_json::writer::{LineDelimited, WriterBuilder};
use streamprep_core::{Batch, Encoding, StepError};

use crate::codec::json_encode::JsonEncoder;

const NAME: &str = "result";

/// The result step.
#[derive(Debug, Clone)]
pub struct ResultStep {
    format: Encoding,
    json: JsonEncoder,
}

impl ResultStep {
    /// A result step encoding for a sink that wants `format`.
    pub fn new(format: Encoding) -> Self {
        ResultStep {
            format,
            json: JsonEncoder::default(),
        }
    }

    /// Encode the batch; empty for [`Encoding::Columnar`].
    pub fn encode(&mut self, batch: &Batch) -> Result<Vec<u8>, StepError> {
        let mut out = Vec::new();
        match self.format {
            Encoding::Columnar => {}
            Encoding::Ndjson if crate::codec::json_encode::supports(batch.schema_ref()) => {
                self.json.encode(batch, &mut out);
            }
            Encoding::Ndjson => {
                let mut w = WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, LineDelimited>(&mut out);
                w.write(batch).map_err(|e| StepError::arrow(NAME, e))?;
                w.finish().map_err(|e| StepError::arrow(NAME, e))?;
            }
            Encoding::Csv => {
                let mut w = arrow_csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut out);
                w.write(batch).map_err(|e| StepError::arrow(NAME, e))?;
            }
        }
        Ok(out)
    }
}

/// The CSV header line for a schema (`a,b,c\n`), quoted where needed.
pub fn csv_header(schema: &arrow_schema::Schema) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let name = f.name();
        if name.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(name.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.push(b'\n');
    out
}
