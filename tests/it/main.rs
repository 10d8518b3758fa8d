//! Integration tests: one binary (see conventions.md).

mod golden;
