//! One module per subcommand.

pub mod demo;
pub mod gen;
pub mod list;
pub mod metrics;
pub mod plan;
pub mod profile;
pub mod project;
pub mod run;
pub mod status;
pub mod worker;
