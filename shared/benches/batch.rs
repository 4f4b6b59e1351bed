//! Batch-layer benchmarks; figures are printed, never asserted.
//!
//! ```text
//! cargo bench -p sqs-kit --bench batch
//! ```
//! - per-record overhead of the batch layer with a handler that does no I/O;
//! - wall time of a 10-record batch whose handler sleeps 50 ms per record, on a standard queue
//!   (concurrent), a FIFO queue with one group (sequential) and a FIFO queue with 10 groups.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{json, Value};
use sqs_kit::{handler_fn, typed, BatchConfig, BatchProcessor, InvocationContext, RecordContext, RecordError};

fn order_body(i: usize) -> String {
    json!({
        "eventId": format!("evt-{i}"), "eventType": "OrderPlaced", "orderId": format!("ORD-{i}"),
        "customerId": "CUST-42", "items": [{"sku": "SKU-KEYBOARD", "quantity": 1, "unitPrice": 89000}],
        "totalAmount": 89000, "currency": "KRW"
    })
    .to_string()
}

fn event(records: usize, groups: Option<usize>) -> SqsEvent {
    let records: Vec<Value> = (0..records)
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

async fn per_record_overhead() -> Duration {
    let processor = BatchProcessor::new(
        typed(handler_fn(|order: Order, _cx: RecordContext| async move { Ok::<_, RecordError>(order.order_id) })),
        BatchConfig::default(),
    );
    let batch = event(100, None);
    for _ in 0..20 {
        processor.process(batch.clone(), invocation()).await.unwrap();
    }
    let rounds = 300;
    let started = Instant::now();
    for _ in 0..rounds {
        processor.process(batch.clone(), invocation()).await.unwrap();
    }
    started.elapsed() / (rounds * 100)
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

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing else we use.
    let overhead = per_record_overhead().await;
    println!("| benchmark | figure |");
    println!("|---|---|");
    println!("| per-record overhead, batch layer, no I/O | {:.1} µs |", overhead.as_secs_f64() * 1e6);
    for (name, groups) in [("standard queue (concurrent)", None), ("FIFO, one group (sequential)", Some(1)), ("FIFO, 10 groups", Some(10))] {
        let wall = sleeping_batch(groups).await;
        println!("| 10 records × 50 ms sleep, {name} | {:.1} ms |", wall.as_secs_f64() * 1e3);
    }
}
