//! `poll`: what Lambda's SQS event source mapping does, against a real SQS API.
//!
//! Long-poll a queue, turn what it returns into the same `SqsEvent` Lambda would deliver, run it
//! through the same batch processor as Lambda and `replay`, delete the records that succeeded in
//! one `DeleteMessageBatch`, and leave the failures alone: they become visible again when their
//! visibility timeout ends, and the queue's own redrive policy moves a message to its
//! dead-letter queue once it has been received `maxReceiveCount` times. Nothing here decides
//! about dead-lettering; the queue does, as it does under Lambda.
//!
//! `--concurrency N` runs N such loops (workers) against the one queue, as the event source
//! mapping runs up to `MaximumConcurrency` invocations at once: each batch has its own receive,
//! deadline, delete and response line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use tokio::sync::watch;
use tracing::Instrument;

use super::cli::PollArgs;
use super::BadInput;
use crate::batch::{BatchProcessor, BatchReport};
use crate::handler::RecordService;
use crate::metrics::Metrics;
use crate::record::InvocationContext;

/// SQS returns at most this many messages per receive.
const RECEIVE_LIMIT: usize = 10;
/// The longest long poll SQS allows.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// Attempts at deleting the entries a `DeleteMessageBatch` reports as failed.
const DELETE_ATTEMPTS: usize = 3;

/// The queue's facts a batch needs, read once at start.
struct Queue {
    url: String,
    arn: String,
    region: String,
    visibility_timeout: Duration,
}

/// What a run did, for the closing line: the sums over every worker.
#[derive(Default)]
struct Totals {
    batches: usize,
    received: usize,
    deleted: usize,
    left: usize,
}

/// The end of receiving, for every worker at once: SIGINT or SIGTERM, the idle time passed, or
/// a worker failed. Each worker finishes the batch in hand, then stops. A watch channel rather
/// than a flag and a `Notify`: a worker that starts waiting after the request still sees it.
#[derive(Clone)]
struct Stop(Arc<watch::Sender<bool>>);

impl Stop {
    fn new() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }

    /// Requests the stop; `true` for the first request, so that its reason is logged once.
    fn request(&self) -> bool {
        !self.0.send_replace(true)
    }

    fn requested(&self) -> bool {
        *self.0.borrow()
    }

    async fn requested_now(&self) {
        let mut receiver = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = receiver.wait_for(|stopped| *stopped).await;
    }

    fn on_signal(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let interrupt = tokio::signal::ctrl_c();
            #[cfg(unix)]
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            #[cfg(unix)]
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let terminated = std::future::pending::<()>();
            tokio::select! {
                _ = interrupt => {}
                _ = terminated => {}
            }
            if this.request() {
                tracing::info!("shutdown requested: finishing the batches in hand");
            }
        });
    }
}

/// What clap cannot check of the flags on their own; before the store is opened, so a refused
/// command leaves no state behind.
pub(crate) fn check_args(args: &PollArgs) -> Result<(), BadInput> {
    if args.batch_size > RECEIVE_LIMIT && args.batching_window.is_none_or(|window| window == 0) {
        return Err(BadInput(format!(
            "--batch-size {} needs a --batching-window of at least 1 s: like Lambda, batches over {RECEIVE_LIMIT} are \
             gathered over a window",
            args.batch_size
        )));
    }
    Ok(())
}

pub(crate) async fn run<S: RecordService>(
    function_name: &str,
    processor: &BatchProcessor<S>,
    metrics: &Metrics,
    args: PollArgs,
    config: &aws_config::SdkConfig,
) -> anyhow::Result<()> {
    let client = Client::new(config);
    let queue = describe(&client, &args.queue_url).await?;
    if let Some(window) = args.batching_window.filter(|&window| Duration::from_secs(window) >= queue.visibility_timeout) {
        return Err(BadInput(format!(
            "--batching-window {window} must be shorter than the visibility timeout ({} s) of {}: the window spends the \
             messages' visibility before processing starts",
            queue.visibility_timeout.as_secs(),
            queue.url
        ))
        .into());
    }
    tracing::info!(queue = %queue.arn, visibility_timeout_s = queue.visibility_timeout.as_secs(), concurrency = args.concurrency, "polling");

    // A short visibility timeout (a test's, or a fast-retrying queue's) must still leave time to
    // work: the safety margin never takes more than a quarter of it.
    let processor = processor.with_deadline_margin(processor.config().deadline_margin.min(queue.visibility_timeout / 4));
    let poller = Poller {
        function_name,
        processor: &processor,
        metrics,
        client,
        queue,
        args: &args,
        stop: Stop::new(),
        claimed: AtomicUsize::new(0),
        totals: Mutex::new(Totals::default()),
        last_message: Mutex::new(Instant::now()),
    };
    poller.stop.on_signal();
    // The workers are futures of this one task, not tasks of their own: they share the
    // processor (and through it the store) by reference, and the records of each batch run on
    // tasks of the batch processor, spread over the runtime's threads.
    let poller = &poller;
    let results = futures::future::join_all((1..=args.concurrency).map(|worker| {
        async move {
            let result = poller.work().await;
            // The others finish their batches in hand and stop: a poller that lost a worker
            // would go on at a concurrency nobody asked for.
            if result.is_err() {
                poller.stop.request();
            }
            result
        }
        .instrument(tracing::info_span!("worker", n = worker))
    }))
    .await;
    let mut errors = results.into_iter().filter_map(Result::err);
    if let Some(first) = errors.next() {
        for other in errors {
            tracing::error!(error = format!("{other:#}"), "another worker failed as well");
        }
        return Err(first);
    }
    let totals = poller.lock_totals();
    crate::output::note(&format!(
        "poll of {}: {} batches, {} messages received, {} deleted, {} left for redelivery",
        poller.queue.url, totals.batches, totals.received, totals.deleted, totals.left
    ));
    Ok(())
}

/// What the workers share: one queue, one processor (and so one store), one stop, and the
/// counts that `--max-batches`, `--idle-exit` and the closing line are about.
struct Poller<'a, S> {
    function_name: &'a str,
    processor: &'a BatchProcessor<S>,
    metrics: &'a Metrics,
    client: Client,
    queue: Queue,
    args: &'a PollArgs,
    stop: Stop,
    /// Batches received or being received, toward `--max-batches`: taken before the receive, so
    /// that the workers together never receive one batch more than it allows.
    claimed: AtomicUsize,
    totals: Mutex<Totals>,
    /// When a message last came in, to any worker: `--idle-exit` is about the whole poller.
    last_message: Mutex<Instant>,
}

impl<S: RecordService> Poller<'_, S> {
    /// One worker: receive a batch, process it, delete its successes, until the stop, the idle
    /// time or `--max-batches`.
    ///
    /// On a FIFO queue several workers keep each group's order because SQS does: it hands out
    /// no message of a group while an earlier one of that group is in flight (received, not yet
    /// deleted, visibility timeout not over), so two batches in flight never hold messages of
    /// one group, and the next batch of a group is received only after this one deleted its
    /// successes or let its failures' visibility run out.
    async fn work(&self) -> anyhow::Result<()> {
        let window = self.args.batching_window.map(Duration::from_secs);
        while !self.stop.requested() {
            let Some(wait) = self.wait() else {
                if self.stop.request() {
                    tracing::info!(idle_exit_s = self.args.idle_exit, "no messages for the idle time: exiting");
                }
                break;
            };
            if !self.claim() {
                break;
            }
            let batch = match receive_batch(&self.client, &self.queue, self.args.batch_size, wait, window, &self.stop).await {
                Ok(batch) if !batch.messages.is_empty() => batch,
                nothing => {
                    // No batch: the claim goes back to the next receive, this worker's or another's.
                    self.claimed.fetch_sub(1, Ordering::SeqCst);
                    nothing?;
                    continue;
                }
            };
            let number = self.received(&batch);
            let (deleted, left) = self.process_batch(batch, number).await?;
            let mut totals = self.lock_totals();
            totals.deleted += deleted;
            totals.left += left;
        }
        Ok(())
    }

    /// How long the next receive may wait; `None` once the poller has been idle for `--idle-exit`.
    fn wait(&self) -> Option<Duration> {
        let Some(idle_exit) = self.args.idle_exit else { return Some(MAX_WAIT) };
        let idle = self.last_message.lock().unwrap_or_else(PoisonError::into_inner).elapsed();
        let left = Duration::from_secs(idle_exit).saturating_sub(idle);
        (!left.is_zero()).then(|| left.min(MAX_WAIT))
    }

    /// Takes one of the batches `--max-batches` allows; `false` when all are taken.
    fn claim(&self) -> bool {
        let allowed = |claimed: usize| self.args.max_batches.is_none_or(|max| claimed < max);
        self.claimed.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |claimed| allowed(claimed).then_some(claimed + 1)).is_ok()
    }

    /// Counts a batch that came in; returns its number, unique across the workers.
    fn received(&self, batch: &Batch) -> usize {
        *self.last_message.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        let mut totals = self.lock_totals();
        totals.batches += 1;
        totals.received += batch.messages.len();
        totals.batches
    }

    fn lock_totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Processes one batch and deletes its successes; returns (deleted, left for redelivery).
    async fn process_batch(&self, Batch { messages, received_at }: Batch, number: usize) -> anyhow::Result<(usize, usize)> {
        let (function_name, queue) = (self.function_name, &self.queue);
        // The first receive started the visibility timeouts: past them, SQS hands the messages to
        // another consumer, so no record may start after the earliest one ends.
        let receipts: HashMap<String, String> =
            messages.iter().filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?))).collect();
        let event = lambda_event(queue, messages);
        let count = event.records.len();
        tracing::info!(batch = number, received = count, "batch received");
        let invocation = InvocationContext {
            deadline: received_at + queue.visibility_timeout,
            function_name: function_name.to_owned(),
            request_id: format!("poll-{}-{number}", std::process::id()),
        };
        let report: BatchReport = match self.processor.process(event, invocation).await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(%error, batch = number, "the batch could not be processed; every message will be redelivered");
                return Ok((0, count));
            }
        };
        let succeeded: Vec<(String, String)> = report
            .records
            .iter()
            .filter(|record| !record.outcome.is_failure())
            .filter_map(|record| Some((record.message_id.clone(), receipts.get(&record.message_id)?.clone())))
            .collect();
        let deleted = delete(&self.client, queue, succeeded).await;
        if let Some(document) = self.metrics.document(function_name, &report) {
            crate::output::note(&document.to_string());
        }
        // One write under stdout's lock per response: the workers' lines never interleave.
        crate::output::print_json(&report.response()).with_context(|| {
            format!("batch {number} was processed and its {deleted} successes deleted, but its response was not printed")
        })?;
        let totals = report.totals();
        tracing::info!(batch = number, received = count, deleted, failed = totals.failed(), duplicates = totals.duplicates, "batch done");
        Ok((deleted, count - deleted))
    }
}

async fn describe(client: &Client, url: &str) -> anyhow::Result<Queue> {
    let output = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the attributes of queue {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    let attributes = output.attributes().cloned().unwrap_or_default();
    let arn = attributes.get(&QueueAttributeName::QueueArn).cloned().unwrap_or_default();
    let visibility_timeout = attributes
        .get(&QueueAttributeName::VisibilityTimeout)
        .and_then(|seconds| seconds.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30));
    let region = arn.split(':').nth(3).unwrap_or_default().to_owned();
    Ok(Queue { url: url.to_owned(), arn, region, visibility_timeout })
}

/// Messages received for one batch.
struct Batch {
    messages: Vec<Message>,
    /// When the first of them was received: their visibility timeout started then, not when the
    /// batching window closed.
    received_at: SystemTime,
}

/// One long poll, then, with a batching window, more receives until the batch is full or the
/// window has passed. A stop ends the long poll with no messages, and the window with the
/// messages that came in: those are a batch in hand, to be processed.
async fn receive_batch(
    client: &Client,
    queue: &Queue,
    batch_size: usize,
    wait: Duration,
    window: Option<Duration>,
    stop: &Stop,
) -> anyhow::Result<Batch> {
    let mut messages = tokio::select! {
        received = receive(client, queue, batch_size.min(RECEIVE_LIMIT), wait) => received?,
        () = stop.requested_now() => Vec::new(),
    };
    let received_at = SystemTime::now();
    if let (Some(window), false) = (window, messages.is_empty()) {
        let started = Instant::now();
        while messages.len() < batch_size && started.elapsed() < window {
            let left = window.saturating_sub(started.elapsed()).min(MAX_WAIT);
            tokio::select! {
                more = receive(client, queue, (batch_size - messages.len()).min(RECEIVE_LIMIT), left) => messages.extend(more?),
                () = stop.requested_now() => break,
            }
        }
    }
    Ok(Batch { messages, received_at })
}

async fn receive(client: &Client, queue: &Queue, max: usize, wait: Duration) -> anyhow::Result<Vec<Message>> {
    let output = client
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(max as i32)
        .wait_time_seconds(wait.as_secs().max(1) as i32)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot receive from {}: {}", queue.url, aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(output.messages.unwrap_or_default())
}

/// Deletes the successes in batches of 10, retrying the entries SQS reports as failed; returns
/// how many were deleted. One that cannot be deleted is redelivered later and found a duplicate.
async fn delete(client: &Client, queue: &Queue, mut pending: Vec<(String, String)>) -> usize {
    let mut deleted = 0;
    for attempt in 1..=DELETE_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        let mut failed = Vec::new();
        for chunk in pending.chunks(RECEIVE_LIMIT) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .map(|(index, (_, receipt))| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            match client.delete_message_batch().queue_url(&queue.url).set_entries(Some(entries)).send().await {
                Ok(output) => {
                    deleted += output.successful().len();
                    for failure in output.failed() {
                        if let Some(entry) = failure.id().parse::<usize>().ok().and_then(|index| chunk.get(index)) {
                            tracing::warn!(message_id = %entry.0, code = failure.code(), attempt, "delete failed");
                            failed.push(entry.clone());
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(error), attempt, "DeleteMessageBatch failed");
                    failed.extend_from_slice(chunk);
                }
            }
        }
        pending = failed;
        if !pending.is_empty() && attempt < DELETE_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
        }
    }
    for (message_id, _) in &pending {
        tracing::warn!(%message_id, "could not delete a processed message; it will be redelivered and skipped as a duplicate");
    }
    deleted
}

/// The event Lambda's event source mapping would deliver for these messages.
fn lambda_event(queue: &Queue, messages: Vec<Message>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .into_iter()
        .map(|message| {
            let mut record = SqsMessage::default();
            record.attributes =
                message.attributes.unwrap_or_default().into_iter().map(|(name, value)| (name.as_str().to_owned(), value)).collect();
            record.message_attributes = message
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.string_value = value.string_value;
                    attribute.binary_value = value.binary_value.map(base64_data);
                    attribute.string_list_values = value.string_list_values.unwrap_or_default();
                    attribute.binary_list_values = value.binary_list_values.unwrap_or_default().into_iter().map(base64_data).collect();
                    attribute.data_type = Some(value.data_type);
                    (name, attribute)
                })
                .collect();
            record.message_id = message.message_id;
            record.receipt_handle = message.receipt_handle;
            record.body = message.body;
            record.md5_of_body = message.md5_of_body;
            record.md5_of_message_attributes = message.md5_of_message_attributes;
            record.event_source = Some("aws:sqs".to_owned());
            record.event_source_arn = Some(queue.arn.clone());
            record.aws_region = Some(queue.region.clone());
            record
        })
        .collect();
    event
}

fn base64_data(blob: aws_sdk_sqs::primitives::Blob) -> Base64Data {
    let mut data = Base64Data::default();
    *data = blob.into_inner();
    data
}
