//! What the commands print on stdout, written so that a closed pipe or a full disk is an error
//! the command reports, not a panic.
//!
//! `println!` panics when the write fails (exit 101, a backtrace hint, and for `replay` after
//! the batch's effects were committed). Rust programs ignore SIGPIPE, so `cmd | head -c0` shows
//! up here as `EPIPE` rather than killing the process; every stdout write of the run modes and
//! the commands goes through [`print_json`] or [`print_json_pretty`] instead.

use std::io::Write;

use serde::Serialize;

/// Standard output could not take a command's result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// Writing or flushing stdout failed: a closed pipe (`EPIPE`), a full disk.
    #[error("cannot write to standard output: {0}")]
    Write(std::io::Error),
    /// The value could not be serialized (a map with keys that are not strings, say); nothing
    /// was written.
    #[error("cannot serialize the output as JSON: {0}")]
    Serialize(serde_json::Error),
}

/// `value` as one line of compact JSON on stdout, flushed.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), OutputError> {
    write_line(&serde_json::to_string(value).map_err(OutputError::Serialize)?)
}

/// `value` as indented JSON on stdout, flushed.
pub fn print_json_pretty<T: Serialize + ?Sized>(value: &T) -> Result<(), OutputError> {
    write_line(&serde_json::to_string_pretty(value).map_err(OutputError::Serialize)?)
}

fn write_line(text: &str) -> Result<(), OutputError> {
    let mut stdout = std::io::stdout().lock();
    // Flushed here, not when the process exits: a full disk only fails at the flush, and then
    // the error could no longer be reported.
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.write_all(b"\n")).and_then(|()| stdout.flush()).map_err(OutputError::Write)
}

/// A line for the operator on stderr. Unlike `eprintln!` it never panics: when stderr itself
/// is gone there is nowhere left to report to, and the exit status still tells.
pub fn note(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes()).and_then(|()| stderr.write_all(b"\n"));
}
