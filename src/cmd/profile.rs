//! `streamprep profile`: the paper's measurement procedure. For each buffer size `b`,
//! `--messages` messages of `b` rows go through the chain one at a time with each method, and
//! the service time of each is measured (mean and standard deviation, per message and per row);
//! inline also times every step. Writes a CSV and an SVG plot in the style of the paper's
//! figures 8 and 9 (log-log, one curve per method) and prints a table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use streamprep_connectors::{open_source, spec, SourceOptions};
use streamprep_core::{RowFormat, SourceKind};
use streamprep_engine::buffer::Buffer;
use streamprep_engine::{Method, Remote};
use streamprep_project::profile::{self, Line};

#[derive(clap::Args)]
pub struct ProfileArgs {
    /// Steps in order (`prepare` and `result` are implied).
    #[arg(long, default_value = "fillna_zeros,normalizer,drop_duplicates")]
    chain: String,
    /// Buffer sizes (rows a message), comma-separated.
    #[arg(long, default_value = "1,10,100,1000,3000,5000,7500,10000")]
    buffers: String,
    /// Messages measured at each buffer size.
    #[arg(long, default_value_t = 75)]
    messages: usize,
    /// Messages run first at each buffer size and not counted (caches, the workers' chains).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// inline, pool or queue; several, comma-separated, give one curve each.
    #[arg(long, default_value = "inline")]
    method: String,
    /// Threads of the pool (the message still goes to one of them at a time).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Redis for the queue method (redis://HOST:PORT); start `streamprep worker` on it first.
    #[arg(long)]
    broker: Option<String>,
    /// The queue method: compress tasks and results with LZ4 (`lz4`) or not (`none`).
    #[arg(long, default_value = "none", value_parser = ["none", "lz4"])]
    task_compression: String,
    /// The queue method: fail when no result arrives for this long.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Rows to measure with (NDJSON or CSV); by default `gen --seed 1` rows.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Hand messages over at the pace of a stream of this many rows a second (a `b`-row
    /// message every `b / rate` seconds, or as soon as the previous one is done), so the
    /// method idles between messages as it does in a run at that rate; a pool is also measured
    /// open loop at that pace (its workers side by side) for its busy time. By default each
    /// message follows the previous one at once, as in the paper.
    #[arg(long, value_name = "ROWS_PER_S")]
    arrival_rate: Option<f64>,
    /// Where to write the measurements.
    #[arg(long, default_value = "profile.csv")]
    csv: PathBuf,
    /// Where to write the plot (SVG).
    #[arg(long, default_value = "profile.svg")]
    plot: PathBuf,
}

pub fn run(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    // everything is checked before anything is measured
    let steps: Vec<String> = args
        .chain
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "prepare" && s != "result")
        .collect();
    let buffers = args
        .buffers
        .split(',')
        .map(|b| match b.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => {
                bail!("--buffers: '{b}' is not a buffer size (a whole number of rows, at least 1)")
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!buffers.is_empty(), "--buffers: give at least one size");
    anyhow::ensure!(args.messages >= 1, "--messages must be at least 1");
    anyhow::ensure!(args.workers >= 1, "--workers must be at least 1");
    if let Some(r) = args.arrival_rate {
        anyhow::ensure!(
            r.is_finite() && r > 0.0,
            "--arrival-rate: '{r}' is not a rate (rows a second, above 0)"
        );
    }
    let methods = args
        .method
        .split(',')
        .map(|m| match m.trim() {
            "inline" => Ok(("inline", Method::Inline)),
            "pool" => Ok((
                "pool",
                Method::Pool {
                    workers: args.workers,
                },
            )),
            "queue" => Ok(("queue", Method::Queue { in_flight: 1 })),
            other => bail!("--method: '{other}' is not a method (inline, pool or queue)"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let queue = if methods.iter().any(|(n, _)| *n == "queue") {
        let Some(url) = &args.broker else {
            bail!("--method queue needs --broker redis://HOST:PORT (with `streamprep worker` serving it)");
        };
        let mut q = streamprep_queue::Queue::new(url)?;
        q.lz4 = args.task_compression == "lz4";
        q.give_up_after = Some(super::duration(&args.timeout, "--timeout")?);
        Some(q)
    } else {
        None
    };
    let max_b = *buffers.iter().max().expect("at least one");
    // a ring of rows the messages are cut from: twice the largest message, so consecutive
    // messages differ
    let ring_len = (2 * max_b).max(1000);
    let (format, header, rows) = match &args.input {
        None => (RowFormat::Ndjson, None, profile::davis_rows(ring_len)),
        Some(path) => read_rows(path, ring_len)?,
    };
    let req = profile::Request {
        steps,
        buffers: buffers.clone(),
        methods: methods.clone(),
        remote: queue.as_ref().map(|q| q as &dyn Remote),
        rows,
        format,
        header,
        warmup: args.warmup,
        messages: args.messages,
        arrival_rate: args.arrival_rate,
    };
    let names = profile::stage_names(&req).map_err(|e| anyhow::anyhow!("--chain: {e}"))?;
    let lines = profile::measure(&req, |line| {
        let b = line.buffer;
        eprintln!(
            "streamprep profile: {:<6} b={b:<6} {:>12.1} us/msg  {:>10.3} us/row",
            line.method,
            line.mean_us,
            line.mean_us / b as f64
        );
        if line.dead_rows > 0 {
            eprintln!(
                "streamprep profile: warning: {} row(s) became dead letters at b={b}, so these times leave out the steps those rows did not reach (does the chain need a fillna step first?)",
                line.dead_rows
            );
        }
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    std::fs::write(&args.csv, profile::to_csv(&lines))
        .with_context(|| format!("writing {}", args.csv.display()))?;
    plot(&args.plot, &methods, &buffers, &lines)?;
    print!("{}", table(&methods, &buffers, &names, &lines));
    eprintln!(
        "streamprep profile: wrote {} and {}",
        args.csv.display(),
        args.plot.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Up to `limit` rows of a row file, without their line ends, and its CSV header.
#[allow(clippy::type_complexity)]
fn read_rows(
    path: &Path,
    limit: usize,
) -> anyhow::Result<(RowFormat, Option<Vec<u8>>, Vec<Vec<u8>>)> {
    let ep = spec::parse(&format!("file:{}", path.display()), None).context("--input")?;
    let mut src = open_source(&ep, SourceOptions::default()).context("--input")?;
    let SourceKind::Rows(format) = src.kind() else {
        bail!("--input: profile reads NDJSON or CSV rows; turn a Parquet file into NDJSON with `streamprep run --source file:IN.parquet --chain '' --sink file:OUT.ndjson`");
    };
    let header = src.header()?;
    let msg = Buffer::new(limit).next_message(src.as_mut(), None)?;
    let rows: Vec<Vec<u8>> = msg
        .map(|m| m.payload.raw_rows().map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    anyhow::ensure!(
        !rows.is_empty(),
        "--input: {} holds no rows",
        path.display()
    );
    Ok((format, header, rows))
}

fn find<'a>(lines: &'a [Line], method: &str, b: usize, stage: &str) -> Option<&'a Line> {
    lines
        .iter()
        .find(|l| l.method == method && l.buffer == b && l.stage == stage)
}

/// The chain per method, then (inline) each stage's mean.
fn table(
    methods: &[(&str, Method)],
    buffers: &[usize],
    stages: &[String],
    lines: &[Line],
) -> String {
    let mut s = String::from("service time of the chain, one message at a time (mean ± sd)\n");
    let _ = write!(s, "{:>7}", "buffer");
    for (m, _) in methods {
        let _ = write!(s, " | {:>24} {:>11}", format!("{m} us/msg"), "us/row");
    }
    s.push('\n');
    for &b in buffers {
        let _ = write!(s, "{b:>7}");
        for (m, _) in methods {
            if let Some(l) = find(lines, m, b, "chain") {
                let cell = format!("{:.1} ± {:.1}", l.mean_us, l.sd_us);
                let _ = write!(s, " | {cell:>24} {:>11.3}", l.mean_us / b as f64);
            }
        }
        s.push('\n');
    }
    if methods.iter().any(|(_, m)| *m == Method::Inline) {
        s.push_str("\ninline, per stage (mean us/msg)\n");
        let _ = write!(s, "{:>7}", "buffer");
        for st in stages {
            let _ = write!(s, " | {st:>14}");
        }
        s.push('\n');
        for &b in buffers {
            let _ = write!(s, "{b:>7}");
            for st in stages {
                if let Some(l) = find(lines, "inline", b, st) {
                    let _ = write!(s, " | {:>14.1}", l.mean_us);
                }
            }
            s.push('\n');
        }
    }
    s
}

/// Two log-log panels, per message and per row, one curve per method (figures 8 and 9).
fn plot(
    path: &Path,
    methods: &[(&str, Method)],
    buffers: &[usize],
    lines: &[Line],
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (left, right) = root.split_horizontally(600);
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
    ];
    for (area, per_row) in [(left, false), (right, true)] {
        let curves: Vec<(&str, Vec<(f64, f64)>)> = methods
            .iter()
            .map(|(m, _)| {
                let pts = buffers
                    .iter()
                    .filter_map(|&b| find(lines, m, b, "chain"))
                    .map(|l| {
                        let y = if per_row {
                            l.mean_us / l.buffer as f64
                        } else {
                            l.mean_us
                        };
                        (l.buffer as f64, y.max(1e-3))
                    })
                    .collect();
                (*m, pts)
            })
            .collect();
        let ys = curves.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
        let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        let xs = (buffers.iter().min().copied().unwrap_or(1) as f64 * 0.8)
            ..(buffers.iter().max().copied().unwrap_or(1) as f64 * 1.25);
        let title = if per_row {
            "service time per row"
        } else {
            "service time per message"
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(xs.log_scale(), (lo * 0.7..hi * 1.4).log_scale())
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| format!("{x}"))
            .y_label_formatter(&|y| format!("{y}"))
            .x_desc("buffering factor b (rows a message)")
            .y_desc(if per_row {
                "µs a row"
            } else {
                "µs a message"
            })
            .draw()
            .map_err(|e| fail(&e))?;
        for (i, (name, pts)) in curves.into_iter().enumerate() {
            let c = colors[i % colors.len()];
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(|e| fail(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
