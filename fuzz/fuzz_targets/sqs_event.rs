#![no_main]
//! See `fuzz/checks.rs`, `sqs_event`, for what this target checks.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sqs_event(data));
