//! `poll`: what Lambda's SQS event source mapping does, against a real SQS API.
//!
//! Long-poll a queue, turn what it returns into the same `SqsEvent` Lambda would deliver, run it
//! through the same batch processor as Lambda and `replay`, delete the records that succeeded in
//! one `DeleteMessageBatch`, and leave the failures alone: they become visible again when their
//! visibility timeout ends, and the queue's own redrive policy moves a message to its
//! dead-letter queue once it has been received `maxReceiveCount` times. Nothing here decides
//! about dead-lettering; the queue does, as it does under Lambda.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use tokio::sync::Notify;

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

/// What a run did, for the closing line.
#[derive(Default)]
struct Totals {
    batches: usize,
    received: usize,
    deleted: usize,
    left: usize,
}

/// SIGINT or SIGTERM: finish the batch in hand, then stop.
#[derive(Clone, Default)]
struct Shutdown {
    requested: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Shutdown {
    fn listen(&self) {
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
            tracing::info!("shutdown requested: finishing the batch in hand");
            this.requested.store(true, Ordering::SeqCst);
            this.notify.notify_waiters();
        });
    }

    fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
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
    tracing::info!(queue = %queue.arn, visibility_timeout_s = queue.visibility_timeout.as_secs(), "polling");

    // A short visibility timeout (a test's, or a fast-retrying queue's) must still leave time to
    // work: the safety margin never takes more than a quarter of it.
    let processor = &processor.with_deadline_margin(processor.config().deadline_margin.min(queue.visibility_timeout / 4));
    let shutdown = Shutdown::default();
    shutdown.listen();
    let mut totals = Totals::default();
    let mut idle_since = Instant::now();
    while !shutdown.requested() && args.max_batches.is_none_or(|max| totals.batches < max) {
        let wait = match args.idle_exit {
            Some(idle_exit) => {
                let idle_left = Duration::from_secs(idle_exit).saturating_sub(idle_since.elapsed());
                if idle_left.is_zero() {
                    tracing::info!(idle_exit_s = idle_exit, "no messages for the idle time: exiting");
                    break;
                }
                idle_left.min(MAX_WAIT)
            }
            None => MAX_WAIT,
        };
        let batch = tokio::select! {
            received = receive_batch(&client, &queue, args.batch_size, wait, args.batching_window.map(Duration::from_secs)) => received?,
            _ = shutdown.notify.notified() => break,
        };
        if batch.messages.is_empty() {
            continue;
        }
        idle_since = Instant::now();
        totals.batches += 1;
        totals.received += batch.messages.len();
        let (deleted, left) = process_batch(function_name, processor, metrics, &client, &queue, batch, totals.batches).await?;
        totals.deleted += deleted;
        totals.left += left;
    }
    crate::output::note(&format!(
        "poll of {}: {} batches, {} messages received, {} deleted, {} left for redelivery",
        queue.url, totals.batches, totals.received, totals.deleted, totals.left
    ));
    Ok(())
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
/// window has passed.
async fn receive_batch(
    client: &Client,
    queue: &Queue,
    batch_size: usize,
    wait: Duration,
    window: Option<Duration>,
) -> anyhow::Result<Batch> {
    let mut messages = receive(client, queue, batch_size.min(RECEIVE_LIMIT), wait).await?;
    let received_at = SystemTime::now();
    if let (Some(window), false) = (window, messages.is_empty()) {
        let started = Instant::now();
        while messages.len() < batch_size && started.elapsed() < window {
            let left = window.saturating_sub(started.elapsed()).min(MAX_WAIT);
            let more = receive(client, queue, (batch_size - messages.len()).min(RECEIVE_LIMIT), left).await?;
            messages.extend(more);
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

/// Processes one batch and deletes its successes; returns (deleted, left for redelivery).
async fn process_batch<S: RecordService>(
    function_name: &str,
    processor: &BatchProcessor<S>,
    metrics: &Metrics,
    client: &Client,
    queue: &Queue,
    Batch { messages, received_at }: Batch,
    number: usize,
) -> anyhow::Result<(usize, usize)> {
    // The first receive started the visibility timeouts: past them, SQS hands the messages to
    // another consumer, so no record may start after the earliest one ends.
    let receipts: HashMap<String, String> =
        messages.iter().filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?))).collect();
    let event = lambda_event(queue, messages);
    let count = event.records.len();
    let invocation = InvocationContext {
        deadline: received_at + queue.visibility_timeout,
        function_name: function_name.to_owned(),
        request_id: format!("poll-{}-{number}", std::process::id()),
    };
    let report: BatchReport = match processor.process(event, invocation).await {
        Ok(report) => report,
        Err(error) => {
            tracing::error!(%error, "the batch could not be processed; every message will be redelivered");
            return Ok((0, count));
        }
    };
    let succeeded: Vec<(String, String)> = report
        .records
        .iter()
        .filter(|record| !record.outcome.is_failure())
        .filter_map(|record| Some((record.message_id.clone(), receipts.get(&record.message_id)?.clone())))
        .collect();
    let deleted = delete(client, queue, succeeded).await;
    if let Some(document) = metrics.document(function_name, &report) {
        crate::output::note(&document.to_string());
    }
    crate::output::print_json(&report.response())
        .with_context(|| format!("batch {number} was processed and its {deleted} successes deleted, but its response was not printed"))?;
    let totals = report.totals();
    tracing::info!(batch = number, received = count, deleted, failed = totals.failed(), duplicates = totals.duplicates, "batch done");
    Ok((deleted, count - deleted))
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
