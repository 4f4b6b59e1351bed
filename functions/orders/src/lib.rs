//! The order events every function of the pipeline consumes.
//!
//! An [`OrderEvent`] can only be obtained valid: deserialization runs [`OrderEvent::validate`],
//! so a handler that takes an `OrderEvent` never sees an empty order, a non-positive quantity
//! or a total that disagrees with its items. Such a body is a poison message: retrying it
//! cannot help, so the batch layer reports it as a permanent failure with the reason below.

use serde::{Deserialize, Serialize};

pub mod config;
pub mod limits;
pub mod sample;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    OrderPlaced,
    OrderCancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    pub sku: String,
    pub quantity: i64,
    /// In the currency's minor unit.
    pub unit_price: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

/// One order event. Unknown fields are ignored, so producers can add fields first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "UncheckedOrderEvent")]
pub struct OrderEvent {
    pub event_id: String,
    pub event_type: EventType,
    /// RFC 3339 timestamp, as the producer wrote it.
    pub occurred_at: String,
    pub order_id: String,
    pub customer_id: String,
    pub customer_email: String,
    pub items: Vec<LineItem>,
    /// In the currency's minor unit; equals the sum of quantity × unit price.
    pub total_amount: i64,
    /// ISO 4217 code, e.g. `KRW`.
    pub currency: String,
    pub shipping_address: Address,
}

/// What is wrong with an order event, in words an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOrder {
    #[error("field `{0}` is empty")]
    EmptyField(&'static str),
    #[error("the order has no items")]
    NoItems,
    #[error("item {index} ({sku}) has quantity {quantity}; quantities must be positive")]
    NonPositiveQuantity { index: usize, sku: String, quantity: i64 },
    #[error("item {index} ({sku}) has a negative unit price {unit_price}")]
    NegativePrice { index: usize, sku: String, unit_price: i64 },
    #[error("totalAmount {stated} does not match the items, which add up to {computed}")]
    TotalMismatch { stated: i64, computed: i64 },
    #[error("the items' amounts overflow")]
    AmountOverflow,
    #[error("the quantities of {sku} add up past {max}, the largest quantity a store can hold", max = i64::MAX)]
    QuantityOverflow { sku: String },
    #[error("field `{field}` is {bytes} bytes long; at most {limit} are accepted, {why}")]
    TooLong { field: &'static str, bytes: usize, limit: usize, why: &'static str },
    #[error("the order's {what} take {bytes} bytes; at most {limit} are accepted, {why}", why = limits::ITEM_LIMIT)]
    TooLarge { what: &'static str, bytes: usize, limit: usize },
    #[error("currency `{0}` is not a three-letter ISO 4217 code")]
    BadCurrency(String),
    #[error("customerEmail is not an e-mail address")]
    BadEmail,
}

/// One SKU's total quantity in an order: the unit that stock is reserved and released in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub quantity: i64,
}

impl OrderEvent {
    /// The order's quantities per SKU, items of the same SKU added up, sorted by SKU (so that
    /// transactions touch each stock item once, in a stable order). Validation refuses an order
    /// whose quantities of one SKU overflow; for an order built by hand, they saturate.
    pub fn lines(&self) -> Vec<Line> {
        self.lines_with(|total, quantity| Some(total.saturating_add(quantity))).expect("saturating sums never overflow")
    }

    fn lines_with(&self, add: impl Fn(i64, i64) -> Option<i64>) -> Result<Vec<Line>, InvalidOrder> {
        let mut totals = std::collections::BTreeMap::<&str, i64>::new();
        for item in &self.items {
            let total = totals.entry(item.sku.as_str()).or_default();
            *total = add(*total, item.quantity).ok_or_else(|| InvalidOrder::QuantityOverflow { sku: item.sku.clone() })?;
        }
        Ok(totals.into_iter().map(|(sku, quantity)| Line { sku: sku.to_owned(), quantity }).collect())
    }

    /// The limits of [`limits`]: what the functions derive keys and items from must fit
    /// DynamoDB's, so that an order accepted by one store is accepted by every store.
    fn check_sizes(&self) -> Result<(), InvalidOrder> {
        let keys = [
            ("eventId", &self.event_id, limits::MAX_EVENT_ID_BYTES, limits::EVENT_ID_LIMIT),
            ("orderId", &self.order_id, limits::MAX_ORDER_ID_BYTES, limits::ORDER_ID_LIMIT),
            ("customerId", &self.customer_id, limits::MAX_CUSTOMER_ID_BYTES, limits::CUSTOMER_ID_LIMIT),
        ];
        let skus = self.items.iter().map(|item| ("items[].sku", &item.sku, limits::MAX_SKU_BYTES, limits::SKU_LIMIT));
        for (field, value, limit, why) in keys.into_iter().chain(skus) {
            if value.len() > limit {
                return Err(InvalidOrder::TooLong { field, bytes: value.len(), limit, why });
            }
        }
        let address = &self.shipping_address;
        let address_bytes: usize = [&address.name, &address.line1, &address.city, &address.postal_code, &address.country]
            .into_iter()
            .chain(&address.line2)
            .map(String::len)
            .sum();
        if address_bytes > limits::MAX_STORED_BYTES {
            return Err(InvalidOrder::TooLarge { what: "shippingAddress fields", bytes: address_bytes, limit: limits::MAX_STORED_BYTES });
        }
        let lines = self.lines_with(i64::checked_add)?;
        let lines_bytes = serde_json::to_string(&lines).expect("lines serialize").len();
        if lines_bytes > limits::MAX_STORED_BYTES {
            return Err(InvalidOrder::TooLarge { what: "items (by SKU, as JSON)", bytes: lines_bytes, limit: limits::MAX_STORED_BYTES });
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), InvalidOrder> {
        let required = [
            ("eventId", &self.event_id),
            ("occurredAt", &self.occurred_at),
            ("orderId", &self.order_id),
            ("customerId", &self.customer_id),
            ("customerEmail", &self.customer_email),
            ("shippingAddress.name", &self.shipping_address.name),
            ("shippingAddress.line1", &self.shipping_address.line1),
            ("shippingAddress.city", &self.shipping_address.city),
            ("shippingAddress.country", &self.shipping_address.country),
        ];
        if let Some((field, _)) = required.iter().find(|(_, value)| value.trim().is_empty()) {
            return Err(InvalidOrder::EmptyField(field));
        }
        if self.items.is_empty() {
            return Err(InvalidOrder::NoItems);
        }
        let mut computed: i64 = 0;
        for (index, item) in self.items.iter().enumerate() {
            if item.sku.trim().is_empty() {
                return Err(InvalidOrder::EmptyField("items[].sku"));
            }
            if item.quantity <= 0 {
                return Err(InvalidOrder::NonPositiveQuantity { index, sku: item.sku.clone(), quantity: item.quantity });
            }
            if item.unit_price < 0 {
                return Err(InvalidOrder::NegativePrice { index, sku: item.sku.clone(), unit_price: item.unit_price });
            }
            computed = item
                .quantity
                .checked_mul(item.unit_price)
                .and_then(|amount| computed.checked_add(amount))
                .ok_or(InvalidOrder::AmountOverflow)?;
        }
        if computed != self.total_amount {
            return Err(InvalidOrder::TotalMismatch { stated: self.total_amount, computed });
        }
        self.check_sizes()?;
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(InvalidOrder::BadCurrency(self.currency.clone()));
        }
        let at = self.customer_email.find('@');
        if !at.is_some_and(|at| at > 0 && at + 1 < self.customer_email.len()) {
            return Err(InvalidOrder::BadEmail);
        }
        Ok(())
    }
}

/// The wire shape before validation; [`OrderEvent`] deserializes through it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UncheckedOrderEvent {
    event_id: String,
    event_type: EventType,
    occurred_at: String,
    order_id: String,
    customer_id: String,
    customer_email: String,
    items: Vec<LineItem>,
    total_amount: i64,
    currency: String,
    shipping_address: Address,
}

impl TryFrom<UncheckedOrderEvent> for OrderEvent {
    type Error = InvalidOrder;

    fn try_from(raw: UncheckedOrderEvent) -> Result<Self, InvalidOrder> {
        let event = OrderEvent {
            event_id: raw.event_id,
            event_type: raw.event_type,
            occurred_at: raw.occurred_at,
            order_id: raw.order_id,
            customer_id: raw.customer_id,
            customer_email: raw.customer_email,
            items: raw.items,
            total_amount: raw.total_amount,
            currency: raw.currency,
            shipping_address: raw.shipping_address,
        };
        event.validate()?;
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn sample() -> Value {
        json!({
            "eventId": "8c1f6d0e-5d3a-4c55-9a57-1f2b8f0c4a11",
            "eventType": "OrderPlaced",
            "occurredAt": "2026-11-24T09:00:00Z",
            "orderId": "ORD-1001",
            "customerId": "CUST-42",
            "customerEmail": "minji@example.com",
            "items": [{"sku": "SKU-KEYBOARD", "quantity": 1, "unitPrice": 89000}],
            "totalAmount": 89000,
            "currency": "KRW",
            "shippingAddress": {"name": "Minji Kim", "line1": "12 Teheran-ro", "city": "Seoul", "postalCode": "06236", "country": "KR"},
            "channel": "web"
        })
    }

    fn reason(body: Value) -> String {
        serde_json::from_value::<OrderEvent>(body).unwrap_err().to_string()
    }

    #[test]
    fn the_design_sample_is_valid_and_unknown_fields_are_ignored() {
        let event: OrderEvent = serde_json::from_value(sample()).unwrap();
        assert_eq!(event.event_type, EventType::OrderPlaced);
        assert_eq!(event.items[0].quantity, 1);
    }

    #[test]
    fn missing_required_field_is_named() {
        let mut body = sample();
        body.as_object_mut().unwrap().remove("orderId");
        assert_eq!(reason(body), "missing field `orderId`");
    }

    #[test]
    fn business_rules_are_enforced_with_readable_reasons() {
        let mut body = sample();
        body["items"] = json!([]);
        assert_eq!(reason(body), "the order has no items");

        let mut body = sample();
        body["items"][0]["quantity"] = json!(0);
        assert_eq!(reason(body), "item 0 (SKU-KEYBOARD) has quantity 0; quantities must be positive");

        let mut body = sample();
        body["totalAmount"] = json!(1);
        assert_eq!(reason(body), "totalAmount 1 does not match the items, which add up to 89000");

        let mut body = sample();
        body["eventType"] = json!("OrderShipped");
        assert!(reason(body).contains("unknown variant `OrderShipped`"));

        let mut body = sample();
        body["currency"] = json!("won");
        assert_eq!(reason(body), "currency `won` is not a three-letter ISO 4217 code");

        let mut body = sample();
        body["customerEmail"] = json!("minji");
        assert_eq!(reason(body), "customerEmail is not an e-mail address");

        let mut body = sample();
        body["items"][0]["quantity"] = json!(i64::MAX);
        body["items"][0]["unitPrice"] = json!(2);
        assert_eq!(reason(body), "the items' amounts overflow");
    }

    #[test]
    fn keys_longer_than_dynamodb_takes_are_refused_naming_the_limit() {
        let fields: [(&str, usize, &str); 4] = [
            ("eventId", limits::MAX_EVENT_ID_BYTES, "2048-byte partition key limit"),
            ("orderId", limits::MAX_ORDER_ID_BYTES, "LEDGER#<orderId>#REVERSAL fits DynamoDB's 1024-byte sort key limit"),
            ("customerId", limits::MAX_CUSTOMER_ID_BYTES, "2048-byte partition key limit"),
            ("sku", limits::MAX_SKU_BYTES, "SKU#<sku> fits DynamoDB's 2048-byte partition key limit"),
        ];
        let with = |field: &str, value: String| {
            let mut body = sample();
            match field {
                "sku" => body["items"][0]["sku"] = json!(value),
                _ => body[field] = json!(value),
            }
            body
        };
        for (field, limit, named) in fields {
            let at_limit = with(field, "é".repeat(limit / 2) + &"x".repeat(limit % 2));
            assert!(serde_json::from_value::<OrderEvent>(at_limit).is_ok(), "{field} of {limit} bytes is accepted");
            let reason = reason(with(field, "x".repeat(100 * 1024)));
            assert!(reason.contains(&format!("is 102400 bytes long; at most {limit} are accepted")), "{field}: {reason}");
            assert!(reason.contains(named), "{field}: {reason}");
            assert!(reason.len() < 300, "the reason does not repeat the value");
        }
        assert_eq!(limits::MAX_ORDER_ID_BYTES, 1008);
    }

    #[test]
    fn what_one_item_stores_must_fit_dynamodbs_item_limit() {
        let mut body = sample();
        body["shippingAddress"]["line2"] = json!("x".repeat(limits::MAX_STORED_BYTES));
        let address = reason(body);
        assert!(address.starts_with("the order's shippingAddress fields take"), "{address}");
        assert!(address.contains("DynamoDB's 400 KB item limit"), "{address}");

        // Each SKU fits its key; together, as the reservation stores them, they do not fit one item.
        let mut body = sample();
        let items: Vec<Value> =
            (0..200).map(|i| json!({"sku": format!("{i:04}{}", "x".repeat(2000)), "quantity": 1, "unitPrice": 0})).collect();
        body["items"] = json!(items);
        body["totalAmount"] = json!(0);
        let lines = reason(body);
        assert!(lines.starts_with("the order's items (by SKU, as JSON) take"), "{lines}");
    }

    #[test]
    fn quantities_of_one_sku_must_not_overflow() {
        let mut body = sample();
        body["items"] = json!([
            {"sku": "SKU-FREE", "quantity": i64::MAX, "unitPrice": 0},
            {"sku": "SKU-FREE", "quantity": 1, "unitPrice": 0},
        ]);
        body["totalAmount"] = json!(0);
        assert_eq!(reason(body), format!("the quantities of SKU-FREE add up past {}, the largest quantity a store can hold", i64::MAX));
    }
}
