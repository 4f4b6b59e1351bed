//! The idempotency record (design.md §4) and the clock values a claim is judged by.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    InProgress,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Completed => "COMPLETED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "IN_PROGRESS" => Some(Status::InProgress),
            "COMPLETED" => Some(Status::Completed),
            _ => None,
        }
    }
}

/// One key's record, as every store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// `<function name>#<key>`.
    pub id: String,
    pub status: Status,
    /// Epoch seconds after which the record no longer counts (and DynamoDB's TTL deletes it).
    pub expiration: i64,
    /// Epoch milliseconds after which an `IN_PROGRESS` claim may be taken over: the deadline of
    /// the invocation that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress_expiration: Option<i64>,
    /// SHA-256 (hex) of the canonical body, to catch a key reused for other content.
    pub payload_hash: String,
    /// The handler's output, returned for duplicates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Epoch milliseconds of the last write.
    pub updated_at: i64,
}

impl IdempotencyRecord {
    /// Whether this record, found in the store at `now`, still blocks a new claim. The stores
    /// apply the same rule inside their conditional writes.
    pub fn is_live(&self, now: Now) -> bool {
        if self.expiration < now.secs {
            return false;
        }
        match self.status {
            Status::Completed => true,
            Status::InProgress => self.in_progress_expiration.is_none_or(|until| until >= now.millis),
        }
    }
}

/// The current time in both units the record uses, taken once per store call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub secs: i64,
    pub millis: i64,
}

impl Now {
    pub fn system() -> Self {
        Self::at(SystemTime::now())
    }

    pub fn at(time: SystemTime) -> Self {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self { secs: since_epoch.as_secs() as i64, millis: since_epoch.as_millis() as i64 }
    }

    pub fn from_millis(millis: i64) -> Self {
        Self { secs: millis.div_euclid(1000), millis }
    }

    pub fn plus(self, duration: Duration) -> Self {
        Self::from_millis(self.millis + duration.as_millis() as i64)
    }
}
