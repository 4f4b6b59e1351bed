//! The embedded store: SQLite in a file under the local state directory.
//!
//! Every local run mode and every function that shares a state directory share one database,
//! so an order replayed through four functions leaves all its state in one place, and a
//! function's business tables commit in the same transaction as its idempotency record.
//! Writes take SQLite's write lock up front (`BEGIN IMMEDIATE`) and WAL mode lets readers go on,
//! so two processes replaying at once serialize their claims instead of both winning.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{wrong_write_kind, BusinessWrite, Claim, CommitFailure, IdempotencyStore, StoreError};
use crate::idempotency::{IdempotencyRecord, Now, Status};

/// The database file inside the state directory.
pub const DATABASE_FILE: &str = "sqs-kit.sqlite3";

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQL a function runs inside the store's transaction.
pub type EmbeddedWrite = Box<dyn FnOnce(&Transaction<'_>) -> Result<(), WriteRejected> + Send>;

/// Why an [`EmbeddedWrite`] did not apply.
#[derive(Debug, thiserror::Error)]
pub enum WriteRejected {
    /// A business condition did not hold (the SQL equivalent of a failed DynamoDB condition).
    #[error("{0}")]
    Condition(String),
    #[error("SQLite error: {0}")]
    Sql(#[from] rusqlite::Error),
}

pub struct EmbeddedStore {
    state_dir: PathBuf,
    connection: Mutex<Connection>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database in `state_dir`.
    pub fn open(state_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let state_dir = state_dir.as_ref().to_path_buf();
        let fail = |cause: String| StoreError {
            store: format!("embedded store at {}", state_dir.display()),
            operation: "open",
            cause,
        };
        std::fs::create_dir_all(&state_dir).map_err(|e| fail(format!("cannot create the state directory: {e}")))?;
        let connection = Connection::open(state_dir.join(DATABASE_FILE)).map_err(|e| fail(e.to_string()))?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail(e.to_string()))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS idempotency (
                     id TEXT PRIMARY KEY,
                     status TEXT NOT NULL,
                     expiration INTEGER NOT NULL,
                     in_progress_expiration INTEGER,
                     payload_hash TEXT NOT NULL,
                     result TEXT,
                     updated_at INTEGER NOT NULL
                 );",
            )
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self { state_dir, connection: Mutex::new(connection) })
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Runs `f` on the store's connection: for a function's schema, seeding and reads.
    pub fn with_connection<T>(&self, operation: &'static str, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut connection).map_err(|e| self.error(operation, e))
    }

    fn error(&self, operation: &'static str, cause: impl ToString) -> StoreError {
        StoreError { store: self.describe(), operation, cause: cause.to_string() }
    }

    /// Runs `f` in one write transaction; the calls are short, so they run on the caller's
    /// thread rather than paying for a hop to a blocking pool on every record.
    fn write<T, E: From<StoreError>>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(operation, e))?;
        let value = f(&transaction)?;
        transaction.commit().map_err(|e| self.error(operation, e))?;
        Ok(value)
    }
}

fn read_record(transaction: &Connection, id: &str) -> rusqlite::Result<Option<IdempotencyRecord>> {
    // Cached statements: parsing SQL costs more than running these one-row statements.
    transaction
        .prepare_cached(
            "SELECT id, status, expiration, in_progress_expiration, payload_hash, result, updated_at
             FROM idempotency WHERE id = ?1",
        )?
        .query_row([id], |row| {
                let status: String = row.get(1)?;
                let result: Option<String> = row.get(5)?;
                Ok(IdempotencyRecord {
                    id: row.get(0)?,
                    status: Status::parse(&status).unwrap_or(Status::InProgress),
                    expiration: row.get(2)?,
                    in_progress_expiration: row.get(3)?,
                    payload_hash: row.get(4)?,
                    result: result.and_then(|text| serde_json::from_str(&text).ok()),
                    updated_at: row.get(6)?,
                })
        })
        .optional()
}

fn write_record(transaction: &Connection, record: &IdempotencyRecord) -> rusqlite::Result<()> {
    transaction.prepare_cached(
        "INSERT OR REPLACE INTO idempotency
             (id, status, expiration, in_progress_expiration, payload_hash, result, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
            record.id,
            record.status.as_str(),
            record.expiration,
            record.in_progress_expiration,
            record.payload_hash,
            record.result.as_ref().map(|result| result.to_string()),
            record.updated_at,
        ])?;
    Ok(())
}

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded store at {}", self.state_dir.display())
    }

    async fn claim(&self, record: &IdempotencyRecord, now: Now) -> Result<Claim, StoreError> {
        // One conditional upsert, like DynamoDB's conditional PutItem: a fresh key costs one
        // statement and one commit; only a taken key pays for the read of what holds it.
        self.with_connection("claim", |connection| loop {
            let written = connection
                .prepare_cached(
                    "INSERT INTO idempotency
                         (id, status, expiration, in_progress_expiration, payload_hash, result, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO UPDATE SET
                         status = excluded.status, expiration = excluded.expiration,
                         in_progress_expiration = excluded.in_progress_expiration,
                         payload_hash = excluded.payload_hash, result = excluded.result,
                         updated_at = excluded.updated_at
                     WHERE idempotency.expiration < ?8
                        OR (idempotency.status = 'IN_PROGRESS' AND idempotency.in_progress_expiration < ?9)",
                )?
                .execute(params![
                    record.id,
                    record.status.as_str(),
                    record.expiration,
                    record.in_progress_expiration,
                    record.payload_hash,
                    record.result.as_ref().map(|result| result.to_string()),
                    record.updated_at,
                    now.secs,
                    now.millis,
                ])?;
            if written == 1 {
                return Ok(Claim::Acquired);
            }
            // Taken: read what holds it. Another process may have released it in between;
            // then the claim is tried again.
            if let Some(existing) = read_record(connection, &record.id)? {
                return Ok(Claim::Existing(existing));
            }
        })
    }

    async fn complete(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        self.with_connection("complete", |connection| write_record(connection, record))
    }

    async fn release(&self, id: &str) -> Result<(), StoreError> {
        self.with_connection("release", |connection| {
            connection.prepare_cached("DELETE FROM idempotency WHERE id = ?1 AND status = 'IN_PROGRESS'")?.execute([id]).map(drop)
        })
    }

    async fn commit(&self, record: &IdempotencyRecord, writes: Vec<BusinessWrite>, now: Now) -> Result<(), CommitFailure> {
        self.write("commit", |transaction| {
            let existing = read_record(transaction, &record.id).map_err(|e| self.error("commit", e))?;
            if let Some(existing) = existing.filter(|r| r.is_live(now)) {
                return Err(CommitFailure::ClaimLost(Some(existing)));
            }
            for (index, write) in writes.into_iter().enumerate() {
                let BusinessWrite::Embedded(write) = write else {
                    return Err(wrong_write_kind(&self.describe(), &write));
                };
                match write(transaction) {
                    Ok(()) => {}
                    Err(WriteRejected::Condition(reason)) => {
                        return Err(CommitFailure::BusinessCondition { index, reason })
                    }
                    Err(WriteRejected::Sql(e)) => return Err(self.error("commit", e).into()),
                }
            }
            write_record(transaction, record).map_err(|e| self.error("commit", e))?;
            Ok(())
        })
    }

    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.with_connection("read", |connection| read_record(connection, id))
    }

    async fn evict(&self, id: &str) -> Result<bool, StoreError> {
        self.with_connection("evict", |connection| {
            connection.execute("DELETE FROM idempotency WHERE id = ?1", [id]).map(|deleted| deleted > 0)
        })
    }
}
