//! How long the parts of an order that the functions store may be: DynamoDB's limits, applied
//! by [`OrderEvent::validate`](crate::OrderEvent::validate) whatever the store, so that a body
//! the embedded store accepts is accepted in AWS too, and one that DynamoDB would refuse fails
//! permanently with the limit named instead of being retried (DynamoDB's refusal is an error
//! the store cannot tell from an outage) into the dead-letter queue.
//!
//! The limits of the composed keys follow the functions' table layouts (the README's
//! DynamoDB tables); each function's adapter tests that the longest accepted value fits.

/// DynamoDB's limit on a partition key value.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB's limit on a sort key value.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// DynamoDB's limit on an item: attribute names and values together.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Lambda's limit on a function name, the prefix of every idempotency key.
pub const MAX_FUNCTION_NAME_BYTES: usize = 64;

/// The idempotency key `<function>#<eventId>` is the idempotency table's partition key.
pub const MAX_EVENT_ID_BYTES: usize = MAX_PARTITION_KEY_BYTES - MAX_FUNCTION_NAME_BYTES - "#".len();
pub const EVENT_ID_LIMIT: &str = "so that the idempotency key <function>#<eventId> fits DynamoDB's 2048-byte partition key limit";

/// points' sort key `LEDGER#<orderId>#REVERSAL` is the longest key made of an order id
/// (inventory's partition key `ORDER#<orderId>` and shipping's `<orderId>` are shorter).
pub const MAX_ORDER_ID_BYTES: usize = MAX_SORT_KEY_BYTES - "LEDGER#".len() - "#REVERSAL".len();
pub const ORDER_ID_LIMIT: &str = "so that the points ledger's sort key LEDGER#<orderId>#REVERSAL fits DynamoDB's 1024-byte sort key limit";

/// points' partition key is the customer id itself.
pub const MAX_CUSTOMER_ID_BYTES: usize = MAX_PARTITION_KEY_BYTES;
pub const CUSTOMER_ID_LIMIT: &str = "so that it fits DynamoDB's 2048-byte partition key limit as the points table's key";

/// inventory's partition key `SKU#<sku>`.
pub const MAX_SKU_BYTES: usize = MAX_PARTITION_KEY_BYTES - "SKU#".len();
pub const SKU_LIMIT: &str = "so that the stock table's key SKU#<sku> fits DynamoDB's 2048-byte partition key limit";

/// Room in one item for what is stored beside an order's lines or its shipping address: keys
/// and ids (bounded above, at most six bytes per byte once escaped in JSON), a status, a reason
/// naming one SKU, and the attribute names.
const ITEM_OVERHEAD_BYTES: usize = 32 * 1024;
/// What one item may hold of an order's lines (inventory's reservation and its idempotency
/// result store them as JSON) or of its shipping address (shipping's item).
pub const MAX_STORED_BYTES: usize = MAX_ITEM_BYTES - ITEM_OVERHEAD_BYTES;
pub const ITEM_LIMIT: &str = "so that the item storing them fits DynamoDB's 400 KB item limit";

// The worst beside the lines, an inventory idempotency result: the key, an escaped order id and
// a reason naming an escaped SKU.
const _: () = assert!(MAX_PARTITION_KEY_BYTES + 6 * MAX_ORDER_ID_BYTES + 6 * MAX_SKU_BYTES + 1024 <= ITEM_OVERHEAD_BYTES);
