//! The rules of `SQS_KIT_FAULT` and where they act (built with the `fault-injection` feature).
//!
//! Built without the `fault-injection` feature (production builds), none of this is compiled:
//! the hooks below do nothing, and a set `SQS_KIT_FAULT` is ignored with a warning.

#[cfg(feature = "fault-injection")]
mod injection;

use crate::error::RecordError;

/// Where a crash rule can abort the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Point {
    AfterHandler,
    BeforeCommit,
    AfterCommit,
}

impl Point {
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    fn name(self) -> &'static str {
        match self {
            Point::AfterHandler => "crash-after-handler",
            Point::BeforeCommit => "crash-before-commit",
            Point::AfterCommit => "crash-after-commit",
        }
    }
}

/// Aborts the process if a crash rule names `point` and its key part is in `key`.
#[inline]
pub(crate) fn inject(point: Point, key: &str) {
    #[cfg(feature = "fault-injection")]
    injection::inject(point, key);
    #[cfg(not(feature = "fault-injection"))]
    let _ = (point, key);
}

/// Applies the rules that act before a record's handler: a delay, a panic, or a failure.
#[inline]
pub(crate) async fn before_record(body: &serde_json::Value) -> Result<(), RecordError> {
    #[cfg(feature = "fault-injection")]
    return injection::before_record(body).await;
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = body;
        Ok(())
    }
}

/// Warns, once per process, when `SQS_KIT_FAULT` is set in a binary built without fault
/// injection: whoever set it expects faults that will not happen.
pub(crate) fn warn_if_unavailable() {
    #[cfg(not(feature = "fault-injection"))]
    if let Some(rules) = crate::env::var(crate::env::FAULT) {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(rules = %rules, "{} is ignored: this binary was built without sqs-kit's fault-injection feature", crate::env::FAULT)
        });
    }
}
