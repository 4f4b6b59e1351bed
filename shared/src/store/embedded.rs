//! The embedded store: SQLite in a file under the local state directory.
//!
//! Every local run mode and every function that shares a state directory share one database,
//! so an order replayed through four functions leaves all its state in one place, and a
//! function's business tables commit in the same transaction as its idempotency record.
//! Writes take SQLite's write lock up front (`BEGIN IMMEDIATE`) and WAL mode lets readers go on,
//! so two processes replaying at once serialize their claims instead of both winning.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{wrong_write_kind, BusinessWrite, Claim, CommitFailure, IdempotencyStore, StoreError};
use crate::idempotency::{IdempotencyRecord, Now, Status};

/// The database file inside the state directory.
pub const DATABASE_FILE: &str = "sqs-kit.sqlite3";

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQL a function runs inside the store's transaction, within a savepoint of its own.
pub type EmbeddedWrite = Box<dyn FnOnce(&Connection) -> Result<(), WriteRejected> + Send>;

/// Why an [`EmbeddedWrite`] did not apply.
#[derive(Debug, thiserror::Error)]
pub enum WriteRejected {
    /// A business condition did not hold (the SQL equivalent of a failed DynamoDB condition).
    #[error("{0}")]
    Condition(String),
    #[error("SQLite error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The embedded store. Claims, completions, releases and commits are group-committed: the
/// records of a batch reach the store at about the same time, and one transaction (one write to
/// the WAL) carries the operations that are waiting when it starts, each answered only once
/// that transaction has committed. Durability per operation is what it would be alone; the
/// cost of a commit is shared (see the per-record figures in the README's Performance).
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    state_dir: PathBuf,
    connection: Mutex<Connection>,
    waiting: Mutex<Waiting>,
}

/// Operations waiting for the next group commit.
#[derive(Default)]
struct Waiting {
    operations: Vec<Operation>,
    /// A group commit is scheduled and has not taken the waiting operations yet.
    scheduled: bool,
}

/// A store operation for a group commit. It runs inside the group's transaction (or learns why
/// there is none) and returns how to answer once the commit's outcome is known.
type Operation = Box<dyn FnOnce(Result<&mut Connection, String>) -> Answer + Send>;
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

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
                 ) WITHOUT ROWID;",
            )
            .map_err(|e| fail(e.to_string()))?;
        let inner = Inner { state_dir, connection: Mutex::new(connection), waiting: Mutex::default() };
        Ok(Self { inner: Arc::new(inner) })
    }

    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    /// Runs `f` on the store's connection, outside the group commits: for a function's schema,
    /// seeding and reads.
    pub fn with_connection<T>(&self, operation: &'static str, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut connection = self.inner.lock_connection();
        f(&mut connection).map_err(|e| self.inner.error(operation, e))
    }

    /// Runs `f` in the next group commit and answers once that has committed.
    async fn grouped<T, E>(&self, operation: &'static str, f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let run: Operation = Box::new(move |connection| {
            let outcome = match connection {
                Ok(connection) => f(connection),
                Err(cause) => Err(inner.error(operation, cause).into()),
            };
            Box::new(move |committed| {
                let outcome = match (outcome, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(cause)) => Err(inner.error(operation, cause).into()),
                    (Err(error), _) => Err(error),
                };
                let _ = reply.send(outcome);
            })
        });
        if self.inner.enqueue(run) {
            // This operation leads the next group: the records that are ready get a turn to
            // queue theirs, then the group commits on this thread.
            let leader = Leader(&self.inner);
            tokio::task::yield_now().await;
            drop(leader);
        }
        match answer.await {
            Ok(outcome) => outcome,
            // Dropped unanswered: the operation panicked (a function's write, say).
            Err(_) => Err(self.inner.error(operation, "the operation panicked inside the store's transaction; nothing was written").into()),
        }
    }

    /// [`Self::grouped`] for SQL that fails only with SQLite's errors.
    async fn grouped_sql<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.grouped(operation, move |connection| f(connection).map_err(|e| inner.error(operation, e))).await
    }
}

impl Inner {
    fn lock_connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn describe(&self) -> String {
        format!("embedded store at {}", self.state_dir.display())
    }

    fn error(&self, operation: &'static str, cause: impl ToString) -> StoreError {
        StoreError { store: self.describe(), operation, cause: cause.to_string() }
    }

    /// Queues `operation`; whether it leads a group, that is, no group commit is due yet.
    fn enqueue(&self, operation: Operation) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        waiting.operations.push(operation);
        !std::mem::replace(&mut waiting.scheduled, true)
    }

    fn group_commit(&self) {
        // The connection first: operations queued while an earlier group commits join this one.
        let mut connection = self.lock_connection();
        let operations = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            waiting.scheduled = false;
            std::mem::take(&mut waiting.operations)
        };
        if operations.is_empty() {
            return;
        }
        if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
            let cause = error.to_string();
            for operation in operations {
                operation(Err(cause.clone()))(Err(cause.clone()));
            }
            return;
        }
        let mut answers = Vec::with_capacity(operations.len());
        for operation in operations {
            // Some SQLite errors (a full disk, say) roll the whole transaction back: what
            // follows would run outside it, so it is refused.
            let connection_in_transaction = if connection.is_autocommit() {
                Err("an earlier operation's error ended the transaction".to_owned())
            } else {
                Ok(&mut *connection)
            };
            // A panic drops the operation's reply, which its caller reads as a failure; the
            // savepoint of a commit rolls back as it unwinds.
            if let Ok(answer) = std::panic::catch_unwind(AssertUnwindSafe(|| operation(connection_in_transaction))) {
                answers.push(answer);
            }
        }
        let committed = if connection.is_autocommit() {
            Err("the transaction was rolled back by an error".to_owned())
        } else {
            connection.execute_batch("COMMIT").map_err(|error| {
                let _ = connection.execute_batch("ROLLBACK");
                error.to_string()
            })
        };
        drop(connection);
        for answer in answers {
            answer(committed.clone());
        }
    }
}

/// The duty of the operation that leads a group: commit it when dropped, which also covers a
/// leader whose record is cancelled while it yields, so that nobody waits on it forever.
struct Leader<'a>(&'a Inner);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.0.group_commit();
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

/// Writing a record: an upsert (INSERT OR REPLACE would delete the row and insert it again).
macro_rules! upsert_sql {
    () => {
        "INSERT INTO idempotency
             (id, status, expiration, in_progress_expiration, payload_hash, result, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET
             status = excluded.status, expiration = excluded.expiration,
             in_progress_expiration = excluded.in_progress_expiration,
             payload_hash = excluded.payload_hash, result = excluded.result,
             updated_at = excluded.updated_at"
    };
}

/// Writes `record` over the row with its id; with `claim_at`, only over a row that no longer
/// blocks a claim at that time (the rule of [`IdempotencyRecord::is_live`]). Whether it wrote.
fn upsert_record(connection: &Connection, record: &IdempotencyRecord, claim_at: Option<Now>) -> rusqlite::Result<bool> {
    let result = record.result.as_ref().map(|result| result.to_string());
    let values = params![
        record.id,
        record.status.as_str(),
        record.expiration,
        record.in_progress_expiration,
        record.payload_hash,
        result,
        record.updated_at,
    ];
    let written = match claim_at {
        None => connection.prepare_cached(upsert_sql!())?.execute(values)?,
        Some(now) => {
            let condition: [&dyn rusqlite::ToSql; 2] = [&now.secs, &now.millis];
            connection
                .prepare_cached(concat!(
                    upsert_sql!(),
                    " WHERE idempotency.expiration < ?8
                        OR (idempotency.status = 'IN_PROGRESS' AND idempotency.in_progress_expiration < ?9)"
                ))?
                .execute(rusqlite::params_from_iter(values.iter().chain(condition.iter())))?
        }
    };
    Ok(written == 1)
}

fn write_record(connection: &Connection, record: &IdempotencyRecord) -> rusqlite::Result<()> {
    upsert_record(connection, record, None).map(drop)
}

/// The claim: one conditional upsert, like DynamoDB's conditional PutItem. A fresh key costs
/// one statement; only a taken key pays for the read of what holds it.
fn claim_in(connection: &Connection, record: &IdempotencyRecord, now: Now) -> rusqlite::Result<Claim> {
    if upsert_record(connection, record, Some(now))? {
        return Ok(Claim::Acquired);
    }
    // Inside the transaction, what refused the upsert is still there to read.
    match read_record(connection, &record.id)? {
        Some(existing) => Ok(Claim::Existing(existing)),
        None => Err(rusqlite::Error::QueryReturnedNoRows),
    }
}

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn claim(&self, record: &IdempotencyRecord, now: Now) -> Result<Claim, StoreError> {
        let record = record.clone();
        self.grouped_sql("claim", move |connection| claim_in(connection, &record, now)).await
    }

    async fn complete(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.grouped_sql("complete", move |connection| write_record(connection, &record)).await
    }

    async fn release(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.grouped_sql("release", move |connection| {
            connection.prepare_cached("DELETE FROM idempotency WHERE id = ?1 AND status = 'IN_PROGRESS'")?.execute([id]).map(drop)
        })
        .await
    }

    async fn commit(&self, record: &IdempotencyRecord, writes: Vec<BusinessWrite>, now: Now) -> Result<(), CommitFailure> {
        let record = record.clone();
        let inner = Arc::clone(&self.inner);
        self.grouped("commit", move |connection| {
            let sql = |e: rusqlite::Error| CommitFailure::from(inner.error("commit", e));
            // A savepoint: a rejected write undoes this commit's writes, not its group's.
            let savepoint = connection.savepoint().map_err(sql)?;
            if let Some(existing) = read_record(&savepoint, &record.id).map_err(sql)?.filter(|r| r.is_live(now)) {
                return Err(CommitFailure::ClaimLost(Some(existing)));
            }
            for (index, write) in writes.into_iter().enumerate() {
                let BusinessWrite::Embedded(write) = write else {
                    return Err(wrong_write_kind(&inner.describe(), &write));
                };
                match write(&savepoint) {
                    Ok(()) => {}
                    Err(WriteRejected::Condition(reason)) => return Err(CommitFailure::BusinessCondition { index, reason }),
                    Err(WriteRejected::Sql(e)) => return Err(sql(e)),
                }
            }
            write_record(&savepoint, &record).map_err(sql)?;
            savepoint.commit().map_err(sql)
        })
        .await
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

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn claim_of(id: &str, now: Now) -> IdempotencyRecord {
        IdempotencyRecord {
            id: id.to_owned(),
            status: Status::InProgress,
            expiration: now.secs + 3600,
            in_progress_expiration: Some(now.millis + 60_000),
            payload_hash: "hash".to_owned(),
            result: None,
            updated_at: now.millis,
        }
    }

    #[tokio::test]
    async fn a_leader_dropped_before_its_group_commits_still_commits_it() {
        let state = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(state.path()).unwrap();
        let now = Now::system();
        // Polled once, the claim queues itself, leads the group and yields; then its record is
        // cancelled.
        assert!(store.claim(&claim_of("dropped", now), now).now_or_never().is_none());
        let stored = store.get("dropped").await.unwrap().expect("the dropped leader's group committed");
        assert_eq!(stored.status, Status::InProgress);
        // And the store goes on: the next operation leads a group of its own.
        let next = tokio::time::timeout(Duration::from_secs(5), store.claim(&claim_of("next", now), now)).await;
        assert!(matches!(next, Ok(Ok(Claim::Acquired))), "{next:?}");
    }

    #[tokio::test]
    async fn claims_sharing_a_group_answer_as_if_run_one_after_the_other() {
        let state = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(state.path()).unwrap();
        let now = Now::system();
        let claims: Vec<IdempotencyRecord> = (0..20).map(|i| claim_of(&format!("key-{}", i % 10), now)).collect();
        let answers = futures::future::join_all(claims.iter().map(|claim| store.claim(claim, now))).await;
        // Ten keys, each claimed twice in the same group: the first claim of each wins, the
        // second finds it, as if they had run one after the other.
        let acquired = answers.iter().filter(|answer| matches!(answer, Ok(Claim::Acquired))).count();
        let found = answers.iter().filter(|answer| matches!(answer, Ok(Claim::Existing(_)))).count();
        assert_eq!((acquired, found), (10, 10), "{answers:?}");
    }
}
