//! `resample`: pandas' `df.resample(interval, on=time_column)[num].agg(agg)` over the whole
//! stream, per key when keyed (`df.groupby(key).resample(...)`): bins that span message
//! boundaries. A bin is given once a later row starts a later bin (the empty bins between them
//! too, as pandas gives them), and the last one at the end of the stream. Bins start at
//! midnight of the key's first row's day (pandas' origin "start_day"), closed on the left and
//! labelled by their start. Sums and means add in pandas' order with its Kahan compensation;
//! missing values are skipped; an empty bin's sum and count are 0, its other aggregates
//! missing. Rows must come in time order per key (a row before the open bin is refused); rows
//! without a time are left out, as pandas leaves NaT out.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use streamprep_core::time::{format_iso, parse_iso, DAY_US};
use streamprep_core::{Batch, Step, StepError};

use crate::keystate::KeyStates;
use crate::registry::Options;

const NAME: &str = "resample";

/// The most empty bins one gap may give (a clock jump of years at 1 s would be billions).
const MAX_GAP_BINS: i64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agg {
    Mean,
    Sum,
    Min,
    Max,
    First,
    Last,
    Count,
}

/// One column's aggregate of the open bin, as pandas' groupby kernels keep it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Acc {
    sum: f64,
    comp: f64,
    n: i64,
    min: Option<f64>,
    max: Option<f64>,
    first: Option<f64>,
    last: Option<f64>,
}

impl Acc {
    fn add(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.n += 1;
        // pandas' group_sum / group_mean: Kahan summation, a NaN compensation reset
        let y = v - self.comp;
        let t = self.sum + y;
        self.comp = t - self.sum - y;
        if self.comp.is_nan() {
            self.comp = 0.0;
        }
        self.sum = t;
        self.min = Some(self.min.map_or(v, |m| if v < m { v } else { m }));
        self.max = Some(self.max.map_or(v, |m| if v > m { v } else { m }));
        if self.first.is_none() {
            self.first = Some(v);
        }
        self.last = Some(v);
    }

    fn value(&self, agg: Agg) -> f64 {
        match agg {
            Agg::Mean if self.n > 0 => self.sum / self.n as f64,
            Agg::Sum => self.sum,
            Agg::Min => self.min.unwrap_or(f64::NAN),
            Agg::Max => self.max.unwrap_or(f64::NAN),
            Agg::First => self.first.unwrap_or(f64::NAN),
            Agg::Last => self.last.unwrap_or(f64::NAN),
            Agg::Count => self.n as f64,
            Agg::Mean => f64::NAN,
        }
    }
}

/// A key's open bin.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyBins {
    /// Midnight of the key's first row's day, microseconds since 1970.
    origin: i64,
    /// The open bin's number from the origin.
    bin: i64,
    /// Per value column (the step's `names`, in order), the open bin's aggregate.
    acc: Vec<Acc>,
    open: bool,
    zoned: bool,
    started: bool,
}

/// The step.
pub struct Resample {
    interval: i64,
    agg: Agg,
    time_column: String,
    key: Option<String>,
    states: KeyStates<KeyBins>,
    /// The value columns, in the order of the first message.
    names: Vec<String>,
}

/// Bins given: (key, label, values by column).
type Bins = Vec<(Option<String>, i64, bool, Vec<f64>)>;

/// `resample` from its options.
pub fn resample(o: &Options) -> Result<Box<dyn Step>, String> {
    let interval = parse_interval(o.text("interval"))?;
    let agg = match o.choice("agg") {
        "sum" => Agg::Sum,
        "min" => Agg::Min,
        "max" => Agg::Max,
        "first" => Agg::First,
        "last" => Agg::Last,
        "count" => Agg::Count,
        _ => Agg::Mean,
    };
    Ok(Box::new(Resample {
        interval,
        agg,
        time_column: o.text("time_column").to_string(),
        key: Some(o.text("key").to_string()).filter(|k| !k.is_empty()),
        states: KeyStates::from_options(o)?.keeping_dropped(),
        names: Vec::new(),
    }))
}

/// pandas' offset aliases for fixed intervals: `ms`, `s`, `min` (or `m`), `h`, `D`.
fn parse_interval(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = if num.is_empty() {
        1
    } else {
        num.parse().map_err(|_| format!("interval '{text}'"))?
    };
    let unit_us = match unit {
        "us" => 1,
        "ms" | "L" => 1_000,
        "s" | "S" => 1_000_000,
        "min" | "m" | "T" => 60_000_000,
        "h" | "H" => 3_600_000_000,
        "D" | "d" => DAY_US,
        _ => {
            return Err(format!(
                "interval '{text}': a number and one of us, ms, s, min, h, D (pandas' aliases), e.g. \"1s\""
            ))
        }
    };
    let us = n
        .checked_mul(unit_us)
        .filter(|us| *us > 0 && *us <= DAY_US)
        .ok_or_else(|| format!("interval '{text}': more than 0 and at most a day"))?;
    if DAY_US % us != 0 {
        return Err(format!(
            "interval '{text}' does not divide a day (bins start at midnight, as pandas' origin \"start_day\")"
        ));
    }
    Ok(us)
}

/// What closing a bin needs of the step (copied out, so a key's state can be borrowed from
/// the step's states meanwhile).
#[derive(Clone, Copy)]
struct Shape {
    interval: i64,
    agg: Agg,
    columns: usize,
}

impl Shape {
    /// Close a key's open bin and the empty bins up to `until` (exclusive), into `out`.
    fn close(self, key: Option<&str>, s: &mut KeyBins, until: i64, out: &mut Bins) {
        if !s.open {
            return;
        }
        let empty = Acc::default();
        let values = (0..self.columns)
            .map(|c| s.acc.get(c).unwrap_or(&empty).value(self.agg))
            .collect();
        let label = s.origin + s.bin * self.interval;
        out.push((key.map(str::to_string), label, s.zoned, values));
        for b in s.bin + 1..until {
            out.push((
                key.map(str::to_string),
                s.origin + b * self.interval,
                s.zoned,
                vec![empty.value(self.agg); self.columns],
            ));
        }
        s.acc.clear();
        s.open = false;
    }
}

impl Resample {
    fn bad(&self, reason: String) -> StepError {
        StepError::BadInput { step: NAME, reason }
    }

    fn shape(&self) -> Shape {
        Shape {
            interval: self.interval,
            agg: self.agg,
            columns: self.names.len(),
        }
    }

    fn batch(&self, bins: Bins) -> Result<Batch, StepError> {
        let mut fields = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        if let Some(k) = &self.key {
            fields.push(Field::new(k, DataType::Utf8, true));
            cols.push(Arc::new(StringArray::from(
                bins.iter().map(|b| b.0.clone()).collect::<Vec<_>>(),
            )));
        }
        fields.push(Field::new(&self.time_column, DataType::Utf8, true));
        cols.push(Arc::new(StringArray::from(
            bins.iter()
                .map(|b| format_iso(b.1, b.2))
                .collect::<Vec<_>>(),
        )));
        for (i, n) in self.names.iter().enumerate() {
            if self.agg == Agg::Count {
                fields.push(Field::new(n, DataType::Int64, true));
                cols.push(Arc::new(Int64Array::from(
                    bins.iter().map(|b| b.3[i] as i64).collect::<Vec<_>>(),
                )));
            } else {
                fields.push(Field::new(n, DataType::Float64, true));
                cols.push(Arc::new(Float64Array::from(
                    bins.iter()
                        .map(|b| Some(b.3[i]).filter(|v| !v.is_nan()))
                        .collect::<Vec<_>>(),
                )));
            }
        }
        Batch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| StepError::arrow(NAME, e))
    }

    /// The states the bounds dropped: their open bins go out now.
    fn dropped(&mut self, out: &mut Bins) {
        let shape = self.shape();
        for (k, mut s) in self.states.take_dropped() {
            let until = s.bin + 1;
            shape.close(self.key.as_ref().map(|_| k.as_str()), &mut s, until, out);
        }
    }
}

impl Step for Resample {
    fn name(&self) -> &'static str {
        NAME
    }

    fn holds_rows(&self) -> bool {
        true
    }

    fn key_counts(&self) -> Option<streamprep_core::KeyCounts> {
        self.key.as_ref().map(|_| self.states.counts())
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(self.states.save())
    }

    fn load_state(&mut self, state: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<(), String> {
        self.states.load(state, keep)
    }

    fn split_state(&self, state: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        KeyStates::<KeyBins>::split(state)
    }

    fn apply(&mut self, batch: Batch) -> Result<Batch, StepError> {
        let keys = crate::window::row_keys(&batch, self.key.as_deref()).map_err(|r| self.bad(r))?;
        let times = batch.column_by_name(&self.time_column).ok_or_else(|| {
            self.bad(format!(
                "no time column '{}' (set the step's time_column)",
                self.time_column
            ))
        })?;
        let times =
            arrow_cast::cast(times, &DataType::Utf8).map_err(|e| StepError::arrow(NAME, e))?;
        let times = times
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| self.bad("the time column is not text".into()))?;
        let (names, values) = crate::window::value_columns(&batch, self.key.as_deref());
        if self.names.is_empty() {
            self.names = names.clone();
        }
        let at: Vec<Option<usize>> = self
            .names
            .iter()
            .map(|n| names.iter().position(|m| m == n))
            .collect();
        // every row checked before any state changes: a refused message leaves the bins as
        // they were (its rows go to the dead letters whole)
        let mut parsed: Vec<Option<(i64, bool)>> = Vec::with_capacity(keys.len());
        let mut last: HashMap<&str, (i64, i64)> = HashMap::new();
        for (r, k) in keys.iter().enumerate() {
            if k.is_none() || times.is_null(r) {
                parsed.push(None);
                continue;
            }
            let text = times.value(r);
            let (t, zoned) = parse_iso(text).ok_or_else(|| {
                self.bad(format!(
                    "'{text}' in '{}' is not a time (ISO 8601, e.g. 2026-01-01T00:00:00)",
                    self.time_column
                ))
            })?;
            let k = k.as_deref().unwrap_or("");
            let (origin, open) =
                *last
                    .entry(k)
                    .or_insert_with(|| match self.states.peek(k).filter(|s| s.started) {
                        Some(s) => (s.origin, if s.open { s.bin } else { i64::MIN }),
                        None => (t.div_euclid(DAY_US) * DAY_US, i64::MIN),
                    });
            let bin = (t - origin).div_euclid(self.interval);
            if bin < open {
                return Err(self.bad(format!(
                    "'{text}' comes before the open bin (from {}): resample needs each key's rows in time order",
                    format_iso(origin + open * self.interval, zoned)
                )));
            }
            if open != i64::MIN && bin - open > MAX_GAP_BINS {
                return Err(self.bad(format!(
                    "'{text}' is more than {MAX_GAP_BINS} bins after the row before it"
                )));
            }
            last.insert(k, (origin, bin));
            parsed.push(Some((t, zoned)));
        }
        let now = std::time::Instant::now();
        self.states.expire(now);
        let mut out: Bins = Vec::new();
        self.dropped(&mut out);
        for (r, k) in keys.iter().enumerate() {
            let (Some(k), Some((t, zoned))) = (k, parsed[r]) else {
                continue;
            };
            let shape = self.shape();
            let key = self.key.as_ref().map(|_| k.as_str());
            // one lookup a row: the key's state is worked on where it is kept
            let s = self.states.get(k, now);
            if !s.started {
                s.origin = t.div_euclid(DAY_US) * DAY_US;
                s.zoned = zoned;
                s.started = true;
            }
            let bin = (t - s.origin).div_euclid(shape.interval);
            if s.open && bin > s.bin {
                shape.close(key, s, bin, &mut out);
            }
            if !s.open {
                s.bin = bin;
                s.open = true;
                s.acc = vec![Acc::default(); shape.columns];
            }
            for (c, acc) in s.acc.iter_mut().enumerate() {
                acc.add(at[c].map_or(f64::NAN, |i| values[i][r]));
            }
            // a new key may have pushed the least recent one out (max_keys): its bin goes out
            self.dropped(&mut out);
        }
        self.batch(out)
    }

    fn finish(&mut self) -> Result<Option<Batch>, StepError> {
        let mut out: Bins = Vec::new();
        self.dropped(&mut out);
        let shape = self.shape();
        for (k, mut s) in self.states.drain() {
            let until = s.bin + 1;
            shape.close(
                self.key.as_ref().map(|_| k.as_str()),
                &mut s,
                until,
                &mut out,
            );
        }
        if out.is_empty() {
            return Ok(None);
        }
        self.batch(out).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(interval: &str, agg: &str) -> Options {
        let mut m = serde_json::Map::new();
        m.insert("interval".into(), interval.into());
        m.insert("agg".into(), agg.into());
        m.insert("time_column".into(), "ts".into());
        Options::from_map(m)
    }

    fn batch(ts: &[&str], x: &[Option<f64>]) -> Batch {
        Batch::try_from_iter(vec![
            ("ts", Arc::new(StringArray::from(ts.to_vec())) as ArrayRef),
            ("x", Arc::new(Float64Array::from(x.to_vec())) as _),
        ])
        .expect("batch")
    }

    fn column(b: &Batch, name: &str) -> Vec<Option<f64>> {
        let c = arrow_cast::cast(b.column_by_name(name).expect("column"), &DataType::Float64)
            .expect("cast");
        c.as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64")
            .iter()
            .collect()
    }

    #[test]
    fn bins_span_messages_and_empty_bins_come_out_as_pandas_gives_them() {
        let mut s = resample(&opts("1s", "mean")).expect("step");
        let a = s
            .apply(batch(
                &["2026-01-01T00:00:00.2", "2026-01-01T00:00:00.7"],
                &[Some(1.0), Some(2.0)],
            ))
            .expect("a");
        assert_eq!(a.num_rows(), 0, "the bin is open");
        let b = s
            .apply(batch(
                &["2026-01-01T00:00:00.9", "2026-01-01T00:00:03.1"],
                &[None, Some(5.0)],
            ))
            .expect("b");
        assert_eq!(
            column(&b, "x"),
            vec![Some(1.5), None, None],
            "the first bin, two empty"
        );
        let ts = b.column_by_name("ts").expect("ts");
        let ts = ts.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(ts.value(0), "2026-01-01T00:00:00");
        assert_eq!(ts.value(2), "2026-01-01T00:00:02");
        let end = s.finish().expect("finish").expect("the last bin");
        assert_eq!(column(&end, "x"), vec![Some(5.0)]);
        assert!(s.finish().expect("again").is_none());
        // out of order: refused
        let mut s = resample(&opts("1s", "sum")).expect("step");
        s.apply(batch(&["2026-01-01T00:00:05"], &[Some(1.0)]))
            .expect("first");
        assert!(s
            .apply(batch(&["2026-01-01T00:00:01"], &[Some(1.0)]))
            .is_err());
        // counts and sums of empty bins are 0
        let mut s = resample(&opts("1s", "count")).expect("step");
        let b = s
            .apply(batch(
                &["2026-01-01T00:00:00", "2026-01-01T00:00:02"],
                &[Some(1.0), Some(1.0)],
            ))
            .expect("count");
        assert_eq!(column(&b, "x"), vec![Some(1.0), Some(0.0)]);
        assert!(parse_interval("7s").is_err(), "7 s does not divide a day");
        assert_eq!(parse_interval("5min"), Ok(300_000_000));
    }
}
