//! What a handler learns about the record in hand and the invocation around it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
use serde_json::Value;

use crate::error::RecordError;

/// Metadata of one SQS record, read from the Lambda event (never from the body).
///
/// Built by the batch processor for every record; a handler's unit tests build one with
/// [`RecordMeta::new`] and set the fields they need.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RecordMeta {
    /// The SQS message id: never empty for a record the batch processor hands on (an event
    /// record without one fails the whole batch, see
    /// [`BatchError::MissingMessageId`](crate::batch::BatchError::MissingMessageId)). It names
    /// the record in `batchItemFailures` and is the default idempotency key.
    pub message_id: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery. Useful to give up gracefully before
    /// the redrive policy moves a message to the dead-letter queue.
    pub receive_count: u32,
    /// `MessageGroupId`. On a FIFO queue, records of one group must be handled in order; on a
    /// fair queue (a standard queue whose producers set it) it names a tenant, not an order.
    pub message_group_id: Option<String>,
    /// `SentTimestamp`, epoch milliseconds.
    pub sent_timestamp_ms: Option<u64>,
    /// `eventSourceARN`: the queue's ARN (absent from hand-written events).
    pub event_source_arn: Option<String>,
    /// The receipt handle of this delivery: what changes the message's visibility (backoff) or
    /// deletes it. Absent from hand-written events.
    pub receipt_handle: Option<String>,
    /// Every system attribute of the message as SQS sent it (`ApproximateReceiveCount`,
    /// `SentTimestamp`, `MessageGroupId`, `SequenceNumber`, ...), the ones above included.
    pub attributes: HashMap<String, String>,
    /// The message attributes the producer set, by name.
    pub message_attributes: HashMap<String, SqsMessageAttribute>,
}

impl RecordMeta {
    /// The metadata of a first delivery (`receive_count` 1) of `message_id`, with no group,
    /// timestamp, queue ARN or attributes: for a handler's tests.
    ///
    /// ```
    /// let mut meta = sqs_kit::RecordMeta::new("m1");
    /// meta.message_group_id = Some("customer-7".to_owned());
    /// assert_eq!(meta.receive_count, 1);
    /// ```
    pub fn new(message_id: impl Into<String>) -> Self {
        Self { message_id: message_id.into(), receive_count: 1, ..Self::default() }
    }

    /// The metadata of `message`, taken out of it; `None` when it has no (or an empty) message id.
    pub(crate) fn from_message(message: SqsMessage) -> Option<Self> {
        let message_id = message.message_id.filter(|id| !id.is_empty())?;
        let attribute = |name: &str| message.attributes.get(name);
        Some(Self {
            message_id,
            receive_count: attribute("ApproximateReceiveCount").and_then(|count| count.parse().ok()).unwrap_or(1),
            message_group_id: attribute("MessageGroupId").cloned(),
            sent_timestamp_ms: attribute("SentTimestamp").and_then(|ts| ts.parse().ok()),
            event_source_arn: message.event_source_arn,
            receipt_handle: message.receipt_handle,
            attributes: message.attributes,
            message_attributes: message.message_attributes,
        })
    }
}

/// The parts of a queue's ARN, `arn:<partition>:sqs:<region>:<account>:<name>`, as the event
/// source ARN of a record names its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueArn<'a> {
    pub(crate) partition: &'a str,
    pub(crate) region: &'a str,
    pub(crate) account: &'a str,
    pub(crate) name: &'a str,
}

impl<'a> QueueArn<'a> {
    /// The parts of `arn`; `None` when it is not the ARN of a queue (another service, an account
    /// that is not 12 digits, a name SQS would not allow).
    pub(crate) fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("sqs"), Some(region), Some(account), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let valid = |part: &str, extra: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
        let account_valid = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
        (valid(partition, "-") && valid(region, "-") && account_valid && valid(name, "-_.")).then_some(Self {
            partition,
            region,
            account,
            name,
        })
    }
}

/// The invocation every record of a batch belongs to.
///
/// Made from Lambda's context (`From<&lambda_runtime::Context>`) in Lambda mode, and with
/// [`InvocationContext::with_remaining`] in the local modes and in tests.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InvocationContext {
    /// When Lambda stops the invocation. No record starts later than the batch's
    /// [`deadline_margin`](crate::BatchConfig::deadline_margin) before it, and an idempotency
    /// claim lapses at it.
    pub deadline: SystemTime,
    /// The function's name, which prefixes every idempotency key (`<function>#<key>`): in
    /// Lambda the deployed name, locally the binary's own name or `--function-name`.
    pub function_name: String,
    /// The AWS request id in Lambda; a generated one in local modes.
    pub request_id: String,
}

impl InvocationContext {
    /// A context whose deadline lies `remaining` from now, as in the local run modes.
    pub fn with_remaining(function_name: impl Into<String>, request_id: impl Into<String>, remaining: Duration) -> Self {
        Self { deadline: SystemTime::now() + remaining, function_name: function_name.into(), request_id: request_id.into() }
    }

    /// Time left before the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.deadline.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
    }

    /// The deadline in epoch milliseconds, the unit the idempotency records use.
    pub fn deadline_epoch_ms(&self) -> u64 {
        self.deadline.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

impl From<&lambda_runtime::Context> for InvocationContext {
    /// The context of a Lambda invocation. The deadline is `Lambda-Runtime-Deadline-Ms`, epoch
    /// milliseconds, except from `cargo lambda watch`'s emulator, which sends the function's
    /// timeout there (600000 for ten minutes): read as an epoch time, that deadline passed in
    /// 1970 and no record would ever start, so a value that small counts as the time left.
    fn from(context: &lambda_runtime::Context) -> Self {
        Self {
            deadline: lambda_deadline(context.deadline),
            function_name: context.env_config.function_name.clone(),
            request_id: context.request_id.clone(),
        }
    }
}

/// Any epoch-millisecond deadline of this century is above this.
const EPOCH_2001_MS: u64 = 978_307_200_000;

fn lambda_deadline(header_ms: u64) -> SystemTime {
    if header_ms < EPOCH_2001_MS {
        SystemTime::now() + Duration::from_millis(header_ms)
    } else {
        UNIX_EPOCH + Duration::from_millis(header_ms)
    }
}

/// Parses a record body into JSON, unwrapping an SNS notification envelope.
///
/// A topic subscription without raw message delivery wraps each message in an envelope whose
/// `Message` field holds the original body as a string; the handler should see the same body
/// either way. A missing body, or one (or an envelope's `Message`) that is not JSON, is a
/// permanent failure: no retry will change it. The batch processor calls this for every record
/// before the handler.
pub fn decode_body(body: Option<&str>) -> Result<Value, RecordError> {
    let body = body.ok_or_else(|| RecordError::permanent("the record has no body"))?;
    let value = parse_json(body, "body")?;
    match sns_message(&value) {
        Some(message) => parse_json(message, "SNS notification's Message"),
        None => Ok(value),
    }
}

fn parse_json(text: &str, what: &str) -> Result<Value, RecordError> {
    serde_json::from_str(text).map_err(|e| RecordError::permanent(format!("the {what} is not valid JSON: {e}")))
}

/// The `Message` of an SNS notification envelope, if `value` is one.
fn sns_message(value: &Value) -> Option<&str> {
    let object = value.as_object()?;
    let is_notification = object.get("Type")?.as_str()? == "Notification" && object.get("TopicArn").is_some_and(Value::is_string);
    if is_notification {
        object.get("Message")?.as_str()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_epoch_deadline_is_taken_as_is_and_a_timeout_as_time_left() {
        assert_eq!(lambda_deadline(1_764_061_230_000), UNIX_EPOCH + Duration::from_millis(1_764_061_230_000));
        let left = lambda_deadline(600_000).duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600), "{left:?}");
    }

    #[test]
    fn a_queue_arn_has_its_parts_and_nothing_else_is_one() {
        let arn = QueueArn::parse("arn:aws-cn:sqs:cn-north-1:123456789012:orders.fifo").unwrap();
        assert_eq!((arn.partition, arn.region, arn.account, arn.name), ("aws-cn", "cn-north-1", "123456789012", "orders.fifo"));
        for not_a_queue in [
            "",
            "orders",
            "arn:aws:sns:eu-west-1:123456789012:orders",
            "arn:aws:sqs:eu-west-1:123456789012:",
            "arn:aws:sqs:eu-west-1:12345:q",
            "arn:aws:sqs::123456789012:q",
            "arn:aws:sqs:us-east-1:123456789012:q/../x",
            "arn:aws:sqs:x:y:z:extra",
        ] {
            assert_eq!(QueueArn::parse(not_a_queue), None, "{not_a_queue:?}");
        }
    }

    #[test]
    fn plain_body_is_parsed_as_is() {
        assert_eq!(decode_body(Some(r#"{"a":1}"#)).unwrap(), json!({"a": 1}));
    }

    #[test]
    fn sns_envelope_is_unwrapped() {
        let envelope = json!({
            "Type": "Notification",
            "MessageId": "m",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:orders.fifo",
            "Message": "{\"orderId\":\"ORD-1\"}",
        });
        assert_eq!(decode_body(Some(&envelope.to_string())).unwrap(), json!({"orderId": "ORD-1"}));
    }

    #[test]
    fn body_that_only_looks_like_an_envelope_is_kept() {
        let body = json!({"Type": "Notification", "Message": "not from SNS"});
        assert_eq!(decode_body(Some(&body.to_string())).unwrap(), body);
    }

    #[test]
    fn sns_message_that_is_not_json_is_permanent() {
        let envelope = json!({"Type": "Notification", "TopicArn": "arn", "Message": "hello"});
        let error = decode_body(Some(&envelope.to_string())).unwrap_err();
        assert!(error.is_permanent());
        assert!(error.reason().contains("SNS notification's Message is not valid JSON"), "{error}");
    }

    #[test]
    fn missing_or_invalid_body_is_permanent() {
        assert!(decode_body(None).unwrap_err().is_permanent());
        let error = decode_body(Some("not json")).unwrap_err();
        assert!(error.is_permanent());
        assert!(error.reason().contains("line 1 column 2"), "{error}");
    }
}
