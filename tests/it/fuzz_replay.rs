//! The fuzz targets' kept corpus and every crash fuzzing found (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`), replayed through the same target bodies on every test run.

use std::path::Path;

#[test]
fn the_fuzz_corpus_and_the_crashes_found_replay_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (name, target) in streamprep_fuzz_targets::TARGETS {
        let mut inputs = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for e in entries.flatten() {
                let data = std::fs::read(e.path()).expect("read input");
                target(&data);
                inputs += 1;
            }
        }
        assert!(inputs > 0, "no kept corpus for the fuzz target {name}");
        replayed += inputs;
    }
    assert!(replayed > 0);
}
