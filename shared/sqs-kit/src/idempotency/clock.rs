//! The clock the idempotency rules read.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::store::Now;

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

    /// The time it reads now.
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
/// (for [`IdempotencyConfig::with_clock`](super::IdempotencyConfig::with_clock)) and its clones
/// all read the same time, to the millisecond.
///
/// ```
/// use std::time::Duration;
/// use sqs_kit::idempotency::{ManualClock, Now};
///
/// let manual = ManualClock::starting_at(Now::from_millis(1_000));
/// let clock = manual.clock();
/// manual.advance(Duration::from_millis(500));
/// assert_eq!(clock.now(), Now::from_millis(1_500));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock that reads `now` until it is set or advanced.
    pub fn starting_at(now: Now) -> Self {
        Self(Arc::new(AtomicI64::new(now.millis)))
    }

    /// The time it reads now.
    pub fn now(&self) -> Now {
        Now::from_millis(self.0.load(Ordering::SeqCst))
    }

    /// Sets the time to `now`, which may lie before the current reading.
    pub fn set(&self, now: Now) {
        self.0.store(now.millis, Ordering::SeqCst);
    }

    /// Moves the time forward by `by`, in whole milliseconds (a fraction of one is dropped).
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// A [`Clock`] that reads this one.
    pub fn clock(&self) -> Clock {
        let time = Arc::clone(&self.0);
        Clock::from_fn(move || Now::from_millis(time.load(Ordering::SeqCst)))
    }
}
