//! `poll` against the local AWS API (moto): Lambda's event source mapping semantics — deletes
//! on success, redelivery and dead-lettering by the queue's redrive policy on failure, and a
//! clean stop on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

fn order(n: usize) -> String {
    json!({
        "eventId": format!("evt-{n}"), "eventType": "OrderPlaced", "occurredAt": "2026-11-24T09:00:00Z",
        "orderId": format!("ORD-{n}"), "customerId": "CUST-42", "customerEmail": "minji@example.com",
        "items": [{"sku": "SKU-KEYBOARD", "quantity": 1, "unitPrice": 89000}], "totalAmount": 89000, "currency": "KRW",
        "shippingAddress": {"name": "Minji Kim", "line1": "12 Teheran-ro", "city": "Seoul", "postalCode": "06236", "country": "KR"}
    })
    .to_string()
}

struct Queues {
    client: aws_sdk_sqs::Client,
    main: String,
    dlq: String,
}

/// A queue whose messages go to a DLQ after `max_receives` receives.
async fn queues(config: &aws_config::SdkConfig, visibility: u32, max_receives: u32) -> Queues {
    let client = aws_sdk_sqs::Client::new(config);
    let dlq = client.create_queue().queue_name(e2e::unique_name("dlq")).send().await.unwrap().queue_url.unwrap();
    let dlq_arn = e2e::queue_arn(&client, &dlq).await;
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()}).to_string();
    let main = client
        .create_queue()
        .queue_name(e2e::unique_name("main"))
        .attributes(QueueAttributeName::VisibilityTimeout, visibility.to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Queues { client, main, dlq }
}

impl Queues {
    async fn send(&self, bodies: &[String]) {
        for body in bodies {
            self.client.send_message().queue_url(&self.main).message_body(body).send().await.unwrap();
        }
    }

    async fn count(&self, url: &str) -> usize {
        e2e::queue_depth(&self.client, url).await
    }
}

#[tokio::test]
async fn poll_deletes_successes_and_the_redrive_policy_dead_letters_poison() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 2, 2).await;
    let mut bodies: Vec<String> = (0..4).map(order).collect();
    bodies.push("not json at all".into());
    bodies.push(json!({"eventId": "evt-empty", "items": []}).to_string());
    queues.send(&bodies).await;

    let state = tempfile::tempdir().unwrap();
    let run = e2e::run(
        &common::example_binary(),
        ["poll", "--queue-url", &queues.main, "--idle-exit", "6", "--state", state.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stderr.matches("order is valid").count(), 4, "each valid order handled once: {}", run.stderr);
    assert!(run.stderr.contains("record failed permanently"), "{}", run.stderr);
    assert_eq!(queues.count(&queues.main).await, 0, "nothing left in the queue");
    assert_eq!(queues.count(&queues.dlq).await, 2, "the two poison messages are in the DLQ after 2 receives");
    // Every batch printed its Lambda response on stdout.
    for line in run.stdout.lines() {
        let response: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(response["batchItemFailures"].is_array());
    }
}

#[tokio::test]
async fn sigterm_finishes_the_batch_in_hand_and_loses_nothing() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 30, 5).await;
    queues.send(&(0..10).map(order).collect::<Vec<_>>()).await;
    let state = tempfile::tempdir().unwrap();
    let binary = common::example_binary();
    let poll = |extra_env: Option<(&str, &str)>| {
        let mut command = Command::new(&binary);
        command
            .args(["poll", "--queue-url", &queues.main, "--idle-exit", "3", "--batch-size", "5", "--state"])
            .arg(state.path())
            .current_dir(e2e::workspace_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((name, value)) = extra_env {
            command.env(name, value);
        }
        command.spawn().unwrap()
    };

    // Slow records: the first batch of 5 takes 2 s; SIGTERM arrives in the middle of it.
    let first = poll(Some(("SQS_KIT_FAULT", "slow:2000")));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Command::new("kill").args(["-TERM", &first.id().to_string()]).status().unwrap();
    let first: e2e::Run = first.wait_with_output().unwrap().into();
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(first.stderr.contains("shutdown requested"), "{}", first.stderr);
    let handled_first = first.stderr.matches("order is valid").count();
    assert!((1..10).contains(&handled_first), "the first run stopped part-way: {}", first.stderr);

    let second: e2e::Run = poll(None).wait_with_output().unwrap().into();
    assert_eq!(second.code, Some(0), "{second:?}");
    let handled_second = second.stderr.matches("order is valid").count();
    assert_eq!(handled_first + handled_second, 10, "every order handled exactly once across the restart");
    assert_eq!(queues.count(&queues.main).await, 0);
    assert_eq!(queues.count(&queues.dlq).await, 0);
}

#[tokio::test]
async fn the_batching_window_counts_against_the_visibility_timeout() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 3, 5).await;
    queues.send(&[order(1)]).await;
    let state = tempfile::tempdir().unwrap();
    // The message is received, then the window waits 2 s for more: 1 s of its 3 s visibility
    // timeout is left, and a record that needs 1.5 s would still be running when SQS hands the
    // message to another consumer. It must be reported failed, not deleted late.
    let run = e2e::run(
        &common::example_binary(),
        ["poll", "--queue-url", &queues.main, "--batch-size", "20", "--batching-window", "2", "--max-batches", "1", "--state"]
            .into_iter()
            .chain([state.path().to_str().unwrap()]),
        &[("SQS_KIT_FAULT", "slow:1500")],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let response: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(response["batchItemFailures"].as_array().map(Vec::len), Some(1), "{run:?}");
    assert_eq!(queues.count(&queues.main).await, 1, "the message stays for redelivery");
}

#[tokio::test]
async fn a_batching_window_as_long_as_the_visibility_timeout_is_refused() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 2, 5).await;
    let run = e2e::run(
        &common::example_binary(),
        ["poll", "--queue-url", &queues.main, "--batch-size", "20", "--batching-window", "2", "--idle-exit", "3"],
        &[],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--batching-window 2 must be shorter than the visibility timeout (2 s)"), "{}", run.stderr);
}

#[test]
fn a_batch_over_ten_needs_a_batching_window() {
    let run = e2e::run(&common::example_binary(), ["poll", "--queue-url", "http://127.0.0.1:9/q", "--batch-size", "50"], &[]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--batch-size 50 needs a --batching-window of at least 1 s"), "{}", run.stderr);
}

/// A pipe whose reader is gone, as after `| head -c0`: writes fail with EPIPE (Rust programs
/// ignore SIGPIPE). The reader is the stdin of a process that has exited.
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().expect("true runs");
    let writer = reader.stdin.take().expect("a piped stdin");
    reader.wait().unwrap();
    writer.into()
}

#[tokio::test]
async fn a_poller_whose_stdout_is_closed_stops_after_the_batch_with_one_error_line() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 30, 5).await;
    queues.send(&(0..3).map(order).collect::<Vec<_>>()).await;
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(common::example_binary())
        .args(["poll", "--queue-url", &queues.main, "--idle-exit", "3", "--state"])
        .arg(state.path())
        .current_dir(e2e::workspace_root())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|line| line.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("its response was not printed: cannot write to standard output: Broken pipe"), "{}", errors[0]);
    // The batch it did process is done: deleted, not redelivered.
    assert_eq!(stderr.matches("order is valid").count(), 3, "{stderr}");
    assert_eq!(queues.count(&queues.main).await, 0);
}

#[tokio::test]
async fn poll_keys_records_with_its_own_name_or_the_flag_not_an_inherited_one() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 30, 5).await;
    queues.send(&[order(1)]).await;
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let inherited = [("AWS_LAMBDA_FUNCTION_NAME", "email")];
    let poll = |extra: &[&str]| {
        let args = ["poll", "--queue-url", queues.main.as_str(), "--idle-exit", "2", "--state", state];
        e2e::run(&common::example_binary(), args.iter().chain(extra), &inherited)
    };
    let first = poll(&["--function-name", "shop-validate"]);
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(first.stderr.contains("keys are prefixed with shop-validate#"), "{}", first.stderr);
    // The same message again, under the same name, is a duplicate; under the own name it is new.
    queues.send(&[order(1)]).await;
    let again = poll(&["--function-name", "shop-validate"]);
    assert_eq!(again.stderr.matches("order is valid").count(), 0, "{}", again.stderr);
    queues.send(&[order(1)]).await;
    let own = poll(&[]);
    assert_eq!(own.stderr.matches("order is valid").count(), 1, "{}", own.stderr);
    assert!(own.stderr.contains("keys are prefixed with validate_orders#"), "{}", own.stderr);
}

#[test]
fn an_unreachable_endpoint_is_a_runtime_error() {
    let run = e2e::run(
        &common::example_binary(),
        ["poll", "--queue-url", "http://127.0.0.1:9/123456789012/q", "--max-batches", "1"],
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stderr.lines().filter(|l| l.starts_with("error:")).count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot read the attributes of queue"), "{}", run.stderr);
}
