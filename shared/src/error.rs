//! The error a record handler returns, and why its kind matters.
//!
//! SQS gives a failed message another chance after its visibility timeout and moves it to the
//! dead-letter queue after `maxReceiveCount` receives, whatever the kind. The kind still matters:
//! it decides the log level and the wording an operator sees, and it tells the idempotency layer
//! whether the payload itself is at fault (a poison message that no retry will fix) or the world
//! around it (a timeout, a throttled store, a lock held by another invocation).

use std::fmt;

/// Whether a failed record may succeed if it is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Retrying may succeed: a dependency was down, a lock was held, time ran out.
    Transient,
    /// Retrying cannot succeed: the body does not parse, breaks a business rule, or reuses an
    /// idempotency key for different content. The message will end in the dead-letter queue.
    Permanent,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
        })
    }
}

/// A record's failure: its kind and a reason written for the operator who reads the logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} failure: {reason}")]
pub struct RecordError {
    kind: FailureKind,
    reason: String,
}

impl RecordError {
    /// A failure that a later attempt may not repeat.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self { kind: FailureKind::Transient, reason: reason.into() }
    }

    /// A failure that every attempt will repeat (a poison message).
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self { kind: FailureKind::Permanent, reason: reason.into() }
    }

    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn is_permanent(&self) -> bool {
        self.kind == FailureKind::Permanent
    }
}
