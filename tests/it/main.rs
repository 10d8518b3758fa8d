//! Integration tests: one binary (see conventions.md).

mod api;
mod browser;
mod capacity;
mod cli;
mod conformance;
mod exec;
mod fuzz_replay;
mod golden;
mod hosts;
mod mqtt;
mod pipeline;
mod postgres;
mod queue;
mod robust;
mod runs;
mod tcp;
