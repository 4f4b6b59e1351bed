//! `inventory` as its users run it: `seed`, `replay` and `stock` as subprocesses, on the
//! embedded store and on DynamoDB (moto), including crashes around the commit.

use e2e::{message_ids, Function, Table};
use serde_json::{json, Value};

const CLEAN: &str = "events/inventory/clean-batch.json";
const DUPLICATE_AND_MALFORMED: &str = "events/inventory/duplicate-and-malformed.json";
const ORDER_THEN_CANCEL: &str = "events/inventory/order-then-cancel.json";
const OUT_OF_STOCK: &str = "events/inventory/out-of-stock.json";
const STOCK: &str = "events/inventory/stock.json";

const INVENTORY: &str = env!("CARGO_BIN_EXE_inventory");

fn embedded() -> Function {
    Function::embedded(INVENTORY)
}

async fn dynamodb() -> Option<Function> {
    Function::dynamodb(INVENTORY, &[Table { variable: "STOCK_TABLE", partition_key: "pk", sort_key: None }]).await
}

fn seed(env: &Function) {
    let run = env.run(&["seed", STOCK]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

fn seeded() -> Function {
    let env = embedded();
    seed(&env);
    env
}

fn stock(env: &Function) -> Value {
    let run = env.run(&["stock"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    run.json()
}

fn levels(keyboard: i64, mouse: i64, pad: i64) -> Value {
    json!([
        {"sku": "SKU-KEYBOARD", "available": keyboard},
        {"sku": "SKU-MOUSE", "available": mouse},
        {"sku": "SKU-PAD", "available": pad},
    ])
}

async fn clean_batch_reserves_every_order_once(env: Function) {
    seed(&env);
    let first = env.replay(CLEAN);
    assert!(first.failures().is_empty(), "{first:?}");
    assert!(first.stderr.contains("totals: 3 processed, 0 duplicate"), "{}", first.stderr);
    assert_eq!(stock(&env), levels(7, 3, 2));

    let second = env.replay(CLEAN);
    assert!(second.stderr.contains("totals: 0 processed, 3 duplicate"), "{}", second.stderr);
    assert_eq!(stock(&env), levels(7, 3, 2), "a second replay changes nothing");
}

e2e::on_both_stores!(clean_batch_reserves_every_order_once, super::embedded(), super::dynamodb());

async fn duplicates_reserve_once_and_malformed_bodies_fail(env: Function) {
    seed(&env);
    let ids = message_ids(DUPLICATE_AND_MALFORMED);
    let run = env.replay(DUPLICATE_AND_MALFORMED);
    assert_eq!(run.failures(), [ids[2].clone()], "only the malformed body fails");
    assert!(run.stderr.contains(&format!("{}  duplicate (skipped)", ids[1])), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("{}  failed (permanent): the body is not valid JSON", ids[2])), "{}", run.stderr);
    assert_eq!(stock(&env), levels(9, 3, 2));
}

e2e::on_both_stores!(duplicates_reserve_once_and_malformed_bodies_fail, super::embedded(), super::dynamodb());

async fn cancellation_releases_exactly_what_was_reserved(env: Function) {
    seed(&env);
    let run = env.replay(ORDER_THEN_CANCEL);
    assert!(run.failures().is_empty());
    assert!(run.stderr.contains(r#""outcome":"released""#), "{}", run.stderr);
    assert_eq!(stock(&env), levels(10, 5, 3));
    env.replay(ORDER_THEN_CANCEL);
    assert_eq!(stock(&env), levels(10, 5, 3), "releasing twice would create stock");
}

e2e::on_both_stores!(cancellation_releases_exactly_what_was_reserved, super::embedded(), super::dynamodb());

async fn insufficient_or_unknown_stock_is_a_recorded_rejection(env: Function) {
    seed(&env);
    let run = env.replay(OUT_OF_STOCK);
    assert!(run.failures().is_empty(), "a rejection is an outcome, not a retry: {run:?}");
    assert!(run.stderr.contains("insufficient stock for SKU-PAD"), "{}", run.stderr);
    assert!(run.stderr.contains("unknown SKU SKU-MONITOR"), "{}", run.stderr);
    assert_eq!(stock(&env), levels(10, 3, 2), "only ORD-1002 is reserved");
    let again = env.replay(OUT_OF_STOCK);
    assert!(again.stderr.contains("totals: 0 processed, 3 duplicate"), "{}", again.stderr);
}

e2e::on_both_stores!(insufficient_or_unknown_stock_is_a_recorded_rejection, super::embedded(), super::dynamodb());

#[test]
fn a_cancellation_before_the_order_blocks_a_later_reservation() {
    let env = seeded();
    // The same two records, cancellation first (as after a redrive from the DLQ).
    let file = e2e::reversed_event(ORDER_THEN_CANCEL);
    let run = env.replay(file.path().to_str().unwrap());
    assert!(run.failures().is_empty());
    assert!(run.stderr.contains("the order was never reserved"), "{}", run.stderr);
    assert!(run.stderr.contains("already has a reservation (CANCELLED)"), "{}", run.stderr);
    assert_eq!(stock(&env), levels(10, 5, 3));
}

/// A crash with the writes built but not sent applies nothing; the retry applies them once.
async fn crash_before_commit_loses_nothing(env: Function) {
    seed(&env);
    let crashed = env.run_with(&["replay", CLEAN], &[("SQS_KIT_FAULT", "crash-before-commit")]);
    assert_ne!(crashed.code, Some(0), "the process must have aborted: {crashed:?}");
    assert!(crashed.stdout.is_empty());
    assert_eq!(stock(&env), levels(10, 5, 3), "nothing half-applied");
    assert!(env.replay(CLEAN).failures().is_empty());
    assert_eq!(stock(&env), levels(7, 3, 2));
}

e2e::on_both_stores!(crash_before_commit_loses_nothing, super::embedded(), super::dynamodb());

/// A crash after the commit, before Lambda hears back: the retry is a duplicate.
async fn crash_after_commit_doubles_nothing(env: Function) {
    seed(&env);
    let ids = message_ids(CLEAN);
    let order_1003_event = "ee8b1953-317f-5e08-a012-4ff1dcf99bff";
    let crashed = env.run_with(&["replay", CLEAN], &[("SQS_KIT_FAULT", &format!("crash-after-commit:{order_1003_event}"))]);
    assert_ne!(crashed.code, Some(0), "{crashed:?}");
    let retry = env.replay(CLEAN);
    assert!(retry.stderr.contains(&format!("{}  duplicate (skipped)", ids[2])), "{}", retry.stderr);
    assert_eq!(stock(&env), levels(7, 3, 2), "ORD-1003 reserved once");
}

e2e::on_both_stores!(crash_after_commit_doubles_nothing, super::embedded(), super::dynamodb());

#[test]
fn stock_of_one_sku_and_of_an_unknown_one() {
    let env = seeded();
    assert_eq!(env.run(&["stock", "SKU-MOUSE"]).json(), json!([{"sku": "SKU-MOUSE", "available": 5}]));
    let unknown = env.run(&["stock", "SKU-NOPE"]);
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stdout.is_empty());
    assert_eq!(unknown.stderr.trim(), "error: no stock level for SKU-NOPE; set one with `inventory seed FILE`");
}

#[test]
fn seed_refuses_bad_input_with_one_line_and_exit_2() {
    let env = embedded();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("missing.json", None, "cannot read"),
        ("empty.json", Some(""), "is empty; expected a list of stock levels"),
        ("invalid.json", Some("[{"), "is not valid JSON: EOF while parsing an object at line 1 column 2"),
        ("shape.json", Some(r#"{"sku": "A"}"#), "does not have the expected shape"),
        ("negative.json", Some(r#"[{"sku": "A", "available": -1}]"#), "stock level 0 (A) has a negative available count -1"),
        ("twice.json", Some(r#"[{"sku": "A", "available": 1}, {"sku": "A", "available": 2}]"#), "A appears more than once"),
    ];
    for (name, content, expected) in cases {
        let path = dir.path().join(name);
        if let Some(content) = content {
            std::fs::write(&path, content).unwrap();
        }
        let run = env.run(&["seed", path.to_str().unwrap()]);
        assert_eq!(run.code, Some(2), "{name}: {run:?}");
        assert!(run.stdout.is_empty(), "{name}");
        assert_eq!(run.stderr.lines().count(), 1, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
    }
    assert_eq!(stock(&env), json!([]), "nothing partial was written");
}

/// An SQS event of `bodies` on a standard queue, in a temporary file.
fn event_file(bodies: &[Value]) -> tempfile::NamedTempFile {
    e2e::event_file(bodies, "arn:aws:sqs:ap-northeast-2:123456789012:orders-inventory")
}

/// An order event of `quantity` units of `sku`.
fn order(event_id: &str, event_type: &str, sku: &str, quantity: i64) -> Value {
    let mut body = e2e::generated_order(0, event_id, "ORD-9001", "CUST-42");
    body["eventType"] = json!(event_type);
    body["items"] = json!([{"sku": sku, "quantity": quantity, "unitPrice": 1}]);
    body["totalAmount"] = json!(quantity);
    body
}

fn seed_levels(env: &Function, levels: Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), levels.to_string()).unwrap();
    let run = env.run(&["seed", file.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

/// Stock re-seeded to the maximum while an order holds some: giving the order's units back
/// would pass what a stock level can hold, so the cancellation fails permanently and the level
/// stays an exact integer that `stock` prints.
async fn a_release_past_the_largest_stock_level_fails_permanently(env: Function) {
    seed_levels(&env, json!([{"sku": "SKU-GOLD", "available": 10}]));
    let placed = event_file(&[order("event-placed", "OrderPlaced", "SKU-GOLD", 5)]);
    assert!(env.replay(placed.path().to_str().unwrap()).failures().is_empty());
    seed_levels(&env, json!([{"sku": "SKU-GOLD", "available": i64::MAX}]));

    let cancelled = event_file(&[order("event-cancelled", "OrderCancelled", "SKU-GOLD", 5)]);
    let run = env.replay(cancelled.path().to_str().unwrap());
    assert_eq!(run.failures(), ["message-0"], "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "failed (permanent): releasing 5 of SKU-GOLD for order ORD-9001 would take its stock level past {}",
            i64::MAX
        )),
        "{}",
        run.stderr
    );
    assert_eq!(stock(&env), json!([{"sku": "SKU-GOLD", "available": i64::MAX}]));
}

e2e::on_both_stores!(a_release_past_the_largest_stock_level_fails_permanently, super::embedded(), super::dynamodb());

/// A SKU DynamoDB could not key fails permanently, naming the limit, on every store.
async fn a_sku_longer_than_a_dynamodb_key_fails_permanently_naming_the_limit(env: Function) {
    let file = event_file(&[order("event-long", "OrderPlaced", &"x".repeat(100 * 1024), 1)]);
    let run = env.replay(file.path().to_str().unwrap());
    assert_eq!(run.failures(), ["message-0"], "{run:?}");
    assert!(
        run.stderr.contains("failed (permanent): the body is not a valid OrderEvent: field `items[].sku` is 102400 bytes long; at most 2044 are accepted, so that the stock table's key SKU#<sku> fits DynamoDB's 2048-byte partition key limit"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.len() < 10_000, "the SKU is not repeated: {} bytes", run.stderr.len());
}

e2e::on_both_stores!(a_sku_longer_than_a_dynamodb_key_fails_permanently_naming_the_limit, super::embedded(), super::dynamodb());

/// `seed` refuses a SKU no order could name, on every store, before writing anything.
async fn seeding_a_sku_longer_than_a_dynamodb_key_is_refused(env: Function) {
    let file = tempfile::NamedTempFile::new().unwrap();
    let levels = json!([{"sku": "SKU-OK", "available": 1}, {"sku": "x".repeat(2045), "available": 1}]);
    std::fs::write(file.path(), levels.to_string()).unwrap();
    let run = env.run(&["seed", file.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("stock level 1 has a 2045-byte sku; at most 2044 bytes are allowed"), "{}", run.stderr);
    seed_levels(&env, json!([{"sku": "x".repeat(2044), "available": 1}]));
}

e2e::on_both_stores!(seeding_a_sku_longer_than_a_dynamodb_key_is_refused, super::embedded(), super::dynamodb());
