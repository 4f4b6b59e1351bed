//! `replay` as a user runs it: the example binary as a subprocess on the sample event.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `replay` with its embedded state in `state`.
fn replay_in(state: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(common::example_binary())
        .arg("replay")
        .args(args)
        .arg("--state")
        .arg(state)
        .current_dir(e2e::workspace_root())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("LOG_LEVEL", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs `replay` on a fresh state directory.
fn replay(args: &[&str], stdin: Option<&str>) -> Output {
    let state = tempfile::tempdir().unwrap();
    replay_in(state.path(), args, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn sample_event_reports_the_invalid_orders() {
    let output = replay(&["events/example/validate-orders.json"], None);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        concat!(
            r#"{"batchItemFailures":[{"itemIdentifier":"2e1424d4-f796-459a-8184-9c92662be6da"},"#,
            r#"{"itemIdentifier":"7b9c4e1a-3f2d-4b8e-9a6c-1d0e5f4a3b2c"},"#,
            r#"{"itemIdentifier":"c5d8e7f6-a1b2-4c3d-9e8f-0a1b2c3d4e5f"}]}"#,
            "\n"
        )
    );
    assert!(stderr.contains("059f36b4-87a3-44ab-83d2-661975830a7d  processed"), "{stderr}");
    assert!(stderr.contains("2e1424d4-f796-459a-8184-9c92662be6da  failed (permanent): the body is not valid JSON"), "{stderr}");
    assert!(
        stderr.contains(
            "7b9c4e1a-3f2d-4b8e-9a6c-1d0e5f4a3b2c  failed (permanent): the body is not a valid OrderEvent: the order has no items"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("quantities must be positive"), "{stderr}");
    assert!(stderr.contains("totals: 2 processed, 0 duplicate, 3 failed (0 transient, 3 permanent), 0 not attempted"), "{stderr}");
    assert!(!stderr.contains("minji@example.com"), "e-mail addresses must not be logged: {stderr}");
}

#[test]
fn event_can_come_from_stdin() {
    let event = std::fs::read_to_string(e2e::workspace_root().join("events/example/validate-orders.json")).unwrap();
    let output = replay(&["-"], Some(&event));
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output.stdout).starts_with(r#"{"batchItemFailures":[{"itemIdentifier":"2e1424d4"#));
}

#[test]
fn all_failed_batch_still_lists_every_record_and_says_lambda_saw_an_error() {
    let event = r#"{"Records":[{"messageId":"only-one","body":"nope","eventSource":"aws:sqs"}]}"#;
    let output = replay(&["-"], Some(event));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output.stdout), "{\"batchItemFailures\":[{\"itemIdentifier\":\"only-one\"}]}\n");
    assert!(text(&output.stderr).contains("Lambda would have seen a function error"));
}

#[test]
fn an_address_in_a_wrongly_typed_field_stays_out_of_the_output() {
    // serde quotes the value it could not use; here it is an e-mail address in the wrong field.
    let body = serde_json::json!({
        "eventId": "evt-pii", "eventType": "OrderPlaced", "occurredAt": "2026-11-24T09:00:00Z", "orderId": "ORD-PII",
        "customerId": "CUST-1", "customerEmail": "minji@example.com", "totalAmount": "minji@example.com", "currency": "KRW",
        "items": [{"sku": "SKU-PAD", "quantity": 1, "unitPrice": 12000}]
    });
    let event = serde_json::json!({"Records": [{"messageId": "pii-1", "body": body.to_string(), "eventSource": "aws:sqs"}]});
    let output = replay(&["-"], Some(&event.to_string()));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(r#"invalid type: string "<address>""#), "the reason still says what is wrong: {stderr}");
    assert!(!stderr.contains('@'), "no e-mail address on stderr: {stderr}");
}

fn assert_bad_input(output: &Output, expected: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(output.stdout.is_empty(), "stdout must stay empty, got {:?}", text(&output.stdout));
    assert_eq!(stderr.lines().count(), 1, "one line on stderr, got {stderr:?}");
    assert!(stderr.contains(expected), "expected {expected:?} in {stderr:?}");
}

#[test]
fn missing_file_is_bad_input() {
    let output = replay(&["events/does-not-exist.json"], None);
    assert_bad_input(&output, "error: cannot read events/does-not-exist.json: No such file or directory");
}

#[test]
fn invalid_json_is_bad_input_with_line_and_column() {
    assert_bad_input(&replay(&["-"], Some("not json")), "standard input is not valid JSON: expected ident at line 1 column 2");
}

#[test]
fn a_document_that_is_not_an_sqs_event_is_bad_input() {
    assert_bad_input(&replay(&["-"], Some(r#"{"foo":1}"#)), "is not a Lambda SQS event");
    assert_bad_input(&replay(&["-"], Some("")), "standard input is empty");
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let output = replay(&["--bogus"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(text(&output.stderr).contains("unexpected argument '--bogus'"));
}

const SAMPLE: &str = "events/example/validate-orders.json";
const VALID: [&str; 2] = ["059f36b4-87a3-44ab-83d2-661975830a7d", "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"];

#[test]
fn replaying_the_same_event_twice_reports_duplicates_and_calls_no_handler() {
    let state = tempfile::tempdir().unwrap();
    let first = replay_in(state.path(), &[SAMPLE], None);
    assert_eq!(text(&first.stderr).matches("order is valid").count(), 2);

    let second = replay_in(state.path(), &[SAMPLE], None);
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(text(&second.stdout), text(&first.stdout), "the same records fail, the same succeed");
    for id in VALID {
        assert!(stderr.contains(&format!("{id}  duplicate (skipped)")), "{stderr}");
    }
    assert!(!stderr.contains("order is valid"), "no handler may run on the second replay: {stderr}");
    assert!(stderr.contains("totals: 0 processed, 2 duplicate, 3 failed"), "{stderr}");
}

#[test]
fn two_replays_at_once_on_one_state_run_each_order_once() {
    let state = tempfile::tempdir().unwrap();
    let binary = common::example_binary();
    let spawn = || {
        Command::new(&binary)
            .args(["replay", SAMPLE, "--state"])
            .arg(state.path())
            .current_dir(e2e::workspace_root())
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let logs = text(&a.stderr) + &text(&b.stderr);
    assert_eq!(logs.matches("order is valid").count(), 2, "each valid order is handled once across both: {logs}");
    for id in VALID {
        let settled = logs.matches(&format!("{id}  processed")).count() + logs.matches(&format!("{id}  duplicate")).count();
        let retried = logs.matches(&format!("{id}  failed (transient): another invocation is processing")).count();
        assert_eq!(settled + retried, 2, "{id}: {logs}");
        assert!(settled >= 1, "{id} was processed by neither: {logs}");
    }
}

#[test]
fn the_state_directory_can_come_from_sqs_kit_state() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(common::example_binary())
        .args(["replay", SAMPLE])
        .current_dir(e2e::workspace_root())
        .env("SQS_KIT_STATE", state.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(state.path().join("sqs-kit.sqlite3").exists());
}

/// Checks a document against the CloudWatch Embedded Metric Format specification: the `_aws`
/// metadata, every dimension and metric named in it present at the root, units from the list
/// CloudWatch accepts, and numeric values.
fn assert_emf(document: &serde_json::Value) {
    const UNITS: [&str; 27] = [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let metadata = &document["_aws"];
    assert!(metadata["Timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000), "Timestamp is epoch ms");
    let directives = metadata["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics is a list");
    assert!(!directives.is_empty());
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("Namespace is a string");
        assert!(!namespace.is_empty() && namespace.len() <= 255);
        for dimension_set in directive["Dimensions"].as_array().expect("Dimensions is a list") {
            let names = dimension_set.as_array().expect("a dimension set is a list");
            assert!(names.len() <= 30);
            for name in names {
                let name = name.as_str().unwrap();
                assert!(document[name].is_string(), "dimension {name} must be a string at the root");
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics is a list");
        assert!(metrics.len() <= 100);
        for metric in metrics {
            let name = metric["Name"].as_str().expect("a metric has a Name");
            assert!(UNITS.contains(&metric["Unit"].as_str().expect("a Unit")), "{metric}");
            assert!(document[name].is_number(), "metric {name} must be a number at the root");
        }
    }
}

#[test]
fn replay_writes_one_embedded_metric_line_to_stderr() {
    let output = replay(&[SAMPLE], None);
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|line| line.starts_with('{') && line.contains("\"_aws\"")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let document: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_emf(&document);
    assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Namespace"], "SqsKit");
    assert_eq!(document["FunctionName"], "validate_orders");
    assert_eq!(document["RecordsProcessed"], 2);
    assert_eq!(document["RecordsFailedPermanent"], 3);
    assert_eq!(document["RecordsFailedTransient"], 0);
    assert_eq!(document["DuplicatesSkipped"], 0);
    assert_eq!(document["RecordsNotAttempted"], 0);
    assert!(document["BatchDuration"].as_f64().unwrap() >= 0.0);
    assert!(document["MaxMessageAge"].as_u64().unwrap() > 0, "the sample was sent in 2025");
    assert_eq!(text(&output.stdout).lines().count(), 1, "stdout stays the single response line");
}

#[test]
fn metrics_namespace_and_dimension_are_configurable_and_can_be_off() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(common::example_binary())
        .args(["replay", SAMPLE, "--state"])
        .arg(state.path())
        .current_dir(e2e::workspace_root())
        .env("SQS_KIT_METRICS_NAMESPACE", "Shop/Orders")
        .env("SQS_KIT_METRICS_DIMENSION", "Service")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    let line = stderr.lines().find(|line| line.contains("\"_aws\"")).expect("a metric line");
    let document: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_emf(&document);
    assert_eq!(document["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Shop/Orders");
    assert_eq!(document["Service"], "validate_orders");

    let off = Command::new(common::example_binary())
        .args(["replay", SAMPLE, "--state"])
        .arg(state.path())
        .current_dir(e2e::workspace_root())
        .env("SQS_KIT_METRICS", "off")
        .output()
        .unwrap();
    assert!(!text(&off.stderr).contains("\"_aws\""));
}

#[test]
fn an_event_file_saved_with_a_byte_order_mark_replays() {
    let dir = tempfile::tempdir().unwrap();
    let event = std::fs::read_to_string(e2e::workspace_root().join(SAMPLE)).unwrap();
    let file = dir.path().join("event.json");
    std::fs::write(&file, format!("\u{feff}{event}")).unwrap();
    let output = replay(&[file.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("totals: 2 processed"), "{}", text(&output.stderr));
    let from_stdin = replay(&["-"], Some(&format!("\u{feff}{event}")));
    assert_eq!(from_stdin.status.code(), Some(0), "{}", text(&from_stdin.stderr));
}

#[test]
fn a_redis_server_that_is_down_fails_every_record_transiently_naming_the_store() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let output = Command::new(common::example_binary())
        .args(["replay", SAMPLE, "--store", "redis"])
        .current_dir(e2e::workspace_root())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("REDIS_URL", format!("redis://{closed}"))
        .env("SQS_KIT_REDIS_TIMEOUT_MS", "200")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["batchItemFailures"].as_array().unwrap().len(), 5, "every record is left for SQS to deliver again: {stderr}");
    for id in VALID {
        assert!(
            stderr.contains(&format!("{id}  failed (transient): the idempotency store (Redis store at {closed}) failed to claim")),
            "{stderr}"
        );
    }
}
