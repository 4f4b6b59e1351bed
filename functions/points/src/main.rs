//! `points`: credits `floor(totalAmount × rate)` loyalty points per placed order, with a ledger
//! entry, in the same transaction as the order event's idempotency record; a cancellation
//! reverses exactly what the order accrued.
//!
//! Runs under Lambda (DynamoDB), or locally: `points replay FILE`, `points balance CUSTOMER` on
//! the embedded store (`--store dynamodb` for DynamoDB).

mod commands;
mod domain;
mod dynamodb;
mod embedded;
mod rate;

use std::process::ExitCode;
use std::sync::Arc;

use sqs_kit::runner::{BadInput, Runner};
use sqs_kit::store::Backend;
use sqs_kit::{typed, IdempotencyConfig};

use domain::{Points, PointsPort};
use rate::PointsRate;

/// The points adapter for the backend the run mode picked.
pub(crate) fn points_port(backend: &Backend) -> anyhow::Result<Arc<dyn PointsPort>> {
    Ok(match backend {
        Backend::Embedded(store) => Arc::new(embedded::EmbeddedPoints::new(Arc::clone(store))?),
        Backend::DynamoDb(store) => Arc::new(dynamodb::DynamoDbPoints::from_env(store.client().clone())?),
        other => return Err(other.unsupported("points").into()),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    Runner::with_backend("points", |backend| {
        // A wrong setting, not a failure: exit 2 locally; in Lambda, the init fails with it.
        let rate = PointsRate::from_env().map_err(|e| BadInput(e.to_string()))?;
        Ok(typed(Points::new(points_port(backend)?, rate)))
    })
    .idempotent(IdempotencyConfig::keyed_by("/eventId").transactional())
    .with_commands(commands::run)
    .run()
    .await
}
