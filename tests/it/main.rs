//! Integration tests: one binary (see conventions.md).

mod cli;
mod golden;
mod pipeline;
mod tcp;
