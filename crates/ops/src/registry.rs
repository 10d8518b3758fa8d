//! The one explicit list of steps. It drives chain parsing, `streamprep list`, and the test
//! that every step is documented and unique.

use streamprep_core::Step;
use thiserror::Error;

use crate::*;

/// How a registry entry is used.
#[derive(Clone, Copy)]
pub enum StepKind {
    /// `prepare` or `result`: implied at the ends of every chain, built by the engine.
    Boundary,
    /// A transform step, built fresh for each chain instance.
    Transform(fn() -> Box<dyn Step>),
}

/// One registry entry.
#[derive(Clone, Copy)]
pub struct StepInfo {
    /// The step's name in chains and project files.
    pub name: &'static str,
    /// One line: what it does.
    pub summary: &'static str,
    /// The pandas / scikit-learn expression it equals.
    pub equals: &'static str,
    /// How it is built.
    pub kind: StepKind,
    /// The scikit-learn class whose input check this step shares: it refuses a message holding
    /// an infinite value, as scikit-learn's `check_array` does (`ValueError: Input X contains
    /// infinity`). `None` for pandas steps, which take infinities as values.
    pub refuses_infinity: Option<&'static str>,
}

fn boxed<S: Step + Default + 'static>() -> Box<dyn Step> {
    Box::new(S::default())
}

/// Every step streamprep knows, in the order `streamprep list` shows them.
pub const STEPS: &[StepInfo] = &[
    StepInfo { name: "prepare", summary: "decode the message's rows (NDJSON, JSON arrays, CSV; optionally zlib+base64) into a batch; bad rows go to dead letters", equals: "pd.DataFrame(rows)", kind: StepKind::Boundary, refuses_infinity: None },
    StepInfo { name: "abs", summary: "absolute value of numeric columns", equals: "df[num].abs()", kind: StepKind::Transform(boxed::<Abs>), refuses_infinity: None },
    StepInfo { name: "aggregated_sum", summary: "sum of each numeric column as a one-row message", equals: "df[num].sum()", kind: StepKind::Transform(boxed::<AggregatedSum>), refuses_infinity: None },
    StepInfo { name: "drop_duplicates", summary: "drop repeated rows (all columns), keep the first", equals: "df.drop_duplicates()", kind: StepKind::Transform(boxed::<DropDuplicates>), refuses_infinity: None },
    StepInfo { name: "handling_missing", summary: "drop rows with a missing value in any column", equals: "df.dropna()", kind: StepKind::Transform(boxed::<HandlingMissing>), refuses_infinity: None },
    StepInfo { name: "fillna_mean", summary: "fill missing numeric values with the column mean", equals: "df[num].fillna(df[num].mean())", kind: StepKind::Transform(boxed::<FillnaMean>), refuses_infinity: None },
    StepInfo { name: "fillna_median", summary: "fill missing numeric values with the column median", equals: "df[num].fillna(df[num].median())", kind: StepKind::Transform(boxed::<FillnaMedian>), refuses_infinity: None },
    StepInfo { name: "fillna_zeros", summary: "fill missing numeric values with 0", equals: "df[num].fillna(0)", kind: StepKind::Transform(boxed::<FillnaZeros>), refuses_infinity: None },
    StepInfo { name: "max_abs_scaler", summary: "divide each numeric column by its largest absolute value", equals: "MaxAbsScaler().fit_transform", kind: StepKind::Transform(boxed::<MaxAbsScaler>), refuses_infinity: Some("MaxAbsScaler") },
    StepInfo { name: "min_max_scaler_0_1", summary: "scale each numeric column to [0, 1]", equals: "MinMaxScaler((0, 1)).fit_transform", kind: StepKind::Transform(boxed::<MinMaxScaler01>), refuses_infinity: Some("MinMaxScaler") },
    StepInfo { name: "min_max_scaler_m1_1", summary: "scale each numeric column to [-1, 1]", equals: "MinMaxScaler((-1, 1)).fit_transform", kind: StepKind::Transform(boxed::<MinMaxScalerM11>), refuses_infinity: Some("MinMaxScaler") },
    StepInfo { name: "normalizer", summary: "scale each row of numeric values to unit l2 norm (refuses missing values)", equals: "Normalizer().fit_transform", kind: StepKind::Transform(boxed::<Normalizer>), refuses_infinity: None },
    StepInfo { name: "quantile_transformer_normal", summary: "map numeric columns to a standard normal via their quantiles", equals: "QuantileTransformer(n_quantiles=min(1000, n), output_distribution='normal').fit_transform", kind: StepKind::Transform(boxed::<QuantileTransformerNormal>), refuses_infinity: Some("QuantileTransformer") },
    StepInfo { name: "quantile_transformer_uniform", summary: "map numeric columns to [0, 1] via their quantiles", equals: "QuantileTransformer(n_quantiles=min(1000, n)).fit_transform", kind: StepKind::Transform(boxed::<QuantileTransformerUniform>), refuses_infinity: Some("QuantileTransformer") },
    StepInfo { name: "robust_scaler", summary: "centre on the median, scale by the interquartile range", equals: "RobustScaler().fit_transform", kind: StepKind::Transform(boxed::<RobustScaler>), refuses_infinity: Some("RobustScaler") },
    StepInfo { name: "standard_scaler", summary: "centre on the mean, scale by the population standard deviation", equals: "StandardScaler().fit_transform", kind: StepKind::Transform(boxed::<StandardScaler>), refuses_infinity: Some("StandardScaler") },
    StepInfo { name: "result", summary: "encode the batch for the sinks and hand it over", equals: "df.to_json(orient='records', lines=True)", kind: StepKind::Boundary, refuses_infinity: None },
];

/// A chain that cannot be built.
#[derive(Debug, Error, PartialEq)]
pub enum ChainError {
    /// A name that is not in the registry.
    #[error("unknown step '{0}' ({hint}see `streamprep list`)", hint = did_you_mean(.0))]
    Unknown(String),
    /// `prepare` or `result` anywhere but at its end of the chain.
    #[error("'{0}' may only open (prepare) or close (result) a chain")]
    Misplaced(String),
}

/// `did you mean 'x'? ` for the registered step closest to a misspelt name (at most a third of
/// its letters off), or nothing.
fn did_you_mean(name: &str) -> String {
    STEPS
        .iter()
        .map(|s| (edit_distance(name, s.name), s.name))
        .filter(|(d, s)| *d > 0 && *d <= s.len().max(name.len()) / 3)
        .min()
        .map_or(String::new(), |(_, s)| format!("did you mean '{s}'? "))
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Look a step up by name.
pub fn find(name: &str) -> Option<&'static StepInfo> {
    STEPS.iter().find(|s| s.name == name)
}

/// Check a chain and return its transform steps (without the implied `prepare`/`result`).
pub fn validate_chain<S: AsRef<str>>(names: &[S]) -> Result<Vec<&'static StepInfo>, ChainError> {
    let mut out = Vec::new();
    let last = names.len().saturating_sub(1);
    for (i, n) in names.iter().enumerate() {
        let n = n.as_ref().trim();
        let info = find(n).ok_or_else(|| ChainError::Unknown(n.to_string()))?;
        match info.kind {
            StepKind::Boundary => {
                let ok = (n == "prepare" && i == 0) || (n == "result" && i == last);
                if !ok {
                    return Err(ChainError::Misplaced(n.to_string()));
                }
            }
            StepKind::Transform(_) => out.push(info),
        }
    }
    Ok(out)
}

/// Build fresh instances of a chain's transform steps.
pub fn build_chain<S: AsRef<str>>(names: &[S]) -> Result<Vec<Box<dyn Step>>, ChainError> {
    Ok(validate_chain(names)?
        .into_iter()
        .filter_map(|i| match (i.kind, i.refuses_infinity) {
            (StepKind::Transform(build), None) => Some(build()),
            (StepKind::Transform(build), Some(class)) => Some(Box::new(RefuseInfinity {
                inner: build(),
                class,
            }) as Box<dyn Step>),
            (StepKind::Boundary, _) => None,
        })
        .collect())
}

/// scikit-learn's input check (`check_array(..., ensure_all_finite="allow-nan")`) in front of
/// a step: a message with an infinite value in a numeric column is refused whole, with the
/// column and row, as scikit-learn raises `ValueError` for it. NaN (missing) passes.
struct RefuseInfinity {
    inner: Box<dyn Step>,
    class: &'static str,
}

impl Step for RefuseInfinity {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn apply(
        &mut self,
        batch: streamprep_core::Batch,
    ) -> Result<streamprep_core::Batch, streamprep_core::StepError> {
        let schema = batch.schema();
        for (c, f) in schema.fields().iter().enumerate() {
            let Some(a) = batch
                .column(c)
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
            else {
                continue; // only floats hold infinities
            };
            if let Some(row) = a.iter().position(|x| x.is_some_and(f64::is_infinite)) {
                return Err(streamprep_core::StepError::BadInput {
                    step: self.inner.name(),
                    reason: format!(
                        "column '{}' holds {} (row {row} of the message); scikit-learn's {} \
                         refuses it (ValueError: Input X contains infinity or a value too large \
                         for dtype('float64')). Clip or drop such values before this step",
                        f.name(),
                        if a.value(row) > 0.0 {
                            "+infinity"
                        } else {
                            "-infinity"
                        },
                        self.class
                    ),
                });
            }
        }
        self.inner.apply(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_documented_and_match_the_step() {
        let mut seen = std::collections::HashSet::new();
        for s in STEPS {
            assert!(seen.insert(s.name), "duplicate {}", s.name);
            assert!(
                !s.summary.is_empty() && !s.equals.is_empty(),
                "{} undocumented",
                s.name
            );
            if let StepKind::Transform(build) = s.kind {
                assert_eq!(build().name(), s.name);
            }
        }
        // The issue says "sixteen" but lists prepare, result and 15 transforms (the paper lists 15 too).
        assert_eq!(STEPS.len(), 17);
    }

    #[test]
    fn chains_are_checked() {
        assert_eq!(build_chain(&["prepare", "abs", "result"]).unwrap().len(), 1);
        assert_eq!(
            build_chain(&["nope"]).err(),
            Some(ChainError::Unknown("nope".into()))
        );
        assert_eq!(
            build_chain(&["abs", "prepare"]).err(),
            Some(ChainError::Misplaced("prepare".into()))
        );
    }

    #[test]
    fn a_misspelt_step_gets_the_closest_name() {
        let msg = |n: &str| ChainError::Unknown(n.into()).to_string();
        assert_eq!(
            msg("fillna_zero"),
            "unknown step 'fillna_zero' (did you mean 'fillna_zeros'? see `streamprep list`)"
        );
        assert!(msg("standard_scalar").contains("did you mean 'standard_scaler'?"));
        assert!(msg("min_max_scaler_01").contains("did you mean 'min_max_scaler_0_1'?"));
        // nothing close: no guess
        assert_eq!(msg("nope"), "unknown step 'nope' (see `streamprep list`)");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
