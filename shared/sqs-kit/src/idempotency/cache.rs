//! Recently completed keys, so that a warm execution environment answers repeats without a
//! store request. Only `COMPLETED` records go in: an `IN_PROGRESS` one can still fail.
//!
//! An entry answers for the cache lifetime at most, whatever the record's own expiration: the
//! store is the truth, and an operator who evicts a key there must reach the running processes
//! in bounded time.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use lru::LruCache;
use serde_json::Value;

use crate::store::{IdempotencyRecord, Now};

pub(super) struct CompletedCache {
    entries: Option<Mutex<LruCache<String, Entry>>>,
    lifetime: Duration,
}

struct Entry {
    payload_hash: String,
    result: Value,
    /// The record's own expiration (epoch seconds): the cache never outlives the store.
    expiration: i64,
    /// Epoch milliseconds from which the entry no longer answers: inserted + lifetime.
    stale_from: i64,
}

impl Entry {
    /// Whether the entry answers at `now`: before `stale_from`, and while the record counts
    /// (the rule of [`IdempotencyRecord::is_live`]).
    fn answers_at(&self, now: Now) -> bool {
        now.millis < self.stale_from && now.secs <= self.expiration
    }
}

impl CompletedCache {
    /// A cache of `capacity` keys whose entries answer for `lifetime`; either zero turns it off.
    pub(super) fn new(capacity: usize, lifetime: Duration) -> Self {
        let entries = NonZeroUsize::new(capacity).filter(|_| !lifetime.is_zero()).map(|capacity| Mutex::new(LruCache::new(capacity)));
        Self { entries, lifetime }
    }

    /// The payload hash and result of a key completed and still answering at `now`.
    pub(super) fn get(&self, id: &str, now: Now) -> Option<(String, Value)> {
        let mut cache = self.entries.as_ref()?.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(id) {
            Some(entry) if entry.answers_at(now) => Some((entry.payload_hash.clone(), entry.result.clone())),
            Some(_) => {
                cache.pop(id);
                None
            }
            None => None,
        }
    }

    /// Remembers `record` (completed), as seen at `now`.
    pub(super) fn insert(&self, record: &IdempotencyRecord, now: Now) {
        if let Some(cache) = &self.entries {
            let entry = Entry {
                payload_hash: record.payload_hash.clone(),
                result: record.result.clone().unwrap_or(Value::Null),
                expiration: record.expiration,
                stale_from: now.plus(self.lifetime).millis,
            };
            cache.lock().unwrap_or_else(|p| p.into_inner()).put(record.id.clone(), entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Status;

    fn completed(expiration: i64) -> IdempotencyRecord {
        IdempotencyRecord {
            id: "fn#key".into(),
            status: Status::Completed,
            expiration,
            in_progress_expiration: None,
            payload_hash: "hash".into(),
            result: Some(Value::from(1)),
            updated_at: 0,
            claim_token: None,
        }
    }

    #[test]
    fn an_entry_answers_until_its_lifetime_ends_exactly() {
        let cache = CompletedCache::new(8, Duration::from_secs(60));
        let inserted = Now::from_millis(1_000_000);
        cache.insert(&completed(inserted.secs + 86_400), inserted);
        let last_answer = inserted.plus(Duration::from_millis(59_999));
        assert!(cache.get("fn#key", last_answer).is_some());
        assert!(cache.get("fn#key", inserted.plus(Duration::from_secs(60))).is_none(), "stale at inserted + lifetime");
        assert!(cache.get("fn#key", last_answer).is_none(), "a stale entry is dropped, not kept for later");
    }

    #[test]
    fn an_entry_never_outlives_its_record() {
        let cache = CompletedCache::new(8, Duration::from_secs(60));
        let inserted = Now::from_millis(1_000_000);
        cache.insert(&completed(inserted.secs + 10), inserted);
        assert!(
            cache.get("fn#key", Now::from_millis((inserted.secs + 10) * 1000 + 999)).is_some(),
            "the record counts through its expiration second"
        );
        assert!(cache.get("fn#key", Now::from_millis((inserted.secs + 11) * 1000)).is_none());
    }

    #[test]
    fn a_zero_lifetime_turns_the_cache_off() {
        let cache = CompletedCache::new(8, Duration::ZERO);
        let now = Now::from_millis(1_000_000);
        cache.insert(&completed(now.secs + 86_400), now);
        assert!(cache.get("fn#key", now).is_none());
    }
}
