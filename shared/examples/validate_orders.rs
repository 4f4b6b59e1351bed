//! A function that only validates order events: the smallest complete use of `sqs-kit`.
//!
//! ```text
//! cargo run -p sqs-kit --example validate_orders -- replay events/example/validate-orders.json
//! ```
//! prints the `batchItemFailures` Lambda would get (the records that are not valid orders) on
//! stdout, and why each record failed on stderr. Deployed with `AWS_LAMBDA_RUNTIME_API` set, the
//! same binary serves Lambda.

use std::process::ExitCode;

use orders::OrderEvent;
use serde::Serialize;
use sqs_kit::runner::Runner;
use sqs_kit::{handler_fn, typed, RecordContext, RecordError};

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
    Ok(Validated { order_id: order.order_id, items: order.items.len() })
}

#[tokio::main]
async fn main() -> ExitCode {
    Runner::new("validate_orders", typed(handler_fn(validate))).run().await
}
