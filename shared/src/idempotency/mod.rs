//! Idempotency as a layer around a record service (design.md §4).
//!
//! SQS delivers at least once: the same message can arrive twice, and a producer can send the
//! same event twice. [`Idempotent`] makes the effect happen once per key:
//!
//! 1. The key is read from the body by a JSON Pointer (or is the message id) and prefixed with
//!    the function name. A body without the key fails permanently: silently processing it
//!    unprotected would defeat the point.
//! 2. A warm cache of recently completed keys answers repeats without a store request.
//! 3. **Claim mode**: one conditional write claims the key (`IN_PROGRESS`, expiring at the
//!    invocation's deadline); the handler runs; success marks it `COMPLETED` with the output,
//!    failure deletes the claim so the retry can run. A claim that finds a `COMPLETED` record
//!    with the same payload hash is a duplicate; with another hash, the key was reused for
//!    different content (permanent); a live `IN_PROGRESS` means another invocation is on it
//!    (transient: SQS will deliver it again).
//! 4. **Transactional mode**, for effects that are themselves writes to the store: the handler
//!    hands its writes to [`Transaction::commit`], which writes them and the `COMPLETED` record
//!    atomically under the same condition, in one request; a crash can neither lose nor double
//!    the effect, and there is no separate claim.
//!
//! Records with the same key in flight in one process (two copies in one batch, say) share one
//! handler call and its outcome.

mod cache;
mod record;
mod transaction;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use record::{IdempotencyRecord, Now, Status};
pub use transaction::{CommitError, Transaction};

use crate::error::RecordError;
use crate::handler::{Handled, Record, RecordFuture, RecordService};
use crate::store::{Claim, IdempotencyStore};
use cache::CompletedCache;

/// Attempts at marking a processed record completed, and the pause that grows between them.
const COMPLETE_ATTEMPTS: u32 = 4;
const COMPLETE_BACKOFF: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct IdempotencyConfig {
    /// JSON Pointer (RFC 6901) to the key in the body, e.g. `/eventId`; `None` keys on the SQS
    /// message id, which only catches redeliveries of one message, not a re-sent event.
    pub key_pointer: Option<String>,
    /// How long a completed record counts (and is kept before the table's TTL deletes it).
    pub ttl: Duration,
    /// Completed keys remembered in memory; 0 turns the cache off.
    pub cache_capacity: usize,
    /// Transactional mode: the handler's writes commit with the `COMPLETED` record.
    pub transactional: bool,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self { key_pointer: None, ttl: Duration::from_secs(24 * 3600), cache_capacity: 1024, transactional: false }
    }
}

impl IdempotencyConfig {
    /// Keys on the value at `pointer` in the body.
    pub fn keyed_by(pointer: impl Into<String>) -> Self {
        Self { key_pointer: Some(pointer.into()), ..Self::default() }
    }

    pub fn transactional(self) -> Self {
        Self { transactional: true, ..self }
    }
}

/// The record service `S`, made idempotent with `store`.
pub struct Idempotent<S> {
    inner: Arc<Layer<S>>,
}

struct Layer<S> {
    service: S,
    store: Arc<dyn IdempotencyStore>,
    config: IdempotencyConfig,
    cache: CompletedCache,
    in_flight: Mutex<HashMap<String, InFlight>>,
}

type SharedOutcome = Shared<BoxFuture<'static, Result<Handled, RecordError>>>;

struct InFlight {
    payload_hash: String,
    outcome: SharedOutcome,
}

impl<S: RecordService> Idempotent<S> {
    pub fn new(service: S, store: Arc<dyn IdempotencyStore>, config: IdempotencyConfig) -> Result<Self, InvalidPointer> {
        if let Some(pointer) = &config.key_pointer {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(InvalidPointer(pointer.clone()));
            }
        }
        let cache = CompletedCache::new(config.cache_capacity);
        Ok(Self { inner: Arc::new(Layer { service, store, config, cache, in_flight: Mutex::new(HashMap::new()) }) })
    }

    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.inner.store
    }
}

/// A key pointer that is not a JSON Pointer.
#[derive(Debug, thiserror::Error)]
#[error("the idempotency key pointer {0:?} is not a JSON Pointer: it must be empty or start with '/', e.g. \"/eventId\"")]
pub struct InvalidPointer(pub String);

impl<S: RecordService> RecordService for Idempotent<S> {
    fn call(&self, record: Record) -> RecordFuture {
        let layer = Arc::clone(&self.inner);
        Box::pin(async move { layer.call(record).await })
    }
}

/// Removes a key from the in-flight map when its leader finishes or is dropped.
struct InFlightGuard<'a> {
    map: &'a Mutex<HashMap<String, InFlight>>,
    id: String,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl<S: RecordService> Layer<S> {
    async fn call(self: Arc<Self>, record: Record) -> Result<Handled, RecordError> {
        let key = self.key_of(&record)?;
        let id = format!("{}#{key}", record.cx.invocation.function_name);
        tracing::Span::current().record("idempotency_key", key_digest(&id).as_str());
        let payload_hash = payload_hash(&record.body);

        if let Some((cached_hash, result)) = self.cache.get(&id, Now::system()) {
            return if cached_hash == payload_hash { Ok(Handled::Duplicate(result)) } else { Err(mismatch(&id)) };
        }

        let (outcome, leader) = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            match in_flight.get(&id) {
                Some(running) if running.payload_hash != payload_hash => return Err(mismatch(&id)),
                Some(running) => (running.outcome.clone(), false),
                None => {
                    let run = Arc::clone(&self).run(id.clone(), payload_hash.clone(), record).boxed().shared();
                    in_flight.insert(id.clone(), InFlight { payload_hash, outcome: run.clone() });
                    (run, true)
                }
            }
        };
        if leader {
            let _guard = InFlightGuard { map: &self.in_flight, id };
            outcome.await
        } else {
            // The same work, done once for both records.
            outcome.await.map(|handled| match handled {
                Handled::Processed(output) | Handled::Duplicate(output) => Handled::Duplicate(output),
            })
        }
    }

    fn key_of(&self, record: &Record) -> Result<String, RecordError> {
        let Some(pointer) = &self.config.key_pointer else {
            return Ok(record.cx.meta.message_id.clone());
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
        let now = Now::system();
        let claim = IdempotencyRecord {
            id: id.clone(),
            status: Status::InProgress,
            expiration: now.plus(self.config.ttl).secs,
            in_progress_expiration: Some(record.cx.invocation.deadline_epoch_ms() as i64),
            payload_hash: payload_hash.clone(),
            result: None,
            updated_at: now.millis,
        };
        match self.store.claim(&claim, now).await.map_err(|e| RecordError::transient(e.to_string()))? {
            Claim::Acquired => {}
            Claim::Existing(existing) => return self.judge_existing(existing, &payload_hash),
        }

        let invocation = Arc::clone(&record.cx.invocation);
        let outcome = AssertUnwindSafe(self.service.call(record)).catch_unwind().await;
        let output = match outcome {
            Ok(Ok(Handled::Processed(output) | Handled::Duplicate(output))) => output,
            Ok(Err(error)) => {
                self.release(&id).await;
                return Err(error);
            }
            Err(panic) => {
                self.release(&id).await;
                return Err(RecordError::transient(format!("the handler panicked: {}", crate::batch::panic_message(panic.as_ref()))));
            }
        };

        crate::fault::inject(crate::fault::Point::AfterHandler, &id);
        let now = Now::system();
        let completed = IdempotencyRecord {
            status: Status::Completed,
            expiration: now.plus(self.config.ttl).secs,
            in_progress_expiration: None,
            result: Some(output.clone()),
            updated_at: now.millis,
            ..claim
        };
        // The effect happened; only the record of it is missing. A store blip must not turn it
        // into a retry, so try again while the invocation has time. If the store stays away,
        // the record fails: a success here would leave the claim IN_PROGRESS with no delivery
        // left to complete it, and the next copy of the event would run the effect again
        // unprotected. Redelivered, the handler runs again once the claim lapses; its effect
        // must be idempotent itself (a conditional write, a write-once file).
        let mut attempt = 1;
        loop {
            match self.store.complete(&completed).await {
                Ok(()) => {
                    self.cache.insert(&completed);
                    return Ok(Handled::Processed(output));
                }
                Err(error) if attempt < COMPLETE_ATTEMPTS && invocation.remaining() > COMPLETE_BACKOFF * 4 => {
                    tracing::warn!(%error, attempt, "could not mark the record completed; trying again");
                    tokio::time::sleep(COMPLETE_BACKOFF * attempt).await;
                    attempt += 1;
                }
                Err(error) => {
                    return Err(RecordError::transient(format!(
                        "the record was processed, but {error}; it will be delivered again and its effect must absorb the repeat"
                    )))
                }
            }
        }
    }

    async fn run_transactional(&self, id: String, payload_hash: String, mut record: Record) -> Result<Handled, RecordError> {
        let transaction = Arc::new(Transaction::new(Arc::clone(&self.store), id, payload_hash.clone(), self.config.ttl));
        record.cx.transaction = Some(Arc::clone(&transaction));
        let outcome = AssertUnwindSafe(self.service.call(record)).catch_unwind().await;
        let returned = match outcome {
            Ok(Ok(Handled::Processed(output) | Handled::Duplicate(output))) => Ok(output),
            Ok(Err(error)) => Err(error),
            Err(panic) => Err(RecordError::transient(format!("the handler panicked: {}", crate::batch::panic_message(panic.as_ref())))),
        };
        if let (Ok(output), false) = (&returned, transaction.is_settled()) {
            // The handler had no writes of its own: commit the record alone.
            let _ = transaction.commit_value(Vec::new(), output.clone()).await;
        }
        match transaction.settlement() {
            Some(transaction::Settlement::Committed(completed)) => {
                self.cache.insert(&completed);
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
                self.cache.insert(&existing);
                Ok(Handled::Duplicate(existing.result.unwrap_or(Value::Null)))
            }
            Status::InProgress => Err(RecordError::transient(format!(
                "another invocation is processing idempotency key {} (its claim lapses at {} ms after the epoch); it will be retried",
                existing.id,
                existing.in_progress_expiration.unwrap_or_default()
            ))),
        }
    }

    async fn release(&self, id: &str) {
        if let Err(error) = self.store.release(id).await {
            tracing::warn!(%error, idempotency_key = %id, "could not release the claim; it lapses at the invocation deadline");
        }
    }
}

fn mismatch(id: &str) -> RecordError {
    RecordError::permanent(format!(
        "idempotency key {id} was already used for a different payload; give the new event its own key"
    ))
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
    Sha256::digest(id.as_bytes()).iter().take(8).fold(String::with_capacity(16), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// SHA-256 (hex) of the body in canonical form: object keys sorted, no whitespace, so that the
/// same event re-serialized by another producer hashes the same.
pub fn payload_hash(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
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
}
