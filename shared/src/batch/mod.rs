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

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tokio::sync::Semaphore;
use tracing::Instrument;

pub use report::{BatchReport, Outcome, RecordReport, Skip, Totals};

use crate::error::RecordError;
use crate::handler::{Handled, Record, RecordContext, RecordService};
use crate::record::{decode_body, InvocationContext, RecordMeta};

/// Records still running this close to the deadline are abandoned, so that the response (and
/// with it the successes) still reaches Lambda before the invocation times out.
const REPLY_RESERVE: Duration = Duration::from_millis(250);

/// What kind of queue the batch came from, which decides the order records run in.
///
/// A *fair* queue is a standard queue whose messages carry a `MessageGroupId`: the group spreads
/// the queue's capacity fairly between tenants, it does not order anything. Its batches are
/// [`QueueKind::Standard`].
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

/// What a failed record of a FIFO batch holds back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FifoFailureMode {
    /// The later records of the same message group; other groups go on.
    #[default]
    HoldBackGroup,
    /// Every later record of the batch, whatever its group.
    StopBatch,
}

/// What the invocation returns when every record of a non-empty batch failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AllFailedPolicy {
    /// A function error: Lambda counts an error and its event source mapping backs off, which
    /// protects a failing dependency. Every message is retried, none is lost.
    #[default]
    ReturnError,
    /// The full failure list, as for any partial failure.
    ReportFailures,
}

#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// How many records run at once (across groups, on FIFO queues).
    pub max_concurrency: usize,
    /// No record starts when less than this is left of the invocation.
    pub deadline_margin: Duration,
    pub fifo_failure_mode: FifoFailureMode,
    pub all_failed: AllFailedPolicy,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 10,
            deadline_margin: Duration::from_secs(2),
            fifo_failure_mode: FifoFailureMode::default(),
            all_failed: AllFailedPolicy::default(),
        }
    }
}

/// Why an invocation returned an error instead of a batch response.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("record {index} of the event has no messageId, so its failure could not be reported; the whole batch is retried")]
    MissingMessageId { index: usize },
    #[error("all {count} records of the batch failed; every one will be retried (first failure: {first})")]
    AllFailed { count: usize, first: String },
}

/// Drives a [`RecordService`] over the records of SQS batches.
pub struct BatchProcessor<S> {
    service: Arc<S>,
    config: BatchConfig,
}

impl<S> Clone for BatchProcessor<S> {
    fn clone(&self) -> Self {
        Self { service: Arc::clone(&self.service), config: self.config.clone() }
    }
}

impl<S: RecordService> BatchProcessor<S> {
    pub fn new(service: S, config: BatchConfig) -> Self {
        Self { service: Arc::new(service), config }
    }

    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// The same processor (sharing its service) with another deadline margin.
    pub fn with_deadline_margin(&self, deadline_margin: Duration) -> Self {
        Self { service: Arc::clone(&self.service), config: BatchConfig { deadline_margin, ..self.config.clone() } }
    }

    /// Processes a batch and returns what Lambda should see: the failure list, or an error
    /// when the batch as a whole must be retried.
    pub async fn handle_event(&self, event: SqsEvent, invocation: InvocationContext) -> Result<SqsBatchResponse, BatchError> {
        let report = self.process(event, invocation).await?;
        self.respond(&report)
    }

    /// What Lambda should see for a processed batch: its failure list, or an error when every
    /// record failed and the policy says so.
    pub fn respond(&self, report: &BatchReport) -> Result<SqsBatchResponse, BatchError> {
        if report.all_failed() && self.config.all_failed == AllFailedPolicy::ReturnError {
            return Err(all_failed_error(report));
        }
        Ok(report.response())
    }

    /// Processes a batch and reports every record's outcome.
    pub async fn process(&self, event: SqsEvent, invocation: InvocationContext) -> Result<BatchReport, BatchError> {
        let started = Instant::now();
        let kind = QueueKind::detect(&event);
        let invocation = Arc::new(invocation);
        let records = prepare(event.records)?;
        let max_message_age = max_message_age(&records);
        let lanes = self.lanes(kind, &records);
        let permits = Semaphore::new(self.config.max_concurrency.max(1));

        let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
        let lane_runs = lanes.into_iter().map(|lane| self.run_lane(lane, &records, &invocation, &permits));
        for lane_outcomes in futures::future::join_all(lane_runs).await {
            for (index, outcome) in lane_outcomes {
                outcomes[index] = Some(outcome);
            }
        }

        let records = records
            .into_iter()
            .zip(outcomes)
            .map(|(record, outcome)| RecordReport {
                message_id: record.meta.message_id.clone(),
                outcome: outcome.expect("every record belongs to exactly one lane"),
            })
            .collect();
        Ok(BatchReport { records, elapsed: started.elapsed(), max_message_age })
    }

    /// Splits the batch into lanes: records of one lane run in order, lanes run side by side.
    fn lanes(&self, kind: QueueKind, records: &[Prepared]) -> Vec<Vec<usize>> {
        match (kind, self.config.fifo_failure_mode) {
            (QueueKind::Standard, _) => (0..records.len()).map(|index| vec![index]).collect(),
            (QueueKind::Fifo, FifoFailureMode::StopBatch) => vec![(0..records.len()).collect()],
            (QueueKind::Fifo, FifoFailureMode::HoldBackGroup) => {
                let mut lanes: Vec<Vec<usize>> = Vec::new();
                let mut lane_of_group: HashMap<&str, usize> = HashMap::new();
                for (index, record) in records.iter().enumerate() {
                    // SQS gives every FIFO message a group; a record without one (a hand-made
                    // event) is ordered after nothing, so it holds nothing back either.
                    let Some(group) = record.meta.message_group_id.as_deref() else {
                        lanes.push(vec![index]);
                        continue;
                    };
                    let lane = *lane_of_group.entry(group).or_insert_with(|| {
                        lanes.push(Vec::new());
                        lanes.len() - 1
                    });
                    lanes[lane].push(index);
                }
                lanes
            }
        }
    }

    /// Runs a lane's records in order; after a failure the rest of the lane is held back.
    async fn run_lane(
        &self,
        lane: Vec<usize>,
        records: &[Prepared],
        invocation: &Arc<InvocationContext>,
        permits: &Semaphore,
    ) -> Vec<(usize, Outcome)> {
        let mut outcomes = Vec::with_capacity(lane.len());
        let mut held_back: Option<Skip> = None;
        for index in lane {
            let record = &records[index];
            if let Some(skip) = &held_back {
                outcomes.push((index, Outcome::NotAttempted(skip.clone())));
                continue;
            }
            let _permit = permits.acquire().await.expect("the semaphore is never closed");
            let remaining = invocation.remaining();
            let span = record_span(&record.meta, invocation);
            let outcome = if remaining < self.config.deadline_margin {
                Outcome::NotAttempted(Skip::Deadline { remaining })
            } else {
                self.run_record(record, invocation, span.clone()).await
            };
            span.in_scope(|| log_outcome(&outcome));
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

    async fn run_record(&self, record: &Prepared, invocation: &Arc<InvocationContext>, span: tracing::Span) -> Outcome {
        let body = match &record.body {
            Ok(body) => body.clone(),
            Err(error) => return Outcome::Failed(error.clone()),
        };
        let cx = RecordContext::new(Arc::clone(&record.meta), Arc::clone(invocation));
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
            Ok(Err(join_error)) => {
                let reason = match join_error.try_into_panic() {
                    Ok(payload) => format!("the handler panicked: {}", panic_message(payload.as_ref())),
                    Err(_) => "the handler's task was cancelled".to_owned(),
                };
                Outcome::Failed(RecordError::transient(reason))
            }
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

fn prepare(messages: Vec<SqsMessage>) -> Result<Vec<Prepared>, BatchError> {
    messages
        .into_iter()
        .enumerate()
        .map(|(index, message)| {
            let message_id = message.message_id.clone().filter(|id| !id.is_empty()).ok_or(BatchError::MissingMessageId { index })?;
            let body = decode_body(message.body.as_deref());
            Ok(Prepared { meta: Arc::new(RecordMeta::from_message(message_id, &message)), body })
        })
        .collect()
}

fn max_message_age(records: &[Prepared]) -> Option<Duration> {
    let oldest = records.iter().filter_map(|record| record.meta.sent_timestamp_ms).min()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Duration::from_millis(now.saturating_sub(oldest)))
}

/// The span every log line about a record carries: what an operator searches the logs by. At
/// error level, so that no log level the lines pass filters it out.
fn record_span(meta: &RecordMeta, invocation: &InvocationContext) -> tracing::Span {
    tracing::error_span!(
        "record",
        message_id = %meta.message_id,
        receive_count = meta.receive_count,
        request_id = %invocation.request_id,
        // Filled in by the idempotency layer, hashed: a key can be personal data.
        idempotency_key = tracing::field::Empty,
    )
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
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str)).unwrap_or("(no message)")
}
