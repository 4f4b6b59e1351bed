//! The properties the fuzz targets check, one function per target, each taking the raw input
//! bytes and panicking when a property does not hold.
//!
//! Shared, without copies, by the libFuzzer targets (`fuzz/fuzz_targets/*.rs`, nightly,
//! `scripts/fuzz`) and by the regression test that replays `fuzz/seeds/<target>/` and
//! `fuzz/regressions/<target>/` on stable Rust (`shared/sqs-kit/tests/fuzz_regressions.rs`); both
//! include this file with `#[path = "..."] mod checks;`. It may use only crates that both
//! have: `sqs_kit`, `orders` and `serde_json`.

#![allow(dead_code)]

use orders::OrderEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use sqs_kit::record::decode_body;
use sqs_kit::runner::{parse_event, InputError};

/// A target's check: panics when the input breaks one of the target's properties.
pub type Check = fn(&[u8]);

/// Every target: its name (the folder name under `fuzz/seeds/` and `fuzz/regressions/`, and
/// the `cargo fuzz` target) and its check.
pub const TARGETS: &[(&str, Check)] =
    &[("sqs_event", sqs_event), ("sns_envelope", sns_envelope), ("order_json", order_json), ("order_structured", order_structured)];

// ---------------------------------------------------------------------------------------------
// sqs_event: `replay`'s event parsing.

/// `parse_event` on arbitrary text never panics; an accepted event has a non-empty `messageId`
/// on every record and no record from another event source; and re-serializing an accepted
/// event gives a document that is accepted as the same event.
pub fn sqs_event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_event("fuzz input", text) {
        Ok(event) => {
            for (index, record) in event.records.iter().enumerate() {
                assert!(
                    record.message_id.as_deref().is_some_and(|id| !id.is_empty()),
                    "record {index} of an accepted event has no messageId: {record:?}"
                );
                assert!(
                    record.event_source.as_deref().is_none_or(|source| source == "aws:sqs"),
                    "record {index} of an accepted event comes from {:?}",
                    record.event_source
                );
            }
            let again = serde_json::to_string(&event).expect("an SqsEvent always serializes");
            match parse_event("re-serialized event", &again) {
                Ok(reparsed) => assert_eq!(reparsed, event, "the re-serialized event differs: {again}"),
                Err(error) => panic!("an accepted event, re-serialized, is rejected: {error}\n{again}"),
            }
        }
        Err(error) => {
            // The message is what the user reads: building it must not panic either.
            let message = error.to_string();
            assert!(!message.is_empty());
            assert_eq!(
                matches!(error, InputError::Empty { .. }),
                text.trim().is_empty(),
                "only a blank document is reported as empty: {message}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sns_envelope: body decoding with SNS notification envelopes.

/// `decode_body` never panics. The input is used as a body itself (a plain body that is not an
/// SNS notification decodes to exactly its JSON), and as the `Message` of SNS envelopes built
/// here: when the envelope decodes, it decodes to exactly what parsing the inner text gives,
/// and it fails (permanently) exactly when the inner text is not JSON.
pub fn sns_envelope(data: &[u8]) {
    let Ok(inner) = std::str::from_utf8(data) else { return };
    let direct = serde_json::from_str::<Value>(inner);

    // The text as a raw body.
    match (&direct, decode_body(Some(inner))) {
        (Err(_), Ok(decoded)) => panic!("a body that is not JSON decoded to {decoded}"),
        (Err(_), Err(error)) => assert!(error.is_permanent(), "an invalid body is a transient failure: {error}"),
        (Ok(value), decoded) if !is_sns_notification(value) => match decoded {
            Ok(decoded) => assert_eq!(&decoded, value, "a plain body was changed by decoding"),
            Err(error) => panic!("a plain JSON body was rejected: {error}"),
        },
        (Ok(value), decoded) => {
            // Itself an envelope: unwrapped once, when it has a string Message.
            if let Some(message) = value.get("Message").and_then(Value::as_str) {
                match (serde_json::from_str::<Value>(message), decoded) {
                    (Ok(want), Ok(got)) => assert_eq!(got, want, "the envelope's Message was not unwrapped"),
                    (Err(_), Err(error)) => assert!(error.is_permanent()),
                    (want, got) => panic!("envelope body: Message parses to {want:?}, decode_body gave {got:?}"),
                }
            }
        }
    }

    // The text wrapped in envelopes as SNS builds them.
    for envelope in sns_envelopes(inner) {
        let body = envelope.to_string();
        match (&direct, decode_body(Some(&body))) {
            (Ok(want), Ok(got)) => assert_eq!(&got, want, "unwrapping changed the message\nenvelope: {body}"),
            (Err(_), Err(error)) => {
                assert!(error.is_permanent(), "an envelope whose Message is not JSON is a transient failure: {error}")
            }
            (Ok(want), Err(error)) => {
                panic!("the envelope of valid JSON {want} was rejected: {error}\nenvelope: {body}")
            }
            (Err(_), Ok(got)) => panic!("the envelope of invalid JSON decoded to {got}\nenvelope: {body}"),
        }
    }
    assert!(decode_body(None).unwrap_err().is_permanent(), "a record without a body is a permanent failure");
}

/// Whether a body is an SNS notification envelope: what SNS delivers to an SQS subscription
/// without raw message delivery (`Type` = `Notification`, with a `TopicArn`).
fn is_sns_notification(value: &Value) -> bool {
    value.get("Type").and_then(Value::as_str) == Some("Notification") && value.get("TopicArn").is_some_and(Value::is_string)
}

/// Envelopes around `message`: the least that counts as one, a standard topic's full
/// notification, and a FIFO topic's.
fn sns_envelopes(message: &str) -> [Value; 3] {
    [
        json!({"Type": "Notification", "TopicArn": "arn:aws:sns:ap-northeast-2:123456789012:orders", "Message": message}),
        json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:ap-northeast-2:123456789012:orders",
            "Subject": "order event",
            "Message": message,
            "Timestamp": "2026-11-24T09:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
            "SigningCertURL": "https://sns.ap-northeast-2.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
            "UnsubscribeURL": "https://sns.ap-northeast-2.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {"eventType": {"Type": "String", "Value": "OrderPlaced"}}
        }),
        json!({
            "Type": "Notification",
            "MessageId": "1d0a9f3c-2c9e-4f0e-9d5b-4b8f4d1f6a2e",
            "SequenceNumber": "10000000000000003000",
            "TopicArn": "arn:aws:sns:ap-northeast-2:123456789012:orders.fifo",
            "Message": message,
            "Timestamp": "2026-11-24T09:00:00.000Z",
            "UnsubscribeURL": "https://sns.ap-northeast-2.amazonaws.com/?Action=Unsubscribe"
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// order_json: order events from arbitrary JSON text.

/// Deserializing an `OrderEvent` from arbitrary text never panics, and an accepted order is
/// valid (see [`assert_valid_order`]). The batch layer deserializes from a parsed `Value`, not
/// from text: an order accepted from text is accepted, equal, that way too.
pub fn order_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let from_text = serde_json::from_str::<OrderEvent>(text);
    if let Err(error) = &from_text {
        let _ = error.to_string();
    }
    let Ok(order) = from_text else { return };
    assert_valid_order(&order, text);
    // The batch layer parses a body into a `Value` first, which stops at serde_json's nesting
    // limit (128); skipping unknown fields while deserializing straight from text has no such
    // limit. A body nested that deeply fails there permanently, before any order is read.
    let Ok(value) = serde_json::from_str::<Value>(text) else { return };
    match OrderEvent::deserialize(&value) {
        Ok(from_value) => assert_eq!(from_value, order, "the order read through a Value differs\n{text}"),
        Err(error) => panic!("an order accepted from text is rejected from its Value: {error}\n{text}"),
    }
}

/// What every order the schema lets through satisfies, checked independently
/// of `validate()`'s own arithmetic: at least one item, positive quantities, no negative unit
/// price, and a `totalAmount` equal to the sum of quantity × unit price (in 128-bit integers,
/// where nothing overflows). It also survives a JSON round trip unchanged.
pub fn assert_valid_order(order: &OrderEvent, source: &str) {
    if let Err(error) = order.validate() {
        panic!("an accepted order fails validate(): {error}\n{source}");
    }
    assert!(!order.items.is_empty(), "an accepted order has no items\n{source}");
    for (index, item) in order.items.iter().enumerate() {
        assert!(item.quantity > 0, "item {index} of an accepted order has quantity {}\n{source}", item.quantity);
        assert!(item.unit_price >= 0, "item {index} of an accepted order has unit price {}\n{source}", item.unit_price);
    }
    let sum = order.items.iter().map(|item| i128::from(item.quantity) * i128::from(item.unit_price)).fold(0i128, i128::saturating_add);
    assert_eq!(i128::from(order.total_amount), sum, "an accepted order's totalAmount is not the items' sum\n{source}");

    let again = serde_json::to_string(order).expect("an order always serializes");
    match serde_json::from_str::<OrderEvent>(&again) {
        Ok(reparsed) => assert_eq!(&reparsed, order, "the order changed in a JSON round trip: {again}"),
        Err(error) => panic!("an accepted order, serialized again, is rejected: {error}\n{again}"),
    }
}

// ---------------------------------------------------------------------------------------------
// order_structured: order-shaped documents built from the input bytes, to get past the JSON
// parser into the validation rules.
//
// The bytes drive a small decoder (below) rather than the `arbitrary` crate, so that the stable
// regression test can replay the same files with nothing but sqs-kit's own dependencies. An
// empty or exhausted input reads as zeros, and choice 0 is always the valid one: the empty
// input is the design sample, and every byte the fuzzer adds moves one field off it.

/// Builds an order document from the bytes, then checks: deserialization (from text and from a
/// `Value`, as the batch layer does) accepts it exactly when the schema's rules, as
/// modeled in [`Order::expected_valid`], say it is valid; and an accepted order passes
/// [`assert_valid_order`].
pub fn order_structured(data: &[u8]) {
    let mut input = Bytes(data);
    let order = Order::generate(&mut input);
    let document = order.to_json();
    let text = document.to_string();
    let expected = order.expected_valid();

    let from_text = serde_json::from_str::<OrderEvent>(&text);
    match (&from_text, expected) {
        (Ok(accepted), Ok(())) => assert_valid_order(accepted, &text),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(rule)) => panic!("an order that breaks a rule ({rule}) was accepted\n{text}"),
        (Err(error), Ok(())) => panic!("a valid order was rejected: {error}\n{text}"),
    }
    let from_value = OrderEvent::deserialize(&document);
    match (&from_text, &from_value) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "text and Value deserialization differ\n{text}"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("text and Value deserialization disagree: {a:?} vs {b:?}\n{text}"),
    }
}

/// Reads choices from the fuzz input; past its end every read is zero.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&first, rest)) => {
                self.0 = rest;
                first
            }
            None => 0,
        }
    }

    /// A number below `n` (n ≤ 256).
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn pick<T: Clone>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len())].clone()
    }

    fn i64(&mut self) -> i64 {
        let mut bytes = [0u8; 8];
        for byte in &mut bytes {
            *byte = self.byte();
        }
        i64::from_le_bytes(bytes)
    }

    /// Up to 16 bytes of the input as text (invalid UTF-8 replaced).
    fn text(&mut self) -> String {
        let len = self.below(17).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(taken).into_owned()
    }
}

/// A field as it appears in the document: absent, of the wrong JSON type, or a value.
#[derive(Clone, Debug)]
enum Field<T> {
    Value(T),
    Missing,
    /// Not of the field's type; for an optional field, `null` is the same as `Missing`.
    Wrong(Value),
}

impl<T> Field<T> {
    /// Choice 0 (most bytes) keeps the value; the others replace it.
    /// `wrong` lists the field's values of other JSON types (built only when one is chosen).
    fn generate(input: &mut Bytes, wrong: fn() -> Vec<Value>, value: impl FnOnce(&mut Bytes) -> T) -> Self {
        match input.below(16) {
            14 => Field::Missing,
            15 => Field::Wrong(input.pick(&wrong())),
            _ => Field::Value(value(input)),
        }
    }

    fn insert(&self, object: &mut serde_json::Map<String, Value>, name: &str, to_json: impl FnOnce(&T) -> Value) {
        match self {
            Field::Value(value) => {
                object.insert(name.to_owned(), to_json(value));
            }
            Field::Missing => {}
            Field::Wrong(value) => {
                object.insert(name.to_owned(), value.clone());
            }
        }
    }

    /// The value of a required field, or which rule its absence breaks.
    fn required(&self, name: &str) -> Result<&T, String> {
        match self {
            Field::Value(value) => Ok(value),
            Field::Missing => Err(format!("{name} is missing")),
            Field::Wrong(value) => Err(format!("{name} is {value}, of the wrong type")),
        }
    }
}

/// JSON values that are not strings.
fn not_strings() -> Vec<Value> {
    vec![Value::Null, json!(true), json!(1), json!(1.5), json!([]), json!({}), json!(["x"])]
}

/// JSON values that are not 64-bit signed integers.
fn not_integers() -> Vec<Value> {
    vec![
        Value::Null,
        json!(false),
        json!("1"),
        json!(1.0),
        json!(0.5),
        json!(1e300),
        json!(u64::MAX),
        json!(i64::MAX as u64 + 1),
        json!([1]),
        json!({}),
    ]
}

/// Texts that sit on the rules' edges: blank in several ways, e-mail and currency shapes.
fn tricky_text(input: &mut Bytes) -> String {
    let fixed = [
        "x",
        "",
        " ",
        "\t\n",
        "\u{3000}",
        "\u{a0}",
        "\u{200b}",
        "@",
        "a@",
        "@b",
        "a@b",
        "a@@",
        "KRW",
        "krw",
        "KR",
        "KRWW",
        "ÄBC",
        "\u{0}",
        "ORD-\"1\"\\",
        "한국어",
    ];
    match input.below(fixed.len() + 1) {
        i if i < fixed.len() => fixed[i].to_owned(),
        _ => input.text(),
    }
}

/// A string field: the sample's value (choice 0), or a tricky one.
fn string_field(input: &mut Bytes, sample: &str) -> Field<String> {
    Field::generate(input, not_strings, |input| match input.below(4) {
        0 | 1 => sample.to_owned(),
        _ => tricky_text(input),
    })
}

fn integer(input: &mut Bytes, sample: i64) -> i64 {
    match input.below(12) {
        0..=3 => sample,
        4 => 0,
        5 => -1,
        6 => 1,
        7 => i64::MAX,
        8 => i64::MIN,
        9 => i64::from(input.byte()) - 128,
        10 => i64::from(input.byte()) * 1000,
        _ => input.i64(),
    }
}

fn integer_field(input: &mut Bytes, sample: i64) -> Field<i64> {
    Field::generate(input, not_integers, |input| integer(input, sample))
}

#[derive(Clone, Debug)]
struct Item {
    sku: Field<String>,
    quantity: Field<i64>,
    unit_price: Field<i64>,
}

#[derive(Clone, Debug)]
struct Address {
    name: Field<String>,
    line1: Field<String>,
    line2: Field<String>,
    city: Field<String>,
    postal_code: Field<String>,
    country: Field<String>,
}

#[derive(Clone, Debug)]
enum Total {
    /// The items' sum (when it fits in an i64), plus an offset.
    Sum(i64),
    Other(Field<i64>),
}

#[derive(Clone, Debug)]
struct Order {
    event_id: Field<String>,
    event_type: Field<String>,
    occurred_at: Field<String>,
    order_id: Field<String>,
    customer_id: Field<String>,
    customer_email: Field<String>,
    /// Each item, or a JSON value that is not an item object.
    items: Field<Vec<Result<Item, Value>>>,
    total: Total,
    currency: Field<String>,
    address: Field<Address>,
    /// Unknown fields, which must be ignored.
    extra: Vec<(String, Value)>,
}

impl Order {
    fn generate(input: &mut Bytes) -> Self {
        let event_id = string_field(input, "8c1f6d0e-5d3a-4c55-9a57-1f2b8f0c4a11");
        let event_type = Field::generate(input, not_strings, |input| {
            input.pick(&["OrderPlaced", "OrderCancelled", "orderPlaced", "OrderShipped", "", "OrderPlaced "]).to_owned()
        });
        let occurred_at = string_field(input, "2026-11-24T09:00:00Z");
        let order_id = string_field(input, "ORD-1001");
        let customer_id = string_field(input, "CUST-42");
        let customer_email = string_field(input, "minji@example.com");
        let items = Field::generate(
            input,
            || vec![Value::Null, json!({}), json!("items"), json!(1)],
            |input| {
                // Choice 0: one item; up to 8, or none.
                let count = match input.below(8) {
                    0..=3 => 1,
                    4 => 0,
                    n => 1 + input.below(8) * (n - 4) / 3,
                };
                (0..count)
                    .map(|index| match input.below(16) {
                        15 => Err(input.pick(&[Value::Null, json!("SKU-1"), json!([]), json!(3)])),
                        _ => Ok(Item {
                            sku: string_field(input, if index % 2 == 0 { "SKU-KEYBOARD" } else { "SKU-MOUSE" }),
                            quantity: integer_field(input, 1),
                            unit_price: integer_field(input, 89000),
                        }),
                    })
                    .collect()
            },
        );
        let total = match input.below(8) {
            0..=3 => Total::Sum(0),
            4 => Total::Sum(1),
            5 => Total::Sum(-1),
            6 => Total::Sum(i64::from(input.byte()) - 128),
            _ => Total::Other(integer_field(input, 89000)),
        };
        let currency = string_field(input, "KRW");
        let address = Field::generate(
            input,
            || vec![Value::Null, json!("Seoul"), json!([]), json!(0)],
            |input| Address {
                name: string_field(input, "Minji Kim"),
                line1: string_field(input, "12 Teheran-ro"),
                line2: match input.below(4) {
                    0 => Field::Value("Apt 3".to_owned()),
                    1 => Field::Wrong(Value::Null),
                    2 => Field::Value(tricky_text(input)),
                    _ => Field::Missing,
                },
                city: string_field(input, "Seoul"),
                postal_code: string_field(input, "06236"),
                country: string_field(input, "KR"),
            },
        );
        let extra = match input.below(4) {
            1 => vec![("channel".to_owned(), json!("web"))],
            2 => vec![("items2".to_owned(), json!([{"quantity": -1}])), ("totalamount".to_owned(), json!(-5))],
            3 => vec![(tricky_text(input), json!({"nested": [1, 2, {"x": null}]}))],
            _ => Vec::new(),
        };
        Order { event_id, event_type, occurred_at, order_id, customer_id, customer_email, items, total, currency, address, extra }
    }

    /// The items' sum of quantity × unit price, when every item is complete (and it fits).
    fn items_sum(&self) -> Option<i128> {
        let Field::Value(items) = &self.items else { return None };
        let mut sum = 0i128;
        for item in items {
            let item = item.as_ref().ok()?;
            let (Field::Value(quantity), Field::Value(price)) = (&item.quantity, &item.unit_price) else { return None };
            sum = sum.checked_add(i128::from(*quantity) * i128::from(*price))?;
        }
        Some(sum)
    }

    fn total_amount(&self) -> Field<i64> {
        match &self.total {
            Total::Other(field) => field.clone(),
            Total::Sum(offset) => {
                let sum = self.items_sum().and_then(|sum| i64::try_from(sum).ok()).unwrap_or(0);
                Field::Value(sum.wrapping_add(*offset))
            }
        }
    }

    fn to_json(&self) -> Value {
        let string = |s: &String| Value::from(s.as_str());
        let number = |n: &i64| Value::from(*n);
        let mut object = serde_json::Map::new();
        for (name, value) in &self.extra {
            object.insert(name.clone(), value.clone());
        }
        self.event_id.insert(&mut object, "eventId", string);
        self.event_type.insert(&mut object, "eventType", string);
        self.occurred_at.insert(&mut object, "occurredAt", string);
        self.order_id.insert(&mut object, "orderId", string);
        self.customer_id.insert(&mut object, "customerId", string);
        self.customer_email.insert(&mut object, "customerEmail", string);
        self.items.insert(&mut object, "items", |items| {
            let items = items.iter().map(|item| match item {
                Ok(item) => {
                    let mut object = serde_json::Map::new();
                    item.sku.insert(&mut object, "sku", string);
                    item.quantity.insert(&mut object, "quantity", number);
                    item.unit_price.insert(&mut object, "unitPrice", number);
                    Value::Object(object)
                }
                Err(value) => value.clone(),
            });
            Value::Array(items.collect())
        });
        self.total_amount().insert(&mut object, "totalAmount", number);
        self.currency.insert(&mut object, "currency", string);
        self.address.insert(&mut object, "shippingAddress", |address| {
            let mut object = serde_json::Map::new();
            address.name.insert(&mut object, "name", string);
            address.line1.insert(&mut object, "line1", string);
            address.line2.insert(&mut object, "line2", string);
            address.city.insert(&mut object, "city", string);
            address.postal_code.insert(&mut object, "postalCode", string);
            address.country.insert(&mut object, "country", string);
            Value::Object(object)
        });
        Value::Object(object)
    }

    /// Whether the document is a valid order event, by the README's order schema and the documented
    /// rules of `orders::OrderEvent`: every required field present with its type; `eventType`
    /// `OrderPlaced` or `OrderCancelled`; no blank identifier, date, e-mail, SKU or address
    /// name, first line, city or country (the postal code may be empty: not every country has
    /// one); at least one item; positive quantities; no negative unit price; `totalAmount`
    /// equal to the items' sum; a three-letter upper-case currency code; an e-mail address
    /// with something on both sides of its first `@`. Err names the first rule broken.
    fn expected_valid(&self) -> Result<(), String> {
        let blank = |name: &str, value: &String| -> Result<(), String> {
            if value.trim().is_empty() {
                Err(format!("{name} is blank"))
            } else {
                Ok(())
            }
        };
        let event_id = self.event_id.required("eventId")?;
        let event_type = self.event_type.required("eventType")?;
        let occurred_at = self.occurred_at.required("occurredAt")?;
        let order_id = self.order_id.required("orderId")?;
        let customer_id = self.customer_id.required("customerId")?;
        let email = self.customer_email.required("customerEmail")?;
        let items = self.items.required("items")?;
        let mut checked_items = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item = item.as_ref().map_err(|value| format!("items[{index}] is {value}, not an object"))?;
            let sku = item.sku.required("items[].sku")?;
            let quantity = item.quantity.required("items[].quantity")?;
            let price = item.unit_price.required("items[].unitPrice")?;
            checked_items.push((sku, *quantity, *price));
        }
        let total = *self.total_amount().required("totalAmount")?;
        let currency = self.currency.required("currency")?;
        let address = self.address.required("shippingAddress")?;
        let name = address.name.required("shippingAddress.name")?;
        let line1 = address.line1.required("shippingAddress.line1")?;
        if let Field::Wrong(value) = &address.line2 {
            if !value.is_null() {
                return Err(format!("shippingAddress.line2 is {value}, of the wrong type"));
            }
        }
        let city = address.city.required("shippingAddress.city")?;
        address.postal_code.required("shippingAddress.postalCode")?;
        let country = address.country.required("shippingAddress.country")?;

        if event_type != "OrderPlaced" && event_type != "OrderCancelled" {
            return Err(format!("eventType {event_type:?} is not an order event type"));
        }
        blank("eventId", event_id)?;
        blank("occurredAt", occurred_at)?;
        blank("orderId", order_id)?;
        blank("customerId", customer_id)?;
        blank("customerEmail", email)?;
        blank("shippingAddress.name", name)?;
        blank("shippingAddress.line1", line1)?;
        blank("shippingAddress.city", city)?;
        blank("shippingAddress.country", country)?;
        if checked_items.is_empty() {
            return Err("no items".into());
        }
        let mut sum = 0i128;
        let (mut skus, mut quantities) = (Vec::new(), Vec::new());
        for (sku, quantity, price) in checked_items {
            skus.push(sku.as_str());
            quantities.push(quantity);
            blank("items[].sku", sku)?;
            if quantity <= 0 {
                return Err(format!("quantity {quantity} is not positive"));
            }
            if price < 0 {
                return Err(format!("unit price {price} is negative"));
            }
            // Saturates far beyond any i64, so an overflowing order still mismatches its total.
            sum = sum.saturating_add(i128::from(quantity) * i128::from(price));
        }
        if sum != i128::from(total) {
            return Err(format!("totalAmount {total} is not the items' sum {sum}"));
        }
        // What the functions key and store by must fit DynamoDB's limits (orders::limits).
        let too_long = [
            (event_id.as_str(), orders::limits::MAX_EVENT_ID_BYTES),
            (order_id.as_str(), orders::limits::MAX_ORDER_ID_BYTES),
            (customer_id.as_str(), orders::limits::MAX_CUSTOMER_ID_BYTES),
        ]
        .into_iter()
        .chain(skus.iter().map(|sku| (*sku, orders::limits::MAX_SKU_BYTES)))
        .find(|(value, limit)| value.len() > *limit);
        if let Some((value, limit)) = too_long {
            return Err(format!("a {}-byte key is over its {limit}-byte limit", value.len()));
        }
        let mut per_sku = std::collections::BTreeMap::<&str, i128>::new();
        for (sku, quantity) in skus.iter().zip(&quantities) {
            *per_sku.entry(sku).or_default() += i128::from(*quantity);
        }
        if per_sku.values().any(|quantity| *quantity > i128::from(i64::MAX)) {
            return Err("one SKU's quantities add up past an i64".into());
        }
        let line2 = match &address.line2 {
            Field::Value(line2) => line2.len(),
            _ => 0,
        };
        let postal_code = match &address.postal_code {
            Field::Value(code) => code.len(),
            _ => 0,
        };
        let address_bytes = name.len() + line1.len() + line2 + city.len() + postal_code + country.len();
        if address_bytes > orders::limits::MAX_STORED_BYTES {
            return Err(format!("the address takes {address_bytes} bytes"));
        }
        // The lines' JSON limit (368 KiB) is far past what a fuzz input can build.
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!("currency {currency:?} is not a three-letter code"));
        }
        match email.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {}
            _ => return Err(format!("customerEmail {email:?} is not an e-mail address")),
        }
        Ok(())
    }
}
