//! The record span as an OpenTelemetry span: a consumer's `process` span of the messaging
//! semantic conventions, linked to the producer's span.
//!
//! Everything here goes through `tracing-opentelemetry`'s span extension, which does nothing
//! when no OpenTelemetry layer is installed: the span is then a tracing span as without the
//! feature.

use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::xray::TraceHeader;
use crate::record::RecordMeta;

/// The messaging conventions' names of a consumer's process span.
const OPERATION: &str = "process";
/// The conventions' own attributes.
const MESSAGING_SYSTEM: &str = "messaging.system";
const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
const ERROR_TYPE: &str = "error.type";
/// The conventions have no attribute for SQS's receive count, nor for a record's outcome: these
/// are sqs-kit's own, in its namespace.
const RECEIVE_COUNT: &str = "sqs_kit.receive_count";
const OUTCOME: &str = "sqs_kit.outcome";

/// Names the record span after the queue, makes it a consumer span with the messaging
/// attributes, and links it to the producer's span when the tracing header names one.
pub(super) fn describe(span: &tracing::Span, meta: &RecordMeta, producer: Option<&TraceHeader>) {
    let queue = meta.event_source_arn.as_deref().and_then(crate::record::QueueArn::parse).map(|arn| arn.name);
    // Before the span is first entered, where the layer starts the OpenTelemetry span.
    let name = queue.map_or_else(|| OPERATION.to_owned(), |queue| format!("{OPERATION} {queue}"));
    span.record("otel.name", name.as_str());
    span.record("otel.kind", "consumer");
    span.set_attribute(MESSAGING_SYSTEM, "aws_sqs");
    span.set_attribute(MESSAGING_OPERATION_TYPE, OPERATION);
    span.set_attribute(MESSAGING_OPERATION_NAME, OPERATION);
    span.set_attribute(MESSAGING_MESSAGE_ID, meta.message_id.clone());
    if let Some(queue) = queue {
        span.set_attribute(MESSAGING_DESTINATION_NAME, queue.to_owned());
    }
    span.set_attribute(RECEIVE_COUNT, i64::from(meta.receive_count));
    if let Some(producer) = producer.and_then(producer_span) {
        span.add_link(producer);
    }
}

/// Sets the outcome attribute, and marks the span failed when the handler's work failed
/// (a record never attempted did no work that could fail).
pub(super) fn outcome(span: &tracing::Span, outcome: &str) {
    span.set_attribute(OUTCOME, outcome.to_owned());
    if matches!(outcome, "failed_transient" | "failed_permanent" | "dead_lettered") {
        span.set_attribute(ERROR_TYPE, outcome.to_owned());
        span.set_status(Status::error(outcome.to_owned()));
    }
}

/// The producer's span as a remote span context; `None` when the header names no parent
/// (X-Ray's trace alone is no span to link to).
fn producer_span(header: &TraceHeader) -> Option<SpanContext> {
    let parent = header.parent_id?;
    let flags = if header.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    Some(SpanContext::new(TraceId::from(header.trace_id), SpanId::from(parent), flags, true, TraceState::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_span_is_the_headers_parent_with_its_sampling() {
        let header = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1").unwrap();
        let producer = producer_span(&header).unwrap();
        assert_eq!(producer.trace_id().to_string(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(producer.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(producer.is_sampled() && producer.is_remote() && producer.is_valid());
        let unsampled = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0").unwrap();
        assert!(!producer_span(&unsampled).unwrap().is_sampled());
        let no_parent = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1").unwrap();
        assert_eq!(producer_span(&no_parent), None);
    }
}
