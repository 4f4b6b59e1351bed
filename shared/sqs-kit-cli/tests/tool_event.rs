//! `sqs-kit event`: bodies wrapped into a Lambda SQS event, replayed by a function; and the
//! checks every command shares on its input (exit 2, one line on stderr, nothing on stdout).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{sqs_kit, sqs_kit_stdin, BY_CUSTOMER};
use e2e::Run;
use serde_json::{json, Value};

/// `replay FILE` of the validate_orders example, on a fresh state directory.
fn replay(file: &str) -> Run {
    let state = tempfile::tempdir().unwrap();
    e2e::run(&e2e::example("sqs-kit", "validate_orders"), ["replay", file, "--state", state.path().to_str().unwrap()], &[])
}

fn order(event_id: &str, customer: &str) -> Value {
    json!({
        "eventId": event_id, "eventType": "OrderPlaced", "occurredAt": "2026-11-24T09:00:00Z",
        "orderId": format!("ORD-{event_id}"), "customerId": customer, "customerEmail": "minji@example.com",
        "items": [{"sku": "SKU-KEYBOARD", "quantity": 1, "unitPrice": 89000}], "totalAmount": 89000, "currency": "KRW",
        "shippingAddress": {"name": "Minji Kim", "line1": "12 Teheran-ro", "city": "Seoul", "postalCode": "06236", "country": "KR"}
    })
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn md5_hex(text: &str) -> String {
    // Only to check the command's digest independently: RFC 1321 test vectors pin the crate.
    use md5::{Digest, Md5};
    Md5::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_standard_event_has_lambdas_shape_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let bodies = json!([order("e-1", "CUST-42"), "not json {", order("e-2", "CUST-7")]);
    let file = write(&dir, "bodies.json", &bodies.to_string());
    let run = sqs_kit(&["event", &file]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let event = run.json();
    let records = event["Records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    for record in records {
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["eventSourceARN"], "arn:aws:sqs:us-east-1:123456789012:my-queue");
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["messageAttributes"], json!({}));
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "1");
        for attribute in ["SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"] {
            assert!(record["attributes"][attribute].is_string(), "{attribute} in {record}");
        }
        assert!(record["attributes"].get("MessageGroupId").is_none());
        assert_eq!(record["messageId"].as_str().unwrap().len(), 36);
        assert!(!record["receiptHandle"].as_str().unwrap().is_empty());
        assert_eq!(record["md5OfBody"], md5_hex(record["body"].as_str().unwrap()));
    }
    assert_eq!(records[1]["body"], "not json {");
    assert_eq!(serde_json::from_str::<Value>(records[0]["body"].as_str().unwrap()).unwrap(), bodies[0]);
    // The same input gives the same message ids; different bodies give different ones.
    assert_eq!(sqs_kit(&["event", &file]).json()["Records"][0]["messageId"], records[0]["messageId"]);
    assert_ne!(records[0]["messageId"], records[2]["messageId"]);

    // The event is what `replay` reads: the two orders pass, the malformed body fails.
    let event_file = write(&dir, "event.json", &run.stdout);
    let replay = replay(&event_file);
    assert_eq!(replay.code, Some(0), "{replay:?}");
    assert_eq!(replay.failures(), vec![records[1]["messageId"].as_str().unwrap().to_owned()]);
}

#[test]
fn a_fifo_event_carries_groups_deduplication_ids_and_sequence_numbers() {
    let bodies = json!([order("e-1", "CUST-42"), order("e-2", "CUST-7"), {"no": "ids"}]);
    let run = sqs_kit_stdin(&[&["event", "--fifo", "-"][..], &BY_CUSTOMER].concat(), &bodies.to_string());
    assert_eq!(run.code, Some(0), "{run:?}");
    let records = run.json()["Records"].as_array().unwrap().clone();
    assert_eq!(records[0]["eventSourceARN"], "arn:aws:sqs:us-east-1:123456789012:my-queue.fifo");
    let attribute = |i: usize, name: &str| records[i]["attributes"][name].as_str().unwrap().to_owned();
    assert_eq!(attribute(0, "MessageGroupId"), "CUST-42");
    assert_eq!(attribute(0, "MessageDeduplicationId"), "e-1");
    assert_eq!(attribute(1, "MessageGroupId"), "CUST-7");
    assert_eq!(attribute(2, "MessageGroupId"), "default");
    assert_eq!(attribute(2, "MessageDeduplicationId").len(), 64);
    let sequence: Vec<u128> = (0..3).map(|i| attribute(i, "SequenceNumber").parse().unwrap()).collect();
    assert!(sequence.windows(2).all(|pair| pair[0] < pair[1]), "{sequence:?}");

    // A FIFO queue ARN makes a FIFO event by itself, and sets the region.
    let arn = "arn:aws:sqs:ap-northeast-2:111122223333:orders-points.fifo";
    let run = sqs_kit_stdin(&[&["event", "--queue-arn", arn, "-"][..], &BY_CUSTOMER].concat(), &bodies.to_string());
    let record = &run.json()["Records"][0];
    assert_eq!(record["eventSourceARN"], arn);
    assert_eq!(record["awsRegion"], "ap-northeast-2");
    assert_eq!(record["attributes"]["MessageGroupId"], "CUST-42");

    // Without --group-by, one group: the whole event in order; without --dedup-by, the hashes.
    let run = sqs_kit_stdin(&["event", "--fifo", "-"], &bodies.to_string());
    let records = run.json()["Records"].as_array().unwrap().clone();
    assert!(records.iter().all(|r| r["attributes"]["MessageGroupId"] == "default"), "{records:?}");
    assert!(records.iter().all(|r| r["attributes"]["MessageDeduplicationId"].as_str().unwrap().len() == 64), "{records:?}");
}

/// Exit 2, exactly one line on stderr that contains `needle`, nothing on stdout.
fn assert_bad_input(run: &Run, needle: &str) {
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
    assert!(run.stderr.starts_with("error: ") && run.stderr.contains(needle), "expected {needle:?} in {run:?}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json").display().to_string();
    assert_bad_input(&sqs_kit(&["event", &missing]), "cannot read");
    assert_bad_input(&sqs_kit(&["publish", "--file", &missing, "--dry-run"]), "cannot read");

    let invalid = write(&dir, "invalid.json", "[\n  {\"a\": 1},\n  {\"b\": \n");
    assert_bad_input(&sqs_kit(&["event", &invalid]), "line 4 column 0");
    assert_bad_input(&sqs_kit(&["publish", "--file", &invalid, "--queue-url", "http://127.0.0.1:9/q"]), "is not valid JSON");

    let object = write(&dir, "object.json", "{\"Records\": []}");
    assert_bad_input(&sqs_kit(&["event", &object]), "a JSON list of message bodies");
    assert_bad_input(&sqs_kit_stdin(&["event", "-"], "[]"), "holds no bodies");

    let big = write(&dir, "big.json", &json!(["small", "x".repeat(262_145)]).to_string());
    assert_bad_input(&sqs_kit(&["publish", "--file", &big, "--queue-url", "http://127.0.0.1:9/q"]), "body 1 is 262145 bytes");
    let empty_body = write(&dir, "empty-body.json", "[\"\"]");
    assert_bad_input(&sqs_kit(&["event", &empty_body]), "body 0 is empty");

    let valid = write(&dir, "valid.json", &json!([order("e-1", "CUST-42")]).to_string());
    assert_bad_input(&sqs_kit(&["publish", "--file", &valid]), "needs a target");
    assert_bad_input(&sqs_kit(&["event", "--fifo", "--queue-arn", "arn:aws:sqs:us-east-1:1:q", &object]), "does not end in .fifo");
    assert_bad_input(&sqs_kit(&["event", "--queue-arn", "not-an-arn", &object]), "is not an ARN");

    let template = write(&dir, "template.yaml", "Resources:\n  Queue: [1\n");
    let envs = [("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("AWS_REGION", "us-east-1")];
    let up = e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), ["local", "up", "--template", &template], &envs);
    assert_bad_input(&up, "line 3 column 1");
    let up = e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), ["local", "up", "--template", &missing], &envs);
    assert_bad_input(&up, "cannot read");
    let up = e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), ["local", "up", "--stack-name", "9lives"], &envs);
    assert_bad_input(&up, "--stack-name 9lives");
    let up = e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), ["local", "up", "--parameter", "NoSuchThing=1"], &envs);
    assert_bad_input(&up, "declares no parameter NoSuchThing");

    // A flag clap rejects: usage on stderr, exit 2.
    assert_eq!(sqs_kit(&["publish", "--dry-run"]).code, Some(2), "publish reads --file");
    assert_eq!(sqs_kit(&["dlq", "peek", "--queue-url", "http://127.0.0.1:9/q", "--max", "0"]).code, Some(2));
}

#[test]
fn an_unreachable_endpoint_is_a_runtime_failure() {
    let envs = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_MAX_ATTEMPTS", "1"),
    ];
    let binary = Path::new(env!("CARGO_BIN_EXE_sqs-kit"));
    let dir = tempfile::tempdir().unwrap();
    let bodies = write(&dir, "bodies.json", &json!([order("e-1", "CUST-42")]).to_string());
    for args in [
        vec!["publish", "--file", &bodies, "--queue-url", "http://127.0.0.1:9/000000000000/q"],
        vec!["dlq", "peek", "--queue-url", "http://127.0.0.1:9/000000000000/q"],
        vec!["dlq", "redrive", "--queue-url", "http://127.0.0.1:9/000000000000/q"],
        vec!["local", "up", "--stack-name", "unreachable"],
    ] {
        let run = e2e::run(binary, &args, &envs);
        assert_eq!(run.code, Some(1), "{args:?}: {run:?}");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
        assert!(run.stderr.contains("Connection refused") || run.stderr.contains("connect"), "{run:?}");
    }
}

#[test]
fn bodies_up_to_the_sqs_maximum_make_an_event_that_replays() {
    let dir = tempfile::tempdir().unwrap();
    // Over SNS's 256 KiB, within SQS's 1 MiB: `replay` takes it, so `event` must make it.
    let large = "x".repeat(1024 * 1024);
    let file = write(&dir, "large.json", &json!([large]).to_string());
    let run = sqs_kit(&["event", &file]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let event_file = write(&dir, "event.json", &run.stdout);
    let replay = replay(&event_file);
    assert_eq!(replay.code, Some(0), "{}", replay.stderr);

    let over = write(&dir, "over.json", &json!(["small", "x".repeat(1024 * 1024 + 1)]).to_string());
    assert_bad_input(&sqs_kit(&["event", &over]), "body 1 is 1048577 bytes, over the 1048576-byte (1 MiB) limit");
}

#[test]
fn an_event_that_cannot_be_written_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "bodies.json", &json!([order("e-1", "CUST-42")]).to_string());
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sqs-kit")).args(["event", &file]).stdout(full).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end(), "error: cannot write to standard output: No space left on device (os error 28)");
}
