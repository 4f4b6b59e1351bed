//! The store contract as a sequential model, and every store checked against it under
//! concurrency: several tasks run generated sequences of claims, completions and releases on a
//! few keys at once, and the history they observe (each call's arguments, answer, start and end)
//! must be linearizable with respect to the model. That is, some order of the calls, consistent
//! with which call ended before which began, gives every call the answer the model gives and
//! leaves the state the store holds afterwards.
//!
//! The model is the contract in a few lines (`Model::apply`): a claim is acquired iff no live
//! record holds the key; a completion or a release is written iff the record still carries the
//! caller's claim token (a release only of an `IN_PROGRESS` record). So at most one task owns a
//! key at a time, a record is never overwritten or deleted by a task whose claim was taken
//! over, and a released (or lapsed, or expired) key can be claimed again. Tasks complete and
//! release with their latest claim of a key, won or not, so non-owners try too.
//!
//! Each store prints its case count and seed. With `CI=true` the seed is fixed; otherwise it is
//! random, and `SQS_KIT_MODEL_SEED=<64 hex digits>` replays a printed one;
//! `SQS_KIT_MODEL_CASES=N` changes the count. DynamoDB runs against moto when
//! `AWS_ENDPOINT_URL` is set (`scripts/with-moto`), Redis against the server at `REDIS_URL`
//! (`scripts/with-redis`).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::seed::{case_count, hex, report, seed};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::json;
use sqs_kit::idempotency::{IdempotencyRecord, Now, Status};
use sqs_kit::store::{Claim, ClaimWriteFailure, DynamoDbStore, EmbeddedStore, IdempotencyStore, MemoryStore, RedisConfig, RedisStore};

/// The seed with `CI=true`, so that a CI run is reproducible.
const CI_SEED: [u8; 32] = *b"sqs-kit store model: CI seed #1.";
const KEYS: usize = 2;

/// One step of a task's script. Times are offsets from the case's start, in milliseconds, so
/// that claims lapse and completed records expire within a case.
#[derive(Clone, Debug)]
enum Step {
    Claim { key: usize, at: i64, lapse_ms: i64 },
    Complete { key: usize, at: i64, ttl_secs: u64 },
    Release { key: usize },
}

impl Step {
    fn key(&self) -> usize {
        match *self {
            Step::Claim { key, .. } | Step::Complete { key, .. } | Step::Release { key } => key,
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    let key = 0..KEYS;
    let at = prop::sample::select(vec![0i64, 400, 1_000, 2_500]);
    prop_oneof![
        (key.clone(), at.clone(), prop::sample::select(vec![300i64, 60_000])).prop_map(|(key, at, lapse_ms)| Step::Claim {
            key,
            at,
            lapse_ms
        }),
        (key.clone(), at, prop::sample::select(vec![1u64, 86_400])).prop_map(|(key, at, ttl_secs)| Step::Complete { key, at, ttl_secs }),
        key.prop_map(|key| Step::Release { key }),
    ]
}

/// Two or three tasks, each with a script of one to five steps.
fn scripts() -> impl Strategy<Value = Vec<Vec<Step>>> {
    prop::collection::vec(prop::collection::vec(step(), 1..=5), 2..=3)
}

/// A call as a task made it and what the store answered.
#[derive(Clone, Debug)]
enum Call {
    Claim { record: IdempotencyRecord, now: Now, answer: Claim },
    Complete { claim: IdempotencyRecord, record: IdempotencyRecord, written: bool },
    Release { claim: IdempotencyRecord, written: bool },
}

#[derive(Clone, Debug)]
struct Observed {
    key: usize,
    call: Call,
    started: Instant,
    ended: Instant,
}

/// The contract, one call at a time, on one key's record.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model(Option<IdempotencyRecord>);

impl Model {
    fn live(record: &IdempotencyRecord, now: Now) -> bool {
        now.secs <= record.expiration
            && (record.status == Status::Completed || record.in_progress_expiration.is_none_or(|until| now.millis <= until))
    }

    fn owned_by(&self, claim: &IdempotencyRecord) -> bool {
        self.0.as_ref().is_some_and(|stored| stored.claim_token == claim.claim_token)
    }

    /// Applies `call`; whether the model answers as the store did.
    fn apply(&mut self, call: &Call) -> bool {
        match call {
            Call::Claim { record, now, answer } => match &self.0 {
                Some(stored) if Self::live(stored, *now) => *answer == Claim::Existing(stored.clone()),
                _ => {
                    self.0 = Some(record.clone());
                    *answer == Claim::Acquired
                }
            },
            Call::Complete { claim, record, written } => {
                let owned = self.owned_by(claim);
                if owned {
                    self.0 = Some(record.clone());
                }
                owned == *written
            }
            Call::Release { claim, written } => {
                let owned = self.owned_by(claim) && self.0.as_ref().is_some_and(|stored| stored.status == Status::InProgress);
                if owned {
                    self.0 = None;
                }
                owned == *written
            }
        }
    }
}

/// Whether some order of `calls` (one key's), consistent with real time, gets the store's
/// answers from the model and ends in `last`: a depth-first search over the calls whose
/// predecessors are all placed.
fn linearizable(calls: &[Observed], placed: &mut Vec<bool>, model: &Model, last: &Model) -> bool {
    if placed.iter().all(|&done| done) {
        return model == last;
    }
    for index in 0..calls.len() {
        let ready = !placed[index] && (0..calls.len()).all(|other| placed[other] || calls[other].ended >= calls[index].started);
        if !ready {
            continue;
        }
        let mut next = model.clone();
        if next.apply(&calls[index].call) {
            placed[index] = true;
            if linearizable(calls, placed, &next, last) {
                return true;
            }
            placed[index] = false;
        }
    }
    false
}

/// Runs one task's script against `store`, on keys `ids`, from `start`.
async fn run_task(store: Arc<dyn IdempotencyStore>, ids: Vec<String>, task: usize, script: Vec<Step>, start: Now) -> Vec<Observed> {
    let mut latest: HashMap<usize, IdempotencyRecord> = HashMap::new();
    let mut observed = Vec::new();
    for (n, step) in script.into_iter().enumerate() {
        let key = step.key();
        let started = Instant::now();
        let call = match step {
            Step::Claim { at, lapse_ms, .. } => {
                let now = Now::from_millis(start.millis + at);
                let record = IdempotencyRecord {
                    id: ids[key].clone(),
                    status: Status::InProgress,
                    expiration: now.plus(Duration::from_secs(3600)).secs,
                    in_progress_expiration: Some(now.millis + lapse_ms),
                    payload_hash: "hash".to_owned(),
                    result: None,
                    updated_at: now.millis,
                    claim_token: Some(format!("task-{task}-step-{n}")),
                };
                let answer = store.claim(&record, now).await.expect("the store answers");
                latest.insert(key, record.clone());
                Call::Claim { record, now, answer }
            }
            Step::Complete { at, ttl_secs, .. } => {
                let Some(claim) = latest.get(&key).cloned() else { continue };
                let now = Now::from_millis(start.millis + at);
                let record = IdempotencyRecord {
                    status: Status::Completed,
                    expiration: now.plus(Duration::from_secs(ttl_secs)).secs,
                    in_progress_expiration: None,
                    result: Some(json!({"task": task, "step": n})),
                    updated_at: now.millis,
                    ..claim.clone()
                };
                let written = written(store.complete(&claim, &record).await);
                Call::Complete { claim, record, written }
            }
            Step::Release { .. } => {
                let Some(claim) = latest.get(&key).cloned() else { continue };
                let written = written(store.release(&claim).await);
                Call::Release { claim, written }
            }
        };
        observed.push(Observed { key, call, started, ended: Instant::now() });
    }
    observed
}

fn written(answer: Result<(), ClaimWriteFailure>) -> bool {
    match answer {
        Ok(()) => true,
        Err(ClaimWriteFailure::ClaimLost) => false,
        Err(ClaimWriteFailure::Store(error)) => panic!("the store failed: {error}"),
        Err(other) => panic!("unexpected failure of a claim's write: {other}"),
    }
}

/// One generated case: the tasks run at once on fresh keys, then each key's history is checked.
async fn check_case(store: Arc<dyn IdempotencyStore>, case: usize, scripts: Vec<Vec<Step>>) -> Result<(), TestCaseError> {
    let ids: Vec<String> = (0..KEYS).map(|key| format!("fn#case-{case}-key-{key}")).collect();
    let start = Now::system();
    let tasks =
        scripts.into_iter().enumerate().map(|(task, script)| tokio::spawn(run_task(store.clone(), ids.clone(), task, script, start)));
    let history: Vec<Observed> =
        futures::future::join_all(tasks).await.into_iter().flat_map(|task| task.expect("a task panicked")).collect();
    for (key, id) in ids.iter().enumerate() {
        let calls: Vec<Observed> = history.iter().filter(|observed| observed.key == key).cloned().collect();
        let last = Model(store.get(id).await.expect("the store answers"));
        let mut placed = vec![false; calls.len()];
        if !linearizable(&calls, &mut placed, &Model::default(), &last) {
            return Err(TestCaseError::fail(format!(
                "no order of these calls on {id} agrees with the model and ends in {last:?}: {calls:#?}"
            )));
        }
    }
    Ok(())
}

fn check_store(label: &str, default_cases: u32, store: Arc<dyn IdempotencyStore>, runtime: &tokio::runtime::Runtime) {
    let cases = case_count(default_cases);
    let (seed, origin) = seed(CI_SEED);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    // Every run of a case, shrinking included, gets keys of its own.
    let case = AtomicUsize::new(0);
    let started = Instant::now();
    let result =
        runner.run(&scripts(), |scripts| runtime.block_on(check_case(store.clone(), case.fetch_add(1, Ordering::SeqCst), scripts)));
    match result {
        Ok(()) => report(&format!(
            "store model: {label}: {cases} generated cases of concurrent tasks agree with the model in {:.1} s (seed {}, {origin})",
            started.elapsed().as_secs_f64(),
            hex(&seed)
        )),
        Err(error) => {
            panic!("store model: {label}: {error}\nseed {} ({origin}); replay with SQS_KIT_MODEL_SEED={}", hex(&seed), hex(&seed))
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(3).enable_all().build().unwrap()
}

#[test]
fn the_memory_store_is_linearizable_against_the_model() {
    check_store("memory", 2000, Arc::new(MemoryStore::new()), &runtime());
}

#[test]
fn the_embedded_store_is_linearizable_against_the_model() {
    let state = tempfile::tempdir().unwrap();
    check_store("embedded", 1000, Arc::new(EmbeddedStore::open(state.path()).unwrap()), &runtime());
}

#[test]
fn the_dynamodb_store_is_linearizable_against_the_model() {
    let runtime = runtime();
    let Some(store) = runtime.block_on(async {
        let config = common::local_aws().await?;
        let table = common::unique_name("idempotency");
        common::create_table(&config, &table, "id", None).await;
        Some(DynamoDbStore::with_config(&config, &table))
    }) else {
        return;
    };
    check_store("dynamodb", 200, Arc::new(store), &runtime);
}

#[test]
fn the_redis_store_is_linearizable_against_the_model() {
    let Some(url) = common::local_redis() else { return };
    let store = RedisStore::new(RedisConfig::new(url).with_key_prefix(format!("{}:", common::unique_name("model")))).unwrap();
    check_store("redis", 500, Arc::new(store), &runtime());
}

/// The model itself, on the histories the contract's scenarios produce one call at a time.
#[test]
fn the_model_refuses_a_completion_by_a_taken_over_claimant() {
    let start = Now::from_millis(1_000_000_000_000);
    let claim = |token: &str, now: Now, lapse_ms: i64| IdempotencyRecord {
        id: "fn#k".into(),
        status: Status::InProgress,
        expiration: now.secs + 3600,
        in_progress_expiration: Some(now.millis + lapse_ms),
        payload_hash: "hash".into(),
        result: None,
        updated_at: now.millis,
        claim_token: Some(token.into()),
    };
    let (first, later) = (claim("a", start, 300), Now::from_millis(start.millis + 301));
    let second = claim("b", later, 60_000);
    let done = |claim: &IdempotencyRecord| IdempotencyRecord { status: Status::Completed, in_progress_expiration: None, ..claim.clone() };
    let mut model = Model::default();
    assert!(model.apply(&Call::Claim { record: first.clone(), now: start, answer: Claim::Acquired }));
    assert!(model.apply(&Call::Claim { record: second.clone(), now: later, answer: Claim::Acquired }), "a lapsed claim is taken over");
    assert!(model.apply(&Call::Complete { claim: first.clone(), record: done(&first), written: false }), "the first claimant lost it");
    assert!(
        !model.apply(&Call::Complete { claim: first.clone(), record: done(&first), written: true }),
        "a store that lets it write is wrong"
    );
    assert!(model.apply(&Call::Release { claim: second.clone(), written: true }));
    assert!(model.apply(&Call::Claim { record: first, now: later, answer: Claim::Acquired }), "a released key can be claimed again");
}
