//! `shipping` as its users run it: `replay` of the sample events in `events/shipping/`, then
//! `status` and `ship` to see the effect, on the embedded store and on DynamoDB (moto), where
//! the tables are then read back with the SDK.

use aws_sdk_dynamodb::Client;
use e2e::{message_ids, Function, Run, Table};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqs_kit::store::attributes::{s, text, Item};

const SHIPPING: &str = env!("CARGO_BIN_EXE_shipping");
const CLEAN: &str = "events/shipping/clean-batch.json";
const DUPLICATE_AND_MALFORMED: &str = "events/shipping/duplicate-and-malformed.json";
const ORDER_THEN_CANCEL: &str = "events/shipping/order-then-cancel.json";
/// Event ids of ORD-1001's sample events (scripts/make-events).
const PLACED_1001: &str = "18312976-aa10-5747-a479-1cc7bbd9a7e7";
const CANCELLED_1001: &str = "40d8e836-68c9-507b-9f9d-c99e6fd50eaa";

const SHIPMENTS: Table = Table { variable: "SHIPMENTS_TABLE", partition_key: "orderId", sort_key: None };

fn embedded() -> Function {
    Function::embedded(SHIPPING)
}

async fn dynamodb() -> Option<Function> {
    Function::dynamodb(SHIPPING, &[SHIPMENTS]).await
}

/// The tables of a function on DynamoDB, to read back with the SDK; `None` on the embedded store.
struct Tables {
    client: Client,
    idempotency: String,
    shipments: String,
}

impl Tables {
    async fn of(env: &Function) -> Option<Self> {
        let table = |variable: &str| env.envs().iter().find(|(name, _)| name == variable).map(|(_, table)| table.clone());
        let (idempotency, shipments) = (table("IDEMPOTENCY_TABLE")?, table(SHIPMENTS.variable)?);
        let config = e2e::local_aws().await?;
        Some(Tables { client: Client::new(&config), idempotency, shipments })
    }

    async fn shipments(&self) -> Vec<Item> {
        let scanned = self.client.scan().table_name(&self.shipments).consistent_read(true).send().await.unwrap();
        scanned.items().to_vec()
    }

    async fn shipment(&self, order_id: &str) -> Item {
        let output =
            self.client.get_item().table_name(&self.shipments).key("orderId", s(order_id)).consistent_read(true).send().await.unwrap();
        output.item().cloned().unwrap_or_else(|| panic!("no item for {order_id} in {}", self.shipments))
    }

    /// The idempotency record of `event_id`: its status and stored outcome.
    async fn idempotency_result(&self, event_id: &str) -> (String, Value) {
        let output = self
            .client
            .get_item()
            .table_name(&self.idempotency)
            .key("id", s(&format!("shipping#{event_id}")))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let item = output.item().unwrap_or_else(|| panic!("no idempotency record for {event_id}"));
        let result = text(item, "result").map(|result| serde_json::from_str(result).unwrap()).unwrap_or_default();
        (text(item, "status").unwrap().to_owned(), result)
    }
}

/// `replay FILE`, which must also print its answer as one line of JSON.
fn replay(env: &Function, file: &str) -> Run {
    let run = env.replay(file);
    assert_eq!(run.stdout.lines().count(), 1, "stdout is one line: {run:?}");
    run
}

/// Replays `records` as one SQS event.
fn replay_records(env: &Function, records: Vec<Value>) -> Run {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), json!({ "Records": records }).to_string()).unwrap();
    replay(env, file.path().to_str().unwrap())
}

fn records(file: &str) -> Vec<Value> {
    let event: Value = serde_json::from_str(&e2e::read_event(file)).unwrap();
    event["Records"].as_array().unwrap().clone()
}

/// The order's shipment as `shipping status` prints it; panics if it has none.
fn status_of(env: &Function, order_id: &str) -> Value {
    let run = env.run(&["status", order_id]);
    assert_eq!(run.code, Some(0), "shipping status {order_id}: {run:?}");
    run.json()
}

/// The tracking number the function must derive: pinned here so that a change of format is a
/// deliberate one (tracking numbers already issued would no longer match their orders).
fn expected_tracking_number(order_id: &str) -> String {
    let digest = Sha256::digest(order_id.as_bytes());
    format!("SHP-{}", digest.iter().take(8).map(|b| format!("{b:02X}")).collect::<String>())
}

/// What `status` prints for the order's shipment in `status`.
fn shipment(order_id: &str, status: &str) -> Value {
    json!({"orderId": order_id, "status": status, "trackingNumber": expected_tracking_number(order_id)})
}

/// The replay summary's line for one message.
fn outcome<'a>(run: &'a Run, message_id: &str) -> &'a str {
    run.stderr
        .lines()
        .find(|line| line.trim_start().starts_with(message_id))
        .unwrap_or_else(|| panic!("the summary has no line for {message_id}: {}", run.stderr))
}

fn assert_all_duplicates(run: &Run, file: &str) {
    for id in message_ids(file) {
        assert!(outcome(run, &id).contains("duplicate (skipped)"), "{id} should be a duplicate: {}", run.stderr);
    }
}

async fn a_clean_batch_creates_one_shipment_per_order_once(env: Function) {
    let first = replay(&env, CLEAN);
    assert_eq!(first.json(), json!({"batchItemFailures": []}), "{first:?}");
    for id in message_ids(CLEAN) {
        assert!(outcome(&first, &id).contains(r#""outcome":"created""#), "{}", first.stderr);
    }
    for order in ["ORD-1001", "ORD-1002", "ORD-1003"] {
        assert_eq!(status_of(&env, order), shipment(order, "CREATED"));
    }

    let second = replay(&env, CLEAN);
    assert_eq!(second.json(), json!({"batchItemFailures": []}));
    assert_all_duplicates(&second, CLEAN);
    assert!(second.stderr.contains("totals: 0 processed, 3 duplicate"), "{}", second.stderr);
    for order in ["ORD-1001", "ORD-1002", "ORD-1003"] {
        assert_eq!(status_of(&env, order), shipment(order, "CREATED"));
    }

    let Some(tables) = Tables::of(&env).await else { return };
    let items = tables.shipments().await;
    assert_eq!(items.len(), 3, "{items:?}");
    let item = tables.shipment("ORD-1001").await;
    assert_eq!(text(&item, "status"), Some("CREATED"));
    assert_eq!(text(&item, "trackingNumber"), Some(expected_tracking_number("ORD-1001").as_str()));
    assert_eq!(text(&item, "eventId"), Some(PLACED_1001));
    let address = item.get("address").and_then(|v| v.as_m().ok()).expect("the address is a map");
    assert_eq!(text(address, "city"), Some("Seoul"));
    assert_eq!(text(address, "postalCode"), Some("06236"));
    assert!(!item.contains_key("customerEmail"), "shipping keeps no e-mail address: {item:?}");

    let (status, result) = tables.idempotency_result(PLACED_1001).await;
    assert_eq!(status, "COMPLETED");
    assert_eq!(result["outcome"], "created");
    assert_eq!(result["trackingNumber"], expected_tracking_number("ORD-1001"));
}

e2e::on_both_stores!(a_clean_batch_creates_one_shipment_per_order_once, super::embedded(), super::dynamodb());

async fn a_duplicate_creates_nothing_and_only_the_malformed_body_fails(env: Function) {
    let ids = message_ids(DUPLICATE_AND_MALFORMED);
    let malformed = ids[2].clone();
    let first = replay(&env, DUPLICATE_AND_MALFORMED);
    // Only the malformed body goes back to the queue (and, after maxReceiveCount, to the DLQ).
    assert_eq!(first.failures(), vec![malformed.clone()], "{first:?}");
    // The two copies of ORD-1001 run side by side and share one handler call: whichever
    // starts first is processed, the other reported as its duplicate.
    let copies = [outcome(&first, &ids[0]), outcome(&first, &ids[1])];
    assert_eq!(copies.iter().filter(|o| o.contains("processed")).count(), 1, "{}", first.stderr);
    assert_eq!(copies.iter().filter(|o| o.contains("duplicate (skipped)")).count(), 1, "{}", first.stderr);
    assert!(outcome(&first, &malformed).contains("failed (permanent)"), "{}", first.stderr);
    assert!(outcome(&first, &ids[3]).contains("processed"), "{}", first.stderr);
    assert_eq!(status_of(&env, "ORD-1001"), shipment("ORD-1001", "CREATED"));
    assert_eq!(status_of(&env, "ORD-1002"), shipment("ORD-1002", "CREATED"));
    assert_eq!(env.run(&["status", "ORD-1999"]).code, Some(1), "the malformed order has no shipment");

    let second = replay(&env, DUPLICATE_AND_MALFORMED);
    assert_eq!(second.failures(), vec![malformed.clone()]);
    for id in [&ids[0], &ids[1], &ids[3]] {
        assert!(outcome(&second, id).contains("duplicate (skipped)"), "{}", second.stderr);
    }
    assert_eq!(status_of(&env, "ORD-1001"), shipment("ORD-1001", "CREATED"));

    let Some(tables) = Tables::of(&env).await else { return };
    let mut orders: Vec<String> = tables.shipments().await.iter().map(|i| text(i, "orderId").unwrap().to_owned()).collect();
    orders.sort();
    assert_eq!(orders, ["ORD-1001", "ORD-1002"]);
}

e2e::on_both_stores!(a_duplicate_creates_nothing_and_only_the_malformed_body_fails, super::embedded(), super::dynamodb());

async fn an_order_then_its_cancellation_ends_cancelled(env: Function) {
    let first = replay(&env, ORDER_THEN_CANCEL);
    assert_eq!(first.failures(), Vec::<String>::new(), "{first:?}");
    // A standard queue runs the two records concurrently: whichever lands first, the order ends
    // cancelled, and looks the same.
    assert_eq!(status_of(&env, "ORD-1001"), shipment("ORD-1001", "CANCELLED"));

    let second = replay(&env, ORDER_THEN_CANCEL);
    assert_eq!(second.failures(), Vec::<String>::new());
    assert_all_duplicates(&second, ORDER_THEN_CANCEL);
    assert_eq!(status_of(&env, "ORD-1001"), shipment("ORD-1001", "CANCELLED"));

    let Some(tables) = Tables::of(&env).await else { return };
    let item = tables.shipment("ORD-1001").await;
    assert_eq!(text(&item, "status"), Some("CANCELLED"));
    assert_eq!(text(&item, "cancelEventId"), Some(CANCELLED_1001));
    assert_eq!(tables.shipments().await.len(), 1);
}

e2e::on_both_stores!(an_order_then_its_cancellation_ends_cancelled, super::embedded(), super::dynamodb());

async fn a_cancellation_before_the_order_keeps_it_from_creating_a_shipment(env: Function) {
    let records = records(ORDER_THEN_CANCEL);
    let (placed, cancelled) = (records[0].clone(), records[1].clone());

    // One at a time, so that the order of arrival is certain.
    let cancel = replay_records(&env, vec![cancelled.clone()]);
    assert_eq!(cancel.failures(), Vec::<String>::new(), "{cancel:?}");
    assert!(cancel.stderr.contains(r#""outcome":"cancelled_before_creation""#), "{}", cancel.stderr);
    let tombstone = shipment("ORD-1001", "CANCELLED");
    assert_eq!(status_of(&env, "ORD-1001"), tombstone);

    let place = replay_records(&env, vec![placed.clone()]);
    assert_eq!(place.failures(), Vec::<String>::new(), "the late order is a business outcome, not a retry: {place:?}");
    assert!(place.stderr.contains(r#""outcome":"not_created""#), "{}", place.stderr);
    assert!(place.stderr.contains("cancelled (event 40d8e836"), "{}", place.stderr);
    assert_eq!(status_of(&env, "ORD-1001"), tombstone);

    // The same two records in one batch in reverse order: no live shipment either way.
    let reversed = replay_records(&env, vec![cancelled, placed]);
    assert_eq!(reversed.failures(), Vec::<String>::new());
    assert!(reversed.stderr.contains("totals: 0 processed, 2 duplicate"), "{}", reversed.stderr);
    assert_eq!(status_of(&env, "ORD-1001"), tombstone);

    let Some(tables) = Tables::of(&env).await else { return };
    let tombstone = tables.shipment("ORD-1001").await;
    assert_eq!(text(&tombstone, "status"), Some("CANCELLED"));
    assert_eq!(text(&tombstone, "eventId"), Some(CANCELLED_1001));
    assert_eq!(text(&tombstone, "cancelEventId"), Some(CANCELLED_1001));
    assert_eq!(text(&tombstone, "trackingNumber"), Some(expected_tracking_number("ORD-1001").as_str()));
    assert!(!tombstone.contains_key("address"), "a tombstone has nothing to deliver: {tombstone:?}");

    let (_, cancelled) = tables.idempotency_result(CANCELLED_1001).await;
    assert_eq!(cancelled["outcome"], "cancelled_before_creation");
    let (status, placed) = tables.idempotency_result(PLACED_1001).await;
    assert_eq!(status, "COMPLETED", "the late order is completed, not left to retry");
    assert_eq!(placed["outcome"], "not_created");
}

e2e::on_both_stores!(a_cancellation_before_the_order_keeps_it_from_creating_a_shipment, super::embedded(), super::dynamodb());

/// A fresh store, then the reversed batch alone: the records race, and the order still ends
/// cancelled.
async fn a_reversed_batch_ends_cancelled(env: Function) {
    let reversed = e2e::reversed_event(ORDER_THEN_CANCEL);
    let run = replay(&env, reversed.path().to_str().unwrap());
    assert_eq!(run.failures(), Vec::<String>::new(), "{run:?}");
    assert!(run.stderr.contains("totals: 2 processed, 0 duplicate"), "{}", run.stderr);
    assert_eq!(status_of(&env, "ORD-1001"), shipment("ORD-1001", "CANCELLED"));

    let Some(tables) = Tables::of(&env).await else { return };
    assert_eq!(text(&tables.shipment("ORD-1001").await, "status"), Some("CANCELLED"));
}

e2e::on_both_stores!(a_reversed_batch_ends_cancelled, super::embedded(), super::dynamodb());

async fn a_cancellation_after_shipping_is_a_recorded_outcome(env: Function) {
    let records = records(ORDER_THEN_CANCEL);
    let place = replay_records(&env, vec![records[0].clone()]);
    assert_eq!(place.failures(), Vec::<String>::new());

    let ship = env.run(&["ship", "ORD-1001"]);
    assert_eq!(ship.code, Some(0), "{ship:?}");
    let shipped = shipment("ORD-1001", "SHIPPED");
    assert_eq!(ship.json(), shipped);

    let cancel = replay_records(&env, vec![records[1].clone()]);
    assert_eq!(cancel.failures(), Vec::<String>::new(), "a late cancellation is recorded, not retried: {cancel:?}");
    assert!(cancel.stderr.contains(r#""outcome":"not_cancelled""#), "{}", cancel.stderr);
    assert!(cancel.stderr.contains("already shipped; not cancelled"), "{}", cancel.stderr);
    assert_eq!(status_of(&env, "ORD-1001"), shipped);

    let again = replay_records(&env, vec![records[1].clone()]);
    assert!(outcome(&again, records[1]["messageId"].as_str().unwrap()).contains("duplicate (skipped)"), "{}", again.stderr);
    assert_eq!(status_of(&env, "ORD-1001"), shipped);

    // Only a CREATED shipment can be shipped.
    let twice = env.run(&["ship", "ORD-1001"]);
    assert_eq!(twice.code, Some(1), "{twice:?}");
    assert!(twice.stdout.is_empty());
    assert!(twice.stderr.contains("is SHIPPED; only a CREATED shipment can be shipped"), "{twice:?}");

    let Some(tables) = Tables::of(&env).await else { return };
    let item = tables.shipment("ORD-1001").await;
    assert_eq!(text(&item, "status"), Some("SHIPPED"));
    assert!(!item.contains_key("cancelEventId"), "{item:?}");
    let (status, result) = tables.idempotency_result(CANCELLED_1001).await;
    assert_eq!(status, "COMPLETED");
    assert_eq!(result["outcome"], "not_cancelled");
    assert_eq!(result["reason"], "already shipped; not cancelled");
}

e2e::on_both_stores!(a_cancellation_after_shipping_is_a_recorded_outcome, super::embedded(), super::dynamodb());

async fn status_of_an_unknown_order_is_one_clear_error(env: Function) {
    // Other orders' shipments, so that the store exists: a missing one is its own error.
    replay(&env, CLEAN);
    for command in ["status", "ship"] {
        let run = env.run(&[command, "ORD-404"]);
        assert_eq!(run.code, Some(1), "{command}: {run:?}");
        assert_eq!(run.stdout, "", "{command}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "one line on stderr for {command}: {run:?}");
        assert!(run.stderr.starts_with("error: order ORD-404 has no shipment in "), "{command}: {run:?}");
    }

    let Some(tables) = Tables::of(&env).await else { return };
    let run = env.run(&["status", "ORD-404"]);
    assert!(run.stderr.contains(&format!("DynamoDB table {}", tables.shipments)), "{run:?}");
}

e2e::on_both_stores!(status_of_an_unknown_order_is_one_clear_error, super::embedded(), super::dynamodb());

#[test]
fn status_names_the_missing_table_variable_for_dynamodb() {
    let run = e2e::run(
        SHIPPING.as_ref(),
        ["status", "ORD-1001", "--store", "dynamodb"],
        &[("IDEMPOTENCY_TABLE", "idempotency"), ("SHIPMENTS_TABLE", ""), ("AWS_REGION", "us-east-1")],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("SHIPMENTS_TABLE is not set"), "{run:?}");
}

#[tokio::test]
async fn a_store_failure_is_retried_and_the_retry_creates_the_shipments() {
    let Some(config) = e2e::local_aws().await else { return };
    let env = dynamodb().await.expect("the local AWS API is set");
    let tables = Tables::of(&env).await.expect("a function on DynamoDB has tables");

    // Without the shipments table, every record fails transiently, and each claim is released
    // so that the redelivery runs the handler again.
    tables.client.delete_table().table_name(&tables.shipments).send().await.unwrap();
    let failed = replay(&env, CLEAN);
    assert_eq!(failed.failures().len(), 3, "{failed:?}");
    assert!(failed.stderr.contains("failed (transient)"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains(&format!("DynamoDB table {}: cannot write the shipment of order", tables.shipments)),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("ResourceNotFoundException"), "{}", failed.stderr);

    e2e::create_table(&config, &tables.shipments, SHIPMENTS.partition_key, SHIPMENTS.sort_key).await;
    let retried = replay(&env, CLEAN);
    assert_eq!(retried.failures(), Vec::<String>::new(), "{retried:?}");
    assert!(retried.stderr.contains("totals: 3 processed, 0 duplicate"), "{}", retried.stderr);
    assert_eq!(status_of(&env, "ORD-1002")["status"], "CREATED");
}

/// An order id DynamoDB could not key and an address no DynamoDB item could hold fail
/// permanently, naming the limit, on every store: neither is retried into the dead-letter queue
/// on DynamoDB while the embedded store accepts it.
async fn oversized_keys_and_items_fail_permanently_naming_the_limit(env: Function) {
    let template = records(CLEAN).remove(0);
    let with_body = |message_id: &str, change: &dyn Fn(&mut Value)| {
        let mut record = template.clone();
        let mut body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        change(&mut body);
        body["eventId"] = json!(message_id);
        record["messageId"] = json!(message_id);
        record["body"] = json!(body.to_string());
        record
    };
    let long_id = with_body("long-order-id", &|body| body["orderId"] = json!("x".repeat(100 * 1024)));
    let large_address = with_body("large-address", &|body| body["shippingAddress"]["line2"] = json!("x".repeat(400 * 1024)));
    let run = replay_records(&env, vec![long_id, large_address]);
    assert_eq!(run.failures(), ["long-order-id", "large-address"], "{run:?}");
    assert!(
        outcome(&run, "long-order-id").contains(
            "failed (permanent): the body is not a valid OrderEvent: field `orderId` is 102400 bytes long; at most 1008 are accepted"
        ),
        "{}",
        run.stderr
    );
    assert!(
        outcome(&run, "large-address")
            .contains("failed (permanent): the body is not a valid OrderEvent: the order's shippingAddress fields take"),
        "{}",
        run.stderr
    );
    assert!(outcome(&run, "large-address").contains("DynamoDB's 400 KB item limit"), "{}", run.stderr);
    assert!(run.stderr.len() < 10_000, "the values are not repeated: {} bytes", run.stderr.len());

    let Some(tables) = Tables::of(&env).await else { return };
    assert!(tables.shipments().await.is_empty(), "nothing was written");
}

e2e::on_both_stores!(oversized_keys_and_items_fail_permanently_naming_the_limit, super::embedded(), super::dynamodb());
