//! The rules of `SQS_KIT_FAULT` and where they act (built with the `fault-injection` feature).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Point;
use crate::error::RecordError;

#[derive(Debug, Default)]
struct Rules {
    /// (crash point name, key part)
    crashes: Vec<(String, String)>,
    /// Body texts that make a record fail transiently.
    failing_bodies: Vec<String>,
    /// Body texts that make a record fail permanently, as poison does.
    poison_bodies: Vec<String>,
    /// (delay, percentage of attempts)
    delay: Option<(Duration, u64)>,
    flaky_percent: u64,
    panic_percent: u64,
}

/// A percentage argument, clamped to 0..=100; anything else is 0 (the rule does nothing).
fn percent(text: &str) -> u64 {
    text.parse::<u64>().map_or(0, |p| p.min(100))
}

/// Whether an attempt is among `percent` % of attempts: xorshift over a process-wide state,
/// seeded from the clock and the pid so that restarted processes do not repeat each other.
fn chance(percent: u64) -> bool {
    static STATE: OnceLock<AtomicU64> = OnceLock::new();
    if percent == 0 {
        return false;
    }
    let state = STATE.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        AtomicU64::new((nanos ^ (u64::from(std::process::id()) << 32)) | 1)
    });
    let mut x = state.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.store(x, Ordering::Relaxed);
    x % 100 < percent
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut rules = Rules::default();
        for rule in crate::env::var(crate::env::FAULT).unwrap_or_default().split(',').filter(|r| !r.trim().is_empty()) {
            let (name, argument) = rule.trim().split_once(':').unwrap_or((rule.trim(), ""));
            match name {
                "fail" => rules.failing_bodies.push(argument.to_owned()),
                "poison" => rules.poison_bodies.push(argument.to_owned()),
                "flaky" => rules.flaky_percent = percent(argument),
                "panic" => rules.panic_percent = percent(argument),
                "slow" => {
                    let (millis, share) = argument.split_once(':').unwrap_or((argument, "100"));
                    rules.delay = millis.parse().ok().map(|ms| (Duration::from_millis(ms), percent(share)));
                }
                crash => rules.crashes.push((crash.to_owned(), argument.to_owned())),
            }
        }
        rules
    })
}

/// Aborts the process if a crash rule names `point` and its key part is in `key`.
pub(super) fn inject(point: Point, key: &str) {
    if rules().crashes.iter().any(|(name, part)| name == point.name() && key.contains(part.as_str())) {
        eprintln!("SQS_KIT_FAULT: aborting at {} for {key}", point.name());
        std::process::abort();
    }
}

/// Applies the rules that act before a record's handler: a delay, or a failure (transient for
/// `fail`, permanent for `poison`) for a body that contains a configured text.
pub(super) async fn before_record(body: &serde_json::Value) -> Result<(), RecordError> {
    let rules = rules();
    if let Some((delay, share)) = rules.delay {
        if chance(share) {
            tokio::time::sleep(delay).await;
        }
    }
    if chance(rules.panic_percent) {
        panic!("SQS_KIT_FAULT: injected panic");
    }
    if chance(rules.flaky_percent) {
        return Err(RecordError::transient("SQS_KIT_FAULT: injected transient failure"));
    }
    if !rules.failing_bodies.is_empty() || !rules.poison_bodies.is_empty() {
        let text = body.to_string();
        if let Some(part) = rules.poison_bodies.iter().find(|part| text.contains(part.as_str())) {
            return Err(RecordError::permanent(format!("SQS_KIT_FAULT: injected poison for a body containing {part:?}")));
        }
        if let Some(part) = rules.failing_bodies.iter().find(|part| text.contains(part.as_str())) {
            return Err(RecordError::transient(format!("SQS_KIT_FAULT: injected failure for a body containing {part:?}")));
        }
    }
    Ok(())
}
