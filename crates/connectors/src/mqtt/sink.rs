//! The MQTT sink: each output message as one JSON array (`per=message`, the default) or each
//! row as its own publish (`per=row`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use streamprep_core::{Encoding, IoError, Output, Sink};

use super::{MqttUrl, Publisher};

/// Publishes output rows to a topic.
pub struct MqttSink {
    publisher: Publisher,
    per_row: bool,
}

impl MqttSink {
    /// Connect to the broker (an error names the address if it does not answer).
    pub fn connect(url: &MqttUrl, stop: Arc<AtomicBool>) -> Result<Self, IoError> {
        if url.topic.contains(['+', '#']) {
            return Err(IoError::Protocol(format!(
                "{}: a sink publishes to one topic; '+' and '#' only filter subscriptions",
                url.display()
            )));
        }
        Ok(MqttSink {
            publisher: Publisher::connect(url, "sink", stop)?,
            per_row: url.per_row,
        })
    }
}

impl Sink for MqttSink {
    fn encoding(&self) -> Encoding {
        Encoding::Ndjson
    }

    fn write(&mut self, out: Output) -> Result<(), IoError> {
        let rows = out.encoded.split(|&b| b == b'\n').filter(|r| !r.is_empty());
        if self.per_row {
            for row in rows {
                self.publisher.publish(row.to_vec())?;
            }
            return Ok(());
        }
        let mut array = Vec::with_capacity(out.encoded.len() + 2);
        array.push(b'[');
        for (i, row) in rows.enumerate() {
            if i > 0 {
                array.push(b',');
            }
            array.extend_from_slice(row);
        }
        array.push(b']');
        if array.len() > 2 {
            self.publisher.publish(array)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.publisher.flush()
    }

    fn finish(&mut self) -> Result<(), IoError> {
        self.publisher.close()
    }
}
