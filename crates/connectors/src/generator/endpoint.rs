//! `generator:davis?...` as an endpoint: how it parses and opens.

use std::sync::Arc;

use streamprep_core::{IoError, Source};

use super::DavisSource;
use crate::registry::Connector;
use crate::spec::{FileFormat, SourceOptions};

/// The simulated Davis weather station.
#[derive(Debug, PartialEq)]
pub struct GeneratorEndpoint {
    /// Rows to produce.
    pub rows: u64,
    /// Random seed.
    pub seed: u64,
    /// Rows a second (as fast as read when `None`).
    pub rate: Option<f64>,
    /// Stations whose rows interleave.
    pub stations: usize,
}

/// `generator:davis?rows=N&seed=S&rate=R&stations=K`.
pub fn parse(
    rest: &str,
    _: Option<FileFormat>,
) -> Result<(Arc<dyn Connector>, FileFormat), String> {
    let (kind, query) = rest.split_once('?').unwrap_or((rest, ""));
    if kind != "davis" {
        return Err("the only generator is 'davis' (generator:davis?rows=N&seed=S)".into());
    }
    let (mut rows, mut seed, mut rate, mut stations) = (None, 1u64, None, 1usize);
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("'{kv}' is not key=value"))?;
        let n = || -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("'{k}' needs a whole number, got '{v}'"))
        };
        match k {
            "rows" => rows = Some(n()?),
            "seed" => seed = n()?,
            "stations" => stations = n()?.clamp(1, 10_000) as usize,
            "rate" => {
                let r: f64 = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| r.is_finite() && *r > 0.0)
                    .ok_or_else(|| format!("rate is rows a second (> 0), got '{v}'"))?;
                rate = Some(r);
            }
            _ => {
                return Err(format!(
                    "unknown generator option '{k}' (rows, seed, rate, stations)"
                ))
            }
        }
    }
    // paced, it runs until stopped unless told how many rows
    let rows = rows.unwrap_or(if rate.is_some() { u64::MAX } else { 100_000 });
    Ok((
        Arc::new(GeneratorEndpoint {
            rows,
            seed,
            rate,
            stations,
        }),
        FileFormat::Ndjson,
    ))
}

impl Connector for GeneratorEndpoint {
    fn open_source(&self, _: FileFormat, opts: SourceOptions) -> Result<Box<dyn Source>, IoError> {
        let g = DavisSource::stations(self.seed, self.rows, self.stations);
        Ok(match self.rate {
            // live: paced, each row stamped with the wall clock
            Some(r) => Box::new(crate::paced::Paced::new(
                Box::new(g.live()),
                r,
                opts.stop.clone(),
            )),
            None => Box::new(g),
        })
    }
}
