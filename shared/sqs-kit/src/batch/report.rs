//! The outcome of every record in a batch, and the response Lambda gets from it.

use std::fmt;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use serde_json::Value;

use crate::error::RecordError;

/// Why a record was reported failed without its handler being called. SQS delivers it again
/// like any failed record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// Too little time was left to start it safely: less than
    /// [`BatchConfig::deadline_margin`](crate::BatchConfig::deadline_margin).
    Deadline {
        /// What was left of the invocation when the record's turn came.
        remaining: Duration,
    },
    /// An earlier record of the same FIFO message group failed; running this one would break
    /// the group's order ([`FifoFailureMode::HoldBackGroup`](crate::FifoFailureMode::HoldBackGroup)).
    GroupHeldBack {
        /// The message group.
        group: String,
        /// The message id of the group's record that failed.
        failed_message_id: String,
    },
    /// The batch runs in stop-at-first-failure mode
    /// ([`FifoFailureMode::StopBatch`](crate::FifoFailureMode::StopBatch)) and an earlier
    /// record failed.
    BatchStopped {
        /// The message id of the record that failed.
        failed_message_id: String,
    },
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Deadline { remaining } => {
                write!(f, "only {} ms of the invocation were left", remaining.as_millis())
            }
            Skip::GroupHeldBack { group, failed_message_id } => {
                write!(f, "message {failed_message_id} of group {group} failed before it")
            }
            Skip::BatchStopped { failed_message_id } => {
                write!(f, "the batch stopped when message {failed_message_id} failed")
            }
        }
    }
}

/// What happened to one record. [`Outcome::Processed`], [`Outcome::Duplicate`] and
/// [`Outcome::DeadLettered`] are successes, which SQS deletes; the others are in the batch's
/// failure list.
///
/// Displayed for an operator: `processed`, `duplicate (skipped)`, `failed (<kind>): <reason>`
/// with e-mail addresses redacted, `dead-lettered to <queue>: <reason>`, or `not attempted:
/// <why>`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler succeeded; its serialized output.
    Processed(Value),
    /// An earlier delivery already completed this work; the handler was skipped.
    Duplicate(Value),
    /// The handler (or the layers around it) failed.
    Failed(RecordError),
    /// The handler was never called.
    NotAttempted(Skip),
    /// The record failed permanently and was sent to the dead-letter queue (see
    /// [`BatchConfig::dead_letter`](crate::BatchConfig::dead_letter)), which accepted it: it is
    /// reported successful so that SQS deletes the original.
    DeadLettered {
        /// Why it failed.
        error: RecordError,
        /// The dead-letter queue that holds its copy.
        queue_url: String,
    },
}

impl Outcome {
    /// Whether SQS must deliver the record again: [`Outcome::Failed`] and
    /// [`Outcome::NotAttempted`].
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::NotAttempted(_))
    }

    /// The outcome's name in traces and metrics: `processed`, `duplicate`, `failed_transient`,
    /// `failed_permanent`, `dead_lettered` or `not_attempted`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Outcome::Processed(_) => "processed",
            Outcome::Duplicate(_) => "duplicate",
            Outcome::Failed(error) if error.is_permanent() => "failed_permanent",
            Outcome::Failed(_) => "failed_transient",
            Outcome::NotAttempted(_) => "not_attempted",
            Outcome::DeadLettered { .. } => "dead_lettered",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Processed(_) => f.write_str("processed"),
            Outcome::Duplicate(_) => f.write_str("duplicate (skipped)"),
            // A reason may quote the body (serde quotes the value it could not use).
            Outcome::Failed(error) => write!(f, "failed ({}): {}", error.kind(), crate::redact::email_addresses(error.reason())),
            Outcome::NotAttempted(skip) => write!(f, "not attempted: {skip}"),
            Outcome::DeadLettered { error, queue_url } => {
                write!(f, "dead-lettered to {queue_url}: {}", crate::redact::email_addresses(error.reason()))
            }
        }
    }
}

/// One record's outcome in a [`BatchReport`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecordReport {
    /// The record's SQS message id.
    pub message_id: String,
    /// What happened to it.
    pub outcome: Outcome,
}

/// Counts of a batch's outcomes; every record is counted exactly once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Totals {
    /// Records whose handler succeeded ([`Outcome::Processed`]).
    pub processed: usize,
    /// Records skipped as duplicates of completed work ([`Outcome::Duplicate`]).
    pub duplicates: usize,
    /// Records that failed transiently.
    pub failed_transient: usize,
    /// Records that failed permanently.
    pub failed_permanent: usize,
    /// Records reported failed without being attempted ([`Outcome::NotAttempted`]).
    pub not_attempted: usize,
    /// Records that failed permanently and were sent to the dead-letter queue
    /// ([`Outcome::DeadLettered`]); not counted in `failed_permanent`.
    pub dead_lettered: usize,
}

impl Totals {
    /// The records in the failure list: failed (either kind) or not attempted.
    pub fn failed(&self) -> usize {
        self.failed_transient + self.failed_permanent + self.not_attempted
    }
}

/// Every record's outcome, in the order of the event.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BatchReport {
    /// One report per record of the event, in the event's order.
    pub records: Vec<RecordReport>,
    /// How long the batch took to process, from the start of
    /// [`BatchProcessor::process`](crate::BatchProcessor::process) to its last record's outcome.
    pub elapsed: Duration,
    /// How long the oldest record had waited since it was sent (`SentTimestamp`) when the
    /// batch started: the lag a consumer should watch.
    pub max_message_age: Option<Duration>,
}

impl BatchReport {
    /// The `batchItemFailures` response: the records whose outcome
    /// [is a failure](Outcome::is_failure), in event order.
    pub fn response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = self
            .records
            .iter()
            .filter(|record| record.outcome.is_failure())
            .map(|record| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone();
                failure
            })
            .collect();
        response
    }

    /// The counts of the records' outcomes.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for record in &self.records {
            match &record.outcome {
                Outcome::Processed(_) => totals.processed += 1,
                Outcome::Duplicate(_) => totals.duplicates += 1,
                Outcome::Failed(e) if e.is_permanent() => totals.failed_permanent += 1,
                Outcome::Failed(_) => totals.failed_transient += 1,
                Outcome::NotAttempted(_) => totals.not_attempted += 1,
                Outcome::DeadLettered { .. } => totals.dead_lettered += 1,
            }
        }
        totals
    }

    /// A non-empty batch in which no record succeeded.
    pub fn all_failed(&self) -> bool {
        !self.records.is_empty() && self.records.iter().all(|r| r.outcome.is_failure())
    }
}
