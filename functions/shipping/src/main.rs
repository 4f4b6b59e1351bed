//! `shipping`: creates one shipment per placed order (with a tracking number derived from the
//! order id) by a write conditional on the order having none, and cancels it on cancellation if
//! it has not shipped yet. Fed by a standard queue, so events may come twice or out of order;
//! see `domain` for how every order of arrival ends in one shipment.
//!
//! Runs under Lambda (DynamoDB), or locally: `shipping replay FILE`, `shipping status ORDER`,
//! `shipping ship ORDER` on the embedded store (`--store dynamodb` for DynamoDB).

mod commands;
mod domain;
mod dynamodb;
mod embedded;

use std::process::ExitCode;
use std::sync::Arc;

use sqs_kit::runner::Runner;
use sqs_kit::store::Backend;
use sqs_kit::{typed, IdempotencyConfig};

use domain::{ShipmentsPort, Shipping};

/// The shipments adapter for the backend the run mode picked.
pub(crate) fn shipments_port(backend: &Backend) -> anyhow::Result<Arc<dyn ShipmentsPort>> {
    Ok(match backend {
        Backend::Embedded(store) => Arc::new(embedded::EmbeddedShipments::new(Arc::clone(store))?),
        Backend::DynamoDb(store) => Arc::new(dynamodb::DynamoDbShipments::from_env(store.client().clone())?),
        other => return Err(other.unsupported("shipping").into()),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    // Claim mode, not transactional: the shipment's own conditional write (see `domain`) is what
    // keeps a retry after a crash from creating a second one.
    Runner::with_backend("shipping", |backend| Ok(typed(Shipping::new(shipments_port(backend)?))))
        .idempotent(IdempotencyConfig::keyed_by("/eventId"))
        .with_commands(commands::run)
        .run()
        .await
}
