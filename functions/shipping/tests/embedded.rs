//! `shipping` on the embedded store (SQLite in a fresh `--state` directory per test).

mod common;

use common::Shipping;

#[test]
fn a_clean_batch_creates_one_shipment_per_order_once() {
    common::clean_batch(&Shipping::embedded());
}

#[test]
fn a_duplicate_creates_nothing_and_only_the_malformed_body_fails() {
    common::duplicate_and_malformed(&Shipping::embedded());
}

#[test]
fn an_order_then_its_cancellation_ends_cancelled() {
    common::order_then_cancel(&Shipping::embedded());
}

#[test]
fn a_cancellation_before_the_order_keeps_it_from_creating_a_shipment() {
    common::cancellation_before_placement(&Shipping::embedded());
}

#[test]
fn a_reversed_batch_ends_cancelled() {
    common::reversed_batch(&Shipping::embedded());
}

#[test]
fn a_cancellation_after_shipping_is_a_recorded_outcome() {
    common::cancel_after_shipping(&Shipping::embedded());
}

#[test]
fn status_of_an_unknown_order_is_one_clear_error() {
    common::unknown_order(&Shipping::embedded());
}

#[test]
fn status_names_the_missing_table_variable_for_dynamodb() {
    let run = e2e::run(
        std::path::Path::new(env!("CARGO_BIN_EXE_shipping")),
        ["status", "ORD-1001", "--store", "dynamodb"],
        &[("IDEMPOTENCY_TABLE", "idempotency"), ("SHIPMENTS_TABLE", ""), ("AWS_REGION", "us-east-1")],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("SHIPMENTS_TABLE is not set"), "{run:?}");
}

#[test]
fn oversized_keys_and_items_fail_permanently_naming_the_limit() {
    common::oversized_keys_and_items(&Shipping::embedded());
}
