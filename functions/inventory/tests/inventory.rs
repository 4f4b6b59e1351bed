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
