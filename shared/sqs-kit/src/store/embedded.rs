//! The embedded store: SQLite in a file under the local state directory.
//!
//! Every local run mode and every function that shares a state directory share one database,
//! so an order replayed through four functions leaves all its state in one place, and a
//! function's business tables commit in the same transaction as its idempotency record.
//! Writes take SQLite's write lock up front (`BEGIN IMMEDIATE`) and WAL mode lets readers go on,
//! so two processes replaying at once serialize their claims instead of both winning.
//!
//! SQLite's calls block their thread, waiting for another process's write lock included, so
//! they run on tokio's blocking threads, never on the threads that drive the records (and the
//! batch layer's timeouts). A group waits for the lock no longer than the earliest deadline of
//! its operations allows.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use super::{wrong_write_kind, BusinessWrite, Claim, ClaimWriteFailure, CommitFailure, IdempotencyStore, StoreError};
use super::{IdempotencyRecord, Now, Status};

/// The database file inside the state directory.
pub const DATABASE_FILE: &str = "sqs-kit.sqlite3";

/// How long a writer waits for another process's transaction before giving up, when no
/// deadline says otherwise (schema, seeding, tooling).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A group stops waiting for the write lock this long before its earliest deadline, so that its
/// operations fail with the store's reason before the batch layer abandons their records (250 ms
/// before the deadline).
const LOCK_WAIT_RESERVE: Duration = Duration::from_millis(500);

/// SQL a function runs inside the store's transaction, within a savepoint of its own, for
/// [`BusinessWrite::Embedded`]. An `Err` undoes this commit's writes (not the other
/// operations of its group commit) and rejects it.
pub type EmbeddedWrite = Box<dyn FnOnce(&Connection) -> Result<(), WriteRejected> + Send>;

/// Why an [`EmbeddedWrite`] did not apply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteRejected {
    /// A business condition did not hold (the SQL equivalent of a failed DynamoDB condition):
    /// the commit fails with [`CommitFailure::BusinessCondition`] and this reason.
    #[error("{0}")]
    Condition(String),
    /// SQLite failed: the commit fails as a store error (transient).
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

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("state_dir", &self.inner.state_dir).finish_non_exhaustive()
    }
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
    /// The earliest deadline (epoch milliseconds) of the waiting operations.
    deadline_ms: Option<i64>,
    /// A group commit is scheduled and has not taken the waiting operations yet.
    scheduled: bool,
}

/// A store operation for a group commit. It runs inside the group's transaction (or learns why
/// there is none) and returns how to answer once the commit's outcome is known.
type Operation = Box<dyn FnOnce(Result<&mut Connection, String>) -> Answer + Send>;
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The idempotency table; a database from before claim tokens gets their column. Only a
/// database that lacks either takes the write lock, so opening never waits for another
/// process's transaction otherwise.
fn create_schema(connection: &mut Connection) -> rusqlite::Result<()> {
    connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
    let has_tokens = |connection: &Connection| {
        connection.prepare("SELECT 1 FROM pragma_table_info('idempotency') WHERE name = 'claim_token'")?.exists([])
    };
    if has_tokens(connection)? {
        return Ok(());
    }
    // One transaction, so that two processes opening an old database add the column once.
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS idempotency (
             id TEXT PRIMARY KEY,
             status TEXT NOT NULL,
             expiration INTEGER NOT NULL,
             in_progress_expiration INTEGER,
             payload_hash TEXT NOT NULL,
             result TEXT,
             updated_at INTEGER NOT NULL,
             claim_token TEXT
         ) WITHOUT ROWID;",
    )?;
    if !has_tokens(&transaction)? {
        transaction.execute_batch("ALTER TABLE idempotency ADD COLUMN claim_token TEXT")?;
    }
    transaction.commit()
}

impl EmbeddedStore {
    /// Opens the database [`DATABASE_FILE`] in `state_dir`, creating the directory, the file and
    /// the idempotency table if needed (and adding the claim-token column to a database from
    /// before claim tokens). Fails with the store's error when the directory cannot be created
    /// or the database opened.
    pub fn open(state_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let state_dir = state_dir.as_ref().to_path_buf();
        let fail = |cause: String| StoreError { store: format!("embedded store at {}", state_dir.display()), operation: "open", cause };
        std::fs::create_dir_all(&state_dir).map_err(|e| fail(format!("cannot create the state directory: {e}")))?;
        let mut connection = Connection::open(state_dir.join(DATABASE_FILE)).map_err(|e| fail(e.to_string()))?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail(e.to_string()))?;
        // Two processes creating the database at once: the one that loses the race to switch it
        // to WAL gets SQLITE_BUSY at once, without its busy handler (the switch needs the
        // exclusive lock, and waiting for it while holding a shared one could deadlock), so the
        // open retries for as long as a lock wait may take.
        let started = std::time::Instant::now();
        loop {
            match create_schema(&mut connection) {
                Err(error) if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                result => break result.map_err(|e| fail(e.to_string()))?,
            }
        }
        let inner = Inner { state_dir, connection: Mutex::new(connection), waiting: Mutex::default() };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The state directory the database is in.
    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    /// Runs `f` on the store's connection, outside the group commits: for a function's schema,
    /// seeding and reads. It blocks: on a multi-threaded runtime the worker hands its other
    /// tasks to another thread first (`block_in_place`), so the wait for the connection (held
    /// by a group waiting for a lock, say) stalls no other record.
    pub fn with_connection<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let run = || {
            let mut connection = self.inner.lock_connection();
            f(&mut connection).map_err(|e| self.inner.error(operation, e))
        };
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_threaded {
            tokio::task::block_in_place(run)
        } else {
            run()
        }
    }

    /// Runs `f` in the next group commit and answers once that has committed. The group waits
    /// for another process's write lock until shortly before `deadline_ms` (epoch
    /// milliseconds) at most.
    async fn grouped<T, E>(
        &self,
        operation: &'static str,
        deadline_ms: Option<i64>,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
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
        if self.inner.enqueue(run, deadline_ms) {
            // This operation leads the next group: the records that are ready get a turn to
            // queue theirs, then the group commits on a blocking thread.
            let leader = Leader(Arc::clone(&self.inner));
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
        deadline_ms: Option<i64>,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        self.grouped(operation, deadline_ms, move |connection| f(connection).map_err(|e| inner.error(operation, e))).await
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
    fn enqueue(&self, operation: Operation, deadline_ms: Option<i64>) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        waiting.operations.push(operation);
        waiting.deadline_ms = match (waiting.deadline_ms, deadline_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        !std::mem::replace(&mut waiting.scheduled, true)
    }

    fn group_commit(&self) {
        // The connection first: operations queued while an earlier group commits join this one.
        let mut connection = self.lock_connection();
        let (operations, deadline_ms) = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            waiting.scheduled = false;
            (std::mem::take(&mut waiting.operations), waiting.deadline_ms.take())
        };
        if operations.is_empty() {
            return;
        }
        let lock_wait = deadline_ms.map_or(BUSY_TIMEOUT, |deadline_ms| {
            let now_ms = Now::at(SystemTime::now()).millis;
            let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms).max(0) as u64);
            left.saturating_sub(LOCK_WAIT_RESERVE).min(BUSY_TIMEOUT)
        });
        // Cached, like the operations' statements: parsing costs more than running them.
        let begun = connection.busy_timeout(lock_wait).and_then(|()| connection.prepare_cached("BEGIN IMMEDIATE")?.execute([]));
        // Back to the default wait for what runs on the connection outside the groups.
        let _ = connection.busy_timeout(BUSY_TIMEOUT);
        if let Err(error) = begun {
            let cause = match error.sqlite_error_code() {
                Some(ErrorCode::DatabaseBusy) => format!(
                    "another process held the database's write lock (waited {} ms, as long as the invocation's deadline \
                     allows); the records will be retried",
                    lock_wait.as_millis()
                ),
                _ => error.to_string(),
            };
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
            connection.prepare_cached("COMMIT").and_then(|mut commit| commit.execute([])).map(drop).map_err(|error| {
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
struct Leader(Arc<Inner>);

impl Drop for Leader {
    fn drop(&mut self) {
        let inner = Arc::clone(&self.0);
        match tokio::runtime::Handle::try_current() {
            // Nobody awaits the task: the operations' answers carry its outcome.
            Ok(runtime) => drop(runtime.spawn_blocking(move || inner.group_commit())),
            // No runtime to stall (the future was dropped outside one).
            Err(_) => inner.group_commit(),
        }
    }
}

fn read_record(transaction: &Connection, id: &str) -> rusqlite::Result<Option<IdempotencyRecord>> {
    // Cached statements: parsing SQL costs more than running these one-row statements.
    transaction
        .prepare_cached(
            "SELECT id, status, expiration, in_progress_expiration, payload_hash, result, updated_at, claim_token
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
                claim_token: row.get(7)?,
            })
        })
        .optional()
}

/// Writing a record: an upsert (INSERT OR REPLACE would delete the row and insert it again).
macro_rules! upsert_sql {
    () => {
        "INSERT INTO idempotency
             (id, status, expiration, in_progress_expiration, payload_hash, result, updated_at, claim_token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET
             status = excluded.status, expiration = excluded.expiration,
             in_progress_expiration = excluded.in_progress_expiration,
             payload_hash = excluded.payload_hash, result = excluded.result,
             updated_at = excluded.updated_at, claim_token = excluded.claim_token"
    };
}

/// When [`upsert_record`] may write over the row that holds the key.
#[derive(Clone, Copy)]
enum Over<'a> {
    /// Any row.
    Any,
    /// A row that no longer blocks a claim at this time (the rule of
    /// [`IdempotencyRecord::is_live`]).
    Claimable(Now),
    /// A row that carries this claim token (`None`: no token).
    Owned(Option<&'a str>),
}

/// A record's column values, made before its operation queues: the group's transaction, which
/// every operation of the group waits for, only binds them.
struct Row {
    id: String,
    status: &'static str,
    expiration: i64,
    in_progress_expiration: Option<i64>,
    payload_hash: String,
    result: Option<String>,
    updated_at: i64,
    claim_token: Option<String>,
}

impl From<&IdempotencyRecord> for Row {
    fn from(record: &IdempotencyRecord) -> Self {
        Self {
            id: record.id.clone(),
            status: record.status.as_str(),
            expiration: record.expiration,
            in_progress_expiration: record.in_progress_expiration,
            payload_hash: record.payload_hash.clone(),
            result: record.result.as_ref().map(Value::to_string),
            updated_at: record.updated_at,
            claim_token: record.claim_token.clone(),
        }
    }
}

/// Writes `row` as the row with its id, if `over` allows; whether it wrote.
fn upsert_record(connection: &Connection, row: &Row, over: Over<'_>) -> rusqlite::Result<bool> {
    let values = params![
        row.id,
        row.status,
        row.expiration,
        row.in_progress_expiration,
        row.payload_hash,
        row.result,
        row.updated_at,
        row.claim_token,
    ];
    let written = match over {
        Over::Any => connection.prepare_cached(upsert_sql!())?.execute(values)?,
        Over::Claimable(now) => {
            let condition: [&dyn rusqlite::ToSql; 2] = [&now.secs, &now.millis];
            connection
                .prepare_cached(concat!(
                    upsert_sql!(),
                    " WHERE idempotency.expiration < ?9
                        OR (idempotency.status = 'IN_PROGRESS' AND idempotency.in_progress_expiration < ?10)"
                ))?
                .execute(rusqlite::params_from_iter(values.iter().chain(condition.iter())))?
        }
        // An update, not an upsert: a row that is gone is not the caller's to recreate.
        Over::Owned(token) => {
            let condition: [&dyn rusqlite::ToSql; 1] = [&token];
            connection
                .prepare_cached(
                    "UPDATE idempotency SET
                         status = ?2, expiration = ?3, in_progress_expiration = ?4, payload_hash = ?5,
                         result = ?6, updated_at = ?7, claim_token = ?8
                     WHERE id = ?1 AND claim_token IS ?9",
                )?
                .execute(rusqlite::params_from_iter(values.iter().chain(condition.iter())))?
        }
    };
    Ok(written == 1)
}

fn write_record(connection: &Connection, row: &Row) -> rusqlite::Result<()> {
    upsert_record(connection, row, Over::Any).map(drop)
}

/// The claim: one conditional upsert, like DynamoDB's conditional PutItem. A fresh key costs
/// one statement; only a taken key pays for the read of what holds it.
fn claim_in(connection: &Connection, row: &Row, now: Now) -> rusqlite::Result<Claim> {
    if upsert_record(connection, row, Over::Claimable(now))? {
        return Ok(Claim::Acquired);
    }
    // Inside the transaction, what refused the upsert is still there to read.
    match read_record(connection, &row.id)? {
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
        let row = Row::from(record);
        self.grouped_sql("claim", record.in_progress_expiration, move |connection| claim_in(connection, &row, now)).await
    }

    async fn complete(&self, claim: &IdempotencyRecord, record: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        let (token, row) = (claim.claim_token.clone(), Row::from(record));
        let written = self
            .grouped_sql("complete", claim.in_progress_expiration, move |connection| {
                upsert_record(connection, &row, Over::Owned(token.as_deref()))
            })
            .await?;
        written.then_some(()).ok_or(ClaimWriteFailure::ClaimLost)
    }

    async fn release(&self, claim: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        let (id, token) = (claim.id.clone(), claim.claim_token.clone());
        let deleted = self
            .grouped_sql("release", claim.in_progress_expiration, move |connection| {
                connection
                    .prepare_cached("DELETE FROM idempotency WHERE id = ?1 AND status = 'IN_PROGRESS' AND claim_token IS ?2")?
                    .execute(params![id, token])
            })
            .await?;
        (deleted == 1).then_some(()).ok_or(ClaimWriteFailure::ClaimLost)
    }

    async fn commit(&self, record: &IdempotencyRecord, writes: Vec<BusinessWrite>, now: Now, deadline: Now) -> Result<(), CommitFailure> {
        let row = Row::from(record);
        let inner = Arc::clone(&self.inner);
        self.grouped("commit", Some(deadline.millis), move |connection| {
            let sql = |e: rusqlite::Error| CommitFailure::from(inner.error("commit", e));
            // A savepoint: a rejected write undoes this commit's writes, not its group's.
            let savepoint = connection.savepoint().map_err(sql)?;
            if let Some(existing) = read_record(&savepoint, &row.id).map_err(sql)?.filter(|r| r.is_live(now)) {
                return Err(CommitFailure::ClaimLost(Some(Box::new(existing))));
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
            write_record(&savepoint, &row).map_err(sql)?;
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
            claim_token: Some(format!("token-{id}")),
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
        // The store goes on: the next operation is answered, in the dropped leader's group or
        // in one that starts after it (groups take the connection in turn).
        let next = tokio::time::timeout(Duration::from_secs(5), store.claim(&claim_of("next", now), now)).await;
        assert!(matches!(next, Ok(Ok(Claim::Acquired))), "{next:?}");
        let stored = store.get("dropped").await.unwrap().expect("the dropped leader's group committed");
        assert_eq!(stored.status, Status::InProgress);
    }

    #[tokio::test]
    async fn a_database_from_before_claim_tokens_gets_their_column_and_keeps_its_records() {
        let state = tempfile::tempdir().unwrap();
        let old = Connection::open(state.path().join(DATABASE_FILE)).unwrap();
        old.execute_batch(
            "CREATE TABLE idempotency (
                 id TEXT PRIMARY KEY, status TEXT NOT NULL, expiration INTEGER NOT NULL,
                 in_progress_expiration INTEGER, payload_hash TEXT NOT NULL, result TEXT,
                 updated_at INTEGER NOT NULL
             ) WITHOUT ROWID;
             INSERT INTO idempotency VALUES ('fn#old', 'COMPLETED', 4000000000, NULL, 'hash', '1', 0);",
        )
        .unwrap();
        drop(old);
        let store = EmbeddedStore::open(state.path()).unwrap();
        let kept = store.get("fn#old").await.unwrap().expect("the old record is kept");
        assert_eq!((kept.status, kept.claim_token), (Status::Completed, None));
        let now = Now::system();
        let claim = claim_of("fn#new", now);
        assert_eq!(store.claim(&claim, now).await.unwrap(), Claim::Acquired);
        assert_eq!(store.get("fn#new").await.unwrap(), Some(claim));
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
