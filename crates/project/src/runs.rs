//! The runs of one process, for a host of many (the web server; `run --metrics-addr` with
//! one): one `/metrics` text for all of them, each sample labelled by its pipeline, and the
//! cores they keep busy together.
//!
//! How runs share the cores: each run's pool has its own worker threads (`workers`, by default
//! one a core), and the OS schedules every run's threads on the same cores. The capacity
//! figures of a run (`rho`, the planner's recommendation) assume its workers have their cores;
//! what the machine carries is the sum over the runs of measured rho x workers, the
//! `streamprep_cores_busy` gauge, which should stay under the number of cores (0.7 of them for
//! the latency the planner predicts).

use std::sync::{Arc, Mutex};

use crate::launch::RunHandle;

/// A set of runs; cheap to clone, shared by whoever watches them.
#[derive(Clone, Default)]
pub struct Runs {
    runs: Arc<Mutex<Vec<RunHandle>>>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.list()).finish()
    }
}

impl Runs {
    /// Watch a run (kept until [`Runs::forget`]).
    pub fn add(&self, run: RunHandle) {
        self.lock().push(run);
    }

    /// Stop watching a run.
    pub fn forget(&self, id: u64) {
        self.lock().retain(|r| r.id() != id);
    }

    /// The runs watched.
    pub fn list(&self) -> Vec<RunHandle> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RunHandle>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cores kept busy by the runs that have not ended: the sum of measured rho x workers.
    pub fn cores_busy(&self) -> f64 {
        self.list()
            .iter()
            .filter(|r| !r.state().is_over())
            .fold(0.0, |sum, r| {
                let l = r.live();
                sum + l.rho_measured * l.workers as f64
            })
    }

    /// Every run's metrics in Prometheus' text format, each sample labelled
    /// `pipeline="NAME",run="ID"`, each family's HELP and TYPE once; then
    /// `streamprep_cores_busy`.
    pub fn prometheus(&self) -> String {
        // families in the order first seen: (HELP and TYPE lines, samples)
        let mut families: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for r in self.list() {
            let labels = format!("pipeline=\"{}\",run=\"{}\"", escape(r.name()), r.id());
            let mut current: Option<usize> = None;
            for line in r.prometheus().lines() {
                if let Some(rest) = line
                    .strip_prefix("# HELP ")
                    .or_else(|| line.strip_prefix("# TYPE "))
                {
                    let name = rest.split(' ').next().unwrap_or_default().to_string();
                    let i = match families.iter().position(|f| f.0 == name) {
                        Some(i) => i,
                        None => {
                            families.push((name, Vec::new(), Vec::new()));
                            families.len() - 1
                        }
                    };
                    if families[i].1.len() < 2 && !families[i].1.iter().any(|l| l == line) {
                        families[i].1.push(line.to_string());
                    }
                    current = Some(i);
                } else if let (Some(i), false) = (current, line.is_empty()) {
                    families[i].2.push(label(line, &labels));
                }
            }
        }
        let mut out = String::new();
        for (_, head, samples) in &families {
            for l in head.iter().chain(samples) {
                out.push_str(l);
                out.push('\n');
            }
        }
        out.push_str(
            "# HELP streamprep_cores_busy Cores kept busy by the running pipelines (sum of measured rho x workers).\n\
             # TYPE streamprep_cores_busy gauge\n",
        );
        out.push_str(&format!("streamprep_cores_busy {}\n", self.cores_busy()));
        out
    }
}

/// A label value as Prometheus' text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `name{a="b"} v` -> `name{LABELS,a="b"} v`; `name v` -> `name{LABELS} v`.
fn label(sample: &str, labels: &str) -> String {
    let name_end = sample.find(['{', ' ']).unwrap_or(sample.len());
    let (name, rest) = sample.split_at(name_end);
    match rest.strip_prefix('{') {
        Some(inner) => format!("{name}{{{labels},{inner}"),
        None => format!("{name}{{{labels}}}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_labelled_and_families_named_once() {
        assert_eq!(
            label("streamprep_rows_in_total 5", "pipeline=\"a\""),
            "streamprep_rows_in_total{pipeline=\"a\"} 5"
        );
        assert_eq!(
            label("x{step=\"abs\",quantile=\"0.5\"} 1", "pipeline=\"a\""),
            "x{pipeline=\"a\",step=\"abs\",quantile=\"0.5\"} 1"
        );
        assert_eq!(escape("we\"ird\\\n"), "we\\\"ird\\\\\\n");
        let runs = Runs::default();
        for name in ["one", "two"] {
            let spec = crate::ProjectSpec::from_toml(&format!(
                "name = \"{name}\"\nsource = \"generator:davis?rows=50\"\nchain = [\"abs\"]\nbuffer = 10\nsink = \"file:/dev/null\"\nsink_format = \"ndjson\"\ndead_letter = \"file:/dev/null\"\n"
            ))
            .expect("spec");
            let run = crate::launch(&spec).expect("launch");
            run.wait().expect("runs");
            runs.add(run);
        }
        let text = runs.prometheus();
        assert_eq!(
            text.matches("# TYPE streamprep_rows_in_total counter")
                .count(),
            1,
            "{text}"
        );
        for name in ["one", "two"] {
            assert!(
                text.lines().any(|l| l.starts_with(&format!(
                    "streamprep_rows_in_total{{pipeline=\"{name}\",run="
                )) && l.ends_with(" 50")),
                "{text}"
            );
        }
        assert!(text.contains("streamprep_cores_busy 0\n"), "{text}");
        // every sample line carries the pipeline label
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                l.contains("pipeline=") || l.starts_with("streamprep_cores_busy"),
                "{l}"
            );
        }
        runs.forget(runs.list()[0].id());
        assert_eq!(runs.list().len(), 1);
    }
}
