//! Processing an SQS batch record by record, with partial batch failure reporting.
//!
//! Lambda deletes every message of a batch unless the function names the failed ones in
//! `batchItemFailures`; those become visible again after the visibility timeout, and the queue's
//! redrive policy moves a message to its dead-letter queue once it has been received
//! `maxReceiveCount` times. The [`BatchProcessor`] therefore turns every way a record can go
//! wrong — a body that does not parse, a handler error, a panic, running out of time — into a
//! failure of that record alone, and never loses one: a record is either reported successful
//! because its handler (or an earlier delivery) completed it, or it is in the failure list.

mod report;
mod retry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use tokio::sync::Semaphore;
use tracing::Instrument;

pub use report::{BatchReport, Outcome, RecordReport, Skip, Totals};

use crate::error::RecordError;
use crate::handler::{Handled, Record, RecordContext, RecordService};
use crate::record::{decode_body, InvocationContext, RecordMeta};
use crate::retry::{Backoff, DeadLetterTarget, QueueActions};

/// Records still running this close to the deadline are abandoned, so that the response (and
/// with it the successes) still reaches Lambda before the invocation times out.
const REPLY_RESERVE: Duration = Duration::from_millis(250);

/// What kind of queue the batch came from, which decides the order records run in.
///
/// A *fair* queue is a standard queue whose messages carry a `MessageGroupId`: the group spreads
/// the queue's capacity fairly between tenants, it does not order anything. Its batches are
/// [`QueueKind::Standard`].
// Exhaustive on purpose: these are SQS's two kinds of queue, and a queue of a new kind would
// need new ordering rules, not a silent fallback in a caller's `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// At-least-once, unordered (fair queues included): records run concurrently and a failure
    /// holds nothing back.
    Standard,
    /// Ordered per message group: records of a group run one after the other.
    Fifo,
}

impl QueueKind {
    /// The kind of the queue the records came from.
    ///
    /// The event source ARN decides: FIFO queues' names end in `.fifo`. Only a batch whose
    /// records carry no ARN (hand-written events) is judged by its records' attributes, and then
    /// by `SequenceNumber`, which SQS gives FIFO messages only — never by `MessageGroupId`, which
    /// fair queues put on standard messages too.
    pub fn detect(event: &SqsEvent) -> Self {
        let mut arns = event.records.iter().filter_map(|record| record.event_source_arn.as_deref()).peekable();
        let is_fifo = if arns.peek().is_some() {
            arns.any(|arn| arn.ends_with(".fifo"))
        } else {
            event.records.iter().any(|record| record.attributes.contains_key("SequenceNumber"))
        };
        if is_fifo {
            QueueKind::Fifo
        } else {
            QueueKind::Standard
        }
    }
}

/// What a failed record of a FIFO batch holds back. The records held back are reported failed
/// without being attempted ([`Skip::GroupHeldBack`], [`Skip::BatchStopped`]), so SQS delivers
/// them again after the failed one, in order. Standard queues hold nothing back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FifoFailureMode {
    /// The later records of the same message group; other groups go on. The default.
    #[default]
    HoldBackGroup,
    /// Every later record of the batch, whatever its group.
    StopBatch,
}

/// What the invocation returns when every record of a non-empty batch failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllFailedPolicy {
    /// A function error ([`BatchError::AllFailed`]): Lambda counts an error and its event source
    /// mapping backs off, which protects a failing dependency. Every message is retried, none is
    /// lost. The default.
    #[default]
    ReturnError,
    /// The full failure list, as for any partial failure.
    ReportFailures,
}

/// How a [`BatchProcessor`] runs a batch.
///
/// Built from [`BatchConfig::default`] and the `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use sqs_kit::{BatchConfig, FifoFailureMode};
///
/// let config = BatchConfig::default().with_max_concurrency(4).with_fifo_failure_mode(FifoFailureMode::StopBatch);
/// assert_eq!(config.max_concurrency, 4);
/// assert_eq!(config.deadline_margin, Duration::from_secs(2));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BatchConfig {
    /// How many records run at once (across groups, on FIFO queues). Default 10; 0 counts as 1.
    /// The runner lets `SQS_KIT_MAX_CONCURRENCY` override it.
    pub max_concurrency: usize,
    /// No record starts when less than this is left of the invocation: it is reported failed
    /// unattempted ([`Skip::Deadline`]) instead. Default 2 s.
    pub deadline_margin: Duration,
    /// What a failed record of a FIFO batch holds back. Default
    /// [`FifoFailureMode::HoldBackGroup`].
    pub fifo_failure_mode: FifoFailureMode,
    /// What the invocation returns when every record failed. Default
    /// [`AllFailedPolicy::ReturnError`].
    pub all_failed: AllFailedPolicy,
    /// How long a transiently failed record stays away before SQS delivers it again: `None`
    /// (the default) leaves that to the queue's visibility timeout. Set, the processor changes
    /// the record's visibility (`ChangeMessageVisibilityBatch`, through the queue given to
    /// [`BatchProcessor::with_queue`]) before reporting it failed. Records held back behind a
    /// FIFO failure or skipped for the deadline keep the queue's timeout. The runner lets
    /// `SQS_KIT_BACKOFF` set it.
    pub backoff: Option<Backoff>,
    /// Where permanently failed records go at once: `None` (the default) reports them failed,
    /// and the queue's redrive policy moves them after `maxReceiveCount` receives. Set, the
    /// processor sends each to that dead-letter queue (through the queue given to
    /// [`BatchProcessor::with_queue`]) and reports it successful
    /// ([`Outcome::DeadLettered`]) once the queue accepted it; a send that fails leaves it
    /// failed. The runner lets `SQS_KIT_DEAD_LETTER` set it.
    pub dead_letter: Option<DeadLetterTarget>,
}

impl BatchConfig {
    /// This configuration running at most `max_concurrency` records at once.
    pub fn with_max_concurrency(self, max_concurrency: usize) -> Self {
        Self { max_concurrency, ..self }
    }

    /// This configuration starting no record with less than `deadline_margin` left.
    pub fn with_deadline_margin(self, deadline_margin: Duration) -> Self {
        Self { deadline_margin, ..self }
    }

    /// This configuration holding back what `fifo_failure_mode` says after a FIFO failure.
    pub fn with_fifo_failure_mode(self, fifo_failure_mode: FifoFailureMode) -> Self {
        Self { fifo_failure_mode, ..self }
    }

    /// This configuration answering a batch whose records all failed as `all_failed` says.
    pub fn with_all_failed(self, all_failed: AllFailedPolicy) -> Self {
        Self { all_failed, ..self }
    }

    /// This configuration backing off transiently failed records as `backoff` says.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        Self { backoff: Some(backoff), ..self }
    }

    /// This configuration sending permanently failed records to `target`.
    pub fn with_dead_letter(self, target: DeadLetterTarget) -> Self {
        Self { dead_letter: Some(target), ..self }
    }

    /// Whether retry control (backoff or dead-lettering) is on, and so needs a queue to act
    /// through ([`BatchProcessor::with_queue`]).
    pub fn acts_on_queues(&self) -> bool {
        self.backoff.is_some() || self.dead_letter.is_some()
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 10,
            deadline_margin: Duration::from_secs(2),
            fifo_failure_mode: FifoFailureMode::default(),
            all_failed: AllFailedPolicy::default(),
            backoff: None,
            dead_letter: None,
        }
    }
}

/// Why an invocation returned an error instead of a batch response. Either way Lambda counts a
/// function error and every message of the batch is delivered again.
///
/// It converts into a `lambda_runtime::Diagnostic` whose `errorType` is
/// `SqsKit.MissingMessageId` or `SqsKit.AllRecordsFailed`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A record of the event has no (or an empty) `messageId`, so it could not be named in
    /// `batchItemFailures`. No record was processed.
    #[error("record {index} of the event has no messageId, so its failure could not be reported; the whole batch is retried")]
    MissingMessageId {
        /// The record's position in the event, from 0.
        index: usize,
    },
    /// Every record of a non-empty batch failed, under [`AllFailedPolicy::ReturnError`]. The
    /// records were processed (and their failures logged) first.
    #[error("all {count} records of the batch failed; every one will be retried (first failure: {first})")]
    AllFailed {
        /// How many records the batch had.
        count: usize,
        /// The first record's message id and outcome, e-mail addresses redacted.
        first: String,
    },
}

impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(error: BatchError) -> Self {
        let error_type = match error {
            BatchError::MissingMessageId { .. } => "SqsKit.MissingMessageId",
            BatchError::AllFailed { .. } => "SqsKit.AllRecordsFailed",
        };
        lambda_runtime::Diagnostic { error_type: error_type.to_owned(), error_message: error.to_string() }
    }
}

/// Called with every processed batch's report before the response is built (the runner emits
/// the batch's metrics from it).
type ReportObserver = Arc<dyn Fn(&InvocationContext, &BatchReport) + Send + Sync>;

/// Drives a [`RecordService`] over the records of SQS batches.
///
/// Every way a record can go wrong (a body that is not JSON, a handler error, a panic, too
/// little time left) fails that record alone; see [`BatchProcessor::handle_event`] for an
/// example. Records of a standard queue run concurrently, up to
/// [`BatchConfig::max_concurrency`]; records of a FIFO message group run one after the other.
///
/// It is a [`tower::Service`] of Lambda's SQS events, so `lambda_runtime::run(processor)` serves
/// it and `lambda_runtime`'s layers stack on it:
///
/// ```no_run
/// use sqs_kit::{handler_fn, typed, BatchConfig, BatchProcessor, RecordContext, RecordError};
///
/// # async fn run() -> Result<(), lambda_runtime::Error> {
/// let handler = handler_fn(|body: serde_json::Value, _cx: RecordContext| async move { Ok::<_, RecordError>(body) });
/// lambda_runtime::run(BatchProcessor::new(typed(handler), BatchConfig::default())).await
/// # }
/// ```
pub struct BatchProcessor<S> {
    service: Arc<S>,
    config: BatchConfig,
    observer: Option<ReportObserver>,
    queue: Option<Arc<retry::Queue>>,
}

impl<S> Clone for BatchProcessor<S> {
    fn clone(&self) -> Self {
        Self { service: Arc::clone(&self.service), config: self.config.clone(), observer: self.observer.clone(), queue: self.queue.clone() }
    }
}

impl<S> std::fmt::Debug for BatchProcessor<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProcessor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<S: RecordService> tower::Service<LambdaEvent<SqsEvent>> for BatchProcessor<S> {
    type Response = SqsBatchResponse;
    type Error = BatchError;
    type Future = futures::future::BoxFuture<'static, Result<SqsBatchResponse, BatchError>>;

    /// Always ready: the records of a batch are bounded by [`BatchConfig::max_concurrency`], not
    /// by refusing batches.
    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BatchError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: LambdaEvent<SqsEvent>) -> Self::Future {
        let processor = self.clone();
        Box::pin(async move {
            let invocation = InvocationContext::from(&event.context);
            processor.handle_event(event.payload, invocation).await
        })
    }
}

impl<S: RecordService> BatchProcessor<S> {
    /// A processor of `service` with `config`.
    pub fn new(service: S, config: BatchConfig) -> Self {
        Self { service: Arc::new(service), config, observer: None, queue: None }
    }

    /// This processor, making the calls [`BatchConfig::backoff`] and
    /// [`BatchConfig::dead_letter`] need through `queue` (`retry::SqsQueue` on an SQS client,
    /// with the `sqs` feature). Without one, those settings are ignored with a warning per batch.
    pub fn with_queue(self, queue: Arc<dyn QueueActions>) -> Self {
        Self { queue: Some(Arc::new(retry::Queue::new(queue))), ..self }
    }

    /// This processor, calling `observer` with each batch's report (every record's outcome)
    /// before the response is built: for metrics or an audit log of one's own.
    pub fn on_report(self, observer: impl Fn(&InvocationContext, &BatchReport) + Send + Sync + 'static) -> Self {
        Self { observer: Some(Arc::new(observer)), ..self }
    }

    /// The configuration batches run with.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// The same processor (sharing its service) with another deadline margin.
    pub fn with_deadline_margin(&self, deadline_margin: Duration) -> Self {
        Self { config: self.config.clone().with_deadline_margin(deadline_margin), ..self.clone() }
    }

    /// Processes a batch and returns what Lambda should see: the failure list, or an error
    /// when the batch as a whole must be retried ([`BatchError`]). The report observer, if
    /// any, sees the batch's report first.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// use aws_lambda_events::event::sqs::SqsEvent;
    /// use serde_json::json;
    /// use sqs_kit::store::MemoryStore;
    /// use sqs_kit::{handler_fn, typed, BatchConfig, BatchProcessor, IdempotencyConfig, Idempotent};
    /// use sqs_kit::{InvocationContext, RecordContext, RecordError};
    ///
    /// #[derive(serde::Deserialize)]
    /// #[serde(rename_all = "camelCase")]
    /// struct Order {
    ///     order_id: String,
    ///     quantity: u32,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let handler = handler_fn(|order: Order, _cx: RecordContext| async move {
    ///     if order.quantity == 0 {
    ///         return Err(RecordError::permanent(format!("order {} has no quantity", order.order_id)));
    ///     }
    ///     Ok(order.quantity)
    /// });
    /// let store = Arc::new(MemoryStore::new());
    /// let service = Idempotent::new(typed(handler), store, IdempotencyConfig::keyed_by("/orderId")).unwrap();
    /// let processor = BatchProcessor::new(service, BatchConfig::default());
    ///
    /// let event: SqsEvent = serde_json::from_value(json!({
    ///     "Records": [
    ///         {"messageId": "m1", "body": r#"{"orderId": "A", "quantity": 2}"#},
    ///         {"messageId": "m2", "body": r#"{"orderId": "B", "quantity": 0}"#},
    ///         {"messageId": "m3", "body": "not JSON"},
    ///         {"messageId": "m4", "body": r#"{"orderId": "A", "quantity": 2}"#},
    ///     ]
    /// }))
    /// .unwrap();
    /// let invocation = InvocationContext::with_remaining("orders", "request-1", Duration::from_secs(30));
    /// let response = processor.handle_event(event, invocation).await.unwrap();
    ///
    /// // m2 failed in the handler and m3 before it; m1 succeeded and m4, the same order again,
    /// // is its duplicate: only the failures are reported, for SQS to deliver again.
    /// assert_eq!(
    ///     serde_json::to_value(&response).unwrap(),
    ///     json!({"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]})
    /// );
    /// # }
    /// ```
    pub async fn handle_event(&self, event: SqsEvent, invocation: InvocationContext) -> Result<SqsBatchResponse, BatchError> {
        let invocation = Arc::new(invocation);
        let report = self.process_shared(event, Arc::clone(&invocation)).await?;
        if let Some(observer) = &self.observer {
            observer(&invocation, &report);
        }
        self.respond(&report)
    }

    /// What Lambda should see for a processed batch: its failure list, or
    /// [`BatchError::AllFailed`] when every record failed and the policy
    /// ([`BatchConfig::all_failed`]) says so.
    pub fn respond(&self, report: &BatchReport) -> Result<SqsBatchResponse, BatchError> {
        if report.all_failed() && self.config.all_failed == AllFailedPolicy::ReturnError {
            return Err(all_failed_error(report));
        }
        Ok(report.response())
    }

    /// Processes a batch and reports every record's outcome, in the order of the event; only a
    /// record without a message id fails the batch as a whole ([`BatchError::MissingMessageId`]).
    /// The report observer (see [`Self::on_report`]) is not called: the caller has the report,
    /// and [`Self::respond`] makes Lambda's answer of it.
    pub async fn process(&self, event: SqsEvent, invocation: InvocationContext) -> Result<BatchReport, BatchError> {
        self.process_shared(event, Arc::new(invocation)).await
    }

    async fn process_shared(&self, event: SqsEvent, invocation: Arc<InvocationContext>) -> Result<BatchReport, BatchError> {
        let started = Instant::now();
        let kind = QueueKind::detect(&event);
        let (records, mut bodies) = prepare(event.records, self.config.dead_letter.is_some())?;
        let metas: Vec<Arc<RecordMeta>> = records.iter().map(|record| Arc::clone(&record.meta)).collect();
        let max_message_age = max_message_age(&metas);
        let lanes = self.lanes(kind, &metas, records);
        let permits = Semaphore::new(self.config.max_concurrency.max(1));

        let mut outcomes: Vec<Option<Outcome>> = vec![None; metas.len()];
        let lane_runs = lanes.into_iter().map(|lane| self.run_lane(lane, &invocation, &permits));
        for lane_outcomes in futures::future::join_all(lane_runs).await {
            for (index, outcome) in lane_outcomes {
                outcomes[index] = Some(outcome);
            }
        }

        let mut outcomes: Vec<Outcome> =
            outcomes.into_iter().map(|outcome| outcome.expect("every record belongs to exactly one lane")).collect();
        retry::apply(&self.config, self.queue.as_deref(), &invocation, &metas, &mut bodies, &mut outcomes).await;
        let records =
            metas.iter().zip(outcomes).map(|(meta, outcome)| RecordReport { message_id: meta.message_id.clone(), outcome }).collect();
        Ok(BatchReport { records, elapsed: started.elapsed(), max_message_age })
    }

    /// Splits the batch into lanes, each record with its position in the event: records of
    /// one lane run in order, lanes run side by side. The records move into their lanes, so
    /// that each body reaches its handler without a copy.
    fn lanes(&self, kind: QueueKind, metas: &[Arc<RecordMeta>], records: Vec<Prepared>) -> Vec<Lane> {
        let records = records.into_iter().enumerate();
        match (kind, self.config.fifo_failure_mode) {
            (QueueKind::Standard, _) => records.map(|record| vec![record]).collect(),
            (QueueKind::Fifo, FifoFailureMode::StopBatch) => vec![records.collect()],
            (QueueKind::Fifo, FifoFailureMode::HoldBackGroup) => {
                let mut lanes: Vec<Lane> = Vec::new();
                let mut lane_of_group: HashMap<&str, usize> = HashMap::new();
                for (index, record) in records {
                    // SQS gives every FIFO message a group; a record without one (a hand-made
                    // event) is ordered after nothing, so it holds nothing back either.
                    let Some(group) = metas[index].message_group_id.as_deref() else {
                        lanes.push(vec![(index, record)]);
                        continue;
                    };
                    let lane = *lane_of_group.entry(group).or_insert_with(|| {
                        lanes.push(Vec::new());
                        lanes.len() - 1
                    });
                    lanes[lane].push((index, record));
                }
                lanes
            }
        }
    }

    /// Runs a lane's records in order; after a failure the rest of the lane is held back.
    async fn run_lane(&self, lane: Lane, invocation: &Arc<InvocationContext>, permits: &Semaphore) -> Vec<(usize, Outcome)> {
        let mut outcomes = Vec::with_capacity(lane.len());
        let mut held_back: Option<Skip> = None;
        for (index, record) in lane {
            if let Some(skip) = &held_back {
                outcomes.push((index, Outcome::NotAttempted(skip.clone())));
                continue;
            }
            let _permit = permits.acquire().await.expect("the semaphore is never closed");
            let remaining = invocation.remaining();
            let span = crate::trace::record_span(&record.meta, invocation);
            let outcome = if remaining < self.config.deadline_margin {
                Outcome::NotAttempted(Skip::Deadline { remaining })
            } else {
                self.run_record(&record.meta, record.body, invocation, span.clone()).await
            };
            span.in_scope(|| log_outcome(&outcome));
            crate::trace::record_outcome(&span, outcome.label());
            if let Outcome::Failed(_) = outcome {
                held_back = Some(match (&record.meta.message_group_id, self.config.fifo_failure_mode) {
                    (_, FifoFailureMode::StopBatch) => Skip::BatchStopped { failed_message_id: record.meta.message_id.clone() },
                    (group, FifoFailureMode::HoldBackGroup) => Skip::GroupHeldBack {
                        // A lane of more than one record always has a group.
                        group: group.clone().unwrap_or_default(),
                        failed_message_id: record.meta.message_id.clone(),
                    },
                });
            }
            outcomes.push((index, outcome));
        }
        outcomes
    }

    async fn run_record(
        &self,
        meta: &Arc<RecordMeta>,
        body: Result<serde_json::Value, RecordError>,
        invocation: &Arc<InvocationContext>,
        span: tracing::Span,
    ) -> Outcome {
        let body = match body {
            Ok(body) => body,
            Err(error) => return Outcome::Failed(error),
        };
        let cx = RecordContext::new(Arc::clone(meta), Arc::clone(invocation));
        let service = Arc::clone(&self.service);
        let call = async move {
            crate::fault::before_record(&body).await?;
            service.call(Record { body, cx }).await
        };
        // Spawned so that a panic unwinds that task only, and so that records of a batch can
        // use every core.
        let mut task = tokio::spawn(call.instrument(span));
        let time_left = invocation.remaining().saturating_sub(self.config.deadline_margin.min(REPLY_RESERVE));
        match tokio::time::timeout(time_left, &mut task).await {
            Ok(Ok(Ok(Handled::Processed(output)))) => Outcome::Processed(output),
            Ok(Ok(Ok(Handled::Duplicate(output)))) => Outcome::Duplicate(output),
            Ok(Ok(Err(error))) => Outcome::Failed(error),
            Ok(Err(join_error)) => Outcome::Failed(match join_error.try_into_panic() {
                Ok(payload) => RecordError::from_panic(payload.as_ref()),
                Err(_) => RecordError::transient("the handler's task was cancelled"),
            }),
            Err(_) => {
                task.abort();
                Outcome::Failed(RecordError::transient(
                    "the handler was still running when the invocation was about to time out; abandoned",
                ))
            }
        }
    }
}

fn all_failed_error(report: &BatchReport) -> BatchError {
    let first = report.records.first().map(|r| format!("{}: {}", r.message_id, r.outcome)).unwrap_or_default();
    BatchError::AllFailed { count: report.records.len(), first }
}

/// A record ready to run: metadata read, body parsed once up front.
struct Prepared {
    meta: Arc<RecordMeta>,
    body: Result<serde_json::Value, RecordError>,
}

/// Records that run one after the other, each with its position in the event.
type Lane = Vec<(usize, Prepared)>;

/// The records, and their bodies as they came when `keep_bodies` (a dead-letter queue gets the
/// original text, not the parsed JSON); otherwise each body is dropped once parsed.
fn prepare(messages: Vec<SqsMessage>, keep_bodies: bool) -> Result<(Vec<Prepared>, Vec<Option<String>>), BatchError> {
    let mut kept = Vec::with_capacity(if keep_bodies { messages.len() } else { 0 });
    let prepared = messages
        .into_iter()
        .enumerate()
        .map(|(index, mut message)| {
            let body = message.body.take();
            let meta = RecordMeta::from_message(message).ok_or(BatchError::MissingMessageId { index })?;
            let prepared = Prepared { meta: Arc::new(meta), body: decode_body(body.as_deref()) };
            if keep_bodies {
                kept.push(body);
            }
            Ok(prepared)
        })
        .collect::<Result<_, _>>()?;
    Ok((prepared, kept))
}

fn max_message_age(metas: &[Arc<RecordMeta>]) -> Option<Duration> {
    let oldest = metas.iter().filter_map(|meta| meta.sent_timestamp_ms).min()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Duration::from_millis(now.saturating_sub(oldest)))
}

/// Logs a record's outcome; called inside its span, which names the record. A handler's reason
/// may quote the body, so addresses are taken out of it.
fn log_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Processed(_) => tracing::debug!("record processed"),
        Outcome::Duplicate(_) => tracing::info!("record skipped: already processed"),
        Outcome::Failed(error) if error.is_permanent() => {
            tracing::error!(reason = crate::redact::email_addresses(error.reason()), "record failed permanently")
        }
        Outcome::Failed(error) => tracing::warn!(reason = crate::redact::email_addresses(error.reason()), "record failed, will be retried"),
        Outcome::NotAttempted(skip) => tracing::warn!(reason = %skip, "record not attempted"),
        // Only the retry stage, after every record ran, makes this outcome.
        Outcome::DeadLettered { .. } => {}
    }
}
