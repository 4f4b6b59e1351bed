//! [`QueueActions`] on the AWS SDK's SQS client.

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    QueueAttributeName,
};
use aws_sdk_sqs::Client;

use super::{DeadLetterMessage, EntryFailure, QueueActions, QueueError, VisibilityChange};

/// Retry control's calls made with an SQS client: `ChangeMessageVisibilityBatch`,
/// `SendMessage` and `GetQueueAttributes` (`RedrivePolicy`).
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
}

impl SqsQueue {
    /// The calls made with `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn failed(operation: &'static str, queue_url: &str, source: impl std::error::Error + Send + Sync + 'static) -> QueueError {
    // The SDK's own Display says only "service error"; its context says which and why.
    let context = DisplayErrorContext(source).to_string();
    QueueError { operation, queue_url: queue_url.to_owned(), source: context.into() }
}

#[async_trait]
impl QueueActions for SqsQueue {
    async fn change_visibility(&self, queue_url: &str, changes: &[VisibilityChange]) -> Result<Vec<EntryFailure>, QueueError> {
        const OPERATION: &str = "ChangeMessageVisibilityBatch";
        // Entry ids are positions: a message id from a hand-made event need not be a valid one.
        let entries = changes
            .iter()
            .enumerate()
            .map(|(index, change)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(&change.receipt_handle)
                    .visibility_timeout(i32::try_from(change.timeout.as_secs()).unwrap_or(i32::MAX))
                    .build()
                    .map_err(|error| failed(OPERATION, queue_url, error))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| failed(OPERATION, queue_url, error))?;
        Ok(output
            .failed()
            .iter()
            .map(|failure| {
                let message_id = failure.id().parse::<usize>().ok().and_then(|index| changes.get(index)).map(|c| c.message_id.clone());
                let reason = format!("{}: {}", failure.code(), failure.message().unwrap_or_default());
                EntryFailure::new(message_id.unwrap_or_else(|| failure.id().to_owned()), reason)
            })
            .collect())
    }

    async fn send(&self, queue_url: &str, message: &DeadLetterMessage) -> Result<(), QueueError> {
        const OPERATION: &str = "SendMessage";
        let mut request = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(&message.body)
            .set_message_group_id(message.message_group_id.clone())
            .set_message_deduplication_id(message.deduplication_id.clone());
        for (name, attribute) in &message.message_attributes {
            let value = MessageAttributeValue::builder()
                .set_data_type(attribute.data_type.clone())
                .set_string_value(attribute.string_value.clone())
                .set_binary_value(attribute.binary_value.as_ref().map(|data| Blob::new(data.0.clone())))
                .set_string_list_values(Some(attribute.string_list_values.clone()).filter(|values| !values.is_empty()))
                .set_binary_list_values(
                    Some(attribute.binary_list_values.iter().map(|data| Blob::new(data.0.clone())).collect::<Vec<_>>())
                        .filter(|values| !values.is_empty()),
                )
                .build()
                .map_err(|error| failed(OPERATION, queue_url, error))?;
            request = request.message_attributes(name, value);
        }
        if let Some(header) = &message.trace_header {
            let value = MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(header)
                .build()
                .map_err(|error| failed(OPERATION, queue_url, error))?;
            request = request.message_system_attributes(MessageSystemAttributeNameForSends::AwsTraceHeader, value);
        }
        request.send().await.map_err(|error| failed(OPERATION, queue_url, error))?;
        Ok(())
    }

    async fn dead_letter_queue_arn(&self, queue_url: &str) -> Result<Option<String>, QueueError> {
        const OPERATION: &str = "GetQueueAttributes";
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|error| failed(OPERATION, queue_url, error))?;
        let Some(policy) = output.attributes().and_then(|attributes| attributes.get(&QueueAttributeName::RedrivePolicy)) else {
            return Ok(None);
        };
        let policy: serde_json::Value = serde_json::from_str(policy).map_err(|error| QueueError {
            operation: OPERATION,
            queue_url: queue_url.to_owned(),
            source: Box::new(error),
        })?;
        Ok(policy.get("deadLetterTargetArn").and_then(serde_json::Value::as_str).map(str::to_owned))
    }
}
