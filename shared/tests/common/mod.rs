//! Builders for SQS events in tests, in the shape Lambda delivers them.
#![allow(dead_code)]

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{json, Value};
use sqs_kit::InvocationContext;

pub const STANDARD_ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:orders-email";
pub const FIFO_ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:orders-inventory.fifo";

/// A standard-queue record.
pub fn record(id: &str, body: &str) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("handle-{id}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": STANDARD_ARN,
        "awsRegion": "eu-west-1",
    })
}

/// A FIFO-queue record of message group `group`.
pub fn fifo_record(id: &str, group: &str, body: &str) -> Value {
    let mut record = record(id, body);
    record["eventSourceARN"] = json!(FIFO_ARN);
    record["attributes"]["MessageGroupId"] = json!(group);
    record["attributes"]["SequenceNumber"] = json!("1");
    record
}

pub fn event(records: Vec<Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).expect("test events are valid SQS events")
}

pub fn invocation(remaining: Duration) -> InvocationContext {
    InvocationContext::with_remaining("test-function", "test-request", remaining)
}

/// The SDK configuration for the local AWS API, or `None` when `AWS_ENDPOINT_URL` is not set
/// (plain `cargo test`); `scripts/test` sets `SQS_KIT_TEST_REQUIRE_AWS` so that a missing API
/// fails the run instead of skipping.
pub async fn local_aws() -> Option<aws_config::SdkConfig> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        assert!(
            std::env::var_os("SQS_KIT_TEST_REQUIRE_AWS").is_none(),
            "AWS_ENDPOINT_URL is not set: run the tests through scripts/test, which starts moto"
        );
        eprintln!("skipping the DynamoDB part: AWS_ENDPOINT_URL is not set (scripts/test starts moto)");
        return None;
    }
    Some(aws_config::load_from_env().await)
}

/// A table name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Creates an on-demand table with a string partition key (and optional string sort key).
pub async fn create_table(config: &aws_config::SdkConfig, name: &str, partition_key: &str, sort_key: Option<&str>) {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let client = aws_sdk_dynamodb::Client::new(config);
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(AttributeDefinition::builder().attribute_name(partition_key).attribute_type(ScalarAttributeType::S).build().unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name(partition_key).key_type(KeyType::Hash).build().unwrap());
    if let Some(sort_key) = sort_key {
        request = request
            .attribute_definitions(AttributeDefinition::builder().attribute_name(sort_key).attribute_type(ScalarAttributeType::S).build().unwrap())
            .key_schema(KeySchemaElement::builder().attribute_name(sort_key).key_type(KeyType::Range).build().unwrap());
    }
    request.send().await.expect("the local AWS API creates the table");
}
