//! Stock and reservations in the DynamoDB table named by `STOCK_TABLE` (partition key `pk`):
//! stock items at `SKU#<sku>` with `available`, reservations at `ORDER#<orderId>`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, Update};
use aws_sdk_dynamodb::Client;
use orders::config;
use sqs_kit::store::attributes::{n, number, s, text};
use sqs_kit::store::BusinessWrite;

use crate::domain::{Reservation, ReservationStatus, StockLevel, StockPort};

pub struct DynamoDbStock {
    client: Client,
    table: String,
}

fn sku_key(sku: &str) -> AttributeValue {
    AttributeValue::S(format!("SKU#{sku}"))
}

fn order_key(order_id: &str) -> AttributeValue {
    AttributeValue::S(format!("ORDER#{order_id}"))
}

impl DynamoDbStock {
    pub fn from_env(client: Client) -> anyhow::Result<Self> {
        let table = config::required(config::STOCK_TABLE, "the DynamoDB stock table")?;
        Ok(Self { client, table })
    }

    fn put_reservation(&self, reservation: &Reservation) -> BusinessWrite {
        let mut item = HashMap::from([
            ("pk".to_owned(), order_key(&reservation.order_id)),
            ("orderId".to_owned(), s(&reservation.order_id)),
            ("eventId".to_owned(), s(&reservation.event_id)),
            ("status".to_owned(), s(reservation.status.as_str())),
            ("lines".to_owned(), s(&serde_json::to_string(&reservation.lines).expect("lines serialize"))),
        ]);
        if let Some(reason) = &reservation.reason {
            item.insert("reason".to_owned(), s(reason));
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table and item are set");
        BusinessWrite::put(put)
    }

    fn update(&self, key: AttributeValue, expression: &str, condition: Option<&str>, values: &[(&str, AttributeValue)]) -> BusinessWrite {
        let mut update = Update::builder().table_name(&self.table).key("pk", key).update_expression(expression);
        if let Some(condition) = condition {
            update = update.condition_expression(condition);
        }
        for (name, value) in values {
            update = update.expression_attribute_values(*name, value.clone());
        }
        if expression.contains("#status") || condition.is_some_and(|c| c.contains("#status")) {
            update = update.expression_attribute_names("#status", "status");
        }
        BusinessWrite::update(update.build().expect("table, key and expression are set"))
    }
}

#[async_trait]
impl StockPort for DynamoDbStock {
    fn reserve(&self, reservation: &Reservation) -> Vec<BusinessWrite> {
        let mut writes: Vec<BusinessWrite> = reservation
            .lines
            .iter()
            .map(|line| {
                self.update(
                    sku_key(&line.sku),
                    "SET available = available - :quantity",
                    Some("attribute_exists(pk) AND available >= :quantity"),
                    &[(":quantity", n(line.quantity))],
                )
            })
            .collect();
        writes.push(self.put_reservation(reservation));
        writes
    }

    fn record(&self, reservation: &Reservation) -> BusinessWrite {
        self.put_reservation(reservation)
    }

    fn release(&self, reservation: &Reservation) -> Vec<BusinessWrite> {
        let mut writes: Vec<BusinessWrite> = reservation
            .lines
            .iter()
            .map(|line| {
                // DynamoDB numbers hold 38 digits; levels are read back into an i64.
                self.update(
                    sku_key(&line.sku),
                    "SET sku = :sku ADD available :quantity",
                    Some("attribute_not_exists(available) OR available <= :ceiling"),
                    &[(":sku", s(&line.sku)), (":quantity", n(line.quantity)), (":ceiling", n(i64::MAX - line.quantity))],
                )
            })
            .collect();
        writes.push(self.update(
            order_key(&reservation.order_id),
            "SET #status = :released",
            Some("#status = :reserved"),
            &[(":released", s(ReservationStatus::Released.as_str())), (":reserved", s(ReservationStatus::Reserved.as_str()))],
        ));
        writes
    }

    async fn reservation(&self, order_id: &str) -> anyhow::Result<Option<Reservation>> {
        let output = self.client.get_item().table_name(&self.table).key("pk", order_key(order_id)).consistent_read(true).send().await?;
        let Some(item) = output.item() else { return Ok(None) };
        let status = text(item, "status").unwrap_or_default();
        Ok(Some(Reservation {
            order_id: order_id.to_owned(),
            event_id: text(item, "eventId").unwrap_or_default().to_owned(),
            status: ReservationStatus::parse(status).ok_or_else(|| anyhow::anyhow!("unknown reservation status {status:?}"))?,
            lines: serde_json::from_str(text(item, "lines").unwrap_or("[]"))?,
            reason: text(item, "reason").map(str::to_owned),
        }))
    }

    async fn level(&self, sku: &str) -> anyhow::Result<Option<i64>> {
        let output = self.client.get_item().table_name(&self.table).key("pk", sku_key(sku)).consistent_read(true).send().await?;
        Ok(output.item().and_then(|item| number(item, "available")))
    }

    async fn levels(&self) -> anyhow::Result<Vec<StockLevel>> {
        let mut levels = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :prefix)")
            .expression_attribute_values(":prefix", s("SKU#"))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item?;
            let sku = text(&item, "pk").and_then(|pk| pk.strip_prefix("SKU#")).unwrap_or_default();
            let available = number(&item, "available").unwrap_or(0);
            levels.push(StockLevel { sku: sku.to_owned(), available });
        }
        levels.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(levels)
    }

    async fn seed(&self, levels: &[StockLevel]) -> anyhow::Result<()> {
        for level in levels {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", sku_key(&level.sku))
                .item("sku", s(&level.sku))
                .item("available", n(level.available))
                .send()
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use orders::limits::{MAX_ORDER_ID_BYTES, MAX_PARTITION_KEY_BYTES, MAX_SKU_BYTES};

    use super::*;

    #[test]
    fn the_longest_accepted_ids_fit_the_partition_key() {
        let sku = sku_key(&"x".repeat(MAX_SKU_BYTES));
        assert_eq!(sku.as_s().unwrap().len(), MAX_PARTITION_KEY_BYTES, "the SKU limit is exactly what the key leaves");
        let order = order_key(&"x".repeat(MAX_ORDER_ID_BYTES));
        assert!(order.as_s().unwrap().len() <= MAX_PARTITION_KEY_BYTES);
    }
}
