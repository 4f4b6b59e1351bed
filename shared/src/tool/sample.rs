//! Generated order events for `publish --count`: valid `OrderPlaced` events with
//! fresh event ids, spread over a few customers, with consistent totals.

use serde_json::{json, Value};

use super::aws::{fresh_uuid, now_ms, rfc3339_ms, sha256_hex};

/// The customers generated orders are spread over: (customer id, e-mail, name).
const CUSTOMERS: [(&str, &str, &str); 5] = [
    ("CUST-42", "minji@example.com", "Minji Kim"),
    ("CUST-7", "joon@example.com", "Joon Park"),
    ("CUST-9", "seo@example.com", "Seo-yeon Lee"),
    ("CUST-13", "hana@example.com", "Hana Choi"),
    ("CUST-21", "tae@example.com", "Tae-ho Yoon"),
];

/// The catalogue: (SKU, unit price in KRW, the currency's minor unit).
const PRODUCTS: [(&str, i64); 3] = [("SKU-KEYBOARD", 89_000), ("SKU-MOUSE", 25_000), ("SKU-PAD", 12_000)];

/// `count` order events for orders `ORD-<first>`, `ORD-<first + 1>`, ...; customers take turns,
/// items and quantities vary from order to order.
pub(super) fn orders(count: usize, first: u64) -> Vec<Value> {
    let occurred_at = rfc3339_ms(now_ms() / 1000 * 1000).replace(".000Z", "Z");
    (0..count).map(|index| order(index, first + index as u64, &occurred_at)).collect()
}

fn order(index: usize, number: u64, occurred_at: &str) -> Value {
    let (customer_id, email, name) = CUSTOMERS[index % CUSTOMERS.len()];
    // A stable spread of items per order number: one to three distinct SKUs, 1 to 3 of each.
    let dice = sha256_hex(number.to_string().as_bytes()).into_bytes();
    let lines = 1 + usize::from(dice[0]) % PRODUCTS.len();
    let start = usize::from(dice[1]) % PRODUCTS.len();
    let items: Vec<Value> = (0..lines)
        .map(|line| {
            let (sku, unit_price) = PRODUCTS[(start + line) % PRODUCTS.len()];
            let quantity = 1 + i64::from(dice[2 + line]) % 3;
            json!({"sku": sku, "quantity": quantity, "unitPrice": unit_price})
        })
        .collect();
    let total: i64 = items.iter().map(|item| item["quantity"].as_i64().unwrap() * item["unitPrice"].as_i64().unwrap()).sum();
    json!({
        "eventId": fresh_uuid(),
        "eventType": "OrderPlaced",
        "occurredAt": occurred_at,
        "orderId": format!("ORD-{number}"),
        "customerId": customer_id,
        "customerEmail": email,
        "items": items,
        "totalAmount": total,
        "currency": "KRW",
        "shippingAddress": {"name": name, "line1": "12 Teheran-ro", "city": "Seoul", "postalCode": "06236", "country": "KR"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_orders_are_valid_and_distinct() {
        let orders = orders(12, 1001);
        assert_eq!(orders.len(), 12);
        let mut event_ids: Vec<&str> = orders.iter().map(|o| o["eventId"].as_str().unwrap()).collect();
        event_ids.sort();
        event_ids.dedup();
        assert_eq!(event_ids.len(), 12);
        assert_eq!(orders[0]["orderId"], "ORD-1001");
        assert_eq!(orders[11]["orderId"], "ORD-1012");
        let customers: std::collections::BTreeSet<&str> = orders.iter().map(|o| o["customerId"].as_str().unwrap()).collect();
        assert_eq!(customers.len(), CUSTOMERS.len());
        for order in &orders {
            let items = order["items"].as_array().unwrap();
            assert!(!items.is_empty());
            let total: i64 = items.iter().map(|i| i["quantity"].as_i64().unwrap() * i["unitPrice"].as_i64().unwrap()).sum();
            assert_eq!(order["totalAmount"].as_i64(), Some(total));
            assert!(items.iter().all(|i| i["quantity"].as_i64().unwrap() > 0));
            assert!(order["occurredAt"].as_str().unwrap().ends_with('Z'));
        }
    }
}
