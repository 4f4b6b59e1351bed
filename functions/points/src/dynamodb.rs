//! Balances and ledger entries in the DynamoDB table named by `POINTS_TABLE` (partition key
//! `customerId`, sort key `sk`): the balance at `BALANCE`, entries at
//! `LEDGER#<orderId>#ACCRUAL` and `LEDGER#<orderId>#REVERSAL`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ConditionCheck, Put, Update};
use aws_sdk_dynamodb::Client;
use orders::config;
use sqs_kit::store::attributes::{n, number, s, text, Item};
use sqs_kit::store::BusinessWrite;

use crate::domain::{Account, EntryKind, LedgerEntry, PointsPort};

const BALANCE: &str = "BALANCE";

pub struct DynamoDbPoints {
    client: Client,
    table: String,
}

fn sort_key(order_id: &str, kind: EntryKind) -> String {
    format!("LEDGER#{order_id}#{}", kind.as_str())
}

impl DynamoDbPoints {
    pub fn from_env(client: Client) -> anyhow::Result<Self> {
        let table = config::required(config::POINTS_TABLE, "the DynamoDB points table")?;
        Ok(Self::new(client, table))
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

#[async_trait]
impl PointsPort for DynamoDbPoints {
    fn post(&self, entry: &LedgerEntry, counterpart_exists: bool) -> Vec<BusinessWrite> {
        let put = Put::builder()
            .table_name(&self.table)
            .item("customerId", s(&entry.customer_id))
            .item("sk", s(&sort_key(&entry.order_id, entry.kind)))
            .item("orderId", s(&entry.order_id))
            .item("eventId", s(&entry.event_id))
            .item("kind", s(entry.kind.as_str()))
            .item("points", n(entry.points))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .expect("table and item are set");
        let counterpart = ConditionCheck::builder()
            .table_name(&self.table)
            .key("customerId", s(&entry.customer_id))
            .key("sk", s(&sort_key(&entry.order_id, entry.kind.counterpart())))
            .condition_expression(if counterpart_exists { "attribute_exists(sk)" } else { "attribute_not_exists(sk)" })
            .build()
            .expect("table, key and condition are set");
        // DynamoDB numbers hold 38 digits; the balance is read back into an i64, so the sum
        // must stay within one. The bound is computed here, where it cannot overflow.
        let (within, bound) = match entry.points {
            points if points >= 0 => ("balance <= :bound", i64::MAX - points),
            points => ("balance >= :bound", i64::MIN - points),
        };
        let add = Update::builder()
            .table_name(&self.table)
            .key("customerId", s(&entry.customer_id))
            .key("sk", s(BALANCE))
            .update_expression("ADD balance :points")
            .condition_expression(format!("attribute_not_exists(balance) OR {within}"))
            .expression_attribute_values(":points", n(entry.points))
            .expression_attribute_values(":bound", n(bound))
            .build()
            .expect("table, key and expression are set");
        // In the order the port promises: the index of a failed condition tells the domain
        // which rule held.
        vec![BusinessWrite::put(put), BusinessWrite::condition_check(counterpart), BusinessWrite::update(add)]
    }

    async fn entry(&self, customer_id: &str, order_id: &str, kind: EntryKind) -> anyhow::Result<Option<LedgerEntry>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("customerId", s(customer_id))
            .key("sk", s(&sort_key(order_id, kind)))
            .consistent_read(true)
            .send()
            .await?;
        Ok(output.item().map(|item| entry_from_item(customer_id, item)))
    }

    async fn account(&self, customer_id: &str) -> anyhow::Result<Account> {
        let mut account = Account { customer_id: customer_id.to_owned(), balance: 0, ledger: Vec::new() };
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("customerId = :customer")
            .expression_attribute_values(":customer", s(customer_id))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item?;
            if text(&item, "sk") == Some(BALANCE) {
                account.balance = number(&item, "balance").unwrap_or(0);
            } else {
                account.ledger.push(entry_from_item(customer_id, &item));
            }
        }
        Ok(account)
    }
}

fn entry_from_item(customer_id: &str, item: &Item) -> LedgerEntry {
    let field = |name: &str| text(item, name).unwrap_or_default();
    LedgerEntry {
        customer_id: customer_id.to_owned(),
        order_id: field("orderId").to_owned(),
        points: number(item, "points").unwrap_or(0),
        event_id: field("eventId").to_owned(),
        kind: EntryKind::parse(field("kind")).unwrap_or(EntryKind::Accrual),
    }
}

#[cfg(test)]
mod tests {
    use orders::limits::{MAX_ORDER_ID_BYTES, MAX_SORT_KEY_BYTES};

    use super::*;

    #[test]
    fn the_longest_accepted_order_id_fits_the_sort_key() {
        let order_id = "x".repeat(MAX_ORDER_ID_BYTES);
        for kind in [EntryKind::Accrual, EntryKind::Reversal] {
            assert!(sort_key(&order_id, kind).len() <= MAX_SORT_KEY_BYTES, "{kind:?}");
        }
        assert_eq!(sort_key(&order_id, EntryKind::Reversal).len(), MAX_SORT_KEY_BYTES, "the limit is not needlessly tight");
    }
}
