//! Fault injection for crash tests: `SQS_KIT_FAULT=<point>[:<key part>]` makes the process
//! abort — no unwinding, no cleanup, like a killed Lambda environment — at a point of the
//! idempotency lifecycle, optionally only for keys that contain `<key part>`.
//!
//! | point | where | what a retry must show |
//! |---|---|---|
//! | `crash-after-handler` | claim mode: the handler's effect happened, the record is still `IN_PROGRESS` | the handler runs again once the claim lapses; its effect must itself be idempotent |
//! | `crash-before-commit` | transactional mode: the writes were built, nothing was sent | nothing was applied; the retry applies it once |
//! | `crash-after-commit` | transactional mode: the transaction committed, the response was not sent | the retry is a duplicate; the effect stays applied once |
//!
//! Unset (the normal case), it costs one environment lookup per process.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    AfterHandler,
    BeforeCommit,
    AfterCommit,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::AfterHandler => "crash-after-handler",
            Point::BeforeCommit => "crash-before-commit",
            Point::AfterCommit => "crash-after-commit",
        }
    }
}

fn configured() -> Option<&'static (String, String)> {
    static FAULT: OnceLock<Option<(String, String)>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            let spec = crate::env::var(crate::env::FAULT)?;
            let (point, key) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
            Some((point.to_owned(), key.to_owned()))
        })
        .as_ref()
}

/// Aborts the process if `SQS_KIT_FAULT` names `point` and its key part is in `key`.
pub fn inject(point: Point, key: &str) {
    if let Some((configured, key_part)) = configured() {
        if configured == point.name() && key.contains(key_part.as_str()) {
            eprintln!("SQS_KIT_FAULT: aborting at {} for {key}", point.name());
            std::process::abort();
        }
    }
}
