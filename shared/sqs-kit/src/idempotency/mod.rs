//! Idempotency as a layer around a record service.
//!
//! SQS delivers at least once: the same message can arrive twice, and a producer can send the
//! same event twice. [`Idempotent`] makes the effect happen once per key:
//!
//! 1. The key is read from the body by a JSON Pointer (or is the message id) and prefixed with
//!    the function name. A body without the key fails permanently: silently processing it
//!    unprotected would defeat the point.
//!    The key must fit DynamoDB's partition key (`<function>#<key>`, at most [`MAX_ID_BYTES`]
//!    bytes of UTF-8) on every store, so that no store accepts what another refuses.
//! 2. A warm cache of recently completed keys answers repeats without a store request, for
//!    [`IdempotencyConfig::cache_lifetime`] at most: an evicted key is processed again
//!    everywhere within that time.
//! 3. **Claim mode**: one conditional write claims the key (`IN_PROGRESS`, expiring at the
//!    invocation's deadline, with a random claim token); the handler runs; success marks it
//!    `COMPLETED` with the output, failure deletes the claim so the retry can run. Both are
//!    written only while the record still carries the claim's token: an invocation whose claim
//!    lapsed and was taken over leaves the new owner's record alone, and its record fails
//!    (transient). A claim that finds a `COMPLETED` record
//!    with the same payload hash is a duplicate; with another hash, the key was reused for
//!    different content (permanent); a live `IN_PROGRESS` means another invocation is on it
//!    (transient: SQS will deliver it again).
//! 4. **Transactional mode**, for effects that are themselves writes to the store: the handler
//!    hands its writes to [`Transaction::commit`], which writes them and the `COMPLETED` record
//!    atomically under the same condition, in one request; a crash can neither lose nor double
//!    the effect, and there is no separate claim.
//!
//! Records with the same key in flight in one process (two copies in one batch, say) share one
//! handler call and its outcome. A record whose key is in flight for another payload waits for
//! that run to end and is then judged by what it left: a reuse of a key whose first use just
//! completed fails permanently, while a copy of the first use that arrives with a reuse is the
//! duplicate it is.

mod cache;
mod clock;
mod transaction;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use crate::store::{IdempotencyRecord, Now, Status};
pub use clock::{Clock, ManualClock};
pub use transaction::{CommitError, Transaction};

use crate::error::RecordError;
use crate::handler::{Handled, Record, RecordFuture, RecordService};
use crate::store::{Claim, ClaimWriteFailure, IdempotencyStore};
use cache::CompletedCache;

/// Attempts at marking a processed record completed, and the pause that grows between them.
const COMPLETE_ATTEMPTS: u32 = 4;
const COMPLETE_BACKOFF: Duration = Duration::from_millis(250);

/// DynamoDB's limit on the size of a partition key, in bytes of UTF-8, which every store
/// applies to a record's id (`<function>#<key>`).
pub const MAX_ID_BYTES: usize = 2048;

/// How long a warm process answers a completed key from memory by default. Long enough to
/// absorb the repeats that come close together (a producer's retry, SNS's and SQS's duplicate
/// deliveries, two copies in consecutive batches), short enough that an operator's
/// `sqs-kit key evict` reaches every running process within a minute. A repeat after that
/// costs one store request (the claim that finds the record), not a second execution.
pub const DEFAULT_CACHE_LIFETIME: Duration = Duration::from_secs(60);

/// The longest cache lifetime [`parse_cache_seconds`] accepts: beyond an hour an eviction would
/// take too long to reach running processes for the cache to be worth it.
pub const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(3600);

/// How [`Idempotent`] keys records and how long what it records counts.
///
/// Built from [`IdempotencyConfig::default`] (keyed on the message id) or
/// [`IdempotencyConfig::keyed_by`], and the `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use sqs_kit::IdempotencyConfig;
///
/// let config = IdempotencyConfig::keyed_by("/orderId").with_ttl(Duration::from_secs(3600)).transactional();
/// assert_eq!(config.key_pointer.as_deref(), Some("/orderId"));
/// assert!(config.transactional);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IdempotencyConfig {
    /// JSON Pointer (RFC 6901) to the key in the body, e.g. `/eventId`; `None` (the default)
    /// keys on the SQS message id, which only catches redeliveries of one message, not a
    /// re-sent event. The value there must be a non-empty string or a number; a body without
    /// it fails permanently. [`Idempotent::new`] refuses a pointer that is neither empty nor
    /// starts with `/`.
    pub key_pointer: Option<String>,
    /// How long a completed record counts (and is kept before the table's TTL deletes it):
    /// a repeat within it is a duplicate, after it the key is processed again. Default 24 hours.
    pub ttl: Duration,
    /// Completed keys remembered in memory, least recently used out first; 0 turns the cache
    /// off. Default 1024.
    pub cache_capacity: usize,
    /// How long a cached key answers repeats: an entry made at `t` answers while the clock reads
    /// less than `t + cache_lifetime` (and the record still counts), then the store is asked
    /// again. It bounds how long a warm process still skips a key an operator evicted.
    /// Default [`DEFAULT_CACHE_LIFETIME`]; `SQS_KIT_CACHE_SECONDS` sets it (see
    /// [`IdempotencyConfig::with_env`]); zero turns the cache off.
    pub cache_lifetime: Duration,
    /// Transactional mode: the handler's writes commit with the `COMPLETED` record, through the
    /// record's [`Transaction`]; there is no separate claim. Default `false` (claim mode).
    pub transactional: bool,
    /// The clock by which claims, records and cache entries expire (the system clock by
    /// default; a [`ManualClock`] in tests).
    pub clock: Clock,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            key_pointer: None,
            ttl: Duration::from_secs(24 * 3600),
            cache_capacity: 1024,
            cache_lifetime: DEFAULT_CACHE_LIFETIME,
            transactional: false,
            clock: Clock::system(),
        }
    }
}

impl IdempotencyConfig {
    /// The default configuration, keyed on the value at JSON Pointer `pointer` in the body
    /// (e.g. `/orderId`).
    pub fn keyed_by(pointer: impl Into<String>) -> Self {
        Self { key_pointer: Some(pointer.into()), ..Self::default() }
    }

    /// This configuration in transactional mode: the handler's writes commit with the
    /// `COMPLETED` record through the record's [`Transaction`], instead of after a claim.
    pub fn transactional(self) -> Self {
        Self { transactional: true, ..self }
    }

    /// This configuration keyed on the value at `key_pointer` in the body, or on the message
    /// id for `None`.
    pub fn with_key_pointer(self, key_pointer: Option<String>) -> Self {
        Self { key_pointer, ..self }
    }

    /// This configuration counting a completed record for `ttl`.
    pub fn with_ttl(self, ttl: Duration) -> Self {
        Self { ttl, ..self }
    }

    /// This configuration remembering up to `cache_capacity` completed keys in memory.
    pub fn with_cache_capacity(self, cache_capacity: usize) -> Self {
        Self { cache_capacity, ..self }
    }

    /// This configuration answering repeats from memory for `cache_lifetime` at most.
    pub fn with_cache_lifetime(self, cache_lifetime: Duration) -> Self {
        Self { cache_lifetime, ..self }
    }

    /// This configuration reading the time from `clock` (a [`ManualClock`]'s, in tests).
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// This configuration with what the environment sets: `SQS_KIT_CACHE_SECONDS`, the cache
    /// lifetime. The runner applies it where it builds the layer.
    pub fn with_env(self) -> Result<Self, InvalidCacheLifetime> {
        Ok(match cache_lifetime_from_env()? {
            Some(cache_lifetime) => Self { cache_lifetime, ..self },
            None => self,
        })
    }
}

/// The cache lifetime `SQS_KIT_CACHE_SECONDS` sets: `None` when it is unset or empty, an error
/// when it is not a whole number of seconds from 0 to 3600.
pub fn cache_lifetime_from_env() -> Result<Option<Duration>, InvalidCacheLifetime> {
    crate::env::var(crate::env::CACHE_SECONDS).map(|value| parse_cache_seconds(&value)).transpose()
}

/// A cache lifetime in whole seconds, 0 to 3600 ([`MAX_CACHE_LIFETIME`]); surrounding
/// whitespace is ignored, anything else is an [`InvalidCacheLifetime`].
pub fn parse_cache_seconds(text: &str) -> Result<Duration, InvalidCacheLifetime> {
    match text.trim().parse::<u64>() {
        Ok(seconds) if seconds <= MAX_CACHE_LIFETIME.as_secs() => Ok(Duration::from_secs(seconds)),
        _ => Err(InvalidCacheLifetime(text.to_owned())),
    }
}

/// A cache lifetime that is not a whole number of seconds from 0 to 3600.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} must be a whole number of seconds from 0 to {}, not {:?}",
    crate::env::CACHE_SECONDS,
    MAX_CACHE_LIFETIME.as_secs(),
    .0
)]
pub struct InvalidCacheLifetime(pub String);

/// The record service `S`, made idempotent with a store: each key's effect happens once while
/// its record counts (see the [module](self) for the rules).
///
/// A duplicate is reported as [`Outcome::Duplicate`](crate::Outcome::Duplicate) with the output
/// the first delivery stored, and the service is not called:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use aws_lambda_events::event::sqs::SqsEvent;
/// use serde_json::{json, Value};
/// use sqs_kit::store::MemoryStore;
/// use sqs_kit::{handler_fn, typed, BatchConfig, BatchProcessor, IdempotencyConfig, Idempotent};
/// use sqs_kit::{InvocationContext, Outcome, RecordContext, RecordError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let calls = Arc::new(AtomicUsize::new(0));
/// let counted = Arc::clone(&calls);
/// let handler = handler_fn(move |_body: Value, _cx: RecordContext| {
///     let calls = Arc::clone(&counted);
///     async move { Ok::<_, RecordError>(calls.fetch_add(1, Ordering::SeqCst) + 1) }
/// });
/// let service = Idempotent::new(typed(handler), Arc::new(MemoryStore::new()), IdempotencyConfig::keyed_by("/eventId")).unwrap();
/// let processor = BatchProcessor::new(service, BatchConfig::default());
///
/// // The same event, sent twice by its producer: two messages, one key.
/// for message_id in ["m1", "m2"] {
///     let event: SqsEvent =
///         serde_json::from_value(json!({"Records": [{"messageId": message_id, "body": r#"{"eventId": "e-1"}"#}]})).unwrap();
///     let invocation = InvocationContext::with_remaining("orders", message_id, Duration::from_secs(30));
///     let report = processor.process(event, invocation).await.unwrap();
///     let expected = if message_id == "m1" { Outcome::Processed(json!(1)) } else { Outcome::Duplicate(json!(1)) };
///     assert_eq!(report.records[0].outcome, expected);
/// }
/// assert_eq!(calls.load(Ordering::SeqCst), 1);
/// # }
/// ```
pub struct Idempotent<S> {
    inner: Arc<Layer<S>>,
}

impl<S> std::fmt::Debug for Idempotent<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotent")
            .field("store", &self.inner.store.describe())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Layer<S> {
    service: S,
    store: Arc<dyn IdempotencyStore>,
    config: IdempotencyConfig,
    cache: CompletedCache,
    in_flight: Mutex<HashMap<String, InFlight>>,
    /// Numbers the runs, so that an entry of the in-flight map is removed by its own run only.
    runs: AtomicU64,
}

type SharedOutcome = Shared<BoxFuture<'static, Result<Handled, RecordError>>>;

struct InFlight {
    run: u64,
    payload_hash: String,
    outcome: SharedOutcome,
}

impl<S: RecordService> Idempotent<S> {
    /// `service`, made idempotent on `store` with `config`; an invalid key pointer, or
    /// transactional mode on a store without transactions, is refused.
    pub fn new(service: S, store: Arc<dyn IdempotencyStore>, config: IdempotencyConfig) -> Result<Self, InvalidIdempotencyConfig> {
        config.check_for(&*store)?;
        Ok(Self::checked(service, store, config))
    }

    fn checked(service: S, store: Arc<dyn IdempotencyStore>, config: IdempotencyConfig) -> Self {
        let cache = CompletedCache::new(config.cache_capacity, config.cache_lifetime);
        Self { inner: Arc::new(Layer { service, store, config, cache, in_flight: Mutex::new(HashMap::new()), runs: AtomicU64::new(0) }) }
    }

    /// The store the records are kept in.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.inner.store
    }
}

/// The idempotency layer as a [`tower::Layer`]: wraps a record service in [`Idempotent`], on
/// one store with one configuration, e.g. in a `tower::ServiceBuilder`. Services it wraps
/// share the store, not the warm cache or the in-flight map: each [`Idempotent`] has its own.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use serde_json::{json, Value};
/// use sqs_kit::handler::{Handled, Record};
/// use sqs_kit::store::MemoryStore;
/// use sqs_kit::{handler_fn, typed, IdempotencyConfig, IdempotencyLayer, InvocationContext, RecordContext, RecordError, RecordMeta, RecordService};
/// use tower::Layer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let layer = IdempotencyLayer::new(Arc::new(MemoryStore::new()), IdempotencyConfig::keyed_by("/eventId")).unwrap();
/// let handler = handler_fn(|body: Value, _cx: RecordContext| async move { Ok::<_, RecordError>(body["total"].clone()) });
/// let service = layer.layer(typed(handler));
///
/// let invocation = Arc::new(InvocationContext::with_remaining("orders", "request-1", Duration::from_secs(30)));
/// let delivery = |message_id: &str| Record {
///     body: json!({"eventId": "e-1", "total": 42}),
///     cx: RecordContext::new(Arc::new(RecordMeta::new(message_id)), Arc::clone(&invocation)),
/// };
/// assert_eq!(service.call(delivery("m1")).await.unwrap(), Handled::Processed(json!(42)));
/// assert_eq!(service.call(delivery("m2")).await.unwrap(), Handled::Duplicate(json!(42)));
/// # }
/// ```
#[derive(Clone)]
pub struct IdempotencyLayer {
    store: Arc<dyn IdempotencyStore>,
    config: IdempotencyConfig,
}

impl IdempotencyLayer {
    /// A layer on `store` with `config`, checked here, once: the key pointer, and that the
    /// store has transactions if the configuration is transactional.
    pub fn new(store: Arc<dyn IdempotencyStore>, config: IdempotencyConfig) -> Result<Self, InvalidIdempotencyConfig> {
        config.check_for(&*store)?;
        Ok(Self { store, config })
    }
}

impl std::fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyLayer").field("store", &self.store.describe()).field("config", &self.config).finish()
    }
}

impl<S: RecordService> tower::Layer<S> for IdempotencyLayer {
    type Service = Idempotent<S>;

    fn layer(&self, service: S) -> Idempotent<S> {
        Idempotent::checked(service, Arc::clone(&self.store), self.config.clone())
    }
}

impl IdempotencyConfig {
    /// Whether this configuration can work on `store`: a key pointer that is a JSON Pointer,
    /// and transactions if it is transactional. The layer checks it when it is built, so that a
    /// function misconfigured this way stops before its first batch rather than failing every
    /// record of it; a caller that builds adapters on the store first can check it before them.
    pub fn check_for(&self, store: &dyn IdempotencyStore) -> Result<(), InvalidIdempotencyConfig> {
        match &self.key_pointer {
            Some(pointer) if !pointer.is_empty() && !pointer.starts_with('/') => {
                return Err(InvalidIdempotencyConfig::KeyPointer(pointer.clone()));
            }
            _ => {}
        }
        if self.transactional && !store.supports_transactions() {
            return Err(InvalidIdempotencyConfig::NoTransactions { store: store.describe() });
        }
        Ok(())
    }
}

/// An idempotency configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidIdempotencyConfig {
    /// A key pointer that is not a JSON Pointer.
    #[error("the idempotency key pointer {0:?} is not a JSON Pointer: it must be empty or start with '/', e.g. \"/eventId\"")]
    KeyPointer(String),
    /// Transactional mode on a store whose commit cannot write business data (Redis).
    #[error(
        "transactional idempotency needs a store that commits the record with the business writes, and the {store} cannot; \
         use DynamoDB or the embedded store, or claim mode (no .transactional())"
    )]
    NoTransactions {
        /// The store, as it describes itself.
        store: String,
    },
}

impl<S: RecordService> RecordService for Idempotent<S> {
    fn call(&self, record: Record) -> RecordFuture {
        let layer = Arc::clone(&self.inner);
        Box::pin(async move { layer.call(record).await })
    }
}

/// Removes a run's entry from the in-flight map when its leader finishes or is dropped.
struct InFlightGuard<'a> {
    map: &'a Mutex<HashMap<String, InFlight>>,
    id: String,
    run: u64,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // A record that waited for this run may have removed the entry and started its own.
        if map.get(&self.id).is_some_and(|entry| entry.run == self.run) {
            map.remove(&self.id);
        }
    }
}

/// What a record does about the runs of its key in flight in this process.
enum InFlightStep {
    /// It leads a new run, of this number.
    Lead(u64, SharedOutcome),
    /// It shares the outcome of a run of the same payload.
    Join(SharedOutcome),
    /// It waits for a run of another payload to end, then looks again.
    Wait(u64, SharedOutcome),
}

impl<S: RecordService> Layer<S> {
    async fn call(self: Arc<Self>, record: Record) -> Result<Handled, RecordError> {
        let key = self.key_of(&record)?;
        let id = format!("{}#{key}", record.cx.invocation.function_name);
        tracing::Span::current().record("idempotency_key", tracing::field::display(KeyDigest(&id)));
        if id.len() > MAX_ID_BYTES {
            return Err(RecordError::permanent(format!(
                "the idempotency key is {} bytes, {} with the function name; DynamoDB's limit for a partition key \
                 (`<function>#<key>`) is {MAX_ID_BYTES} bytes of UTF-8, on every store: give the event a shorter key",
                key.len(),
                id.len()
            )));
        }
        let payload_hash = payload_hash(&record.body);
        let mut record = Some(record);
        loop {
            if let Some((cached_hash, result)) = self.cache.get(&id, self.config.clock.now()) {
                return if cached_hash == payload_hash { Ok(Handled::Duplicate(result)) } else { Err(mismatch(&id)) };
            }
            let step = {
                let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                match in_flight.get(&id) {
                    Some(running) if running.payload_hash != payload_hash => InFlightStep::Wait(running.run, running.outcome.clone()),
                    Some(running) => InFlightStep::Join(running.outcome.clone()),
                    None => {
                        let record = record.take().expect("a record leads at most one run");
                        let run = self.runs.fetch_add(1, Ordering::Relaxed);
                        let outcome = Arc::clone(&self).run(id.clone(), payload_hash.clone(), record).boxed().shared();
                        in_flight.insert(id.clone(), InFlight { run, payload_hash: payload_hash.clone(), outcome: outcome.clone() });
                        InFlightStep::Lead(run, outcome)
                    }
                }
            };
            match step {
                InFlightStep::Lead(run, outcome) => {
                    let _guard = InFlightGuard { map: &self.in_flight, id, run };
                    return outcome.await;
                }
                // The same work, done once for both records.
                InFlightStep::Join(outcome) => {
                    return outcome.await.map(|handled| match handled {
                        Handled::Processed(output) | Handled::Duplicate(output) => Handled::Duplicate(output),
                    })
                }
                // Whether the key was the other payload's to use is known once its run ends:
                // it may have found this payload's record in the store, or failed and left the
                // key free. The ended run's entry goes, so that the next look sees what it left.
                InFlightStep::Wait(run, outcome) => {
                    let _ = outcome.await;
                    drop(InFlightGuard { map: &self.in_flight, id: id.clone(), run });
                }
            }
        }
    }

    fn key_of(&self, record: &Record) -> Result<String, RecordError> {
        let Some(pointer) = &self.config.key_pointer else {
            return match record.cx.meta.message_id.as_str() {
                "" => Err(RecordError::permanent("the record's message id is empty, so it cannot be its idempotency key")),
                message_id => Ok(message_id.to_owned()),
            };
        };
        match record.body.pointer(pointer) {
            Some(Value::String(key)) if !key.is_empty() => Ok(key.clone()),
            Some(Value::Number(key)) => Ok(key.to_string()),
            Some(other) => Err(RecordError::permanent(format!(
                "the idempotency key at JSON Pointer {pointer} must be a non-empty string or a number, found {}",
                kind_of(other)
            ))),
            None => Err(RecordError::permanent(format!("the body has no idempotency key at JSON Pointer {pointer}"))),
        }
    }

    async fn run(self: Arc<Self>, id: String, payload_hash: String, record: Record) -> Result<Handled, RecordError> {
        if self.config.transactional {
            self.run_transactional(id, payload_hash, record).await
        } else {
            self.run_claimed(id, payload_hash, record).await
        }
    }

    async fn run_claimed(&self, id: String, payload_hash: String, record: Record) -> Result<Handled, RecordError> {
        let now = self.config.clock.now();
        let claim = IdempotencyRecord {
            id: id.clone(),
            status: Status::InProgress,
            expiration: now.plus(self.config.ttl).secs,
            in_progress_expiration: Some(record.cx.invocation.deadline_epoch_ms() as i64),
            payload_hash,
            result: None,
            updated_at: now.millis,
            claim_token: Some(new_claim_token()),
        };
        match self.store.claim(&claim, now).await.map_err(|e| RecordError::transient(e.to_string()))? {
            Claim::Acquired => {}
            Claim::Existing(existing) => return self.judge_existing(existing, &claim.payload_hash),
        }

        let invocation = Arc::clone(&record.cx.invocation);
        let outcome = AssertUnwindSafe(self.service.call(record)).catch_unwind().await;
        let output = match outcome {
            Ok(Ok(Handled::Processed(output) | Handled::Duplicate(output))) => output,
            Ok(Err(error)) => {
                self.release(&claim).await;
                return Err(error);
            }
            Err(panic) => {
                self.release(&claim).await;
                return Err(RecordError::from_panic(panic.as_ref()));
            }
        };

        crate::fault::inject(crate::fault::Point::AfterHandler, &id);
        let now = self.config.clock.now();
        let completed = IdempotencyRecord {
            status: Status::Completed,
            expiration: now.plus(self.config.ttl).secs,
            in_progress_expiration: None,
            result: Some(output.clone()),
            updated_at: now.millis,
            ..claim.clone()
        };
        // The effect happened; only the record of it is missing. A store blip must not turn it
        // into a retry, so try again while the invocation has time. If the store stays away,
        // the record fails: a success here would leave the claim IN_PROGRESS with no delivery
        // left to complete it, and the next copy of the event would run the effect again
        // unprotected. Redelivered, the handler runs again once the claim lapses; its effect
        // must be idempotent itself (a conditional write, a write-once file).
        let mut attempt = 1;
        loop {
            match self.store.complete(&claim, &completed).await {
                Ok(()) => {
                    self.cache.insert(&completed, self.config.clock.now());
                    return Ok(Handled::Processed(output));
                }
                // Retrying cannot win the claim back; the record belongs to its new owner.
                Err(ClaimWriteFailure::ClaimLost) => {
                    tracing::warn!(
                        idempotency_key = %key_digest(&id),
                        "the claim lapsed and another invocation took the key over before this one completed it; its record is left alone"
                    );
                    return Err(RecordError::transient(format!(
                        "the record was processed, but its claim on idempotency key {id} lapsed (at {} ms after the epoch) and another \
                         invocation took the key over, so no completion was written; it will be delivered again and its effect must absorb the repeat",
                        claim.in_progress_expiration.unwrap_or_default()
                    )));
                }
                Err(ClaimWriteFailure::Store(error)) if attempt < COMPLETE_ATTEMPTS && invocation.remaining() > COMPLETE_BACKOFF * 4 => {
                    tracing::warn!(%error, attempt, "could not mark the record completed; trying again");
                    tokio::time::sleep(COMPLETE_BACKOFF * attempt).await;
                    attempt += 1;
                }
                Err(ClaimWriteFailure::Store(error)) => {
                    return Err(RecordError::transient(format!(
                        "the record was processed, but {error}; it will be delivered again and its effect must absorb the repeat"
                    )))
                }
            }
        }
    }

    async fn run_transactional(&self, id: String, payload_hash: String, mut record: Record) -> Result<Handled, RecordError> {
        let deadline = Now::from_millis(record.cx.invocation.deadline_epoch_ms() as i64);
        let transaction = Arc::new(Transaction::new(
            Arc::clone(&self.store),
            id,
            payload_hash.clone(),
            self.config.ttl,
            self.config.clock.clone(),
            deadline,
        ));
        record.cx.extensions.insert(Arc::clone(&transaction));
        let outcome = AssertUnwindSafe(self.service.call(record)).catch_unwind().await;
        let returned = match outcome {
            Ok(Ok(Handled::Processed(output) | Handled::Duplicate(output))) => Ok(output),
            Ok(Err(error)) => Err(error),
            Err(panic) => Err(RecordError::from_panic(panic.as_ref())),
        };
        if let (Ok(output), false) = (&returned, transaction.is_settled()) {
            // The handler had no writes of its own: commit the record alone.
            let _ = transaction.commit_value(Vec::new(), output.clone()).await;
        }
        match transaction.settlement() {
            Some(transaction::Settlement::Committed(completed)) => {
                self.cache.insert(&completed, self.config.clock.now());
                Ok(Handled::Processed(completed.result.unwrap_or(Value::Null)))
            }
            Some(transaction::Settlement::Taken(existing)) => self.judge_existing(existing, &payload_hash),
            Some(transaction::Settlement::Failed(error)) => Err(error),
            None => Err(returned.expect_err("an Ok output is always committed above")),
        }
    }

    /// What a live record found in the store means for this delivery.
    fn judge_existing(&self, existing: IdempotencyRecord, payload_hash: &str) -> Result<Handled, RecordError> {
        if existing.payload_hash != payload_hash {
            return Err(mismatch(&existing.id));
        }
        match existing.status {
            Status::Completed => {
                self.cache.insert(&existing, self.config.clock.now());
                Ok(Handled::Duplicate(existing.result.unwrap_or(Value::Null)))
            }
            Status::InProgress => Err(RecordError::transient(format!(
                "another invocation is processing idempotency key {} (its claim lapses at {} ms after the epoch); it will be retried",
                existing.id,
                existing.in_progress_expiration.unwrap_or_default()
            ))),
        }
    }

    async fn release(&self, claim: &IdempotencyRecord) {
        let idempotency_key = key_digest(&claim.id);
        match self.store.release(claim).await {
            Ok(()) => {}
            Err(ClaimWriteFailure::ClaimLost) => tracing::warn!(
                %idempotency_key,
                "the claim lapsed and another invocation took the key over before this one released it; its record is left alone"
            ),
            Err(ClaimWriteFailure::Store(error)) => {
                tracing::warn!(%error, %idempotency_key, "could not release the claim; it lapses at the invocation deadline")
            }
        }
    }
}

/// A fresh claim token: 128 bits from per-process random hash keys, so that no two claims, in
/// this process or another, share one.
fn new_claim_token() -> String {
    static CLAIMS: AtomicU64 = AtomicU64::new(0);
    let claim = CLAIMS.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(claim);
        hasher.write_u64(salt);
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(0), half(1))
}

fn mismatch(id: &str) -> RecordError {
    RecordError::permanent(format!("idempotency key {id} was already used for a different payload; give the new event its own key"))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "an empty string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The first 16 hex digits of the key's SHA-256: enough to correlate log lines, without
/// writing a key that may hold personal data (an e-mail address, say) into the logs.
pub fn key_digest(id: &str) -> String {
    KeyDigest(id).to_string()
}

/// [`key_digest`] as it is written: the record span takes it, and only a subscriber that
/// records the span pays for the hash.
struct KeyDigest<'a>(&'a str);

impl std::fmt::Display for KeyDigest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&Sha256::digest(self.0.as_bytes())[..8]))
    }
}

/// SHA-256 (hex) of the body in canonical form: object keys sorted, no whitespace, so that the
/// same event re-serialized by another producer hashes the same.
pub fn payload_hash(body: &Value) -> String {
    let mut canonical = Vec::with_capacity(512);
    write_canonical(body, &mut canonical);
    hex(&Sha256::digest(&canonical))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

/// Strings and scalars are written by serde_json's compact writer, so the bytes are those of
/// `Value`'s `Display`, which stored records' hashes were made of.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        // serde_json's maps iterate in key order unless its `preserve_order` feature is on.
        Value::Object(map) if map.keys().is_sorted() => write_members(map.iter(), out),
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by_key(|(key, _)| *key);
            write_members(entries.into_iter(), out)
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

fn write_members<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(key, out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

fn write_json(value: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, value).expect("a string or a scalar always serializes, and a Vec takes every byte");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_hash_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "é"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"é","b":[1,{"x":1,"y":2}]}"#).unwrap();
        assert_eq!(payload_hash(&a), payload_hash(&b));
        assert_ne!(payload_hash(&a), payload_hash(&json!({"a": "e", "b": [1, {"x": 1, "y": 2}]})));
        assert_eq!(payload_hash(&json!({})).len(), 64);
    }

    #[test]
    fn payload_hash_is_the_one_stored_records_carry() {
        // Records written by earlier releases hold this hash: another one for the same body
        // would make every repeat of a stored event a key reuse (a permanent failure).
        let body = r#"{"orderId": "ORD-1", "é": "naïve \"quoted\" \\ back/slash\n\t\u0001", "zero": 0.0, "neg": -7,
            "items": [{"sku": "A", "qty": 2, "price": 1.5, "big": 12345678901234567890}, null, true, false, []], "empty": {}}"#;
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload_hash(&body), "e5a84626935114f85111490d9d24d6f4eccf45bacdc3ed268be40bcceddda6f1");
    }

    #[test]
    fn key_digest_is_the_start_of_the_keys_sha256() {
        assert_eq!(key_digest("orders#e-1"), format!("{:x}", Sha256::digest(b"orders#e-1"))[..16]);
    }
}
