//! The port retry control acts through: the few SQS calls it makes, behind a trait so that a
//! function's tests (or another client) can stand in for SQS.

use std::time::Duration;

use async_trait::async_trait;

use super::DeadLetterMessage;
use crate::record::QueueArn;

/// `ChangeMessageVisibilityBatch` takes at most this many entries.
pub const VISIBILITY_BATCH_LIMIT: usize = 10;

/// One message whose visibility timeout is to be set.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VisibilityChange {
    /// The message id, which names the entry in the answer.
    pub message_id: String,
    /// The receipt handle of the delivery.
    pub receipt_handle: String,
    /// The new visibility timeout, from now.
    pub timeout: Duration,
}

impl VisibilityChange {
    /// Sets the message's visibility to `timeout` from now.
    pub fn new(message_id: impl Into<String>, receipt_handle: impl Into<String>, timeout: Duration) -> Self {
        Self { message_id: message_id.into(), receipt_handle: receipt_handle.into(), timeout }
    }
}

/// An entry of a batch call that the queue refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryFailure {
    /// The message id of the entry.
    pub message_id: String,
    /// The queue's error code and message.
    pub reason: String,
}

impl EntryFailure {
    /// The entry of `message_id` failed for `reason`.
    pub fn new(message_id: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { message_id: message_id.into(), reason: reason.into() }
    }
}

/// A call to the queue that failed as a whole.
#[derive(Debug, thiserror::Error)]
#[error("{operation} on {queue_url} failed: {source}")]
pub struct QueueError {
    /// The SQS action, e.g. `SendMessage`.
    pub operation: &'static str,
    /// The queue it was about.
    pub queue_url: String,
    /// What went wrong.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The SQS calls retry control makes. [`SqsQueue`](super::SqsQueue) (feature `sqs`) is the
/// implementation on the AWS SDK.
#[async_trait]
pub trait QueueActions: Send + Sync + std::fmt::Debug + 'static {
    /// Sets the visibility timeouts of at most [`VISIBILITY_BATCH_LIMIT`] messages of the queue
    /// at `queue_url` in one call; returns the entries the queue refused.
    async fn change_visibility(&self, queue_url: &str, changes: &[VisibilityChange]) -> Result<Vec<EntryFailure>, QueueError>;

    /// Sends `message` to the queue at `queue_url`; `Ok` once the queue accepted it.
    async fn send(&self, queue_url: &str, message: &DeadLetterMessage) -> Result<(), QueueError>;

    /// The ARN of the dead-letter queue that the redrive policy of the queue at `queue_url`
    /// names; `None` when the queue has no redrive policy.
    async fn dead_letter_queue_arn(&self, queue_url: &str) -> Result<Option<String>, QueueError>;
}

/// The URL of the queue whose ARN is `arn` (`arn:<partition>:sqs:<region>:<account>:<name>`),
/// as SQS gives it; `None` when `arn` is not a queue's ARN.
///
/// ```
/// use sqs_kit::retry::queue_url_of_arn;
///
/// assert_eq!(
///     queue_url_of_arn("arn:aws:sqs:eu-west-1:123456789012:orders.fifo").as_deref(),
///     Some("https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo")
/// );
/// assert_eq!(queue_url_of_arn("arn:aws:sns:eu-west-1:123456789012:orders"), None);
/// ```
pub fn queue_url_of_arn(arn: &str) -> Option<String> {
    let QueueArn { partition, region, account, name } = QueueArn::parse(arn)?;
    let domain = match partition {
        "aws-cn" => "amazonaws.com.cn",
        "aws-iso" => "c2s.ic.gov",
        "aws-iso-b" => "sc2s.sgov.gov",
        "aws-eusc" => "amazonaws.eu",
        _ => "amazonaws.com",
    };
    Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
}
