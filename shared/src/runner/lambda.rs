//! Lambda mode: the batch processor behind the Lambda Runtime API.

use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

use crate::batch::BatchProcessor;
use crate::handler::RecordService;
use crate::metrics::Metrics;
use crate::record::InvocationContext;

pub(crate) async fn serve<S: RecordService>(processor: BatchProcessor<S>) -> Result<(), lambda_runtime::Error> {
    let metrics = Metrics::from_env();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (processor, metrics) = (processor.clone(), metrics.clone());
        async move {
            let invocation = InvocationContext {
                deadline: UNIX_EPOCH + Duration::from_millis(event.context.deadline),
                function_name: event.context.env_config.function_name.clone(),
                request_id: event.context.request_id.clone(),
            };
            let function_name = invocation.function_name.clone();
            let report = processor.process(event.payload, invocation).await?;
            if let Some(document) = metrics.document(&function_name, &report) {
                // Lambda sends stdout to CloudWatch Logs, which extracts the metrics.
                println!("{document}");
            }
            processor.respond(&report).map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

