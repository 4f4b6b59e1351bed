//! Where idempotency records live: one trait, four stores.
//!
//! - [`DynamoDbStore`]: a DynamoDB table, in AWS (or any endpoint set by `AWS_ENDPOINT_URL`).
//! - [`EmbeddedStore`]: an SQLite database in a file under the local state directory, shared
//!   by every function and process that uses the same directory.
//! - [`RedisStore`]: a Redis or Valkey server (ElastiCache, MemoryDB, or one's own), claim mode
//!   only: it has no transactions with business data.
//! - [`MemoryStore`]: a map in memory, for tests and for `--store memory`; always built.
//!
//! A store of one's own implements [`IdempotencyStore`] and gives it to the idempotency layer
//! or to [`Runner::with_store`](crate::runner::Runner::with_store). [`Backend`] is what a
//! function's adapters build on: the store in use and, through it, the connection or client
//! for the function's own tables. Every store here passes the same conformance suite
//! (`shared/sqs-kit/tests/store_conformance.rs` in the repository).

/// Attribute values, item readers and SDK error text for a function's own DynamoDB tables.
#[cfg(feature = "dynamodb")]
pub mod attributes;
#[cfg(feature = "dynamodb")]
mod dynamodb;
#[cfg(feature = "embedded")]
mod embedded;
mod memory;
mod record;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoDbStore;
#[cfg(feature = "embedded")]
pub use embedded::{EmbeddedStore, EmbeddedWrite, WriteRejected, DATABASE_FILE};
pub use memory::{MemoryStore, MemoryTables, MemoryWrite};
pub use record::{IdempotencyRecord, Now, Status};
#[cfg(feature = "redis")]
pub use redis::{InvalidRedisSetting, RedisConfig, RedisStore};

/// What a conditional claim found.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Claim {
    /// The record was written; the caller owns the key until it completes or releases it.
    Acquired,
    /// A live record blocked the claim; it is returned as the store found it.
    Existing(IdempotencyRecord),
}

/// A business write that must commit in the same transaction as an idempotency record.
/// Each store accepts its own kind; handing a store another kind is a programming error.
#[non_exhaustive]
pub enum BusinessWrite {
    /// One item of a DynamoDB `TransactWriteItems` call (`Put`, `Update`, `Delete` or
    /// `ConditionCheck`); its condition failing rejects the whole transaction.
    #[cfg(feature = "dynamodb")]
    DynamoDb(Box<aws_sdk_dynamodb::types::TransactWriteItem>),
    /// SQL run inside the embedded store's transaction.
    #[cfg(feature = "embedded")]
    Embedded(EmbeddedWrite),
    /// A change to the memory store's tables.
    Memory(MemoryWrite),
}

impl fmt::Debug for BusinessWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "dynamodb")]
            BusinessWrite::DynamoDb(item) => f.debug_tuple("DynamoDb").field(item).finish(),
            #[cfg(feature = "embedded")]
            BusinessWrite::Embedded(_) => f.write_str("Embedded(..)"),
            BusinessWrite::Memory(_) => f.write_str("Memory(..)"),
        }
    }
}

#[cfg(feature = "dynamodb")]
impl BusinessWrite {
    /// A conditional `Put` in the DynamoDB transaction.
    pub fn put(put: aws_sdk_dynamodb::types::Put) -> Self {
        Self::DynamoDb(Box::new(aws_sdk_dynamodb::types::TransactWriteItem::builder().put(put).build()))
    }

    /// A (conditional) `Update` in the DynamoDB transaction.
    pub fn update(update: aws_sdk_dynamodb::types::Update) -> Self {
        Self::DynamoDb(Box::new(aws_sdk_dynamodb::types::TransactWriteItem::builder().update(update).build()))
    }

    /// A `ConditionCheck` in the DynamoDB transaction: writes nothing, but its failure
    /// cancels the transaction.
    pub fn condition_check(check: aws_sdk_dynamodb::types::ConditionCheck) -> Self {
        Self::DynamoDb(Box::new(aws_sdk_dynamodb::types::TransactWriteItem::builder().condition_check(check).build()))
    }
}

// Only a store with another kind of write to refuse asks for the kind.
#[cfg(any(feature = "dynamodb", feature = "embedded"))]
impl BusinessWrite {
    fn kind(&self) -> &'static str {
        match self {
            #[cfg(feature = "dynamodb")]
            BusinessWrite::DynamoDb(_) => "DynamoDB",
            #[cfg(feature = "embedded")]
            BusinessWrite::Embedded(_) => "embedded",
            BusinessWrite::Memory(_) => "memory",
        }
    }
}

/// Why a transactional commit ([`IdempotencyStore::commit`]) did not happen. Nothing was
/// written, whatever the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitFailure {
    /// The idempotency condition failed: a live record exists (returned when the store could
    /// read it with the failure; boxed, as the rare case, to keep the error small).
    #[error("the idempotency record is already taken")]
    ClaimLost(Option<Box<IdempotencyRecord>>),
    /// The condition of business write `index` (0-based, in the order given) failed.
    #[error("business write {index} was rejected: {reason}")]
    BusinessCondition {
        /// The write's position in the `writes` given to the commit, from 0.
        index: usize,
        /// Why the condition failed, as the store or the write put it.
        reason: String,
    },
    /// The store failed, or was handed a kind of business write it does not run.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A store could not be reached or refused a request for a reason other than a condition.
/// The idempotency layer fails the record transiently with it: SQS delivers the record again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the idempotency store ({store}) failed to {operation}: {cause}")]
pub struct StoreError {
    /// Which store, e.g. `DynamoDB table orders-idempotency`: what
    /// [`IdempotencyStore::describe`] says.
    pub store: String,
    /// What it was asked to do, as a verb, e.g. `claim`, `complete`, `commit` or `open`.
    pub operation: &'static str,
    /// What went wrong, in one line (for the SDK's errors, the service's code and message).
    pub cause: String,
}

/// Why a write in the name of a claim ([`IdempotencyStore::complete`],
/// [`IdempotencyStore::release`]) did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimWriteFailure {
    /// The stored record no longer carries the caller's claim token: the claim lapsed and
    /// another invocation took the key over (or an operator evicted it). Nothing was written.
    #[error("the claim is no longer this invocation's: it lapsed and another invocation took the key over, or it was evicted")]
    ClaimLost,
    /// The store failed; whether the write happened is unknown.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A place that keeps idempotency records, with conditional writes.
///
/// `now` is passed in rather than read inside, so that the expiry rules are the caller's clock
/// and can be tested. A write waits no longer than the deadline of the invocation it serves
/// (a claim's `in_progress_expiration`, or `deadline`) for a lock held by someone else.
///
/// Ownership: a claim carries a random `claim_token`. Completing or releasing it writes only
/// while the stored record still carries that token, so an invocation whose claim lapsed and
/// was taken over can neither overwrite nor delete the new owner's record.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Human-readable name, for error messages: `DynamoDB table X`, `embedded store at DIR`.
    fn describe(&self) -> String;

    /// Whether [`Self::commit`] can write business data with a record. A store without (Redis)
    /// is refused for transactional idempotency when the layer is built, before any record.
    fn supports_transactions(&self) -> bool {
        true
    }

    /// Writes `record` (status `IN_PROGRESS`, with the caller's `claim_token`) unless a live
    /// record holds the key, in one conditional request: `attribute_not_exists(id) OR
    /// expiration < now OR (status = IN_PROGRESS AND in_progress_expiration < now_ms)`.
    async fn claim(&self, record: &IdempotencyRecord, now: Now) -> Result<Claim, StoreError>;

    /// Replaces the caller's `claim` with `record` (status `COMPLETED`, the same token), under
    /// the condition that the stored record still carries the claim's token; otherwise
    /// [`ClaimWriteFailure::ClaimLost`]. Completing one's own completed record again (a retry
    /// after an answer that was lost) writes the same record.
    async fn complete(&self, claim: &IdempotencyRecord, record: &IdempotencyRecord) -> Result<(), ClaimWriteFailure>;

    /// Deletes the caller's `IN_PROGRESS` `claim` so a retry can run, under the same condition
    /// as [`Self::complete`]; never a `COMPLETED` record.
    async fn release(&self, claim: &IdempotencyRecord) -> Result<(), ClaimWriteFailure>;

    /// Writes `record` (status `COMPLETED`) and `writes` atomically, under the claim condition,
    /// for an invocation whose deadline is `deadline`.
    async fn commit(&self, record: &IdempotencyRecord, writes: Vec<BusinessWrite>, now: Now, deadline: Now) -> Result<(), CommitFailure>;

    /// Reads a record as stored, live or not (operator tooling; not on the processing path).
    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Deletes a record whatever its status, so the key is processed again; whether it existed.
    async fn evict(&self, id: &str) -> Result<bool, StoreError>;
}

/// The failure of a store handed a business write of another store's kind.
#[cfg(any(feature = "dynamodb", feature = "embedded"))]
fn wrong_write_kind(store: &str, write: &BusinessWrite) -> CommitFailure {
    CommitFailure::Store(StoreError {
        store: store.to_owned(),
        operation: "commit",
        cause: format!("it cannot run a {} business write; build the function's adapters for this store", write.kind()),
    })
}

/// The stores a function's adapters build on: the idempotency store and, through it, the
/// connection (embedded) or client (DynamoDB) for the function's own tables. A function's
/// adapters match on it to build their ports for the store in use.
#[derive(Clone)]
#[non_exhaustive]
pub enum Backend {
    /// The embedded store (local modes).
    #[cfg(feature = "embedded")]
    Embedded(Arc<EmbeddedStore>),
    /// A DynamoDB table (Lambda, or `--store dynamodb`).
    #[cfg(feature = "dynamodb")]
    DynamoDb(Arc<DynamoDbStore>),
    /// A Redis or Valkey server (Lambda with `REDIS_URL`, or `--store redis`).
    #[cfg(feature = "redis")]
    Redis(Arc<RedisStore>),
    /// The memory store (`--store memory`, tests).
    Memory(Arc<MemoryStore>),
    /// A store of the caller's own ([`Runner::with_store`](crate::runner::Runner::with_store)):
    /// the idempotency layer uses it; adapters that need a specific store refuse it.
    Custom(Arc<dyn IdempotencyStore>),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Backend").field(&self.store().describe()).finish()
    }
}

impl Backend {
    /// The idempotency store of this backend.
    pub fn store(&self) -> Arc<dyn IdempotencyStore> {
        match self {
            #[cfg(feature = "embedded")]
            Backend::Embedded(store) => store.clone(),
            #[cfg(feature = "dynamodb")]
            Backend::DynamoDb(store) => store.clone(),
            #[cfg(feature = "redis")]
            Backend::Redis(store) => store.clone(),
            Backend::Memory(store) => store.clone(),
            Backend::Custom(store) => store.clone(),
        }
    }

    /// The DynamoDB backend on the table named by `IDEMPOTENCY_TABLE`, with the AWS
    /// configuration from the environment.
    #[cfg(feature = "dynamodb")]
    pub async fn dynamodb_from_env() -> Result<Self, MissingTable> {
        let table = crate::env::var(crate::env::IDEMPOTENCY_TABLE).ok_or(MissingTable)?;
        Ok(Backend::DynamoDb(Arc::new(DynamoDbStore::from_env(table).await)))
    }

    /// The DynamoDB backend on the table named by `IDEMPOTENCY_TABLE`, with the caller's AWS
    /// configuration.
    #[cfg(feature = "dynamodb")]
    pub fn dynamodb_with_config(config: &aws_config::SdkConfig) -> Result<Self, MissingTable> {
        let table = crate::env::var(crate::env::IDEMPOTENCY_TABLE).ok_or(MissingTable)?;
        Ok(Backend::DynamoDb(Arc::new(DynamoDbStore::with_config(config, table))))
    }
}

impl Backend {
    /// The error of a function whose adapters do not exist for this backend (a memory or a
    /// custom store, for a function that keeps business state in DynamoDB or SQLite).
    pub fn unsupported(&self, function: &str) -> UnsupportedBackend {
        UnsupportedBackend { function: function.to_owned(), store: self.store().describe() }
    }
}

/// A function cannot keep its state in the backend it was given.
#[derive(Debug, thiserror::Error)]
#[error("{function} keeps its state in DynamoDB or the embedded store and has no adapters for the {store}; pick one of those (--store)")]
pub struct UnsupportedBackend {
    /// The function's name.
    pub function: String,
    /// The backend's store, as [`IdempotencyStore::describe`] names it.
    pub store: String,
}

/// `IDEMPOTENCY_TABLE` is not set.
#[derive(Debug, thiserror::Error)]
#[error("the DynamoDB store needs IDEMPOTENCY_TABLE set to the name of the idempotency table")]
pub struct MissingTable;
