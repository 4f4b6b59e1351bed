//! The loyalty points rules, written once against [`PointsPort`].

use std::sync::Arc;

use async_trait::async_trait;
use orders::{EventType, OrderEvent};
use serde::{Deserialize, Serialize};
use sqs_kit::idempotency::CommitError;
use sqs_kit::store::BusinessWrite;
use sqs_kit::{RecordContext, RecordError, RecordHandler};

use crate::rate::PointsRate;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Accrual,
    Reversal,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Accrual => "ACCRUAL",
            EntryKind::Reversal => "REVERSAL",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Accrual, Self::Reversal].into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One line of a customer's ledger: at most one accrual and one reversal per order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    #[serde(skip)]
    pub customer_id: String,
    pub order_id: String,
    /// Negative for a reversal.
    pub points: i64,
    pub event_id: String,
    pub kind: EntryKind,
}

/// What `points balance` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub customer_id: String,
    pub balance: i64,
    pub ledger: Vec<LedgerEntry>,
}

/// Balances and ledgers, wherever they are kept.
#[async_trait]
pub trait PointsPort: Send + Sync + 'static {
    /// Writes that store `entry` iff the order has no entry of its kind (write 0) and, for an
    /// accrual, iff the order has no reversal (write 1: a cancellation came first), then add
    /// `entry.points` to the customer's balance.
    fn post(&self, entry: &LedgerEntry) -> Vec<BusinessWrite>;
    async fn entry(&self, customer_id: &str, order_id: &str, kind: EntryKind) -> anyhow::Result<Option<LedgerEntry>>;
    async fn account(&self, customer_id: &str) -> anyhow::Result<Account>;
}

/// What one order event did to the customer's points; stored as the idempotency result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum PointsOutcome {
    Accrued { order_id: String, customer_id: String, points: i64 },
    Reversed { order_id: String, customer_id: String, points: i64 },
    /// The event changed nothing; the ledger already says what happened to the order.
    Unchanged { order_id: String, customer_id: String, reason: String },
}

pub struct Points {
    port: Arc<dyn PointsPort>,
    rate: PointsRate,
}

impl Points {
    pub fn new(port: Arc<dyn PointsPort>, rate: PointsRate) -> Self {
        Self { port, rate }
    }

    fn entry(order: &OrderEvent, kind: EntryKind, points: i64) -> LedgerEntry {
        LedgerEntry {
            customer_id: order.customer_id.clone(),
            order_id: order.order_id.clone(),
            points,
            event_id: order.event_id.clone(),
            kind,
        }
    }

    fn unchanged(order: &OrderEvent, reason: impl Into<String>) -> PointsOutcome {
        PointsOutcome::Unchanged { order_id: order.order_id.clone(), customer_id: order.customer_id.clone(), reason: reason.into() }
    }

    async fn accrue(&self, order: &OrderEvent, cx: &RecordContext) -> Result<PointsOutcome, RecordError> {
        let tx = cx.transaction()?;
        let points = self.rate.points_for(order.total_amount);
        let accrued = PointsOutcome::Accrued { order_id: order.order_id.clone(), customer_id: order.customer_id.clone(), points };
        let reason = match tx.commit(self.port.post(&Self::entry(order, EntryKind::Accrual, points)), &accrued).await {
            Ok(()) => return Ok(accrued),
            Err(CommitError::Rejected { index: 0, .. }) => "the order's points were already accrued by an earlier event",
            Err(CommitError::Rejected { .. }) => "the order was cancelled before its points were accrued",
            Err(other) => return Err(other.into()),
        };
        let outcome = Self::unchanged(order, reason);
        tx.commit(Vec::new(), &outcome).await?;
        Ok(outcome)
    }

    async fn reverse(&self, order: &OrderEvent, cx: &RecordContext) -> Result<PointsOutcome, RecordError> {
        let tx = cx.transaction()?;
        let accrual = self
            .port
            .entry(&order.customer_id, &order.order_id, EntryKind::Accrual)
            .await
            .map_err(|e| RecordError::transient(format!("{e:#}")))?;
        // Exactly what was accrued, never more; with no accrual, a zero reversal stands as a
        // marker so that an OrderPlaced redriven later accrues nothing for a cancelled order.
        let points = accrual.as_ref().map_or(0, |accrual| accrual.points);
        let outcome = match accrual {
            Some(_) => PointsOutcome::Reversed { order_id: order.order_id.clone(), customer_id: order.customer_id.clone(), points },
            None => Self::unchanged(order, "the order accrued no points; nothing to reverse"),
        };
        match tx.commit(self.port.post(&Self::entry(order, EntryKind::Reversal, -points)), &outcome).await {
            Ok(()) => Ok(outcome),
            Err(CommitError::Rejected { .. }) => {
                let outcome = Self::unchanged(order, "the order's points were already reversed by an earlier event");
                tx.commit(Vec::new(), &outcome).await?;
                Ok(outcome)
            }
            Err(other) => Err(other.into()),
        }
    }
}

impl RecordHandler for Points {
    type Body = OrderEvent;
    type Output = PointsOutcome;

    async fn handle(&self, order: OrderEvent, cx: RecordContext) -> Result<PointsOutcome, RecordError> {
        let outcome = match order.event_type {
            EventType::OrderPlaced => self.accrue(&order, &cx).await?,
            EventType::OrderCancelled => self.reverse(&order, &cx).await?,
        };
        tracing::info!(order_id = %order.order_id, customer_id = %order.customer_id, ?outcome, "points updated");
        Ok(outcome)
    }
}
