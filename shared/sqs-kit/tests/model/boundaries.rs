//! Expiry at the boundary instants. The model: a record counts through its expiration second
//! (it lapses at the first millisecond of the next one); an `IN_PROGRESS` claim holds through
//! its in-progress expiration millisecond; a cached key answers from the moment it was cached
//! for the cache lifetime, and never after its record lapses. Checked against every store's
//! claim and commit at the instants either side of each boundary, and against the warm cache
//! with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};
use sqs_kit::idempotency::{IdempotencyRecord, ManualClock, Now, Status};
use sqs_kit::store::{Claim, CommitFailure, IdempotencyStore, MemoryStore};
use sqs_kit::{handler_fn, typed, BatchConfig, BatchProcessor, IdempotencyConfig, Idempotent, Outcome, RecordContext, RecordError};

/// Where a probe falls: either side of the boundary the model computes, on it, or anywhere in a
/// window (milliseconds from the start of the case).
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    JustBefore,
    At,
    JustAfter,
    Offset(i64),
}

impl Probe {
    fn instant(self, boundary: i64, start: i64) -> i64 {
        match self {
            Probe::JustBefore => boundary - 1,
            Probe::At => boundary,
            Probe::JustAfter => boundary + 1,
            Probe::Offset(ms) => start + ms,
        }
    }
}

fn probe(window_ms: i64) -> impl Strategy<Value = Probe> {
    prop_oneof![Just(Probe::JustBefore), Just(Probe::At), Just(Probe::JustAfter), (0..window_ms).prop_map(Probe::Offset)]
}

/// A record in the store, and when another delivery tries to claim its key.
#[derive(Clone, Debug)]
pub struct StoreCase {
    completed: bool,
    /// Seconds after the start of the case.
    expiration_s: i64,
    /// Milliseconds after the start of the case.
    in_progress_ms: i64,
    probe: Probe,
}

pub fn store_case() -> impl Strategy<Value = StoreCase> {
    (any::<bool>(), 0i64..3, 0i64..4000, probe(5000)).prop_map(|(completed, expiration_s, in_progress_ms, probe)| StoreCase {
        completed,
        expiration_s,
        in_progress_ms,
        probe,
    })
}

/// The first instant (epoch milliseconds) at which `record` no longer blocks a claim.
fn lapses_at(record: &IdempotencyRecord) -> i64 {
    let counted_until = (record.expiration + 1) * 1000;
    match (record.status, record.in_progress_expiration) {
        (Status::InProgress, Some(held_through)) => counted_until.min(held_through + 1),
        _ => counted_until,
    }
}

/// The start of a case: a whole second a minute from now, so that the deadlines the stores
/// bound their lock waits by lie ahead.
fn case_start() -> i64 {
    (Now::system().secs + 60) * 1000
}

fn first_use(id: &str, case: &StoreCase, start: i64) -> IdempotencyRecord {
    IdempotencyRecord {
        id: id.to_owned(),
        status: if case.completed { Status::Completed } else { Status::InProgress },
        expiration: start / 1000 + case.expiration_s,
        in_progress_expiration: (!case.completed).then_some(start + case.in_progress_ms),
        payload_hash: "first".to_owned(),
        result: case.completed.then(|| json!("first")),
        updated_at: start,
        claim_token: Some("first-token".to_owned()),
    }
}

fn second_use(id: &str, status: Status, at: i64, start: i64) -> IdempotencyRecord {
    IdempotencyRecord {
        id: id.to_owned(),
        status,
        expiration: at / 1000 + 3600,
        in_progress_expiration: (status == Status::InProgress).then_some(start + 120_000),
        payload_hash: "second".to_owned(),
        result: (status == Status::Completed).then(|| json!("second")),
        updated_at: at,
        claim_token: Some("second-token".to_owned()),
    }
}

/// Puts `record` in the store as a first use of its key would.
async fn write(store: &dyn IdempotencyStore, record: &IdempotencyRecord, start: i64) -> Result<(), String> {
    let long_ago = Now::from_millis(0);
    match record.status {
        Status::InProgress => match store.claim(record, long_ago).await {
            Ok(Claim::Acquired) => Ok(()),
            other => Err(format!("a fresh key could not be claimed: {other:?}")),
        },
        Status::Completed => store
            .commit(record, Vec::new(), long_ago, Now::from_millis(start + 120_000))
            .await
            .map_err(|e| format!("a fresh key could not be committed: {e}")),
    }
}

/// The record, `IdempotencyRecord::is_live`, a claim and a transactional commit at the probe
/// instant all agree with the model.
pub async fn check_store(store: &dyn IdempotencyStore, id: &str, case: &StoreCase) -> Result<(), String> {
    let start = case_start();
    let claimed_id = format!("{id}-claim");
    let committed_id = format!("{id}-commit");
    let first = first_use(&claimed_id, case, start);
    let boundary = lapses_at(&first);
    let at = case.probe.instant(boundary, start);
    let now = Now::from_millis(at);
    let lapsed = at >= boundary;
    if first.is_live(now) == lapsed {
        return Err(format!("is_live at {at} says {}, but the record lapses at {boundary}", first.is_live(now)));
    }

    write(store, &first, start).await?;
    match store.claim(&second_use(&claimed_id, Status::InProgress, at, start), now).await {
        Ok(Claim::Acquired) if lapsed => {}
        Ok(Claim::Existing(found)) if !lapsed && found.payload_hash == "first" => {}
        other => return Err(format!("a claim at {at} (the first use lapses at {boundary}) got {other:?}")),
    }

    write(store, &first_use(&committed_id, case, start), start).await?;
    let commit =
        store.commit(&second_use(&committed_id, Status::Completed, at, start), Vec::new(), now, Now::from_millis(start + 120_000)).await;
    match commit {
        Ok(()) if lapsed => Ok(()),
        Err(CommitFailure::ClaimLost(_)) if !lapsed => Ok(()),
        other => Err(format!("a commit at {at} (the first use lapses at {boundary}) got {other:?}")),
    }
}

/// A key completed and cached, then evicted from the store, so that only the cache can answer
/// when the same event comes again at the probe instant.
#[derive(Clone, Debug)]
pub struct CacheCase {
    lifetime_ms: u64,
    ttl_s: u64,
    probe: Probe,
}

pub fn cache_case() -> impl Strategy<Value = CacheCase> {
    (1u64..5000, 1u64..5, probe(8000)).prop_map(|(lifetime_ms, ttl_s, probe)| CacheCase { lifetime_ms, ttl_s, probe })
}

pub async fn check_cache(case: &CacheCase) -> Result<(), String> {
    let clock = ManualClock::starting_at(Now::system());
    let start = clock.now().millis;
    let config = IdempotencyConfig::keyed_by("/eventId")
        .with_ttl(Duration::from_secs(case.ttl_s))
        .with_cache_lifetime(Duration::from_millis(case.lifetime_ms))
        .with_clock(clock.clock());
    let store = Arc::new(MemoryStore::new());
    let handler = typed(handler_fn(|_: Value, _: RecordContext| async { Ok::<_, RecordError>(json!("done")) }));
    let processor = BatchProcessor::new(Idempotent::new(handler, store.clone(), config).unwrap(), BatchConfig::default());
    let delivery = |id: &str| crate::common::event(vec![crate::common::record(id, &json!({"eventId": "k"}).to_string())]);
    let invocation = || crate::common::invocation(Duration::from_secs(30));

    let first = processor.process(delivery("m1"), invocation()).await.map_err(|e| e.to_string())?;
    if first.records[0].outcome != Outcome::Processed(json!("done")) {
        return Err(format!("the first delivery: {}", first.records[0].outcome));
    }
    store.evict("test-function#k").await.map_err(|e| e.to_string())?;
    let record_lapses = (Now::from_millis(start).plus(Duration::from_secs(case.ttl_s)).secs + 1) * 1000;
    let boundary = (start + case.lifetime_ms as i64).min(record_lapses);
    let at = case.probe.instant(boundary, start);
    clock.set(Now::from_millis(at));
    let again = processor.process(delivery("m2"), invocation()).await.map_err(|e| e.to_string())?;
    let answered = &again.records[0].outcome;
    match answered {
        Outcome::Duplicate(_) if at < boundary => Ok(()),
        Outcome::Processed(_) if at >= boundary => Ok(()),
        other => Err(format!("a repeat at {at} ms (cached at {start}, the entry lapses at {boundary}) was {other}")),
    }
}
