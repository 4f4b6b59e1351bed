//! Shipments in the DynamoDB table named by `SHIPMENTS_TABLE` (partition key `orderId`, one item
//! per order): `eventId`, `status`, `trackingNumber`, `address` (a map), `cancelEventId`.

use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use orders::{config, Address};
use sqs_kit::store::attributes::{s, sdk_error, text, Item};

use crate::domain::{Shipment, ShipmentStatus, ShipmentsPort};

pub struct DynamoDbShipments {
    client: Client,
    table: String,
}

fn address_item(address: &Address) -> AttributeValue {
    let mut map = Item::from([
        ("name".to_owned(), s(&address.name)),
        ("line1".to_owned(), s(&address.line1)),
        ("city".to_owned(), s(&address.city)),
        ("postalCode".to_owned(), s(&address.postal_code)),
        ("country".to_owned(), s(&address.country)),
    ]);
    if let Some(line2) = &address.line2 {
        map.insert("line2".to_owned(), s(line2));
    }
    AttributeValue::M(map)
}

fn address_from(map: &Item) -> anyhow::Result<Address> {
    let field = |name: &str| text(map, name).map(str::to_owned).ok_or_else(|| anyhow!("its address has no {name}"));
    Ok(Address {
        name: field("name")?,
        line1: field("line1")?,
        line2: text(map, "line2").map(str::to_owned),
        city: field("city")?,
        postal_code: field("postalCode")?,
        country: field("country")?,
    })
}

impl DynamoDbShipments {
    pub fn from_env(client: Client) -> anyhow::Result<Self> {
        let table = config::required(config::SHIPMENTS_TABLE, "the DynamoDB shipments table (partition key orderId)")?;
        Ok(Self { client, table })
    }

    /// `UpdateItem`s the order's shipment iff it is `CREATED`; whether it was.
    async fn transition(&self, order_id: &str, to: ShipmentStatus, cancel_event_id: Option<&str>) -> anyhow::Result<bool> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("orderId", s(order_id))
            .condition_expression("#status = :created")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":created", s(ShipmentStatus::Created.as_str()))
            .expression_attribute_values(":to", s(to.as_str()));
        update = match cancel_event_id {
            Some(event_id) => {
                update.update_expression("SET #status = :to, cancelEventId = :event").expression_attribute_values(":event", s(event_id))
            }
            None => update.update_expression("SET #status = :to"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(error) => Err(anyhow!("{}: cannot mark the shipment of order {order_id} {to}: {}", self.describe(), sdk_error(&error))),
        }
    }
}

#[async_trait]
impl ShipmentsPort for DynamoDbShipments {
    fn describe(&self) -> String {
        format!("DynamoDB table {}", self.table)
    }

    async fn create(&self, shipment: &Shipment) -> anyhow::Result<bool> {
        let mut item = Item::from([
            ("orderId".to_owned(), s(&shipment.order_id)),
            ("eventId".to_owned(), s(&shipment.event_id)),
            ("status".to_owned(), s(shipment.status.as_str())),
            ("trackingNumber".to_owned(), s(&shipment.tracking_number)),
        ]);
        if let Some(address) = &shipment.address {
            item.insert("address".to_owned(), address_item(address));
        }
        if let Some(event_id) = &shipment.cancel_event_id {
            item.insert("cancelEventId".to_owned(), s(event_id));
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(orderId)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(error) => {
                Err(anyhow!("{}: cannot write the shipment of order {}: {}", self.describe(), shipment.order_id, sdk_error(&error)))
            }
        }
    }

    async fn cancel(&self, order_id: &str, event_id: &str) -> anyhow::Result<bool> {
        self.transition(order_id, ShipmentStatus::Cancelled, Some(event_id)).await
    }

    async fn ship(&self, order_id: &str) -> anyhow::Result<bool> {
        self.transition(order_id, ShipmentStatus::Shipped, None).await
    }

    async fn shipment(&self, order_id: &str) -> anyhow::Result<Option<Shipment>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("orderId", s(order_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| anyhow!("{}: cannot read the shipment of order {order_id}: {}", self.describe(), sdk_error(&error)))?;
        let Some(item) = output.item() else { return Ok(None) };
        let unreadable = || format!("{}: the shipment of order {order_id} is unreadable", self.describe());
        let status = text(item, "status").unwrap_or_default();
        let address = match item.get("address") {
            None => None,
            Some(value) => {
                let map = value.as_m().map_err(|_| anyhow!("its address is not a map")).with_context(unreadable)?;
                Some(address_from(map).with_context(unreadable)?)
            }
        };
        Ok(Some(Shipment {
            order_id: order_id.to_owned(),
            event_id: text(item, "eventId").unwrap_or_default().to_owned(),
            status: ShipmentStatus::parse(status)
                .ok_or_else(|| anyhow!("its status {status:?} is not CREATED, CANCELLED or SHIPPED"))
                .with_context(unreadable)?,
            tracking_number: text(item, "trackingNumber")
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("it has no trackingNumber"))
                .with_context(unreadable)?,
            address,
            cancel_event_id: text(item, "cancelEventId").map(str::to_owned),
        }))
    }
}
