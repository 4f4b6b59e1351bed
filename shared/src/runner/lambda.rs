//! Lambda mode: the batch processor behind the Lambda Runtime API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

use crate::batch::BatchProcessor;
use crate::handler::RecordService;
use crate::metrics::Metrics;
use crate::record::InvocationContext;

pub(crate) async fn serve<S: RecordService>(processor: BatchProcessor<S>, metrics: Metrics) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (processor, metrics) = (processor.clone(), metrics.clone());
        async move {
            let invocation = InvocationContext {
                deadline: deadline(event.context.deadline),
                function_name: event.context.env_config.function_name.clone(),
                request_id: event.context.request_id.clone(),
            };
            let function_name = invocation.function_name.clone();
            let report = processor.process(event.payload, invocation).await?;
            if let Some(document) = metrics.document(&function_name, &report) {
                // Lambda sends stdout to CloudWatch Logs, which extracts the metrics. A line
                // that cannot be written costs the metrics, not the batch's response.
                if let Err(error) = crate::output::print_json(&document) {
                    tracing::warn!(%error, "the embedded metric line was not written");
                }
            }
            processor.respond(&report).map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

/// Any epoch-millisecond deadline of this century is above this.
const EPOCH_2001_MS: u64 = 978_307_200_000;

/// The invocation deadline from `Lambda-Runtime-Deadline-Ms`: epoch milliseconds from Lambda.
/// `cargo lambda watch`'s emulator sends the function timeout there instead (600000 for ten
/// minutes); read as an epoch time, that deadline passed in 1970 and no record would ever
/// start, so a value that small counts as the time left from now.
fn deadline(header_ms: u64) -> SystemTime {
    if header_ms < EPOCH_2001_MS {
        SystemTime::now() + Duration::from_millis(header_ms)
    } else {
        UNIX_EPOCH + Duration::from_millis(header_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_deadline_is_taken_as_is_and_a_timeout_as_time_left() {
        assert_eq!(deadline(1_764_061_230_000), UNIX_EPOCH + Duration::from_millis(1_764_061_230_000));
        let left = deadline(600_000).duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600), "{left:?}");
    }
}
