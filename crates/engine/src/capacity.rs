//! Queueing theory for sizing a pipeline (the paper's "Application of Queueing Theory"): with
//! row rate `lambda_r`, buffering factor `b`, `c` workers and `S(b)` the service time of the
//! whole chain on a `b`-row message, messages arrive at `lambda_r / b`, the utilisation is
//! `rho = lambda_r * S(b) / (b * c)`, and a row waits on average for its message to fill,
//! then in the queue, then for the service. The queue's wait is Erlang C's (M/M/c) scaled by
//! how variable the arrivals and the service are (Allen-Cunneen's G/G/c approximation:
//! `Wq = Wq(M/M/c) * (Ca^2 + Cs^2) / 2`, the squared coefficients of variation of the gaps
//! between messages and of the service time): random arrivals and service (both 1) give
//! M/M/c; a paced stream and a steady chain wait far less.

/// What one setting `(b, c)` predicts at an arrival rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Rows a message.
    pub buffer: usize,
    /// Workers.
    pub workers: usize,
    /// Service time of a message, seconds: from handing it over to having its result.
    pub service_s: f64,
    /// The part of it that keeps a worker busy (the chain itself), seconds; a pool's hand-off
    /// or the queue's round trips delay the message without occupying the worker.
    pub busy_s: f64,
    /// Utilisation; at or above 1 the queue grows without bound.
    pub rho: f64,
    /// Mean time a row waits for its message to fill, seconds: `(b - 1) / (2 lambda_r)`.
    pub fill_s: f64,
    /// Mean time a message waits for a worker, seconds (Erlang C scaled for G/G/c); infinite
    /// when unstable.
    pub wait_s: f64,
    /// `fill_s + wait_s + service_s`.
    pub latency_s: f64,
    /// The largest row rate this setting sustains at all (`rho = 1`): `b * c / S(b)`.
    pub max_rate: f64,
}

impl Prediction {
    /// Whether the queue stays bounded.
    pub fn stable(&self) -> bool {
        self.rho < 1.0
    }
}

/// Predict `(b, c)` with service time `service_s` at `rate` rows a second, all of it busy.
pub fn predict(rate: f64, buffer: usize, workers: usize, service_s: f64) -> Prediction {
    predict_busy(rate, buffer, workers, service_s, service_s)
}

/// Predict `(b, c)` when a message takes `service_s` from hand-over to result, of which the
/// worker is busy `busy_s`: the worker is the server of the M/M/c queue, so `rho`, the wait
/// and the largest rate follow `busy_s`, and the latency adds the whole `service_s`.
pub fn predict_busy(
    rate: f64,
    buffer: usize,
    workers: usize,
    service_s: f64,
    busy_s: f64,
) -> Prediction {
    predict_gg(
        rate,
        buffer,
        workers,
        service_s,
        busy_s,
        Variability::RANDOM,
    )
}

/// How variable the arrivals of messages and their service are: squared coefficients of
/// variation (variance over the mean squared).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variability {
    /// Of the gaps between messages: 1 for random (Poisson) messages, `1 / b` for messages of
    /// `b` rows arriving at random, 0 for a paced stream.
    pub ca2: f64,
    /// Of a message's busy time: 1 for exponential service, about 0 for a steady chain.
    pub cs2: f64,
}

impl Variability {
    /// Random arrivals and service: M/M/c.
    pub const RANDOM: Variability = Variability { ca2: 1.0, cs2: 1.0 };

    /// Allen-Cunneen's factor on the M/M/c wait.
    pub fn factor(&self) -> f64 {
        (self.ca2.max(0.0) + self.cs2.max(0.0)) / 2.0
    }
}

/// [`predict_busy`] with the G/G/c wait: the M/M/c wait times `v.factor()`.
pub fn predict_gg(
    rate: f64,
    buffer: usize,
    workers: usize,
    service_s: f64,
    busy_s: f64,
    v: Variability,
) -> Prediction {
    let b = buffer.max(1) as f64;
    let c = workers.max(1);
    let lambda = rate / b; // messages a second
    let rho = lambda * busy_s / c as f64;
    let fill_s = if rate > 0.0 {
        (b - 1.0) / (2.0 * rate)
    } else {
        0.0
    };
    let wait_s = if rho < 1.0 {
        erlang_c(c, lambda * busy_s) * busy_s / (c as f64 * (1.0 - rho)) * v.factor()
    } else {
        f64::INFINITY
    };
    Prediction {
        buffer,
        workers: c,
        service_s,
        busy_s,
        rho,
        fill_s,
        wait_s,
        latency_s: fill_s + wait_s + service_s,
        max_rate: b * c as f64 / busy_s,
    }
}

/// Erlang C: the probability that an arrival waits in an M/M/c queue with offered load
/// `a = lambda / mu` (requires `a < c`). Computed through the Erlang B recursion, which stays
/// finite for any `c`.
pub fn erlang_c(c: usize, a: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    let mut b = 1.0; // Erlang B with 0 servers
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    let rho = a / c as f64;
    b / (1.0 - rho + rho * b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_is_m_m_1() {
        // M/M/1: P(wait) = rho, Wq = rho / (mu - lambda)
        let (lambda, s) = (80.0, 0.01); // rho = 0.8
        assert!((erlang_c(1, lambda * s) - 0.8).abs() < 1e-12);
        let p = predict(lambda, 1, 1, s);
        assert!((p.rho - 0.8).abs() < 1e-12);
        assert!((p.wait_s - 0.8 / (100.0 - 80.0)).abs() < 1e-12);
        assert_eq!(p.fill_s, 0.0);
        assert!((p.latency_s - (0.04 + 0.01)).abs() < 1e-12);
    }

    #[test]
    fn erlang_c_matches_the_closed_form() {
        // c = 2, a = 1: C = (a^2/2 * 1/(1-rho)) / (1 + a + a^2/2 * 1/(1-rho)) = 1/3
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        // c = 3, a = 2: a^3/3! = 4/3, 1/(1-2/3) = 3 -> 4; sum = 1 + 2 + 2 = 5 -> 4/9
        assert!((erlang_c(3, 2.0) - 4.0 / 9.0).abs() < 1e-12);
        // many servers stay finite
        let c = erlang_c(500, 450.0);
        assert!(c.is_finite() && (0.0..1.0).contains(&c));
    }

    #[test]
    fn buffer_divides_the_load_and_adds_fill_time() {
        // 10,000 rows/s, 1,000-row messages of 50 ms each on 1 worker: 10 messages/s, rho 0.5
        let p = predict(10_000.0, 1000, 1, 0.05);
        assert!((p.rho - 0.5).abs() < 1e-12);
        assert!((p.fill_s - 999.0 / 20_000.0).abs() < 1e-12);
        assert!((p.max_rate - 20_000.0).abs() < 1e-9);
        assert!(p.stable());
        let over = predict(30_000.0, 1000, 1, 0.05);
        assert!(!over.stable() && over.wait_s.is_infinite() && over.latency_s.is_infinite());
    }

    #[test]
    fn g_g_c_scales_the_wait_by_the_variability() {
        // Allen-Cunneen: M/M/c's wait times (Ca^2 + Cs^2) / 2; rho and the rest unchanged
        let mm = predict_busy(10_000.0, 1000, 2, 0.15, 0.15);
        let paced = predict_gg(
            10_000.0,
            1000,
            2,
            0.15,
            0.15,
            Variability {
                ca2: 0.0,
                cs2: 0.04,
            },
        );
        assert_eq!(paced.rho, mm.rho);
        assert!((paced.wait_s - mm.wait_s * 0.02).abs() < 1e-15);
        assert!((paced.latency_s - (mm.latency_s - mm.wait_s * 0.98)).abs() < 1e-12);
        // M/D/1 (Pollaczek-Khinchine): Wq = rho S / (2 (1 - rho)), half of M/M/1's
        let md1 = predict_gg(8.0, 1, 1, 0.1, 0.1, Variability { ca2: 1.0, cs2: 0.0 });
        assert!((md1.wait_s - 0.8 * 0.1 / (2.0 * 0.2)).abs() < 1e-12);
        // unstable stays unstable
        let over = predict_gg(30.0, 1, 1, 0.1, 0.1, Variability { ca2: 0.0, cs2: 0.0 });
        assert!(over.wait_s.is_infinite());
    }

    #[test]
    fn a_hand_off_delays_the_message_without_loading_the_worker() {
        // 50 ms from hand-over to result, of which the chain ran 40 ms: rho and the largest
        // rate follow the 40 ms, the latency adds the whole 50 ms
        let p = predict_busy(10_000.0, 1000, 1, 0.05, 0.04);
        assert!((p.rho - 0.4).abs() < 1e-12);
        assert!((p.max_rate - 25_000.0).abs() < 1e-9);
        let wait = 0.4 * 0.04 / (1.0 - 0.4); // M/M/1 with the busy time as service
        assert!((p.wait_s - wait).abs() < 1e-12);
        assert!((p.latency_s - (999.0 / 20_000.0 + wait + 0.05)).abs() < 1e-12);
        assert_eq!(
            predict(10_000.0, 1000, 1, 0.05),
            predict_busy(10_000.0, 1000, 1, 0.05, 0.05)
        );
    }
}
