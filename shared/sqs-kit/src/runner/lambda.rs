//! Lambda mode: the batch processor behind the Lambda Runtime API.
//!
//! With `AWS_LAMBDA_MAX_CONCURRENCY` above 1 (Lambda Managed Instances), `lambda_runtime`
//! serves that many invocations at once, each on a clone of the processor. The clones share the
//! record service (its store and caches); everything of one invocation (its deadline and request
//! id, its report and metrics document) comes from that invocation's own event and context.
//! Nothing may read an invocation's data from the environment: concurrent invocations share the
//! process, and `lambda_runtime` then leaves `_X_AMZN_TRACE_ID` unset.

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, Service};
use tracing::Instrument;

use crate::batch::{BatchError, BatchProcessor};
use crate::handler::RecordService;
use crate::metrics::Metrics;

pub(crate) async fn serve<S: RecordService>(processor: BatchProcessor<S>, metrics: Metrics) -> Result<(), lambda_runtime::Error> {
    warn_if_served_one_at_a_time_by_mistake();
    let processor = processor.on_report(move |invocation, report| {
        if let Some(document) = metrics.document(&invocation.function_name, report) {
            // Lambda sends stdout to CloudWatch Logs, which extracts the metrics. A line that
            // cannot be written costs the metrics, not the batch's response.
            if let Err(error) = crate::output::print_json(&document) {
                tracing::warn!(%error, "the embedded metric line was not written");
            }
        }
    });
    // Sequential, as `lambda_runtime::run` is, unless AWS_LAMBDA_MAX_CONCURRENCY says more.
    lambda_runtime::run_concurrent(tower::service_fn(move |event| invoke(&processor, event))).await
}

/// One invocation of `processor`, in a span naming its request id: the lines logged outside its
/// records' spans (which name it too) then say which of the overlapping invocations they are
/// about. `lambda_runtime`'s own span has the request id as well, but at info level, which a
/// function logging at warn or error filters out; this one is at error level, like the records'.
fn invoke<S: RecordService>(
    processor: &BatchProcessor<S>,
    event: LambdaEvent<SqsEvent>,
) -> impl Future<Output = Result<SqsBatchResponse, BatchError>> + Send + 'static {
    let span = tracing::error_span!("invocation", request_id = %event.context.request_id);
    processor.clone().call(event).instrument(span)
}

/// `lambda_runtime` serves one invocation at a time when `AWS_LAMBDA_MAX_CONCURRENCY` is not a
/// whole number above 0, and says nothing. The function still works that way, only slower
/// than the environment was sized for; the warning gives the slowness its cause.
fn warn_if_served_one_at_a_time_by_mistake() {
    let variable = crate::env::LAMBDA_MAX_CONCURRENCY;
    if let Some(value) = crate::env::var(variable).filter(|value| !is_concurrency(value)) {
        tracing::warn!("{variable}={value:?} is not a whole number above 0; serving one invocation at a time");
    }
}

/// Whether `lambda_runtime` reads `value` as a number of invocations (its rule: a `u32` above 0).
fn is_concurrency(value: &str) -> bool {
    value.parse::<u32>().is_ok_and(|limit| limit > 0)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::handler::{handler_fn, typed, RecordContext};
    use crate::{BatchConfig, RecordError};

    /// An invocation `request_id` of one record, due in 30 seconds.
    fn event(request_id: &str) -> LambdaEvent<SqsEvent> {
        let mut context = lambda_runtime::Context::default();
        context.request_id = request_id.to_owned();
        context.deadline = (SystemTime::now() + Duration::from_secs(30)).duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let records = serde_json::json!({"Records": [{"messageId": format!("{request_id}-m"), "body": "{}"}]});
        LambdaEvent::new(serde_json::from_value(records).unwrap(), context)
    }

    #[test]
    fn a_line_outside_the_records_names_its_own_invocation_at_the_quietest_level() {
        let slow = typed(handler_fn(|_: serde_json::Value, _cx: RecordContext| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, RecordError>(())
        }));
        // The observer runs after the records, where a failed metric line is logged.
        let processor = BatchProcessor::new(slow, BatchConfig::default())
            .on_report(|invocation, _| tracing::error!(reported_for = %invocation.request_id, "batch reported"));
        let lines = crate::runner::logging::lambda_lines("error", || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (first, second) =
                runtime.block_on(futures::future::join(invoke(&processor, event("req-1")), invoke(&processor, event("req-2"))));
            assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        for line in &lines {
            assert_eq!(line["span"]["name"], "invocation", "{line}");
            assert_eq!(line["span"]["request_id"], line["fields"]["reported_for"], "{line}");
        }
        assert_ne!(lines[0]["span"]["request_id"], lines[1]["span"]["request_id"], "{lines:?}");
    }

    #[test]
    fn only_a_whole_number_above_zero_is_a_concurrency() {
        for value in ["1", "4", "4294967295"] {
            assert!(is_concurrency(value), "{value}");
        }
        for value in ["0", "-1", "four", " 4", "4.0", "4294967296"] {
            assert!(!is_concurrency(value), "{value}");
        }
    }
}
