//! Shipments in the embedded store's database, beside the idempotency records, so that a local
//! replay leaves all of an order's state in one place.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use sqs_kit::store::{EmbeddedStore, IdempotencyStore};

use crate::domain::{Shipment, ShipmentStatus, ShipmentsPort};

pub struct EmbeddedShipments {
    store: Arc<EmbeddedStore>,
}

impl EmbeddedShipments {
    pub fn new(store: Arc<EmbeddedStore>) -> anyhow::Result<Self> {
        store.with_connection("create the shipments table", |connection| {
            connection.execute_batch(
                "CREATE TABLE IF NOT EXISTS shipping_shipments (
                     order_id TEXT PRIMARY KEY,
                     event_id TEXT NOT NULL,
                     status TEXT NOT NULL,
                     tracking_number TEXT NOT NULL,
                     address TEXT,
                     cancel_event_id TEXT
                 );",
            )
        })?;
        Ok(Self { store })
    }

    /// `UPDATE`s the order's shipment iff it is `CREATED`; whether it was.
    fn transition(
        &self,
        operation: &'static str,
        order_id: &str,
        to: ShipmentStatus,
        cancel_event_id: Option<&str>,
    ) -> anyhow::Result<bool> {
        let changed = self.store.with_connection(operation, |connection| {
            connection.execute(
                "UPDATE shipping_shipments SET status = ?2, cancel_event_id = COALESCE(?3, cancel_event_id)
                 WHERE order_id = ?1 AND status = 'CREATED'",
                params![order_id, to.as_str(), cancel_event_id],
            )
        })?;
        Ok(changed == 1)
    }
}

#[async_trait]
impl ShipmentsPort for EmbeddedShipments {
    fn describe(&self) -> String {
        self.store.describe()
    }

    async fn create(&self, shipment: &Shipment) -> anyhow::Result<bool> {
        let address = shipment.address.as_ref().map(serde_json::to_string).transpose()?;
        let inserted = self.store.with_connection("create a shipment", |connection| {
            connection.execute(
                "INSERT INTO shipping_shipments (order_id, event_id, status, tracking_number, address, cancel_event_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (order_id) DO NOTHING",
                params![
                    shipment.order_id,
                    shipment.event_id,
                    shipment.status.as_str(),
                    shipment.tracking_number,
                    address,
                    shipment.cancel_event_id,
                ],
            )
        })?;
        Ok(inserted == 1)
    }

    async fn cancel(&self, order_id: &str, event_id: &str) -> anyhow::Result<bool> {
        self.transition("cancel a shipment", order_id, ShipmentStatus::Cancelled, Some(event_id))
    }

    async fn ship(&self, order_id: &str) -> anyhow::Result<bool> {
        self.transition("ship a shipment", order_id, ShipmentStatus::Shipped, None)
    }

    async fn shipment(&self, order_id: &str) -> anyhow::Result<Option<Shipment>> {
        let row = self.store.with_connection("read a shipment", |connection| {
            connection
                .query_row(
                    "SELECT event_id, status, tracking_number, address, cancel_event_id
                     FROM shipping_shipments WHERE order_id = ?1",
                    [order_id],
                    |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, Option<String>>(3)?,
                            row.get::<_, Option<String>>(4)?,
                        ))
                    },
                )
                .optional()
        })?;
        let Some((event_id, status, tracking_number, address, cancel_event_id)) = row else { return Ok(None) };
        let describe = || format!("the shipment of order {order_id} in {}", self.store.describe());
        Ok(Some(Shipment {
            order_id: order_id.to_owned(),
            event_id,
            status: ShipmentStatus::parse(&status).ok_or_else(|| anyhow::anyhow!("{} has an unknown status {status:?}", describe()))?,
            tracking_number,
            address: address
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|e| anyhow::anyhow!("{} has an unreadable address: {e}", describe()))?,
            cancel_event_id,
        }))
    }
}
