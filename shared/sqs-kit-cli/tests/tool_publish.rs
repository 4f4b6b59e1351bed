//! `sqs-kit publish` against the local AWS API (moto): to an SNS FIFO topic fanned out to a FIFO
//! queue, and straight to queues. Skipped without AWS_ENDPOINT_URL (see `e2e::local_aws`).

mod common;

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use common::{bodies_file, drain, orders, sqs_kit, sqs_kit_stdin, BY_CUSTOMER};
use serde_json::{json, Value};

async fn create_queue(sqs: &aws_sdk_sqs::Client, fifo: bool) -> (String, String) {
    let name = e2e::unique_name("publish") + if fifo { ".fifo" } else { "" };
    let mut request = sqs.create_queue().queue_name(&name);
    if fifo {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let url = request.send().await.unwrap().queue_url.unwrap();
    let arn = e2e::queue_arn(sqs, &url).await;
    (url, arn)
}

#[tokio::test]
async fn publishing_to_a_fifo_topic_reaches_its_fifo_queue_grouped_as_pointed() {
    let Some(config) = e2e::local_aws().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .create_topic()
        .name(e2e::unique_name("orders") + ".fifo")
        .attributes("FifoTopic", "true")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (queue_url, queue_arn) = create_queue(&sqs, true).await;
    sns.subscribe().topic_arn(&topic).protocol("sqs").endpoint(&queue_arn).attributes("RawMessageDelivery", "true").send().await.unwrap();

    // 23 orders (three batch calls) and a poison body in one file.
    let mut bodies = orders(23);
    bodies.push(json!("this is not JSON"));
    let dir = tempfile::tempdir().unwrap();
    let file = bodies_file(dir.path(), &bodies);

    let publish = [&["publish", "--file", file.as_str(), "--topic-arn", &topic][..], &BY_CUSTOMER].concat();
    let run = sqs_kit(&publish);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report = run.json();
    assert_eq!(report["sent"], 24);
    assert_eq!(report["target"], topic.as_str());
    assert_eq!(report["messageIds"].as_array().unwrap().len(), 24);

    // Publishing the same events again is deduplicated by their eventId (moto deduplicates
    // against the messages still in the queue; SQS for 5 minutes).
    let again = sqs_kit(&publish);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(again.json()["sent"], 24);

    let received = drain(&sqs, &queue_url).await;
    assert_eq!(received.len(), 24, "each event once: {received:?}");
    let by_body: HashMap<&str, Option<&str>> = received.iter().map(|m| (m.body.as_str(), m.group.as_deref())).collect();
    for body in &bodies[..23] {
        let text = body.to_string();
        assert_eq!(by_body.get(text.as_str()), Some(&body["customerId"].as_str()), "raw delivery of {text}");
    }
    assert_eq!(by_body.get("this is not JSON"), Some(&Some("default")));
    // In order within a customer's group.
    let customer_orders = |customer: &str, list: Vec<Value>| -> Vec<String> {
        list.into_iter().filter(|b| b["customerId"] == customer).map(|b| b["orderId"].as_str().unwrap().to_owned()).collect()
    };
    let received_bodies: Vec<Value> = received.iter().filter_map(|m| serde_json::from_str(&m.body).ok()).collect();
    assert_eq!(customer_orders("CUST-42", received_bodies), customer_orders("CUST-42", bodies.clone()));
}

#[tokio::test]
async fn publishing_to_queues_sends_every_body_once() {
    let Some(config) = e2e::local_aws().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dir = tempfile::tempdir().unwrap();

    // A standard queue: no group, whatever the flags.
    let (standard, _) = create_queue(&sqs, false).await;
    let bodies = orders(12);
    let run = sqs_kit(&[&["publish", "--file", &bodies_file(dir.path(), &bodies), "--queue-url", &standard][..], &BY_CUSTOMER].concat());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json()["sent"], 12);
    let received = drain(&sqs, &standard).await;
    assert!(received.iter().all(|m| m.group.is_none()));
    let mut sent: Vec<String> = bodies.iter().map(Value::to_string).collect();
    let mut got: Vec<String> = received.into_iter().map(|m| m.body).collect();
    sent.sort();
    got.sort();
    assert_eq!(got, sent);

    // A FIFO queue without --group-by: one group, in the file's order; without --dedup-by,
    // bodies that differ are all sent.
    let (fifo, _) = create_queue(&sqs, true).await;
    let bodies = [json!({"n": 1, "tenant": "a"}), json!({"n": 2, "tenant": "b"}), json!({"n": 3, "tenant": "a"})];
    let run = sqs_kit(&["publish", "--file", &bodies_file(dir.path(), &bodies), "--queue-url", &fifo]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let received = drain(&sqs, &fifo).await;
    let got: Vec<(String, Option<String>)> = received.into_iter().map(|m| (m.body, m.group)).collect();
    let expected: Vec<(String, Option<String>)> = bodies.iter().map(|b| (b.to_string(), Some("default".to_owned()))).collect();
    assert_eq!(got, expected);

    // Bodies read from standard input (`-`), grouped by a nested field.
    let nested = [json!({"id": "x-1", "tenant": {"id": "t-1"}}), json!({"id": "x-2", "tenant": {"id": "t-2"}})];
    let publish = ["publish", "--file", "-", "--queue-url", &fifo, "--group-by", "/tenant/id", "--dedup-by", "/id"];
    let run = sqs_kit_stdin(&publish, &Value::Array(nested.to_vec()).to_string());
    assert_eq!(run.code, Some(0), "{run:?}");
    let groups: Vec<Option<String>> = drain(&sqs, &fifo).await.into_iter().map(|m| m.group).collect();
    assert_eq!(groups, [Some("t-1".to_owned()), Some("t-2".to_owned())]);
}

#[tokio::test]
async fn a_missing_target_is_a_runtime_failure_in_one_line() {
    let Some(_config) = e2e::local_aws().await else { return };
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let missing = format!("{endpoint}/123456789012/{}", e2e::unique_name("no-such-queue"));
    let dir = tempfile::tempdir().unwrap();
    let run = sqs_kit(&["publish", "--file", &bodies_file(dir.path(), &orders(2)), "--queue-url", &missing]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("SendMessageBatch"), "{run:?}");
}

#[test]
fn a_dry_run_shows_each_message_with_its_fifo_ids() {
    let dir = tempfile::tempdir().unwrap();
    let bodies = [json!({"eventId": "e-1", "customerId": "CUST-42"}), json!("not json {")];
    let file = bodies_file(dir.path(), &bodies);
    let fifo = "http://127.0.0.1:9/123456789012/q.fifo";

    let run = sqs_kit(&[&["publish", "--file", &file, "--queue-url", fifo, "--dry-run"][..], &BY_CUSTOMER].concat());
    assert_eq!(run.code, Some(0), "{run:?}");
    let hash = run.json()[1]["messageDeduplicationId"].as_str().unwrap().to_owned();
    assert_eq!(hash.len(), 64, "the SHA-256 of a body without the field");
    assert_eq!(
        run.json(),
        json!([
            {"body": bodies[0].to_string(), "messageGroupId": "CUST-42", "messageDeduplicationId": "e-1"},
            {"body": "not json {", "messageGroupId": "default", "messageDeduplicationId": hash},
        ])
    );
    // Without a target, or to a standard one, messages have no ids.
    for target in [&[][..], &["--topic-arn", "arn:aws:sns:us-east-1:123456789012:orders"]] {
        let run = sqs_kit(&[&["publish", "--file", &file, "--dry-run"][..], target, &BY_CUSTOMER].concat());
        assert_eq!(run.json(), json!([{"body": bodies[0].to_string()}, {"body": "not json {"}]), "{target:?}");
    }
}

#[test]
fn a_pointer_that_is_not_one_is_a_usage_error_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = bodies_file(dir.path(), &[json!({"a": 1})]);
    for (flag, pointer, why) in [("--group-by", "customerId", "it starts with /"), ("--dedup-by", "/a~2", "~ stands only in ~0")] {
        for command in [vec!["publish", "--file", &file, "--dry-run"], vec!["event", "--fifo", &file]] {
            let run = sqs_kit(&[&command[..], &[flag, pointer]].concat());
            assert_eq!(run.code, Some(2), "{command:?} {flag} {pointer}: {run:?}");
            assert!(run.stdout.is_empty(), "{run:?}");
            assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
            assert!(run.stderr.contains(&format!("for '{flag} <POINTER>'")), "{run:?}");
            assert!(run.stderr.contains(why), "{run:?}");
        }
    }
}
