//! Sample orders to publish into the pipeline (the `sample-orders` binary prints them): valid
//! `OrderPlaced` events with fresh event ids, spread over a few customers, with items that vary
//! from order to order and totals that match them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{Address, EventType, LineItem, OrderEvent};

/// The most orders one call is asked for: they are built in memory before the first is printed.
pub const MAX_COUNT: u64 = 100_000;

/// The customers sample orders are spread over: (customer id, e-mail, name).
pub const CUSTOMERS: [(&str, &str, &str); 5] = [
    ("CUST-42", "minji@example.com", "Minji Kim"),
    ("CUST-7", "joon@example.com", "Joon Park"),
    ("CUST-9", "seo@example.com", "Seo-yeon Lee"),
    ("CUST-13", "hana@example.com", "Hana Choi"),
    ("CUST-21", "tae@example.com", "Tae-ho Yoon"),
];

/// The catalogue: (SKU, unit price in KRW, the currency's minor unit).
pub const PRODUCTS: [(&str, i64); 3] = [("SKU-KEYBOARD", 89_000), ("SKU-MOUSE", 25_000), ("SKU-PAD", 12_000)];

/// `count` orders `ORD-<first>`, `ORD-<first + 1>`, ...; customers take turns, and the items of
/// an order depend on its number alone.
pub fn orders(count: usize, first: u64) -> Vec<OrderEvent> {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("0 is a valid nanosecond");
    let occurred_at = now.format(&Rfc3339).expect("a UTC time formats as RFC 3339");
    (0..count).map(|index| order(index, first + index as u64, &occurred_at)).collect()
}

fn order(index: usize, number: u64, occurred_at: &str) -> OrderEvent {
    let (customer_id, email, name) = CUSTOMERS[index % CUSTOMERS.len()];
    // One to three distinct SKUs, 1 to 3 of each, the same for an order number every time.
    let dice = Sha256::digest(number.to_string().as_bytes());
    let lines = 1 + usize::from(dice[0]) % PRODUCTS.len();
    let start = usize::from(dice[1]) % PRODUCTS.len();
    let items: Vec<LineItem> = (0..lines)
        .map(|line| {
            let (sku, unit_price) = PRODUCTS[(start + line) % PRODUCTS.len()];
            LineItem { sku: sku.to_owned(), quantity: 1 + i64::from(dice[2 + line]) % 3, unit_price }
        })
        .collect();
    OrderEvent {
        event_id: fresh_event_id(),
        event_type: EventType::OrderPlaced,
        occurred_at: occurred_at.to_owned(),
        order_id: format!("ORD-{number}"),
        customer_id: customer_id.to_owned(),
        customer_email: email.to_owned(),
        total_amount: items.iter().map(|item| item.quantity * item.unit_price).sum(),
        items,
        currency: "KRW".to_owned(),
        shipping_address: Address {
            name: name.to_owned(),
            line1: "12 Teheran-ro".to_owned(),
            line2: None,
            city: "Seoul".to_owned(),
            postal_code: "06236".to_owned(),
            country: "KR".to_owned(),
        },
    }
}

/// A UUID-shaped event id (version 4 layout) that no other call in any process returns: the
/// SHA-256 of the time, the process id and a counter.
fn fresh_event_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let seed = format!("{nanos}:{}:{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut bytes: [u8; 16] = Sha256::digest(seed.as_bytes())[..16].try_into().expect("a SHA-256 has 32 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_orders_are_valid_and_distinct() {
        let orders = orders(12, 1001);
        assert_eq!(orders.len(), 12);
        let mut event_ids: Vec<&str> = orders.iter().map(|o| o.event_id.as_str()).collect();
        event_ids.sort();
        event_ids.dedup();
        assert_eq!(event_ids.len(), 12);
        assert!(event_ids.iter().all(|id| id.len() == 36 && &id[14..15] == "4"), "{event_ids:?}");
        assert_eq!(orders[0].order_id, "ORD-1001");
        assert_eq!(orders[11].order_id, "ORD-1012");
        let customers: std::collections::BTreeSet<&str> = orders.iter().map(|o| o.customer_id.as_str()).collect();
        assert_eq!(customers.len(), CUSTOMERS.len());
        for order in &orders {
            assert_eq!(order.validate(), Ok(()), "{order:?}");
            assert!(order.occurred_at.ends_with('Z') && !order.occurred_at.contains('.'), "{}", order.occurred_at);
        }
        // What is published is what the functions read back.
        let text = serde_json::to_string(&orders[0]).unwrap();
        assert_eq!(serde_json::from_str::<OrderEvent>(&text).unwrap(), orders[0]);
    }

    #[test]
    fn an_order_number_always_gets_the_same_items() {
        let [first] = <[OrderEvent; 1]>::try_from(orders(1, 4242)).unwrap();
        let [again] = <[OrderEvent; 1]>::try_from(orders(1, 4242)).unwrap();
        assert_eq!(first.items, again.items);
        assert_ne!(first.event_id, again.event_id);
    }
}
