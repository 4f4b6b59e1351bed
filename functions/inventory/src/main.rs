//! `inventory`: reserves stock for every item of an order, all items or none, in the same
//! transaction as the order event's idempotency record; releases it when the order is cancelled.
//!
//! Runs under Lambda (DynamoDB), or locally: `inventory replay FILE`, `inventory seed FILE`,
//! `inventory stock [SKU]` on the embedded store (`--store dynamodb` for DynamoDB).

mod commands;
mod domain;
mod dynamodb;
mod embedded;

use std::process::ExitCode;
use std::sync::Arc;

use sqs_kit::runner::Runner;
use sqs_kit::store::Backend;
use sqs_kit::{typed, IdempotencyConfig};

use domain::{Inventory, StockPort};

/// The stock adapter for the backend the run mode picked.
pub(crate) fn stock_port(backend: &Backend) -> anyhow::Result<Arc<dyn StockPort>> {
    Ok(match backend {
        Backend::Embedded(store) => Arc::new(embedded::EmbeddedStock::new(Arc::clone(store))?),
        Backend::DynamoDb(store) => Arc::new(dynamodb::DynamoDbStock::from_env(store.client().clone())?),
        other => return Err(other.unsupported("inventory").into()),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    Runner::with_backend("inventory", |backend| Ok(typed(Inventory::new(stock_port(backend)?))))
        .idempotent(IdempotencyConfig::keyed_by("/eventId").transactional())
        .with_commands(commands::run)
        .run()
        .await
}
