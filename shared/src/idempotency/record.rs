//! The idempotency record and the clock values a claim is judged by.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
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

/// Where the idempotency layer reads the time: the expiry of claims, of completed records and of
/// the warm cache's entries are all judged by it. [`Clock::system`] (the default) in
/// production; a [`ManualClock`] in tests that check what happens exactly at a boundary.
///
/// Only the idempotency rules follow this clock. The invocation's deadline (and so a claim's
/// `in_progress_expiration`) and the time a store waits for a lock are real time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Now + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Now::system))
    }

    /// A clock that reads the time from `now`.
    pub fn from_fn(now: impl Fn() -> Now + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> Now {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({:?})", self.now())
    }
}

/// A clock that stands still until it is set or advanced; its [`ManualClock::clock`] handles
/// (for [`IdempotencyConfig::clock`](super::IdempotencyConfig::clock)) all read the same time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn starting_at(now: Now) -> Self {
        Self(Arc::new(AtomicI64::new(now.millis)))
    }

    pub fn now(&self) -> Now {
        Now::from_millis(self.0.load(Ordering::SeqCst))
    }

    pub fn set(&self, now: Now) {
        self.0.store(now.millis, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// A [`Clock`] that reads this one.
    pub fn clock(&self) -> Clock {
        let time = Arc::clone(&self.0);
        Clock::from_fn(move || Now::from_millis(time.load(Ordering::SeqCst)))
    }
}
