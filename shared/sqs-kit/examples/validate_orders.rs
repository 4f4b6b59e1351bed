//! A function that only validates order events: the smallest complete use of `sqs-kit`.
//!
//! ```text
//! cargo run -p sqs-kit --example validate_orders -- replay events/example/validate-orders.json
//! ```
//! prints the `batchItemFailures` Lambda would get (the records that are not valid orders) on
//! stdout, and why each record failed on stderr. It is idempotent on `/eventId`: replay the same
//! file again and the valid orders are reported as duplicates, their handler not called (the
//! records live in the embedded store under `.local/`, or `--state DIR`). Deployed with `AWS_LAMBDA_RUNTIME_API` set, the
//! same binary serves Lambda.

use std::process::ExitCode;

use orders::OrderEvent;
use serde::Serialize;
use sqs_kit::runner::Runner;
use sqs_kit::{handler_fn, typed, IdempotencyConfig, RecordContext, RecordError};

/// What the handler reports for a valid order; a duplicate delivery gets it back unchanged.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Validated {
    order_id: String,
    items: usize,
}

/// Deserializing into `OrderEvent` already validated the body: a missing field, an empty item
/// list or a non-positive quantity never gets here; the batch layer reports it as permanent.
async fn validate(order: OrderEvent, _cx: RecordContext) -> Result<Validated, RecordError> {
    tracing::info!(order_id = %order.order_id, "order is valid");
    Ok(Validated { order_id: order.order_id, items: order.items.len() })
}

#[tokio::main]
async fn main() -> ExitCode {
    // Keyed on the event id, so a re-sent event is recognised even under a new message id.
    Runner::new("validate_orders", typed(handler_fn(validate))).idempotent(IdempotencyConfig::keyed_by("/eventId")).run().await
}
