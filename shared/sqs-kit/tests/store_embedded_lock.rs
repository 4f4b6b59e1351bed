//! The embedded store while another process holds SQLite's write lock: the records fail
//! (transient) before the invocation's deadline instead of waiting out SQLite's busy timeout on
//! the runtime's threads, and are processed once the lock is free.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{event, invocation, record};
use serde_json::{json, Value};
use sqs_kit::store::{EmbeddedStore, DATABASE_FILE};
use sqs_kit::{
    handler_fn, typed, BatchConfig, BatchProcessor, FailureKind, IdempotencyConfig, Idempotent, Outcome, RecordContext, RecordError,
};

const REMAINING: Duration = Duration::from_secs(4);

/// Another process's transaction: the write lock on the state directory's database until dropped.
fn hold_write_lock(state: &std::path::Path) -> rusqlite::Connection {
    let holder = rusqlite::Connection::open(state.join(DATABASE_FILE)).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    holder
}

fn batch() -> Vec<Value> {
    (1..=3).map(|i| record(&format!("m{i}"), &json!({"eventId": format!("evt-{i}")}).to_string())).collect()
}

// One thread, as in a Lambda environment with one vCPU: a blocking wait on it would stall
// every record and the batch layer's timeouts with them.
#[tokio::test(flavor = "current_thread")]
async fn a_batch_answers_before_its_deadline_while_another_process_holds_the_write_lock() {
    let state = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(state.path()).unwrap());
    let handler = typed(handler_fn(|body: Value, _cx: RecordContext| async move { Ok::<_, RecordError>(body["eventId"].clone()) }));
    let service = Idempotent::new(handler, store, IdempotencyConfig::keyed_by("/eventId")).unwrap();
    let processor = Arc::new(BatchProcessor::new(service, BatchConfig::default()));

    let holder = hold_write_lock(state.path());
    let started = Instant::now();
    let running = {
        let processor = Arc::clone(&processor);
        tokio::spawn(async move { processor.process(event(batch()), invocation(REMAINING)).await })
    };
    // The runtime's one thread goes on while the store waits for the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!running.is_finished(), "the batch ended before the lock was released or its deadline came");
    let report = running.await.unwrap().unwrap();
    let answered_after = started.elapsed();
    assert!(answered_after < REMAINING, "the answer came {answered_after:?} after the start of a {REMAINING:?} invocation");
    for outcome in report.records.iter().map(|r| &r.outcome) {
        match outcome {
            Outcome::Failed(error) => {
                assert_eq!(error.kind(), FailureKind::Transient, "{error:?}");
                assert!(error.reason().contains("held the database's write lock"), "{}", error.reason());
            }
            other => panic!("a record got through a held lock: {other:?}"),
        }
    }

    drop(holder);
    let retry = processor.process(event(batch()), invocation(REMAINING)).await.unwrap();
    let outcomes: Vec<&Outcome> = retry.records.iter().map(|r| &r.outcome).collect();
    assert!(outcomes.iter().all(|outcome| matches!(outcome, Outcome::Processed(_))), "{outcomes:?}");
}

#[test]
fn replay_answers_before_remaining_ms_while_another_process_holds_the_write_lock() {
    let binary = common::example_binary();
    let state = tempfile::tempdir().unwrap();
    let replay = || {
        let mut command = Command::new(&binary);
        command
            .args(["replay", "events/example/validate-orders.json", "--remaining-ms", &REMAINING.as_millis().to_string()])
            .arg("--state")
            .arg(state.path())
            .current_dir(e2e::workspace_root())
            .env_remove("AWS_LAMBDA_RUNTIME_API");
        command
    };
    // The database exists (as after any earlier run) before the other process locks it.
    drop(EmbeddedStore::open(state.path()).unwrap());

    // Of the event's five records, four have a key to claim; one is not JSON.
    let holder = hold_write_lock(state.path());
    let started = Instant::now();
    let locked = replay().output().unwrap();
    let finished_after = started.elapsed();
    let stderr = String::from_utf8_lossy(&locked.stderr);
    assert!(finished_after < REMAINING, "replay took {finished_after:?} with --remaining-ms 4000: {stderr}");
    assert_eq!(locked.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("totals: 0 processed, 0 duplicate, 5 failed (4 transient, 1 permanent)"), "{stderr}");
    assert!(stderr.contains("held the database's write lock"), "{stderr}");

    drop(holder);
    let retried = replay().output().unwrap();
    let stderr = String::from_utf8_lossy(&retried.stderr);
    assert!(stderr.contains("totals: 2 processed, 0 duplicate, 3 failed (0 transient, 3 permanent)"), "{stderr}");
}
