//! An idempotent function: each payment is captured once, however often SQS (or the producer)
//! delivers it.
//!
//! The key is the body's `paymentId`, read by a JSON Pointer, so a payment the producer sent
//! twice (two SQS messages, two message ids) counts as one. Where the records live depends on
//! the mode, not on this code:
//!
//! - in Lambda, the DynamoDB table `IDEMPOTENCY_TABLE` names (partition key `id`, a string;
//!   TTL on `expiration`);
//! - locally, the embedded store (SQLite under `--state`, default `.local/`), or the same
//!   DynamoDB table with `--store dynamodb` (AWS, or the API at `AWS_ENDPOINT_URL`).
//!
//! ```text
//! cargo run -p sqs-kit --example dynamodb_idempotent -- replay events/examples/payments.json
//! IDEMPOTENCY_TABLE=payments-idempotency \
//!   cargo run -p sqs-kit --example dynamodb_idempotent -- replay events/examples/payments.json --store dynamodb
//! ```
//!
//! Replay the file a second time on the same store and every payment is a duplicate: its
//! handler is not called and the output stored by the first capture is reported instead.

use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use sqs_kit::runner::Runner;
use sqs_kit::{handler_fn, typed, IdempotencyConfig, RecordContext, RecordError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payment {
    payment_id: String,
    /// In the currency's smallest unit (cents), so that no amount is rounded.
    amount: u64,
    currency: String,
}

/// Stored with the completed idempotency record and handed back, unchanged, for duplicates.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Captured {
    payment_id: String,
    amount: u64,
    currency: String,
}

async fn capture(payment: Payment, _cx: RecordContext) -> Result<Captured, RecordError> {
    if payment.amount == 0 {
        // Permanent: every retry would be refused the same way, so the message may go straight
        // on towards the dead-letter queue. The idempotency record is released, not completed.
        return Err(RecordError::permanent(format!("payment {} is for 0 {}; nothing to capture", payment.payment_id, payment.currency)));
    }
    // The side effect (a call to a payment provider, say) goes here. The layer claimed the key
    // before this ran and marks it completed after it returns, so a concurrent delivery of the
    // same payment finds the claim and is retried later instead of running beside this one.
    tracing::info!(payment_id = %payment.payment_id, amount = payment.amount, currency = %payment.currency, "payment captured");
    Ok(Captured { payment_id: payment.payment_id, amount: payment.amount, currency: payment.currency })
}

#[tokio::main]
async fn main() -> ExitCode {
    Runner::new("dynamodb_idempotent", typed(handler_fn(capture))).idempotent(IdempotencyConfig::keyed_by("/paymentId")).run().await
}
