//! Batch-layer benchmarks; figures are printed, never asserted.
//!
//! ```text
//! cargo bench -p sqs-kit --bench batch [-- [--rounds=N] [WORD...]]
//! ```
//! Words pick the rows whose name holds one of them (`-- embedded memory`); `--rounds=N` runs
//! every per-record row for N batches of 100. Wall figures swing with the machine's load;
//! instruction counts do not: run the binary under `valgrind --tool=callgrind` at two round
//! counts and divide the difference by the records between them.
//!
//! - per-record overhead of the batch layer with a handler that does no I/O, alone and with
//!   idempotency on the memory store, the embedded store, (when `AWS_ENDPOINT_URL` is set, as
//!   under `scripts/with-moto`) DynamoDB and (when `REDIS_URL` is set, as under
//!   `scripts/with-redis`) Redis;
//! - the floor under the embedded store's row: SQLite alone running a fresh record's two writes,
//!   10 and 100 records to a transaction;
//! - the store's requests per record on each idempotency path, counted on the wire: by the
//!   DynamoDB client's interceptor, and by a proxy in front of the Redis server;
//! - wall time of a 10-record batch whose handler sleeps 50 ms per record, on a standard queue
//!   (concurrent), a FIFO queue with one group (sequential) and a FIFO queue with 10 groups.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{json, Value};
use std::sync::Arc;

mod support;

use support::redis_wire::CountingProxy;

use sqs_kit::store::{DynamoDbStore, EmbeddedStore, IdempotencyStore, MemoryStore, RedisConfig, RedisStore};
use sqs_kit::{
    handler_fn, typed, BatchConfig, BatchProcessor, IdempotencyConfig, Idempotent, InvocationContext, RecordContext, RecordError,
    RecordService,
};

fn order_body(i: usize) -> String {
    json!({
        "eventId": format!("evt-{i}"), "eventType": "OrderPlaced", "orderId": format!("ORD-{i}"),
        "customerId": "CUST-42", "items": [{"sku": "SKU-KEYBOARD", "quantity": 1, "unitPrice": 89000}],
        "totalAmount": 89000, "currency": "KRW"
    })
    .to_string()
}

fn event(records: usize, groups: Option<usize>) -> SqsEvent {
    numbered_event(0, records, groups)
}

/// Records `first..first + count`, each with its own event id.
fn numbered_event(first: usize, count: usize, groups: Option<usize>) -> SqsEvent {
    let records: Vec<Value> = (first..first + count)
        .map(|i| {
            let mut record = json!({
                "messageId": format!("m-{i}"), "body": order_body(i), "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"},
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:orders",
            });
            if let Some(groups) = groups {
                record["eventSourceARN"] = json!("arn:aws:sqs:eu-west-1:123456789012:orders.fifo");
                record["attributes"]["MessageGroupId"] = json!(format!("G{}", i % groups));
            }
            record
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn invocation() -> InvocationContext {
    InvocationContext::with_remaining("bench", "bench", Duration::from_secs(900))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: String,
}

fn order_id_handler() -> impl RecordService {
    typed(handler_fn(|order: Order, _cx: RecordContext| async move { Ok::<_, RecordError>(order.order_id) }))
}

/// Mean time per record over `rounds` batches of 100 fresh records (every record is new, so
/// the idempotency layer claims and completes each one).
async fn per_record_overhead<S: RecordService>(processor: &BatchProcessor<S>, rounds: usize) -> Duration {
    processor.process(numbered_event(1_000_000, 100, None), invocation()).await.unwrap();
    let batches: Vec<SqsEvent> = (0..rounds).map(|round| numbered_event(round * 100, 100, None)).collect();
    let started = Instant::now();
    for batch in batches {
        processor.process(batch, invocation()).await.unwrap();
    }
    started.elapsed() / (rounds as u32 * 100)
}

/// The floor under the embedded store's figure: SQLite alone doing what a fresh record costs the
/// store (a conditional insert of an `IN_PROGRESS` row, then its update to `COMPLETED`), with no
/// batch layer and no group commit around it, `per_group` records to a transaction (10 is the
/// group commit's best case at the default concurrency of 10 records in flight), on a database
/// the store opened (its table, WAL mode, `synchronous = NORMAL`). Mean time per record over
/// `records`.
fn sqlite_floor(records: usize, per_group: usize) -> Duration {
    let state = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(state.path()).unwrap();
    let hash = "e5a84626935114f85111490d9d24d6f4eccf45bacdc3ed268be40bcceddda6f1";
    let token = "0123456789abcdef0123456789abcdef";
    store
        .with_connection("bench", |connection| {
            let started = Instant::now();
            for group in 0..records / per_group {
                let ids: Vec<String> = (0..per_group).map(|i| format!("bench#evt-{}", group * per_group + i)).collect();
                for completing in [false, true] {
                    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    for id in &ids {
                        if completing {
                            transaction
                                .prepare_cached(
                                    "UPDATE idempotency SET status = 'COMPLETED', in_progress_expiration = NULL, result = ?2
                                     WHERE id = ?1 AND claim_token IS ?3",
                                )?
                                .execute(rusqlite::params![id, "\"ORD-1\"", token])?;
                        } else {
                            transaction
                                .prepare_cached(
                                    "INSERT INTO idempotency
                                         (id, status, expiration, in_progress_expiration, payload_hash, updated_at, claim_token)
                                     VALUES (?1, 'IN_PROGRESS', ?2, ?3, ?4, ?3, ?5)
                                     ON CONFLICT (id) DO UPDATE SET status = excluded.status WHERE idempotency.expiration < ?2",
                                )?
                                .execute(rusqlite::params![id, 1_800_000_000_i64, 1_764_000_000_000_i64, hash, token])?;
                        }
                    }
                    transaction.commit()?;
                }
            }
            Ok(started.elapsed() / (records - records % per_group) as u32)
        })
        .unwrap()
}

/// `redis-server 7.0.15`, or what the server says it is.
async fn redis_version(url: &str) -> String {
    let mut connection = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut connection).await.unwrap();
    let field = |name: &str| info.lines().find_map(|line| line.strip_prefix(name)).map(str::trim).map(str::to_owned);
    match (field("valkey_version:"), field("redis_version:")) {
        (Some(version), _) => format!("valkey-server {version}"),
        (None, Some(version)) => format!("redis-server {version}"),
        (None, None) => "unknown server".to_owned(),
    }
}

fn idempotent(store: Arc<dyn IdempotencyStore>) -> BatchProcessor<impl RecordService> {
    let config = IdempotencyConfig::keyed_by("/eventId");
    BatchProcessor::new(Idempotent::new(order_id_handler(), store, config).unwrap(), BatchConfig::default())
}

async fn dynamodb_store() -> Option<Arc<DynamoDbStore>> {
    std::env::var_os("AWS_ENDPOINT_URL")?;
    let config = aws_config::load_from_env().await;
    let table = format!("bench-idempotency-{}", std::process::id());
    let client = aws_sdk_dynamodb::Client::new(&config);
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build().ok()?)
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().ok()?)
        .send()
        .await
        .ok()?;
    Some(Arc::new(DynamoDbStore::with_config(&config, table)))
}

async fn sleeping_batch(groups: Option<usize>) -> Duration {
    let processor = BatchProcessor::new(
        typed(handler_fn(|_: Value, _cx: RecordContext| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, RecordError>(())
        })),
        BatchConfig::default(),
    );
    let batch = event(10, groups);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        processor.process(batch.clone(), invocation()).await.unwrap();
        best = best.min(started.elapsed());
    }
    best
}

/// The store's requests per record on each idempotency path, as `sent` counts them on the wire;
/// the transactional path only for a store with transactions.
async fn requests_per_path(label: &str, store: Arc<dyn IdempotencyStore>, sent: impl Fn() -> usize) {
    let records = 20;
    let cost = |before: usize| (sent() - before) as f64 / records as f64;
    let warm = idempotent(store.clone());
    let before = sent();
    warm.process(numbered_event(5_000_000, records, None), invocation()).await.unwrap();
    println!("| {label} requests per record: fresh | {:.2} |", cost(before));
    let before = sent();
    warm.process(numbered_event(5_000_000, records, None), invocation()).await.unwrap();
    println!("| {label} requests per record: duplicate, warm cache | {:.2} |", cost(before));
    let cold = idempotent(store.clone());
    let before = sent();
    cold.process(numbered_event(5_000_000, records, None), invocation()).await.unwrap();
    println!("| {label} requests per record: duplicate, cold | {:.2} |", cost(before));
    if !store.supports_transactions() {
        return;
    }
    let transactional = BatchProcessor::new(
        Idempotent::new(order_id_handler(), store.clone(), IdempotencyConfig::keyed_by("/eventId").transactional()).unwrap(),
        BatchConfig::default(),
    );
    let before = sent();
    transactional.process(numbered_event(6_000_000, records, None), invocation()).await.unwrap();
    println!("| {label} requests per record: transactional | {:.2} |", cost(before));
}

/// A Redis store whose keys are this run's alone, on the server at `url`.
fn redis_store(url: &str) -> Arc<RedisStore> {
    let prefix =
        format!("bench-{}-{}:", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    Arc::new(RedisStore::new(RedisConfig::new(url).with_key_prefix(prefix)).unwrap())
}

/// Which rows run, from the command line (see the module's documentation).
struct Selection {
    words: Vec<String>,
    rounds: Option<usize>,
}

impl Selection {
    fn from_args() -> Self {
        let mut selection = Self { words: Vec::new(), rounds: None };
        for arg in std::env::args().skip(1) {
            if let Some(rounds) = arg.strip_prefix("--rounds=") {
                selection.rounds = Some(rounds.parse().expect("--rounds takes a whole number of batches"));
            } else if !arg.starts_with("--") {
                // `cargo bench` adds `--bench`; other flags are not this bench's.
                selection.words.push(arg);
            }
        }
        selection
    }

    fn runs(&self, row: &str) -> bool {
        self.words.is_empty() || self.words.iter().any(|word| row.contains(word.as_str()))
    }

    /// Prints the per-record overhead of `processor` as row `row`, over `rounds` batches
    /// unless `--rounds` says otherwise.
    async fn per_record<S: RecordService>(&self, row: &str, processor: &BatchProcessor<S>, rounds: usize) {
        let overhead = per_record_overhead(processor, self.rounds.unwrap_or(rounds)).await;
        println!("| per-record overhead, {row} | {:.1} µs |", overhead.as_secs_f64() * 1e6);
    }
}

#[tokio::main]
async fn main() {
    let selection = Selection::from_args();
    println!("| benchmark | figure |");
    println!("|---|---|");
    let row = "batch layer alone, no I/O";
    if selection.runs(row) {
        selection.per_record(row, &BatchProcessor::new(order_id_handler(), BatchConfig::default()), 300).await;
    }
    let row = "idempotency on the memory store";
    if selection.runs(row) {
        selection.per_record(row, &idempotent(Arc::new(MemoryStore::new())), 300).await;
    }
    let row = "idempotency on the embedded store";
    if selection.runs(row) {
        let state = std::env::temp_dir().join(format!("sqs-kit-bench-{}", std::process::id()));
        selection.per_record(row, &idempotent(Arc::new(EmbeddedStore::open(&state).unwrap())), 50).await;
        let _ = std::fs::remove_dir_all(&state);
    }
    for per_transaction in [10, 100] {
        let row = format!("SQLite alone, a claim and a completion, {per_transaction} records per transaction");
        if selection.runs(&row) {
            let records = selection.rounds.unwrap_or(50) * 100;
            println!("| per-record cost, {row} | {:.1} µs |", sqlite_floor(records, per_transaction).as_secs_f64() * 1e6);
        }
    }
    if selection.runs("idempotency on DynamoDB") {
        match dynamodb_store().await {
            Some(store) => {
                selection.per_record("idempotency on DynamoDB (moto, local)", &idempotent(store.clone()), 5).await;
                let counted = store.clone();
                requests_per_path("DynamoDB", store, move || counted.requests_sent()).await;
            }
            None => {
                println!("| per-record overhead, idempotency on DynamoDB | not run: AWS_ENDPOINT_URL is not set (use scripts/with-moto) |")
            }
        }
    }
    if selection.runs("idempotency on Redis") {
        match std::env::var("REDIS_URL").ok().filter(|url| !url.is_empty()) {
            Some(url) => {
                let version = redis_version(&url).await;
                selection.per_record(&format!("idempotency on Redis ({version}, local)"), &idempotent(redis_store(&url)), 30).await;
                let proxy = CountingProxy::start(&url).await;
                let store = redis_store(&proxy.url);
                // The connections' handshakes (HELLO, AUTH, CLIENT SETINFO) are not a record's.
                store.get("warm-up").await.unwrap();
                store.get("warm-up").await.unwrap();
                requests_per_path("Redis", store, || proxy.commands()).await;
            }
            None => println!("| per-record overhead, idempotency on Redis | not run: REDIS_URL is not set (use scripts/with-redis) |"),
        }
    }
    for (name, groups) in [("standard queue (concurrent)", None), ("FIFO, one group (sequential)", Some(1)), ("FIFO, 10 groups", Some(10))]
    {
        let row = format!("10 records × 50 ms sleep, {name}");
        if selection.runs(&row) {
            let wall = sleeping_batch(groups).await;
            println!("| {row} | {:.1} ms |", wall.as_secs_f64() * 1e3);
        }
    }
}
