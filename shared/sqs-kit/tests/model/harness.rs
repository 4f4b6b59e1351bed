//! Runs a scenario through the real `BatchProcessor` and records what happened: the report, each
//! handler run (start and end), and when each record entered and left the service the
//! processor drives.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;
use sqs_kit::batch::{BatchError, BatchReport};
use sqs_kit::handler::{Record, RecordFuture};
use sqs_kit::idempotency::{IdempotencyRecord, Now};
use sqs_kit::store::{BusinessWrite, Claim, ClaimWriteFailure, CommitFailure, EmbeddedStore, IdempotencyStore, MemoryStore, StoreError};
use sqs_kit::{
    handler_fn, typed, BatchConfig, BatchProcessor, IdempotencyConfig, Idempotent, InvocationContext, Outcome, RecordContext, RecordError,
    RecordService,
};

use crate::reference::{self, PANIC_MESSAGE, PERMANENT_REASON, TRANSIENT_REASON};
use crate::scenario::{KeySource, Scenario, StoreKind};

/// When a record was inside the service, in the trace's sequence numbers.
#[derive(Clone, Debug)]
pub struct Interval {
    pub enter: u64,
    /// `None` when its task was abandoned.
    pub exit: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Run {
    pub message_id: String,
    pub start: u64,
    /// `None` when its task was abandoned.
    pub end: Option<u64>,
    pub rendezvous_missed: bool,
}

pub struct Observation {
    pub result: Result<BatchReport, BatchError>,
    pub intervals: HashMap<String, Interval>,
    pub runs: Vec<Run>,
    pub returned_before_deadline: bool,
}

/// The waits a handler makes before it answers: for the records it must run side by side with
/// (a rendezvous), or for the other records of its key to reach the layer (a gate).
#[derive(Default)]
struct Waits {
    rendezvous: BTreeSet<String>,
    gate: HashMap<String, (String, usize)>,
}

/// A rendezvous that never completes means the records did not run at once; the wait is
/// generous, as a loaded machine can be slow to start tasks.
const RENDEZVOUS_WAIT: Duration = Duration::from_secs(2);
/// A gate only makes the in-flight case likely; the model allows whatever happens after it.
const GATE_WAIT: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Trace {
    seq: AtomicU64,
    state: Mutex<TraceState>,
    waits: Waits,
    arrived: tokio::sync::Notify,
}

#[derive(Default)]
struct TraceState {
    intervals: HashMap<String, Interval>,
    runs: Vec<Run>,
    entered_by_key: HashMap<String, usize>,
    met: usize,
}

impl Trace {
    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TraceState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enter(&self, id: &str) {
        let mut state = self.lock();
        let enter = self.next();
        if let Some((key, _)) = self.waits.gate.get(id) {
            *state.entered_by_key.entry(key.clone()).or_default() += 1;
        }
        assert!(state.intervals.insert(id.to_owned(), Interval { enter, exit: None }).is_none(), "record {id} entered the service twice");
        drop(state);
        self.arrived.notify_waiters();
    }

    fn exit(&self, id: &str) {
        let exit = self.next();
        if let Some(interval) = self.lock().intervals.get_mut(id) {
            interval.exit = Some(exit);
        }
    }

    fn start(&self, id: &str) -> usize {
        let mut state = self.lock();
        let start = self.next();
        state.runs.push(Run { message_id: id.to_owned(), start, end: None, rendezvous_missed: false });
        state.runs.len() - 1
    }

    fn end(&self, run: usize, rendezvous_missed: bool) {
        let end = self.next();
        let mut state = self.lock();
        state.runs[run].end = Some(end);
        state.runs[run].rendezvous_missed = rendezvous_missed;
    }

    /// Waits as the scenario says; whether a rendezvous was missed.
    async fn wait(&self, id: &str) -> bool {
        if self.waits.rendezvous.contains(id) {
            let everyone = self.waits.rendezvous.len();
            self.lock().met += 1;
            self.arrived.notify_waiters();
            return !self.wait_until(RENDEZVOUS_WAIT, |state| state.met >= everyone).await;
        }
        if let Some((key, expected)) = self.waits.gate.get(id) {
            self.wait_until(GATE_WAIT, |state| state.entered_by_key.get(key).copied().unwrap_or(0) >= *expected).await;
        }
        false
    }

    async fn wait_until(&self, patience: Duration, done: impl Fn(&TraceState) -> bool) -> bool {
        let give_up = tokio::time::Instant::now() + patience;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if done(&self.lock()) {
                return true;
            }
            if tokio::time::timeout_at(give_up, arrived).await.is_err() {
                return done(&self.lock());
            }
        }
    }

    fn take(&self) -> (HashMap<String, Interval>, Vec<Run>) {
        let mut state = self.lock();
        state.met = 0;
        state.entered_by_key.clear();
        (std::mem::take(&mut state.intervals), std::mem::take(&mut state.runs))
    }
}

/// The handler every scenario runs: its body says what to do (see `Scenario::body_text`).
fn handler(trace: &Arc<Trace>) -> impl RecordService {
    let trace = Arc::clone(trace);
    typed(handler_fn(move |body: Value, cx: RecordContext| {
        let trace = Arc::clone(&trace);
        async move {
            let id = cx.meta.message_id.clone();
            let run = trace.start(&id);
            for _ in 0..body["yields"].as_u64().unwrap_or(0) {
                tokio::task::yield_now().await;
            }
            if let Some(ms) = body["sleep_ms"].as_u64().filter(|ms| *ms > 0) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let missed = trace.wait(&id).await;
            trace.end(run, missed);
            match body["action"].as_str() {
                Some("ok") => Ok(reference::output(&id, body["variant"].as_u64().unwrap_or(0) as u8)),
                Some("transient") => Err(RecordError::transient(TRANSIENT_REASON)),
                Some("permanent") => Err(RecordError::permanent(PERMANENT_REASON)),
                Some("panic") => panic!("{PANIC_MESSAGE}"),
                other => Err(RecordError::permanent(format!("the model's handler got an unknown action {other:?}"))),
            }
        }
    }))
}

/// The service the processor drives, seen from outside: when each record enters and leaves it.
struct Observe<S> {
    inner: S,
    trace: Arc<Trace>,
}

impl<S: RecordService> RecordService for Observe<S> {
    fn call(&self, record: Record) -> RecordFuture {
        let trace = Arc::clone(&self.trace);
        let id = record.cx.meta.message_id.clone();
        let inner = self.inner.call(record);
        Box::pin(async move {
            trace.enter(&id);
            let outcome = inner.await;
            trace.exit(&id);
            outcome
        })
    }
}

/// A store that refuses some completions (a number of times per id) and can make every claim
/// take a while, around a real one.
pub struct FaultyStore {
    inner: Arc<dyn IdempotencyStore>,
    refusals: Mutex<HashMap<String, u32>>,
    claim_delay: Duration,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn IdempotencyStore>, claim_delay: Duration) -> Self {
        Self { inner, refusals: Mutex::default(), claim_delay }
    }

    /// The next `times` completions of `id` fail as if the store were unreachable.
    pub fn refuse_completions(&self, id: String, times: u32) {
        self.refusals.lock().unwrap().insert(id, times);
    }
}

#[async_trait]
impl IdempotencyStore for FaultyStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn claim(&self, record: &IdempotencyRecord, now: Now) -> Result<Claim, StoreError> {
        tokio::time::sleep(self.claim_delay).await;
        self.inner.claim(record, now).await
    }
    async fn complete(&self, claim: &IdempotencyRecord, record: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        if let Some(left) = self.refusals.lock().unwrap().get_mut(&record.id).filter(|left| **left > 0) {
            *left -= 1;
            return Err(ClaimWriteFailure::Store(StoreError {
                store: self.describe(),
                operation: "complete",
                cause: "the model's store refuses this completion".to_owned(),
            }));
        }
        self.inner.complete(claim, record).await
    }
    async fn release(&self, claim: &IdempotencyRecord) -> Result<(), ClaimWriteFailure> {
        self.inner.release(claim).await
    }
    async fn commit(&self, record: &IdempotencyRecord, writes: Vec<BusinessWrite>, now: Now, deadline: Now) -> Result<(), CommitFailure> {
        self.inner.commit(record, writes, now, deadline).await
    }
    async fn get(&self, id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.get(id).await
    }
    async fn evict(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.evict(id).await
    }
}

/// What the cases of one property share: the runtime (two workers, as on a small Lambda), the
/// embedded store (each case under its own function name) and a case counter.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    embedded: Mutex<Option<(tempfile::TempDir, Arc<EmbeddedStore>)>>,
    cases: AtomicU64,
}

/// Panics of the model's handler are expected by the thousand; others still print.
fn quiet_model_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
            if !message.is_some_and(|message| message.contains(PANIC_MESSAGE)) {
                default(info);
            }
        }));
    });
}

/// A case that takes longer than this is stuck (a deadlock, a lost wake-up).
const CASE_LIMIT: Duration = Duration::from_secs(20);

impl Harness {
    pub fn new() -> Self {
        quiet_model_panics();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
        Self { runtime, embedded: Mutex::new(None), cases: AtomicU64::new(0) }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn embedded_store(&self) -> Arc<EmbeddedStore> {
        let mut embedded = self.embedded.lock().unwrap();
        let (_, store) = embedded.get_or_insert_with(|| {
            let dir = tempfile::tempdir().expect("a temporary state directory");
            let store = EmbeddedStore::open(dir.path()).expect("the embedded store opens");
            (dir, Arc::new(store))
        });
        Arc::clone(store)
    }

    /// Runs `scenario` through a fresh processor and records what happened.
    pub fn run(&self, scenario: &Scenario) -> Observation {
        let function = format!("model-{}", self.cases.fetch_add(1, Ordering::SeqCst));
        let trace = Arc::new(Trace {
            waits: Waits { rendezvous: reference::rendezvous(scenario), gate: reference::gate(scenario) },
            ..Trace::default()
        });
        let config = BatchConfig::default()
            .with_max_concurrency(scenario.max_concurrency)
            .with_deadline_margin(scenario.margin())
            .with_fifo_failure_mode(scenario.failure_mode);
        let Some(idempotency) = &scenario.idempotency else {
            let processor = BatchProcessor::new(Observe { inner: handler(&trace), trace: Arc::clone(&trace) }, config);
            return self.process(&processor, scenario, &function, &trace);
        };

        let store: Arc<dyn IdempotencyStore> = match idempotency.store {
            StoreKind::Memory => Arc::new(MemoryStore::new()),
            StoreKind::Embedded => self.embedded_store(),
        };
        let store = Arc::new(FaultyStore::new(store, Duration::ZERO));
        let layer_config = IdempotencyConfig::default()
            .with_key_pointer((idempotency.key_source == KeySource::Pointer).then(|| "/eventId".to_owned()))
            .with_cache_capacity(idempotency.cache_capacity);
        let layer = || {
            let layer = Idempotent::new(handler(&trace), Arc::clone(&store) as Arc<dyn IdempotencyStore>, layer_config.clone());
            Observe { inner: layer.expect("the key pointer is valid"), trace: Arc::clone(&trace) }
        };
        let processor = BatchProcessor::new(layer(), config.clone());

        let prior = reference::prior_completions(scenario, idempotency);
        if !prior.is_empty() {
            let earlier = if idempotency.warm { processor.clone() } else { BatchProcessor::new(layer(), config) };
            let records = prior
                .iter()
                .map(|(prior, _)| crate::common::record(&prior.message_id, &scenario.body_text(crate::scenario::Body::Json(prior.payload))))
                .collect();
            let invocation = InvocationContext::with_remaining(function.as_str(), "model-earlier", Duration::from_secs(30));
            let report = self.block_on(earlier.process(crate::common::event(records), invocation)).expect("the earlier batch is valid");
            for record in &report.records {
                assert!(
                    matches!(record.outcome, Outcome::Processed(_)),
                    "the earlier delivery {} did not complete: {}",
                    record.message_id,
                    record.outcome
                );
            }
            trace.take();
        }
        for key in &idempotency.failing_completions {
            store.refuse_completions(format!("{function}#{key}"), u32::MAX);
        }
        self.process(&processor, scenario, &function, &trace)
    }

    fn process(&self, processor: &BatchProcessor<impl RecordService>, scenario: &Scenario, function: &str, trace: &Trace) -> Observation {
        let invocation = InvocationContext::with_remaining(function, "model", scenario.remaining());
        let deadline = invocation.deadline;
        let result = self
            .block_on(async { tokio::time::timeout(CASE_LIMIT, processor.process(scenario.event(), invocation)).await })
            .unwrap_or_else(|_| panic!("the batch was still running after {CASE_LIMIT:?}: {scenario:?}"));
        let returned_before_deadline = SystemTime::now() < deadline;
        let (intervals, runs) = trace.take();
        Observation { result, intervals, runs, returned_before_deadline }
    }
}
