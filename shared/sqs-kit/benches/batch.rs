//! Batch-layer benchmarks; figures are printed, never asserted.
//!
//! ```text
//! cargo bench -p sqs-kit --bench batch
//! ```
//! - per-record overhead of the batch layer with a handler that does no I/O, alone and with
//!   idempotency on the memory store, the embedded store and (when `AWS_ENDPOINT_URL` is set,
//!   as under `scripts/with-moto`) DynamoDB;
//! - wall time of a 10-record batch whose handler sleeps 50 ms per record, on a standard queue
//!   (concurrent), a FIFO queue with one group (sequential) and a FIFO queue with 10 groups.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{json, Value};
use std::sync::Arc;

use sqs_kit::store::{DynamoDbStore, EmbeddedStore, IdempotencyStore, MemoryStore};
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

/// DynamoDB requests per record on each idempotency path, counted on the wire.
async fn requests_per_path(store: Arc<DynamoDbStore>) {
    let records = 20;
    let cost = |before: usize| (store.requests_sent() - before) as f64 / records as f64;
    let warm = idempotent(store.clone());
    let before = store.requests_sent();
    warm.process(numbered_event(5_000_000, records, None), invocation()).await.unwrap();
    println!("| DynamoDB requests per record: fresh | {:.2} |", cost(before));
    let before = store.requests_sent();
    warm.process(numbered_event(5_000_000, records, None), invocation()).await.unwrap();
    println!("| DynamoDB requests per record: duplicate, warm cache | {:.2} |", cost(before));
    let cold = idempotent(store.clone());
    let before = store.requests_sent();
    cold.process(numbered_event(5_000_000, records, None), invocation()).await.unwrap();
    println!("| DynamoDB requests per record: duplicate, cold | {:.2} |", cost(before));
    let transactional = BatchProcessor::new(
        Idempotent::new(order_id_handler(), store.clone(), IdempotencyConfig::keyed_by("/eventId").transactional()).unwrap(),
        BatchConfig::default(),
    );
    let before = store.requests_sent();
    transactional.process(numbered_event(6_000_000, records, None), invocation()).await.unwrap();
    println!("| DynamoDB requests per record: transactional | {:.2} |", cost(before));
}

#[tokio::main]
async fn main() {
    println!("| benchmark | figure |");
    println!("|---|---|");
    let plain = BatchProcessor::new(order_id_handler(), BatchConfig::default());
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!("| per-record overhead, batch layer alone, no I/O | {:.1} µs |", micros(per_record_overhead(&plain, 300).await));
    let memory = idempotent(Arc::new(MemoryStore::new()));
    println!("| per-record overhead, idempotency on the memory store | {:.1} µs |", micros(per_record_overhead(&memory, 300).await));
    let state = std::env::temp_dir().join(format!("sqs-kit-bench-{}", std::process::id()));
    let embedded = idempotent(Arc::new(EmbeddedStore::open(&state).unwrap()));
    println!("| per-record overhead, idempotency on the embedded store | {:.1} µs |", micros(per_record_overhead(&embedded, 50).await));
    let _ = std::fs::remove_dir_all(&state);
    match dynamodb_store().await {
        Some(store) => {
            let dynamodb = idempotent(store.clone());
            println!(
                "| per-record overhead, idempotency on DynamoDB (moto, local) | {:.1} µs |",
                micros(per_record_overhead(&dynamodb, 5).await)
            );
            requests_per_path(store).await;
        }
        None => println!("| per-record overhead, idempotency on DynamoDB | not run: AWS_ENDPOINT_URL is not set (use scripts/with-moto) |"),
    }
    for (name, groups) in [("standard queue (concurrent)", None), ("FIFO, one group (sequential)", Some(1)), ("FIFO, 10 groups", Some(10))]
    {
        let wall = sleeping_batch(groups).await;
        println!("| 10 records × 50 ms sleep, {name} | {:.1} ms |", wall.as_secs_f64() * 1e3);
    }
}
