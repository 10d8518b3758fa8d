//! Projects as a library: the [`spec`] of a project (TOML for the CLI's project file, JSON for
//! the API), its [`plan`] (every field checked, per field), and [`launch`], which starts a
//! pipeline on a thread of its own and gives a [`RunHandle`] to watch it (`state`, `view`,
//! `events`) and stop it. `streamprep run` and `streamprep demo` are clients of this crate, and
//! so is the web server: any number of runs share one process.

pub mod launch;
pub mod plan;
pub mod profile;
pub mod runlog;
pub mod runs;
pub mod spec;

pub use launch::{launch, launch_plan, prepare, RunHandle, Runner, View};
pub use plan::{default_workers, FieldError, Plan, SpecError};
pub use runlog::RunLog;
pub use runs::Runs;
pub use spec::{
    parse_duration, BackpressureName, BufferSetting, ChainSpec, MethodName, OrderedName,
    ProjectSpec, RateSetting,
};
pub use streamprep_engine::{Event, Level, RunState, Stamped, Summary};
