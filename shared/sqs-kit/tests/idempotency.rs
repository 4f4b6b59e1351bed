//! The idempotency layer's contract, on the memory store, and its cost in
//! requests on DynamoDB (moto).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{event, invocation, record};
use serde_json::{json, Value};
use sqs_kit::batch::BatchReport;
use sqs_kit::idempotency::{CommitError, IdempotencyRecord, ManualClock, Now, Status, Transaction};
use sqs_kit::store::{
    BusinessWrite, Claim, ClaimWriteFailure, CommitFailure, DynamoDbStore, EmbeddedStore, IdempotencyStore, MemoryStore, StoreError,
};
use sqs_kit::{
    handler_fn, typed, BatchConfig, BatchProcessor, FailureKind, IdempotencyConfig, Idempotent, Outcome, RecordContext, RecordError,
    RecordService,
};

/// Counts handler executions and lets the body decide the outcome.
#[derive(Clone, Default)]
struct Executions(Arc<AtomicUsize>);

impl Executions {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn service(&self, sleep: Duration) -> impl RecordService {
        let executions = self.clone();
        typed(handler_fn(move |body: Value, _cx: RecordContext| {
            let executions = executions.clone();
            async move {
                executions.0.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(sleep).await;
                match body["action"].as_str() {
                    Some("fail") => Err(RecordError::transient("downstream unavailable")),
                    Some("panic") => panic!("handler bug"),
                    _ => Ok(json!({"handled": body["eventId"]})),
                }
            }
        }))
    }
}

fn layer(store: Arc<dyn IdempotencyStore>, executions: &Executions, config: IdempotencyConfig) -> BatchProcessor<impl RecordService> {
    BatchProcessor::new(Idempotent::new(executions.service(Duration::ZERO), store, config).unwrap(), BatchConfig::default())
}

fn by_event_id() -> IdempotencyConfig {
    IdempotencyConfig::keyed_by("/eventId")
}

fn body(event_id: &str, action: &str) -> String {
    json!({"eventId": event_id, "action": action}).to_string()
}

async fn run(processor: &BatchProcessor<impl RecordService>, records: Vec<Value>) -> BatchReport {
    processor.process(event(records), invocation(Duration::from_secs(30))).await.unwrap()
}

fn outcome(report: &BatchReport, index: usize) -> &Outcome {
    &report.records[index].outcome
}

fn failure(report: &BatchReport, index: usize) -> (FailureKind, String) {
    match outcome(report, index) {
        Outcome::Failed(error) => (error.kind(), error.reason().to_owned()),
        other => panic!("record {index} should have failed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redelivered_event_is_a_duplicate_with_the_stored_result() {
    let store = Arc::new(MemoryStore::new());
    let executions = Executions::default();
    let processor = layer(store.clone(), &executions, by_event_id());
    let first = run(&processor, vec![record("m1", &body("evt-1", "ok"))]).await;
    assert_eq!(*outcome(&first, 0), Outcome::Processed(json!({"handled": "evt-1"})));

    // A fresh execution environment (no warm cache) gets the same event under a new message id.
    let cold = layer(store.clone(), &executions, by_event_id());
    let second = run(&cold, vec![record("m2", &body("evt-1", "ok"))]).await;
    assert_eq!(*outcome(&second, 0), Outcome::Duplicate(json!({"handled": "evt-1"})));
    assert_eq!(executions.count(), 1);

    let stored = store.get("test-function#evt-1").await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Completed);
    assert_eq!(stored.result, Some(json!({"handled": "evt-1"})));
    assert_eq!(stored.in_progress_expiration, None);
}

#[tokio::test]
async fn the_key_defaults_to_the_message_id() {
    let store = Arc::new(MemoryStore::new());
    let executions = Executions::default();
    let processor = layer(store.clone(), &executions, IdempotencyConfig::default());
    run(&processor, vec![record("m1", &body("evt-1", "ok"))]).await;
    assert!(store.get("test-function#m1").await.unwrap().is_some());
}

#[tokio::test]
async fn a_body_without_the_key_fails_permanently_naming_the_pointer() {
    let executions = Executions::default();
    let processor = layer(Arc::new(MemoryStore::new()), &executions, by_event_id());
    let report = run(&processor, vec![record("m1", r#"{"orderId": "ORD-1"}"#), record("m2", r#"{"eventId": {"nested": 1}}"#)]).await;
    assert_eq!(failure(&report, 0), (FailureKind::Permanent, "the body has no idempotency key at JSON Pointer /eventId".into()));
    assert_eq!(failure(&report, 1).0, FailureKind::Permanent);
    assert!(failure(&report, 1).1.contains("found an object"));
    assert_eq!(executions.count(), 0);
}

#[tokio::test]
async fn a_key_reused_for_different_content_fails_permanently() {
    let store = Arc::new(MemoryStore::new());
    let executions = Executions::default();
    run(&layer(store.clone(), &executions, by_event_id()), vec![record("m1", &body("evt-1", "ok"))]).await;
    let report = run(&layer(store, &executions, by_event_id()), vec![record("m2", &body("evt-1", "different"))]).await;
    let (kind, reason) = failure(&report, 0);
    assert_eq!(kind, FailureKind::Permanent);
    assert!(reason.contains("test-function#evt-1 was already used for a different payload"), "{reason}");
    assert_eq!(executions.count(), 1);
}

#[tokio::test]
async fn a_live_claim_by_another_invocation_is_a_transient_failure() {
    let store = Arc::new(MemoryStore::new());
    let executions = Executions::default();
    let processor = layer(store.clone(), &executions, by_event_id());
    let now = Now::system();
    let hash = sqs_kit::idempotency::payload_hash(&serde_json::from_str(&body("evt-1", "ok")).unwrap());
    let foreign = IdempotencyRecord {
        id: "test-function#evt-1".into(),
        status: Status::InProgress,
        expiration: now.plus(Duration::from_secs(3600)).secs,
        in_progress_expiration: Some(now.plus(Duration::from_secs(60)).millis),
        payload_hash: hash,
        result: None,
        updated_at: now.millis,
        claim_token: Some("another-invocation".into()),
    };
    assert_eq!(store.claim(&foreign, now).await.unwrap(), Claim::Acquired);
    let report = run(&processor, vec![record("m1", &body("evt-1", "ok"))]).await;
    let (kind, reason) = failure(&report, 0);
    assert_eq!(kind, FailureKind::Transient);
    assert!(reason.contains("another invocation is processing"), "{reason}");
    assert_eq!(executions.count(), 0);
}

#[tokio::test]
async fn a_failure_or_panic_releases_the_claim_so_the_retry_runs() {
    let store = Arc::new(MemoryStore::new());
    let executions = Executions::default();
    let processor = layer(store.clone(), &executions, by_event_id());
    let report = run(&processor, vec![record("m1", &body("evt-1", "fail")), record("m2", &body("evt-2", "panic"))]).await;
    assert_eq!(failure(&report, 0).0, FailureKind::Transient);
    assert!(failure(&report, 1).1.contains("panicked: handler bug"));
    assert_eq!(store.get("test-function#evt-1").await.unwrap(), None);
    assert_eq!(store.get("test-function#evt-2").await.unwrap(), None);
}

#[tokio::test]
async fn the_claim_lapses_at_the_invocation_deadline_and_completion_uses_the_ttl() {
    let store = Arc::new(MemoryStore::new());
    let seen = Arc::new(Mutex::new(None));
    let (probe, sink) = (store.clone(), seen.clone());
    let handler = handler_fn(move |_: Value, cx: RecordContext| {
        let (probe, sink) = (probe.clone(), sink.clone());
        async move {
            let claim = probe.get("test-function#evt-1").await.unwrap().unwrap();
            *sink.lock().unwrap() = Some((claim, cx.invocation.deadline_epoch_ms() as i64));
            Ok::<_, RecordError>(())
        }
    });
    let config = by_event_id().with_ttl(Duration::from_secs(600));
    let processor = BatchProcessor::new(Idempotent::new(typed(handler), store.clone(), config).unwrap(), BatchConfig::default());
    let before = Now::system();
    run(&processor, vec![record("m1", &body("evt-1", "ok"))]).await;

    let (claim, deadline) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(claim.status, Status::InProgress);
    assert_eq!(claim.in_progress_expiration, Some(deadline));
    let completed = store.get("test-function#evt-1").await.unwrap().unwrap();
    let ttl = completed.expiration - before.secs;
    assert!((600..=602).contains(&ttl), "completion TTL was {ttl} s");
}

#[tokio::test]
async fn two_records_with_one_key_in_a_batch_share_one_handler_call() {
    let executions = Executions::default();
    let store = Arc::new(MemoryStore::new());
    let processor = BatchProcessor::new(
        Idempotent::new(executions.service(Duration::from_millis(50)), store, by_event_id()).unwrap(),
        BatchConfig::default(),
    );
    let report = run(&processor, vec![record("m1", &body("evt-1", "ok")), record("m2", &body("evt-1", "ok"))]).await;
    assert_eq!(executions.count(), 1);
    assert_eq!(*outcome(&report, 0), Outcome::Processed(json!({"handled": "evt-1"})));
    assert_eq!(*outcome(&report, 1), Outcome::Duplicate(json!({"handled": "evt-1"})));

    let failing = Executions::default();
    let processor = BatchProcessor::new(
        Idempotent::new(failing.service(Duration::from_millis(50)), Arc::new(MemoryStore::new()), by_event_id()).unwrap(),
        BatchConfig::default(),
    );
    let report = run(&processor, vec![record("m1", &body("evt-1", "fail")), record("m2", &body("evt-1", "fail"))]).await;
    assert_eq!(failing.count(), 1);
    assert_eq!(report.response().batch_item_failures.len(), 2, "both records share the failure");
}

/// Counts calls through to another store.
struct Counting {
    inner: Arc<dyn IdempotencyStore>,
    calls: AtomicUsize,
}

#[async_trait]
impl IdempotencyStore for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn claim(&self, record: &IdempotencyRecord, now: Now) -> Result<Claim, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.claim(record, now).await
    }
    async fn complete(&self, claim: &IdempotencyRecord, record: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.complete(claim, record).await
    }
    async fn release(&self, claim: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.release(claim).await
    }
    async fn commit(&self, record: &IdempotencyRecord, writes: Vec<BusinessWrite>, now: Now, deadline: Now) -> Result<(), CommitFailure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(record, writes, now, deadline).await
    }
    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id).await
    }
    async fn evict(&self, id: &str) -> Result<bool, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.evict(id).await
    }
}

#[tokio::test]
async fn a_warm_cache_answers_repeats_without_the_store_and_never_caches_failures() {
    let store = Arc::new(Counting { inner: Arc::new(MemoryStore::new()), calls: AtomicUsize::new(0) });
    let executions = Executions::default();
    let processor = layer(store.clone(), &executions, by_event_id());
    run(&processor, vec![record("m1", &body("evt-1", "ok"))]).await;
    let after_first = store.calls.load(Ordering::SeqCst);
    let report = run(&processor, vec![record("m2", &body("evt-1", "ok"))]).await;
    assert!(matches!(outcome(&report, 0), Outcome::Duplicate(_)));
    assert_eq!(store.calls.load(Ordering::SeqCst), after_first, "a warm duplicate costs no store request");

    run(&processor, vec![record("m3", &body("evt-2", "fail"))]).await;
    run(&processor, vec![record("m4", &body("evt-2", "fail"))]).await;
    assert_eq!(executions.count(), 3, "a failed key is tried again, not answered from the cache");
}

/// Transactional handler: takes `amount` from a memory counter and records it, or records a
/// rejection when there is not enough.
fn transactional_counter(executions: &Executions) -> impl RecordService {
    let executions = executions.clone();
    typed(handler_fn(move |body: Value, cx: RecordContext| {
        let executions = executions.clone();
        async move {
            executions.0.fetch_add(1, Ordering::SeqCst);
            let amount = body["amount"].as_i64().unwrap();
            let tx = Transaction::of(&cx)?;
            let take = BusinessWrite::Memory(Box::new(move |tables| {
                let left = tables.get("stock").and_then(Value::as_i64).unwrap_or(0);
                if left < amount {
                    return Err(format!("only {left} left"));
                }
                tables.insert("stock".into(), json!(left - amount));
                Ok(())
            }));
            match tx.commit(vec![take], &json!({"taken": amount})).await {
                Ok(()) => Ok(json!({"taken": amount})),
                Err(CommitError::Rejected { reason, .. }) => {
                    let rejected = json!({"rejected": reason});
                    tx.commit(vec![], &rejected).await?;
                    Ok(rejected)
                }
                Err(other) => Err(other.into()),
            }
        }
    }))
}

#[tokio::test]
async fn transactional_mode_applies_the_effect_once_and_records_rejections() {
    let store = Arc::new(MemoryStore::new());
    store.put_item("stock", json!(5));
    let executions = Executions::default();
    let config = by_event_id().transactional();
    let processor = BatchProcessor::new(
        Idempotent::new(transactional_counter(&executions), store.clone(), config.clone()).unwrap(),
        BatchConfig::default(),
    );

    let take = |id: &str, amount: i64| json!({"eventId": id, "amount": amount}).to_string();
    let report = run(&processor, vec![record("m1", &take("e1", 3)), record("m2", &take("e2", 3))]).await;
    let outcomes: Vec<_> = report.records.iter().map(|r| r.outcome.clone()).collect();
    assert!(outcomes.contains(&Outcome::Processed(json!({"taken": 3}))));
    assert!(outcomes.contains(&Outcome::Processed(json!({"rejected": "only 2 left"}))));
    assert_eq!(store.tables()["stock"], json!(2));

    // Redelivery to a cold environment: the commit finds the key taken, nothing is applied.
    let cold =
        BatchProcessor::new(Idempotent::new(transactional_counter(&executions), store.clone(), config).unwrap(), BatchConfig::default());
    let again = run(&cold, vec![record("m3", &take("e1", 3))]).await;
    assert!(matches!(outcome(&again, 0), Outcome::Duplicate(_)), "{:?}", outcome(&again, 0));
    assert_eq!(store.tables()["stock"], json!(2));
}

#[tokio::test]
async fn a_handler_needing_a_transaction_fails_clearly_without_one() {
    let executions = Executions::default();
    let service = BatchProcessor::new(
        Idempotent::new(transactional_counter(&executions), Arc::new(MemoryStore::new()), by_event_id()).unwrap(),
        BatchConfig::default(),
    );
    let report = run(&service, vec![record("m1", &json!({"eventId": "e1", "amount": 1}).to_string())]).await;
    assert!(failure(&report, 0).1.contains("needs transactional idempotency"));
}

#[tokio::test]
async fn twenty_concurrent_environments_execute_one_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&str, Arc<dyn IdempotencyStore>)> =
        vec![("embedded", Arc::new(EmbeddedStore::open(dir.path()).unwrap())), ("memory", Arc::new(MemoryStore::new()))];
    if let Some(config) = common::local_aws().await {
        let table = common::unique_name("idempotency");
        common::create_table(&config, &table, "id", None).await;
        stores.push(("dynamodb", Arc::new(DynamoDbStore::with_config(&config, &table))));
    }
    for (label, store) in stores {
        let executions = Executions::default();
        let runs = (0..20).map(|i| {
            // Each task is its own execution environment: its own layer, cache and in-flight map.
            let service = Idempotent::new(executions.service(Duration::from_millis(200)), store.clone(), by_event_id()).unwrap();
            let processor = BatchProcessor::new(service, BatchConfig::default());
            tokio::spawn(async move { run(&processor, vec![record(&format!("m{i}"), &body("evt-shared", "ok"))]).await })
        });
        let reports = futures::future::join_all(runs).await;
        assert_eq!(executions.count(), 1, "{label}: the handler ran more than once");
        let succeeded = reports.iter().filter(|r| !r.as_ref().unwrap().records[0].outcome.is_failure()).count();
        assert!(succeeded >= 1, "{label}: one environment must have processed it");
    }
}

#[tokio::test]
async fn store_requests_per_record_on_dynamodb() {
    let Some(config) = common::local_aws().await else { return };
    let table = common::unique_name("idempotency");
    common::create_table(&config, &table, "id", None).await;
    let store = Arc::new(DynamoDbStore::with_config(&config, &table));
    let executions = Executions::default();
    let cost = |before: usize| store.requests_sent() - before;

    let processor = layer(store.clone(), &executions, by_event_id());
    let before = store.requests_sent();
    run(&processor, vec![record("m1", &body("evt-1", "ok"))]).await;
    assert_eq!(cost(before), 2, "a fresh record: claim + complete");

    let before = store.requests_sent();
    run(&processor, vec![record("m2", &body("evt-1", "ok"))]).await;
    assert_eq!(cost(before), 0, "a warm-cache duplicate");

    let cold = layer(store.clone(), &executions, by_event_id());
    let before = store.requests_sent();
    let report = run(&cold, vec![record("m3", &body("evt-1", "ok"))]).await;
    assert!(matches!(outcome(&report, 0), Outcome::Duplicate(_)));
    assert_eq!(cost(before), 1, "a duplicate: the failed claim returns the record");

    let transactional = BatchProcessor::new(
        Idempotent::new(executions.service(Duration::ZERO), store.clone(), by_event_id().transactional()).unwrap(),
        BatchConfig::default(),
    );
    let before = store.requests_sent();
    run(&transactional, vec![record("m4", &body("evt-2", "ok"))]).await;
    assert_eq!(cost(before), 1, "a transactional record: one TransactWriteItems");
}

#[tokio::test]
async fn an_unreachable_store_fails_the_record_without_running_the_handler() {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("x", "x", None, None, "test"))
        .load()
        .await;
    let store = Arc::new(DynamoDbStore::with_config(&config, "orders-idempotency"));
    for transactional in [false, true] {
        let executions = Executions::default();
        let config = if transactional { by_event_id().transactional() } else { by_event_id() };
        let report = run(&layer(store.clone(), &executions, config), vec![record("m1", &body("evt-1", "ok"))]).await;
        let (kind, reason) = failure(&report, 0);
        assert_eq!(kind, FailureKind::Transient, "an outage is retried, never dead-lettered at once");
        assert!(reason.contains("the idempotency store (DynamoDB table orders-idempotency) failed to"), "{reason}");
        if !transactional {
            // Claim mode: the claim comes first, so the handler never runs unprotected. (In
            // transactional mode the handler only builds writes; the failed commit applied none.)
            assert_eq!(executions.count(), 0, "no handler runs unprotected");
        }
    }
}

fn with_clock(clock: &ManualClock) -> IdempotencyConfig {
    by_event_id().with_clock(clock.clock())
}

#[tokio::test]
async fn an_evicted_key_is_processed_again_by_a_warm_process_once_its_cache_entry_expires() {
    let store = Arc::new(MemoryStore::new());
    let executions = Executions::default();
    let clock = ManualClock::starting_at(Now::system());
    let config = with_clock(&clock).with_cache_lifetime(Duration::from_secs(30));
    let processor = layer(store.clone(), &executions, config);
    run(&processor, vec![record("m1", &body("evt-1", "ok"))]).await;
    assert!(store.evict("test-function#evt-1").await.unwrap());

    // Within the cache lifetime the warm process still skips the key (what `key evict` says)...
    clock.advance(Duration::from_millis(29_999));
    let warm = run(&processor, vec![record("m2", &body("evt-1", "ok"))]).await;
    assert!(matches!(outcome(&warm, 0), Outcome::Duplicate(_)), "{:?}", outcome(&warm, 0));
    // ...and from the instant it ends, it asks the store, which has forgotten the key.
    clock.advance(Duration::from_millis(1));
    let after = run(&processor, vec![record("m3", &body("evt-1", "ok"))]).await;
    assert!(matches!(outcome(&after, 0), Outcome::Processed(_)), "{:?}", outcome(&after, 0));
    assert_eq!(executions.count(), 2);
}

#[test]
fn the_cache_lifetime_defaults_to_a_minute_and_is_bounded() {
    assert_eq!(IdempotencyConfig::default().cache_lifetime, Duration::from_secs(60));
    assert_eq!(sqs_kit::idempotency::parse_cache_seconds("0").unwrap(), Duration::ZERO);
    assert_eq!(sqs_kit::idempotency::parse_cache_seconds("3600").unwrap(), Duration::from_secs(3600));
    for bad in ["3601", "-1", "1.5", "60s", ""] {
        let error = sqs_kit::idempotency::parse_cache_seconds(bad).unwrap_err().to_string();
        assert_eq!(error, format!("SQS_KIT_CACHE_SECONDS must be a whole number of seconds from 0 to 3600, not {bad:?}"));
    }
}

#[tokio::test]
async fn a_claim_blocks_through_its_expiry_millisecond_and_is_taken_over_one_millisecond_later() {
    let store = Arc::new(MemoryStore::new());
    let executions = Executions::default();
    let start = Now::system();
    let clock = ManualClock::starting_at(start);
    let processor = layer(store.clone(), &executions, with_clock(&clock));
    let lapses_at = start.plus(Duration::from_secs(5));
    let foreign = IdempotencyRecord {
        id: "test-function#evt-1".into(),
        status: Status::InProgress,
        expiration: start.plus(Duration::from_secs(3600)).secs,
        in_progress_expiration: Some(lapses_at.millis),
        payload_hash: sqs_kit::idempotency::payload_hash(&serde_json::from_str(&body("evt-1", "ok")).unwrap()),
        result: None,
        updated_at: start.millis,
        claim_token: Some("another-invocation".into()),
    };
    store.claim(&foreign, start).await.unwrap();

    clock.set(lapses_at);
    let blocked = run(&processor, vec![record("m1", &body("evt-1", "ok"))]).await;
    assert_eq!(failure(&blocked, 0).0, FailureKind::Transient);
    clock.advance(Duration::from_millis(1));
    let taken = run(&processor, vec![record("m2", &body("evt-1", "ok"))]).await;
    assert!(matches!(outcome(&taken, 0), Outcome::Processed(_)), "{:?}", outcome(&taken, 0));
    assert_eq!(executions.count(), 1);
}

#[tokio::test]
async fn a_completion_after_the_claim_was_taken_over_leaves_the_new_owners_record_and_fails_transient() {
    let store = Arc::new(MemoryStore::new());
    let release_first = Arc::new(tokio::sync::Notify::new());
    let first_handler = {
        let release_first = release_first.clone();
        typed(handler_fn(move |_: Value, _cx: RecordContext| {
            let release_first = release_first.clone();
            async move {
                release_first.notified().await;
                Ok::<_, RecordError>(json!({"by": "first"}))
            }
        }))
    };
    let first = BatchProcessor::new(Idempotent::new(first_handler, store.clone(), by_event_id()).unwrap(), BatchConfig::default());
    let first = tokio::spawn(async move { run(&first, vec![record("m1", &body("evt-1", "ok"))]).await });
    let claim = loop {
        if let Some(claim) = store.get("test-function#evt-1").await.unwrap() {
            break claim;
        }
        tokio::task::yield_now().await;
    };

    // Another environment, whose clock says the first claim has lapsed, takes the key over.
    let clock = ManualClock::starting_at(Now::from_millis(claim.in_progress_expiration.unwrap() + 1));
    let second_handler = typed(handler_fn(|_: Value, _cx: RecordContext| async { Ok::<_, RecordError>(json!({"by": "second"})) }));
    let second = BatchProcessor::new(Idempotent::new(second_handler, store.clone(), with_clock(&clock)).unwrap(), BatchConfig::default());
    let taken = run(&second, vec![record("m2", &body("evt-1", "ok"))]).await;
    assert_eq!(*outcome(&taken, 0), Outcome::Processed(json!({"by": "second"})));

    release_first.notify_one();
    let late = first.await.unwrap();
    let (kind, reason) = failure(&late, 0);
    assert_eq!(kind, FailureKind::Transient);
    assert!(reason.contains("lapsed") && reason.contains("took the key over"), "{reason}");
    let stored = store.get("test-function#evt-1").await.unwrap().unwrap();
    assert_eq!(stored.result, Some(json!({"by": "second"})), "the late completion overwrote the new owner's record");
}

#[tokio::test]
async fn a_key_over_dynamodbs_partition_key_limit_fails_permanently_on_every_store_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&str, Arc<dyn IdempotencyStore>)> =
        vec![("memory", Arc::new(MemoryStore::new())), ("embedded", Arc::new(EmbeddedStore::open(dir.path()).unwrap()))];
    if let Some(config) = common::local_aws().await {
        let table = common::unique_name("idempotency");
        common::create_table(&config, &table, "id", None).await;
        stores.push(("dynamodb", Arc::new(DynamoDbStore::with_config(&config, &table))));
    }
    // `test-function#` takes 14 of the 2,048 bytes.
    let longest = "k".repeat(2048 - 14);
    let too_long = [format!("{longest}k"), "é".repeat(1018), "x".repeat(100 * 1024)];
    for (label, store) in stores {
        let counting = Arc::new(Counting { inner: store, calls: AtomicUsize::new(0) });
        let executions = Executions::default();
        let processor = layer(counting.clone(), &executions, by_event_id());
        let records: Vec<Value> = too_long.iter().enumerate().map(|(i, key)| record(&format!("m{i}"), &body(key, "ok"))).collect();
        let report = run(&processor, records).await;
        for index in 0..too_long.len() {
            let (kind, reason) = failure(&report, index);
            assert_eq!(kind, FailureKind::Permanent, "{label}: {reason}");
            assert!(
                reason.contains("DynamoDB's limit for a partition key (`<function>#<key>`) is 2048 bytes of UTF-8"),
                "{label}: {reason}"
            );
        }
        assert_eq!((executions.count(), counting.calls.load(Ordering::SeqCst)), (0, 0), "{label}: no handler call, no store request");

        let report = run(&processor, vec![record("m-longest", &body(&longest, "ok"))]).await;
        assert!(matches!(outcome(&report, 0), Outcome::Processed(_)), "{label}: {:?}", outcome(&report, 0));
    }
}

#[tokio::test]
async fn an_empty_message_id_is_refused_as_a_key() {
    let store = Arc::new(MemoryStore::new());
    let executions = Executions::default();
    let service = Idempotent::new(executions.service(Duration::ZERO), store.clone(), IdempotencyConfig::default()).unwrap();
    let meta = sqs_kit::RecordMeta::new("");
    let cx = RecordContext::new(Arc::new(meta), Arc::new(invocation(Duration::from_secs(30))));
    let error = service.call(sqs_kit::handler::Record { body: json!({"eventId": "e1"}), cx }).await.unwrap_err();
    assert_eq!(error.kind(), FailureKind::Permanent);
    assert_eq!(error.reason(), "the record's message id is empty, so it cannot be its idempotency key");
    assert_eq!(executions.count(), 0);
    assert_eq!(store.get("test-function#").await.unwrap(), None);
}

#[test]
fn the_environment_sets_the_cache_lifetime_and_a_bad_value_is_refused() {
    // Only `with_env` reads the variable, and only this test calls it.
    std::env::set_var("SQS_KIT_CACHE_SECONDS", "5");
    let config = by_event_id().with_env();
    std::env::set_var("SQS_KIT_CACHE_SECONDS", "3601");
    let refused = by_event_id().with_env();
    std::env::remove_var("SQS_KIT_CACHE_SECONDS");
    assert_eq!(config.unwrap().cache_lifetime, Duration::from_secs(5));
    assert_eq!(refused.unwrap_err().to_string(), "SQS_KIT_CACHE_SECONDS must be a whole number of seconds from 0 to 3600, not \"3601\"");
    assert_eq!(by_event_id().with_env().unwrap().cache_lifetime, Duration::from_secs(60), "unset: the default");
}
