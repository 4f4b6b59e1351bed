//! `shipping status ORDER` and `shipping ship ORDER`: read an order's shipment, and mark it
//! shipped as a warehouse operator would, locally or in DynamoDB, as JSON
//! `{"orderId": "ORD-1001", "status": "CREATED", "trackingNumber": "SHP-..."}`.

use clap::Subcommand;
use sqs_kit::output::print_json;
use sqs_kit::runner::StoreArgs;

use crate::domain::{ShipmentStatus, ShipmentsPort};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an order's shipment as JSON: {"orderId", "status", "trackingNumber"}; status is
    /// CREATED, CANCELLED or SHIPPED. Exits 1 if the order has no shipment.
    Status {
        order_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Mark an order's CREATED shipment SHIPPED (it has left the warehouse, so a later
    /// cancellation no longer stops it) and print its new status. Exits 1 if the order has no
    /// CREATED shipment.
    Ship {
        order_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Status { order_id, store } => {
            let shipments = crate::shipments_port(&store.open_existing().await?)?;
            let shipment = shipments.shipment(&order_id).await?.ok_or_else(|| no_shipment(shipments.as_ref(), &order_id))?;
            print_json(&shipment.view())?;
        }
        Command::Ship { order_id, store } => {
            let shipments = crate::shipments_port(&store.open_existing().await?)?;
            if !shipments.ship(&order_id).await? {
                return Err(match shipments.shipment(&order_id).await? {
                    None => no_shipment(shipments.as_ref(), &order_id),
                    Some(shipment) => anyhow::anyhow!(
                        "the shipment of order {order_id} is {}; only a {} shipment can be shipped",
                        shipment.status,
                        ShipmentStatus::Created
                    ),
                });
            }
            let shipment = shipments.shipment(&order_id).await?.ok_or_else(|| no_shipment(shipments.as_ref(), &order_id))?;
            print_json(&shipment.view())?;
        }
    }
    Ok(())
}

fn no_shipment(shipments: &dyn ShipmentsPort, order_id: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "order {order_id} has no shipment in {}; one is created when the order's OrderPlaced event is processed \
         (check the order id, and --state or --store)",
        shipments.describe()
    )
}
