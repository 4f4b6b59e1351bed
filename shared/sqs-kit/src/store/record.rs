//! The idempotency record every store keeps, and the time a claim is judged by.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The state of an idempotency record, stored as `IN_PROGRESS` or `COMPLETED`.
// Exhaustive on purpose: a store must write and read every status, and a new one would change
// the claim condition every store applies, so it must not pass a store's `_` arm unnoticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// A claim: an invocation is running the handler for the key, until the record's
    /// `in_progress_expiration`.
    InProgress,
    /// The key's work is done; the record holds its output until its `expiration`.
    Completed,
}

impl Status {
    /// The stored form: `IN_PROGRESS` or `COMPLETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Completed => "COMPLETED",
        }
    }

    /// The status whose stored form is `text` (exactly, case included); `None` for anything
    /// else.
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
    /// A claim in progress, or completed work.
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
    /// A random token that names the claim's owner: a completion or a release is written only
    /// while the stored record still carries the caller's token, so an invocation whose claim
    /// lapsed and was taken over cannot overwrite the new owner's record. A `COMPLETED` record
    /// keeps the token of the claim that completed it. Absent from records written before
    /// tokens existed (and `None` matches only an absent token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_token: Option<String>,
}

impl IdempotencyRecord {
    /// Whether this record, found in the store at `now`, still blocks a new claim. The stores
    /// apply the same rule inside their conditional writes.
    ///
    /// The boundaries: a record counts while `now.secs <= expiration` and an `IN_PROGRESS`
    /// claim holds while `now.millis <= in_progress_expiration`; one second (one millisecond)
    /// later it can be claimed again.
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

/// The current time in both units the record uses, taken once per store call. `secs` is
/// always `millis` rounded down to a whole second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Seconds since the Unix epoch, what `expiration` is compared with.
    pub secs: i64,
    /// Milliseconds since the Unix epoch, what `in_progress_expiration` is compared with.
    pub millis: i64,
}

impl Now {
    /// The system clock's time.
    pub fn system() -> Self {
        Self::at(SystemTime::now())
    }

    /// The time `time`; a time before the epoch counts as the epoch.
    pub fn at(time: SystemTime) -> Self {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self { secs: since_epoch.as_secs() as i64, millis: since_epoch.as_millis() as i64 }
    }

    /// The time `millis` milliseconds after the epoch (before it, if negative).
    pub fn from_millis(millis: i64) -> Self {
        Self { secs: millis.div_euclid(1000), millis }
    }

    /// This time `duration` later, to the millisecond.
    pub fn plus(self, duration: Duration) -> Self {
        Self::from_millis(self.millis + duration.as_millis() as i64)
    }
}
