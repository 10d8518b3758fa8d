//! Simulated sources. [`DavisSource`] imitates the Davis weather station of the paper.

mod davis;
pub mod endpoint;

pub use davis::{civil_from_days, DavisGenerator, DavisSource, Pacer, Stations, FIELDS};
