//! Permanent failures sent straight to a dead-letter queue.

use std::collections::HashMap;
use std::fmt;

use aws_lambda_events::event::sqs::SqsMessageAttribute;

use super::attributes;
use crate::record::RecordMeta;

/// Where permanently failed records go.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterTarget {
    /// The dead-letter queue the source queue's redrive policy names, read from the queue once
    /// per process (`GetQueueAttributes`).
    RedrivePolicy,
    /// The queue at this URL.
    Queue(String),
}

/// A dead-letter setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid dead-letter target {0:?}: expected off, redrive-policy, or the URL of a queue (https://...)")]
pub struct InvalidDeadLetterTarget(String);

impl std::str::FromStr for DeadLetterTarget {
    type Err = InvalidDeadLetterTarget;

    /// `redrive-policy`, or a queue URL (`https://` or `http://`): the form of
    /// `SQS_KIT_DEAD_LETTER`.
    fn from_str(text: &str) -> Result<Self, InvalidDeadLetterTarget> {
        let text = text.trim();
        if text == "redrive-policy" {
            return Ok(Self::RedrivePolicy);
        }
        let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
        match rest.and_then(|rest| rest.split_once('/')) {
            Some((host, path)) if !host.is_empty() && !path.is_empty() && !text.contains(char::is_whitespace) => {
                Ok(Self::Queue(text.to_owned()))
            }
            _ => Err(InvalidDeadLetterTarget(text.to_owned())),
        }
    }
}

impl fmt::Display for DeadLetterTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RedrivePolicy => f.write_str("redrive-policy"),
            Self::Queue(url) => f.write_str(url),
        }
    }
}

/// Why a permanently failed record cannot be sent to the dead-letter queue by sqs-kit; it is then
/// reported failed, and the queue's redrive policy moves it after `maxReceiveCount` receives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotForwardable {
    /// SQS takes no message without a body.
    #[error("the record has no body to send")]
    NoBody,
    /// The record's own attributes leave no room for the failure attributes.
    #[error(
        "the record has {count} message attributes of its own; with sqs-kit's {} failure attributes that is more than SQS's {}",
        attributes::ALL.len(),
        attributes::SQS_LIMIT
    )]
    TooManyAttributes {
        /// The record's own attributes (not counting any `SqsKit.` ones).
        count: usize,
    },
}

/// The copy of a failed record that goes to the dead-letter queue: its body as it came, its
/// message attributes with the failure [`attributes`] added, and on a FIFO queue its group.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DeadLetterMessage {
    /// The record's body, byte for byte.
    pub body: String,
    /// The record's own message attributes and the failure attributes.
    pub message_attributes: HashMap<String, SqsMessageAttribute>,
    /// The record's `MessageGroupId`, for a FIFO dead-letter queue.
    pub message_group_id: Option<String>,
    /// The record's message id, for a FIFO dead-letter queue: a send that is retried after a
    /// lost answer is then not stored twice.
    pub deduplication_id: Option<String>,
    /// The record's `AWSTraceHeader`, so the copy stays in the producer's trace.
    pub trace_header: Option<String>,
}

impl DeadLetterMessage {
    /// The copy of the record `meta` (whose body was `body`) that `function` failed for
    /// `reason`, for the dead-letter queue at `queue_url`.
    pub fn for_record(
        meta: &RecordMeta,
        body: Option<String>,
        reason: &str,
        function: &str,
        queue_url: &str,
    ) -> Result<Self, NotForwardable> {
        let body = body.filter(|body| !body.is_empty()).ok_or(NotForwardable::NoBody)?;
        let mut message_attributes: HashMap<String, SqsMessageAttribute> = meta
            .message_attributes
            .iter()
            .filter(|(name, _)| !name.starts_with(attributes::PREFIX))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        if message_attributes.len() + attributes::ALL.len() > attributes::SQS_LIMIT {
            return Err(NotForwardable::TooManyAttributes { count: message_attributes.len() });
        }
        let source_queue = meta.event_source_arn.clone().unwrap_or_default();
        for (name, value, data_type) in [
            (attributes::FAILURE_REASON, short_reason(reason), "String"),
            (attributes::FAILED_FUNCTION, function.to_owned(), "String"),
            (attributes::RECEIVE_COUNT, meta.receive_count.to_string(), "Number"),
            (attributes::SOURCE_QUEUE, source_queue, "String"),
            (attributes::SOURCE_MESSAGE_ID, meta.message_id.clone(), "String"),
        ] {
            // SQS refuses an attribute with an empty value; a hand-made event may lack the ARN.
            if !value.is_empty() {
                message_attributes.insert(name.to_owned(), string_attribute(value, data_type));
            }
        }
        let fifo = queue_url.ends_with(".fifo");
        Ok(Self {
            body,
            message_attributes,
            message_group_id: meta.message_group_id.clone().filter(|_| fifo),
            deduplication_id: fifo.then(|| meta.message_id.clone()),
            trace_header: meta.attributes.get("AWSTraceHeader").cloned(),
        })
    }
}

fn string_attribute(value: String, data_type: &str) -> SqsMessageAttribute {
    let mut attribute = SqsMessageAttribute::default();
    attribute.string_value = Some(value);
    attribute.data_type = Some(data_type.to_owned());
    attribute
}

/// The reason as an operator may read it: addresses out, cut on a character boundary.
fn short_reason(reason: &str) -> String {
    let mut reason = crate::redact::email_addresses(reason);
    if reason.len() > attributes::MAX_REASON_BYTES {
        let mut end = attributes::MAX_REASON_BYTES - '…'.len_utf8();
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    if reason.is_empty() {
        reason.push_str("(no reason given)");
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta() -> RecordMeta {
        let mut meta = RecordMeta::new("m-1");
        meta.receive_count = 3;
        meta.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:orders.fifo".into());
        meta.message_group_id = Some("customer-7".into());
        meta.attributes.insert("AWSTraceHeader".into(), "Root=1-5759e988-bd862e3fe1be46a994272793".into());
        meta
    }

    #[test]
    fn the_copy_keeps_the_body_group_and_attributes_and_says_why() {
        let mut meta = meta();
        meta.message_attributes.insert("tenant".into(), string_attribute("t-1".into(), "String"));
        meta.message_attributes.insert(attributes::FAILURE_REASON.into(), string_attribute("an older failure".into(), "String"));
        let copy = DeadLetterMessage::for_record(
            &meta,
            Some("{\"a\": 1}".into()),
            "bad sku for ann@example.com",
            "inventory",
            "https://q/dlq.fifo",
        )
        .unwrap();
        assert_eq!(copy.body, "{\"a\": 1}");
        assert_eq!(copy.message_group_id.as_deref(), Some("customer-7"));
        assert_eq!(copy.deduplication_id.as_deref(), Some("m-1"));
        assert_eq!(copy.trace_header.as_deref(), Some("Root=1-5759e988-bd862e3fe1be46a994272793"));
        let value = |name: &str| copy.message_attributes[name].string_value.clone().unwrap();
        assert_eq!(value("tenant"), "t-1");
        assert_eq!(value(attributes::FAILURE_REASON), "bad sku for <address>");
        assert_eq!(value(attributes::FAILED_FUNCTION), "inventory");
        assert_eq!(value(attributes::RECEIVE_COUNT), "3");
        assert_eq!(copy.message_attributes[attributes::RECEIVE_COUNT].data_type.as_deref(), Some("Number"));
        assert_eq!(value(attributes::SOURCE_QUEUE), "arn:aws:sqs:us-east-1:123456789012:orders.fifo");
        assert_eq!(value(attributes::SOURCE_MESSAGE_ID), "m-1");
        assert_eq!(copy.message_attributes.len(), 6);
    }

    #[test]
    fn a_standard_queue_gets_no_group_and_a_record_that_cannot_fit_is_refused() {
        let copy = DeadLetterMessage::for_record(&meta(), Some("x".into()), "r", "f", "https://q/dlq").unwrap();
        assert_eq!((copy.message_group_id, copy.deduplication_id), (None, None));
        assert_eq!(DeadLetterMessage::for_record(&meta(), None, "r", "f", "https://q/dlq"), Err(NotForwardable::NoBody));
        let mut crowded = meta();
        for n in 0..6 {
            crowded.message_attributes.insert(format!("a{n}"), string_attribute("v".into(), "String"));
        }
        let error = DeadLetterMessage::for_record(&crowded, Some("x".into()), "r", "f", "https://q/dlq").unwrap_err();
        assert_eq!(error, NotForwardable::TooManyAttributes { count: 6 });
        assert!(error.to_string().contains("more than SQS's 10"), "{error}");
    }

    #[test]
    fn targets_parse_from_their_setting() {
        assert_eq!("redrive-policy".parse(), Ok(DeadLetterTarget::RedrivePolicy));
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq";
        assert_eq!(url.parse(), Ok(DeadLetterTarget::Queue(url.into())));
        for bad in ["on", "sqs://x/y", "https://", "https://host", "https://host/ x", "redrive"] {
            let error = bad.parse::<DeadLetterTarget>().unwrap_err();
            assert!(error.to_string().contains("redrive-policy, or the URL of a queue"), "{bad}: {error}");
        }
    }

    proptest! {
        /// A reason of any length and alphabet fits the attribute and keeps its start.
        #[test]
        fn reasons_are_cut_to_the_limit_on_a_character_boundary(reason in "\\PC{0,1500}") {
            let short = short_reason(&reason);
            prop_assert!(short.len() <= attributes::MAX_REASON_BYTES && !short.is_empty());
            let redacted = crate::redact::email_addresses(&reason);
            prop_assert!(redacted.starts_with(short.trim_end_matches('…')) || redacted.is_empty());
        }
    }
}
