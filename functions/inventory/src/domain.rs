//! The inventory's business rules, written once against [`StockPort`].

use std::sync::Arc;

use async_trait::async_trait;
use orders::{EventType, Line, OrderEvent};
use serde::{Deserialize, Serialize};
use sqs_kit::idempotency::{CommitError, Transaction};
use sqs_kit::store::BusinessWrite;
use sqs_kit::{RecordContext, RecordError, RecordHandler};

/// DynamoDB allows 100 items per transaction: the idempotency record, the reservation, and at
/// most this many stock items.
pub const MAX_LINES: usize = 98;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    /// The stock is held for the order.
    Reserved,
    /// Not enough (or unknown) stock: nothing is held.
    Rejected,
    /// The order was cancelled and its stock given back.
    Released,
    /// The order was cancelled before any reservation; a later `OrderPlaced` reserves nothing.
    Cancelled,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Reserved => "RESERVED",
            ReservationStatus::Rejected => "REJECTED",
            ReservationStatus::Released => "RELEASED",
            ReservationStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Reserved, Self::Rejected, Self::Released, Self::Cancelled].into_iter().find(|s| s.as_str() == text)
    }
}

/// What the inventory holds for one order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub order_id: String,
    pub event_id: String,
    pub status: ReservationStatus,
    pub lines: Vec<Line>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub sku: String,
    pub available: i64,
}

/// Stock levels and reservations, wherever they are kept.
///
/// The write builders return [`BusinessWrite`]s for the idempotency transaction; each carries
/// its condition, so that a failed condition cancels the whole transaction.
#[async_trait]
pub trait StockPort: Send + Sync + 'static {
    /// Writes that take each line's quantity from its SKU iff that much is available (write
    /// `i` is line `i`), then store `reservation` iff the order has none (the last write).
    fn reserve(&self, reservation: &Reservation) -> Vec<BusinessWrite>;
    /// A write that stores `reservation` (rejected or cancelled) iff the order has none.
    fn record(&self, reservation: &Reservation) -> BusinessWrite;
    /// Writes that give each line back to its SKU iff its level stays within an `i64` (write
    /// `i` is line `i`: DynamoDB would store more, SQLite would turn it into a float), then mark
    /// the reservation released, iff it is still `RESERVED` (the last write).
    fn release(&self, reservation: &Reservation) -> Vec<BusinessWrite>;
    async fn reservation(&self, order_id: &str) -> anyhow::Result<Option<Reservation>>;
    async fn level(&self, sku: &str) -> anyhow::Result<Option<i64>>;
    async fn levels(&self) -> anyhow::Result<Vec<StockLevel>>;
    async fn seed(&self, levels: &[StockLevel]) -> anyhow::Result<()>;
}

/// What one order event did to the inventory; stored as the idempotency result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum InventoryOutcome {
    Reserved {
        order_id: String,
        lines: Vec<Line>,
    },
    Rejected {
        order_id: String,
        reason: String,
    },
    Released {
        order_id: String,
        lines: Vec<Line>,
    },
    /// The event changed nothing: the order's reservation already says what happened.
    Unchanged {
        order_id: String,
        reason: String,
    },
}

pub struct Inventory {
    stock: Arc<dyn StockPort>,
}

impl Inventory {
    pub fn new(stock: Arc<dyn StockPort>) -> Self {
        Self { stock }
    }

    async fn place(&self, order: &OrderEvent, cx: &RecordContext) -> Result<InventoryOutcome, RecordError> {
        let tx = Transaction::of(cx)?;
        let lines = order.lines();
        if lines.len() > MAX_LINES {
            return Err(RecordError::permanent(format!(
                "order {} has {} distinct SKUs; at most {MAX_LINES} can be reserved in one transaction",
                order.order_id,
                lines.len()
            )));
        }
        let reservation = reservation(order, ReservationStatus::Reserved, lines.clone(), None);
        let reserved = InventoryOutcome::Reserved { order_id: order.order_id.clone(), lines: lines.clone() };
        let short_line = match tx.commit(self.stock.reserve(&reservation), &reserved).await {
            Ok(()) => return Ok(reserved),
            Err(CommitError::Rejected { index, .. }) if index < lines.len() => &lines[index],
            Err(CommitError::Rejected { .. }) => return self.unchanged(order, cx).await,
            Err(other) => return Err(other.into()),
        };

        // A business outcome, not a retry: the order is recorded as rejected and completed.
        let reason = match self.stock.level(&short_line.sku).await.map_err(transient)? {
            None => format!("unknown SKU {}", short_line.sku),
            Some(available) => {
                format!("insufficient stock for {}: {available} available, {} requested", short_line.sku, short_line.quantity)
            }
        };
        let rejection = self::reservation(order, ReservationStatus::Rejected, lines, Some(reason.clone()));
        let rejected = InventoryOutcome::Rejected { order_id: order.order_id.clone(), reason };
        match tx.commit(vec![self.stock.record(&rejection)], &rejected).await {
            Ok(()) => Ok(rejected),
            Err(CommitError::Rejected { .. }) => self.unchanged(order, cx).await,
            Err(other) => Err(other.into()),
        }
    }

    async fn cancel(&self, order: &OrderEvent, cx: &RecordContext) -> Result<InventoryOutcome, RecordError> {
        let tx = Transaction::of(cx)?;
        let existing = self.stock.reservation(&order.order_id).await.map_err(transient)?;
        let (writes, outcome) = match existing {
            Some(held) if held.status == ReservationStatus::Reserved => {
                (self.stock.release(&held), InventoryOutcome::Released { order_id: order.order_id.clone(), lines: held.lines })
            }
            Some(other) => {
                let reason = format!("the order's reservation is {}; nothing to release", other.status.as_str());
                (Vec::new(), InventoryOutcome::Unchanged { order_id: order.order_id.clone(), reason })
            }
            None => {
                // Recorded so that an OrderPlaced redriven later cannot reserve for a cancelled order.
                let tombstone =
                    reservation(order, ReservationStatus::Cancelled, Vec::new(), Some("cancelled before any reservation".into()));
                let reason = "the order was never reserved; nothing to release".to_owned();
                (vec![self.stock.record(&tombstone)], InventoryOutcome::Unchanged { order_id: order.order_id.clone(), reason })
            }
        };
        let released = match &outcome {
            InventoryOutcome::Released { lines, .. } => lines.as_slice(),
            _ => &[],
        };
        match tx.commit(writes, &outcome).await {
            Ok(()) => Ok(outcome),
            // No retry can make room: the level must be lowered first (`inventory seed`).
            Err(CommitError::Rejected { index, .. }) if index < released.len() => Err(RecordError::permanent(format!(
                "releasing {} of {} for order {} would take its stock level past {}, the largest a store can hold; nothing was released",
                released[index].quantity,
                released[index].sku,
                order.order_id,
                i64::MAX
            ))),
            // The reservation changed between the read and the commit: read it again next time.
            Err(CommitError::Rejected { reason, .. }) => Err(RecordError::transient(format!(
                "the reservation of order {} changed while it was being released ({reason}); retrying",
                order.order_id
            ))),
            Err(other) => Err(other.into()),
        }
    }

    /// The order already has a reservation from an earlier event: record that nothing changed.
    async fn unchanged(&self, order: &OrderEvent, cx: &RecordContext) -> Result<InventoryOutcome, RecordError> {
        let status = match self.stock.reservation(&order.order_id).await.map_err(transient)? {
            Some(existing) => existing.status.as_str(),
            None => "gone",
        };
        let outcome = InventoryOutcome::Unchanged {
            order_id: order.order_id.clone(),
            reason: format!("the order already has a reservation ({status}) from an earlier event"),
        };
        Transaction::of(cx)?.commit(Vec::new(), &outcome).await?;
        Ok(outcome)
    }
}

fn reservation(order: &OrderEvent, status: ReservationStatus, lines: Vec<Line>, reason: Option<String>) -> Reservation {
    Reservation { order_id: order.order_id.clone(), event_id: order.event_id.clone(), status, lines, reason }
}

fn transient(error: anyhow::Error) -> RecordError {
    RecordError::transient(format!("{error:#}"))
}

impl RecordHandler for Inventory {
    type Body = OrderEvent;
    type Output = InventoryOutcome;

    async fn handle(&self, order: OrderEvent, cx: RecordContext) -> Result<InventoryOutcome, RecordError> {
        let outcome = match order.event_type {
            EventType::OrderPlaced => self.place(&order, &cx).await?,
            EventType::OrderCancelled => self.cancel(&order, &cx).await?,
        };
        tracing::info!(order_id = %order.order_id, outcome = ?outcome_name(&outcome), "inventory updated");
        Ok(outcome)
    }
}

fn outcome_name(outcome: &InventoryOutcome) -> &'static str {
    match outcome {
        InventoryOutcome::Reserved { .. } => "reserved",
        InventoryOutcome::Rejected { .. } => "rejected",
        InventoryOutcome::Released { .. } => "released",
        InventoryOutcome::Unchanged { .. } => "unchanged",
    }
}
