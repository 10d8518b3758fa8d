//! `run --rate R`: replay a source that never waits (a file, stdin) at `R` rows a second on
//! an absolute clock, as if its rows were arriving live. Each row arrives at its scheduled
//! time; when the pipeline reads late (backpressure), the rows it missed are caught up at
//! once and their wait counts as latency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamprep_core::{IoError, Read, RowBlock, Source, SourceKind};

use crate::generator::Pacer;

/// A source replayed at a fixed rate.
pub struct Paced {
    inner: Box<dyn Source>,
    pacer: Option<Pacer>,
    steps: Vec<(f64, f64)>,
    stop: Arc<AtomicBool>,
    ended: bool,
    /// A columnar source's batch being given out as its rows fall due, and how far.
    held: Option<(streamprep_core::Batch, usize)>,
}

impl Paced {
    /// Replay `inner` at `rate` rows a second (the clock starts at the first read); `stop`
    /// ends it early.
    pub fn new(inner: Box<dyn Source>, rate: f64, stop: Arc<AtomicBool>) -> Self {
        Paced::stepped(inner, vec![(rate, f64::INFINITY)], stop)
    }

    /// Replay `inner` at rates in steps, `(rows a second, seconds)`; the last rate goes on.
    pub fn stepped(inner: Box<dyn Source>, steps: Vec<(f64, f64)>, stop: Arc<AtomicBool>) -> Self {
        Paced {
            inner,
            pacer: None,
            steps,
            stop,
            ended: false,
            held: None,
        }
    }
}

impl Source for Paced {
    fn kind(&self) -> SourceKind {
        self.inner.kind()
    }

    fn header(&mut self) -> Result<Option<Vec<u8>>, IoError> {
        self.inner.header()
    }

    fn next_row(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError> {
        self.inner.next_row(buf)
    }

    fn is_live(&self) -> bool {
        true
    }

    fn read_block(
        &mut self,
        max: usize,
        max_wait: Option<Duration>,
        block: &mut RowBlock,
    ) -> Result<(), IoError> {
        let steps = &self.steps;
        let pacer = self
            .pacer
            .get_or_insert_with(|| Pacer::stepped(steps.clone()));
        let mut deadline: Option<Instant> = None;
        while block.ends.len() < max {
            if self.ended || self.stop.load(Ordering::Relaxed) {
                block.ended = true;
                return Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d)
                || (block.is_empty() && block.give_up_at.is_some_and(|g| now >= g))
            {
                return Ok(());
            }
            let limit = deadline
                .or(block.give_up_at)
                .unwrap_or(now + Duration::from_millis(100))
                .min(now + Duration::from_millis(100));
            if pacer.wait(limit) {
                let due = pacer.due();
                let (rows, refused) = (block.ends.len(), block.rejected.len());
                // `max` counts the rows already in `ends`: one more
                self.inner.next_rows(
                    rows + 1,
                    &mut block.bytes,
                    &mut block.ends,
                    &mut block.rejected,
                )?;
                if block.ends.len() == rows && block.rejected.len() == refused {
                    self.ended = true;
                    continue;
                }
                if block.ends.len() > rows {
                    block.first_at.get_or_insert(due);
                }
                pacer.sent();
                if deadline.is_none() {
                    deadline = max_wait.map(|w| Instant::now() + w);
                }
            }
        }
        Ok(())
    }

    fn acker(&mut self) -> Option<Box<dyn streamprep_core::Acker>> {
        self.inner.acker()
    }

    /// A columnar source (Parquet, PostgreSQL): its batches' rows given out as they fall due,
    /// at most `max` at a time, at least one (the rows due when asked).
    fn next_batch(&mut self, max: usize) -> Result<Option<streamprep_core::Batch>, IoError> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            if self.held.is_none() {
                match self.inner.next_batch(max)? {
                    Some(b) if b.num_rows() > 0 => self.held = Some((b, 0)),
                    Some(_) => continue,
                    None => return Ok(None),
                }
            }
            let steps = &self.steps;
            let pacer = self
                .pacer
                .get_or_insert_with(|| Pacer::stepped(steps.clone()));
            let Some((batch, at)) = self.held.as_mut() else {
                continue;
            };
            let now = Instant::now();
            let left = batch.num_rows() - *at;
            let mut due = 0;
            while due < max.min(left) && pacer.due() <= now {
                pacer.sent();
                due += 1;
            }
            if due > 0 {
                let out = batch.slice(*at, due);
                *at += due;
                if *at == batch.num_rows() {
                    self.held = None;
                }
                return Ok(Some(out));
            }
            pacer.wait(now + Duration::from_millis(100));
        }
    }

    fn link(&self) -> Option<Arc<streamprep_core::LinkHealth>> {
        self.inner.link()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::LineSource;
    use streamprep_core::RowFormat;

    #[test]
    fn steps_change_the_rate() {
        let p = Pacer::stepped(vec![(100.0, 1.0), (1000.0, 1.0), (10.0, 1.0)]);
        let at = |n: u64| {
            let mut q = p.clone();
            (0..n).for_each(|_| q.sent());
            q.due().duration_since(p.due()).as_secs_f64()
        };
        assert!((at(50) - 0.5).abs() < 1e-9);
        assert!((at(100) - 1.0).abs() < 1e-9);
        assert!((at(600) - 1.5).abs() < 1e-9);
        assert!((at(1100) - 2.0).abs() < 1e-9);
        // after the last step its rate goes on
        assert!((at(1120) - 4.0).abs() < 1e-9);
    }

    #[test]
    fn replays_every_row_at_the_rate() {
        let text: String = (0..30).map(|i| format!("{{\"x\":{i}}}\n")).collect();
        let inner = LineSource::new(std::io::Cursor::new(text.into_bytes()), RowFormat::Ndjson);
        let mut src = Paced::new(Box::new(inner), 200.0, Arc::new(AtomicBool::new(false)));
        assert!(src.is_live());
        let started = Instant::now();
        let mut rows = 0;
        let mut blocks = 0;
        loop {
            let mut b = RowBlock::default();
            src.read_block(10, Some(Duration::from_secs(5)), &mut b)
                .unwrap();
            rows += b.ends.len();
            if !b.ends.is_empty() {
                blocks += 1;
                assert!(b.first_at.is_some());
            }
            if b.ended {
                break;
            }
        }
        // 30 rows at 200 rows/s: the last is due at 145 ms
        let took = started.elapsed();
        assert_eq!((rows, blocks), (30, 3));
        assert!(took >= Duration::from_millis(140), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
