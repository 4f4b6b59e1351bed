//! What the model is checked on: a batch as the test generates it (queue, records, how each
//! payload behaves, the idempotency set-up, the time left), how proptest draws one, and the SQS
//! event it becomes.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};
use sqs_kit::FifoFailureMode;

use crate::common::{self, FIFO_ARN, STANDARD_ARN};

/// Idempotency keys `k0`..`k2`: few, so that batches repeat them.
pub const KEYS: u8 = 3;
pub const MAX_RECORDS: usize = 8;
/// Longer than DynamoDB's 2,048-byte partition key, with any function name in front.
const TOO_LONG_KEY_BYTES: usize = 3000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    Standard,
    Fifo,
    /// A standard queue whose messages carry a `MessageGroupId` (some of them, here).
    Fair,
}

/// Whether the records carry their event source ARN. Without one, FIFO records are told apart
/// by `SequenceNumber`, which SQS gives FIFO messages only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Arn,
    NoArn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Ok,
    Transient,
    Permanent,
    Panic,
}

/// What a handler does before it answers: nothing, give way to other tasks a few times, or sleep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    None,
    Yield(u8),
    Sleep(u64),
}

/// The `eventId` of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyName {
    Id(u8),
    Empty,
    TooLong,
}

impl KeyName {
    pub fn text(self) -> String {
        match self {
            KeyName::Id(n) => format!("k{n}"),
            KeyName::Empty => String::new(),
            KeyName::TooLong => "k".repeat(TOO_LONG_KEY_BYTES),
        }
    }

    fn slot(self) -> usize {
        match self {
            KeyName::Id(n) => usize::from(n),
            KeyName::Empty => usize::from(KEYS),
            KeyName::TooLong => usize::from(KEYS) + 1,
        }
    }
}

/// What a JSON body says. Two bodies are equal exactly when their payloads are, and a payload
/// always behaves the same way (see [`Behaviour`]), as a re-sent event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Payload {
    pub key: KeyName,
    pub variant: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Json(Payload),
    NotJson,
}

#[derive(Clone, Debug)]
pub struct RecordSpec {
    /// Empty for a record Lambda could not name in a failure report.
    pub message_id: String,
    pub group: Option<u8>,
    pub body: Body,
}

/// The action and pause of every payload, indexed by key slot and variant.
#[derive(Clone, Debug)]
pub struct Behaviour {
    pub actions: [[Action; 2]; 5],
    pub pauses: [[Pause; 2]; 5],
}

impl Behaviour {
    pub fn action(&self, payload: Payload) -> Action {
        self.actions[payload.key.slot()][usize::from(payload.variant)]
    }

    fn pause(&self, payload: Payload) -> Pause {
        self.pauses[payload.key.slot()][usize::from(payload.variant)]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `IdempotencyConfig::keyed_by("/eventId")`.
    Pointer,
    /// The default: the SQS message id.
    MessageId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Embedded,
}

/// An earlier delivery, completed before the batch: its key is in the store, and in the warm
/// cache too when it went through the same layer.
#[derive(Clone, Debug)]
pub struct PriorUse {
    pub message_id: String,
    pub payload: Payload,
}

#[derive(Clone, Debug)]
pub struct Idempotency {
    pub store: StoreKind,
    pub key_source: KeySource,
    pub cache_capacity: usize,
    /// The earlier deliveries went through the layer under test (its cache is warm) rather than
    /// through another one on the same store.
    pub warm: bool,
    pub prior: Vec<PriorUse>,
    /// Idempotency keys (without the function's prefix) whose completion the store refuses.
    pub failing_completions: BTreeSet<String>,
    /// Handlers wait briefly until every record of their key has reached the layer, so that
    /// those find the key in flight.
    pub gate: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// Time enough for the whole batch.
    Ample,
    /// Less than the margin is left when the batch starts.
    Exhausted,
    /// The deadline falls during the batch (real time: slow handlers).
    Cut { remaining_ms: u64, margin_ms: u64 },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub queue: Queue,
    pub source: Source,
    pub failure_mode: FifoFailureMode,
    pub max_concurrency: usize,
    pub deadline: Deadline,
    pub records: Vec<RecordSpec>,
    pub behaviour: Behaviour,
    pub idempotency: Option<Idempotency>,
}

impl Scenario {
    /// The deadline margin the processor is configured with.
    pub fn margin(&self) -> Duration {
        match self.deadline {
            Deadline::Ample => Duration::from_millis(20),
            Deadline::Exhausted => Duration::from_secs(2),
            Deadline::Cut { margin_ms, .. } => Duration::from_millis(margin_ms),
        }
    }

    /// The time the invocation has left when the batch starts. A store that refuses completions
    /// gets under a second: the layer retries a completion only with more time left than that,
    /// and its pauses between attempts are a quarter of a second and more.
    pub fn remaining(&self) -> Duration {
        match self.deadline {
            Deadline::Ample if self.refuses_completions() => Duration::from_millis(990),
            Deadline::Ample => Duration::from_secs(30),
            Deadline::Exhausted => Duration::from_millis(990),
            Deadline::Cut { remaining_ms, .. } => Duration::from_millis(remaining_ms),
        }
    }

    fn refuses_completions(&self) -> bool {
        self.idempotency.as_ref().is_some_and(|idempotency| !idempotency.failing_completions.is_empty())
    }

    pub fn event(&self) -> SqsEvent {
        common::event(self.records.iter().enumerate().map(|(index, record)| self.record(index, record)).collect())
    }

    fn record(&self, index: usize, spec: &RecordSpec) -> Value {
        let mut record = common::record(&spec.message_id, &self.body_text(spec.body));
        if let Some(group) = spec.group {
            record["attributes"]["MessageGroupId"] = json!(format!("g{group}"));
        }
        if self.queue == Queue::Fifo {
            record["attributes"]["SequenceNumber"] = json!(format!("{}", 18_000_000 + index));
        }
        match self.source {
            Source::Arn => record["eventSourceARN"] = json!(if self.queue == Queue::Fifo { FIFO_ARN } else { STANDARD_ARN }),
            Source::NoArn => {
                record.as_object_mut().expect("a record is an object").remove("eventSourceARN");
            }
        }
        record
    }

    pub fn body_text(&self, body: Body) -> String {
        let Body::Json(payload) = body else { return "{not json".to_owned() };
        let action = match self.behaviour.action(payload) {
            Action::Ok => "ok",
            Action::Transient => "transient",
            Action::Permanent => "permanent",
            Action::Panic => "panic",
        };
        let (yields, sleep_ms) = match self.behaviour.pause(payload) {
            Pause::None => (0, 0),
            Pause::Yield(n) => (n, 0),
            Pause::Sleep(ms) => (0, ms),
        };
        json!({
            "eventId": payload.key.text(),
            "variant": payload.variant,
            "action": action,
            "yields": yields,
            "sleep_ms": sleep_ms,
        })
        .to_string()
    }
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![6 => Just(Action::Ok), 2 => Just(Action::Transient), 1 => Just(Action::Permanent), 1 => Just(Action::Panic)]
}

fn quick_pause() -> BoxedStrategy<Pause> {
    prop_oneof![4 => Just(Pause::None), 3 => (1u8..=4).prop_map(Pause::Yield), 1 => Just(Pause::Sleep(1))].boxed()
}

fn behaviour(pause: BoxedStrategy<Pause>) -> impl Strategy<Value = Behaviour> {
    (prop::array::uniform5(prop::array::uniform2(action())), prop::array::uniform5(prop::array::uniform2(pause)))
        .prop_map(|(actions, pauses)| Behaviour { actions, pauses })
}

fn payload() -> impl Strategy<Value = Payload> {
    let key = prop_oneof![12 => (0..KEYS).prop_map(KeyName::Id), 1 => Just(KeyName::Empty), 1 => Just(KeyName::TooLong)];
    (key, 0u8..2).prop_map(|(key, variant)| Payload { key, variant })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![12 => payload().prop_map(Body::Json), 1 => Just(Body::NotJson)]
}

fn queue() -> impl Strategy<Value = Queue> {
    prop_oneof![Just(Queue::Standard), Just(Queue::Fifo), Just(Queue::Fair)]
}

fn failure_mode() -> impl Strategy<Value = FifoFailureMode> {
    prop_oneof![3 => Just(FifoFailureMode::HoldBackGroup), 1 => Just(FifoFailureMode::StopBatch)]
}

/// Records of `queue`: message ids `m0`, `m1`, ..., one of them sometimes empty; groups on
/// every FIFO record, on some records of a fair queue, on none of a standard queue.
fn records(
    queue: Queue,
    count: std::ops::RangeInclusive<usize>,
    body: impl Strategy<Value = Body>,
) -> impl Strategy<Value = Vec<RecordSpec>> {
    let drawn = vec((0u8..3, any::<bool>(), body), count);
    (drawn, prop::option::weighted(0.03, 0..MAX_RECORDS)).prop_map(move |(drawn, empty_id)| {
        drawn
            .into_iter()
            .enumerate()
            .map(|(index, (group, grouped, body))| RecordSpec {
                message_id: if empty_id == Some(index) { String::new() } else { format!("m{index}") },
                group: match queue {
                    Queue::Standard => None,
                    Queue::Fifo => Some(group),
                    Queue::Fair => grouped.then_some(group),
                },
                body,
            })
            .collect()
    })
}

fn idempotency(store: StoreKind) -> impl Strategy<Value = Idempotency> {
    let key_source = prop_oneof![4 => Just(KeySource::Pointer), 1 => Just(KeySource::MessageId)];
    let cache_capacity = prop_oneof![Just(0usize), Just(1024)];
    let prior = vec((0..MAX_RECORDS, payload()), 0..=3);
    let failing = prop_oneof![3 => Just(Vec::new()), 1 => vec(0..MAX_RECORDS, 1..=2)];
    (key_source, cache_capacity, any::<bool>(), prior, failing, any::<bool>()).prop_map(
        move |(key_source, cache_capacity, warm, prior, failing, gate)| {
            let prior = prior
                .into_iter()
                .enumerate()
                .map(|(n, (index, payload))| PriorUse {
                    message_id: match key_source {
                        KeySource::Pointer => format!("p{n}"),
                        // A redelivery of one of the batch's messages.
                        KeySource::MessageId => format!("m{index}"),
                    },
                    payload,
                })
                .collect();
            let failing_completions = failing
                .into_iter()
                .map(|index| match key_source {
                    KeySource::Pointer => format!("k{}", index % usize::from(KEYS)),
                    KeySource::MessageId => format!("m{index}"),
                })
                .collect();
            Idempotency { store, key_source, cache_capacity, warm, prior, failing_completions, gate }
        },
    )
}

/// Batches with time enough (now and then none at all), with or without idempotency.
pub fn scenario(store: Option<StoreKind>) -> impl Strategy<Value = Scenario> {
    let source = prop_oneof![3 => Just(Source::Arn), 1 => Just(Source::NoArn)];
    let max_concurrency = prop_oneof![Just(1usize), Just(2), Just(4), Just(10)];
    let deadline = prop_oneof![19 => Just(Deadline::Ample), 1 => Just(Deadline::Exhausted)];
    let idempotency = match store {
        Some(store) => idempotency(store).prop_map(Some).boxed(),
        None => Just(None).boxed(),
    };
    queue()
        .prop_flat_map(move |queue| {
            (
                Just(queue),
                source.clone(),
                failure_mode(),
                max_concurrency.clone(),
                deadline.clone(),
                records(queue, 0..=MAX_RECORDS, body()),
                behaviour(quick_pause()),
                idempotency.clone(),
            )
        })
        .prop_map(|(queue, source, failure_mode, max_concurrency, deadline, records, behaviour, idempotency)| Scenario {
            queue,
            source,
            failure_mode,
            max_concurrency,
            deadline,
            records,
            behaviour,
            idempotency,
        })
}

/// Small batches whose deadline falls while they run: handlers that take 40 ms, and some that
/// would take 3 s and must be abandoned. Keys are the message ids, so none repeats.
pub fn deadline_scenario() -> impl Strategy<Value = Scenario> {
    let pause = prop_oneof![1 => Just(Pause::None), 3 => Just(Pause::Sleep(40)), 1 => Just(Pause::Sleep(3000))].boxed();
    let idempotency = prop_oneof![
        Just(None),
        Just(Some(Idempotency {
            store: StoreKind::Memory,
            key_source: KeySource::MessageId,
            cache_capacity: 1024,
            warm: false,
            prior: Vec::new(),
            failing_completions: BTreeSet::new(),
            gate: false,
        })),
    ];
    let body = payload().prop_map(Body::Json).boxed();
    queue()
        .prop_flat_map(move |queue| {
            (Just(queue), failure_mode(), records(queue, 1..=5, body.clone()), behaviour(pause.clone()), idempotency.clone())
        })
        .prop_map(|(queue, failure_mode, mut records, behaviour, idempotency)| {
            for (index, record) in records.iter_mut().enumerate() {
                record.message_id = format!("m{index}");
            }
            Scenario {
                queue,
                source: Source::Arn,
                failure_mode,
                max_concurrency: 4,
                deadline: Deadline::Cut { remaining_ms: 300, margin_ms: 100 },
                records,
                behaviour,
                idempotency,
            }
        })
}
