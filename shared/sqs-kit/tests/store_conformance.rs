//! One conformance suite, run against every idempotency store: memory, embedded (SQLite in a
//! temporary directory), DynamoDB (moto's, through `AWS_ENDPOINT_URL`) and Redis (a real server,
//! through `REDIS_URL`: `scripts/with-redis`). The transactional part runs on the stores that
//! have transactions; Redis has none and must refuse.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde_json::json;
use sqs_kit::idempotency::{IdempotencyRecord, Now, Status};
use sqs_kit::store::{
    BusinessWrite, Claim, ClaimWriteFailure, CommitFailure, DynamoDbStore, EmbeddedStore, IdempotencyStore, MemoryStore, RedisConfig,
    RedisStore, WriteRejected,
};

/// Business state each store keeps its own way: named counters, decremented under the
/// condition that enough is left (the shape of a stock reservation).
#[async_trait]
trait Counters: Send + Sync {
    async fn set(&self, name: &str, value: i64);
    async fn get(&self, name: &str) -> i64;
    fn take(&self, name: &str, amount: i64) -> BusinessWrite;
}

struct Subject {
    label: &'static str,
    store: Arc<dyn IdempotencyStore>,
    /// The store's business data, for the stores with transactions.
    counters: Option<Box<dyn Counters>>,
    _dir: Option<tempfile::TempDir>,
}

struct MemoryCounters(Arc<MemoryStore>);

#[async_trait]
impl Counters for MemoryCounters {
    async fn set(&self, name: &str, value: i64) {
        self.0.put_item(format!("counter/{name}"), json!(value));
    }
    async fn get(&self, name: &str) -> i64 {
        self.0.tables()[&format!("counter/{name}")].as_i64().unwrap()
    }
    fn take(&self, name: &str, amount: i64) -> BusinessWrite {
        let key = format!("counter/{name}");
        BusinessWrite::Memory(Box::new(move |tables| {
            let left = tables.get(&key).and_then(|v| v.as_i64()).unwrap_or(0);
            if left < amount {
                return Err(format!("only {left} left"));
            }
            tables.insert(key, json!(left - amount));
            Ok(())
        }))
    }
}

struct EmbeddedCounters(Arc<EmbeddedStore>);

#[async_trait]
impl Counters for EmbeddedCounters {
    async fn set(&self, name: &str, value: i64) {
        self.0
            .with_connection("seed", |c| {
                c.execute_batch("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, available INTEGER NOT NULL)")?;
                c.execute("INSERT OR REPLACE INTO counters VALUES (?1, ?2)", rusqlite::params![name, value]).map(drop)
            })
            .unwrap();
    }
    async fn get(&self, name: &str) -> i64 {
        self.0.with_connection("read", |c| c.query_row("SELECT available FROM counters WHERE name = ?1", [name], |r| r.get(0))).unwrap()
    }
    fn take(&self, name: &str, amount: i64) -> BusinessWrite {
        let name = name.to_owned();
        BusinessWrite::Embedded(Box::new(move |tx| {
            let changed = tx.execute(
                "UPDATE counters SET available = available - ?2 WHERE name = ?1 AND available >= ?2",
                rusqlite::params![name, amount],
            )?;
            if changed == 0 {
                return Err(WriteRejected::Condition(format!("not enough {name}")));
            }
            Ok(())
        }))
    }
}

struct DynamoDbCounters {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

#[async_trait]
impl Counters for DynamoDbCounters {
    async fn set(&self, name: &str, value: i64) {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(name.into()))
            .item("available", AttributeValue::N(value.to_string()))
            .send()
            .await
            .unwrap();
    }
    async fn get(&self, name: &str) -> i64 {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(name.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        item.item().unwrap()["available"].as_n().unwrap().parse().unwrap()
    }
    fn take(&self, name: &str, amount: i64) -> BusinessWrite {
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(name.into()))
            .update_expression("SET available = available - :amount")
            .condition_expression("available >= :amount")
            .expression_attribute_values(":amount", AttributeValue::N(amount.to_string()))
            .build()
            .unwrap();
        BusinessWrite::DynamoDb(Box::new(TransactWriteItem::builder().update(update).build()))
    }
}

async fn subjects() -> Vec<Subject> {
    let memory = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let mut subjects = vec![
        Subject { label: "memory", store: memory.clone(), counters: Some(Box::new(MemoryCounters(memory))), _dir: None },
        Subject { label: "embedded", store: embedded.clone(), counters: Some(Box::new(EmbeddedCounters(embedded))), _dir: Some(dir) },
    ];
    if let Some(config) = common::local_aws().await {
        let table = common::unique_name("idempotency");
        let business = common::unique_name("counters");
        common::create_table(&config, &table, "id", None).await;
        common::create_table(&config, &business, "pk", None).await;
        let store = Arc::new(DynamoDbStore::with_config(&config, &table));
        let counters = DynamoDbCounters { client: store.client().clone(), table: business };
        subjects.push(Subject { label: "dynamodb", store, counters: Some(Box::new(counters)), _dir: None });
    }
    if let Some(store) = redis_store() {
        subjects.push(Subject { label: "redis", store: Arc::new(store), counters: None, _dir: None });
    }
    subjects
}

/// A Redis store whose keys no other test (or earlier run) uses.
fn redis_store() -> Option<RedisStore> {
    let url = common::local_redis()?;
    Some(RedisStore::new(RedisConfig::new(url).with_key_prefix(format!("{}:", common::unique_name("conformance")))).unwrap())
}

/// The stores with transactions, and their business data.
async fn transactional_subjects() -> Vec<(Subject, Box<dyn Counters>)> {
    subjects()
        .await
        .into_iter()
        .filter_map(|mut s| {
            let counters = s.counters.take()?;
            Some((s, counters))
        })
        .collect()
}

fn now() -> Now {
    Now::system()
}

/// A claim with a token of its own (the layer draws a random one per claim).
fn in_progress(id: &str, hash: &str, now: Now, claim_for: Duration) -> IdempotencyRecord {
    static CLAIMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    IdempotencyRecord {
        id: id.to_owned(),
        status: Status::InProgress,
        expiration: now.plus(Duration::from_secs(3600)).secs,
        in_progress_expiration: Some(now.plus(claim_for).millis),
        payload_hash: hash.to_owned(),
        result: None,
        updated_at: now.millis,
        claim_token: Some(format!("token-{}", CLAIMS.fetch_add(1, std::sync::atomic::Ordering::SeqCst))),
    }
}

/// What completing `claim` writes, kept for `ttl`.
fn completion(claim: &IdempotencyRecord, now: Now, ttl: Duration) -> IdempotencyRecord {
    IdempotencyRecord {
        status: Status::Completed,
        expiration: now.plus(ttl).secs,
        in_progress_expiration: None,
        result: Some(json!({"reserved": ["SKU-1"], "count": 2})),
        updated_at: now.millis,
        ..claim.clone()
    }
}

/// A record of transactional mode, which has no claim.
fn completed(id: &str, hash: &str, now: Now, ttl: Duration) -> IdempotencyRecord {
    IdempotencyRecord { claim_token: None, ..completion(&in_progress(id, hash, now, MINUTE), now, ttl) }
}

/// Claims `id` at `now` and completes the claim, kept for `ttl`; the completed record.
async fn claim_and_complete(store: &dyn IdempotencyStore, id: &str, hash: &str, now: Now, ttl: Duration) -> IdempotencyRecord {
    let claim = in_progress(id, hash, now, MINUTE);
    assert_eq!(store.claim(&claim, now).await.unwrap(), Claim::Acquired, "{id}");
    let done = completion(&claim, now, ttl);
    store.complete(&claim, &done).await.unwrap();
    done
}

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn fresh_claim_is_acquired_and_stored_in_progress() {
    for s in subjects().await {
        let t = now();
        let claim = in_progress("fn#fresh", "h1", t, MINUTE);
        assert_eq!(s.store.claim(&claim, t).await.unwrap(), Claim::Acquired, "{}", s.label);
        assert_eq!(s.store.get("fn#fresh").await.unwrap(), Some(claim), "{}", s.label);
    }
}

#[tokio::test]
async fn claim_after_completion_returns_the_completed_record_with_its_result() {
    for s in subjects().await {
        let t = now();
        let done = claim_and_complete(&*s.store, "fn#done", "h1", t, DAY).await;
        let again = s.store.claim(&in_progress("fn#done", "h1", t, MINUTE), t).await.unwrap();
        assert_eq!(again, Claim::Existing(done), "{}", s.label);
    }
}

#[tokio::test]
async fn live_in_progress_claim_blocks_another() {
    for s in subjects().await {
        let t = now();
        let first = in_progress("fn#busy", "h1", t, MINUTE);
        s.store.claim(&first, t).await.unwrap();
        let second = s.store.claim(&in_progress("fn#busy", "h1", t, MINUTE), t.plus(Duration::from_secs(1))).await.unwrap();
        assert_eq!(second, Claim::Existing(first), "{}", s.label);
    }
}

#[tokio::test]
async fn expired_in_progress_claim_is_taken_over() {
    for s in subjects().await {
        let t = now();
        s.store.claim(&in_progress("fn#stale", "h1", t, Duration::from_millis(500)), t).await.unwrap();
        let later = t.plus(Duration::from_secs(2));
        let takeover = in_progress("fn#stale", "h1", later, MINUTE);
        assert_eq!(s.store.claim(&takeover, later).await.unwrap(), Claim::Acquired, "{}", s.label);
        assert_eq!(s.store.get("fn#stale").await.unwrap(), Some(takeover), "{}", s.label);
    }
}

#[tokio::test]
async fn expired_completed_record_is_reclaimed() {
    for s in subjects().await {
        let t = now();
        claim_and_complete(&*s.store, "fn#old", "h1", t, Duration::from_secs(1)).await;
        let later = t.plus(Duration::from_secs(5));
        assert_eq!(s.store.claim(&in_progress("fn#old", "h1", later, MINUTE), later).await.unwrap(), Claim::Acquired, "{}", s.label);
    }
}

#[tokio::test]
async fn existing_record_keeps_its_payload_hash_so_a_reused_key_is_detected() {
    for s in subjects().await {
        let t = now();
        claim_and_complete(&*s.store, "fn#reused", "original", t, DAY).await;
        match s.store.claim(&in_progress("fn#reused", "other", t, MINUTE), t).await.unwrap() {
            Claim::Existing(existing) => assert_eq!(existing.payload_hash, "original", "{}", s.label),
            Claim::Acquired => panic!("{}: a live record was overwritten", s.label),
            other => panic!("{}: unexpected claim {other:?}", s.label),
        }
    }
}

#[tokio::test]
async fn release_deletes_an_in_progress_claim_but_never_a_completed_record() {
    for s in subjects().await {
        let t = now();
        let claim = in_progress("fn#failed", "h1", t, MINUTE);
        s.store.claim(&claim, t).await.unwrap();
        s.store.release(&claim).await.unwrap();
        assert_eq!(s.store.get("fn#failed").await.unwrap(), None, "{}", s.label);
        assert_eq!(s.store.claim(&in_progress("fn#failed", "h1", t, MINUTE), t).await.unwrap(), Claim::Acquired, "{}", s.label);

        let claim = in_progress("fn#kept", "h1", t, MINUTE);
        s.store.claim(&claim, t).await.unwrap();
        let done = completion(&claim, t, DAY);
        s.store.complete(&claim, &done).await.unwrap();
        assert!(matches!(s.store.release(&claim).await, Err(ClaimWriteFailure::ClaimLost)), "{}", s.label);
        assert_eq!(s.store.get("fn#kept").await.unwrap(), Some(done), "{}", s.label);
    }
}

/// A claim made at `t` that lapses after 500 ms, and the claim that takes it over 2 s later.
async fn lapsed_and_taken_over(store: &dyn IdempotencyStore, id: &str, t: Now) -> (IdempotencyRecord, IdempotencyRecord, Now) {
    let lapsed = in_progress(id, "h1", t, Duration::from_millis(500));
    assert_eq!(store.claim(&lapsed, t).await.unwrap(), Claim::Acquired);
    let later = t.plus(Duration::from_secs(2));
    let takeover = in_progress(id, "h1", later, MINUTE);
    assert_eq!(store.claim(&takeover, later).await.unwrap(), Claim::Acquired);
    (lapsed, takeover, later)
}

#[tokio::test]
async fn a_completion_by_a_claimant_whose_claim_was_taken_over_writes_nothing() {
    for s in subjects().await {
        let t = now();
        let (lapsed, takeover, later) = lapsed_and_taken_over(&*s.store, "fn#late", t).await;
        let late = completion(&lapsed, later, DAY);
        assert!(matches!(s.store.complete(&lapsed, &late).await, Err(ClaimWriteFailure::ClaimLost)), "{}", s.label);
        assert_eq!(s.store.get("fn#late").await.unwrap(), Some(takeover.clone()), "{}: the new owner's claim was overwritten", s.label);

        // Nor once the new owner has completed: its record stays as it wrote it.
        let done = completion(&takeover, later, DAY);
        s.store.complete(&takeover, &done).await.unwrap();
        assert!(matches!(s.store.complete(&lapsed, &late).await, Err(ClaimWriteFailure::ClaimLost)), "{}", s.label);
        assert_eq!(s.store.get("fn#late").await.unwrap(), Some(done), "{}: the new owner's record was overwritten", s.label);
    }
}

#[tokio::test]
async fn a_release_by_a_claimant_whose_claim_was_taken_over_deletes_nothing() {
    for s in subjects().await {
        let t = now();
        let (lapsed, takeover, _) = lapsed_and_taken_over(&*s.store, "fn#late-release", t).await;
        assert!(matches!(s.store.release(&lapsed).await, Err(ClaimWriteFailure::ClaimLost)), "{}", s.label);
        assert_eq!(s.store.get("fn#late-release").await.unwrap(), Some(takeover), "{}: the new owner's claim was deleted", s.label);
    }
}

#[tokio::test]
async fn a_lapsed_claim_nobody_took_over_is_still_its_owners_to_complete_even_twice() {
    for s in subjects().await {
        let t = now();
        let claim = in_progress("fn#slow", "h1", t, Duration::from_millis(500));
        s.store.claim(&claim, t).await.unwrap();
        let done = completion(&claim, t.plus(Duration::from_secs(2)), DAY);
        s.store.complete(&claim, &done).await.unwrap();
        // A retry after an answer that was lost on the way writes the same record again.
        s.store.complete(&claim, &done).await.unwrap();
        assert_eq!(s.store.get("fn#slow").await.unwrap(), Some(done), "{}", s.label);
    }
}

#[tokio::test]
async fn a_completion_of_an_evicted_claim_recreates_nothing() {
    for s in subjects().await {
        let t = now();
        let claim = in_progress("fn#evicted", "h1", t, MINUTE);
        s.store.claim(&claim, t).await.unwrap();
        s.store.evict("fn#evicted").await.unwrap();
        assert!(matches!(s.store.complete(&claim, &completion(&claim, t, DAY)).await, Err(ClaimWriteFailure::ClaimLost)), "{}", s.label);
        assert!(matches!(s.store.release(&claim).await, Err(ClaimWriteFailure::ClaimLost)), "{}", s.label);
        assert_eq!(s.store.get("fn#evicted").await.unwrap(), None, "{}", s.label);
    }
}

#[tokio::test]
async fn evict_removes_any_record() {
    for s in subjects().await {
        let t = now();
        claim_and_complete(&*s.store, "fn#evict", "h1", t, DAY).await;
        assert!(s.store.evict("fn#evict").await.unwrap(), "{}", s.label);
        assert!(!s.store.evict("fn#evict").await.unwrap(), "{}", s.label);
        assert_eq!(s.store.get("fn#evict").await.unwrap(), None, "{}", s.label);
    }
}

#[tokio::test]
async fn transactional_commit_writes_the_record_and_the_business_writes_together() {
    for (s, counters) in transactional_subjects().await {
        let t = now();
        counters.set("sku-a", 5).await;
        counters.set("sku-b", 3).await;
        let record = completed("fn#tx", "h1", t, DAY);
        let writes = vec![counters.take("sku-a", 2), counters.take("sku-b", 3)];
        s.store.commit(&record, writes, t, t.plus(MINUTE)).await.unwrap();
        assert_eq!((counters.get("sku-a").await, counters.get("sku-b").await), (3, 0), "{}", s.label);
        assert_eq!(s.store.get("fn#tx").await.unwrap(), Some(record), "{}", s.label);
    }
}

#[tokio::test]
async fn transactional_commit_on_a_taken_key_writes_nothing_and_returns_the_record() {
    for (s, counters) in transactional_subjects().await {
        let t = now();
        counters.set("sku-a", 5).await;
        let first = completed("fn#tx-dup", "h1", t, DAY);
        s.store.commit(&first, vec![counters.take("sku-a", 2)], t, t.plus(MINUTE)).await.unwrap();
        match s.store.commit(&completed("fn#tx-dup", "h1", t, DAY), vec![counters.take("sku-a", 2)], t, t.plus(MINUTE)).await {
            Err(CommitFailure::ClaimLost(existing)) => assert_eq!(existing.map(|existing| *existing), Some(first), "{}", s.label),
            other => panic!("{}: expected the claim to be lost, got {other:?}", s.label),
        }
        assert_eq!(counters.get("sku-a").await, 3, "{}: the effect applied twice", s.label);
    }
}

#[tokio::test]
async fn transactional_commit_with_a_failing_business_condition_writes_nothing() {
    for (s, counters) in transactional_subjects().await {
        let t = now();
        counters.set("sku-a", 5).await;
        counters.set("sku-b", 1).await;
        let writes = vec![counters.take("sku-a", 2), counters.take("sku-b", 2)];
        match s.store.commit(&completed("fn#tx-short", "h1", t, DAY), writes, t, t.plus(MINUTE)).await {
            Err(CommitFailure::BusinessCondition { index, .. }) => assert_eq!(index, 1, "{}", s.label),
            other => panic!("{}: expected a business condition failure, got {other:?}", s.label),
        }
        assert_eq!((counters.get("sku-a").await, counters.get("sku-b").await), (5, 1), "{}: partial effect", s.label);
        assert_eq!(s.store.get("fn#tx-short").await.unwrap(), None, "{}", s.label);
    }
}

#[tokio::test]
async fn writes_of_another_store_are_refused_with_a_clear_error() {
    let memory = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(dir.path()).unwrap();
    let foreign = MemoryCounters(memory).take("x", 1);
    let error = embedded.commit(&completed("fn#x", "h", now(), DAY), vec![foreign], now(), now().plus(MINUTE)).await.unwrap_err();
    assert!(error.to_string().contains("cannot run a memory business write"), "{error}");
}

#[tokio::test]
async fn a_store_without_transactions_says_so_and_refuses_a_commit() {
    let Some(store) = redis_store() else { return };
    assert!(!store.supports_transactions());
    let error = store.commit(&completed("fn#tx", "h1", now(), DAY), vec![], now(), now().plus(MINUTE)).await.unwrap_err();
    assert!(error.to_string().contains("use claim mode"), "{error}");
    assert_eq!(store.get("fn#tx").await.unwrap(), None, "a refused commit wrote the record");
    for s in subjects().await.into_iter().filter(|s| s.counters.is_some()) {
        assert!(s.store.supports_transactions(), "{}", s.label);
    }
}

/// Redis removes a record by itself once it can no longer block a claim: at the end of its
/// `expiration` second, an `IN_PROGRESS` claim included (its takeover is by the claim condition).
#[tokio::test]
async fn redis_keys_expire_with_their_records() {
    let Some(store) = redis_store() else { return };
    let mut connection = redis::Client::open(common::local_redis().unwrap()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let t = now();
    let claim = in_progress("fn#ttl", "h1", t, MINUTE);
    store.claim(&claim, t).await.unwrap();
    let expire_at: i64 = redis::cmd("PEXPIRETIME").arg(store.key("fn#ttl")).query_async(&mut connection).await.unwrap();
    assert_eq!(expire_at, (claim.expiration + 1) * 1000, "the claim's key expires with the record");
    let done = completion(&claim, t, Duration::from_secs(90));
    store.complete(&claim, &done).await.unwrap();
    let expire_at: i64 = redis::cmd("PEXPIRETIME").arg(store.key("fn#ttl")).query_async(&mut connection).await.unwrap();
    assert_eq!(expire_at, (done.expiration + 1) * 1000, "the completed record's key expires with it");

    // A record whose time is up is gone from the server, not only treated as absent.
    let short = in_progress("fn#short", "h1", t, MINUTE);
    let short = IdempotencyRecord { expiration: t.secs, ..short };
    store.claim(&short, t).await.unwrap();
    tokio::time::sleep(Duration::from_millis((expire_at_ms(short.expiration) - Now::system().millis).max(0) as u64 + 50)).await;
    let exists: i64 = redis::cmd("EXISTS").arg(store.key("fn#short")).query_async(&mut connection).await.unwrap();
    assert_eq!(exists, 0, "Redis kept an expired record");
}

fn expire_at_ms(expiration: i64) -> i64 {
    (expiration + 1) * 1000
}

/// The claim is one script on the server: two stores (two processes' worth of connections) racing
/// for one key give it to exactly one of them, and the other is handed the winner's record.
#[tokio::test]
async fn redis_claims_racing_on_one_key_have_one_winner() {
    let Some(first) = redis_store() else { return };
    let url = common::local_redis().unwrap();
    let prefix = first.key("");
    let second = RedisStore::new(RedisConfig::new(url).with_key_prefix(prefix)).unwrap();
    for round in 0..20 {
        let id = format!("fn#race-{round}");
        let t = now();
        let (a, b) = (in_progress(&id, "h1", t, MINUTE), in_progress(&id, "h1", t, MINUTE));
        let (ra, rb) = tokio::join!(first.claim(&a, t), second.claim(&b, t));
        match (ra.unwrap(), rb.unwrap()) {
            (Claim::Acquired, Claim::Existing(found)) => assert_eq!(found, a),
            (Claim::Existing(found), Claim::Acquired) => assert_eq!(found, b),
            other => panic!("round {round}: expected one winner, got {other:?}"),
        }
    }
}
