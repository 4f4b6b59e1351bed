//! The scenarios every store must pass, run through the `shipping` binary as a user would:
//! `replay` of the sample events in `events/shipping/`, then `shipping status` to see the effect.

// Each test crate uses the constructor of its own store.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use e2e::Run;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub const PLACED_1001: &str = "18312976-aa10-5747-a479-1cc7bbd9a7e7";
pub const CANCELLED_1001: &str = "40d8e836-68c9-507b-9f9d-c99e6fd50eaa";

/// The `shipping` binary on one store: its flags and environment, and a scratch directory
/// (the embedded state, and the events the tests build).
pub struct Shipping {
    store_args: Vec<String>,
    envs: Vec<(String, String)>,
    scratch: TempDir,
}

impl Shipping {
    /// The embedded store in a fresh state directory.
    pub fn embedded() -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let state = scratch.path().join("state").display().to_string();
        Self { store_args: vec!["--state".into(), state], envs: Vec::new(), scratch }
    }

    /// DynamoDB (`AWS_ENDPOINT_URL` comes from the test's environment) with the given tables.
    pub fn dynamodb(idempotency_table: &str, shipments_table: &str) -> Self {
        Self {
            store_args: vec!["--store".into(), "dynamodb".into()],
            envs: vec![("IDEMPOTENCY_TABLE".into(), idempotency_table.into()), ("SHIPMENTS_TABLE".into(), shipments_table.into())],
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(self.store_args.iter().map(String::as_str));
        let envs: Vec<(&str, &str)> = self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        e2e::run(Path::new(env!("CARGO_BIN_EXE_shipping")), all, &envs)
    }

    /// Replays an event file and checks what every replay must do: exit 0, one line of JSON.
    pub fn replay(&self, event: &Path) -> Run {
        let run = self.run(&["replay", event.to_str().unwrap()]);
        assert_eq!(run.code, Some(0), "replay of {} failed: {run:?}", event.display());
        assert_eq!(run.stdout.lines().count(), 1, "stdout is one line: {run:?}");
        run
    }

    /// Writes `records` as one SQS event and replays it.
    pub fn replay_records(&self, name: &str, records: Vec<Value>) -> Run {
        let path = self.scratch.path().join(name);
        std::fs::write(&path, serde_json::to_string(&json!({ "Records": records })).unwrap()).unwrap();
        self.replay(&path)
    }

    /// The order's shipment as `shipping status` prints it; panics if it has none.
    pub fn status(&self, order_id: &str) -> Value {
        let run = self.run(&["status", order_id]);
        assert_eq!(run.code, Some(0), "shipping status {order_id}: {run:?}");
        run.json()
    }
}

pub fn sample(name: &str) -> PathBuf {
    e2e::workspace_root().join("events/shipping").join(name)
}

pub fn records(name: &str) -> Vec<Value> {
    let event: Value = serde_json::from_str(&std::fs::read_to_string(sample(name)).unwrap()).unwrap();
    event["Records"].as_array().unwrap().clone()
}

fn message_ids(name: &str) -> Vec<String> {
    records(name).iter().map(|r| r["messageId"].as_str().unwrap().to_owned()).collect()
}

/// The tracking number the function must derive: pinned here so that a change of format is a
/// deliberate one (tracking numbers already issued would no longer match their orders).
pub fn expected_tracking_number(order_id: &str) -> String {
    let digest = Sha256::digest(order_id.as_bytes());
    format!("SHP-{}", digest.iter().take(8).map(|b| format!("{b:02X}")).collect::<String>())
}

pub fn failures(run: &Run) -> Vec<String> {
    run.json()["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures: {run:?}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// The replay summary's line for one message.
pub fn outcome<'a>(run: &'a Run, message_id: &str) -> &'a str {
    run.stderr
        .lines()
        .find(|line| line.trim_start().starts_with(message_id))
        .unwrap_or_else(|| panic!("the summary has no line for {message_id}: {}", run.stderr))
}

pub fn assert_all_duplicates(run: &Run, name: &str) {
    for id in message_ids(name) {
        assert!(outcome(run, &id).contains("duplicate (skipped)"), "{id} should be a duplicate: {}", run.stderr);
    }
}

fn created_status(order_id: &str) -> Value {
    json!({"orderId": order_id, "status": "CREATED", "trackingNumber": expected_tracking_number(order_id)})
}

fn cancelled_status(order_id: &str) -> Value {
    json!({"orderId": order_id, "status": "CANCELLED", "trackingNumber": expected_tracking_number(order_id)})
}

pub fn clean_batch(shipping: &Shipping) {
    let first = shipping.replay(&sample("clean-batch.json"));
    assert_eq!(first.json(), json!({"batchItemFailures": []}), "{first:?}");
    for id in message_ids("clean-batch.json") {
        assert!(outcome(&first, &id).contains(r#""outcome":"created""#), "{}", first.stderr);
    }
    for order in ["ORD-1001", "ORD-1002", "ORD-1003"] {
        assert_eq!(shipping.status(order), created_status(order));
    }

    let second = shipping.replay(&sample("clean-batch.json"));
    assert_eq!(second.json(), json!({"batchItemFailures": []}));
    assert_all_duplicates(&second, "clean-batch.json");
    assert!(second.stderr.contains("totals: 0 processed, 3 duplicate"), "{}", second.stderr);
    for order in ["ORD-1001", "ORD-1002", "ORD-1003"] {
        assert_eq!(shipping.status(order), created_status(order));
    }
}

pub fn duplicate_and_malformed(shipping: &Shipping) {
    let ids = message_ids("duplicate-and-malformed.json");
    let malformed = ids[2].clone();
    let first = shipping.replay(&sample("duplicate-and-malformed.json"));
    // Only the malformed body goes back to the queue (and, after maxReceiveCount, to the DLQ).
    assert_eq!(failures(&first), vec![malformed.clone()], "{first:?}");
    // The two copies of ORD-1001 run side by side and share one handler call: whichever
    // starts first is processed, the other reported as its duplicate.
    let copies = [outcome(&first, &ids[0]), outcome(&first, &ids[1])];
    assert_eq!(copies.iter().filter(|o| o.contains("processed")).count(), 1, "{}", first.stderr);
    assert_eq!(copies.iter().filter(|o| o.contains("duplicate (skipped)")).count(), 1, "{}", first.stderr);
    assert!(outcome(&first, &malformed).contains("failed (permanent)"), "{}", first.stderr);
    assert!(outcome(&first, &ids[3]).contains("processed"), "{}", first.stderr);
    assert_eq!(shipping.status("ORD-1001"), created_status("ORD-1001"));
    assert_eq!(shipping.status("ORD-1002"), created_status("ORD-1002"));
    assert_eq!(shipping.run(&["status", "ORD-1999"]).code, Some(1), "the malformed order has no shipment");

    let second = shipping.replay(&sample("duplicate-and-malformed.json"));
    assert_eq!(failures(&second), vec![malformed.clone()]);
    for id in [&ids[0], &ids[1], &ids[3]] {
        assert!(outcome(&second, id).contains("duplicate (skipped)"), "{}", second.stderr);
    }
    assert_eq!(shipping.status("ORD-1001"), created_status("ORD-1001"));
}

pub fn order_then_cancel(shipping: &Shipping) {
    let first = shipping.replay(&sample("order-then-cancel.json"));
    assert_eq!(failures(&first), Vec::<String>::new(), "{first:?}");
    // A standard queue runs the two records concurrently: whichever lands first, the order ends
    // cancelled, and looks the same.
    assert_eq!(shipping.status("ORD-1001"), cancelled_status("ORD-1001"));

    let second = shipping.replay(&sample("order-then-cancel.json"));
    assert_eq!(failures(&second), Vec::<String>::new());
    assert_all_duplicates(&second, "order-then-cancel.json");
    assert_eq!(shipping.status("ORD-1001"), cancelled_status("ORD-1001"));
}

pub fn cancellation_before_placement(shipping: &Shipping) {
    let records = records("order-then-cancel.json");
    let (placed, cancelled) = (records[0].clone(), records[1].clone());

    // One at a time, so that the order of arrival is certain.
    let cancel = shipping.replay_records("cancel-first.json", vec![cancelled.clone()]);
    assert_eq!(failures(&cancel), Vec::<String>::new(), "{cancel:?}");
    assert!(cancel.stderr.contains(r#""outcome":"cancelled_before_creation""#), "{}", cancel.stderr);
    let tombstone = cancelled_status("ORD-1001");
    assert_eq!(shipping.status("ORD-1001"), tombstone);

    let place = shipping.replay_records("placed-late.json", vec![placed.clone()]);
    assert_eq!(failures(&place), Vec::<String>::new(), "the late order is a business outcome, not a retry: {place:?}");
    assert!(place.stderr.contains(r#""outcome":"not_created""#), "{}", place.stderr);
    assert!(place.stderr.contains("cancelled (event 40d8e836"), "{}", place.stderr);
    assert_eq!(shipping.status("ORD-1001"), tombstone);

    // The same two records in one batch in reverse order: no live shipment either way.
    let reversed = shipping.replay_records("reversed.json", vec![cancelled, placed]);
    assert_eq!(failures(&reversed), Vec::<String>::new());
    assert!(reversed.stderr.contains("totals: 0 processed, 2 duplicate"), "{}", reversed.stderr);
    assert_eq!(shipping.status("ORD-1001"), tombstone);
}

/// A fresh store, then the reversed batch alone: the records race, and the order still ends
/// cancelled.
pub fn reversed_batch(shipping: &Shipping) {
    let mut records = records("order-then-cancel.json");
    records.reverse();
    let run = shipping.replay_records("reversed.json", records);
    assert_eq!(failures(&run), Vec::<String>::new(), "{run:?}");
    assert!(run.stderr.contains("totals: 2 processed, 0 duplicate"), "{}", run.stderr);
    assert_eq!(shipping.status("ORD-1001"), cancelled_status("ORD-1001"));
}

pub fn cancel_after_shipping(shipping: &Shipping) {
    let records = records("order-then-cancel.json");
    let place = shipping.replay_records("placed.json", vec![records[0].clone()]);
    assert_eq!(failures(&place), Vec::<String>::new());

    let ship = shipping.run(&["ship", "ORD-1001"]);
    assert_eq!(ship.code, Some(0), "{ship:?}");
    let shipped = json!({"orderId": "ORD-1001", "status": "SHIPPED", "trackingNumber": expected_tracking_number("ORD-1001")});
    assert_eq!(ship.json(), shipped);

    let cancel = shipping.replay_records("cancel.json", vec![records[1].clone()]);
    assert_eq!(failures(&cancel), Vec::<String>::new(), "a late cancellation is recorded, not retried: {cancel:?}");
    assert!(cancel.stderr.contains(r#""outcome":"not_cancelled""#), "{}", cancel.stderr);
    assert!(cancel.stderr.contains("already shipped; not cancelled"), "{}", cancel.stderr);
    assert_eq!(shipping.status("ORD-1001"), shipped);

    let again = shipping.replay_records("cancel.json", vec![records[1].clone()]);
    assert!(outcome(&again, records[1]["messageId"].as_str().unwrap()).contains("duplicate (skipped)"), "{}", again.stderr);
    assert_eq!(shipping.status("ORD-1001"), shipped);

    // Only a CREATED shipment can be shipped.
    let twice = shipping.run(&["ship", "ORD-1001"]);
    assert_eq!(twice.code, Some(1), "{twice:?}");
    assert!(twice.stdout.is_empty());
    assert!(twice.stderr.contains("is SHIPPED; only a CREATED shipment can be shipped"), "{twice:?}");
}

pub fn unknown_order(shipping: &Shipping) {
    // Other orders' shipments, so that the store exists: a missing one is its own error.
    shipping.replay(&sample("clean-batch.json"));
    for command in ["status", "ship"] {
        let run = shipping.run(&[command, "ORD-404"]);
        assert_eq!(run.code, Some(1), "{command}: {run:?}");
        assert_eq!(run.stdout, "", "{command}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "one line on stderr for {command}: {run:?}");
        assert!(run.stderr.starts_with("error: order ORD-404 has no shipment in "), "{command}: {run:?}");
    }
}

/// An order id DynamoDB could not key and an address no DynamoDB item could hold fail
/// permanently, naming the limit, on every store: neither is retried into the dead-letter queue
/// on DynamoDB while the embedded store accepts it.
pub fn oversized_keys_and_items(shipping: &Shipping) {
    let template = records("clean-batch.json").remove(0);
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
    let run = shipping.replay_records("oversized.json", vec![long_id, large_address]);
    assert_eq!(failures(&run), ["long-order-id", "large-address"], "{run:?}");
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
}
