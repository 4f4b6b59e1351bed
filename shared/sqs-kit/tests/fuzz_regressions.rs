//! The fuzz targets' checks (fuzz/checks.rs) over their seed corpus (fuzz/seeds/<target>/) and
//! every crash kept as a regression (fuzz/regressions/<target>/), on stable Rust, as part of the
//! normal `cargo test`. The fuzzing itself is `scripts/fuzz` (nightly, cargo-fuzz).

#[path = "../../../fuzz/checks.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted; none when the folder does not exist.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target`'s check on each of its seeds and regressions; fails naming every file whose
/// check panicked. A target must have seeds, so that this never passes by checking nothing.
fn replay(target: &str) {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target named {target} in fuzz/checks.rs"));
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ has no files");
    let regressions = inputs("regressions", target);

    let mut failed = Vec::new();
    for file in seeds.iter().chain(&regressions) {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failed.push(format!("{}: {message}", file.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs of fuzz target {target} fail its checks:\n{}",
        failed.len(),
        seeds.len() + regressions.len(),
        failed.join("\n")
    );
}

#[test]
fn sqs_event_seeds_and_regressions() {
    replay("sqs_event");
}

#[test]
fn sns_envelope_seeds_and_regressions() {
    replay("sns_envelope");
}

#[test]
fn order_json_seeds_and_regressions() {
    replay("order_json");
}

#[test]
fn order_structured_seeds_and_regressions() {
    replay("order_structured");
}

/// Every folder under fuzz/seeds/ and fuzz/regressions/ belongs to a target that has a test
/// above, so that a misnamed folder is not silently skipped.
#[test]
fn every_corpus_folder_names_a_target() {
    let tested = ["sqs_event", "sns_envelope", "order_json", "order_structured"];
    let targets: Vec<&str> = checks::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(targets, tested, "a fuzz target was added or renamed: add a test for it here");
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else { continue };
        for entry in entries {
            let entry = entry.unwrap();
            if entry.path().is_dir() {
                let name = entry.file_name().to_string_lossy().into_owned();
                assert!(targets.contains(&name.as_str()), "fuzz/{kind}/{name}/ is not a fuzz target ({targets:?})");
            }
        }
    }
}
