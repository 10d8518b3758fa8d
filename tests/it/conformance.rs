//! Every registered step passes the same checks: an empty message, a message without numeric
//! columns, a one-row message, and an output schema that depends only on the input schema
//! (a stream keeps one schema).

use streamprep_ops::registry::{build_chain, StepKind, STEPS};
use streamprep_testkit::batch_from_json;

fn transforms() -> impl Iterator<Item = &'static str> {
    STEPS
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Transform(_) | StepKind::WithOptions(_)))
        .map(|s| s.name)
}

#[test]
fn every_step_handles_empty_messages_and_keeps_a_stable_schema() {
    let a = batch_from_json(
        r#"[{"t":"x","f":1.5,"i":3},{"t":"y","f":-2.0,"i":4},{"t":"y","f":-2.0,"i":4}]"#,
    );
    let b = batch_from_json(r#"[{"t":"z","f":8.0,"i":-1},{"t":"w","f":0.25,"i":9}]"#);
    let strings_only = batch_from_json(r#"[{"t":"x"},{"t":"y"}]"#);
    for name in transforms() {
        let mut step = build_chain(&[name]).unwrap().remove(0);
        if step.holds_rows() {
            // a step that holds rows to the end of the stream (resample) reshapes the stream by
            // time: its own checks below
            continue;
        }
        let out_a = step
            .apply(a.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let out_b = step
            .apply(b.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            out_a.schema(),
            out_b.schema(),
            "{name}: output schema depends on the data"
        );

        let empty = a.slice(0, 0);
        let out = step
            .apply(empty)
            .unwrap_or_else(|e| panic!("{name} on an empty message: {e}"));
        let want_rows = if name == "aggregated_sum" { 1 } else { 0 };
        assert_eq!(out.num_rows(), want_rows, "{name} on an empty message");

        let one = step
            .apply(a.slice(1, 1))
            .unwrap_or_else(|e| panic!("{name} on one row: {e}"));
        assert_eq!(one.num_rows(), 1, "{name} on one row");

        let out = step
            .apply(strings_only.clone())
            .unwrap_or_else(|e| panic!("{name} without numeric columns: {e}"));
        if name != "aggregated_sum" {
            assert_eq!(
                out, strings_only,
                "{name} changed a message without numeric columns"
            );
        }
    }
}

/// Steps that hold rows until the end of the stream (resample): an empty message gives none,
/// the output's schema depends only on the input's, and the end gives what is held.
#[test]
fn steps_holding_rows_keep_a_stable_schema_and_give_the_rest_at_the_end() {
    let a = batch_from_json(
        r#"[{"ts":"2026-01-01T00:00:00","t":"x","f":1.5,"i":3},{"ts":"2026-01-01T00:00:01.5","t":"y","f":-2.0,"i":4}]"#,
    );
    let b = batch_from_json(
        r#"[{"ts":"2026-01-01T00:00:03","t":"z","f":8.0,"i":-1},{"ts":"2026-01-01T00:00:04","t":"w","f":0.25,"i":9}]"#,
    );
    let mut seen = 0;
    for name in transforms() {
        let mut step = build_chain(&[name]).unwrap().remove(0);
        if !step.holds_rows() {
            continue;
        }
        seen += 1;
        let empty = step
            .apply(a.slice(0, 0))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(empty.num_rows(), 0, "{name} on an empty message");
        let out_a = step
            .apply(a.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let out_b = step
            .apply(b.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            out_a.schema(),
            out_b.schema(),
            "{name}: schema depends on the data"
        );
        let end = step
            .finish()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name} held nothing at the end"));
        assert!(end.num_rows() > 0, "{name}");
        assert_eq!(end.schema(), out_b.schema(), "{name}: the end's schema");
        assert!(
            step.finish().expect("again").is_none(),
            "{name}: the end once"
        );
    }
    assert!(seen >= 1);
}
