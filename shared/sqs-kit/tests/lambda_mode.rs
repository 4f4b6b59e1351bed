//! Lambda mode: the example binary against a Runtime API served on 127.0.0.1, speaking the
//! same HTTP protocol as Lambda's (`/2018-06-01/runtime/invocation/...`).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use e2e::runtime_api::RuntimeApi;

fn start_function(api: &RuntimeApi, table: &str) -> Child {
    api.command(common::example_binary())
        .env("IDEMPOTENCY_TABLE", table)
        // Production's quiet level: the record's fields must not depend on info being enabled.
        .env("LOG_LEVEL", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn lambda_mode_returns_the_failure_list_and_errors_when_all_fail() {
    // Lambda mode keeps idempotency records in DynamoDB: the local AWS API's.
    let Some(config) = common::local_aws().await else { return };
    let table = common::unique_name("idempotency");
    common::create_table(&config, &table, "id", None).await;

    let sample = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/example/validate-orders.json")).unwrap();
    let all_bad = r#"{"Records":[{"messageId":"bad-1","body":"nope","eventSource":"aws:sqs"}]}"#.to_owned();
    let api = RuntimeApi::function("validate-orders").serve(vec![sample, all_bad]);
    let mut function = start_function(&api, &table);

    let first = api.reply(Duration::from_secs(30)).expect("a reply to the first invocation");
    let second = api.reply(Duration::from_secs(30)).expect("a reply to the second invocation");
    function.kill().unwrap();
    let logs = {
        let mut logs = String::new();
        function.stdout.take().unwrap().read_to_string(&mut logs).unwrap();
        logs
    };
    function.wait().unwrap();

    assert_eq!((first.request_id.as_str(), first.kind), ("req-0", "response"));
    let response: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    let failed: Vec<&str> =
        response["batchItemFailures"].as_array().unwrap().iter().map(|f| f["itemIdentifier"].as_str().unwrap()).collect();
    assert_eq!(
        failed,
        ["2e1424d4-f796-459a-8184-9c92662be6da", "7b9c4e1a-3f2d-4b8e-9a6c-1d0e5f4a3b2c", "c5d8e7f6-a1b2-4c3d-9e8f-0a1b2c3d4e5f"]
    );

    // The valid orders are completed in the DynamoDB table, under the deployed function's name.
    let store = sqs_kit::store::DynamoDbStore::with_config(&config, &table);
    let record = sqs_kit::store::IdempotencyStore::get(&store, "validate-orders#8c1f6d0e-5d3a-4c55-9a57-1f2b8f0c4a11").await.unwrap();
    assert_eq!(record.map(|r| r.status), Some(sqs_kit::idempotency::Status::Completed));

    assert_eq!((second.request_id.as_str(), second.kind), ("req-1", "error"));
    assert!(second.body.contains("all 1 records of the batch failed"), "{}", second.body);

    // Lambda mode logs JSON lines; every line about a record, at any level, carries its message id, receive
    // count, the request id and the (hashed) idempotency key, and no e-mail address.
    let failure_line = logs
        .lines()
        .find(|line| line.contains("7b9c4e1a-3f2d-4b8e-9a6c-1d0e5f4a3b2c") && line.contains("failed permanently"))
        .unwrap_or_else(|| panic!("no log line for the failed record in {logs}"));
    let line: serde_json::Value = serde_json::from_str(failure_line).expect("log lines are JSON");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["span"]["message_id"], "7b9c4e1a-3f2d-4b8e-9a6c-1d0e5f4a3b2c");
    assert_eq!(line["span"]["request_id"], "req-0");
    assert_eq!(line["span"]["receive_count"], 1);
    let key = line["span"]["idempotency_key"].as_str().expect("the idempotency key digest");
    assert_eq!(key.len(), 16);
    assert!(!logs.contains('@'), "no e-mail address in the logs: {logs}");

    // One embedded-metric line per invocation.
    let metric_lines: Vec<serde_json::Value> =
        logs.lines().filter(|line| line.contains("\"_aws\"")).map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(metric_lines.len(), 2, "{logs}");
    assert_eq!(metric_lines[0]["RecordsProcessed"], 2);
    assert_eq!(metric_lines[0]["FunctionName"], "validate-orders");
}

#[tokio::test]
async fn with_redis_url_set_lambda_mode_keeps_its_records_in_redis() {
    let Some(url) = common::local_redis() else { return };
    let sample = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/example/validate-orders.json")).unwrap();
    // A function name of this test's own keeps its keys apart on the shared server.
    let name = common::unique_name("validate");
    let api = RuntimeApi::function(&name).serve(vec![sample.clone(), sample]);
    let mut function =
        api.command(common::example_binary()).env("REDIS_URL", &url).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let first = api.reply(Duration::from_secs(30)).expect("a reply to the first invocation");
    let second = api.reply(Duration::from_secs(30)).expect("a reply to the second invocation");
    function.kill().unwrap();
    function.wait().unwrap();
    assert_eq!((first.kind, second.kind), ("response", "response"));
    assert_eq!(first.body, second.body, "the same records fail, the same succeed: {second:?}");

    let store = sqs_kit::store::RedisStore::new(sqs_kit::store::RedisConfig::new(url)).unwrap();
    let record = sqs_kit::store::IdempotencyStore::get(&store, &format!("{name}#8c1f6d0e-5d3a-4c55-9a57-1f2b8f0c4a11")).await.unwrap();
    assert_eq!(record.map(|r| r.status), Some(sqs_kit::idempotency::Status::Completed), "the record is in Redis");
}

#[tokio::test]
async fn with_both_idempotency_table_and_redis_url_set_the_table_is_the_store() {
    // A function may have a REDIS_URL of its own business; the table it was given still wins.
    let (Some(config), Some(url)) = (common::local_aws().await, common::local_redis()) else { return };
    let table = common::unique_name("idempotency");
    common::create_table(&config, &table, "id", None).await;
    let sample = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/example/validate-orders.json")).unwrap();
    let name = common::unique_name("validate");
    let api = RuntimeApi::function(&name).serve(vec![sample]);
    let mut function = api
        .command(common::example_binary())
        .env("REDIS_URL", &url)
        .env("IDEMPOTENCY_TABLE", &table)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let reply = api.reply(Duration::from_secs(30)).expect("a reply to the invocation");
    function.kill().unwrap();
    function.wait().unwrap();
    assert_eq!(reply.kind, "response", "{reply:?}");

    let id = format!("{name}#8c1f6d0e-5d3a-4c55-9a57-1f2b8f0c4a11");
    let dynamodb = sqs_kit::store::DynamoDbStore::with_config(&config, &table);
    assert!(sqs_kit::store::IdempotencyStore::get(&dynamodb, &id).await.unwrap().is_some(), "the record is in the table");
    let redis = sqs_kit::store::RedisStore::new(sqs_kit::store::RedisConfig::new(url)).unwrap();
    assert_eq!(sqs_kit::store::IdempotencyStore::get(&redis, &id).await.unwrap(), None, "and not in Redis");
}

#[test]
fn without_a_table_or_a_redis_url_the_function_stops_before_any_invocation_saying_what_to_set() {
    let api = RuntimeApi::function("validate-orders").serve(vec![r#"{"Records":[]}"#.to_owned()]);
    let output = api.command(common::example_binary()).env_remove("REDIS_URL").env_remove("IDEMPOTENCY_TABLE").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(
        logs.contains("needs an idempotency store in Lambda: set IDEMPOTENCY_TABLE to a DynamoDB table, or REDIS_URL to a Redis server"),
        "{logs}"
    );
}

/// A Lambda event of `messages`, as the event source mapping of the queue `arn` delivers them.
fn event_of(messages: &[aws_sdk_sqs::types::Message], arn: &str) -> String {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|message| {
            let attributes: serde_json::Map<String, serde_json::Value> = message
                .attributes()
                .unwrap()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), serde_json::Value::from(value.as_str())))
                .collect();
            serde_json::json!({
                "messageId": message.message_id(), "receiptHandle": message.receipt_handle(), "body": message.body(),
                "attributes": attributes, "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

#[tokio::test]
async fn in_lambda_mode_a_transient_failure_is_backed_off_and_poison_is_dead_lettered() {
    let Some(config) = common::local_aws().await else { return };
    let table = common::unique_name("idempotency");
    common::create_table(&config, &table, "id", None).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq = sqs.create_queue().queue_name(common::unique_name("dlq")).send().await.unwrap().queue_url.unwrap();
    let redrive = serde_json::json!({"deadLetterTargetArn": e2e::queue_arn(&sqs, &dlq).await, "maxReceiveCount": "5"});
    let queue = sqs
        .create_queue()
        .queue_name(common::unique_name("orders"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "30")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let order = |n: u32| e2e::generated_order(n as usize, &format!("evt-{n}"), &format!("ORD-{n}"), "CUST-1").to_string();
    for body in [order(1), "not json at all".to_owned(), order(2)] {
        sqs.send_message().queue_url(&queue).message_body(body).send().await.unwrap();
    }
    // The event source mapping's receive: the records carry this delivery's receipt handles.
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let messages = received.messages().to_vec();
    assert_eq!(messages.len(), 3);
    let api = RuntimeApi::function("validate-orders").serve(vec![event_of(&messages, &e2e::queue_arn(&sqs, &queue).await)]);
    let mut function = api
        .command(common::example_binary())
        .env("IDEMPOTENCY_TABLE", &table)
        .env("SQS_KIT_FAULT", "fail:ORD-2")
        .env("SQS_KIT_BACKOFF", "base=2,cap=2,jitter=none")
        .env("SQS_KIT_DEAD_LETTER", "redrive-policy")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reply = api.reply(Duration::from_secs(30)).expect("a reply");
    let sent_back = std::time::Instant::now();
    function.kill().unwrap();
    function.wait().unwrap();

    let transient = messages.iter().find(|m| m.body().unwrap().contains("ORD-2")).unwrap().message_id().unwrap();
    let response: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": [{"itemIdentifier": transient}]}), "the poison is not among the failures");
    let in_dlq = sqs.receive_message().queue_url(&dlq).wait_time_seconds(1).send().await.unwrap();
    assert_eq!(in_dlq.messages().iter().map(|m| m.body().unwrap()).collect::<Vec<_>>(), ["not json at all"]);
    // Back after its 2 s backoff, not the queue's 30 s (Lambda would have deleted the others).
    let again = sqs.receive_message().queue_url(&queue).max_number_of_messages(10).wait_time_seconds(10).send().await.unwrap();
    let waited = sent_back.elapsed();
    let ids: Vec<&str> = again.messages().iter().map(|m| m.message_id().unwrap()).collect();
    assert!(ids.contains(&transient), "{ids:?}");
    assert!(waited < Duration::from_secs(5), "came back after {waited:?}");
}
