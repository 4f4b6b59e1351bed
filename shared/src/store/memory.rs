//! An idempotency store in memory, for unit tests and benchmarks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::{wrong_write_kind, BusinessWrite, Claim, ClaimWriteFailure, CommitFailure, IdempotencyStore, StoreError};
use crate::idempotency::{IdempotencyRecord, Now, Status};

/// Business tables of the memory store: items by key, as JSON.
pub type MemoryTables = BTreeMap<String, Value>;

/// A change to [`MemoryTables`]; an `Err` rejects the transaction with that reason.
pub type MemoryWrite = Box<dyn FnOnce(&mut MemoryTables) -> Result<(), String> + Send>;

#[derive(Default)]
struct State {
    records: HashMap<String, IdempotencyRecord>,
    tables: MemoryTables,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
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
            let BusinessWrite::Memory(write) = write else {
                return Err(wrong_write_kind(&self.describe(), &write));
            };
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
