//! The environment variables the order functions read, in one place (the README's
//! configuration table lists them with the toolkit's own).

/// DynamoDB table of stock levels and reservations (inventory).
pub const STOCK_TABLE: &str = "STOCK_TABLE";
/// DynamoDB table of shipments (shipping).
pub const SHIPMENTS_TABLE: &str = "SHIPMENTS_TABLE";
/// DynamoDB table of points balances and ledger entries (points).
pub const POINTS_TABLE: &str = "POINTS_TABLE";
/// The From address of order e-mails, an address of a verified SES identity (email).
pub const EMAIL_SENDER: &str = "EMAIL_SENDER";
/// Points per minor currency unit, a decimal such as `0.01` (points). Default `0.01`.
pub const POINTS_RATE: &str = "POINTS_RATE";

pub const DEFAULT_POINTS_RATE: &str = "0.01";
/// Sender of local (outbox) e-mails when `EMAIL_SENDER` is unset.
pub const DEFAULT_LOCAL_SENDER: &str = "orders@example.com";

/// A variable's value; unset and empty are the same.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// A variable that must be set, or an error that says which and why.
pub fn required(name: &str, purpose: &str) -> Result<String, MissingVariable> {
    var(name).ok_or_else(|| MissingVariable { name: name.to_owned(), purpose: purpose.to_owned() })
}

#[derive(Debug, thiserror::Error)]
#[error("{name} is not set; it must name {purpose}")]
pub struct MissingVariable {
    pub name: String,
    pub purpose: String,
}
