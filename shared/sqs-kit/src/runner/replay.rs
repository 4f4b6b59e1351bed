//! `replay`: one Lambda SQS event from a file or stdin, processed in-process as one invocation.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use serde::Deserialize;
use serde_json::Value;

use super::cli::ReplayArgs;
use super::exit;
use super::logging::Escaped;
use crate::batch::{BatchProcessor, BatchReport, Outcome};
use crate::handler::RecordService;
use crate::metrics::Metrics;
use crate::output::{note, print_json};
use crate::record::InvocationContext;

/// The largest message body SQS accepts, so the largest a real event can carry.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const BYTE_ORDER_MARK: char = '\u{feff}';

/// Why an event document (or another JSON input of a command) could not be used. Each message
/// names the input and what to fix; [`report_error`](super::report_error) exits with status 2
/// for it. `origin` is the file's path as given, or `standard input`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    // The causes are part of the message, not error sources: a one-line report would repeat them.
    /// The input could not be read (a missing file, a directory, bytes that are not UTF-8).
    #[error("cannot read {origin}: {cause}")]
    Read {
        /// The input.
        origin: String,
        /// Why it could not be read.
        cause: std::io::Error,
    },
    /// The event document is empty or only whitespace.
    #[error("{origin} is empty; expected a Lambda SQS event ({{\"Records\": [...]}})")]
    Empty {
        /// The input.
        origin: String,
    },
    /// The input is not JSON; the cause names the line and column.
    #[error("{origin} is not valid JSON: {cause}")]
    InvalidJson {
        /// The input.
        origin: String,
        /// serde_json's error.
        cause: serde_json::Error,
    },
    /// The input is JSON but not a Lambda SQS event: no `Records` list, a record from another
    /// event source, without a `messageId`, or with a body over [`MAX_BODY_BYTES`].
    #[error("{origin} is not a Lambda SQS event ({{\"Records\": [...]}}): {detail}")]
    NotAnSqsEvent {
        /// The input.
        origin: String,
        /// What is wrong with it, naming the record by its position.
        detail: String,
    },
    /// A [`load_json`] input is empty or only whitespace.
    #[error("{origin} is empty; expected {shape}")]
    EmptyDocument {
        /// The input.
        origin: String,
        /// The shape the caller expected, as it described it.
        shape: String,
    },
    /// A [`load_json`] input is JSON of another shape.
    #[error("{origin} does not have the expected shape {shape}: {detail}")]
    WrongShape {
        /// The input.
        origin: String,
        /// The shape the caller expected, as it described it.
        shape: String,
        /// serde's error: the field or value that did not fit.
        detail: String,
    },
}

/// Reads and checks an SQS event document; `-` is standard input.
pub fn load_event(path: &Path) -> Result<SqsEvent, InputError> {
    let (origin, text) = read_input(path)?;
    parse_event(&origin, &text)
}

/// Reads a JSON document of shape `T` from a file (`-` is standard input); `shape` describes
/// the expected shape for the error message, e.g. `[{"sku": ..., "available": ...}]`.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path, shape: &str) -> Result<T, InputError> {
    let (origin, text) = read_input(path)?;
    if text.trim().is_empty() {
        return Err(InputError::EmptyDocument { origin, shape: shape.to_owned() });
    }
    let document: Value = serde_json::from_str(&text).map_err(|cause| InputError::InvalidJson { origin: origin.clone(), cause })?;
    T::deserialize(&document).map_err(|e| InputError::WrongShape { origin, shape: shape.to_owned(), detail: e.to_string() })
}

fn read_input(path: &Path) -> Result<(String, String), InputError> {
    let mut text = String::new();
    let origin = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map_err(|cause| InputError::Read { origin: "standard input".into(), cause })?;
        "standard input".to_owned()
    } else {
        let origin = path.display().to_string();
        text = std::fs::read_to_string(path).map_err(|cause| InputError::Read { origin: origin.clone(), cause })?;
        origin
    };
    // Editors on Windows save UTF-8 with a byte-order mark, which JSON parsers refuse.
    if text.starts_with(BYTE_ORDER_MARK) {
        text.drain(..BYTE_ORDER_MARK.len_utf8());
    }
    Ok((origin, text))
}

/// Checks that `text` (read from `origin`, for messages) is a Lambda SQS event.
pub fn parse_event(origin: &str, text: &str) -> Result<SqsEvent, InputError> {
    if text.trim().is_empty() {
        return Err(InputError::Empty { origin: origin.to_owned() });
    }
    let document: Value = serde_json::from_str(text).map_err(|cause| InputError::InvalidJson { origin: origin.to_owned(), cause })?;
    let not_sqs = |detail: String| InputError::NotAnSqsEvent { origin: origin.to_owned(), detail };
    let records = document
        .get("Records")
        .ok_or_else(|| not_sqs("it has no \"Records\" field".into()))?
        .as_array()
        .ok_or_else(|| not_sqs("\"Records\" is not a list".into()))?;
    for (index, record) in records.iter().enumerate() {
        let source = record.get("eventSource").and_then(Value::as_str);
        if source.is_some_and(|source| source != "aws:sqs") {
            return Err(not_sqs(format!("record {index} comes from {}, not aws:sqs", source.unwrap_or_default())));
        }
        if record.get("messageId").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(not_sqs(format!("record {index} has no \"messageId\"")));
        }
        let body_size = record.get("body").and_then(Value::as_str).map_or(0, str::len);
        if body_size > MAX_BODY_BYTES {
            return Err(not_sqs(format!("record {index}'s body is {body_size} bytes; SQS delivers at most {MAX_BODY_BYTES} (1 MiB)")));
        }
    }
    SqsEvent::deserialize(&document).map_err(|e| not_sqs(e.to_string()))
}

pub(crate) async fn run<S: RecordService>(
    function_name: &str,
    processor: &BatchProcessor<S>,
    metrics: &Metrics,
    event: SqsEvent,
    args: ReplayArgs,
) -> ExitCode {
    let invocation = InvocationContext::with_remaining(function_name, replay_request_id(), Duration::from_millis(args.remaining_ms));
    let report = match processor.process(event, invocation).await {
        Ok(report) => report,
        Err(error) => {
            note(&format!("error: {error}"));
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let printed = print_json(&report.response());
    if let Some(document) = metrics.document(function_name, &report) {
        note(&document.to_string());
    }
    print_summary(&args.file, &report, processor.config().all_failed);
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        // Last, after the summary: the batch's effects are committed whatever became of stdout.
        Err(error) => {
            note(&format!("error: the batch was processed (see above), but its response was not printed: {error}"));
            ExitCode::from(exit::RUNTIME)
        }
    }
}

/// `text`, cut to at most `max` characters with an ellipsis.
fn abbreviated(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn replay_request_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("replay-{}-{nanos:x}", std::process::id())
}

fn print_summary(file: &PathBuf, report: &BatchReport, all_failed: crate::batch::AllFailedPolicy) {
    let mut summary = String::new();
    let source = if file == Path::new("-") { "standard input".to_owned() } else { file.display().to_string() };
    summary.push_str(&format!("replay of {source}: {} records\n", report.records.len()));
    // Message ids, reasons and outputs come from the messages: escaped like every log value, so
    // a body cannot forge a summary line.
    for record in &report.records {
        summary.push_str(&format!("  {}  {}", Escaped(&record.message_id), Escaped(&record.outcome)));
        if let Outcome::Processed(output) | Outcome::Duplicate(output) = &record.outcome {
            if !output.is_null() {
                summary.push_str(&format!(" -> {}", Escaped(abbreviated(&output.to_string(), 200))));
            }
        }
        summary.push('\n');
    }
    let totals = report.totals();
    summary.push_str(&format!(
        "totals: {} processed, {} duplicate, {} failed ({} transient, {} permanent), {} not attempted in {} ms\n",
        totals.processed,
        totals.duplicates,
        totals.failed_transient + totals.failed_permanent,
        totals.failed_transient,
        totals.failed_permanent,
        totals.not_attempted,
        report.elapsed.as_millis(),
    ));
    if report.all_failed() && all_failed == crate::batch::AllFailedPolicy::ReturnError {
        summary.push_str(
            "every record failed: Lambda would have seen a function error (the queue retries all of them, as the failure list above says)\n",
        );
    }
    note(summary.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse_event("event.json", text).unwrap_err().to_string()
    }

    #[test]
    fn invalid_json_names_line_and_column() {
        assert_eq!(error("{\n  \"Records\": [,]\n}"), "event.json is not valid JSON: expected value at line 2 column 15");
    }

    #[test]
    fn other_documents_are_refused_with_the_reason() {
        assert!(error("{\"foo\":1}").contains("has no \"Records\" field"));
        assert!(error("{\"Records\":{}}").contains("\"Records\" is not a list"));
        assert!(error("{\"Records\":[{\"body\":\"x\"}]}").contains("record 0 has no \"messageId\""));
        assert!(error("{\"Records\":[{\"messageId\":\"a\",\"eventSource\":\"aws:sns\"}]}").contains("aws:sns"));
        assert!(error("  \n").contains("is empty"));
    }

    #[test]
    fn a_body_over_the_sqs_maximum_is_refused() {
        let body = "x".repeat(MAX_BODY_BYTES + 1);
        let event = serde_json::json!({"Records": [{"messageId": "big", "body": body}]}).to_string();
        assert!(error(&event).contains("record 0's body is 1048577 bytes; SQS delivers at most 1048576 (1 MiB)"));
        let fits = serde_json::json!({"Records": [{"messageId": "max", "body": "x".repeat(MAX_BODY_BYTES)}]}).to_string();
        assert!(parse_event("e", &fits).is_ok());
    }

    #[test]
    fn a_byte_order_mark_before_the_document_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saved-by-notepad.json");
        std::fs::write(&path, "\u{feff}{\"Records\":[]}").unwrap();
        assert!(load_event(&path).unwrap().records.is_empty());
        std::fs::write(&path, "\u{feff}[1, 2]").unwrap();
        assert_eq!(load_json::<Vec<u8>>(&path, "a list").unwrap(), [1, 2]);
        // Only at the start: inside the document it is the character it is.
        std::fs::write(&path, "[\"\u{feff}\"]").unwrap();
        assert_eq!(load_json::<Vec<String>>(&path, "a list").unwrap(), ["\u{feff}"]);
    }

    #[test]
    fn an_empty_batch_is_an_event() {
        assert!(parse_event("e", "{\"Records\":[]}").unwrap().records.is_empty());
    }
}
