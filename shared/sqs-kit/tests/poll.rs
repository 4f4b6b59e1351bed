//! `poll` against the local AWS API (moto): Lambda's event source mapping semantics — deletes
//! on success, redelivery and dead-lettering by the queue's redrive policy on failure, a clean
//! stop on SIGTERM, and several batches in flight with `--concurrency`.

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

    /// A `poll` of the main queue by the example function with `flags`, keeping its idempotency
    /// records in `state`.
    fn poll(&self, state: &tempfile::TempDir, flags: &[&str], envs: &[(&str, &str)]) -> e2e::Run {
        let state = state.path().to_str().unwrap();
        let args = ["poll", "--queue-url", &self.main].into_iter().chain(flags.iter().copied()).chain(["--state", state]);
        e2e::run(&common::example_binary(), args, envs)
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
    let run = queues.poll(&state, &["--idle-exit", "6"], &[]);
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

/// The figures of the closing line: batches, messages received, deleted, left for redelivery.
fn totals(stderr: &str) -> [usize; 4] {
    let line = stderr.lines().find(|line| line.starts_with("poll of ")).unwrap_or_else(|| panic!("no closing line: {stderr}"));
    let figures: Vec<usize> = line.split(": ").nth(1).unwrap().split(' ').filter_map(|word| word.parse().ok()).collect();
    figures.try_into().unwrap_or_else(|_| panic!("four figures in {line}"))
}

/// The order ids the handler logged as valid, in log order.
fn handled(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|line| line.contains("order is valid"))
        .map(|line| line.split("order_id=").nth(1).unwrap().split(' ').next().unwrap().to_owned())
        .collect()
}

/// The most batches between their "batch received" and "batch done" lines at once, in the order
/// the log has them, and whether every batch received was done.
fn batches_in_hand(stderr: &str) -> (usize, bool) {
    let (mut open, mut most, mut received) = (std::collections::HashSet::new(), 0, 0);
    for line in stderr.lines() {
        let number = || line.split(" batch=").nth(1).and_then(|rest| rest.split(' ').next()).unwrap().to_owned();
        if line.contains("batch received") {
            received += 1;
            assert!(open.insert(number()), "a batch number given twice: {line}");
            most = most.max(open.len());
        } else if line.contains("batch done") {
            assert!(open.remove(&number()), "done before received: {line}");
        }
    }
    (most, received > 0 && open.is_empty())
}

/// The visible messages of the main queue. Not the ones in flight: moto (5.2) deletes a message
/// by rebuilding the queue's list without a lock, so of two deletes at once from two workers
/// one can be lost, and its message stays in flight until redelivered as a duplicate.
async fn visible(queues: &Queues) -> usize {
    e2e::queue_counts(&queues.client, &queues.main).await.0
}

fn assert_each_once(orders: &[String], count: usize) {
    let distinct: std::collections::BTreeSet<&String> = orders.iter().collect();
    assert_eq!((orders.len(), distinct.len()), (count, count), "each of the {count} orders handled once: {orders:?}");
}

#[tokio::test]
async fn with_concurrency_batches_overlap_up_to_the_limit_and_each_message_is_handled_once() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 30, 5).await;
    queues.send(&(0..24).map(order).collect::<Vec<_>>()).await;
    let state = tempfile::tempdir().unwrap();
    // Slow records keep each batch in hand long enough for the other workers to receive theirs.
    let run = queues.poll(&state, &["--concurrency", "4", "--batch-size", "2", "--idle-exit", "3"], &[("SQS_KIT_FAULT", "slow:500")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let (most, all_done) = batches_in_hand(&run.stderr);
    assert!((2..=4).contains(&most), "up to 4 batches in hand at once, and more than one: {most}\n{}", run.stderr);
    assert!(all_done, "{}", run.stderr);
    assert_each_once(&handled(&run.stderr), 24);
    let [batches, received, deleted, left] = totals(&run.stderr);
    assert_eq!((received, deleted, left), (24, 24, 0), "{}", run.stderr);
    // One whole line per batch on stdout, however the workers' writes fell.
    assert_eq!(run.stdout.lines().count(), batches, "{}", run.stdout);
    for line in run.stdout.lines() {
        let response: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(response, json!({"batchItemFailures": []}));
    }
    assert_eq!(visible(&queues).await, 0);
}

#[tokio::test]
async fn max_batches_counts_the_batches_of_every_worker_and_never_receives_more() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 30, 5).await;
    queues.send(&(0..20).map(order).collect::<Vec<_>>()).await;
    let state = tempfile::tempdir().unwrap();
    let run = queues.poll(&state, &["--concurrency", "4", "--max-batches", "3", "--batch-size", "2"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(totals(&run.stderr), [3, 6, 6, 0], "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 3, "{}", run.stdout);
    assert_each_once(&handled(&run.stderr), 6);
    // No fourth receive took messages it would not process: the other 14 are still visible.
    assert_eq!(visible(&queues).await, 14);
}

#[tokio::test]
async fn sigterm_with_concurrency_finishes_every_batch_in_hand_and_deletes_only_what_was_processed() {
    let Some(config) = e2e::local_aws().await else { return };
    // A short visibility timeout: a receive that SIGTERM cut short may have taken messages, and
    // they come back within the second run.
    let queues = queues(&config, 6, 5).await;
    queues.send(&(0..12).map(order).collect::<Vec<_>>()).await;
    let state = tempfile::tempdir().unwrap();
    let poll = |idle_exit: &str, fault: &str| {
        Command::new(common::example_binary())
            .args(["poll", "--queue-url", &queues.main, "--concurrency", "4", "--batch-size", "2", "--idle-exit", idle_exit, "--state"])
            .arg(state.path())
            .env("SQS_KIT_FAULT", fault)
            .current_dir(e2e::workspace_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // Four batches of 2 in hand, each record taking 2.5 s; SIGTERM arrives in the middle.
    let first = poll("3", "slow:2500");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Command::new("kill").args(["-TERM", &first.id().to_string()]).status().unwrap();
    let first: e2e::Run = first.wait_with_output().unwrap().into();
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(first.stderr.contains("shutdown requested"), "{}", first.stderr);
    let (most, all_done) = batches_in_hand(&first.stderr);
    assert!(most > 1 && all_done, "several batches in hand, every one finished: {}", first.stderr);
    let handled_first = handled(&first.stderr);
    let [_, received, deleted, left] = totals(&first.stderr);
    assert!((1..12).contains(&handled_first.len()), "the first run stopped part-way: {}", first.stderr);
    assert_eq!(deleted, handled_first.len(), "what was processed is deleted, and nothing else: {}", first.stderr);
    assert_eq!(received, deleted + left);

    let second: e2e::Run = poll("8", "").wait_with_output().unwrap().into();
    assert_eq!(second.code, Some(0), "{second:?}");
    let mut every = handled_first;
    every.extend(handled(&second.stderr));
    assert_each_once(&every, 12);
    assert_eq!(visible(&queues).await, 0);
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
    let run =
        queues.poll(&state, &["--batch-size", "20", "--batching-window", "2", "--max-batches", "1"], &[("SQS_KIT_FAULT", "slow:1500")]);
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

/// When each of a poll's batch responses (one line on stdout per batch) came, from the start.
fn response_times(queue_url: &str, state: &std::path::Path, envs: &[(&str, &str)]) -> (Vec<(Duration, serde_json::Value)>, e2e::Run) {
    use std::io::BufRead;
    let started = std::time::Instant::now();
    let mut child = Command::new(common::example_binary())
        .args(["poll", "--queue-url", queue_url, "--idle-exit", "5", "--state"])
        .arg(state)
        .envs(envs.iter().copied())
        .current_dir(e2e::workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<(Duration, serde_json::Value)> =
        std::io::BufReader::new(stdout).lines().map(|line| (started.elapsed(), serde_json::from_str(&line.unwrap()).unwrap())).collect();
    let run: e2e::Run = child.wait_with_output().unwrap().into();
    (lines, run)
}

#[tokio::test]
async fn backoff_brings_a_failing_record_back_after_growing_delays_up_to_the_cap() {
    let Some(config) = e2e::local_aws().await else { return };
    // The queue's own timeout (30 s) would bring the record back far later than the backoff.
    let queues = queues(&config, 30, 4).await;
    queues.send(&[order(77)]).await;
    let state = tempfile::tempdir().unwrap();
    let envs = [("SQS_KIT_FAULT", "fail:ORD-77"), ("SQS_KIT_BACKOFF", "base=1,cap=3,jitter=none")];
    let (responses, run) = response_times(&queues.main, state.path(), &envs);
    assert_eq!(run.code, Some(0), "{run:?}");
    // Four receives fail it (the fifth receive would be beyond maxReceiveCount 4: the DLQ).
    assert_eq!(responses.len(), 4, "{responses:?}\n{}", run.stderr);
    for (_, response) in &responses {
        assert_eq!(response["batchItemFailures"].as_array().unwrap().len(), 1, "{response}");
    }
    let gaps: Vec<f64> = responses.windows(2).map(|pair| (pair[1].0 - pair[0].0).as_secs_f64()).collect();
    // 1 s, 2 s, then the cap: 3 s instead of 4. moto's long poll and the processing add a little.
    for (gap, expected) in gaps.iter().zip([1.0, 2.0, 3.0]) {
        assert!(*gap >= expected - 0.3 && *gap < expected + 1.5, "delay {gap:.2} s where the backoff is {expected} s: {gaps:?}");
    }
    assert!(gaps[1] > gaps[0] && gaps[2] > gaps[1], "the delays grow: {gaps:?}");
    assert!(!run.stderr.contains("could not set the backoff"), "{}", run.stderr);
    // Dead-lettered by the redrive policy after its fourth receive, as without backoff.
    let client = &queues.client;
    let moved = client.receive_message().queue_url(&queues.dlq).wait_time_seconds(5).send().await.unwrap();
    assert_eq!(moved.messages().len(), 1, "the record reached the DLQ through the redrive policy");
}

/// A FIFO queue whose messages go to a FIFO DLQ after `max_receives` receives.
async fn fifo_queues(config: &aws_config::SdkConfig, visibility: u32, max_receives: u32) -> Queues {
    let client = aws_sdk_sqs::Client::new(config);
    let fifo = |name: String| {
        client
            .create_queue()
            .queue_name(format!("{name}.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::VisibilityTimeout, visibility.to_string())
    };
    let dlq = fifo(e2e::unique_name("dlq")).send().await.unwrap().queue_url.unwrap();
    let redrive = json!({"deadLetterTargetArn": e2e::queue_arn(&client, &dlq).await, "maxReceiveCount": max_receives.to_string()});
    let main = fifo(e2e::unique_name("main"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Queues { client, main, dlq }
}

/// Every message of `url` with all its attributes, received once (hidden for a minute).
async fn receive_all(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let output = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .visibility_timeout(60)
        .message_attribute_names("All")
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    output.messages.unwrap_or_default()
}

fn string_attribute(value: &str) -> aws_sdk_sqs::types::MessageAttributeValue {
    aws_sdk_sqs::types::MessageAttributeValue::builder().data_type("String").string_value(value).build().unwrap()
}

/// Poison with an attribute of its own and a trace header, among valid orders.
async fn send_poison_among_orders(queues: &Queues, group: Option<&str>) -> String {
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let trace_attribute =
        aws_sdk_sqs::types::MessageSystemAttributeValue::builder().data_type("String").string_value(trace).build().unwrap();
    let mut poison_id = String::new();
    for (n, body) in [order(1), "not json at all".to_owned(), order(2)].into_iter().enumerate() {
        let request = queues
            .client
            .send_message()
            .queue_url(&queues.main)
            .message_body(&body)
            .message_attributes("tenant", string_attribute("t-7"))
            .message_system_attributes(aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader, trace_attribute.clone())
            .set_message_group_id(group.map(str::to_owned))
            .set_message_deduplication_id(group.map(|_| format!("dedup-{n}")));
        let id = request.send().await.unwrap().message_id.unwrap();
        if n == 1 {
            poison_id = id;
        }
    }
    poison_id
}

async fn assert_dead_lettered_copy(queues: &Queues, poison_id: &str, group: Option<&str>) {
    let copies = receive_all(&queues.client, &queues.dlq).await;
    assert_eq!(copies.len(), 1, "only the poison is in the DLQ: {copies:?}");
    let copy = &copies[0];
    assert_eq!(copy.body(), Some("not json at all"), "the body byte for byte");
    let attributes = copy.message_attributes().unwrap();
    let value = |name: &str| attributes.get(name).and_then(|v| v.string_value()).unwrap_or_default().to_owned();
    assert_eq!(value("tenant"), "t-7", "its own attributes kept");
    assert!(value(sqs_kit::retry::attributes::FAILURE_REASON).contains("not valid JSON"), "{attributes:?}");
    assert_eq!(value(sqs_kit::retry::attributes::FAILED_FUNCTION), "validate_orders");
    assert_eq!(value(sqs_kit::retry::attributes::RECEIVE_COUNT), "1", "dead-lettered after one receive");
    assert_eq!(value(sqs_kit::retry::attributes::SOURCE_QUEUE), e2e::queue_arn(&queues.client, &queues.main).await);
    assert_eq!(value(sqs_kit::retry::attributes::SOURCE_MESSAGE_ID), poison_id);
    let system = copy.attributes().unwrap();
    use aws_sdk_sqs::types::MessageSystemAttributeName as Name;
    assert!(system.get(&Name::AwsTraceHeader).is_some_and(|t| t.contains("Root=1-5759e988")), "{system:?}");
    assert_eq!(system.get(&Name::MessageGroupId).map(String::as_str), group, "{system:?}");
    if group.is_some() {
        assert_eq!(system.get(&Name::MessageDeduplicationId).map(String::as_str), Some(poison_id), "{system:?}");
    }
}

#[tokio::test]
async fn poison_goes_to_the_dlq_after_one_receive_and_the_rest_of_its_batch_is_deleted() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 30, 5).await;
    let poison_id = send_poison_among_orders(&queues, None).await;
    let state = tempfile::tempdir().unwrap();
    let run = queues.poll(&state, &["--idle-exit", "3"], &[("SQS_KIT_DEAD_LETTER", "redrive-policy")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stderr.matches("order is valid").count(), 2, "{}", run.stderr);
    assert_eq!(run.stderr.matches("sent to the dead-letter queue").count(), 1, "{}", run.stderr);
    for line in run.stdout.lines() {
        assert_eq!(serde_json::from_str::<serde_json::Value>(line).unwrap(), json!({"batchItemFailures": []}), "{}", run.stdout);
    }
    assert_eq!(e2e::queue_counts(&queues.client, &queues.main).await, (0, 0), "the source is empty: nothing comes back");
    assert_dead_lettered_copy(&queues, &poison_id, None).await;
}

#[tokio::test]
async fn fifo_poison_goes_to_the_fifo_dlq_with_its_group_and_its_group_goes_on() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = fifo_queues(&config, 2, 5).await;
    let poison_id = send_poison_among_orders(&queues, Some("customer-42")).await;
    let state = tempfile::tempdir().unwrap();
    let run = queues.poll(&state, &["--idle-exit", "4"], &[("SQS_KIT_DEAD_LETTER", &queues.dlq)]);
    assert_eq!(run.code, Some(0), "{run:?}");
    // The order behind the poison was held back once, then handled in its group's order.
    assert_eq!(handled(&run.stderr), ["ORD-1", "ORD-2"], "{}", run.stderr);
    assert_eq!(e2e::queue_counts(&queues.client, &queues.main).await, (0, 0));
    assert_dead_lettered_copy(&queues, &poison_id, Some("customer-42")).await;
}

#[tokio::test]
async fn with_the_dlq_unreachable_poison_is_reported_failed_and_stays_in_its_queue() {
    let Some(config) = e2e::local_aws().await else { return };
    let queues = queues(&config, 30, 5).await;
    queues.send(&["not json at all".to_owned()]).await;
    let state = tempfile::tempdir().unwrap();
    let missing = format!("{}-gone", queues.dlq);
    let run = queues.poll(&state, &["--max-batches", "1"], &[("SQS_KIT_DEAD_LETTER", &missing)]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("could not be sent to the dead-letter queue"), "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    let response: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(response["batchItemFailures"].as_array().unwrap().len(), 1, "reported failed: {response}");
    assert_eq!(e2e::queue_counts(&queues.client, &queues.main).await, (0, 1), "still in its queue, in flight");
    assert_eq!(queues.count(&queues.dlq).await, 0);
}

#[test]
fn bad_retry_settings_are_refused_before_anything_runs() {
    for (variable, value, expected) in [
        ("SQS_KIT_BACKOFF", "base=5", "cap is missing"),
        ("SQS_KIT_BACKOFF", "on", "not name=value"),
        ("SQS_KIT_DEAD_LETTER", "yes", "redrive-policy, or the URL of a queue"),
    ] {
        let run = e2e::run(
            &common::example_binary(),
            ["poll", "--queue-url", "http://127.0.0.1:9/123456789012/q", "--max-batches", "1"],
            &[(variable, value), ("AWS_MAX_ATTEMPTS", "1")],
        );
        assert_eq!(run.code, Some(2), "{variable}={value}: {run:?}");
        assert!(run.stderr.contains(variable) && run.stderr.contains(expected), "{variable}={value}: {}", run.stderr);
    }
}
