//! End-to-end latency, measured at the sink from a time the producer put in each row: a
//! column (e.g. `sent_us`, written by `streamprep gen --stamp`) holding microseconds since
//! 1970, as an integer or as a string of digits. Opt in with `run --latency-field`.

use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::Array;
use arrow_schema::DataType;
use hdrhistogram::Histogram;
use streamprep_core::Batch;

/// Publish-to-sink latency of every row that carried the field.
pub struct LatencyProbe {
    field: String,
    hist: Histogram<u64>,
    sent: Vec<u64>,
    first_sent: u64,
    last_sink: u64,
    missing: u64,
}

/// What the probe saw.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Rows measured.
    pub rows: u64,
    /// Rows without a readable time in the field.
    pub missing: u64,
    /// Median, in microseconds.
    pub p50_us: u64,
    /// 99th percentile, in microseconds.
    pub p99_us: u64,
    /// Largest, in microseconds.
    pub max_us: u64,
    /// From the earliest time in a row to the last row at the sink, in seconds: rows / span is
    /// the end-to-end throughput.
    pub span_s: f64,
}

impl std::fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(
            f,
            "latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} rows ({:.0} rows/s from first sent to last at the sink)",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.max_us),
            self.rows,
            if self.span_s > 0.0 { self.rows as f64 / self.span_s } else { 0.0 }
        )?;
        if self.missing > 0 {
            write!(f, "; {} rows had no time", self.missing)?;
        }
        Ok(())
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl LatencyProbe {
    /// A probe reading `field`.
    pub fn new(field: &str) -> Self {
        LatencyProbe {
            field: field.to_string(),
            hist: crate::metrics::hist(),
            sent: Vec::new(),
            first_sent: u64::MAX,
            last_sink: 0,
            missing: 0,
        }
    }

    /// Read the send times of a message's rows (before it goes to the sink).
    pub fn before_sink(&mut self, batch: &Batch) {
        self.sent.clear();
        let Some(col) = batch.column_by_name(&self.field) else {
            self.missing += batch.num_rows() as u64;
            return;
        };
        match col.data_type() {
            DataType::Int64 => {
                let a = col.as_primitive::<Int64Type>();
                for i in 0..a.len() {
                    match (a.is_valid(i), u64::try_from(a.value(i))) {
                        (true, Ok(v)) => self.sent.push(v),
                        _ => self.missing += 1,
                    }
                }
            }
            DataType::Utf8 => {
                let a = col.as_string::<i32>();
                for i in 0..a.len() {
                    match a.is_valid(i).then(|| a.value(i).parse::<u64>()) {
                        Some(Ok(v)) => self.sent.push(v),
                        _ => self.missing += 1,
                    }
                }
            }
            _ => self.missing += batch.num_rows() as u64,
        }
    }

    /// The message has reached the sink: record its rows' latencies.
    pub fn at_sink(&mut self) {
        if self.sent.is_empty() {
            return;
        }
        let now = now_us();
        self.last_sink = self.last_sink.max(now);
        for &s in &self.sent {
            self.first_sent = self.first_sent.min(s);
            self.hist.saturating_record(now.saturating_sub(s).max(1));
        }
    }

    /// The figures so far.
    pub fn summary(&self) -> LatencySummary {
        let rows = self.hist.len();
        LatencySummary {
            rows,
            missing: self.missing,
            p50_us: self.hist.value_at_quantile(0.5),
            p99_us: self.hist.value_at_quantile(0.99),
            max_us: self.hist.max(),
            span_s: if rows > 0 {
                self.last_sink.saturating_sub(self.first_sent) as f64 / 1e6
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    #[test]
    fn reads_integer_and_string_times_and_counts_the_unreadable() {
        let t = now_us() - 5_000; // 5 ms ago
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some(t.to_string()),
            None,
            Some("soon".to_string()),
        ]));
        let batch = Batch::try_from_iter([("sent_us", s)]).unwrap();
        let mut p = LatencyProbe::new("sent_us");
        p.before_sink(&batch);
        p.at_sink();
        let i: ArrayRef = Arc::new(Int64Array::from(vec![t as i64, t as i64 - 10_000]));
        let batch = Batch::try_from_iter([("sent_us", i)]).unwrap();
        p.before_sink(&batch);
        p.at_sink();
        let other =
            Batch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]).unwrap();
        p.before_sink(&other);
        p.at_sink();
        let s = p.summary();
        assert_eq!((s.rows, s.missing), (3, 3));
        assert!(s.p50_us >= 5_000 && s.p50_us < 1_000_000, "{s:?}");
        assert!(s.max_us >= 15_000, "{s:?}");
        assert!(s.span_s >= 0.015, "{s:?}");
    }
}
