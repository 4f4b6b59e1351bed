//! Builders for SQS events in tests, in the shape Lambda delivers them.
#![allow(dead_code, unused_imports)]

pub mod seed;

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

pub use e2e::{create_table, local_aws, local_redis, unique_name};

/// The `validate_orders` example binary, built by cargo next to the test's own executable.
pub fn example_binary() -> std::path::PathBuf {
    e2e::example("sqs-kit", "validate_orders")
}
