//! An idempotency store in memory, for tests, benchmarks and `--store memory`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

#[cfg(any(feature = "dynamodb", feature = "embedded"))]
use super::wrong_write_kind;
use super::{BusinessWrite, Claim, ClaimWriteFailure, CommitFailure, IdempotencyStore, StoreError};
use super::{IdempotencyRecord, Now, Status};

/// Business tables of the memory store: items by key, as JSON, in key order.
pub type MemoryTables = BTreeMap<String, Value>;

/// A change to [`MemoryTables`], for [`BusinessWrite::Memory`]. It runs on a copy of the tables
/// inside the commit; an `Err` rejects the transaction with that reason
/// ([`CommitFailure::BusinessCondition`]) and leaves the tables as they were.
pub type MemoryWrite = Box<dyn FnOnce(&mut MemoryTables) -> Result<(), String> + Send>;

#[derive(Debug, Default)]
struct State {
    records: HashMap<String, IdempotencyRecord>,
    tables: MemoryTables,
}

/// An idempotency store in a map in memory, with business tables of JSON items
/// ([`MemoryTables`]) that transactional handlers write with [`BusinessWrite::Memory`].
///
/// It follows the same rules as the other stores, atomically under one lock; what it holds is
/// gone when it is dropped, so it remembers nothing between processes (or between `replay`
/// runs with `--store memory`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the business tables, to check what transactions wrote.
    pub fn tables(&self) -> MemoryTables {
        self.state.lock().unwrap().tables.clone()
    }

    /// Sets a business item directly, outside any transaction.
    pub fn put_item(&self, key: impl Into<String>, value: Value) {
        self.state.lock().unwrap().tables.insert(key.into(), value);
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    fn describe(&self) -> String {
        "memory store".to_owned()
    }

    async fn claim(&self, record: &IdempotencyRecord, now: Now) -> Result<Claim, StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(existing) = state.records.get(&record.id).filter(|existing| existing.is_live(now)) {
            return Ok(Claim::Existing(existing.clone()));
        }
        state.records.insert(record.id.clone(), record.clone());
        Ok(Claim::Acquired)
    }

    async fn complete(&self, claim: &IdempotencyRecord, record: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        let mut state = self.state.lock().unwrap();
        match state.records.get_mut(&claim.id) {
            Some(stored) if stored.claim_token == claim.claim_token => {
                *stored = record.clone();
                Ok(())
            }
            _ => Err(ClaimWriteFailure::ClaimLost),
        }
    }

    async fn release(&self, claim: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        let mut state = self.state.lock().unwrap();
        match state.records.get(&claim.id) {
            Some(stored) if stored.status == Status::InProgress && stored.claim_token == claim.claim_token => {
                state.records.remove(&claim.id);
                Ok(())
            }
            _ => Err(ClaimWriteFailure::ClaimLost),
        }
    }

    async fn commit(&self, record: &IdempotencyRecord, writes: Vec<BusinessWrite>, now: Now, _deadline: Now) -> Result<(), CommitFailure> {
        let mut state = self.state.lock().unwrap();
        if let Some(existing) = state.records.get(&record.id).filter(|existing| existing.is_live(now)) {
            return Err(CommitFailure::ClaimLost(Some(Box::new(existing.clone()))));
        }
        // Apply to a copy so that a rejected write leaves nothing behind.
        let mut tables = state.tables.clone();
        for (index, write) in writes.into_iter().enumerate() {
            #[cfg(any(feature = "dynamodb", feature = "embedded"))]
            let write = match write {
                BusinessWrite::Memory(write) => write,
                other => return Err(wrong_write_kind(&self.describe(), &other)),
            };
            // Built without the other stores, memory writes are the only kind there is.
            #[cfg(not(any(feature = "dynamodb", feature = "embedded")))]
            let BusinessWrite::Memory(write) = write;
            write(&mut tables).map_err(|reason| CommitFailure::BusinessCondition { index, reason })?;
        }
        state.tables = tables;
        state.records.insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.state.lock().unwrap().records.get(id).cloned())
    }

    async fn evict(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.state.lock().unwrap().records.remove(id).is_some())
    }
}
