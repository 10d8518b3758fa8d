//! The paper's measurement procedure as a library (`streamprep profile` and the planner page
//! share it): for each method and buffer size `b`, messages of `b` rows go through the chain
//! one at a time and the service time of each is measured (mean and standard deviation);
//! inline also times every stage. The result is the profile CSV the planner reads.

use std::fmt::Write as _;
use std::time::Duration;

use streamprep_core::{Encoding, Message, Payload, RowFormat};
use streamprep_engine::chain::Chain;
use streamprep_engine::profile::{mean_sd, service_times, Sample};
use streamprep_engine::{Method, Remote, RemoteJob};
use streamprep_ops::prepare::{infer_schema, PrepareConfig};

/// One (method, buffer, stage) line of the profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// inline, pool or queue.
    pub method: String,
    /// Rows a message.
    pub buffer: usize,
    /// `chain`, `busy`, or a stage's name (inline).
    pub stage: String,
    /// Messages measured.
    pub messages: usize,
    /// Mean, microseconds a message.
    pub mean_us: f64,
    /// Standard deviation, microseconds.
    pub sd_us: f64,
    /// Rows that became dead letters.
    pub dead_rows: usize,
    /// Mean bytes of a message's rows as read (what a queue task carries).
    pub bytes_in: f64,
    /// Mean bytes of a message's output as written (what a queue result carries).
    pub bytes_out: f64,
    /// The same two with `task_compression = "lz4"`: the rows LZ4-compressed, the output as
    /// Arrow IPC, LZ4-compressed (what a compressed result carries).
    pub bytes_lz4: (f64, f64),
}

/// What to measure.
pub struct Request<'a> {
    /// The steps (`prepare` and `result` are implied).
    pub steps: Vec<String>,
    /// Buffer sizes.
    pub buffers: Vec<usize>,
    /// `(name, method)` pairs, one curve each.
    pub methods: Vec<(&'static str, Method)>,
    /// The queue method's executor.
    pub remote: Option<&'a dyn Remote>,
    /// Rows to cut messages from (without line ends), their format and CSV header.
    pub rows: Vec<Vec<u8>>,
    /// NDJSON or CSV.
    pub format: RowFormat,
    /// The CSV header line.
    pub header: Option<Vec<u8>>,
    /// Messages run first and not counted.
    pub warmup: usize,
    /// Messages measured at each buffer size.
    pub messages: usize,
    /// Hand messages over at the pace of a stream of this many rows a second.
    pub arrival_rate: Option<f64>,
}

/// `count` rows of the simulated weather stations (`gen --seed 1`), NDJSON.
pub fn davis_rows(count: usize) -> Vec<Vec<u8>> {
    let mut g = streamprep_connectors::generator::DavisGenerator::new(1);
    (0..count)
        .map(|_| {
            let mut r = Vec::with_capacity(600);
            g.write_row(&mut r);
            r
        })
        .collect()
}

/// The stage names of the chain (`prepare`, the steps, `result`).
pub fn stage_names(req: &Request<'_>) -> Result<Vec<String>, String> {
    Ok(Chain::new(&req.steps, job(req)?.prepare, Encoding::Ndjson)
        .map_err(|e| e.to_string())?
        .stage_names())
}

fn job(req: &Request<'_>) -> Result<RemoteJob, String> {
    let sample: Vec<&[u8]> = req.rows.iter().take(1000).map(Vec::as_slice).collect();
    let schema = infer_schema(req.format, req.header.as_deref(), &sample, b',')
        .map_err(|e| format!("inferring the schema: {e}"))?;
    Ok(RemoteJob {
        chain: req.steps.clone(),
        prepare: PrepareConfig {
            format: req.format,
            compression: Default::default(),
            csv_sep: b',',
            schema,
        },
        encoding: Encoding::Ndjson,
        want_batch: false,
        key: None,
        max_keys: None,
        state: None,
    })
}

/// Measure every method at every buffer size; `progress` sees each chain line as it is done.
pub fn measure(req: &Request<'_>, mut progress: impl FnMut(&Line)) -> Result<Vec<Line>, String> {
    if req.rows.is_empty() {
        return Err("no rows to measure with".into());
    }
    let job = job(req)?;
    let names = Chain::new(&job.chain, job.prepare.clone(), job.encoding)
        .map_err(|e| e.to_string())?
        .stage_names();
    let mut lines = Vec::new();
    for (name, method) in &req.methods {
        for &b in &req.buffers {
            let messages = cut(&req.rows, req.format, b, req.warmup + req.messages);
            let (bytes_out, out_lz4) = burn_in(&job, &messages)?;
            // a task's rows as they are (no copy of them to count) and where each ends, plain
            // and with LZ4 (the row ends go as they are)
            let per_message = |f: &dyn Fn(&Message) -> f64| {
                messages.iter().map(f).sum::<f64>() / messages.len().max(1) as f64
            };
            let bytes_in = per_message(&|m| match &m.payload {
                Payload::Raw { bytes, ends, .. } => (bytes.len() + 8 * ends.len()) as f64,
                Payload::Columnar(b) => b.get_array_memory_size() as f64,
            });
            let in_lz4 = per_message(&|m| match &m.payload {
                Payload::Raw { bytes, ends, .. } => {
                    (lz4_flex::compress_prepend_size(bytes).len() + 8 * ends.len()) as f64
                }
                Payload::Columnar(b) => b.get_array_memory_size() as f64,
            });
            let first = lines.len();
            let gap = req
                .arrival_rate
                .map(|r| Duration::from_secs_f64(b as f64 / r));
            let samples = service_times(*method, &job, req.remote, messages, req.warmup, gap)
                .map_err(|e| format!("{name} at buffer {b}: {e}"))?;
            let line = summarise(name, b, "chain", &samples, |s| s.service);
            progress(&line);
            lines.push(line);
            // the time the chain kept a worker busy (plan's rho counts this, as run's does)
            lines.push(summarise(name, b, "busy", &samples, |s| s.busy));
            if *method == Method::Inline {
                for (i, stage) in names.iter().enumerate() {
                    lines.push(summarise(name, b, stage, &samples, |s| s.stages[i]));
                }
            }
            for l in &mut lines[first..] {
                (l.bytes_in, l.bytes_out) = (bytes_in, bytes_out);
                l.bytes_lz4 = (in_lz4, out_lz4);
            }
        }
    }
    Ok(lines)
}

/// The profile as the CSV `plan` reads.
pub fn to_csv(lines: &[Line]) -> String {
    let mut s = String::from(
        "method,buffer,stage,messages,mean_us,sd_us,mean_us_per_row,sd_us_per_row,dead_rows,bytes_in,bytes_out,bytes_in_lz4,bytes_out_lz4\n",
    );
    for l in lines {
        let b = l.buffer as f64;
        let _ = writeln!(
            s,
            "{},{},{},{},{:.3},{:.3},{:.5},{:.5},{},{:.0},{:.0},{:.0},{:.0}",
            l.method,
            l.buffer,
            l.stage,
            l.messages,
            l.mean_us,
            l.sd_us,
            l.mean_us / b,
            l.sd_us / b,
            l.dead_rows,
            l.bytes_in,
            l.bytes_out,
            l.bytes_lz4.0,
            l.bytes_lz4.1
        );
    }
    s
}

/// Run the chain on copies of the messages for [`BURN_IN`] first: a core that was idle runs
/// slowly for a while (frequency scaling, a virtual machine's scheduler), and short
/// measurements at small buffers would measure that instead of the chain. Returns the mean
/// bytes of the output written for a message, and of its batch as Arrow IPC with LZ4 (a
/// compressed queue result; from the first pass over the messages).
fn burn_in(job: &RemoteJob, messages: &[Message]) -> Result<(f64, f64), String> {
    let mut chain =
        Chain::new(&job.chain, job.prepare.clone(), job.encoding).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let (mut bytes, mut n) = (0usize, 0usize);
    let (mut packed, mut first) = (0usize, 0usize);
    for m in messages.iter().cycle() {
        if started.elapsed() >= BURN_IN && n > 0 {
            break;
        }
        let p = streamprep_engine::run_guarded(&mut chain, m.clone());
        bytes += p.output.as_ref().map_or(0, |o| o.encoded.len());
        if n < messages.len() {
            if let Some(o) = &p.output {
                let ipc = streamprep_queue::wire::to_ipc(&o.batch).map_err(|e| e.to_string())?;
                packed += lz4_flex::compress_prepend_size(&ipc).len();
            }
            first += 1;
        }
        n += 1;
    }
    Ok((bytes as f64 / n as f64, packed as f64 / first.max(1) as f64))
}

/// How long [`burn_in`] runs before each measurement.
const BURN_IN: Duration = Duration::from_millis(300);

/// `count` messages of `b` rows, taken one after the other from the ring of rows.
fn cut(rows: &[Vec<u8>], format: RowFormat, b: usize, count: usize) -> Vec<Message> {
    (0..count)
        .map(|k| {
            let mut bytes = Vec::new();
            let mut ends = Vec::with_capacity(b);
            for i in 0..b {
                bytes.extend_from_slice(&rows[(k * b + i) % rows.len()]);
                bytes.push(b'\n');
                ends.push(bytes.len());
            }
            Message::new(
                k as u64,
                Payload::Raw {
                    format,
                    bytes,
                    ends,
                },
            )
        })
        .collect()
}

fn summarise(
    method: &str,
    buffer: usize,
    stage: &str,
    samples: &[Sample],
    of: impl Fn(&Sample) -> Duration,
) -> Line {
    let us: Vec<f64> = samples.iter().map(|s| of(s).as_secs_f64() * 1e6).collect();
    let (mean_us, sd_us) = mean_sd(&us);
    Line {
        method: method.to_string(),
        buffer,
        stage: stage.to_string(),
        messages: samples.len(),
        mean_us,
        sd_us,
        dead_rows: samples.iter().map(|s| s.dead_rows).sum(),
        bytes_in: 0.0,
        bytes_out: 0.0,
        bytes_lz4: (0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_measures_each_setting_and_the_planner_reads_it() {
        let req = Request {
            steps: vec!["fillna_zeros".into(), "normalizer".into()],
            buffers: vec![1, 10],
            methods: vec![("inline", Method::Inline)],
            remote: None,
            rows: davis_rows(100),
            format: RowFormat::Ndjson,
            header: None,
            warmup: 1,
            messages: 3,
            arrival_rate: None,
        };
        let mut seen = 0;
        let lines = measure(&req, |_| seen += 1).expect("measured");
        assert_eq!(seen, 2, "one chain line per buffer");
        // chain + busy + prepare, 2 steps, result at each buffer
        assert_eq!(lines.len(), 2 * 6);
        assert!(lines.iter().all(|l| l.messages == 3 && l.mean_us > 0.0));
        let profile = streamprep_engine::planner::parse_profile(&to_csv(&lines))
            .expect("the planner reads it");
        assert!(streamprep_engine::planner::times_at(&profile, "inline", 10).is_some());
    }
}
