//! Exponential backoff of transiently failed records.

use std::fmt;
use std::time::Duration;

/// The longest backoff sqs-kit sets, in seconds: a message may not stay invisible for more than
/// 12 hours after it was received, and the batching window (up to 5 minutes) and the invocation
/// (up to 15) may already have used 20 minutes of them when the backoff is set.
pub const MAX_BACKOFF: u64 = 42_000;

/// How much of the exponential delay is randomised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// A delay drawn uniformly from zero to the exponential delay: records that failed together
    /// (a downstream outage) come back spread out instead of all at once. The default.
    #[default]
    Full,
    /// Exactly the exponential delay.
    None,
}

/// The delay before a transiently failed record comes back: `base × 2^(receives − 1)`, at most
/// `cap`, with [`Jitter`]. Whole seconds, as SQS's visibility timeouts are.
///
/// ```
/// use std::time::Duration;
/// use sqs_kit::retry::{Backoff, Jitter};
///
/// let backoff: Backoff = "base=2,cap=60,jitter=none".parse().unwrap();
/// let delays: Vec<u64> = (1..=7).map(|receives| backoff.delay(receives).as_secs()).collect();
/// assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60]);
/// assert_eq!(Backoff::exponential(Duration::from_secs(2), Duration::from_secs(60)).unwrap().jitter, Jitter::Full);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// The delay after the first failed delivery.
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
    /// How the delay is randomised.
    pub jitter: Jitter,
}

/// A backoff setting that cannot be used; it says which part is wrong and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backoff {given:?}: {problem} (expected off, or base=<seconds>,cap=<seconds>[,jitter=full|none] with 1 <= base <= cap <= {MAX_BACKOFF})")]
pub struct InvalidBackoff {
    given: String,
    problem: String,
}

impl Backoff {
    /// Exponential backoff from `base` up to `cap`, with full jitter; whole seconds, with
    /// 1 s ≤ `base` ≤ `cap` ≤ [`MAX_BACKOFF`] s.
    pub fn exponential(base: Duration, cap: Duration) -> Result<Self, InvalidBackoff> {
        let invalid = |problem: &str| InvalidBackoff { given: format!("base={base:?},cap={cap:?}"), problem: problem.to_owned() };
        if base.subsec_nanos() != 0 || cap.subsec_nanos() != 0 {
            return Err(invalid("SQS visibility timeouts are whole seconds"));
        }
        if base.is_zero() {
            return Err(invalid("the base must be at least 1 s"));
        }
        if cap < base {
            return Err(invalid("the cap must not be below the base"));
        }
        if cap.as_secs() > MAX_BACKOFF {
            return Err(invalid("the cap is above what a message's 12 hours of visibility leave"));
        }
        Ok(Self { base, cap, jitter: Jitter::Full })
    }

    /// This backoff with `jitter`.
    pub fn with_jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// The delay without jitter after the delivery that was the `receives`-th (1 for the first;
    /// 0 counts as 1).
    pub fn delay(&self, receives: u32) -> Duration {
        let doublings = receives.saturating_sub(1).min(63);
        let delay = self.base.as_secs().saturating_mul(1u64.checked_shl(doublings).unwrap_or(u64::MAX));
        Duration::from_secs(delay.min(self.cap.as_secs()))
    }

    /// The visibility timeout to set after the `receives`-th delivery failed: [`Self::delay`]
    /// with the jitter applied, `unit` being a uniform draw from [0, 1).
    pub fn timeout(&self, receives: u32, unit: f64) -> Duration {
        let delay = self.delay(receives);
        match self.jitter {
            Jitter::None => delay,
            // Rounded to the nearest second: whole seconds from 0 to the delay, each as likely
            // as its share of the interval.
            Jitter::Full => Duration::from_secs((delay.as_secs() as f64 * unit.clamp(0.0, 1.0)).round() as u64),
        }
    }
}

impl fmt::Display for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jitter = match self.jitter {
            Jitter::Full => "full",
            Jitter::None => "none",
        };
        write!(f, "base={},cap={},jitter={jitter}", self.base.as_secs(), self.cap.as_secs())
    }
}

impl std::str::FromStr for Backoff {
    type Err = InvalidBackoff;

    /// `base=<seconds>,cap=<seconds>[,jitter=full|none]`, the form of `SQS_KIT_BACKOFF`.
    fn from_str(text: &str) -> Result<Self, InvalidBackoff> {
        let invalid = |problem: String| InvalidBackoff { given: text.to_owned(), problem };
        let (mut base, mut cap, mut jitter) = (None, None, Jitter::Full);
        for part in text.split(',') {
            let (name, value) = part.trim().split_once('=').ok_or_else(|| invalid(format!("{part:?} is not name=value")))?;
            let seconds = || value.trim().parse::<u64>().map_err(|_| invalid(format!("{name} must be whole seconds, not {value:?}")));
            match name.trim() {
                "base" => base = Some(seconds()?),
                "cap" => cap = Some(seconds()?),
                "jitter" => {
                    jitter = match value.trim() {
                        "full" => Jitter::Full,
                        "none" => Jitter::None,
                        other => return Err(invalid(format!("jitter must be full or none, not {other:?}"))),
                    }
                }
                other => return Err(invalid(format!("unknown setting {other:?}"))),
            }
        }
        let base = base.ok_or_else(|| invalid("base is missing".to_owned()))?;
        let cap = cap.ok_or_else(|| invalid("cap is missing".to_owned()))?;
        let backoff = Self::exponential(Duration::from_secs(base), Duration::from_secs(cap.min(u64::MAX / 2)))
            .map_err(|error| invalid(error.problem))?;
        Ok(backoff.with_jitter(jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The delay doubles with each receive until the cap, never passes it, and jitter only
        /// ever shortens it.
        #[test]
        fn delays_grow_to_the_cap_and_jitter_stays_below(base in 1u64..=600, extra in 0u64..=MAX_BACKOFF, receives in 0u32..=u32::MAX, unit in 0.0f64..1.0) {
            let cap = (base + extra).min(MAX_BACKOFF).max(base);
            let backoff = Backoff::exponential(Duration::from_secs(base), Duration::from_secs(cap)).unwrap();
            let delay = backoff.delay(receives).as_secs();
            let doublings = receives.saturating_sub(1);
            let expected = if doublings >= 40 { cap } else { (base << doublings).min(cap) };
            prop_assert_eq!(delay, expected);
            prop_assert!(backoff.delay(receives.saturating_add(1)) >= backoff.delay(receives));
            let jittered = backoff.timeout(receives, unit).as_secs();
            prop_assert!(jittered <= delay);
            prop_assert_eq!(backoff.with_jitter(Jitter::None).timeout(receives, unit).as_secs(), delay);
        }

        /// Whatever the text, parsing says yes or names the problem; what it accepts prints back
        /// to itself.
        #[test]
        fn any_text_parses_or_is_refused_and_accepted_ones_round_trip(text in "[a-z=,0-9 ]{0,40}") {
            if let Ok(backoff) = text.parse::<Backoff>() {
                prop_assert_eq!(backoff.to_string().parse::<Backoff>().unwrap(), backoff);
                prop_assert!(backoff.base >= Duration::from_secs(1) && backoff.base <= backoff.cap);
                prop_assert!(backoff.cap.as_secs() <= MAX_BACKOFF);
            }
        }
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        for (text, problem) in [
            ("base=0,cap=10", "at least 1 s"),
            ("base=10,cap=5", "not be below the base"),
            ("base=1,cap=43200", "12 hours"),
            ("base=1", "cap is missing"),
            ("cap=5", "base is missing"),
            ("base=1,cap=5,jitter=half", "full or none"),
            ("base=1s,cap=5", "whole seconds"),
            ("base=1,cap=5,max=9", "unknown setting \"max\""),
            ("on", "not name=value"),
        ] {
            let error = text.parse::<Backoff>().unwrap_err().to_string();
            assert!(error.contains(problem) && error.contains(text), "{text}: {error}");
        }
    }
}
