//! Lambda mode: the batch processor behind the Lambda Runtime API.

use crate::batch::BatchProcessor;
use crate::handler::RecordService;
use crate::metrics::Metrics;

pub(crate) async fn serve<S: RecordService>(processor: BatchProcessor<S>, metrics: Metrics) -> Result<(), lambda_runtime::Error> {
    let processor = processor.on_report(move |invocation, report| {
        if let Some(document) = metrics.document(&invocation.function_name, report) {
            // Lambda sends stdout to CloudWatch Logs, which extracts the metrics. A line that
            // cannot be written costs the metrics, not the batch's response.
            if let Err(error) = crate::output::print_json(&document) {
                tracing::warn!(%error, "the embedded metric line was not written");
            }
        }
    });
    lambda_runtime::run(processor).await
}
