//! Simulated sources. [`DavisSource`] imitates the Davis weather station of the paper.

mod davis;
pub mod endpoint;

pub use davis::{DavisGenerator, DavisSource, Pacer, Stations, FIELDS};
