//! The batch semantics as an executable model, and the real `BatchProcessor` checked against it
//! on generated batches.
//!
//! `model/reference.rs` is the model: a sequential account of what every record's outcome must
//! be, given the queue kind (standard, FIFO, fair), message groups, the FIFO failure mode,
//! duplicate idempotency keys (same payload or not), which records fail transiently,
//! permanently or panic, which completions the store refuses, and how much time is left.
//! `model/scenario.rs` generates the batches, `model/harness.rs` runs them through the real
//! processor (with and without the idempotency layer, on the memory and the embedded store)
//! and logs every handler run and every record's time in the service.
//!
//! Each property prints its case count and seed, past the test harness so that the test
//! command shows it. With `CI=true` the seed is fixed; otherwise it is random and printed with any
//! failure, and `SQS_KIT_MODEL_SEED=<hex>` replays it. `SQS_KIT_MODEL_CASES=N` changes the
//! count. Failing seeds are kept in `model/<property>.proptest-regressions` and replayed first.

#[path = "model/boundaries.rs"]
mod boundaries;
mod common;
#[path = "model/harness.rs"]
mod harness;
#[path = "model/reference.rs"]
mod reference;
#[path = "model/scenario.rs"]
mod scenario;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use sqs_kit::idempotency::Status;
use sqs_kit::store::{IdempotencyStore, MemoryStore};
use sqs_kit::{
    handler_fn, typed, BatchConfig, BatchProcessor, IdempotencyConfig, Idempotent, Outcome, RecordContext, RecordError, RecordService,
};

use common::seed::{case_count, hex, report, seed};
use harness::{FaultyStore, Harness, Observation};
use scenario::{Scenario, StoreKind};

/// The seed with `CI=true`, so that a CI run is reproducible.
const CI_SEED: [u8; 32] = *b"sqs-kit batch model: CI seed #1.";

/// What the generated batches covered, for the summary line.
#[derive(Default)]
struct Tally {
    batches: BTreeMap<&'static str, u32>,
    outcomes: BTreeMap<&'static str, u32>,
}

impl Tally {
    fn count(&mut self, scenario: &Scenario, observation: &Observation) {
        let queue = match scenario.queue {
            scenario::Queue::Standard => "standard",
            scenario::Queue::Fifo => "FIFO",
            scenario::Queue::Fair => "fair",
        };
        *self.batches.entry(queue).or_default() += 1;
        let Ok(report) = &observation.result else {
            *self.outcomes.entry("refused batches").or_default() += 1;
            return;
        };
        for record in &report.records {
            let outcome = match &record.outcome {
                Outcome::Processed(_) => "processed",
                Outcome::Duplicate(_) => "duplicate",
                Outcome::Failed(error) if error.is_permanent() => "failed permanently",
                Outcome::Failed(_) => "failed transiently",
                Outcome::NotAttempted(_) => "not attempted",
                other => panic!("unexpected outcome {other:?}: the model's census does not know it"),
            };
            *self.outcomes.entry(outcome).or_default() += 1;
        }
    }

    fn summary(&self) -> String {
        let list = |counts: &BTreeMap<&str, u32>| counts.iter().map(|(what, n)| format!("{n} {what}")).collect::<Vec<_>>().join(", ");
        format!("batches: {}; records: {}", list(&self.batches), list(&self.outcomes))
    }
}

/// Runs `cases` values drawn from `strategy` through `check`; prints the count, the seed and
/// `summary()` on success, and panics with the shrunk counterexample and the seed on the first
/// failure.
fn check_property<S: Strategy>(
    name: &'static str,
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), String>,
    summary: impl Fn() -> String,
) {
    let cases = case_count(cases);
    let (seed, origin) = seed(CI_SEED);
    let regressions: &'static str =
        Box::leak(format!("{}/tests/model/{name}.proptest-regressions", env!("CARGO_MANIFEST_DIR")).into_boxed_str());
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        source_file: Some(file!()),
        rng_algorithm: RngAlgorithm::ChaCha,
        max_shrink_iters: 2048,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let started = Instant::now();
    match runner.run(&strategy, |value| check(value).map_err(TestCaseError::fail)) {
        Ok(()) => report(&format!(
            "model: {name}: {cases} generated cases agree with the model in {:.1} s (seed {}, {origin}); {}",
            started.elapsed().as_secs_f64(),
            hex(&seed),
            summary()
        )),
        Err(TestError::Fail(reason, value)) => panic!(
            "{name}: the code disagrees with the model: {reason}\n\
             smallest case found that shows it: {value:#?}\n\
             seed {} ({origin}); replay with SQS_KIT_MODEL_SEED={}",
            hex(&seed),
            hex(&seed)
        ),
        Err(TestError::Abort(reason)) => panic!("{name}: proptest gave up: {reason}"),
    }
}

/// Batches drawn from `strategy`, run through the real processor and checked by the model.
fn check_model(name: &'static str, cases: u32, store: Option<StoreKind>, strategy: impl Strategy<Value = Scenario>) {
    let harness = Harness::new();
    if store == Some(StoreKind::Embedded) {
        harness.embedded_store();
    }
    let tally = RefCell::new(Tally::default());
    check_property(
        name,
        cases,
        strategy,
        |scenario| {
            let observation = harness.run(&scenario);
            tally.borrow_mut().count(&scenario, &observation);
            reference::check(&scenario, &observation)
        },
        || tally.borrow().summary(),
    );
}

#[test]
fn batches_without_idempotency_behave_as_the_model_says() {
    check_model("plain", 2000, None, scenario::scenario(None));
}

#[test]
fn batches_on_the_memory_store_behave_as_the_model_says() {
    check_model("memory", 2000, Some(StoreKind::Memory), scenario::scenario(Some(StoreKind::Memory)));
}

#[test]
fn batches_on_the_embedded_store_behave_as_the_model_says() {
    check_model("embedded", 1000, Some(StoreKind::Embedded), scenario::scenario(Some(StoreKind::Embedded)));
}

#[test]
fn batches_cut_by_the_deadline_behave_as_the_model_says() {
    check_model("deadline", 24, None, scenario::deadline_scenario());
}

/// A record of `body` on a standard queue.
fn standard(id: &str, body: serde_json::Value) -> serde_json::Value {
    common::record(id, &body.to_string())
}

/// Counts handler runs; answers with the body's `variant`.
fn counting_handler(runs: &Arc<AtomicUsize>) -> impl RecordService {
    let runs = Arc::clone(runs);
    typed(handler_fn(move |body: serde_json::Value, _cx: RecordContext| {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, RecordError>(body["variant"].clone())
        }
    }))
}

/// Holds one record back for a moment before it reaches the service, so that the other is
/// already in flight when it arrives.
struct Staggered<S> {
    inner: S,
    late: &'static str,
}

impl<S: RecordService> RecordService for Staggered<S> {
    fn call(&self, record: sqs_kit::handler::Record) -> sqs_kit::handler::RecordFuture {
        let late = record.cx.meta.message_id == self.late;
        let inner = self.inner.call(record);
        Box::pin(async move {
            if late {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            inner.await
        })
    }
}

/// Shrunk from failing `embedded` and `memory` cases. Key `k` was first used for payload A (it
/// is completed in the store); a batch brings a reuse of the key for payload B, and a copy of
/// A. The reuse fails permanently, as it must; the copy of A is a duplicate of the key's first
/// use. Today the copy fails permanently too when it arrives while the reuse is in flight (its
/// claim refused, but still in the layer's in-flight map): a redelivery of completed work goes
/// to the dead-letter queue because a bad re-send came with it.
#[test]
fn a_copy_of_the_first_use_is_a_duplicate_while_a_reuse_of_its_key_is_in_flight() {
    let harness = Harness::new();
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new()), Duration::from_millis(50)));
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = || {
        Idempotent::new(counting_handler(&runs), store.clone() as Arc<dyn IdempotencyStore>, IdempotencyConfig::keyed_by("/eventId"))
            .unwrap()
    };
    let first_use = serde_json::json!({"eventId": "k", "variant": "A"});
    let earlier = BatchProcessor::new(layer(), BatchConfig::default());
    let report = harness
        .block_on(earlier.process(common::event(vec![standard("p0", first_use.clone())]), common::invocation(Duration::from_secs(30))))
        .unwrap();
    assert_eq!(report.records[0].outcome, Outcome::Processed(serde_json::json!("A")));

    // A cold environment: the store, not the cache, knows the key.
    let processor = BatchProcessor::new(Staggered { inner: layer(), late: "copy" }, BatchConfig::default());
    let batch = common::event(vec![standard("reuse", serde_json::json!({"eventId": "k", "variant": "B"})), standard("copy", first_use)]);
    let report = harness.block_on(processor.process(batch, common::invocation(Duration::from_secs(30)))).unwrap();
    assert!(
        matches!(&report.records[0].outcome, Outcome::Failed(error) if error.is_permanent() && error.reason().contains("different payload")),
        "the reuse: {}",
        report.records[0].outcome
    );
    assert_eq!(
        report.records[1].outcome,
        Outcome::Duplicate(serde_json::json!("A")),
        "the copy of the first use: {}",
        report.records[1].outcome
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A completion the store refuses is retried while there is time; one that never succeeds is
/// reported transient, never done, and its claim keeps the key from running again.
#[test]
fn a_completion_that_fails_is_retried_then_reported_transient_never_done() {
    let harness = Harness::new();
    let once = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new()), Duration::ZERO));
    let always = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new()), Duration::ZERO));
    once.refuse_completions("test-function#k".into(), 1);
    always.refuse_completions("test-function#k".into(), u32::MAX);
    let (runs_once, runs_always) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let processor = |store: &Arc<FaultyStore>, runs: &Arc<AtomicUsize>| {
        BatchProcessor::new(
            Idempotent::new(counting_handler(runs), store.clone() as Arc<dyn IdempotencyStore>, IdempotencyConfig::keyed_by("/eventId"))
                .unwrap(),
            BatchConfig::default(),
        )
    };
    let (retried, refused) = (processor(&once, &runs_once), processor(&always, &runs_always));
    let batch = |id: &str| common::event(vec![standard(id, serde_json::json!({"eventId": "k", "variant": 1}))]);
    let (after_retry, given_up) = harness.block_on(async {
        futures::join!(
            retried.process(batch("m1"), common::invocation(Duration::from_secs(30))),
            refused.process(batch("m1"), common::invocation(Duration::from_secs(30)))
        )
    });

    assert_eq!(after_retry.unwrap().records[0].outcome, Outcome::Processed(serde_json::json!(1)));
    let stored = harness.block_on(once.get("test-function#k")).unwrap().expect("the retried completion is stored");
    assert_eq!(stored.status, Status::Completed);

    let outcome = &given_up.unwrap().records[0].outcome;
    assert!(matches!(outcome, Outcome::Failed(error) if !error.is_permanent()), "a completion that never succeeds: {outcome}");
    let stored = harness.block_on(always.get("test-function#k")).unwrap().expect("the claim is still there");
    assert_eq!(stored.status, Status::InProgress, "never recorded as done");
    // The redelivery finds the claim of the invocation whose completion failed: it is not a
    // duplicate, and it does not run the effect again while that claim holds.
    let redelivered = harness.block_on(refused.process(batch("m2"), common::invocation(Duration::from_secs(30)))).unwrap();
    assert!(
        matches!(&redelivered.records[0].outcome, Outcome::Failed(error) if !error.is_permanent()),
        "{}",
        redelivered.records[0].outcome
    );
    assert_eq!((runs_once.load(Ordering::SeqCst), runs_always.load(Ordering::SeqCst)), (1, 1));
}

#[test]
fn claims_and_records_lapse_exactly_at_their_boundaries_on_every_store() {
    let harness = Harness::new();
    let stores: Vec<(&str, Arc<dyn IdempotencyStore>)> =
        vec![("memory", Arc::new(MemoryStore::new())), ("embedded", harness.embedded_store())];
    let case = AtomicUsize::new(0);
    check_property(
        "store-boundaries",
        300,
        boundaries::store_case(),
        |case_at| {
            let n = case.fetch_add(1, Ordering::SeqCst);
            for (label, store) in &stores {
                harness
                    .block_on(boundaries::check_store(store.as_ref(), &format!("boundary-{n}"), &case_at))
                    .map_err(|e| format!("{label}: {e}"))?;
            }
            Ok(())
        },
        || "each on the memory and the embedded store".to_owned(),
    );
}

#[test]
fn cache_entries_lapse_exactly_at_their_boundaries() {
    let harness = Harness::new();
    check_property(
        "cache-boundaries",
        300,
        boundaries::cache_case(),
        |case| harness.block_on(boundaries::check_cache(&case)),
        || "on the memory store, with a manual clock".to_owned(),
    );
}
