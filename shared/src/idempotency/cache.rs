//! Recently completed keys, so that a warm execution environment answers repeats without a
//! store request. Only `COMPLETED` records go in: an `IN_PROGRESS` one can still fail.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use serde_json::Value;

use super::{IdempotencyRecord, Now};

pub(super) struct CompletedCache(Option<Mutex<LruCache<String, Entry>>>);

struct Entry {
    payload_hash: String,
    result: Value,
    /// The record's own expiration (epoch seconds): the cache never outlives the store.
    expiration: i64,
}

impl CompletedCache {
    pub fn new(capacity: usize) -> Self {
        Self(NonZeroUsize::new(capacity).map(|capacity| Mutex::new(LruCache::new(capacity))))
    }

    /// The payload hash and result of a key completed and not expired at `now`.
    pub fn get(&self, id: &str, now: Now) -> Option<(String, Value)> {
        let mut cache = self.0.as_ref()?.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(id) {
            Some(entry) if entry.expiration >= now.secs => Some((entry.payload_hash.clone(), entry.result.clone())),
            Some(_) => {
                cache.pop(id);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, record: &IdempotencyRecord) {
        if let Some(cache) = &self.0 {
            let entry = Entry {
                payload_hash: record.payload_hash.clone(),
                result: record.result.clone().unwrap_or(Value::Null),
                expiration: record.expiration,
            };
            cache.lock().unwrap_or_else(|p| p.into_inner()).put(record.id.clone(), entry);
        }
    }
}
