//! The planner: from a profile (the chain's measured service time at several buffer sizes, per
//! method) and an arrival rate, predict each (buffer, workers, method)'s utilisation and
//! latency with [`crate::capacity`], and recommend the setting with the lowest latency that
//! keeps rho under the target. `streamprep plan` and the web server's planner both use it.

use std::collections::BTreeMap;

use serde_json::json;

use crate::capacity::{predict_gg, Prediction, Variability};

/// The mean times of one (buffer, method) in a profile, µs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    /// The chain's service time, from hand-over to result (stage `chain`).
    pub service_us: f64,
    /// The part that kept a worker busy (stage `busy`; profiles before it had none).
    pub busy_us: Option<f64>,
    /// Mean bytes of a message's rows and of its output (what a queue task and its result
    /// carry; profiles before them had none).
    pub bytes: Option<(f64, f64)>,
    /// The standard deviation of the busy time (of the service time without a `busy` stage),
    /// µs: how steady the chain is (profiles without `sd_us` had none).
    pub sd_us: Option<f64>,
    /// What a task and its result carry with `task_compression = "lz4"` (the rows LZ4'd, the
    /// output as Arrow IPC LZ4'd; profiles before them had none).
    pub bytes_lz4: Option<(f64, f64)>,
}

impl Times {
    /// The squared coefficient of variation of a message's busy time when it is `busy_s`
    /// seconds (1, exponential service, when the profile has no spread).
    fn cs2(&self, busy_s: f64) -> f64 {
        match self.sd_us {
            Some(sd) if busy_s > 0.0 => (sd / 1e6 / busy_s).powi(2),
            _ => 1.0,
        }
    }
}

/// buffer -> method -> mean times.
pub type Profile = BTreeMap<usize, BTreeMap<String, Times>>;

/// A profile from `streamprep profile`'s CSV (`method,buffer,stage,...,mean_us,...`).
pub fn parse_profile(text: &str) -> Result<Profile, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("no '{name}' column; is it a CSV from `streamprep profile`?"))
    };
    let (m, b, st, mean) = (
        col("method")?,
        col("buffer")?,
        col("stage")?,
        col("mean_us")?,
    );
    let bytes_cols = col("bytes_in").ok().zip(col("bytes_out").ok());
    let lz4_cols = col("bytes_in_lz4").ok().zip(col("bytes_out_lz4").ok());
    let sd_col = col("sd_us").ok();
    let mut out: Profile = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let field = |k: usize| {
            f.get(k)
                .copied()
                .ok_or_else(|| format!("line {} is short", i + 2))
        };
        let stage = field(st)?;
        if stage != "chain" && stage != "busy" {
            continue;
        }
        let buffer: usize = field(b)?
            .parse()
            .map_err(|_| format!("line {}: buffer", i + 2))?;
        let us: f64 = field(mean)?
            .parse()
            .map_err(|_| format!("line {}: mean_us", i + 2))?;
        if !(us.is_finite() && us > 0.0) || buffer == 0 {
            return Err(format!("line {}: not a measurement", i + 2));
        }
        let t = out
            .entry(buffer)
            .or_default()
            .entry(field(m)?.to_string())
            .or_default();
        let sd = sd_col
            .and_then(|k| f.get(k))
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0);
        if stage == "chain" {
            t.service_us = us;
            // the chain's spread stands for the busy time's until a busy line says
            if t.busy_us.is_none() {
                t.sd_us = sd;
            }
        } else {
            t.busy_us = Some(us);
            t.sd_us = sd;
        }
        let num = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok());
        if let Some((i, o)) = bytes_cols {
            if let (Some(i), Some(o)) = (num(i), num(o)) {
                t.bytes = Some((i, o));
            }
        }
        if let Some((i, o)) = lz4_cols {
            if let (Some(i), Some(o)) = (num(i), num(o)) {
                t.bytes_lz4 = Some((i, o));
            }
        }
    }
    // a method measured with a busy time but no chain line is not a measurement
    out.retain(|_, by_method| {
        by_method.retain(|_, t| t.service_us > 0.0);
        !by_method.is_empty()
    });
    if out.is_empty() {
        return Err("it holds no chain measurements".into());
    }
    Ok(out)
}

/// What to plan for.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PlanRequest {
    /// Rows a second the pipeline must take.
    pub arrival_rate: f64,
    /// Keep the utilisation under this (default 0.7).
    #[serde(default = "default_target")]
    pub target_rho: f64,
    /// Only settings whose predicted latency is under this many milliseconds.
    #[serde(default)]
    pub max_latency_ms: Option<f64>,
    /// Cores of the host the pool would run on (the pool takes at most cores - 1 workers).
    pub cores: usize,
    /// Evaluate this method only (`inline`, `pool`, `queue`).
    #[serde(default)]
    pub method: Option<String>,
    /// Exactly this many workers.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Consider 1 up to this many workers (default 8).
    #[serde(default)]
    pub max_workers: Option<usize>,
    /// The queue's workers are on other hosts, across this link (the profile measured the
    /// queue with its worker on the coordinator's host).
    #[serde(default)]
    pub link: Option<Link>,
    /// How the rows arrive (default `random`): the wait for a worker depends on it.
    #[serde(default)]
    pub arrivals: Arrivals,
}

/// How rows arrive, for the wait in the queue (G/G/c, Allen-Cunneen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Each row at random (Poisson, many independent sensors): a message of `b` rows follows
    /// the one before after a gap with squared coefficient of variation `1 / b`.
    #[default]
    Random,
    /// At a steady pace (a sampling clock, a replay at `--rate`): messages come evenly (0).
    Regular,
}

impl Arrivals {
    /// The squared coefficient of variation of the gaps between `buffer`-row messages.
    pub fn ca2(self, buffer: usize) -> f64 {
        match self {
            Arrivals::Random => 1.0 / buffer.max(1) as f64,
            Arrivals::Regular => 0.0,
        }
    }

    /// Its name (`random`, `regular`).
    pub fn name(self) -> &'static str {
        match self {
            Arrivals::Random => "random",
            Arrivals::Regular => "regular",
        }
    }

    /// From its name; none (or empty) is `random`, the default.
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        match s.unwrap_or_default() {
            "random" | "" => Ok(Arrivals::Random),
            "regular" => Ok(Arrivals::Regular),
            s => Err(format!("arrivals '{s}': random or regular")),
        }
    }
}

/// A network link between Redis (with the coordinator) and the worker hosts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Link {
    /// Round trip, milliseconds.
    pub rtt_ms: f64,
    /// Bandwidth each way, megabits a second.
    pub mbit: f64,
    /// Worker hosts, each behind a link of its own (the workers are spread evenly).
    #[serde(default = "one")]
    pub hosts: usize,
    /// Tasks and results LZ4-compressed across it (`task_compression = "lz4"`, or `auto` on a
    /// link of [`AUTO_LZ4_RTT`] or more).
    #[serde(default)]
    pub lz4: bool,
}

/// With `task_compression = "auto"`, workers this far from Redis (round trip) get LZ4 tasks:
/// measured on test hosts, LZ4 cost 10-25% across a 0.3-0.6 ms link (the CPU was the limit)
/// and paid across 2 ms / 1 Gbit/s (up to 1.6x at b=10,000) and 20 ms / 100 Mbit/s (2.7-3x).
pub const AUTO_LZ4_RTT: std::time::Duration = std::time::Duration::from_millis(1);

fn one() -> usize {
    1
}

/// The link of a plan from its optional parts: none without a round trip and a bandwidth;
/// one of the two alone is an error. `compression`: `none` (the default), `lz4` or `auto`
/// (LZ4 from [`AUTO_LZ4_RTT`] on).
pub fn link(
    rtt_ms: Option<f64>,
    mbit: Option<f64>,
    hosts: Option<usize>,
    compression: Option<&str>,
) -> Result<Option<Link>, String> {
    let lz4 = |rtt_ms: f64| match compression.unwrap_or("none") {
        "none" => Ok(false),
        "lz4" => Ok(true),
        "auto" => Ok(rtt_ms >= AUTO_LZ4_RTT.as_secs_f64() * 1e3),
        c => Err(format!("task compression '{c}': none, lz4 or auto")),
    };
    match (rtt_ms, mbit) {
        (None, None) if hosts.is_none() && compression.is_none() => Ok(None),
        (Some(rtt_ms), Some(mbit)) => {
            let l = Link {
                rtt_ms,
                mbit,
                hosts: hosts.unwrap_or(1),
                lz4: lz4(rtt_ms)?,
            };
            l.check()?;
            Ok(Some(l))
        }
        _ => Err("a link needs both its round trip (ms) and its bandwidth (Mbit/s)".into()),
    }
}

/// Bytes a task and a result carry besides the rows and the output (the chain's spec, the
/// stream fields), about.
const TASK_OVERHEAD_BYTES: f64 = 600.0;

/// The share of a message's smaller transfer (its task or its result) that adds to the time
/// it holds its host's link beyond the larger one: 0 if the two directions overlapped fully,
/// 1 if they went in turn. Measured on the test hosts (`bench/hosts_plan.sh`, the 8 settings of
/// two or four worker threads behind 1 Gbit/s and 100 Mbit/s links, BENCHMARKS.md section 14):
/// 0.24-1.0, 0.65 on average (more in turn on the slower link); validated on another run.
const LINK_OVERLAP: f64 = 0.65;

/// The most tasks a worker thread takes in one read (the worker's `--prefetch auto` limit).
const MAX_PREFETCH: f64 = 16.0;

impl Link {
    fn check(&self) -> Result<(), String> {
        if !(self.rtt_ms.is_finite() && self.rtt_ms >= 0.0 && self.rtt_ms <= 10_000.0) {
            return Err("link rtt_ms must be 0 to 10,000 milliseconds".into());
        }
        if !(self.mbit.is_finite() && self.mbit > 0.0 && self.mbit <= 1e7) {
            return Err("link mbit must be a positive number of megabits a second".into());
        }
        if self.hosts == 0 || self.hosts > crate::pipeline::MAX_WORKERS {
            return Err("link hosts must be at least 1".into());
        }
        Ok(())
    }

    /// The queue's service and busy time of a message (seconds) across this link, from the
    /// times measured with the worker beside Redis, and `c` worker threads in all.
    ///
    /// A worker thread takes `k` tasks a read, enough to cover the round trip with its chain
    /// time (the worker's `--prefetch auto`), and sends their results with its next read: a
    /// message holds its thread for its chain time, its bytes both ways at the link's rate and
    /// its share of a round trip. It waits a whole round trip besides. The links of the worker
    /// hosts carry every task and result, the two directions overlapping only partly
    /// ([`LINK_OVERLAP`]): when they are the slower part, a message's share of them is what
    /// limits the rate (its busy time is raised to match).
    pub fn queue_times(&self, t: &Times, c: usize) -> (f64, f64) {
        let compute = t.busy_us.unwrap_or(t.service_us) / 1e6;
        let local_overhead = (t.service_us / 1e6 - compute).max(0.0);
        let (bytes_in, bytes_out) = match self.lz4 {
            true => t.bytes_lz4.or(t.bytes),
            false => t.bytes,
        }
        .unwrap_or((0.0, 0.0));
        let rate = self.mbit * 1e6 / 8.0; // bytes a second
        let (tin, tout) = (
            (bytes_in + TASK_OVERHEAD_BYTES) / rate,
            (bytes_out + TASK_OVERHEAD_BYTES) / rate,
        );
        let rtt = self.rtt_ms / 1e3;
        let k = if compute > 0.0 {
            (rtt / compute).ceil().clamp(1.0, MAX_PREFETCH)
        } else {
            1.0
        };
        let thread = compute + tin + tout + rtt / k;
        let per_host = c.div_ceil(self.hosts.max(1)) as f64;
        // the link of a host carries its threads' tasks and results. A thread sends its
        // results and then receives its next tasks (one after the other); while one thread's
        // results go up another's tasks may come down, but only partly so: a message holds
        // the link for its larger transfer and a share of the smaller (LINK_OVERLAP)
        let link = per_host * (tin.max(tout) + LINK_OVERLAP * tin.min(tout));
        let busy = thread.max(link);
        let service = local_overhead + compute + tin + tout + rtt;
        (service, busy)
    }
}

fn default_target() -> f64 {
    0.7
}

/// One evaluated setting.
#[derive(Debug, Clone)]
pub struct PlanRow {
    /// `inline`, `pool` or `queue`.
    pub method: &'static str,
    /// The method whose measured service time was used.
    pub measured_with: String,
    /// The prediction.
    pub p: Prediction,
    /// Under the target rho (and the latency limit).
    pub fits: bool,
}

/// Every setting, and the index of the recommended one.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What was asked.
    pub request: PlanRequest,
    /// Each (buffer, workers).
    pub rows: Vec<PlanRow>,
    /// The lowest latency under the target, then the fewest workers.
    pub best: Option<usize>,
}

/// Plan for `req` from `profile`.
pub fn plan(profile: &Profile, req: &PlanRequest) -> Result<Plan, String> {
    if !(req.arrival_rate.is_finite() && req.arrival_rate > 0.0) {
        return Err("arrival_rate must be a positive number of rows a second".into());
    }
    if !(req.target_rho > 0.0 && req.target_rho < 1.0) {
        return Err("target_rho must be between 0 and 1 (a utilisation)".into());
    }
    if let Some(w) = req.workers.or(req.max_workers) {
        if !(1..=crate::pipeline::MAX_WORKERS).contains(&w) {
            return Err(format!(
                "the number of workers must be 1 to {}",
                crate::pipeline::MAX_WORKERS
            ));
        }
    }
    if let Some(m) = &req.method {
        if !matches!(m.as_str(), "inline" | "pool" | "queue") {
            return Err(format!("method '{m}': inline, pool or queue"));
        }
    }
    if let Some(l) = &req.link {
        l.check()?;
        let queue = || profile.values().filter_map(|m| m.get("queue"));
        if l.lz4 && queue().any(|t| t.bytes_lz4.is_none()) {
            return Err(
                "LZ4 across the link, but the profile has no LZ4 sizes (bytes_in_lz4, \
                 bytes_out_lz4): run `streamprep profile` again"
                    .into(),
            );
        }
    }
    let pool_max = req.cores.saturating_sub(1).max(1);
    let counts: Vec<usize> = match (req.method.as_deref(), req.workers, req.max_workers) {
        (Some("inline"), _, _) => vec![1],
        (_, Some(c), _) => vec![c],
        (_, None, m) => (1..=m.unwrap_or(8)).collect(),
    };
    let mut rows = Vec::new();
    for (&b, by_method) in profile {
        for &c in &counts {
            let method = match req.method.as_deref() {
                Some("inline") => "inline",
                Some("pool") => "pool",
                Some(_) => "queue",
                None if c <= pool_max => "pool",
                None => "queue",
            };
            // the service time measured with the method the setting would use, else another's
            let Some((measured_with, t)) = [method, "inline", "pool", "queue"]
                .iter()
                .find_map(|m| by_method.get(*m).map(|t| (m.to_string(), *t)))
            else {
                continue;
            };
            let (service, busy) = match (&req.link, method) {
                (Some(l), "queue") => l.queue_times(&t, c),
                _ => (t.service_us / 1e6, t.busy_us.unwrap_or(t.service_us) / 1e6),
            };
            let v = Variability {
                ca2: req.arrivals.ca2(b),
                cs2: t.cs2(busy),
            };
            let p = predict_gg(req.arrival_rate, b, c, service, busy, v);
            let fits = p.rho < req.target_rho
                && req.max_latency_ms.is_none_or(|ms| p.latency_s * 1e3 <= ms);
            rows.push(PlanRow {
                method,
                measured_with,
                p,
                fits,
            });
        }
    }
    // the lowest latency; within 1% of it (or a microsecond), the fewest workers: a light
    // load does not need eight workers to save a nanosecond of waiting
    let fitting = || rows.iter().enumerate().filter(|(_, r)| r.fits);
    let lowest = fitting()
        .map(|(_, r)| r.p.latency_s)
        .fold(f64::INFINITY, f64::min);
    let best = fitting()
        .filter(|(_, r)| r.p.latency_s <= lowest * 1.01 + 1e-6)
        .min_by(|(_, x), (_, y)| {
            x.p.workers
                .cmp(&y.p.workers)
                .then(x.p.latency_s.total_cmp(&y.p.latency_s))
        })
        .map(|(i, _)| i);
    Ok(Plan {
        request: req.clone(),
        rows,
        best,
    })
}

/// The service times of `method` at `buffer`, interpolated linearly between the measured
/// buffers (the line through the two nearest beyond them; S(b) = s0 + s1 b is what the paper
/// and the adaptive buffer find). Falls back to another method's times when `method` was not
/// measured; returns that method's name with the times.
pub fn times_at(profile: &Profile, method: &str, buffer: usize) -> Option<(String, Times)> {
    let with = [method, "inline", "pool", "queue"]
        .into_iter()
        .find(|m| profile.values().any(|by| by.contains_key(*m)))?;
    let points: Vec<(f64, Times)> = profile
        .iter()
        .filter_map(|(b, by)| by.get(with).map(|t| (*b as f64, *t)))
        .collect();
    let b = buffer as f64;
    let (lo, hi) = match points.len() {
        0 => return None,
        1 => return Some((with.to_string(), points[0].1)),
        n => {
            let i = points
                .iter()
                .position(|(pb, _)| *pb >= b)
                .unwrap_or(n - 1)
                .clamp(1, n - 1);
            (points[i - 1], points[i])
        }
    };
    let f = (b - lo.0) / (hi.0 - lo.0);
    let lerp = |x: f64, y: f64| (x + f * (y - x)).max(1.0);
    let busy = match (lo.1.busy_us, hi.1.busy_us) {
        (Some(x), Some(y)) => Some(lerp(x, y)),
        _ => None,
    };
    let pair = |lo: Option<(f64, f64)>, hi: Option<(f64, f64)>| match (lo, hi) {
        (Some((a, b)), Some((x, y))) => Some((lerp(a, x), lerp(b, y))),
        _ => None,
    };
    let bytes = pair(lo.1.bytes, hi.1.bytes);
    let bytes_lz4 = pair(lo.1.bytes_lz4, hi.1.bytes_lz4);
    let sd_us = match (lo.1.sd_us, hi.1.sd_us) {
        (Some(x), Some(y)) => Some((x + f * (y - x)).max(0.0)),
        _ => None,
    };
    Some((
        with.to_string(),
        Times {
            service_us: lerp(lo.1.service_us, hi.1.service_us),
            busy_us: busy,
            bytes,
            sd_us,
            bytes_lz4,
        },
    ))
}

/// The planner's verdict on one setting at an arrival rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// Predicted utilisation.
    pub rho: f64,
    /// Predicted mean latency of a row, ms (none when unstable).
    pub latency_ms: Option<f64>,
    /// rho < 1: the backlog stays bounded.
    pub stable: bool,
    /// The most rows a second this setting takes (rho = 1).
    pub max_rate_rows_per_s: f64,
    /// The method whose measurements were used.
    pub measured_with: String,
    /// What to do about it, when rho is high.
    pub warning: Option<String>,
}

/// The verdict on `buffer` rows a message, `workers` workers of `method`, at `rate` rows/s.
pub fn verdict(
    profile: &Profile,
    rate: f64,
    buffer: usize,
    workers: usize,
    method: &str,
) -> Option<Verdict> {
    let (with, t) = times_at(profile, method, buffer)?;
    let busy = t.busy_us.unwrap_or(t.service_us) / 1e6;
    let v = Variability {
        ca2: Arrivals::Random.ca2(buffer),
        cs2: t.cs2(busy),
    };
    let p = predict_gg(rate, buffer, workers, t.service_us / 1e6, busy, v);
    let warning = if !p.stable() {
        Some(format!(
            "rho {:.2} >= 1: at {rate} rows/s the backlog grows without bound; this setting \
             takes at most {:.0} rows/s: more workers or a larger buffer (POST /api/v1/plan)",
            p.rho, p.max_rate
        ))
    } else if p.rho >= 0.7 {
        Some(format!(
            "rho {:.2}: little room for bursts (0.7 is the usual target)",
            p.rho
        ))
    } else {
        None
    };
    Some(Verdict {
        rho: p.rho,
        latency_ms: p.latency_s.is_finite().then_some(p.latency_s * 1e3),
        stable: p.stable(),
        max_rate_rows_per_s: p.max_rate,
        measured_with: with,
        warning,
    })
}

fn finite(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

impl Plan {
    /// The plan as JSON (what `streamprep plan --json` prints and the API answers).
    pub fn to_json(&self) -> serde_json::Value {
        let target = self.request.target_rho;
        let setting = |r: &PlanRow| {
            json!({
                "buffer": r.p.buffer,
                "workers": r.p.workers,
                "method": r.method,
                "service_time_from": r.measured_with,
                "service_ms": r.p.service_s * 1e3,
                "busy_ms": r.p.busy_s * 1e3,
                "rho": r.p.rho,
                "stable": r.p.stable(),
                "fill_ms": r.p.fill_s * 1e3,
                "wait_ms": finite(r.p.wait_s * 1e3),
                "latency_ms": finite(r.p.latency_s * 1e3),
                "max_rate_rows_per_s": r.p.max_rate,
                "rate_at_target_rows_per_s": r.p.max_rate * target,
                "meets_target": r.fits,
            })
        };
        json!({
            "arrival_rate_rows_per_s": self.request.arrival_rate,
            "target_rho": target,
            "max_latency_ms": self.request.max_latency_ms,
            "cores": self.request.cores,
            "link": self.request.link,
            "arrivals": self.request.arrivals.name(),
            "settings": self.rows.iter().map(setting).collect::<Vec<_>>(),
            "recommendation": self.best.map(|i| setting(&self.rows[i])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = "method,buffer,stage,count,mean_us,p50_us,p99_us\n\
        inline,10,chain,100,1000,1000,1000\n\
        inline,100,chain,100,5000,5000,5000\n\
        pool,100,chain,100,5200,5200,5200\n\
        pool,100,busy,100,5000,5000,5000\n";

    #[test]
    fn a_profile_plans_every_setting_and_recommends_the_fastest_under_the_target() {
        let p = parse_profile(PROFILE).expect("profile");
        assert_eq!(p.len(), 2);
        let req = PlanRequest {
            arrival_rate: 10_000.0,
            target_rho: 0.7,
            max_latency_ms: None,
            cores: 4,
            method: None,
            workers: None,
            max_workers: Some(4),
            link: None,
            arrivals: Arrivals::Random,
        };
        let plan = plan(&p, &req).expect("plan");
        assert_eq!(plan.rows.len(), 8);
        let best = &plan.rows[plan.best.expect("a recommendation")];
        assert!(best.fits && best.p.rho < 0.7);
        // a light load: every worker count waits next to nothing, so one worker is enough
        let light = super::plan(
            &p,
            &PlanRequest {
                arrival_rate: 10.0,
                ..req.clone()
            },
        )
        .expect("plan");
        let one = &light.rows[light.best.expect("a recommendation")];
        assert_eq!((one.p.buffer, one.p.workers), (10, 1), "{:?}", one.p);
        // 10,000 rows/s of 10-row messages of 1 ms each: rho 1 per worker
        let one = plan
            .rows
            .iter()
            .find(|r| r.p.buffer == 10 && r.p.workers == 1)
            .expect("row");
        assert!((one.p.rho - 1.0).abs() < 1e-9 && !one.p.stable());
        let j = plan.to_json();
        assert_eq!(j["settings"].as_array().expect("settings").len(), 8);
        assert!(j["recommendation"]["rho"].as_f64().expect("rho") < 0.7);
        assert!(parse_profile("a,b\n1,2\n").is_err());
        assert!(plan_err(&p, 0.0).contains("arrival_rate"));
    }

    #[test]
    fn a_verdict_interpolates_the_service_time_and_warns_when_saturated() {
        let p = parse_profile(PROFILE).expect("profile");
        // inline at b = 55: halfway between 1 ms and 5 ms
        let (with, t) = times_at(&p, "inline", 55).expect("times");
        assert_eq!(with, "inline");
        assert!((t.service_us - 3000.0).abs() < 1e-9);
        let ok = verdict(&p, 1000.0, 100, 1, "inline").expect("verdict");
        assert!((ok.rho - 0.05).abs() < 1e-9 && ok.stable && ok.warning.is_none());
        let over = verdict(&p, 30_000.0, 100, 1, "inline").expect("verdict");
        assert!(!over.stable && over.latency_ms.is_none());
        assert!(over.warning.as_deref().unwrap_or("").contains(">= 1"));
    }

    fn plan_err(p: &Profile, rate: f64) -> String {
        let req = PlanRequest {
            arrival_rate: rate,
            target_rho: 0.7,
            max_latency_ms: None,
            cores: 2,
            method: None,
            workers: None,
            max_workers: None,
            link: None,
            arrivals: Arrivals::Random,
        };
        plan(p, &req).err().unwrap_or_default()
    }

    /// 10,000 rows a second on `workers` queue workers, across `link`.
    fn queue_at(link: Option<Link>, workers: usize) -> PlanRequest {
        PlanRequest {
            arrival_rate: 10_000.0,
            target_rho: 0.7,
            max_latency_ms: None,
            cores: 2,
            method: Some("queue".into()),
            workers: Some(workers),
            max_workers: None,
            link,
            arrivals: Arrivals::Random,
        }
    }

    const QUEUE: &str = "method,buffer,stage,messages,mean_us,sd_us,mean_us_per_row,sd_us_per_row,dead_rows,bytes_in,bytes_out\n\
        queue,100,chain,50,600,0,6,0,0,40000,60000\n\
        queue,100,busy,50,400,0,4,0,0,40000,60000\n";

    /// Across a link a queue message waits a round trip and its bytes' transfer besides its
    /// chain time; a worker thread covers the round trip with several tasks a read; a slow
    /// link's capacity is what limits the rate.
    #[test]
    fn a_link_adds_its_round_trip_and_transfer_to_the_queue() {
        let p = parse_profile(QUEUE).expect("profile");
        let t = p[&100]["queue"];
        assert_eq!(t.bytes, Some((40_000.0, 60_000.0)));
        let plan_at = |link: Option<Link>, workers: usize| {
            plan(&p, &queue_at(link, workers)).expect("plan").rows[0].p
        };
        let local = plan_at(None, 2);
        assert!((local.service_s - 600e-6).abs() < 1e-12 && (local.busy_s - 400e-6).abs() < 1e-12);
        // 2 ms, 1 Gbit/s: 125 MB/s, so 40.6 KB in 325 us and 60.6 KB out in 485 us; a thread
        // takes 5 tasks a read (2 ms / 0.4 ms), each holding it 2/5 ms of the round trip
        // (a host each: the thread's own time counts)
        let lan = plan_at(
            link(Some(2.0), Some(1000.0), Some(2), None).expect("link"),
            2,
        );
        let (tin, tout) = (40_600.0 / 125e6, 60_600.0 / 125e6);
        assert!((lan.service_s - (200e-6 + 400e-6 + tin + tout + 2e-3)).abs() < 1e-9);
        assert!((lan.busy_s - (400e-6 + tin + tout + 2e-3 / 5.0)).abs() < 1e-9);
        // 20 ms, 100 Mbit/s: 12.5 MB/s; a thread takes 16 tasks a read (the most)
        let (tin, tout) = (40_600.0 / 12.5e6, 60_600.0 / 12.5e6);
        let thread = 400e-6 + tin + tout + 20e-3 / 16.0;
        // two threads behind one link: each message holds it 4.85 ms out and 0.65 of the
        // 3.25 ms in, two at a time, more than a thread's own time
        let held = tout + LINK_OVERLAP * tin;
        let wan = plan_at(
            link(Some(20.0), Some(100.0), Some(1), None).expect("link"),
            2,
        );
        assert!(2.0 * held > thread);
        assert!((wan.busy_s - 2.0 * held).abs() < 1e-9, "{wan:?}");
        // four threads behind one link
        let four = plan_at(
            link(Some(20.0), Some(100.0), Some(1), None).expect("link"),
            4,
        );
        assert!((four.busy_s - 4.0 * held).abs() < 1e-9, "{four:?}");
        // two hosts: a link each, two threads behind each
        let two = plan_at(
            link(Some(20.0), Some(100.0), Some(2), None).expect("link"),
            4,
        );
        assert!((two.busy_s - 2.0 * held).abs() < 1e-9 && two.rho < four.rho);
        // one thread a host: the thread's own time is what counts
        let own = plan_at(
            link(Some(20.0), Some(100.0), Some(4), None).expect("link"),
            4,
        );
        assert!((own.busy_s - thread).abs() < 1e-9, "{own:?}");
        assert!(link(Some(2.0), None, None, None).is_err());
        assert!(link(Some(-1.0), Some(10.0), None, None).is_err());
        assert_eq!(link(None, None, None, None), Ok(None));
        // LZ4 asked of a profile without LZ4 sizes: refused, with what to do
        let lz4 = link(Some(20.0), Some(100.0), Some(1), Some("lz4")).expect("link");
        let e = plan(&p, &queue_at(lz4, 2))
            .map(|_| ())
            .expect_err("no LZ4 sizes");
        assert!(e.contains("profile"), "{e}");
    }

    /// With LZ4 across the link, a task and its result carry the profile's LZ4 sizes; `auto`
    /// compresses from a 1 ms round trip on.
    #[test]
    fn lz4_across_the_link_carries_the_compressed_sizes() {
        let csv = "method,buffer,stage,messages,mean_us,sd_us,mean_us_per_row,sd_us_per_row,dead_rows,bytes_in,bytes_out,bytes_in_lz4,bytes_out_lz4\n\
            queue,100,chain,50,600,0,6,0,0,40000,60000,10000,20000\n\
            queue,100,busy,50,400,0,4,0,0,40000,60000,10000,20000\n";
        let p = parse_profile(csv).expect("profile");
        assert_eq!(p[&100]["queue"].bytes_lz4, Some((10_000.0, 20_000.0)));
        let at = |l: Option<Link>| plan(&p, &queue_at(l, 2)).expect("plan").rows[0].p;
        let wan = |z: &str| at(link(Some(20.0), Some(100.0), Some(1), Some(z)).expect("link"));
        // two threads behind 100 Mbit/s: the link, 10.6 KB in and 20.6 KB out a message
        let (tin, tout) = (10_600.0 / 12.5e6, 20_600.0 / 12.5e6);
        let z = wan("lz4");
        assert!(
            (z.busy_s - 2.0 * (tout + LINK_OVERLAP * tin)).abs() < 1e-9,
            "{z:?}"
        );
        assert_eq!(wan("auto"), z);
        assert!(wan("none").rho > 3.0 * z.rho);
        // auto on a 0.5 ms link: as they are
        let near = |z: &str| at(link(Some(0.5), Some(10_000.0), Some(1), Some(z)).expect("link"));
        assert_eq!(near("auto"), near("none"));
        assert_ne!(near("lz4"), near("none"));
        assert!(link(Some(1.0), Some(10.0), None, Some("zstd")).is_err());
    }

    /// The wait for a worker follows how variable the arrivals and the chain are (G/G/c,
    /// Allen-Cunneen): the profile's spread gives Cs^2, the request's arrivals Ca^2.
    #[test]
    fn the_wait_follows_the_arrivals_and_the_chains_spread() {
        let csv = "method,buffer,stage,messages,mean_us,sd_us\n\
            pool,100,chain,50,5200,600\n\
            pool,100,busy,50,5000,500\n\
            inline,10,chain,50,1000,0\n";
        let p = parse_profile(csv).expect("profile");
        assert_eq!(p[&100]["pool"].sd_us, Some(500.0));
        assert_eq!(p[&10]["inline"].sd_us, Some(0.0));
        let at = |arrivals: Arrivals| {
            let req = PlanRequest {
                arrival_rate: 30_000.0,
                target_rho: 0.9,
                max_latency_ms: None,
                cores: 4,
                method: Some("pool".into()),
                workers: Some(2),
                max_workers: None,
                link: None,
                arrivals,
            };
            let plan = plan(&p, &req).expect("plan");
            plan.rows
                .into_iter()
                .find(|r| r.p.buffer == 100)
                .expect("b=100")
                .p
        };
        let random = at(Arrivals::Random);
        let regular = at(Arrivals::Regular);
        // 300 messages/s of 5 ms on 2 workers: rho 0.75 either way
        assert!((random.rho - 0.75).abs() < 1e-9 && random.rho == regular.rho);
        let mmc = crate::capacity::predict_busy(30_000.0, 100, 2, 0.0052, 0.005);
        // random rows: Ca^2 = 1/100; the busy time's Cs^2 = (0.5/5)^2 = 0.01
        assert!((random.wait_s - mmc.wait_s * (0.01 + 0.01) / 2.0).abs() < 1e-12);
        // a paced stream: Ca^2 = 0
        assert!((regular.wait_s - mmc.wait_s * 0.01 / 2.0).abs() < 1e-12);
        // without a spread in the profile the service counts as random (Cs^2 = 1)
        let bare = parse_profile(PROFILE).expect("profile");
        assert_eq!(bare[&100]["pool"].sd_us, None);
        assert_eq!(bare[&100]["pool"].cs2(0.005), 1.0);
        assert_eq!(
            Arrivals::parse(Some("steady")),
            Err("arrivals 'steady': random or regular".into())
        );
    }
}
