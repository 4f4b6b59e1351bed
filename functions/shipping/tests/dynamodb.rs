//! `shipping` on DynamoDB (the local AWS API that `scripts/with-moto` starts): the same
//! scenarios as on the embedded store, then the tables read back with the SDK. Skipped when
//! `AWS_ENDPOINT_URL` is not set.

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use common::{expected_tracking_number, Shipping, CANCELLED_1001, PLACED_1001};

/// Fresh tables and the binary pointed at them, or `None` (skip) without a local AWS API.
async fn on_dynamodb() -> Option<(Shipping, Client, String, String)> {
    let config = e2e::local_aws().await?;
    let idempotency = e2e::idempotency_table(&config).await;
    let shipments = e2e::unique_name("shipments");
    e2e::create_table(&config, &shipments, "orderId", None).await;
    Some((Shipping::dynamodb(&idempotency, &shipments), Client::new(&config), idempotency, shipments))
}

type Item = HashMap<String, AttributeValue>;

async fn items(client: &Client, table: &str) -> Vec<Item> {
    let scanned = client.scan().table_name(table).consistent_read(true).send().await.unwrap();
    scanned.items().to_vec()
}

async fn shipment(client: &Client, table: &str, order_id: &str) -> Item {
    let output =
        client.get_item().table_name(table).key("orderId", AttributeValue::S(order_id.into())).consistent_read(true).send().await.unwrap();
    output.item().cloned().unwrap_or_else(|| panic!("no item for {order_id} in {table}"))
}

fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// The idempotency record of `event_id`: its status and stored outcome.
async fn idempotency_result(client: &Client, table: &str, event_id: &str) -> (String, serde_json::Value) {
    let output = client
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S(format!("shipping#{event_id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = output.item().unwrap_or_else(|| panic!("no idempotency record for {event_id}"));
    let result = s(item, "result").map(|text| serde_json::from_str(text).unwrap()).unwrap_or_default();
    (s(item, "status").unwrap().to_owned(), result)
}

#[tokio::test]
async fn a_clean_batch_creates_one_item_per_order_once() {
    let Some((shipping, client, idempotency, shipments)) = on_dynamodb().await else { return };
    common::clean_batch(&shipping);

    let items = items(&client, &shipments).await;
    assert_eq!(items.len(), 3, "{items:?}");
    let item = shipment(&client, &shipments, "ORD-1001").await;
    assert_eq!(s(&item, "status"), Some("CREATED"));
    assert_eq!(s(&item, "trackingNumber"), Some(expected_tracking_number("ORD-1001").as_str()));
    assert_eq!(s(&item, "eventId"), Some(PLACED_1001));
    let address = item.get("address").and_then(|v| v.as_m().ok()).expect("the address is a map");
    assert_eq!(s(address, "city"), Some("Seoul"));
    assert_eq!(s(address, "postalCode"), Some("06236"));
    assert!(!item.contains_key("customerEmail"), "shipping keeps no e-mail address: {item:?}");

    let (status, result) = idempotency_result(&client, &idempotency, PLACED_1001).await;
    assert_eq!(status, "COMPLETED");
    assert_eq!(result["outcome"], "created");
    assert_eq!(result["trackingNumber"], expected_tracking_number("ORD-1001"));
}

#[tokio::test]
async fn a_duplicate_creates_nothing_and_only_the_malformed_body_fails() {
    let Some((shipping, client, _, shipments)) = on_dynamodb().await else { return };
    common::duplicate_and_malformed(&shipping);
    let mut orders: Vec<String> = items(&client, &shipments).await.iter().map(|i| s(i, "orderId").unwrap().to_owned()).collect();
    orders.sort();
    assert_eq!(orders, ["ORD-1001", "ORD-1002"]);
}

#[tokio::test]
async fn an_order_then_its_cancellation_ends_cancelled() {
    let Some((shipping, client, _, shipments)) = on_dynamodb().await else { return };
    common::order_then_cancel(&shipping);
    let item = shipment(&client, &shipments, "ORD-1001").await;
    assert_eq!(s(&item, "status"), Some("CANCELLED"));
    assert_eq!(s(&item, "cancelEventId"), Some(CANCELLED_1001));
    assert_eq!(items(&client, &shipments).await.len(), 1);
}

#[tokio::test]
async fn a_cancellation_before_the_order_keeps_it_from_creating_a_shipment() {
    let Some((shipping, client, idempotency, shipments)) = on_dynamodb().await else { return };
    common::cancellation_before_placement(&shipping);

    let tombstone = shipment(&client, &shipments, "ORD-1001").await;
    assert_eq!(s(&tombstone, "status"), Some("CANCELLED"));
    assert_eq!(s(&tombstone, "eventId"), Some(CANCELLED_1001));
    assert_eq!(s(&tombstone, "cancelEventId"), Some(CANCELLED_1001));
    assert_eq!(s(&tombstone, "trackingNumber"), Some(expected_tracking_number("ORD-1001").as_str()));
    assert!(!tombstone.contains_key("address"), "a tombstone has nothing to deliver: {tombstone:?}");

    let (_, cancelled) = idempotency_result(&client, &idempotency, CANCELLED_1001).await;
    assert_eq!(cancelled["outcome"], "cancelled_before_creation");
    let (status, placed) = idempotency_result(&client, &idempotency, PLACED_1001).await;
    assert_eq!(status, "COMPLETED", "the late order is completed, not left to retry");
    assert_eq!(placed["outcome"], "not_created");
}

#[tokio::test]
async fn a_reversed_batch_ends_cancelled() {
    let Some((shipping, client, _, shipments)) = on_dynamodb().await else { return };
    common::reversed_batch(&shipping);
    assert_eq!(s(&shipment(&client, &shipments, "ORD-1001").await, "status"), Some("CANCELLED"));
}

#[tokio::test]
async fn a_cancellation_after_shipping_is_a_recorded_outcome() {
    let Some((shipping, client, idempotency, shipments)) = on_dynamodb().await else { return };
    common::cancel_after_shipping(&shipping);
    let item = shipment(&client, &shipments, "ORD-1001").await;
    assert_eq!(s(&item, "status"), Some("SHIPPED"));
    assert!(!item.contains_key("cancelEventId"), "{item:?}");
    let (status, result) = idempotency_result(&client, &idempotency, CANCELLED_1001).await;
    assert_eq!(status, "COMPLETED");
    assert_eq!(result["outcome"], "not_cancelled");
    assert_eq!(result["reason"], "already shipped; not cancelled");
}

#[tokio::test]
async fn status_of_an_unknown_order_is_one_clear_error() {
    let Some((shipping, _, _, shipments)) = on_dynamodb().await else { return };
    common::unknown_order(&shipping);
    let run = shipping.run(&["status", "ORD-404"]);
    assert!(run.stderr.contains(&format!("DynamoDB table {shipments}")), "{run:?}");
}

#[tokio::test]
async fn a_store_failure_is_retried_and_the_retry_creates_the_shipments() {
    let Some(config) = e2e::local_aws().await else { return };
    let idempotency = e2e::idempotency_table(&config).await;
    let shipments = e2e::unique_name("shipments");
    let shipping = Shipping::dynamodb(&idempotency, &shipments);

    // The shipments table does not exist yet: every record fails transiently, and each claim
    // is released so that the redelivery runs the handler again.
    let failed = shipping.replay(&common::sample("clean-batch.json"));
    assert_eq!(common::failures(&failed).len(), 3, "{failed:?}");
    assert!(failed.stderr.contains("failed (transient)"), "{}", failed.stderr);
    assert!(failed.stderr.contains(&format!("DynamoDB table {shipments}: cannot write the shipment of order")), "{}", failed.stderr);
    assert!(failed.stderr.contains("ResourceNotFoundException"), "{}", failed.stderr);

    e2e::create_table(&config, &shipments, "orderId", None).await;
    let retried = shipping.replay(&common::sample("clean-batch.json"));
    assert_eq!(common::failures(&retried), Vec::<String>::new(), "{retried:?}");
    assert!(retried.stderr.contains("totals: 3 processed, 0 duplicate"), "{}", retried.stderr);
    assert_eq!(shipping.status("ORD-1002")["status"], "CREATED");
}

#[tokio::test]
async fn oversized_keys_and_items_fail_permanently_naming_the_limit() {
    let Some((shipping, client, _, shipments)) = on_dynamodb().await else { return };
    common::oversized_keys_and_items(&shipping);
    assert!(items(&client, &shipments).await.is_empty(), "nothing was written");
}
