//! CloudWatch's alarm rule, without any I/O: datapoints in, a state out.
//!
//! A datapoint is known exactly, known only within bounds (a metric that cannot be observed
//! locally is somewhere in `[0, ∞)`: every metric the template alarms on is a count, a depth,
//! an age or a duration), or missing. The rule is then evaluated twice, with every uncertain
//! datapoint as not breaching and as breaching: the state is known when both agree, and is
//! INSUFFICIENT_DATA otherwise. That is sound because the rule is monotone: one more breaching
//! datapoint never moves an alarm from ALARM towards OK.
//!
//! The rule, per CloudWatch's documentation of `DatapointsToAlarm` and `TreatMissingData`:
//! over the last `EvaluationPeriods` (N) periods, the alarm is in ALARM when `DatapointsToAlarm`
//! (M) of them breach. Missing datapoints are: `notBreaching`, within the threshold;
//! `breaching`, over it; `missing` (the default), left out: no datapoint at all is
//! INSUFFICIENT_DATA, and with fewer than M present the alarm needs all of those to breach;
//! `ignore`, left out as well, but with no datapoint at all, or ALARM reached only because
//! datapoints are missing, the alarm keeps its current state.

use std::fmt;

/// What is known of a datapoint's value: `lo == hi` when it is known exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Bounds {
    pub lo: f64,
    pub hi: f64,
}

/// One period's value; `None` is a missing datapoint.
pub(super) type Datapoint = Option<Bounds>;

impl Bounds {
    pub fn exact(value: f64) -> Self {
        Bounds { lo: value, hi: value }
    }

    /// A metric that cannot be observed: any value a count, a depth or an age can take.
    pub fn unobserved() -> Self {
        Bounds { lo: 0.0, hi: f64::INFINITY }
    }

    /// Nothing known (the result of dividing by what may be zero).
    pub fn anything() -> Self {
        Bounds { lo: f64::NEG_INFINITY, hi: f64::INFINITY }
    }

    pub fn value(self) -> Option<f64> {
        (self.lo == self.hi).then_some(self.lo)
    }

    pub fn add(self, other: Self) -> Self {
        Bounds { lo: self.lo + other.lo, hi: self.hi + other.hi }
    }

    pub fn neg(self) -> Self {
        Bounds { lo: -self.hi, hi: -self.lo }
    }

    pub fn sub(self, other: Self) -> Self {
        self.add(other.neg())
    }

    pub fn mul(self, other: Self) -> Self {
        // 0 × ∞ is 0 here: an exact zero times an unbounded value is still zero.
        let times = |a: f64, b: f64| if a == 0.0 || b == 0.0 { 0.0 } else { a * b };
        let products = [times(self.lo, other.lo), times(self.lo, other.hi), times(self.hi, other.lo), times(self.hi, other.hi)];
        Bounds {
            lo: products.iter().copied().fold(f64::INFINITY, f64::min),
            hi: products.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// `None` for a division by zero: no datapoint, as metric math leaves out what it cannot
    /// compute.
    pub fn div(self, other: Self) -> Option<Self> {
        if other.lo == 0.0 && other.hi == 0.0 {
            None
        } else if other.lo <= 0.0 && other.hi >= 0.0 {
            Some(Bounds::anything())
        } else {
            // ∞ / ∞ says nothing; the other quotients still bound the result.
            let quotients = [self.lo / other.lo, self.lo / other.hi, self.hi / other.lo, self.hi / other.hi];
            let quotients = quotients.into_iter().filter(|q| !q.is_nan());
            let lo = quotients.clone().fold(f64::INFINITY, f64::min);
            let hi = quotients.fold(f64::NEG_INFINITY, f64::max);
            Some(if lo <= hi { Bounds { lo, hi } } else { Bounds::anything() })
        }
    }

    pub fn max(self, other: Self) -> Self {
        Bounds { lo: self.lo.max(other.lo), hi: self.hi.max(other.hi) }
    }

    /// The smallest bounds holding both.
    pub fn hull(self, other: Self) -> Self {
        Bounds { lo: self.lo.min(other.lo), hi: self.hi.max(other.hi) }
    }

    /// Whether `self <op> other` holds: `Some` when it does (or does not) for every value within
    /// the bounds.
    pub fn compare(self, op: Comparison, other: Self) -> Option<bool> {
        let (always, never) = match op {
            Comparison::Greater => (self.lo > other.hi, self.hi <= other.lo),
            Comparison::GreaterOrEqual => (self.lo >= other.hi, self.hi < other.lo),
            Comparison::Less => (self.hi < other.lo, self.lo >= other.hi),
            Comparison::LessOrEqual => (self.hi <= other.lo, self.lo > other.hi),
        };
        if always {
            Some(true)
        } else if never {
            Some(false)
        } else {
            None
        }
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            Some(value) => write!(f, "{}", number(value)),
            None if self.hi == f64::INFINITY && (self.lo >= 0.0 || self.lo == f64::NEG_INFINITY) => write!(f, "?"),
            None => write!(f, "{}..{}", number(self.lo), number(self.hi)),
        }
    }
}

/// A number as CloudWatch shows thresholds: no trailing `.0`, at most 4 decimals.
pub(super) fn number(value: f64) -> String {
    let rounded = (value * 10_000.0).round() / 10_000.0;
    if rounded.is_finite() && rounded == rounded.trunc() && rounded.abs() < 1e15 {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded}")
    }
}

/// An alarm's `ComparisonOperator` (the static-threshold ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    pub const ALL: [Comparison; 4] = [Comparison::Greater, Comparison::GreaterOrEqual, Comparison::Less, Comparison::LessOrEqual];

    pub fn name(self) -> &'static str {
        match self {
            Comparison::Greater => "GreaterThanThreshold",
            Comparison::GreaterOrEqual => "GreaterThanOrEqualToThreshold",
            Comparison::Less => "LessThanThreshold",
            Comparison::LessOrEqual => "LessThanOrEqualToThreshold",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Comparison::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
        }
    }
}

/// An alarm's `TreatMissingData`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MissingData {
    Missing,
    Ignore,
    Breaching,
    NotBreaching,
}

impl MissingData {
    pub const ALL: [MissingData; 4] = [MissingData::Missing, MissingData::Ignore, MissingData::Breaching, MissingData::NotBreaching];

    pub fn name(self) -> &'static str {
        match self {
            MissingData::Missing => "missing",
            MissingData::Ignore => "ignore",
            MissingData::Breaching => "breaching",
            MissingData::NotBreaching => "notBreaching",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        MissingData::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// An alarm's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Ok,
    Alarm,
    InsufficientData,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Alarm => "ALARM",
            State::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [State::Ok, State::Alarm, State::InsufficientData].into_iter().find(|s| s.name() == name)
    }
}

/// How an alarm turns its datapoints into a state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Rule {
    /// N, at least 1.
    pub evaluation_periods: usize,
    /// M, from 1 to N.
    pub datapoints_to_alarm: usize,
    pub threshold: f64,
    pub comparison: Comparison,
    pub missing: MissingData,
}

/// What the rule made of the last N datapoints.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Decision {
    pub state: State,
    /// Breaching datapoints (uncertain ones not counted), and those present.
    pub breaching: usize,
    pub present: usize,
    /// The datapoints left it open: some are only known within bounds that straddle the
    /// threshold, and the state depends on them.
    pub undecided: bool,
    /// `ignore` kept the alarm's current state.
    pub kept: bool,
}

impl Rule {
    /// The state for `window` (oldest first; only its last N datapoints count), `current` being
    /// the state the alarm is in (what `ignore` keeps; `None` before any evaluation).
    pub fn decide(&self, window: &[Datapoint], current: Option<State>) -> Decision {
        let last = &window[window.len().saturating_sub(self.evaluation_periods)..];
        let breaches: Vec<Option<Option<bool>>> =
            last.iter().map(|point| point.map(|bounds| bounds.compare(self.comparison, Bounds::exact(self.threshold)))).collect();
        let settle = |uncertain: bool| -> Vec<Option<bool>> { breaches.iter().map(|b| b.map(|b| b.unwrap_or(uncertain))).collect() };
        let (low, high) = (self.exact(&settle(false), current), self.exact(&settle(true), current));
        let breaching = breaches.iter().filter(|b| **b == Some(Some(true))).count();
        let present = breaches.iter().filter(|b| b.is_some()).count();
        if low == high {
            Decision { state: low.0, breaching, present, undecided: false, kept: low.1 }
        } else {
            Decision { state: State::InsufficientData, breaching, present, undecided: true, kept: false }
        }
    }

    /// The rule on datapoints that are each breaching, not breaching, or missing; with whether
    /// `ignore` kept the current state.
    fn exact(&self, points: &[Option<bool>], current: Option<State>) -> (State, bool) {
        let needed = self.datapoints_to_alarm;
        let filled = |missing_breaches: bool| points.iter().filter(|p| p.unwrap_or(missing_breaches)).count();
        let keep = (current.unwrap_or(State::InsufficientData), true);
        match self.missing {
            MissingData::NotBreaching => (if filled(false) >= needed { State::Alarm } else { State::Ok }, false),
            MissingData::Breaching => (if filled(true) >= needed { State::Alarm } else { State::Ok }, false),
            MissingData::Missing | MissingData::Ignore => {
                let present = points.iter().filter(|p| p.is_some()).count();
                let breaching = filled(false);
                if present == 0 {
                    return if self.missing == MissingData::Ignore { keep } else { (State::InsufficientData, false) };
                }
                if breaching >= needed {
                    (State::Alarm, false)
                } else if breaching >= needed.min(present) {
                    if self.missing == MissingData::Ignore {
                        keep
                    } else {
                        (State::Alarm, false)
                    }
                } else {
                    (State::Ok, false)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The rule as the CloudWatch documentation's table reads, written independently of
    /// [`Rule::exact`]: fill or drop the missing datapoints, then count.
    fn reference(n: usize, m: usize, missing: MissingData, points: &[Option<bool>], current: Option<State>) -> State {
        let points = &points[points.len() - n..];
        let count = |xs: &[bool]| xs.iter().filter(|x| **x).count();
        match missing {
            MissingData::NotBreaching | MissingData::Breaching => {
                let fill = missing == MissingData::Breaching;
                let filled: Vec<bool> = points.iter().map(|p| p.unwrap_or(fill)).collect();
                if count(&filled) >= m {
                    State::Alarm
                } else {
                    State::Ok
                }
            }
            MissingData::Missing | MissingData::Ignore => {
                let present: Vec<bool> = points.iter().flatten().copied().collect();
                let ignore = missing == MissingData::Ignore;
                if present.is_empty() {
                    return if ignore { current.unwrap_or(State::InsufficientData) } else { State::InsufficientData };
                }
                let all_present_breach = present.iter().all(|b| *b);
                if count(&present) >= m {
                    State::Alarm
                } else if present.len() < m && all_present_breach {
                    if ignore {
                        current.unwrap_or(State::InsufficientData)
                    } else {
                        State::Alarm
                    }
                } else {
                    State::Ok
                }
            }
        }
    }

    fn states() -> impl Strategy<Value = Option<State>> {
        prop::option::of(prop::sample::select(vec![State::Ok, State::Alarm, State::InsufficientData]))
    }

    /// N, M, the treatment, the comparison, the threshold, N+1 datapoints from a small range (so
    /// that values equal to the threshold come up).
    fn alarms() -> impl Strategy<Value = (Rule, Vec<Option<f64>>)> {
        (1usize..=5)
            .prop_flat_map(|n| {
                (
                    Just(n),
                    1..=n,
                    prop::sample::select(MissingData::ALL.to_vec()),
                    prop::sample::select(Comparison::ALL.to_vec()),
                    -2i32..=2,
                    prop::collection::vec(prop::option::of(-3i32..=3), n + 1),
                )
            })
            .prop_map(|(n, m, missing, comparison, threshold, points)| {
                let rule = Rule { evaluation_periods: n, datapoints_to_alarm: m, threshold: threshold.into(), comparison, missing };
                (rule, points.into_iter().map(|p| p.map(f64::from)).collect())
            })
    }

    fn breaches(rule: &Rule, value: f64) -> bool {
        match rule.comparison {
            Comparison::Greater => value > rule.threshold,
            Comparison::GreaterOrEqual => value >= rule.threshold,
            Comparison::Less => value < rule.threshold,
            Comparison::LessOrEqual => value <= rule.threshold,
        }
    }

    proptest! {
        #[test]
        fn exact_datapoints_follow_the_reference_model((rule, points) in alarms(), current in states()) {
            let window: Vec<Datapoint> = points.iter().map(|p| p.map(Bounds::exact)).collect();
            let decision = rule.decide(&window, current);
            let breaching: Vec<Option<bool>> = points.iter().map(|p| p.map(|v| breaches(&rule, v))).collect();
            let expected = reference(rule.evaluation_periods, rule.datapoints_to_alarm, rule.missing, &breaching, current);
            prop_assert_eq!(decision.state, expected);
            prop_assert!(!decision.undecided);
        }

        /// A state decided despite unobserved datapoints holds whatever values they turn out to
        /// have; an undecided one is INSUFFICIENT_DATA.
        #[test]
        fn unobserved_datapoints_never_decide_wrongly(
            (rule, points) in alarms(),
            unobserved in prop::collection::vec(any::<bool>(), 6),
            actual in prop::collection::vec(0i32..=4, 6),
            current in states(),
        ) {
            let window: Vec<Datapoint> = points
                .iter()
                .zip(&unobserved)
                .map(|(p, u)| if *u { Some(Bounds::unobserved()) } else { p.map(Bounds::exact) })
                .collect();
            let decision = rule.decide(&window, current);
            let instance: Vec<Datapoint> = window
                .iter()
                .zip(&actual)
                .map(|(p, a)| p.map(|b| if b.value().is_some() { b } else { Bounds::exact(f64::from(*a)) }))
                .collect();
            let truth = rule.decide(&instance, current);
            if decision.undecided {
                prop_assert_eq!(decision.state, State::InsufficientData);
            } else {
                prop_assert_eq!(decision.state, truth.state);
            }
        }

        /// Bounds arithmetic holds every result of the exact values within the bounds.
        #[test]
        fn bounds_arithmetic_contains_the_exact_results(
            a in -5i32..=5, b in -5i32..=5, da in 0i32..=3, db in 0i32..=3, ta in 0i32..=3, tb in 0i32..=3,
        ) {
            let (a, b) = (f64::from(a), f64::from(b));
            let x = Bounds { lo: a, hi: a + f64::from(da) };
            let y = Bounds { lo: b, hi: b + f64::from(db) };
            let (u, v) = (a + f64::from(ta.min(da)), b + f64::from(tb.min(db)));
            let within = |bounds: Bounds, value: f64| bounds.lo <= value && value <= bounds.hi;
            prop_assert!(within(x.add(y), u + v));
            prop_assert!(within(x.sub(y), u - v));
            prop_assert!(within(x.mul(y), u * v));
            prop_assert!(within(x.max(y), u.max(v)));
            if v != 0.0 {
                prop_assert!(x.div(y).is_some_and(|q| within(q, u / v)));
            }
            for op in Comparison::ALL {
                if let Some(holds) = x.compare(op, y) {
                    let exact = Bounds::exact(u).compare(op, Bounds::exact(v));
                    prop_assert_eq!(Some(holds), exact);
                }
            }
        }
    }

    #[test]
    fn the_documented_cases() {
        // CloudWatch's examples for 3 evaluation periods and 3 datapoints to alarm, "-" missing,
        // "X" breaching, "0" not breaching, and the state before being OK.
        let rule =
            |missing| Rule { evaluation_periods: 3, datapoints_to_alarm: 3, threshold: 0.0, comparison: Comparison::Greater, missing };
        let points = |text: &str| -> Vec<Datapoint> {
            text.chars()
                .map(|c| match c {
                    'X' => Some(Bounds::exact(1.0)),
                    '0' => Some(Bounds::exact(0.0)),
                    _ => None,
                })
                .collect()
        };
        let state = |missing, text: &str| rule(missing).decide(&points(text), Some(State::Ok)).state;
        use MissingData::*;
        assert_eq!(
            [state(Missing, "---"), state(Ignore, "---"), state(Breaching, "---"), state(NotBreaching, "---")],
            [State::InsufficientData, State::Ok, State::Alarm, State::Ok]
        );
        assert_eq!(
            [state(Missing, "-X-"), state(Ignore, "-X-"), state(Breaching, "-X-"), state(NotBreaching, "-X-")],
            [State::Alarm, State::Ok, State::Alarm, State::Ok]
        );
        assert_eq!([state(Missing, "0XX"), state(Breaching, "--0"), state(Missing, "--0")], [State::Ok, State::Ok, State::Ok]);
        assert_eq!(state(NotBreaching, "XXX"), State::Alarm);
        assert!(rule(Ignore).decide(&points("-X-"), Some(State::Ok)).kept);
    }

    #[test]
    fn numbers_print_as_cloudwatch_shows_them() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(80.0), "80");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1.0 / 3.0), "0.3333");
        assert_eq!(Bounds::unobserved().to_string(), "?");
        assert_eq!(Bounds::anything().to_string(), "?");
        assert_eq!(Bounds { lo: 1.0, hi: 2.0 }.to_string(), "1..2");
    }
}
