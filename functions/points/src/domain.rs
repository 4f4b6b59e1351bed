//! The loyalty points rules, written once against [`PointsPort`].

use std::sync::Arc;

use async_trait::async_trait;
use orders::{EventType, OrderEvent};
use serde::{Deserialize, Serialize};
use sqs_kit::idempotency::{CommitError, Transaction};
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

    /// The entry of the other kind for the same order.
    pub fn counterpart(self) -> Self {
        match self {
            EntryKind::Accrual => EntryKind::Reversal,
            EntryKind::Reversal => EntryKind::Accrual,
        }
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

/// The positions of [`PointsPort::post`]'s writes, which a rejected commit reports.
pub const ENTRY_WRITE: usize = 0;
pub const COUNTERPART_WRITE: usize = 1;
pub const BALANCE_WRITE: usize = 2;

/// Balances and ledgers, wherever they are kept.
#[async_trait]
pub trait PointsPort: Send + Sync + 'static {
    /// Three writes, each a condition that rejects the whole transaction when it fails:
    /// - [`ENTRY_WRITE`] stores `entry` iff the order has no entry of its kind;
    /// - [`COUNTERPART_WRITE`] holds iff the order's entry of the other kind exists exactly
    ///   when `counterpart_exists`: an accrual passes `false` (a cancellation came first), a
    ///   reversal whether it read an accrual, so that an accrual committed since that read
    ///   rejects the reversal instead of standing beside it;
    /// - [`BALANCE_WRITE`] adds `entry.points` to the customer's balance iff the sum stays
    ///   within an `i64` (DynamoDB would store more, SQLite would turn it into a float).
    fn post(&self, entry: &LedgerEntry, counterpart_exists: bool) -> Vec<BusinessWrite>;
    async fn entry(&self, customer_id: &str, order_id: &str, kind: EntryKind) -> anyhow::Result<Option<LedgerEntry>>;
    async fn account(&self, customer_id: &str) -> anyhow::Result<Account>;
}

/// What one order event did to the customer's points; stored as the idempotency result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum PointsOutcome {
    Accrued {
        order_id: String,
        customer_id: String,
        points: i64,
    },
    Reversed {
        order_id: String,
        customer_id: String,
        points: i64,
    },
    /// The event changed nothing; the ledger already says what happened to the order.
    Unchanged {
        order_id: String,
        customer_id: String,
        reason: String,
    },
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
        let tx = Transaction::of(cx)?;
        let points = self.rate.points_for(order.total_amount).ok_or_else(|| {
            RecordError::permanent(format!(
                "order {}: totalAmount {} at POINTS_RATE {} earns more points than a balance can hold ({})",
                order.order_id,
                order.total_amount,
                self.rate,
                i64::MAX
            ))
        })?;
        let accrued = PointsOutcome::Accrued { order_id: order.order_id.clone(), customer_id: order.customer_id.clone(), points };
        let reason = match tx.commit(self.port.post(&Self::entry(order, EntryKind::Accrual, points), false), &accrued).await {
            Ok(()) => return Ok(accrued),
            Err(CommitError::Rejected { index: ENTRY_WRITE, .. }) => "the order's points were already accrued by an earlier event",
            Err(CommitError::Rejected { index: COUNTERPART_WRITE, .. }) => "the order was cancelled before its points were accrued",
            Err(CommitError::Rejected { index: BALANCE_WRITE, .. }) => return Err(Self::overflow(order, points)),
            Err(other) => return Err(other.into()),
        };
        let outcome = Self::unchanged(order, reason);
        tx.commit(Vec::new(), &outcome).await?;
        Ok(outcome)
    }

    async fn reverse(&self, order: &OrderEvent, cx: &RecordContext) -> Result<PointsOutcome, RecordError> {
        let tx = Transaction::of(cx)?;
        // An accrual is never deleted: once a reversal loses the race to one, the next read
        // sees it, so a second attempt settles.
        for _ in 0..2 {
            let accrual = self
                .port
                .entry(&order.customer_id, &order.order_id, EntryKind::Accrual)
                .await
                .map_err(|e| RecordError::transient(format!("{e:#}")))?;
            // Exactly what was accrued, never more; with no accrual, a zero reversal stands as a
            // marker so that an OrderPlaced redriven later accrues nothing for a cancelled order.
            let points = accrual.as_ref().map_or(0, |accrual| accrual.points);
            let accrued = accrual.is_some();
            let outcome = match accrual {
                Some(_) => PointsOutcome::Reversed { order_id: order.order_id.clone(), customer_id: order.customer_id.clone(), points },
                None => Self::unchanged(order, "the order accrued no points; nothing to reverse"),
            };
            match tx.commit(self.port.post(&Self::entry(order, EntryKind::Reversal, -points), accrued), &outcome).await {
                Ok(()) => return Ok(outcome),
                Err(CommitError::Rejected { index: ENTRY_WRITE, .. }) => {
                    let outcome = Self::unchanged(order, "the order's points were already reversed by an earlier event");
                    tx.commit(Vec::new(), &outcome).await?;
                    return Ok(outcome);
                }
                // The order's accrual committed between the read and this commit.
                Err(CommitError::Rejected { index: COUNTERPART_WRITE, .. }) => continue,
                Err(CommitError::Rejected { index: BALANCE_WRITE, .. }) => return Err(Self::overflow(order, -points)),
                Err(other) => return Err(other.into()),
            }
        }
        Err(RecordError::transient(format!(
            "the accrual of order {} kept changing while it was being reversed; the cancellation will be retried",
            order.order_id
        )))
    }

    /// A balance that would leave `i64`: no retry can fix it; nothing was written.
    fn overflow(order: &OrderEvent, points: i64) -> RecordError {
        RecordError::permanent(format!(
            "order {}: adding {points} points would take customer {}'s balance past what a balance can hold ({} to {}); nothing was posted",
            order.order_id,
            order.customer_id,
            i64::MIN,
            i64::MAX
        ))
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::time::Duration;

    use serde_json::{json, Value};
    use sqs_kit::store::{Backend, DynamoDbStore, EmbeddedStore};
    use sqs_kit::{typed, BatchConfig, BatchProcessor, IdempotencyConfig, Idempotent, InvocationContext, Outcome, RecordService};

    use super::*;
    use crate::dynamodb::DynamoDbPoints;
    use crate::embedded::EmbeddedPoints;

    type Interloper = Pin<Box<dyn Future<Output = ()> + Send>>;

    /// The port as a cancellation sees it when its order's `OrderPlaced` commits in another
    /// environment right after the cancellation read the accrual (before it commits).
    struct PlacedAfterFirstRead {
        inner: Arc<dyn PointsPort>,
        placed: Mutex<Option<Interloper>>,
    }

    #[async_trait]
    impl PointsPort for PlacedAfterFirstRead {
        fn post(&self, entry: &LedgerEntry, counterpart_exists: bool) -> Vec<BusinessWrite> {
            self.inner.post(entry, counterpart_exists)
        }

        async fn entry(&self, customer_id: &str, order_id: &str, kind: EntryKind) -> anyhow::Result<Option<LedgerEntry>> {
            let read = self.inner.entry(customer_id, order_id, kind).await?;
            let placed = self.placed.lock().unwrap().take();
            if let Some(placed) = placed {
                placed.await;
            }
            Ok(read)
        }

        async fn account(&self, customer_id: &str) -> anyhow::Result<Account> {
            self.inner.account(customer_id).await
        }
    }

    fn order(event_id: &str, event_type: &str) -> Value {
        json!({
            "eventId": event_id, "eventType": event_type, "occurredAt": "2026-11-24T09:41:00Z",
            "orderId": "ORD-1001", "customerId": "CUST-42", "customerEmail": "minji@example.com",
            "items": [{"sku": "SKU-KEYBOARD", "quantity": 1, "unitPrice": 89000}], "totalAmount": 89000, "currency": "KRW",
            "shippingAddress": {"name": "Minji Kim", "line1": "12 Teheran-ro", "city": "Seoul", "postalCode": "06236", "country": "KR"}
        })
    }

    /// One environment of the points function on `backend`, as the runner builds it.
    fn environment(backend: &Backend, port: Arc<dyn PointsPort>) -> BatchProcessor<impl RecordService> {
        let points = typed(Points::new(port, PointsRate::parse("0.01").unwrap()));
        let config = IdempotencyConfig::keyed_by("/eventId").transactional();
        BatchProcessor::new(Idempotent::new(points, backend.store(), config).unwrap(), BatchConfig::default())
    }

    async fn deliver(processor: &BatchProcessor<impl RecordService>, message_id: &str, body: Value) -> Outcome {
        let event = serde_json::from_value(json!({"Records": [{
            "messageId": message_id, "receiptHandle": "handle", "body": body.to_string(),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:ap-northeast-2:123456789012:orders-points", "awsRegion": "ap-northeast-2",
        }]}))
        .unwrap();
        let invocation = InvocationContext::with_remaining("points", "request", Duration::from_secs(60));
        processor.process(event, invocation).await.unwrap().records.remove(0).outcome
    }

    /// The cancellation reads no accrual; its order's accrual commits before the cancellation
    /// does. The reversal must take back the 890 points, not record a zero reversal beside them.
    async fn a_cancellation_racing_its_order_reverses_the_accrual(backend: Backend, port: Arc<dyn PointsPort>) {
        let placing = environment(&backend, Arc::clone(&port));
        let placed: Interloper = Box::pin(async move {
            let outcome = deliver(&placing, "m-placed", order("e-placed", "OrderPlaced")).await;
            assert!(matches!(outcome, Outcome::Processed(_)), "{outcome:?}");
        });
        let racing = Arc::new(PlacedAfterFirstRead { inner: Arc::clone(&port), placed: Mutex::new(Some(placed)) });
        let cancelling = environment(&backend, racing.clone());

        let outcome = deliver(&cancelling, "m-cancelled", order("e-cancelled", "OrderCancelled")).await;
        assert!(racing.placed.lock().unwrap().is_none(), "the order was placed during the cancellation");
        let account = port.account("CUST-42").await.unwrap();
        assert_eq!(account.balance, 0, "{outcome:?}: the accrual stands: {account:?}");
        let points: Vec<(EntryKind, i64)> = account.ledger.iter().map(|entry| (entry.kind, entry.points)).collect();
        assert_eq!(points, [(EntryKind::Accrual, 890), (EntryKind::Reversal, -890)]);
        assert!(matches!(&outcome, Outcome::Processed(output) if output["outcome"] == "reversed"), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_cancellation_racing_its_order_reverses_the_accrual_on_the_embedded_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let port = Arc::new(EmbeddedPoints::new(Arc::clone(&store)).unwrap());
        a_cancellation_racing_its_order_reverses_the_accrual(Backend::Embedded(store), port).await;
    }

    #[tokio::test]
    async fn a_cancellation_racing_its_order_reverses_the_accrual_on_dynamodb() {
        let Some(config) = e2e::local_aws().await else { return };
        let table = e2e::unique_name("points");
        e2e::create_table(&config, &table, "customerId", Some("sk")).await;
        let store = DynamoDbStore::with_config(&config, e2e::idempotency_table(&config).await);
        let port = Arc::new(DynamoDbPoints::new(store.client().clone(), table));
        a_cancellation_racing_its_order_reverses_the_accrual(Backend::DynamoDb(Arc::new(store)), port).await;
    }
}
