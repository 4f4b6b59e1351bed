//! Shipping's business rules, written once against [`ShipmentsPort`].
//!
//! The queue is standard, so an order's events can arrive in any order and more than once.
//! The rules are built so that every interleaving converges on one shipment per order:
//! - a shipment is only ever created by a write conditional on the order having none, and rows
//!   are never deleted, so a status only moves forward (`CREATED` to `CANCELLED` or `SHIPPED`);
//! - a cancellation that finds no shipment leaves a `CANCELLED` tombstone, so an `OrderPlaced`
//!   delivered after it cannot create a live shipment for a cancelled order;
//! - the tracking number is a function of the order id, so a retry after a crash (the claim
//!   lapsed before it was completed) finds the very shipment it wrote, not a rival one.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use orders::{Address, EventType, OrderEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqs_kit::{RecordContext, RecordError, RecordHandler};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShipmentStatus {
    /// Waiting to be shipped; the only status a cancellation or `shipping ship` can change.
    Created,
    /// Cancelled before it shipped, or a tombstone for an order cancelled before it was placed.
    Cancelled,
    /// Handed to the carrier; a later cancellation no longer stops it.
    Shipped,
}

impl ShipmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Created => "CREATED",
            ShipmentStatus::Cancelled => "CANCELLED",
            ShipmentStatus::Shipped => "SHIPPED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Created, Self::Cancelled, Self::Shipped].into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for ShipmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One order's shipment, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipment {
    pub order_id: String,
    /// The event that wrote the row: the `OrderPlaced` that created it, or, for a tombstone,
    /// the `OrderCancelled` that came first.
    pub event_id: String,
    pub status: ShipmentStatus,
    /// A tombstone has one too (the order's, see [`tracking_number`]), so that `shipping status`
    /// shows a cancelled order the same whichever of its events arrived first.
    pub tracking_number: String,
    /// `None` only for a tombstone, which has nothing to deliver.
    pub address: Option<Address>,
    /// The `OrderCancelled` that cancelled it, so that a retry of that event recognises its own
    /// work. A tombstone is the row whose cancellation wrote it: `cancel_event_id == event_id`.
    pub cancel_event_id: Option<String>,
}

impl Shipment {
    /// The shipment an `OrderPlaced` creates.
    pub fn created(order: &OrderEvent) -> Self {
        Self {
            order_id: order.order_id.clone(),
            event_id: order.event_id.clone(),
            status: ShipmentStatus::Created,
            tracking_number: tracking_number(&order.order_id),
            address: Some(order.shipping_address.clone()),
            cancel_event_id: None,
        }
    }

    /// What an `OrderCancelled` leaves when it arrives before the order's `OrderPlaced`.
    pub fn tombstone(order: &OrderEvent) -> Self {
        Self {
            order_id: order.order_id.clone(),
            event_id: order.event_id.clone(),
            status: ShipmentStatus::Cancelled,
            tracking_number: tracking_number(&order.order_id),
            address: None,
            cancel_event_id: Some(order.event_id.clone()),
        }
    }

    pub fn is_tombstone(&self) -> bool {
        self.cancel_event_id.as_deref() == Some(self.event_id.as_str())
    }

    pub fn view(&self) -> StatusView {
        StatusView { order_id: self.order_id.clone(), status: self.status, tracking_number: self.tracking_number.clone() }
    }
}

/// What `shipping status` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub order_id: String,
    pub status: ShipmentStatus,
    pub tracking_number: String,
}

/// The tracking number of an order's shipment. Derived from the order id rather than random, so
/// that every attempt at creating the shipment (a retry after a crash, a re-sent event) writes
/// the same row and the conditional write can tell a repeat from a conflict.
pub fn tracking_number(order_id: &str) -> String {
    let digest = Sha256::digest(order_id.as_bytes());
    let hex: String = digest.iter().take(8).map(|byte| format!("{byte:02X}")).collect();
    format!("SHP-{hex}")
}

/// Shipments, wherever they are kept. Every write is conditional and answers whether it applied;
/// an `Err` is a store failure (worth a retry), never a failed condition.
#[async_trait]
pub trait ShipmentsPort: Send + Sync + 'static {
    /// Where the shipments are, for messages: `embedded store at DIR`, `DynamoDB table T`.
    fn describe(&self) -> String;
    /// Stores `shipment` iff the order has none; whether it was stored.
    async fn create(&self, shipment: &Shipment) -> anyhow::Result<bool>;
    /// Marks the order's shipment `CANCELLED` by `event_id` iff it is `CREATED`; whether it was.
    async fn cancel(&self, order_id: &str, event_id: &str) -> anyhow::Result<bool>;
    /// Marks the order's shipment `SHIPPED` iff it is `CREATED`; whether it was.
    async fn ship(&self, order_id: &str) -> anyhow::Result<bool>;
    async fn shipment(&self, order_id: &str) -> anyhow::Result<Option<Shipment>>;
}

/// What one order event did to the order's shipment; stored as the idempotency result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum ShippingOutcome {
    /// The shipment was created (by this delivery, or by an earlier attempt of this event that
    /// crashed before it could be marked completed).
    Created { order_id: String, tracking_number: String },
    /// The order had been cancelled before this `OrderPlaced` arrived: nothing to ship.
    NotCreated { order_id: String, reason: String },
    /// A `CREATED` shipment was cancelled.
    Cancelled { order_id: String, tracking_number: String },
    /// The cancellation arrived before the order's `OrderPlaced`; a tombstone keeps that from
    /// creating a shipment.
    CancelledBeforeCreation { order_id: String, reason: String },
    /// The shipment had already left: the cancellation is recorded, the shipment stands.
    NotCancelled { order_id: String, tracking_number: String, reason: String },
    /// The event changed nothing: the order's shipment already says what happened.
    Unchanged { order_id: String, status: ShipmentStatus, reason: String },
}

impl ShippingOutcome {
    fn name(&self) -> &'static str {
        match self {
            ShippingOutcome::Created { .. } => "created",
            ShippingOutcome::NotCreated { .. } => "not_created",
            ShippingOutcome::Cancelled { .. } => "cancelled",
            ShippingOutcome::CancelledBeforeCreation { .. } => "cancelled_before_creation",
            ShippingOutcome::NotCancelled { .. } => "not_cancelled",
            ShippingOutcome::Unchanged { .. } => "unchanged",
        }
    }
}

/// A status change racing a cancellation can make it look again; more than this many changes
/// during one event is not a race but something to retry later.
const CANCEL_ATTEMPTS: usize = 3;

pub struct Shipping {
    shipments: Arc<dyn ShipmentsPort>,
}

impl Shipping {
    pub fn new(shipments: Arc<dyn ShipmentsPort>) -> Self {
        Self { shipments }
    }

    async fn place(&self, order: &OrderEvent) -> Result<ShippingOutcome, RecordError> {
        let shipment = Shipment::created(order);
        let order_id = order.order_id.clone();
        if self.shipments.create(&shipment).await.map_err(transient)? {
            return Ok(ShippingOutcome::Created { order_id, tracking_number: shipment.tracking_number });
        }
        let existing = self.existing(&order_id).await?;
        Ok(match existing {
            // This event created it on an earlier attempt that did not get to complete.
            Shipment { event_id, tracking_number, .. } if event_id == order.event_id => {
                tracing::info!(order_id = %order_id, "the shipment was already created by an earlier attempt at this event");
                ShippingOutcome::Created { order_id, tracking_number }
            }
            tombstone if tombstone.is_tombstone() => ShippingOutcome::NotCreated {
                order_id,
                reason: format!(
                    "the order was cancelled (event {}) before its shipment was created; no shipment was created",
                    tombstone.event_id
                ),
            },
            other => ShippingOutcome::Unchanged {
                order_id,
                status: other.status,
                reason: format!(
                    "the order already has a shipment ({}) created by event {}; no second shipment was created",
                    other.status, other.event_id
                ),
            },
        })
    }

    async fn cancel(&self, order: &OrderEvent) -> Result<ShippingOutcome, RecordError> {
        let order_id = order.order_id.clone();
        for _ in 0..CANCEL_ATTEMPTS {
            if self.shipments.cancel(&order_id, &order.event_id).await.map_err(transient)? {
                return Ok(ShippingOutcome::Cancelled { tracking_number: tracking_number(&order_id), order_id });
            }
            if self.shipments.create(&Shipment::tombstone(order)).await.map_err(transient)? {
                return Ok(cancelled_before_creation(order_id));
            }
            let existing = self.existing(&order_id).await?;
            match existing.status {
                // An OrderPlaced created it between the two writes above: cancel that one.
                ShipmentStatus::Created => continue,
                // This event cancelled it on an earlier attempt that did not get to complete.
                ShipmentStatus::Cancelled if existing.cancel_event_id.as_deref() == Some(order.event_id.as_str()) => {
                    tracing::info!(order_id = %order_id, "the shipment was already cancelled by an earlier attempt at this event");
                    return Ok(match existing.is_tombstone() {
                        true => cancelled_before_creation(order_id),
                        false => ShippingOutcome::Cancelled { order_id, tracking_number: existing.tracking_number },
                    });
                }
                ShipmentStatus::Cancelled => {
                    return Ok(ShippingOutcome::Unchanged {
                        order_id,
                        status: ShipmentStatus::Cancelled,
                        reason: "the shipment is already cancelled".to_owned(),
                    });
                }
                // A business outcome, not a retry: no later attempt can unship it.
                ShipmentStatus::Shipped => {
                    return Ok(ShippingOutcome::NotCancelled {
                        tracking_number: existing.tracking_number,
                        order_id,
                        reason: "already shipped; not cancelled".to_owned(),
                    });
                }
            }
        }
        Err(RecordError::transient(format!(
            "the shipment of order {order_id} kept changing while it was being cancelled; the cancellation will be retried"
        )))
    }

    /// The shipment whose existence a failed conditional write just proved.
    async fn existing(&self, order_id: &str) -> Result<Shipment, RecordError> {
        self.shipments.shipment(order_id).await.map_err(transient)?.ok_or_else(|| {
            // Shipments are never deleted, so only a store that lost a write gets here.
            RecordError::transient(format!(
                "a write to {} said order {order_id} has a shipment, but reading it found none; retrying",
                self.shipments.describe()
            ))
        })
    }
}

fn cancelled_before_creation(order_id: String) -> ShippingOutcome {
    ShippingOutcome::CancelledBeforeCreation {
        order_id,
        reason: "no shipment existed yet; a cancelled record keeps a later OrderPlaced from creating one".to_owned(),
    }
}

fn transient(error: anyhow::Error) -> RecordError {
    RecordError::transient(format!("{error:#}"))
}

impl RecordHandler for Shipping {
    type Body = OrderEvent;
    type Output = ShippingOutcome;

    async fn handle(&self, order: OrderEvent, _cx: RecordContext) -> Result<ShippingOutcome, RecordError> {
        let outcome = match order.event_type {
            EventType::OrderPlaced => self.place(&order).await?,
            EventType::OrderCancelled => self.cancel(&order).await?,
        };
        // Only ids: the event also carries the customer's e-mail address and postal address.
        tracing::info!(order_id = %order.order_id, event_id = %order.event_id, outcome = outcome.name(), "shipment updated");
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// Shipments in a map; `placed_during_cancel` plays an `OrderPlaced` that lands between a
    /// cancellation's update and its tombstone write, and `fail` a store that is down.
    #[derive(Default)]
    struct MemoryShipments {
        rows: Mutex<HashMap<String, Shipment>>,
        placed_during_cancel: Mutex<Option<Shipment>>,
        fail: bool,
    }

    #[async_trait]
    impl ShipmentsPort for MemoryShipments {
        fn describe(&self) -> String {
            "memory".into()
        }

        async fn create(&self, shipment: &Shipment) -> anyhow::Result<bool> {
            anyhow::ensure!(!self.fail, "the store is down");
            let mut rows = self.rows.lock().unwrap();
            if rows.contains_key(&shipment.order_id) {
                return Ok(false);
            }
            rows.insert(shipment.order_id.clone(), shipment.clone());
            Ok(true)
        }

        async fn cancel(&self, order_id: &str, event_id: &str) -> anyhow::Result<bool> {
            let mut rows = self.rows.lock().unwrap();
            let changed = match rows.get_mut(order_id) {
                Some(row) if row.status == ShipmentStatus::Created => {
                    row.status = ShipmentStatus::Cancelled;
                    row.cancel_event_id = Some(event_id.to_owned());
                    true
                }
                _ => false,
            };
            if let Some(placed) = self.placed_during_cancel.lock().unwrap().take() {
                rows.insert(placed.order_id.clone(), placed);
            }
            Ok(changed)
        }

        async fn ship(&self, order_id: &str) -> anyhow::Result<bool> {
            let mut rows = self.rows.lock().unwrap();
            Ok(match rows.get_mut(order_id) {
                Some(row) if row.status == ShipmentStatus::Created => {
                    row.status = ShipmentStatus::Shipped;
                    true
                }
                _ => false,
            })
        }

        async fn shipment(&self, order_id: &str) -> anyhow::Result<Option<Shipment>> {
            Ok(self.rows.lock().unwrap().get(order_id).cloned())
        }
    }

    fn event(event_type: EventType, event_id: &str) -> OrderEvent {
        serde_json::from_value(serde_json::json!({
            "eventId": event_id,
            "eventType": event_type,
            "occurredAt": "2026-11-24T09:00:00Z",
            "orderId": "ORD-1",
            "customerId": "CUST-1",
            "customerEmail": "a@example.com",
            "items": [{"sku": "SKU-A", "quantity": 1, "unitPrice": 100}],
            "totalAmount": 100,
            "currency": "KRW",
            "shippingAddress": {"name": "A", "line1": "1 Road", "city": "Seoul", "postalCode": "06236", "country": "KR"}
        }))
        .unwrap()
    }

    fn shipping() -> (Shipping, Arc<MemoryShipments>) {
        let port = Arc::new(MemoryShipments::default());
        (Shipping::new(port.clone()), port)
    }

    fn status(port: &MemoryShipments) -> (ShipmentStatus, String) {
        let row = port.rows.lock().unwrap().get("ORD-1").cloned().unwrap();
        (row.status, row.tracking_number)
    }

    #[tokio::test]
    async fn a_repeated_order_placed_finds_its_own_shipment_and_another_event_changes_nothing() {
        let (shipping, port) = shipping();
        let placed = event(EventType::OrderPlaced, "e1");
        let created = ShippingOutcome::Created { order_id: "ORD-1".into(), tracking_number: tracking_number("ORD-1") };
        assert_eq!(shipping.place(&placed).await.unwrap(), created);
        assert_eq!(shipping.place(&placed).await.unwrap(), created);
        let resent = shipping.place(&event(EventType::OrderPlaced, "e2")).await.unwrap();
        assert!(matches!(resent, ShippingOutcome::Unchanged { status: ShipmentStatus::Created, .. }), "{resent:?}");
        assert_eq!(port.rows.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_cancellation_before_the_order_leaves_a_tombstone_the_order_respects() {
        let (shipping, port) = shipping();
        let cancelled = event(EventType::OrderCancelled, "c1");
        assert!(matches!(shipping.cancel(&cancelled).await.unwrap(), ShippingOutcome::CancelledBeforeCreation { .. }));
        // A retry of the same cancellation reports the same outcome.
        assert!(matches!(shipping.cancel(&cancelled).await.unwrap(), ShippingOutcome::CancelledBeforeCreation { .. }));
        let placed = shipping.place(&event(EventType::OrderPlaced, "e1")).await.unwrap();
        assert!(matches!(&placed, ShippingOutcome::NotCreated { reason, .. } if reason.contains("c1")), "{placed:?}");
        assert_eq!(status(&port), (ShipmentStatus::Cancelled, tracking_number("ORD-1")));
        assert!(port.rows.lock().unwrap()["ORD-1"].is_tombstone());
    }

    #[tokio::test]
    async fn cancelling_is_once_and_never_unships() {
        let (shipping, port) = shipping();
        shipping.place(&event(EventType::OrderPlaced, "e1")).await.unwrap();
        let cancelled = ShippingOutcome::Cancelled { order_id: "ORD-1".into(), tracking_number: tracking_number("ORD-1") };
        assert_eq!(shipping.cancel(&event(EventType::OrderCancelled, "c1")).await.unwrap(), cancelled);
        assert_eq!(shipping.cancel(&event(EventType::OrderCancelled, "c1")).await.unwrap(), cancelled);
        let other = shipping.cancel(&event(EventType::OrderCancelled, "c2")).await.unwrap();
        assert!(matches!(other, ShippingOutcome::Unchanged { status: ShipmentStatus::Cancelled, .. }), "{other:?}");

        let (shipping, port2) = self::shipping();
        shipping.place(&event(EventType::OrderPlaced, "e1")).await.unwrap();
        assert!(port2.ship("ORD-1").await.unwrap());
        let late = shipping.cancel(&event(EventType::OrderCancelled, "c1")).await.unwrap();
        assert_eq!(
            late,
            ShippingOutcome::NotCancelled {
                order_id: "ORD-1".into(),
                tracking_number: tracking_number("ORD-1"),
                reason: "already shipped; not cancelled".into()
            }
        );
        assert_eq!(status(&port2).0, ShipmentStatus::Shipped);
        assert_eq!(status(&port).0, ShipmentStatus::Cancelled);
    }

    #[tokio::test]
    async fn an_order_placed_between_the_cancellations_two_writes_is_cancelled() {
        let (shipping, port) = shipping();
        *port.placed_during_cancel.lock().unwrap() = Some(Shipment::created(&event(EventType::OrderPlaced, "e1")));
        let outcome = shipping.cancel(&event(EventType::OrderCancelled, "c1")).await.unwrap();
        assert!(matches!(outcome, ShippingOutcome::Cancelled { .. }), "{outcome:?}");
        assert_eq!(status(&port), (ShipmentStatus::Cancelled, tracking_number("ORD-1")));
    }

    #[tokio::test]
    async fn a_store_failure_is_transient() {
        let shipping = Shipping::new(Arc::new(MemoryShipments { fail: true, ..Default::default() }));
        let error = shipping.place(&event(EventType::OrderPlaced, "e1")).await.unwrap_err();
        assert!(!error.is_permanent());
        assert!(error.reason().contains("the store is down"));
    }

    #[test]
    fn tracking_numbers_are_stable_and_distinct_per_order() {
        assert_eq!(tracking_number("ORD-1001"), tracking_number("ORD-1001"));
        assert_ne!(tracking_number("ORD-1001"), tracking_number("ORD-1002"));
        assert!(tracking_number("ORD-1001").starts_with("SHP-"));
        assert_eq!(tracking_number("ORD-1001").len(), 4 + 16);
    }

    #[test]
    fn outcomes_serialize_with_a_tag_and_camel_case_fields() {
        let outcome = ShippingOutcome::NotCancelled {
            order_id: "ORD-1".into(),
            tracking_number: "SHP-X".into(),
            reason: "already shipped; not cancelled".into(),
        };
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            serde_json::json!({"outcome": "not_cancelled", "orderId": "ORD-1", "trackingNumber": "SHP-X", "reason": "already shipped; not cancelled"})
        );
        let unchanged = ShippingOutcome::Unchanged { order_id: "ORD-1".into(), status: ShipmentStatus::Cancelled, reason: "r".into() };
        assert_eq!(serde_json::to_value(&unchanged).unwrap()["status"], "CANCELLED");
    }
}
