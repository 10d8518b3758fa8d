//! Integration tests: one binary (see conventions.md).

mod cli;
mod conformance;
mod golden;
mod pipeline;
mod tcp;
