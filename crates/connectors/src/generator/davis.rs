//! A Davis-weather-station-like row generator: 33 fields a row (a timestamp and 6 other
//! strings, 26 numeric of which 7 integers), one row a simulated minute, daily cycles plus
//! random walks, about 2% missing numeric values and about 1% exact duplicate rows.
//! Deterministic for a seed (its own SplitMix64, so output never changes with a crate update).

use std::io::Write;

use streamprep_core::{IoError, Read, RowFormat, Source, SourceKind};

/// Field kinds, in row order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Str,
    /// A float with this many decimals.
    Float(usize),
    /// An integer.
    Int,
}

/// The 33 fields of a row, in order.
pub const FIELDS: [(&str, Kind); 33] = [
    ("ts", Kind::Str),
    ("station", Kind::Str),
    ("temp_out", Kind::Float(1)),
    ("temp_in", Kind::Float(1)),
    ("dew_point", Kind::Float(1)),
    ("heat_index", Kind::Float(1)),
    ("wind_chill", Kind::Float(1)),
    ("hum_out", Kind::Int),
    ("hum_in", Kind::Int),
    ("wind_dir", Kind::Str),
    ("wind_dir_avg", Kind::Str),
    ("thsw_index", Kind::Float(1)),
    ("wind_speed", Kind::Float(1)),
    ("wind_speed_10min", Kind::Float(1)),
    ("wind_gust", Kind::Float(1)),
    ("barometer", Kind::Float(1)),
    ("rain_rate", Kind::Float(1)),
    ("rain_day", Kind::Float(1)),
    ("wind_dir_deg", Kind::Int),
    ("solar_rad", Kind::Int),
    ("bar_trend", Kind::Str),
    ("forecast", Kind::Str),
    ("rain_month", Kind::Float(1)),
    ("rain_year", Kind::Float(1)),
    ("et_day", Kind::Float(2)),
    ("uv_index", Kind::Float(1)),
    ("soil_temp", Kind::Float(1)),
    ("batt_volt", Kind::Float(2)),
    ("storm_rain", Kind::Float(1)),
    ("leaf_wet", Kind::Int),
    ("tx_battery", Kind::Int),
    ("forecast_icon", Kind::Int),
    ("uv_level", Kind::Str),
];

const DIRS: [&str; 16] = [
    "N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW",
    "NNW",
];

/// The row generator.
#[derive(Debug, Clone)]
pub struct DavisGenerator {
    state: u64,
    minute: u64,
    temp_walk: f64,
    baro: f64,
    wind: f64,
    rain_day: f64,
    rain_year: f64,
    last: Vec<u8>,
    /// The station's name (the `station` field).
    pub station: String,
    /// Probability that a numeric value is missing.
    pub missing: f64,
    /// Probability that a row repeats the previous one exactly.
    pub duplicate: f64,
    /// Stamp `ts` with the wall clock (UTC, milliseconds) instead of the simulated minute
    /// from 2019-01-01: live rows carry the time they were made.
    pub wall_clock: bool,
}

impl DavisGenerator {
    /// A generator for `seed`, 2% missing values, 1% duplicates.
    pub fn new(seed: u64) -> Self {
        DavisGenerator {
            state: seed ^ 0x5DEE_CE66_D1CE_4E5B,
            minute: 0,
            temp_walk: 0.0,
            baro: 1013.0,
            wind: 3.0,
            rain_day: 0.0,
            rain_year: 120.0,
            last: Vec::new(),
            station: "aalen".into(),
            missing: 0.02,
            duplicate: 0.01,
            wall_clock: false,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Append one NDJSON row (without newline) to `out`.
    pub fn write_row(&mut self, out: &mut Vec<u8>) {
        if !self.last.is_empty() && self.uniform() < self.duplicate {
            out.extend_from_slice(&self.last);
            return;
        }
        let start = out.len();
        let m = self.minute;
        self.minute += 1;
        let day_phase = (m % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
        self.temp_walk = (self.temp_walk + 0.05 * self.normal()).clamp(-8.0, 8.0);
        self.baro = (self.baro + 0.02 * self.normal()).clamp(960.0, 1050.0);
        self.wind = (self.wind + 0.3 * self.normal()).clamp(0.0, 30.0);
        let raining = self.uniform() < 0.05;
        let rain_rate = if raining { self.uniform() * 12.0 } else { 0.0 };
        self.rain_day = if m.is_multiple_of(1440) {
            0.0
        } else {
            self.rain_day + rain_rate / 60.0
        };
        self.rain_year += rain_rate / 60.0;
        let temp = 12.0 - 6.0 * day_phase.cos() + self.temp_walk;
        let hum = (70.0 + 15.0 * day_phase.cos() + 3.0 * self.normal()).clamp(5.0, 100.0);
        let dew = temp - (100.0 - hum) / 5.0;
        let dir_deg = ((225.0 + 40.0 * self.normal()).rem_euclid(360.0)) as i64;
        let solar = ((-(day_phase.cos())).max(0.0) * 850.0 * (0.7 + 0.3 * self.uniform())) as i64;
        let gust = self.wind + self.uniform() * 6.0;
        let (y, mo, d) = civil_from_days((m / 1440) as i64 + 17897); // 2019-01-01
        let values: [f64; 26] = [
            temp,
            21.0 + 1.5 * self.normal(),
            dew,
            temp + (hum - 40.0).max(0.0) / 20.0,
            temp - self.wind / 4.0,
            temp + solar as f64 / 200.0,
            self.wind,
            self.wind * 0.9 + 0.1 * self.uniform(),
            gust,
            self.baro,
            rain_rate,
            self.rain_day,
            self.rain_day * 10.0 + 3.0,
            self.rain_year,
            solar as f64 / 4000.0,
            solar as f64 / 90.0,
            temp * 0.6 + 4.0,
            4.6 + 0.05 * self.normal(),
            rain_rate * 2.0,
            hum,
            (40.0 + 5.0 * self.normal()).clamp(0.0, 100.0),
            dir_deg as f64,
            solar as f64,
            (self.uniform() * 15.0).floor(),
            (self.uniform() * 2.0).floor(),
            (self.uniform() * 10.0).floor(),
        ];
        let strings = [
            String::new(),
            self.station.clone(),
            DIRS[((dir_deg as usize * 16 + 180) / 360) % 16].to_string(),
            DIRS[((dir_deg as usize * 16 + 180) / 360 + 1) % 16].to_string(),
            ["Falling", "Steady", "Rising"][(self.next_u64() % 3) as usize].to_string(),
            ["Sunny", "Partly cloudy", "Cloudy", "Rain"][(self.next_u64() % 4) as usize]
                .to_string(),
            ["low", "moderate", "high"][((solar / 300) as usize).min(2)].to_string(),
        ];
        // numeric values in FIELDS order: floats first as listed, ints taken from the tail
        let mut fl = values[..19].iter();
        let mut ints = [
            values[19], values[20], values[21], values[22], values[23], values[24], values[25],
        ]
        .into_iter();
        let mut st = strings.iter();
        out.push(b'{');
        for (i, (name, kind)) in FIELDS.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = write!(out, "\"{name}\":");
            match kind {
                Kind::Str => {
                    let s = st.next().map(String::as_str).unwrap_or("");
                    if *name == "ts" && self.wall_clock {
                        let ms = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
                        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
                        let t = secs.rem_euclid(86_400);
                        let _ = write!(
                            out,
                            "\"{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z\"",
                            t / 3600,
                            t % 3600 / 60,
                            t % 60
                        );
                    } else if *name == "ts" {
                        let _ = write!(
                            out,
                            "\"{y:04}-{mo:02}-{d:02}T{:02}:{:02}:00\"",
                            (m / 60) % 24,
                            m % 60
                        );
                    } else {
                        let _ = write!(out, "\"{s}\"");
                    }
                }
                Kind::Float(dec) => {
                    let v = fl.next().copied().unwrap_or(0.0);
                    if self.uniform() < self.missing {
                        out.extend_from_slice(b"null");
                    } else {
                        let _ = write!(out, "{v:.dec$}");
                    }
                }
                Kind::Int => {
                    let v = ints.next().unwrap_or(0.0);
                    if self.uniform() < self.missing {
                        out.extend_from_slice(b"null");
                    } else {
                        let _ = write!(out, "{}", v as i64);
                    }
                }
            }
        }
        out.push(b'}');
        self.last.clear();
        self.last.extend_from_slice(&out[start..]);
    }
}

/// Days since 1970-01-01 to (year, month, day).
pub use streamprep_core::time::civil_from_days;

/// Names of simulated stations, in order (then `station-N`).
const STATIONS: [&str; 8] = [
    "aalen",
    "ulm",
    "heidenheim",
    "ellwangen",
    "schwaebisch-gmuend",
    "crailsheim",
    "noerdlingen",
    "giengen",
];

/// One or more stations whose rows interleave (station `i` is seeded with `seed + i`).
#[derive(Debug, Clone)]
pub struct Stations {
    gens: Vec<DavisGenerator>,
    next: usize,
}

impl Stations {
    /// `count` stations (at least 1) from `seed`; one station gives the same rows as
    /// [`DavisGenerator::new`]`(seed)`.
    pub fn new(seed: u64, count: usize) -> Self {
        let gens = (0..count.max(1))
            .map(|i| {
                let mut g = DavisGenerator::new(seed.wrapping_add(i as u64));
                g.station = STATIONS
                    .get(i)
                    .map_or_else(|| format!("station-{}", i + 1), |s| s.to_string());
                g
            })
            .collect();
        Stations { gens, next: 0 }
    }

    /// Stamp rows with the wall clock (see [`DavisGenerator::wall_clock`]).
    pub fn wall_clock(mut self) -> Self {
        for g in &mut self.gens {
            g.wall_clock = true;
        }
        self
    }

    /// Append the next row (without newline), from the next station in turn.
    pub fn write_row(&mut self, out: &mut Vec<u8>) {
        let i = self.next;
        self.next = (self.next + 1) % self.gens.len();
        self.gens[i].write_row(out);
    }
}

/// Paces rows at a steady rate on an absolute schedule: row `n` is due at `start + n / rate`,
/// so sleeping late never drifts the rate (late rows are caught up at once).
#[derive(Debug, Clone)]
pub struct Pacer {
    start: std::time::Instant,
    /// `(rows a second, seconds)` steps; the last rate goes on after its step.
    steps: Vec<(f64, f64)>,
    emitted: u64,
}

impl Pacer {
    /// `rate` rows a second from now.
    pub fn new(rate: f64) -> Self {
        Pacer::stepped(vec![(rate, f64::INFINITY)])
    }

    /// Rates in steps from now: `(rows a second, for how many seconds)`; the last rate goes
    /// on after its step. Rates must be positive.
    pub fn stepped(steps: Vec<(f64, f64)>) -> Self {
        Pacer {
            start: std::time::Instant::now(),
            steps,
            emitted: 0,
        }
    }

    /// When the next row is due.
    pub fn due(&self) -> std::time::Instant {
        let mut left = self.emitted as f64;
        let mut at = 0.0;
        for (i, &(rate, secs)) in self.steps.iter().enumerate() {
            let rows = rate * secs;
            if left < rows || i + 1 == self.steps.len() {
                at += left / rate;
                break;
            }
            left -= rows;
            at += secs;
        }
        self.start + std::time::Duration::from_secs_f64(at)
    }

    /// Count one row as sent.
    pub fn sent(&mut self) {
        self.emitted += 1;
    }

    /// Sleep until the next row is due (at most until `limit`); true if it is due now.
    pub fn wait(&self, limit: std::time::Instant) -> bool {
        let now = std::time::Instant::now();
        let due = self.due();
        if due <= now {
            return true;
        }
        std::thread::sleep(due.min(limit).saturating_duration_since(now));
        std::time::Instant::now() >= due
    }
}

/// The generator as a source of `rows` rows, as fast as they are read (wrap it in
/// [`crate::paced::Paced`] for a rate: `generator:davis?rate=`).
pub struct DavisSource {
    stations: Stations,
    left: u64,
}

impl DavisSource {
    /// `rows` rows from the generator seeded with `seed`.
    pub fn new(seed: u64, rows: u64) -> Self {
        DavisSource::stations(seed, rows, 1)
    }

    /// `rows` rows from `stations` stations.
    pub fn stations(seed: u64, rows: u64, stations: usize) -> Self {
        DavisSource {
            stations: Stations::new(seed, stations),
            left: rows,
        }
    }

    /// Rows stamped with the wall clock (a live, paced generator).
    pub fn live(mut self) -> Self {
        self.stations = self.stations.wall_clock();
        self
    }
}

impl Source for DavisSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Rows(RowFormat::Ndjson)
    }

    fn next_row(&mut self, buf: &mut Vec<u8>) -> Result<Read, IoError> {
        if self.left == 0 {
            return Ok(Read::End);
        }
        self.left -= 1;
        self.stations.write_row(buf);
        Ok(Read::Row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_deterministic_and_shaped_like_the_station() {
        let mut a = DavisGenerator::new(7);
        let mut b = DavisGenerator::new(7);
        let (mut ra, mut rb) = (Vec::new(), Vec::new());
        let (mut nulls, mut numeric, mut dups, mut prev) = (0, 0, 0, Vec::new());
        for _ in 0..20_000 {
            ra.clear();
            rb.clear();
            a.write_row(&mut ra);
            b.write_row(&mut rb);
            assert_eq!(ra, rb);
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&ra).unwrap();
            assert_eq!(v.len(), 33);
            let strings = v.values().filter(|x| x.is_string()).count();
            assert_eq!(strings, 7);
            nulls += v.values().filter(|x| x.is_null()).count();
            numeric += 26;
            if ra == prev {
                dups += 1;
            }
            prev = ra.clone();
        }
        let miss = nulls as f64 / numeric as f64;
        assert!((0.015..0.025).contains(&miss), "missing share {miss}");
        assert!((100..300).contains(&dups), "duplicates {dups}");
        assert_eq!(civil_from_days(17897), (2019, 1, 1));
        let mut live = Stations::new(1, 1).wall_clock();
        let mut row = Vec::new();
        live.write_row(&mut row);
        let v: serde_json::Value = serde_json::from_slice(&row).expect("json");
        let ts = v["ts"].as_str().expect("ts");
        assert!(
            ts.starts_with("20") && !ts.starts_with("2019-01-01") && ts.ends_with('Z'),
            "{ts}"
        );
    }
}
