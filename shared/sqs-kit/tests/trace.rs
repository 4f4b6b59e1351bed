//! Trace correlation: a record's log lines carry its producer's X-Ray trace id, and with the
//! `opentelemetry` feature each record is one consumer span, under the invocation's span and
//! linked to the producer's span named by the record's `AWSTraceHeader`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use common::{event, invocation, record};
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::Deserialize;
use serde_json::json;
use sqs_kit::{handler_fn, typed, BatchConfig, BatchProcessor, RecordContext, RecordError};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// Sampled, with a parent: X-Ray's own example.
const SAMPLED: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
/// Not sampled, fields in another order, with a field sqs-kit does not read.
const UNSAMPLED: &str = "Parent=1234567890abcdef;Lineage=a87bd80c:1|68fd508a:5;Sampled=0;Root=1-67891233-abcdef012345678912345678";
/// A trace but no parent span: a trace id for the lines, nothing to link to.
const NO_PARENT: &str = "Root=1-6a1b2c3d-000000000000000000000abc;Sampled=1";
/// One Root digit is not hex.
const MALFORMED: &str = "Root=1-5759e988-bd862e3fe1be46a99427279z;Parent=53995c3f42cd8ad8;Sampled=1";

#[derive(Deserialize)]
struct Job {
    action: String,
}

/// A batch of one queue (`orders-email`): each record's body says what the handler does with
/// it, and its `AWSTraceHeader` (if any) who produced it.
fn batch() -> SqsEvent {
    let traced = |id: &str, action: &str, header: Option<&str>, receive_count: u32| {
        let mut record = record(id, &json!({ "action": action }).to_string());
        record["attributes"]["ApproximateReceiveCount"] = json!(receive_count.to_string());
        if let Some(header) = header {
            record["attributes"]["AWSTraceHeader"] = json!(header);
        }
        record
    };
    event(vec![
        traced("m-sampled", "ok", Some(SAMPLED), 1),
        traced("m-unsampled", "poison", Some(UNSAMPLED), 3),
        traced("m-no-parent", "ok", Some(NO_PARENT), 1),
        traced("m-malformed", "fail", Some(MALFORMED), 2),
        traced("m-untraced", "ok", None, 1),
    ])
}

/// Runs the batch under an `invocation` span, as Lambda mode and lambda_runtime's layer do; the
/// handler logs one line per record.
async fn process(batch: SqsEvent) -> SqsBatchResponse {
    let handler = handler_fn(|job: Job, cx: RecordContext| async move {
        tracing::info!(action = %job.action, "handling the record");
        match job.action.as_str() {
            "ok" => Ok(json!({"done": cx.meta.message_id})),
            "poison" => Err(RecordError::permanent("the order has no items")),
            _ => Err(RecordError::transient("the downstream service timed out")),
        }
    });
    let processor = BatchProcessor::new(typed(handler), BatchConfig::default());
    let invocation_span = tracing::info_span!("invocation");
    processor.handle_event(batch, invocation(Duration::from_secs(30))).instrument(invocation_span).await.unwrap()
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    let mut ids: Vec<&str> = response.batch_item_failures.iter().map(|failure| failure.item_identifier.as_str()).collect();
    ids.sort_unstable();
    ids
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|attribute| attribute.key.as_str() == key).map(|attribute| &attribute.value)
}

/// The spans the SDK exported while the batch ran: the invocation's and the records' (by
/// message id).
async fn exported_spans() -> (SpanData, HashMap<String, SpanData>) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("sqs-kit-test")));
    // The test's runtime has one thread, so the records' tasks run under this subscriber too.
    let response = {
        let _default = tracing::subscriber::set_default(subscriber);
        process(batch()).await
    };
    assert_eq!(failed_ids(&response), ["m-malformed", "m-unsampled"]);
    let spans = exporter.get_finished_spans().unwrap();
    let mut invocations: Vec<SpanData> = spans.iter().filter(|span| span.name == "invocation").cloned().collect();
    assert_eq!(invocations.len(), 1, "{spans:#?}");
    let records: Vec<SpanData> = spans.into_iter().filter(|span| span.span_kind == SpanKind::Consumer).collect();
    let count = records.len();
    let by_id: HashMap<String, SpanData> =
        records.into_iter().map(|span| (attribute(&span, "messaging.message.id").expect("a message id").to_string(), span)).collect();
    assert_eq!((count, by_id.len()), (5, 5), "one span per record: {by_id:#?}");
    (invocations.remove(0), by_id)
}

#[tokio::test]
async fn each_record_is_one_consumer_span_under_the_invocation_with_the_messaging_attributes() {
    let (invocation, records) = exported_spans().await;
    let receive_counts = [("m-sampled", 1), ("m-unsampled", 3), ("m-no-parent", 1), ("m-malformed", 2), ("m-untraced", 1)];
    for (id, receive_count) in receive_counts {
        let span = &records[id];
        assert_eq!(span.name, "process orders-email", "{id}");
        // A child of the invocation, in its trace: the producer's is linked, not the parent.
        assert_eq!(span.parent_span_id, invocation.span_context.span_id(), "{id}");
        assert_eq!(span.span_context.trace_id(), invocation.span_context.trace_id(), "{id}");
        assert_eq!(attribute(span, "messaging.system"), Some(&Value::from("aws_sqs")), "{id}");
        assert_eq!(attribute(span, "messaging.operation.type"), Some(&Value::from("process")), "{id}");
        assert_eq!(attribute(span, "messaging.operation.name"), Some(&Value::from("process")), "{id}");
        assert_eq!(attribute(span, "messaging.destination.name"), Some(&Value::from("orders-email")), "{id}");
        assert_eq!(attribute(span, "sqs_kit.receive_count"), Some(&Value::I64(receive_count)), "{id}");
    }
    let outcomes = [
        ("m-sampled", "processed", Status::Unset),
        ("m-unsampled", "failed_permanent", Status::error("failed_permanent")),
        ("m-no-parent", "processed", Status::Unset),
        ("m-malformed", "failed_transient", Status::error("failed_transient")),
        ("m-untraced", "processed", Status::Unset),
    ];
    for (id, outcome, status) in outcomes {
        let span = &records[id];
        assert_eq!(attribute(span, "sqs_kit.outcome"), Some(&Value::from(outcome)), "{id}");
        assert_eq!(span.status, status, "{id}");
        let error_type = (status != Status::Unset).then(|| Value::from(outcome));
        assert_eq!(attribute(span, "error.type"), error_type.as_ref(), "{id}");
    }
}

#[tokio::test]
async fn a_record_with_a_producer_span_is_linked_to_it_and_the_others_are_not() {
    let (_, records) = exported_spans().await;
    let linked = [
        ("m-sampled", "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8", true),
        ("m-unsampled", "67891233abcdef012345678912345678", "1234567890abcdef", false),
    ];
    for (id, trace_id, span_id, sampled) in linked {
        let links = &records[id].links.links;
        assert_eq!(links.len(), 1, "{id}: {links:?}");
        let producer = &links[0].span_context;
        assert_eq!(producer.trace_id().to_string(), trace_id, "{id}");
        assert_eq!(producer.span_id().to_string(), span_id, "{id}");
        assert_eq!(producer.is_sampled(), sampled, "{id}");
        assert!(producer.is_remote(), "{id}");
    }
    for id in ["m-no-parent", "m-malformed", "m-untraced"] {
        assert!(records[id].links.is_empty(), "{id}: {:?}", records[id].links);
    }
}
