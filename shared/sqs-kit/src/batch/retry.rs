//! The retry-control stage of a batch: once every record's outcome is known and before the
//! response is built, transient failures get their backoff and permanent failures go to the
//! dead-letter queue ([`BatchConfig::backoff`], [`BatchConfig::dead_letter`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;

use super::{BatchConfig, Outcome, REPLY_RESERVE};
use crate::record::{InvocationContext, RecordMeta};
use crate::retry::{queue_url_of_arn, DeadLetterMessage, DeadLetterTarget, QueueActions, VisibilityChange, VISIBILITY_BATCH_LIMIT};

/// Sends to a dead-letter queue in flight at once, per batch.
const PARALLEL_SENDS: usize = 10;

/// The queue port, and what it answered once per process: the dead-letter queue of each source
/// queue (by ARN) under [`DeadLetterTarget::RedrivePolicy`].
#[derive(Debug)]
pub(super) struct Queue {
    actions: Arc<dyn QueueActions>,
    dead_letter_queues: Mutex<HashMap<String, Option<String>>>,
}

impl Queue {
    pub(super) fn new(actions: Arc<dyn QueueActions>) -> Self {
        Self { actions, dead_letter_queues: Mutex::new(HashMap::new()) }
    }

    /// The URL of the dead-letter queue that the redrive policy of `source_arn` names (`None`:
    /// it has none), asked once per process; an error is not kept, the next batch asks again.
    async fn redrive_target(&self, source_arn: &str) -> Result<Option<String>, String> {
        if let Some(known) = self.dead_letter_queues.lock().unwrap_or_else(PoisonError::into_inner).get(source_arn) {
            return Ok(known.clone());
        }
        let source_url = queue_url_of_arn(source_arn).ok_or_else(|| format!("{source_arn:?} is not the ARN of a queue"))?;
        let arn = self.actions.dead_letter_queue_arn(&source_url).await.map_err(|error| error.to_string())?;
        let url = match arn {
            Some(arn) => {
                Some(queue_url_of_arn(&arn).ok_or_else(|| format!("the redrive policy of {source_url} names {arn:?}, not a queue"))?)
            }
            None => None,
        };
        self.dead_letter_queues.lock().unwrap_or_else(PoisonError::into_inner).insert(source_arn.to_owned(), url.clone());
        Ok(url)
    }
}

/// Runs the stage over a processed batch; `bodies` are the records' bodies as they came (kept
/// only when dead-lettering is configured).
pub(super) async fn apply(
    config: &BatchConfig,
    queue: Option<&Queue>,
    invocation: &InvocationContext,
    metas: &[Arc<RecordMeta>],
    bodies: &mut [Option<String>],
    outcomes: &mut [Outcome],
) {
    let backoff_wanted = config.backoff.is_some() && outcomes.iter().any(is_transient_failure);
    let dead_letter_wanted = config.dead_letter.is_some() && outcomes.iter().any(is_permanent_failure);
    if !backoff_wanted && !dead_letter_wanted {
        return;
    }
    let Some(queue) = queue else {
        tracing::warn!(
            "backoff or dead-lettering is configured, but the batch processor was given no queue to act through \
             (BatchProcessor::with_queue): the failed records are reported failed, as without them"
        );
        return;
    };
    // The calls must end before the invocation does, or its response (and the successes) is lost.
    let budget = invocation.remaining().saturating_sub(REPLY_RESERVE);
    let backoff = async {
        if backoff_wanted {
            set_backoff(config, queue, metas, outcomes, budget).await;
        }
    };
    let dead_lettered = async {
        if dead_letter_wanted {
            dead_letter(config, queue, invocation, metas, bodies, outcomes, budget).await
        } else {
            Vec::new()
        }
    };
    let ((), dead_lettered) = futures::future::join(backoff, dead_lettered).await;
    for (index, queue_url) in dead_lettered {
        if let Outcome::Failed(error) = &outcomes[index] {
            outcomes[index] = Outcome::DeadLettered { error: error.clone(), queue_url };
        }
    }
}

fn is_transient_failure(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Failed(error) if !error.is_permanent())
}

fn is_permanent_failure(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Failed(error) if error.is_permanent())
}

/// Sets the visibility of every transiently failed record to its backoff; what fails is logged
/// once for the batch, and those records come back at the queue's own timeout.
async fn set_backoff(config: &BatchConfig, queue: &Queue, metas: &[Arc<RecordMeta>], outcomes: &[Outcome], budget: Duration) {
    let Some(backoff) = config.backoff else { return };
    let mut by_queue: BTreeMap<String, Vec<VisibilityChange>> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut wanted = 0;
    for (meta, _) in metas.iter().zip(outcomes).filter(|(_, outcome)| is_transient_failure(outcome)) {
        wanted += 1;
        let url = meta.event_source_arn.as_deref().and_then(queue_url_of_arn);
        match (url, &meta.receipt_handle) {
            (Some(url), Some(receipt)) => {
                let timeout = backoff.timeout(meta.receive_count, fastrand::f64());
                tracing::debug!(message_id = %meta.message_id, backoff_s = timeout.as_secs(), "record backed off");
                by_queue.entry(url).or_default().push(VisibilityChange::new(&meta.message_id, receipt, timeout));
            }
            _ => problems.push(format!("{}: no queue ARN or receipt handle in the event", meta.message_id)),
        }
    }
    // The futures are made in a plain loop: a stream adaptor's closure over borrowed arguments
    // would make the batch future lose its `Send`.
    let mut calls = Vec::new();
    for (url, changes) in &by_queue {
        for chunk in changes.chunks(VISIBILITY_BATCH_LIMIT) {
            calls.push(change_visibility(queue, url, chunk, budget));
        }
    }
    let results: Vec<Vec<String>> = futures::stream::iter(calls).buffer_unordered(PARALLEL_SENDS).collect().await;
    problems.extend(results.into_iter().flatten());
    if let Some(first) = problems.first() {
        tracing::warn!(
            not_backed_off = problems.len(),
            of = wanted,
            first_problem = %first,
            "could not set the backoff of some failed records; they come back at the queue's visibility timeout"
        );
    }
}

/// One `ChangeMessageVisibilityBatch`; what went wrong, one line per record it failed for.
async fn change_visibility(queue: &Queue, url: &str, chunk: &[VisibilityChange], budget: Duration) -> Vec<String> {
    match tokio::time::timeout(budget, queue.actions.change_visibility(url, chunk)).await {
        Ok(Ok(refused)) => refused.into_iter().map(|failure| format!("{}: {}", failure.message_id, failure.reason)).collect(),
        Ok(Err(error)) => chunk.iter().map(|change| format!("{}: {error}", change.message_id)).collect(),
        Err(_) => {
            chunk.iter().map(|change| format!("{}: {url} did not answer before the invocation's deadline", change.message_id)).collect()
        }
    }
}

/// Sends every permanently failed record to its dead-letter queue; returns the records the
/// queue accepted, with its URL.
async fn dead_letter(
    config: &BatchConfig,
    queue: &Queue,
    invocation: &InvocationContext,
    metas: &[Arc<RecordMeta>],
    bodies: &mut [Option<String>],
    outcomes: &[Outcome],
    budget: Duration,
) -> Vec<(usize, String)> {
    let Some(target) = &config.dead_letter else { return Vec::new() };
    let failed: Vec<Failed<'_>> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, outcome)| match outcome {
            Outcome::Failed(error) if error.is_permanent() => {
                Some(Failed { index, meta: &metas[index], body: bodies[index].take(), reason: error.reason() })
            }
            _ => None,
        })
        .collect();
    let mut sends = Vec::with_capacity(failed.len());
    for record in failed {
        sends.push(send(target, queue, &invocation.function_name, record, budget));
    }
    let sent: Vec<Option<(usize, String)>> = futures::stream::iter(sends).buffer_unordered(PARALLEL_SENDS).collect().await;
    sent.into_iter().flatten().collect()
}

/// A permanently failed record on its way to the dead-letter queue.
struct Failed<'a> {
    index: usize,
    meta: &'a RecordMeta,
    body: Option<String>,
    reason: &'a str,
}

/// Sends one record; its index and the queue's URL once the queue accepted it.
async fn send(target: &DeadLetterTarget, queue: &Queue, function: &str, record: Failed<'_>, budget: Duration) -> Option<(usize, String)> {
    let Failed { index, meta, body, reason } = record;
    let result = async {
        let url = match target {
            DeadLetterTarget::Queue(url) => url.clone(),
            DeadLetterTarget::RedrivePolicy => {
                let source = meta.event_source_arn.as_deref().ok_or("the event names no source queue (eventSourceARN)")?;
                queue.redrive_target(source).await?.ok_or_else(|| format!("its source queue {source} has no redrive policy"))?
            }
        };
        let message = DeadLetterMessage::for_record(meta, body, reason, function, &url).map_err(|e| e.to_string())?;
        match tokio::time::timeout(budget, queue.actions.send(&url, &message)).await {
            Ok(Ok(())) => Ok(url),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("SendMessage to {url} did not answer before the invocation's deadline")),
        }
    }
    .await;
    match result {
        Ok(url) => {
            tracing::warn!(message_id = %meta.message_id, dead_letter_queue = %url, "record failed permanently: sent to the dead-letter queue");
            Some((index, url))
        }
        Err(problem) => {
            tracing::warn!(
                message_id = %meta.message_id,
                problem = %crate::redact::email_addresses(&problem),
                "record failed permanently and could not be sent to the dead-letter queue: reported failed, the queue's redrive \
                 policy will move it"
            );
            None
        }
    }
}
