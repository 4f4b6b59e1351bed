//! `points` as its users run it: `replay` and `balance` as subprocesses, on the embedded store
//! and on DynamoDB (moto), including crashes around the commit.

use e2e::{message_ids, Function, Table};
use serde_json::{json, Value};

const POINTS: &str = env!("CARGO_BIN_EXE_points");
const CLEAN: &str = "events/points/clean-batch.json";
const DUPLICATE_AND_MALFORMED: &str = "events/points/duplicate-and-malformed.json";
const ORDER_THEN_CANCEL: &str = "events/points/order-then-cancel.json";
/// Event ids of the sample orders (scripts/make-events).
const ORD_1001_PLACED: &str = "18312976-aa10-5747-a479-1cc7bbd9a7e7";
const ORD_1003_PLACED: &str = "ee8b1953-317f-5e08-a012-4ff1dcf99bff";

fn embedded() -> Function {
    Function::embedded(POINTS)
}

async fn dynamodb() -> Option<Function> {
    Function::dynamodb(POINTS, &[Table { variable: "POINTS_TABLE", partition_key: "customerId", sort_key: Some("sk") }]).await
}

fn balance(env: &Function, customer: &str) -> Value {
    let run = env.run(&["balance", customer]);
    assert_eq!(run.code, Some(0), "{run:?}");
    run.json()
}

fn entry(order: &str, points: i64, event: &str, kind: &str) -> Value {
    json!({"orderId": order, "points": points, "eventId": event, "kind": kind})
}

async fn clean_batch_accrues_one_percent_once(env: Function) {
    let first = env.replay(CLEAN);
    assert!(first.failures().is_empty(), "{first:?}");
    let expected = json!({
        "customerId": "CUST-42",
        "balance": 890 + 1780,
        "ledger": [entry("ORD-1001", 890, ORD_1001_PLACED, "accrual"), entry("ORD-1003", 1780, ORD_1003_PLACED, "accrual")],
    });
    assert_eq!(balance(&env, "CUST-42"), expected);
    assert_eq!(balance(&env, "CUST-7")["balance"], 620, "floor(62000 × 0.01)");

    let second = env.replay(CLEAN);
    assert!(second.stderr.contains("totals: 0 processed, 3 duplicate"), "{}", second.stderr);
    assert_eq!(balance(&env, "CUST-42"), expected, "a second replay accrues nothing");
}

e2e::on_both_stores!(clean_batch_accrues_one_percent_once, super::embedded(), super::dynamodb());

async fn duplicates_accrue_once_and_malformed_bodies_fail(env: Function) {
    let ids = message_ids(DUPLICATE_AND_MALFORMED);
    let run = env.replay(DUPLICATE_AND_MALFORMED);
    assert_eq!(run.failures(), [ids[2].clone()]);
    assert!(run.stderr.contains(&format!("{}  duplicate (skipped)", ids[1])), "{}", run.stderr);
    assert_eq!(balance(&env, "CUST-42")["balance"], 890);
    assert_eq!(balance(&env, "CUST-7")["balance"], 620);
}

e2e::on_both_stores!(duplicates_accrue_once_and_malformed_bodies_fail, super::embedded(), super::dynamodb());

async fn cancellation_reverses_exactly_the_accrual(env: Function) {
    env.replay(CLEAN);
    let run = env.replay(ORDER_THEN_CANCEL);
    assert!(run.failures().is_empty());
    let account = balance(&env, "CUST-42");
    assert_eq!(account["balance"], 1780, "ORD-1001's 890 points are reversed, ORD-1003's stay");
    assert_eq!(account["ledger"].as_array().unwrap().len(), 3);
    assert!(account["ledger"].as_array().unwrap().iter().any(|e| e["points"] == -890 && e["kind"] == "reversal"));

    env.replay(ORDER_THEN_CANCEL);
    assert_eq!(balance(&env, "CUST-42")["balance"], 1780, "reversing twice would take more than was accrued");
}

e2e::on_both_stores!(cancellation_reverses_exactly_the_accrual, super::embedded(), super::dynamodb());

#[test]
fn a_cancellation_before_the_order_blocks_a_later_accrual() {
    let env = embedded();
    // The same two records, cancellation first (as after a redrive from the DLQ).
    let file = e2e::reversed_event(ORDER_THEN_CANCEL);
    let run = env.replay(file.path().to_str().unwrap());
    assert!(run.failures().is_empty());
    assert!(run.stderr.contains("the order accrued no points; nothing to reverse"), "{}", run.stderr);
    assert!(run.stderr.contains("the order was cancelled before its points were accrued"), "{}", run.stderr);
    assert_eq!(balance(&env, "CUST-42")["balance"], 0);
}

#[test]
fn the_rate_comes_from_points_rate() {
    let env = embedded();
    let run = env.run_with(&["replay", CLEAN], &[("POINTS_RATE", "0.05")]);
    assert_eq!(run.code, Some(0));
    assert_eq!(balance(&env, "CUST-7")["balance"], 3100, "floor(62000 × 0.05)");

    let bad = env.run_with(&["replay", CLEAN], &[("POINTS_RATE", "five percent")]);
    assert_eq!(bad.code, Some(2), "a wrong setting is bad input: {bad:?}");
    assert!(bad.stdout.is_empty());
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
    assert!(bad.stderr.contains(r#"POINTS_RATE "five percent" is not a non-negative decimal"#), "{}", bad.stderr);
}

#[test]
fn in_lambda_a_bad_points_rate_fails_the_init_with_the_reason() {
    // The Runtime API is never reached: the function stops while it builds its handler.
    let lambda = [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
        ("AWS_REGION", "ap-northeast-2"),
        ("IDEMPOTENCY_TABLE", "orders-idempotency"),
        ("POINTS_TABLE", "orders-points"),
        ("POINTS_RATE", "five percent"),
    ];
    let run = e2e::run(POINTS.as_ref(), std::iter::empty::<&str>(), &lambda);
    assert_eq!(run.code, Some(1), "{run:?}");
    let logged = format!("{}{}", run.stdout, run.stderr);
    assert!(logged.contains(r#""message":"the function stopped""#), "{logged}");
    assert!(logged.contains(r#"POINTS_RATE \"five percent\" is not a non-negative decimal"#), "{logged}");
}

async fn crashes_around_the_commit_neither_lose_nor_double(env: Function) {
    let before = env.run_with(&["replay", CLEAN], &[("SQS_KIT_FAULT", &format!("crash-before-commit:{ORD_1003_PLACED}"))]);
    assert_ne!(before.code, Some(0), "{before:?}");
    let after = env.run_with(&["replay", CLEAN], &[("SQS_KIT_FAULT", &format!("crash-after-commit:{ORD_1003_PLACED}"))]);
    assert_ne!(after.code, Some(0), "{after:?}");
    let retry = env.replay(CLEAN);
    assert!(retry.failures().is_empty());
    assert_eq!(balance(&env, "CUST-42")["balance"], 890 + 1780, "every order accrued exactly once");
}

e2e::on_both_stores!(crashes_around_the_commit_neither_lose_nor_double, super::embedded(), super::dynamodb());

#[test]
fn a_customer_without_points_has_an_empty_account() {
    assert_eq!(balance(&embedded(), "CUST-NEW"), json!({"customerId": "CUST-NEW", "balance": 0, "ledger": []}));
}

/// An SQS event of `bodies` on a standard queue, in a temporary file.
fn event_file(bodies: &[Value]) -> tempfile::NamedTempFile {
    e2e::event_file(bodies, "arn:aws:sqs:ap-northeast-2:123456789012:orders-points")
}

/// A placed order of one item at `total`.
fn order(n: usize, customer_id: &str, total: i64) -> Value {
    let mut body = e2e::generated_order(0, &format!("event-{n}"), &format!("ORD-{n}"), customer_id);
    body["items"] = json!([{"sku": "SKU-GOLD", "quantity": 1, "unitPrice": total}]);
    body["totalAmount"] = json!(total);
    body
}

/// Three orders whose points add up past what an i64 holds: the one that would overflow the
/// balance fails permanently, and the balance stays an exact integer that `balance` prints.
async fn a_balance_that_would_overflow_fails_the_order_and_stays_exact(env: Function) {
    const TOTAL: i64 = 4_000_000_000_000_000_000;
    let file = event_file(&[order(1, "CUST-RICH", TOTAL), order(2, "CUST-RICH", TOTAL), order(3, "CUST-RICH", TOTAL)]);
    let run = env.run_with(&["replay", file.path().to_str().unwrap()], &[("POINTS_RATE", "1")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.failures().len(), 1, "{run:?}");
    assert!(run.stderr.contains("failed (permanent): order ORD-"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("adding {TOTAL} points would take customer CUST-RICH's balance past what a balance can hold")),
        "{}",
        run.stderr
    );
    let account = balance(&env, "CUST-RICH");
    assert_eq!(account["balance"], json!(2 * TOTAL), "{account}");
    assert_eq!(account["ledger"].as_array().unwrap().len(), 2, "the failed order left no entry: {account}");
}

e2e::on_both_stores!(a_balance_that_would_overflow_fails_the_order_and_stays_exact, super::embedded(), super::dynamodb());

#[test]
fn points_an_i64_cannot_hold_fail_the_order_permanently() {
    let env = embedded();
    let file = event_file(&[order(1, "CUST-RICH", i64::MAX)]);
    let run = env.run_with(&["replay", file.path().to_str().unwrap()], &[("POINTS_RATE", "1.5")]);
    assert_eq!(run.failures().len(), 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "failed (permanent): order ORD-1: totalAmount {} at POINTS_RATE 1.5 earns more points than a balance can hold",
            i64::MAX
        )),
        "{}",
        run.stderr
    );
    assert_eq!(balance(&env, "CUST-RICH")["balance"], 0);
}

/// A key DynamoDB would refuse fails permanently, naming the limit, on every store; it is not
/// retried into the dead-letter queue on one and accepted on the other.
async fn ids_longer_than_dynamodb_keys_fail_permanently_naming_the_limit(env: Function) {
    let long = "x".repeat(100 * 1024);
    let mut long_order = order(1, "CUST-42", 1000);
    long_order["orderId"] = json!(long);
    let file = event_file(&[long_order, order(2, &long, 1000)]);
    let run = env.replay(file.path().to_str().unwrap());
    assert_eq!(run.failures(), ["message-0", "message-1"], "{run:?}");
    assert!(run.stderr.contains("totals: 0 processed, 0 duplicate, 2 failed (0 transient, 2 permanent)"), "{}", run.stderr);
    assert!(
        run.stderr.contains("field `orderId` is 102400 bytes long; at most 1008 are accepted, so that the points ledger's sort key"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("field `customerId` is 102400 bytes long; at most 2048 are accepted"), "{}", run.stderr);
    assert!(run.stderr.len() < 10_000, "the ids are not repeated: {} bytes", run.stderr.len());
}

e2e::on_both_stores!(ids_longer_than_dynamodb_keys_fail_permanently_naming_the_limit, super::embedded(), super::dynamodb());
