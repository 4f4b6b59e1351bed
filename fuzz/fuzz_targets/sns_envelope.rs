#![no_main]
//! See `fuzz/checks.rs`, `sns_envelope`, for what this target checks.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sns_envelope(data));
