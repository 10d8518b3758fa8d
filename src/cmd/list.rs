//! `streamprep list`: the registries: one line a step, with each step's options and the
//! paper's names that stand for a step with fixed options; then the connectors with theirs.

use std::process::ExitCode;

use streamprep_connectors::registry::CONNECTORS;
use streamprep_ops::registry::STEPS;

pub fn run() -> anyhow::Result<ExitCode> {
    let width = STEPS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in STEPS {
        println!("{:width$}  {}  [{}]", s.name, s.summary, s.equals);
        for o in s.options {
            let kind = o.kind.describe();
            println!(
                "{:width$}    option {} = {kind} (default {}): {}",
                "", o.name, o.default, o.doc
            );
        }
        if let Some((step, options)) = s.alias_of {
            println!("{:width$}    = {step} with {options}", "");
        }
    }
    println!("\nConnectors (sources and sinks):");
    let width = CONNECTORS.iter().map(|c| c.syntax.len()).max().unwrap_or(0);
    for c in CONNECTORS {
        let role = match (c.source, c.sink) {
            (true, true) => "source, sink",
            (true, false) => "source",
            _ => "sink",
        };
        println!("{:width$}  {role}: {}", c.syntax, c.summary);
        for o in c.options {
            let default = if o.default.is_empty() {
                String::new()
            } else {
                format!(" (default {})", o.default)
            };
            println!(
                "{:width$}    {} = {}{default}: {}",
                "", o.name, o.kind, o.doc
            );
        }
    }
    println!(
        "\nIn a project's chain, a step with options is a table: \
         {{ step = \"min_max_scaler\", feature_range = [-1, 1] }}; \
         on the command line: --chain 'fillna_zeros,min_max_scaler{{\"feature_range\": [-1, 1]}}'"
    );
    Ok(ExitCode::SUCCESS)
}
