//! `streamprep gen`: Davis-weather-station-like NDJSON test data, to a file or published to
//! an MQTT topic at a steady rate (the weather-station simulator).

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use streamprep_connectors::generator::{Pacer, Stations};
use streamprep_connectors::mqtt::{MqttUrl, Publisher};

#[derive(clap::Args)]
pub struct GenArgs {
    /// Rows to write (with --mqtt: until Ctrl-C when absent).
    #[arg(long)]
    rows: Option<u64>,
    /// Publish each row to this MQTT topic instead (mqtt://HOST:PORT/TOPIC[?qos=1]).
    #[arg(long)]
    mqtt: Option<String>,
    /// With --mqtt: rows a second, paced on an absolute clock.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Stations whose rows interleave (each its own `station` value).
    #[arg(long, default_value_t = 1)]
    stations: usize,
    /// With --mqtt: add the publish time, `"sent_us":"<microseconds since 1970>"`, to each
    /// row (a string, so steps leave it alone), to measure end-to-end latency.
    #[arg(long)]
    stamp: bool,
    /// With --mqtt: stamp `ts` with the simulated minutes from 2019-01-01, as the file output
    /// does (the same rows as `gen --out` for the seed), instead of the wall clock.
    #[arg(long)]
    simulated_time: bool,
    /// Random seed (the same seed gives the same file).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (NDJSON); stdout when absent or `-`.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

pub fn run(args: GenArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.mqtt {
        let url = MqttUrl::parse(url).map_err(|e| anyhow::anyhow!("--mqtt: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        super::status::stop_on_ctrl_c(&stop)?;
        let mut p = Publisher::connect(&url, "gen", stop.clone())?;
        let started = Instant::now();
        let stations = Stations::new(args.seed, args.stations);
        let stations = if args.simulated_time {
            stations
        } else {
            stations.wall_clock()
        };
        let sent = simulate(
            &mut p,
            stations,
            args.rate,
            args.rows.unwrap_or(u64::MAX),
            args.stamp,
            &stop,
        )?;
        p.close()?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "streamprep gen: published {sent} rows to {} in {secs:.3} s ({:.0} rows/s)",
            url.display(),
            sent as f64 / secs
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows = args
        .rows
        .context("give --rows (or --mqtt to publish until Ctrl-C)")?;
    let out: Box<dyn Write> = match &args.out {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        _ => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut g = Stations::new(args.seed, args.stations);
    let mut row = Vec::with_capacity(1024);
    for _ in 0..rows {
        row.clear();
        g.write_row(&mut row);
        row.push(b'\n');
        out.write_all(&row).context("writing rows")?;
    }
    out.flush().context("writing rows")?;
    Ok(ExitCode::SUCCESS)
}

/// The weather-station simulator: publish `rows` rows (or until `stop`) at `rate` rows a
/// second, one row a publish; returns the rows published.
pub fn simulate(
    p: &mut Publisher,
    mut stations: Stations,
    rate: f64,
    rows: u64,
    stamp: bool,
    stop: &AtomicBool,
) -> anyhow::Result<u64> {
    anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be more than 0");
    let mut pacer = Pacer::new(rate);
    let mut sent = 0u64;
    let mut row = Vec::with_capacity(1024);
    while sent < rows && !stop.load(Ordering::Relaxed) {
        if !pacer.wait(Instant::now() + std::time::Duration::from_millis(100)) {
            continue;
        }
        row.clear();
        stations.write_row(&mut row);
        if stamp {
            let us = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            row.pop(); // the closing brace
            write!(row, ",\"sent_us\":\"{us}\"}}").context("stamping a row")?;
        }
        p.publish(row.clone())?;
        pacer.sent();
        sent += 1;
    }
    Ok(sent)
}
