//! `sqs-kit publish` against the local AWS API (moto): to an SNS FIFO topic fanned out to a FIFO
//! queue, and straight to queues. Skipped without AWS_ENDPOINT_URL (see `e2e::local_aws`).

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use e2e::Run;
use serde_json::{json, Value};

fn sqs_kit(args: &[&str]) -> Run {
    e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), args, &[])
}

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

/// Every message in the queue: (body, message group id), deleted as they are read.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, Option<String>)> {
    let mut messages = Vec::new();
    loop {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let received = output.messages.unwrap_or_default();
        if received.is_empty() {
            return messages;
        }
        for message in received {
            let group = message.attributes().and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId)).cloned();
            messages.push((message.body().unwrap().to_owned(), group));
            sqs.delete_message().queue_url(url).receipt_handle(message.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}

#[tokio::test]
async fn publishing_to_a_fifo_topic_reaches_its_fifo_queue_grouped_by_customer() {
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

    // 23 generated orders (three batch calls) and a poison body in one file.
    let generated = sqs_kit(&["publish", "--count", "23", "--dry-run"]).json();
    let mut bodies = generated.as_array().unwrap().clone();
    bodies.push(json!("this is not JSON"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bodies.json");
    std::fs::write(&file, Value::Array(bodies.clone()).to_string()).unwrap();

    let run = sqs_kit(&["publish", "--file", file.to_str().unwrap(), "--topic-arn", &topic]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report = run.json();
    assert_eq!(report["sent"], 24);
    assert_eq!(report["target"], topic.as_str());
    assert_eq!(report["messageIds"].as_array().unwrap().len(), 24);

    // Publishing the same events again is deduplicated by their eventId (moto deduplicates
    // against the messages still in the queue; SQS for 5 minutes).
    let again = sqs_kit(&["publish", "--file", file.to_str().unwrap(), "--topic-arn", &topic]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(again.json()["sent"], 24);

    let received = drain(&sqs, &queue_url).await;
    assert_eq!(received.len(), 24, "each event once: {received:?}");
    let by_body: HashMap<&str, Option<&str>> = received.iter().map(|(body, group)| (body.as_str(), group.as_deref())).collect();
    for body in &bodies[..23] {
        let text = body.to_string();
        assert_eq!(by_body.get(text.as_str()), Some(&body["customerId"].as_str()), "raw delivery of {text}");
    }
    assert_eq!(by_body.get("this is not JSON"), Some(&Some("default")));
    // In order within a customer's group.
    let customer_orders = |customer: &str, list: Vec<Value>| -> Vec<String> {
        list.into_iter().filter(|b| b["customerId"] == customer).map(|b| b["orderId"].as_str().unwrap().to_owned()).collect()
    };
    let received_bodies: Vec<Value> = received.iter().filter_map(|(body, _)| serde_json::from_str(body).ok()).collect();
    assert_eq!(customer_orders("CUST-42", received_bodies), customer_orders("CUST-42", bodies.clone()));
}

#[tokio::test]
async fn publishing_to_queues_sends_every_body_once() {
    let Some(config) = e2e::local_aws().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);

    let (standard, _) = create_queue(&sqs, false).await;
    let run = sqs_kit(&["publish", "--count", "12", "--queue-url", &standard]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json()["sent"], 12);
    let received = drain(&sqs, &standard).await;
    assert_eq!(received.len(), 12);
    assert!(received.iter().all(|(_, group)| group.is_none()));
    let orders: Vec<Value> = received.iter().map(|(body, _)| serde_json::from_str(body).unwrap()).collect();
    let mut order_ids: Vec<&str> = orders.iter().map(|o| o["orderId"].as_str().unwrap()).collect();
    order_ids.sort();
    assert_eq!(order_ids.first(), Some(&"ORD-1001"));
    assert_eq!(order_ids.len(), 12);

    let (fifo, _) = create_queue(&sqs, true).await;
    let run = sqs_kit(&["publish", "--count", "5", "--first-order", "7001", "--queue-url", &fifo]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let received = drain(&sqs, &fifo).await;
    assert_eq!(received.len(), 5);
    for (body, group) in &received {
        let order: Value = serde_json::from_str(body).unwrap();
        assert_eq!(group.as_deref(), order["customerId"].as_str());
    }
}

#[tokio::test]
async fn a_missing_target_is_a_runtime_failure_in_one_line() {
    let Some(_config) = e2e::local_aws().await else { return };
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let missing = format!("{endpoint}/123456789012/{}", e2e::unique_name("no-such-queue"));
    let run = sqs_kit(&["publish", "--count", "2", "--queue-url", &missing]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("SendMessageBatch"), "{run:?}");
}

/// A usage error: exit 2, one line on stderr that names the accepted range, nothing on stdout.
fn refused(args: &[&str], range: &str) {
    let run = sqs_kit(args);
    assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains(range), "{args:?}: {range} not in {run:?}");
}

#[test]
fn generated_counts_and_order_numbers_are_bounded() {
    refused(&["publish", "--count", "0", "--dry-run"], "a whole number from 1 to 100000");
    refused(&["publish", "--count", "100001", "--dry-run"], "a whole number from 1 to 100000");
    // Order numbers past the range once overflowed (a panic) or wrapped around.
    refused(&["publish", "--count", "2", "--first-order", "18446744073709551615", "--dry-run"], "a whole number from 0 to 4294967295");
    refused(&["publish", "--count", "2", "--first-order=-1", "--dry-run"], "a whole number from 0 to 4294967295");

    let run = sqs_kit(&["publish", "--count", "2", "--first-order", "4294967295", "--dry-run"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let ids: Vec<Value> = run.json().as_array().unwrap().iter().map(|order| order["orderId"].clone()).collect();
    assert_eq!(ids, [json!("ORD-4294967295"), json!("ORD-4294967296")]);
}
