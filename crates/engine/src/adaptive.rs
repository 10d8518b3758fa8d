//! `--buffer auto --max-latency 50ms`: the buffering factor follows the load. About once a
//! second the controller models the chain's service time as `S(b) = s0 + s1 * b` (a fixed cost
//! a message plus a cost a row, fitted from the sizes it has run), and picks the smallest `b`
//! whose predicted `rho = lambda_r * S(b) / (b * c)` stays under the target, so latency is low
//! while the stream is slow; it grows `b` as the load rises (fewer, larger messages cost less
//! a row), keeping the pipeline stable, and shrinks it again when the load falls. A `b` whose
//! fill time plus service time would exceed `max_latency` is avoided unless no smaller one is
//! stable. While the chain is saturated (the source held back, so its rate understates the
//! load) the buffer grows as long as a larger one still lowers the cost of a row.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::metrics::Live;

/// The controller's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adaptive {
    /// The latency a row should stay under.
    pub max_latency: Duration,
    /// The utilisation to stay under.
    pub target_rho: f64,
    /// The largest buffer it may choose.
    pub max_buffer: usize,
}

impl Adaptive {
    /// `max_latency`, a target rho of 0.7, at most 10,000 rows a message.
    pub fn new(max_latency: Duration) -> Self {
        Adaptive {
            max_latency,
            target_rho: 0.7,
            max_buffer: 10_000,
        }
    }
}

/// The controller's state.
#[derive(Debug, Clone)]
pub struct Controller {
    cfg: Adaptive,
    size: usize,
    /// Smoothed service time (seconds) per buffer size it has seen.
    seen: BTreeMap<usize, f64>,
    /// The largest size seen saturated, and the arrival rate then: it does not shrink back to
    /// that size while the rate stays above half of it (no see-saw between model and load).
    saturated: Option<(usize, f64)>,
}

impl Controller {
    /// Start at one row a message.
    pub fn new(cfg: Adaptive) -> Self {
        Controller {
            cfg,
            size: 1,
            seen: BTreeMap::new(),
            saturated: None,
        }
    }

    /// The buffer size to use now.
    pub fn size(&self) -> usize {
        self.size
    }

    /// `S(b) = s0 + s1 * b` from what has been seen: a line through the smallest and largest
    /// sizes; with one size, half of its time is taken as fixed (a guess, replaced as soon as
    /// a second size has run).
    fn model(&self) -> Option<(f64, f64)> {
        let (&b1, &t1) = self.seen.iter().next()?;
        let (&b2, &t2) = self.seen.iter().next_back()?;
        if b2 > b1 {
            let s1 = ((t2 - t1) / (b2 - b1) as f64).max(0.0);
            Some(((t1 - s1 * b1 as f64).max(0.0), s1))
        } else {
            Some((t1 / 2.0, t1 / 2.0 / b1 as f64))
        }
    }

    /// Take a sample of the live figures and return the buffer size to use from now on.
    pub fn update(&mut self, live: &Live) -> usize {
        if live.rows_per_message >= 1.0 && live.service_s > 0.0 {
            let b = live.rows_per_message.round() as usize;
            let e = self.seen.entry(b).or_insert(live.service_s);
            *e += 0.5 * (live.service_s - *e);
        }
        let (Some((s0, s1)), true) = (self.model(), live.arrival_rows > 0.0) else {
            return self.size;
        };
        let lambda = live.arrival_rows;
        let c = live.workers.max(1) as f64;
        let target = self.cfg.target_rho;
        // smallest b with lambda * (s0 + s1 b) / (b c) <= target
        let b_rho = if c * target > lambda * s1 {
            (lambda * s0 / (c * target - lambda * s1)).ceil().max(1.0)
        } else {
            f64::INFINITY
        };
        // largest b with (b - 1) / (2 lambda) + s0 + s1 b <= max_latency
        let slack = self.cfg.max_latency.as_secs_f64() - s0 + 1.0 / (2.0 * lambda);
        let b_lat = (slack / (1.0 / (2.0 * lambda) + s1)).floor().max(1.0);
        let max = self.cfg.max_buffer as f64;
        // beyond this size the fixed cost of a message is under 5% of a row's cost: larger
        // buffers only add latency
        let knee = if s1 > 0.0 {
            (19.0 * s0 / s1).ceil().max(1.0)
        } else {
            max
        };
        let mut want = if b_rho <= b_lat {
            // stable and fast enough: the smallest stable size, for the lowest latency
            b_rho
        } else {
            // no size meets both: stability first (an unstable queue's latency has no bound),
            // as far as a larger buffer still lowers the cost of a row
            b_rho.min(knee).min(max)
        };
        let cur = self.size as f64;
        if live.rho_measured > target {
            let (b, _) = self.saturated.unwrap_or((0, 0.0));
            self.saturated = Some((b.max(self.size), lambda));
        } else if self.saturated.is_some_and(|(_, rate)| lambda < rate / 2.0) {
            self.saturated = None;
        }
        let late = live.latency_s > self.cfg.max_latency.as_secs_f64();
        // a larger buffer helps only while the fixed cost of a message is still a visible
        // part of the cost of a row
        let helps = s0 / cur > 0.05 * (s0 / cur + s1);
        if helps && (live.rho_measured > target || (late && live.rho_measured > target / 2.0)) {
            // saturated now, or rows are late while the chain is busy: the source is held
            // back, so the arrival rate it shows is only what the chain takes; grow whatever
            // the model says
            want = want.max((cur * 4.0).min(knee));
        }
        if let (Some((b, _)), true) = (self.saturated, want < cur) {
            // shrink, but not back to where it was saturated
            want = want.max((2.0 * b as f64).min(cur));
        }
        // move by at most x4 a step: the model is refitted as sizes change
        let next = want.clamp((cur / 4.0).max(1.0), cur * 4.0).clamp(1.0, max);
        self.size = next as usize;
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain of this machine, roughly: 10 µs a message and 2 µs a row.
    fn service(b: usize) -> f64 {
        10e-6 + 2e-6 * b as f64
    }

    fn live(rate: f64, b: usize) -> Live {
        Live {
            arrival_rows: rate,
            arrival_messages: rate / b as f64,
            service_s: service(b),
            rows_per_message: b as f64,
            workers: 1,
            rho_measured: rate * service(b) / b as f64,
            rho_predicted: rate * service(b) / b as f64,
            ..Live::default()
        }
    }

    fn settle(c: &mut Controller, rate: f64) -> usize {
        for _ in 0..20 {
            let b = c.size();
            c.update(&live(rate, b));
        }
        c.size()
    }

    #[test]
    fn small_at_low_load_larger_at_high_load_and_back() {
        let mut c = Controller::new(Adaptive::new(Duration::from_millis(50)));
        // 10,000 rows/s: b = 1 gives rho 0.12
        assert_eq!(settle(&mut c, 10_000.0), 1);
        // 300,000 rows/s: rho(b) = 0.3 * (10/b + 2)... needs 300000 * 10e-6 / (0.7 - 0.6) = 30
        let b = settle(&mut c, 300_000.0);
        assert!((30..=32).contains(&b), "{b}");
        let rho = 300_000.0 * service(b) / b as f64;
        assert!(rho <= 0.7 + 1e-9, "{rho}");
        // and back down when the stream slows
        assert_eq!(settle(&mut c, 10_000.0), 1);
    }

    #[test]
    fn it_stops_growing_when_rows_cost_the_same_at_any_size() {
        let mut c = Controller::new(Adaptive::new(Duration::from_millis(50)));
        // saturated, and messages have (almost) no fixed cost: 30 µs a row at any size
        for _ in 0..20 {
            let b = c.size();
            let mut l = live(30_000.0, b);
            l.service_s = 30e-6 * b as f64 + 1e-9;
            l.rho_measured = 0.95;
            c.update(&l);
        }
        assert!(c.size() <= 16, "grew to {} for nothing", c.size());
    }

    #[test]
    fn beyond_what_any_size_sustains_it_stops_where_larger_no_longer_helps() {
        let mut c = Controller::new(Adaptive {
            max_latency: Duration::from_millis(50),
            target_rho: 0.7,
            max_buffer: 5000,
        });
        // 400,000 rows/s of 2 µs rows is rho 0.8 at any size: no stable size exists; past
        // b = 19 * 10 / 2 = 95 the 10 µs a message is under 5% of a row's cost
        let b = settle(&mut c, 400_000.0);
        assert!((95..=96).contains(&b), "{b}");
    }

    #[test]
    fn a_saturated_pipeline_grows_even_when_the_held_back_rate_looks_low() {
        let mut c = Controller::new(Adaptive::new(Duration::from_millis(50)));
        // backpressure shows only what the chain takes: 1 / 12 µs = 83,000 rows/s, busy 0.95
        let mut l = live(20_000.0, 1);
        l.rho_measured = 0.95;
        assert_eq!(c.update(&l), 4);
    }

    #[test]
    fn it_does_not_shrink_back_to_a_size_it_saw_saturated_while_the_load_lasts() {
        let mut c = Controller::new(Adaptive::new(Duration::from_millis(50)));
        settle(&mut c, 10_000.0);
        // at 16 rows the chain is found saturated (the model thought 16 would do)
        c.size = 16;
        let mut l = live(300_000.0, 16);
        l.rho_measured = 0.95;
        let grown = c.update(&l);
        assert!(grown > 16, "{grown}");
        // the model now says 16 again; it stays above while the rate holds
        for _ in 0..10 {
            let b = c.size();
            let mut l = live(300_000.0, b);
            l.service_s = 10e-6 + 2e-6 * b as f64;
            l.rho_measured = 0.5;
            c.update(&l);
            assert!(c.size() >= 32, "{}", c.size());
        }
        // and shrinks once the stream slows
        assert_eq!(settle(&mut c, 10_000.0), 1);
    }

    #[test]
    fn steps_are_bounded() {
        let mut c = Controller::new(Adaptive::new(Duration::from_millis(50)));
        c.update(&live(300_000.0, 1));
        assert!(c.size() <= 4, "at most x4 a step: {}", c.size());
    }
}
