//! The seeds and case counts of the property tests: fixed with `CI=true` so that a CI run is
//! reproducible, random otherwise, and `SQS_KIT_MODEL_SEED` / `SQS_KIT_MODEL_CASES` to replay
//! a printed seed or change the count.

use std::hash::{BuildHasher, Hasher};

/// The seed to run with, and where it came from (for the line that prints it).
pub fn seed(ci_seed: [u8; 32]) -> ([u8; 32], &'static str) {
    if let Ok(hex) = std::env::var("SQS_KIT_MODEL_SEED") {
        return (parse(&hex), "from SQS_KIT_MODEL_SEED");
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        return (ci_seed, "fixed, CI=true");
    }
    let mut seed = [0u8; 32];
    for (index, chunk) in seed.chunks_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(index);
        hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    (seed, "random")
}

fn parse(hex: &str) -> [u8; 32] {
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok())).collect();
    bytes
        .and_then(|bytes| bytes.try_into().ok())
        .unwrap_or_else(|| panic!("SQS_KIT_MODEL_SEED must be 64 hex digits (32 bytes), as a run prints it; got {hex:?}"))
}

/// A seed as a run prints it and `SQS_KIT_MODEL_SEED` takes it.
pub fn hex(seed: &[u8]) -> String {
    seed.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `default`, unless `SQS_KIT_MODEL_CASES` says otherwise.
pub fn case_count(default: u32) -> u32 {
    match std::env::var("SQS_KIT_MODEL_CASES") {
        Ok(count) => count.parse().unwrap_or_else(|_| panic!("SQS_KIT_MODEL_CASES must be a whole number, not {count:?}")),
        Err(_) => default,
    }
}

/// Prints a property's summary (its case count and seed) where the test command's output shows
/// it: straight to stderr, past the test harness, which keeps what `println!` and `eprintln!`
/// write for failing tests only.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
