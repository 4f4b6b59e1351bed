//! The error a record handler returns, and why its kind matters.
//!
//! SQS gives a failed message another chance after its visibility timeout and moves it to the
//! dead-letter queue after `maxReceiveCount` receives, whatever the kind. The kind still matters
//! to whoever reads the logs and the metrics: it says whether the payload itself is at fault (a
//! poison message that no retry will fix) or the world around it (a timeout, a throttled store,
//! a lock held by another invocation), and so decides the log level, the wording and the metric
//! the failure is counted under.

use std::fmt;

/// Whether a failed record may succeed if it is tried again.
///
/// Serialized (and displayed) as `transient` or `permanent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
///
/// Either kind puts the record in the batch's failure list, so SQS delivers it again; the kind
/// decides how it is logged (`warn` for transient, `error` for permanent) and counted in the
/// metrics. Displayed as `<kind> failure: <reason>`. The reason is logged and shown in the
/// `replay` summary with e-mail addresses replaced ([`crate::redact::email_addresses`]), but
/// should not quote other personal data.
///
/// ```
/// use sqs_kit::{FailureKind, RecordError};
///
/// let error = RecordError::permanent("the order has no lines");
/// assert_eq!(error.kind(), FailureKind::Permanent);
/// assert!(error.is_permanent());
/// assert_eq!(error.to_string(), "permanent failure: the order has no lines");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} failure: {reason}")]
pub struct RecordError {
    kind: FailureKind,
    reason: String,
}

impl RecordError {
    /// A failure that a later attempt may not repeat: a dependency was down, a lock was held,
    /// time ran out.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self { kind: FailureKind::Transient, reason: reason.into() }
    }

    /// A failure that every attempt will repeat (a poison message): the record will end in the
    /// dead-letter queue after the queue's `maxReceiveCount` receives.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self { kind: FailureKind::Permanent, reason: reason.into() }
    }

    /// Whether a retry may succeed.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The reason as the handler (or the layer that failed) wrote it, without the kind.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether the kind is [`FailureKind::Permanent`].
    pub fn is_permanent(&self) -> bool {
        self.kind == FailureKind::Permanent
    }

    /// The failure of a handler that panicked: transient, as the panic may come from the
    /// world around the record (a poisoned lock, an exhausted resource) rather than its body.
    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        Self::transient(format!("the handler panicked: {message}"))
    }
}
