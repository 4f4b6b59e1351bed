//! What ties a record's work to the rest of the system: the span every log line about a record
//! carries, and (with the `opentelemetry` feature) the link from that span to the producer's
//! trace, read from the record's `AWSTraceHeader` system attribute.
//!
//! `docs/tracing.md` in the repository describes what a function gets and what it costs.

#[cfg(feature = "opentelemetry")]
mod otel;
mod xray;

use crate::record::{InvocationContext, RecordMeta};
use xray::TraceHeader;

/// The system attribute in which SQS hands on the producer's X-Ray tracing header.
const TRACE_HEADER_ATTRIBUTE: &str = "AWSTraceHeader";

/// The span every log line about a record carries: what an operator searches the logs by. At
/// error level, so that no log level the lines pass filters it out.
///
/// `trace_id` is the producer's trace id in X-Ray's form, present only when the record has a
/// well-formed `AWSTraceHeader`: the field a Logs Insights query joins the record's lines to
/// the producer's trace by.
pub(crate) fn record_span(meta: &RecordMeta, invocation: &InvocationContext) -> tracing::Span {
    let producer = meta.attributes.get(TRACE_HEADER_ATTRIBUTE).and_then(|header| TraceHeader::parse(header));
    let span = tracing::error_span!(
        "record",
        message_id = %meta.message_id,
        receive_count = meta.receive_count,
        request_id = %invocation.request_id,
        trace_id = producer.as_ref().map(|producer| tracing::field::display(producer.root())),
        // Filled in by the idempotency layer, hashed: a key can be personal data.
        idempotency_key = tracing::field::Empty,
        // The OpenTelemetry span's name and kind, which tracing-opentelemetry reads only from
        // fields; recorded by the `opentelemetry` feature, and left out of log lines otherwise.
        "otel.name" = tracing::field::Empty,
        "otel.kind" = tracing::field::Empty,
    );
    #[cfg(feature = "opentelemetry")]
    otel::describe(&span, meta, producer.as_ref());
    span
}

/// Marks `span`, the record's, with the record's outcome once it is known: `outcome` is one of
/// `processed`, `duplicate`, `failed_transient`, `failed_permanent`, `dead_lettered`,
/// `not_attempted` (see `Outcome::label`). Only the OpenTelemetry span keeps it: the log line
/// of the outcome says it already.
pub(crate) fn record_outcome(span: &tracing::Span, outcome: &str) {
    #[cfg(feature = "opentelemetry")]
    otel::outcome(span, outcome);
    #[cfg(not(feature = "opentelemetry"))]
    let _ = (span, outcome);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_lambda_events::event::sqs::SqsEvent;
    use serde_json::json;

    use crate::handler::{handler_fn, typed, RecordContext};
    use crate::{BatchConfig, BatchProcessor, InvocationContext, RecordError};

    #[test]
    fn a_records_lambda_log_lines_carry_its_producers_trace_id_in_x_ray_form() {
        let records = [
            (
                "m-sampled",
                Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
                Some("1-5759e988-bd862e3fe1be46a994272793"),
            ),
            ("m-no-parent", Some("Sampled=1;Root=1-6a1b2c3d-000000000000000000000abc"), Some("1-6a1b2c3d-000000000000000000000abc")),
            ("m-malformed", Some("Root=1-5759e988-bd862e3fe1be46a99427279z;Parent=53995c3f42cd8ad8;Sampled=1"), None),
            ("m-untraced", None, None),
        ];
        let event: Vec<serde_json::Value> = records
            .iter()
            .map(|(id, header, _)| {
                let mut record = json!({"messageId": id, "body": "{}", "attributes": {}});
                if let Some(header) = header {
                    record["attributes"]["AWSTraceHeader"] = json!(header);
                }
                record
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({ "Records": event })).unwrap();
        let handler = typed(handler_fn(|_: serde_json::Value, _cx: RecordContext| async {
            tracing::error!("handling the record");
            Ok::<_, RecordError>(())
        }));
        let processor = BatchProcessor::new(handler, BatchConfig::default());
        // Lambda mode's own subscriber, at the quietest level: the field must not need info.
        let lines = crate::runner::logging::lambda_lines("error", || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let invocation = InvocationContext::with_remaining("f", "r", Duration::from_secs(30));
            runtime.block_on(processor.handle_event(event, invocation)).unwrap();
        });
        for (id, _, trace_id) in records {
            let of_record: Vec<&serde_json::Value> = lines.iter().filter(|line| line["span"]["message_id"] == id).collect();
            assert_eq!(of_record.len(), 1, "{id}: {lines:#?}");
            assert_eq!(of_record[0]["span"]["trace_id"].as_str(), trace_id, "{id}: {}", of_record[0]);
        }
    }
}
