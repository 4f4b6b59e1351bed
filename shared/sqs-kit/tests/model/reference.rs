//! The reference model: what every record's outcome must be, worked out one record after the
//! other from the semantics the README states, and checked against what the real processor did.
//!
//! Where the semantics leave a choice to timing — which of two records with one key reaches the
//! layer first, whether a copy arrives while the first is still in flight — the model does not
//! guess: it takes the handler runs the test handler logged, and the interval in which each
//! record was inside the service, and allows exactly the outcomes that some moment of that
//! interval explains. Everything else (which records run at all, what holds back what, what
//! the deadline skips, what a duplicate answers) it decides alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};
use sqs_kit::batch::{BatchError, Skip};
use sqs_kit::{FailureKind, FifoFailureMode, Outcome};

use crate::harness::{Interval, Observation};
use crate::scenario::{Action, Body, Deadline, Idempotency, KeyName, KeySource, Payload, Queue, Scenario};

pub const TRANSIENT_REASON: &str = "model: the downstream service timed out";
pub const PERMANENT_REASON: &str = "model: the order cannot be processed";
pub const PANIC_MESSAGE: &str = "model: the handler gave up";

/// What a record's outcome may be.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    Processed(Value),
    Duplicate(Value),
    Failed(FailureKind, Cause),
    /// Not attempted for want of time: less than the margin was left.
    Deadline,
    Skipped(Skip),
}

/// Why a record failed, as far as its reason must say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Handler,
    Panic,
    NotJson,
    EmptyKey,
    /// The key is longer than DynamoDB allows; the reason names the limit.
    TooLong,
    /// The key was first used for another payload.
    Mismatch,
    /// The handler's effect happened but no completion is recorded, or this invocation's own
    /// claim still holds the key.
    Unrecorded,
    Abandoned,
}

impl Cause {
    fn explains(self, kind: FailureKind, reason: &str) -> bool {
        match self {
            Cause::Handler => reason == if kind == FailureKind::Transient { TRANSIENT_REASON } else { PERMANENT_REASON },
            Cause::Panic => reason.contains("panicked") && reason.contains(PANIC_MESSAGE),
            Cause::NotJson => reason.contains("not valid JSON"),
            Cause::TooLong => reason.contains("2048") || reason.contains("2,048"),
            Cause::Mismatch => reason.contains("different payload"),
            Cause::Abandoned => reason.contains("abandoned"),
            Cause::EmptyKey | Cause::Unrecorded => true,
        }
    }
}

fn matches(outcome: &Outcome, expect: &Expect, margin: std::time::Duration) -> bool {
    match (outcome, expect) {
        (Outcome::Processed(got), Expect::Processed(want)) | (Outcome::Duplicate(got), Expect::Duplicate(want)) => got == want,
        (Outcome::Failed(error), Expect::Failed(kind, cause)) => error.kind() == *kind && cause.explains(*kind, error.reason()),
        (Outcome::NotAttempted(Skip::Deadline { remaining }), Expect::Deadline) => *remaining < margin,
        (Outcome::NotAttempted(skip), Expect::Skipped(want)) => skip == want,
        _ => false,
    }
}

/// What the test handler returns for a body of `variant`, run for message `message_id`.
pub fn output(message_id: &str, variant: u8) -> Value {
    json!({"by": message_id, "variant": variant})
}

/// The queue kind comes from the event source ARN (`.fifo`); without an ARN, from
/// `SequenceNumber`, which only FIFO messages carry. Either way a fair queue is standard: its
/// `MessageGroupId` orders nothing.
pub fn is_fifo(scenario: &Scenario) -> bool {
    scenario.queue == Queue::Fifo
}

/// Records of one lane run one after the other; a failure holds back the rest of its lane.
pub fn lanes(scenario: &Scenario) -> Vec<Vec<usize>> {
    let all = 0..scenario.records.len();
    if !is_fifo(scenario) {
        return all.map(|index| vec![index]).collect();
    }
    if scenario.failure_mode == FifoFailureMode::StopBatch {
        return vec![all.collect()];
    }
    let mut by_group: BTreeMap<Option<u8>, Vec<usize>> = BTreeMap::new();
    for index in all {
        by_group.entry(scenario.records[index].group).or_default().push(index);
    }
    by_group.into_values().collect()
}

/// What a record failing holds back in its lane.
fn hold_back(scenario: &Scenario, index: usize) -> Skip {
    let record = &scenario.records[index];
    let failed_message_id = record.message_id.clone();
    match scenario.failure_mode {
        FifoFailureMode::StopBatch => Skip::BatchStopped { failed_message_id },
        FifoFailureMode::HoldBackGroup => {
            Skip::GroupHeldBack { group: format!("g{}", record.group.expect("every FIFO record has a group")), failed_message_id }
        }
        other => panic!("unexpected failure mode {other:?}: the reference model has no rule for it"),
    }
}

/// A record's idempotency key, or why the layer refuses it.
pub fn idempotency_key(idempotency: &Idempotency, message_id: &str, payload: Payload) -> Result<String, Cause> {
    match idempotency.key_source {
        KeySource::MessageId if message_id.is_empty() => Err(Cause::EmptyKey),
        KeySource::MessageId => Ok(message_id.to_owned()),
        KeySource::Pointer => match payload.key {
            KeyName::Id(_) => Ok(payload.key.text()),
            KeyName::Empty => Err(Cause::EmptyKey),
            KeyName::TooLong => Err(Cause::TooLong),
        },
    }
}

/// The earlier deliveries that completed, one per key, with their keys: those whose key is
/// valid and whose handler succeeds.
pub fn prior_completions<'a>(scenario: &'a Scenario, idempotency: &'a Idempotency) -> Vec<(&'a crate::scenario::PriorUse, String)> {
    let mut seen = BTreeSet::new();
    idempotency
        .prior
        .iter()
        .filter(|prior| scenario.behaviour.action(prior.payload) == Action::Ok)
        .filter_map(|prior| Some((prior, idempotency_key(idempotency, &prior.message_id, prior.payload).ok()?)))
        .filter(|(_, key)| seen.insert(key.clone()))
        .collect()
}

fn refused(scenario: &Scenario) -> Option<usize> {
    scenario.records.iter().position(|record| record.message_id.is_empty())
}

/// The records whose handlers must all be running at once, when the batch allows it: every
/// record of a standard or fair queue, or the first record of every FIFO group, as long as
/// they fit in `max_concurrency`. The harness makes them wait for each other.
pub fn rendezvous(scenario: &Scenario) -> BTreeSet<String> {
    if scenario.idempotency.is_some() || scenario.deadline != Deadline::Ample || refused(scenario).is_some() {
        return BTreeSet::new();
    }
    if is_fifo(scenario) && scenario.failure_mode == FifoFailureMode::StopBatch {
        return BTreeSet::new();
    }
    let firsts = lanes(scenario).into_iter().filter_map(|lane| if is_fifo(scenario) { lane.first().copied() } else { None });
    let candidates: Vec<usize> = if is_fifo(scenario) { firsts.collect() } else { (0..scenario.records.len()).collect() };
    let participants: BTreeSet<String> = candidates
        .into_iter()
        .filter(|&index| matches!(scenario.records[index].body, Body::Json(_)))
        .map(|index| scenario.records[index].message_id.clone())
        .collect();
    if (2..=scenario.max_concurrency).contains(&participants.len()) {
        participants
    } else {
        BTreeSet::new()
    }
}

/// For a gated batch: each record's idempotency key and how many records of the batch reach the
/// layer with it.
pub fn gate(scenario: &Scenario) -> HashMap<String, (String, usize)> {
    let Some(idempotency) = &scenario.idempotency else { return HashMap::new() };
    let fits = scenario.records.len() <= scenario.max_concurrency;
    if !idempotency.gate || is_fifo(scenario) || !fits || scenario.deadline != Deadline::Ample || refused(scenario).is_some() {
        return HashMap::new();
    }
    let keyed: Vec<(String, String)> = scenario
        .records
        .iter()
        .filter_map(|record| match record.body {
            Body::Json(payload) => Some((record.message_id.clone(), idempotency_key(idempotency, &record.message_id, payload).ok()?)),
            Body::NotJson => None,
        })
        .collect();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (_, key) in &keyed {
        *counts.entry(key.clone()).or_default() += 1;
    }
    keyed.into_iter().map(|(id, key)| (id, (key.clone(), counts[&key]))).collect()
}

/// A key's state, as a record arriving at the layer would find it.
#[derive(Clone, Debug, PartialEq)]
enum KeyState {
    Free,
    Completed(Payload, Value),
    /// Claimed by this invocation and neither completed nor released.
    Held(Payload),
}

/// What a record arriving while `run` is in flight gets: the same work, done once.
fn joined(result: &Expect) -> Expect {
    match result {
        Expect::Processed(output) => Expect::Duplicate(output.clone()),
        other => other.clone(),
    }
}

/// A record arriving when the key is in `state`, where it does not run the handler itself.
fn found(state: &KeyState, payload: Payload) -> Option<Expect> {
    match state {
        KeyState::Free => None,
        KeyState::Completed(first, output) if *first == payload => Some(Expect::Duplicate(output.clone())),
        KeyState::Held(first) if *first == payload => Some(Expect::Failed(FailureKind::Transient, Cause::Unrecorded)),
        KeyState::Completed(..) | KeyState::Held(_) => Some(Expect::Failed(FailureKind::Permanent, Cause::Mismatch)),
    }
}

fn overlaps(a: (u64, u64), b: (Option<u64>, Option<u64>)) -> bool {
    b.0.is_none_or(|low| low < a.1) && b.1.is_none_or(|high| a.0 < high)
}

fn span(interval: &Interval) -> (u64, u64) {
    (interval.enter, interval.exit.unwrap_or(u64::MAX))
}

/// What a handler run of `payload` reports: its handler's answer, or abandonment when it was
/// still running at the deadline.
fn run_result(scenario: &Scenario, message_id: &str, payload: Payload, finished: bool) -> Expect {
    if !finished {
        return Expect::Failed(FailureKind::Transient, Cause::Abandoned);
    }
    match scenario.behaviour.action(payload) {
        Action::Ok => Expect::Processed(output(message_id, payload.variant)),
        Action::Transient => Expect::Failed(FailureKind::Transient, Cause::Handler),
        Action::Permanent => Expect::Failed(FailureKind::Permanent, Cause::Handler),
        Action::Panic => Expect::Failed(FailureKind::Transient, Cause::Panic),
    }
}

/// When the deadline falls during the batch, a handler can finish in the instant the processor
/// gives up on it: the record is then reported abandoned although its handler ended.
fn with_late_abandonment(scenario: &Scenario, result: Expect) -> Vec<Expect> {
    let abandoned = Expect::Failed(FailureKind::Transient, Cause::Abandoned);
    if matches!(scenario.deadline, Deadline::Cut { .. }) && result != abandoned {
        vec![result, abandoned]
    } else {
        vec![result]
    }
}

fn payload_of(scenario: &Scenario, index: usize) -> Payload {
    match scenario.records[index].body {
        Body::Json(payload) => payload,
        Body::NotJson => unreachable!("a body that is not JSON never reaches the service"),
    }
}

/// A stretch of the case's logical time, `(from, until)`; `None` is open-ended (since the case
/// began, or to its end).
type Window = (Option<u64>, Option<u64>);

/// The outcomes allowed for every record that reached the service, without idempotency: each
/// ran its handler once, and its handler decided.
fn plain_allowed(scenario: &Scenario, observation: &Observation, index_of: &HashMap<&str, usize>) -> Result<Vec<Vec<Expect>>, String> {
    let mut allowed = vec![Vec::new(); scenario.records.len()];
    for id in observation.intervals.keys() {
        let index = index_of[id.as_str()];
        let runs: Vec<_> = observation.runs.iter().filter(|run| &run.message_id == id).collect();
        let [run] = runs.as_slice() else {
            return Err(format!("record {id} reached the service but its handler ran {} times, not once", runs.len()));
        };
        allowed[index] = with_late_abandonment(scenario, run_result(scenario, id, payload_of(scenario, index), run.end.is_some()));
    }
    Ok(allowed)
}

/// The outcomes allowed for every record that reached the idempotency layer, key by key: the
/// key's history is the earlier deliveries, then the handler runs in the order they happened
/// (never overlapping), each allowed only while the key is free. A record that ran no handler
/// found the key in some state while it was in the layer: completed (a duplicate, or a
/// mismatch), held by a claim of this invocation, or in flight (sharing that run's outcome, or
/// a mismatch).
fn keyed_allowed(
    scenario: &Scenario,
    idempotency: &Idempotency,
    observation: &Observation,
    index_of: &HashMap<&str, usize>,
) -> Result<Vec<Vec<Expect>>, String> {
    let mut allowed = vec![Vec::new(); scenario.records.len()];
    let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for id in observation.intervals.keys() {
        let index = index_of[id.as_str()];
        match idempotency_key(idempotency, id, payload_of(scenario, index)) {
            Ok(key) => members.entry(key).or_default().push(index),
            Err(cause) => allowed[index] = vec![Expect::Failed(FailureKind::Permanent, cause)],
        }
    }
    let mut key_of_record = HashMap::new();
    for (key, indexes) in &members {
        for &index in indexes {
            key_of_record.insert(index, key.as_str());
        }
    }
    for run in &observation.runs {
        let index = index_of[run.message_id.as_str()];
        if !key_of_record.contains_key(&index) {
            return Err(format!("record {} ran the handler though the layer must refuse its key", run.message_id));
        }
    }
    let prior: HashMap<String, KeyState> = prior_completions(scenario, idempotency)
        .into_iter()
        .map(|(prior, key)| (key, KeyState::Completed(prior.payload, output(&prior.message_id, prior.payload.variant))))
        .collect();

    for (key, indexes) in &members {
        let mut runs: Vec<_> = observation.runs.iter().filter(|run| key_of_record[&index_of[run.message_id.as_str()]] == key).collect();
        runs.sort_by_key(|run| run.start);
        let mut state = prior.get(key).cloned().unwrap_or(KeyState::Free);
        // Stable states between runs, bounded by the handler runs around them, and the runs in
        // flight, bounded by their record's time in the layer.
        let mut stable: Vec<(Window, KeyState)> = Vec::new();
        let mut in_flight: Vec<(Window, Payload, Expect)> = Vec::new();
        let mut since = None;
        let mut ran = BTreeSet::new();
        for run in &runs {
            let index = index_of[run.message_id.as_str()];
            if let Some(before) = since {
                if run.start < before {
                    return Err(format!("two handler runs of key {key} overlapped; the second was {}", run.message_id));
                }
            }
            if state != KeyState::Free {
                return Err(format!(
                    "record {} ran the handler of key {key} though the key was {state:?}: a duplicate ran",
                    run.message_id
                ));
            }
            if !ran.insert(index) {
                return Err(format!("record {} ran the handler twice", run.message_id));
            }
            stable.push(((since, Some(run.start)), state.clone()));
            let payload = payload_of(scenario, index);
            let mut result = run_result(scenario, &run.message_id, payload, run.end.is_some());
            state = match &result {
                Expect::Processed(_) if idempotency.failing_completions.contains(key) => {
                    result = Expect::Failed(FailureKind::Transient, Cause::Unrecorded);
                    KeyState::Held(payload)
                }
                Expect::Processed(output) => KeyState::Completed(payload, output.clone()),
                Expect::Failed(_, Cause::Abandoned) => KeyState::Held(payload),
                _ => KeyState::Free,
            };
            let interval = &observation.intervals[&run.message_id];
            in_flight.push(((Some(interval.enter), interval.exit), payload, result.clone()));
            allowed[index] = with_late_abandonment(scenario, result);
            // A run that never ended leaves the key in flight to the end.
            since = Some(run.end.unwrap_or(u64::MAX));
        }
        stable.push(((since, None), state));

        for &index in indexes.iter().filter(|index| !ran.contains(index)) {
            let id = &scenario.records[index].message_id;
            let payload = payload_of(scenario, index);
            let inside = span(&observation.intervals[id]);
            let mut options: Vec<Expect> = Vec::new();
            for (bounds, state) in &stable {
                if overlaps(inside, *bounds) {
                    options.extend(found(state, payload));
                }
            }
            for (bounds, first, result) in &in_flight {
                if overlaps(inside, *bounds) {
                    options.push(if *first == payload { joined(result) } else { Expect::Failed(FailureKind::Permanent, Cause::Mismatch) });
                }
            }
            if options.is_empty() {
                return Err(format!(
                    "record {id} (key {key}) ran no handler, but key {key} was free all the while it was in the layer, so it should have"
                ));
            }
            allowed[index] = options;
        }
    }
    Ok(allowed)
}

/// Checks one batch: the processor's report, the handler runs and the records' times in the
/// service, against the model.
pub fn check(scenario: &Scenario, observation: &Observation) -> Result<(), String> {
    if !observation.returned_before_deadline {
        return Err("process() returned after the invocation's deadline: Lambda never got the response".into());
    }
    if let Some(index) = refused(scenario) {
        // A record without a message id cannot be named in a failure report: the batch as a
        // whole is refused, and nothing runs.
        if !matches!(observation.result, Err(BatchError::MissingMessageId { index: found }) if found == index) {
            return Err(format!("record {index} has an empty message id, so the batch must be refused; got {:?}", observation.result));
        }
        if !observation.runs.is_empty() || !observation.intervals.is_empty() {
            return Err("records ran although the batch was refused".into());
        }
        return Ok(());
    }
    let report = observation.result.as_ref().map_err(|error| format!("the batch failed as a whole: {error}"))?;
    let reported: Vec<&str> = report.records.iter().map(|record| record.message_id.as_str()).collect();
    let ids: Vec<&str> = scenario.records.iter().map(|record| record.message_id.as_str()).collect();
    if reported != ids {
        return Err(format!("the report names {reported:?}, the batch was {ids:?}"));
    }
    let index_of: HashMap<&str, usize> = ids.iter().enumerate().map(|(index, id)| (*id, index)).collect();
    if let Some(stranger) = observation
        .intervals
        .keys()
        .chain(observation.runs.iter().map(|run| &run.message_id))
        .find(|id| !index_of.contains_key(id.as_str()))
    {
        return Err(format!("the service saw a record {stranger} that is not in the batch"));
    }
    let allowed = match &scenario.idempotency {
        None => plain_allowed(scenario, observation, &index_of)?,
        Some(idempotency) => keyed_allowed(scenario, idempotency, observation, &index_of)?,
    };

    let margin = scenario.margin();
    for lane in lanes(scenario) {
        let mut held_back: Option<Skip> = None;
        let mut out_of_time = scenario.deadline == Deadline::Exhausted;
        let mut previous: Option<&Interval> = None;
        for index in lane {
            let record = &scenario.records[index];
            let id = record.message_id.as_str();
            let outcome = &report.records[index].outcome;
            let entered = observation.intervals.get(id);
            let not_json = record.body == Body::NotJson;
            let reaches_service;
            let expected = if let Some(skip) = &held_back {
                reaches_service = false;
                vec![Expect::Skipped(skip.clone())]
            } else if out_of_time
                || (matches!(scenario.deadline, Deadline::Cut { .. })
                    && entered.is_none()
                    && matches!(outcome, Outcome::NotAttempted(Skip::Deadline { .. })))
            {
                // Time only runs out: once a record of a lane is skipped for the deadline, the
                // rest of the lane is too.
                out_of_time = true;
                reaches_service = false;
                let mut expected = vec![Expect::Deadline];
                if not_json {
                    expected.push(Expect::Failed(FailureKind::Permanent, Cause::NotJson));
                }
                expected
            } else if not_json {
                reaches_service = false;
                vec![Expect::Failed(FailureKind::Permanent, Cause::NotJson)]
            } else {
                reaches_service = true;
                allowed[index].clone()
            };
            if reaches_service != entered.is_some() {
                return Err(if reaches_service {
                    format!("record {id} never reached the service, reported {outcome}; the model runs it")
                } else {
                    format!("record {id} reached the service, but the model says {expected:?}")
                });
            }
            if !expected.iter().any(|expect| matches(outcome, expect, margin)) {
                return Err(format!("record {id}: reported {outcome:?}; the model allows only {expected:?}"));
            }
            if is_fifo(scenario) {
                if let Some(interval) = entered {
                    // One at a time in a lane, in order: the previous record was done before
                    // this one began.
                    if let Some(before) = previous {
                        if before.exit.is_none_or(|exit| exit >= interval.enter) {
                            return Err(format!("record {id} started before the record ahead of it in its FIFO lane had finished"));
                        }
                    }
                    previous = Some(interval);
                }
                if outcome.is_failure() && held_back.is_none() && !out_of_time {
                    held_back = Some(hold_back(scenario, index));
                }
            }
        }
    }

    if let Some(run) = observation.runs.iter().find(|run| run.rendezvous_missed) {
        return Err(format!(
            "record {}'s handler waited in vain for the other records of a batch that must run side by side",
            run.message_id
        ));
    }
    check_effects(scenario, observation, report, &index_of)
}

/// The promises stated by counting: a record reported done was completed exactly once (its
/// handler's effect happened once, for its key or for itself), and a duplicate never ran.
fn check_effects(
    scenario: &Scenario,
    observation: &Observation,
    report: &sqs_kit::batch::BatchReport,
    index_of: &HashMap<&str, usize>,
) -> Result<(), String> {
    let effect = |run: &&crate::harness::Run| {
        run.end.is_some() && scenario.behaviour.action(payload_of(scenario, index_of[run.message_id.as_str()])) == Action::Ok
    };
    for (index, record) in report.records.iter().enumerate() {
        let ran = observation.runs.iter().filter(|run| run.message_id == record.message_id).count();
        if matches!(record.outcome, Outcome::Duplicate(_)) && ran > 0 {
            return Err(format!("record {} is reported a duplicate, but its handler ran", record.message_id));
        }
        if record.outcome.is_failure() {
            continue;
        }
        let effects = match &scenario.idempotency {
            None => observation.runs.iter().filter(|run| run.message_id == record.message_id).filter(effect).count(),
            Some(idempotency) => {
                let key = idempotency_key(idempotency, &record.message_id, payload_of(scenario, index))
                    .map_err(|_| format!("record {} is reported done, but its key must be refused", record.message_id))?;
                let earlier = prior_completions(scenario, idempotency).iter().filter(|(_, prior)| *prior == key).count();
                let now = observation
                    .runs
                    .iter()
                    .filter(effect)
                    .filter(|run| {
                        let runner = index_of[run.message_id.as_str()];
                        idempotency_key(idempotency, &run.message_id, payload_of(scenario, runner)).as_ref() == Ok(&key)
                    })
                    .count();
                earlier + now
            }
        };
        if effects != 1 {
            return Err(format!("record {} is reported done, but its work was completed {effects} times", record.message_id));
        }
    }
    Ok(())
}
