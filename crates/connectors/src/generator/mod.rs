//! Simulated sources. [`DavisSource`] imitates the Davis weather station of the paper.

mod davis;

pub use davis::{DavisGenerator, DavisSource, Pacer, Stations, FIELDS};
