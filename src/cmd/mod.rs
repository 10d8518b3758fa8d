//! One module per subcommand.

pub mod demo;
pub mod gen;
pub mod list;
pub mod log;
pub mod metrics;
pub mod plan;
pub mod profile;
pub mod run;
pub mod serve;
pub mod status;
pub mod user;
pub mod worker;

/// A duration flag (`50ms`, `2s`), its error naming the flag.
pub fn duration(text: &str, flag: &str) -> anyhow::Result<std::time::Duration> {
    streamprep_project::parse_duration(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}
