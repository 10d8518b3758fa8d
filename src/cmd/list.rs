//! `streamprep list`: the registry, one line a step.

use std::process::ExitCode;

use streamprep_ops::registry::STEPS;

pub fn run() -> anyhow::Result<ExitCode> {
    let width = STEPS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in STEPS {
        println!("{:width$}  {}  [{}]", s.name, s.summary, s.equals);
    }
    Ok(ExitCode::SUCCESS)
}
