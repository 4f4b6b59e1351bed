//! Without the `Runner`: the tower stack built by hand and served by `lambda_runtime::run`.
//!
//! ```text
//! record service   typed(handler_fn(send_invoice)), wrapped by IdempotencyLayer (memory store)
//! batch service    BatchProcessor::new(record service, BatchConfig::default())
//! Lambda service   ServiceBuilder::new().layer(InvocationLogLayer).service(batch service)
//! ```
//!
//! The `BatchProcessor` is a `tower::Service<LambdaEvent<SqsEvent>>`, so any tower layer over
//! Lambda events stacks on it; `InvocationLogLayer` below is a small one of this example's own,
//! a line per invocation. `IdempotencyLayer` is a `tower::Layer` over record services.
//!
//! What the runner would add, and this leaves out: the local `replay` and `poll` modes, the
//! store each mode picks, the `SQS_KIT_*` settings, the embedded metric lines (see
//! `BatchProcessor::on_report` for a hook of one's own) and its log format. The records live
//! in memory here, so only a warm instance skips what it completed before; another instance, or
//! the next cold start, runs a repeat again. Give the layer a `DynamoDbStore` to share them.
//!
//! It serves Lambda only: run it where `AWS_LAMBDA_RUNTIME_API` is set (deployed, or under an
//! emulator such as `cargo lambda watch`), with `events/examples/invoices.json` as the event.

use std::fmt::Display;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::future::BoxFuture;
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use sqs_kit::store::MemoryStore;
use sqs_kit::{handler_fn, typed, BatchConfig, BatchProcessor, IdempotencyConfig, IdempotencyLayer, RecordContext, RecordError};
use tower::{Layer, Service, ServiceBuilder};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Invoice {
    invoice_id: String,
    customer: String,
    /// In cents.
    total: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sent {
    invoice_id: String,
    customer: String,
}

async fn send_invoice(invoice: Invoice, _cx: RecordContext) -> Result<Sent, RecordError> {
    tracing::info!(invoice_id = %invoice.invoice_id, customer = %invoice.customer, total = invoice.total, "invoice sent");
    Ok(Sent { invoice_id: invoice.invoice_id, customer: invoice.customer })
}

/// Logs each invocation's request id, size, failures and duration once the batch is answered.
#[derive(Clone, Copy, Debug)]
struct InvocationLogLayer;

impl<S> Layer<S> for InvocationLogLayer {
    type Service = InvocationLog<S>;

    fn layer(&self, inner: S) -> InvocationLog<S> {
        InvocationLog { inner }
    }
}

#[derive(Clone, Debug)]
struct InvocationLog<S> {
    inner: S,
}

impl<S> Service<LambdaEvent<SqsEvent>> for InvocationLog<S>
where
    S: Service<LambdaEvent<SqsEvent>, Response = SqsBatchResponse>,
    S::Error: Display + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = SqsBatchResponse;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<SqsBatchResponse, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<SqsEvent>) -> Self::Future {
        let request_id = event.context.request_id.clone();
        let records = event.payload.records.len();
        let started = Instant::now();
        let answer = self.inner.call(event);
        Box::pin(async move {
            let result = answer.await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match &result {
                Ok(response) => {
                    let failed = response.batch_item_failures.len();
                    tracing::info!(%request_id, records, failed, elapsed_ms, "batch answered");
                }
                // Every record will be retried (all of them failed, or one had no message id).
                Err(error) => tracing::warn!(%request_id, records, elapsed_ms, %error, "batch answered with an error"),
            }
            result
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Lambda sends stdout to CloudWatch Logs, where JSON lines can be queried by field.
    tracing_subscriber::fmt().json().with_max_level(tracing::Level::INFO).init();

    // An invalid key pointer is refused here, at start, not on the first record.
    let idempotency = IdempotencyLayer::new(Arc::new(MemoryStore::new()), IdempotencyConfig::keyed_by("/invoiceId"))?;
    let records = idempotency.layer(typed(handler_fn(send_invoice)));
    let batches = BatchProcessor::new(records, BatchConfig::default());
    lambda_runtime::run(ServiceBuilder::new().layer(InvocationLogLayer).service(batches)).await
}
