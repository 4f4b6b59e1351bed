//! A message body cannot forge log lines or reach the terminal: `replay` of an order whose id
//! holds a line break, a fake log line and an escape sequence, as the example binary logs it.

mod common;

use std::process::Command;

use serde_json::json;

const FORGED_LINE: &str = "2026-01-01T00:00:00.000000Z  INFO fake line";

/// `replay` of `event` by the example binary, at log level info, on a fresh state directory.
fn replay(event: serde_json::Value) -> std::process::Output {
    let state = tempfile::tempdir().unwrap();
    let event_file = state.path().join("event.json");
    std::fs::write(&event_file, event.to_string()).unwrap();
    Command::new(common::example_binary())
        .arg("replay")
        .arg(&event_file)
        .arg("--state")
        .arg(state.path().join("state"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("LOG_LEVEL", "info")
        .output()
        .unwrap()
}

#[test]
fn a_body_cannot_forge_log_lines_or_send_escape_sequences() {
    let order_id = format!("ORD-1\n{FORGED_LINE}\r\n\x1b[31mred\x1b[0m\u{202e}");
    let body = e2e::generated_order(1, "log-escaping-1", &order_id, "CUST-42");
    let output = replay(json!({"Records": [common::record("forged-1", &body.to_string())]}));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "{\"batchItemFailures\":[]}\n");

    // The handler's log line is there, with the id escaped on one line.
    let logged: Vec<&str> = stderr.lines().filter(|line| line.contains("order is valid")).collect();
    assert_eq!(logged.len(), 1, "{stderr}");
    assert!(logged[0].contains(&format!(r"order_id=ORD-1\n{FORGED_LINE}\r\n\u{{1b}}[31mred\u{{1b}}[0m\u{{202e}}")), "{stderr}");
    for line in stderr.lines() {
        assert!(!line.starts_with(FORGED_LINE) && !line.starts_with("\u{1b}"), "a forged line: {line:?} in {stderr}");
    }
    assert!(!logged[0].contains('\u{202e}'), "{stderr:?}");
    assert!(!stderr.contains(['\x1b', '\r']), "{stderr:?}");
}

#[test]
fn the_replay_summary_escapes_message_ids_reasons_and_outputs() {
    // A message id and a body that fails to decode, each carrying a forged line, an escape
    // sequence and a bidi override: the summary quotes all three.
    let message_id = format!("forged-2\n{FORGED_LINE}\x1b[31m\u{202e}");
    let body = json!({"eventId": format!("\n{FORGED_LINE}\x1b[31m\u{202e}"), "orderId": 7}).to_string();
    let output = replay(json!({"Records": [common::record(&message_id, &body)]}));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let summary: Vec<&str> = stderr.lines().filter(|line| line.starts_with("  forged-2")).collect();
    assert_eq!(summary.len(), 1, "the record's summary is one line: {stderr}");
    assert!(summary[0].contains(r"forged-2\n2026-01-01"), "{stderr}");
    for line in stderr.lines() {
        assert!(!line.starts_with(FORGED_LINE), "a forged line: {line:?} in {stderr}");
    }
    assert!(!stderr.contains(['\x1b', '\r', '\u{202e}']), "{stderr:?}");
}
