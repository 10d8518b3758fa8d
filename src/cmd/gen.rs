//! `streamprep gen`: Davis-weather-station-like NDJSON test data.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use streamprep_connectors::generator::DavisGenerator;

#[derive(clap::Args)]
pub struct GenArgs {
    /// Rows to write.
    #[arg(long)]
    rows: u64,
    /// Random seed (the same seed gives the same file).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (NDJSON); stdout when absent or `-`.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

pub fn run(args: GenArgs) -> anyhow::Result<ExitCode> {
    let out: Box<dyn Write> = match &args.out {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        _ => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let mut g = DavisGenerator::new(args.seed);
    let mut row = Vec::with_capacity(1024);
    for _ in 0..args.rows {
        row.clear();
        g.write_row(&mut row);
        row.push(b'\n');
        out.write_all(&row).context("writing rows")?;
    }
    out.flush().context("writing rows")?;
    Ok(ExitCode::SUCCESS)
}
