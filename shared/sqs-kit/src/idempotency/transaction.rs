//! The handle through which a handler in transactional mode commits its writes together with
//! its idempotency record.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::Clock;
use crate::error::RecordError;
use crate::handler::RecordContext;
use crate::store::{BusinessWrite, CommitFailure, IdempotencyStore};
use crate::store::{IdempotencyRecord, Now, Status};

/// How a transaction ended.
#[derive(Clone, Debug)]
pub(super) enum Settlement {
    /// The writes and this `COMPLETED` record are in the store.
    Committed(IdempotencyRecord),
    /// A live record already held the key; nothing was written.
    Taken(IdempotencyRecord),
    /// The store failed; nothing was written.
    Failed(RecordError),
}

/// Why [`Transaction::commit`] wrote nothing.
///
/// A handler that does not handle it returns it with `?`: it converts into a transient
/// [`RecordError`] (the store's own error as it was, for [`CommitError::Failed`]), and for
/// [`CommitError::AlreadyTaken`] the idempotency layer then reports the record as the other
/// delivery's duplicate, or as a key reused for another payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The key was completed (or is being processed) by another delivery. The batch layer
    /// reports the record as that delivery's duplicate; the handler just returns the error.
    #[error("idempotency key {0} was already taken by another delivery; nothing was written")]
    AlreadyTaken(String),
    /// A business write's condition failed (insufficient stock, say). Nothing was written; the
    /// handler may commit another outcome (a recorded rejection) instead.
    #[error("business write {index} was rejected: {reason}")]
    Rejected {
        /// The rejected write's position in the `writes` given to the commit, from 0.
        index: usize,
        /// Why, as the write's condition (or the store) put it.
        reason: String,
    },
    /// The store failed (transient), the output could not be serialized, or the transaction
    /// was already settled (permanent); nothing was written.
    #[error(transparent)]
    Failed(RecordError),
}

impl From<CommitError> for RecordError {
    fn from(error: CommitError) -> Self {
        match error {
            CommitError::Failed(error) => error,
            CommitError::Rejected { .. } => RecordError::transient(error.to_string()),
            CommitError::AlreadyTaken(_) => RecordError::transient(error.to_string()),
        }
    }
}

/// The transaction of one record under transactional idempotency: the handler hands it its
/// business writes, which commit atomically with the record's `COMPLETED` idempotency record,
/// under the condition that no live record holds the key. A crash can neither lose the effect
/// nor apply it twice.
///
/// A handler reaches it with [`Transaction::of`]. If it returns successfully without
/// committing, the idempotency layer commits its output alone; if it fails, nothing is written.
pub struct Transaction {
    store: Arc<dyn IdempotencyStore>,
    id: String,
    payload_hash: String,
    ttl: Duration,
    clock: Clock,
    /// The invocation's deadline, which bounds the store's waits.
    deadline: Now,
    settlement: Mutex<Option<Settlement>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Transaction {
    /// The transaction of the record `cx` belongs to: there when the handler runs under
    /// transactional idempotency ([`IdempotencyConfig::transactional`](super::IdempotencyConfig::transactional)),
    /// a permanent failure otherwise (a configuration mistake no retry fixes).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// use aws_lambda_events::event::sqs::SqsEvent;
    /// use serde_json::{json, Value};
    /// use sqs_kit::idempotency::Transaction;
    /// use sqs_kit::store::{BusinessWrite, MemoryStore};
    /// use sqs_kit::{handler_fn, typed, BatchConfig, BatchProcessor, IdempotencyConfig, Idempotent};
    /// use sqs_kit::{InvocationContext, RecordContext, RecordError};
    ///
    /// #[derive(serde::Deserialize)]
    /// #[serde(rename_all = "camelCase")]
    /// struct Order {
    ///     order_id: String,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = handler_fn(|order: Order, cx: RecordContext| async move {
    ///     let key = format!("order#{}", order.order_id);
    ///     let write = BusinessWrite::Memory(Box::new(move |tables| {
    ///         tables.insert(key, json!({"status": "ACCEPTED"}));
    ///         Ok(())
    ///     }));
    ///     Transaction::of(&cx)?.commit(vec![write], &"accepted").await?;
    ///     Ok::<_, RecordError>("accepted")
    /// });
    /// let store = Arc::new(MemoryStore::new());
    /// let config = IdempotencyConfig::keyed_by("/orderId").transactional();
    /// let processor = BatchProcessor::new(Idempotent::new(typed(handler), store.clone(), config).unwrap(), BatchConfig::default());
    ///
    /// let event: SqsEvent = serde_json::from_value(json!({"Records": [{"messageId": "m1", "body": r#"{"orderId": "A"}"#}]})).unwrap();
    /// let invocation = InvocationContext::with_remaining("orders", "request-1", Duration::from_secs(30));
    /// let response = processor.handle_event(event, invocation).await.unwrap();
    /// assert!(response.batch_item_failures.is_empty());
    /// // The order's item and its idempotency record were written together.
    /// assert_eq!(store.tables()["order#A"], json!({"status": "ACCEPTED"}));
    /// # }
    /// ```
    pub fn of(cx: &RecordContext) -> Result<&Transaction, RecordError> {
        cx.extensions.get::<Arc<Transaction>>().map(|transaction| &**transaction).ok_or_else(|| {
            RecordError::permanent("this handler needs transactional idempotency; configure IdempotencyConfig::transactional()")
        })
    }

    pub(super) fn new(
        store: Arc<dyn IdempotencyStore>,
        id: String,
        payload_hash: String,
        ttl: Duration,
        clock: Clock,
        deadline: Now,
    ) -> Self {
        Self { store, id, payload_hash, ttl, clock, deadline, settlement: Mutex::new(None) }
    }

    /// The store the writes go to, so adapters can check they build the right kind of
    /// [`BusinessWrite`].
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.store
    }

    /// The idempotency key (`<function>#<key>`) this transaction completes.
    pub fn key(&self) -> &str {
        &self.id
    }

    /// Commits `writes` and the `COMPLETED` record carrying `output`, atomically. At most one
    /// commit succeeds per record; after a rejection the handler may commit again (typically
    /// with no writes and an output that records the rejection). Once a commit succeeds, the
    /// record is processed with `output`, whatever the handler returns afterwards.
    ///
    /// # Errors
    ///
    /// Nothing is written on any error: see [`CommitError`]. A write of a kind the store does
    /// not run (a DynamoDB write handed to the embedded store, say) fails as the store's error.
    pub async fn commit<O: Serialize>(&self, writes: Vec<BusinessWrite>, output: &O) -> Result<(), CommitError> {
        let output = serde_json::to_value(output)
            .map_err(|e| CommitError::Failed(RecordError::permanent(format!("the handler's output could not be serialized: {e}"))))?;
        self.commit_value(writes, output).await
    }

    pub(super) async fn commit_value(&self, writes: Vec<BusinessWrite>, output: Value) -> Result<(), CommitError> {
        if self.is_settled() {
            return Err(CommitError::Failed(RecordError::permanent(format!(
                "the transaction for {} was already settled; commit once per record",
                self.id
            ))));
        }
        let now = self.clock.now();
        let record = IdempotencyRecord {
            id: self.id.clone(),
            status: Status::Completed,
            expiration: now.plus(self.ttl).secs,
            in_progress_expiration: None,
            payload_hash: self.payload_hash.clone(),
            result: Some(output),
            updated_at: now.millis,
            claim_token: None,
        };
        crate::fault::inject(crate::fault::Point::BeforeCommit, &self.id);
        let (settlement, result) = match self.store.commit(&record, writes, now, self.deadline).await {
            Ok(()) => {
                crate::fault::inject(crate::fault::Point::AfterCommit, &self.id);
                (Settlement::Committed(record), Ok(()))
            }
            Err(CommitFailure::BusinessCondition { index, reason }) => return Err(CommitError::Rejected { index, reason }),
            Err(CommitFailure::ClaimLost(existing)) => {
                let existing = match existing {
                    Some(existing) => Ok(*existing),
                    // The store could not return the record with the failure: read it.
                    None => self.store.get(&self.id).await.map_err(|e| RecordError::transient(e.to_string())).and_then(|found| {
                        found.ok_or_else(|| {
                            RecordError::transient(format!(
                                "the commit of {} conflicted with a record that is gone; it will be retried",
                                self.id
                            ))
                        })
                    }),
                };
                match existing {
                    Ok(existing) => (Settlement::Taken(existing), Err(CommitError::AlreadyTaken(self.id.clone()))),
                    Err(error) => (Settlement::Failed(error.clone()), Err(CommitError::Failed(error))),
                }
            }
            Err(CommitFailure::Store(error)) => {
                let error = RecordError::transient(error.to_string());
                (Settlement::Failed(error.clone()), Err(CommitError::Failed(error)))
            }
        };
        *self.settlement.lock().unwrap_or_else(|p| p.into_inner()) = Some(settlement);
        result
    }

    pub(super) fn is_settled(&self) -> bool {
        self.settlement.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    pub(super) fn settlement(&self) -> Option<Settlement> {
        self.settlement.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
