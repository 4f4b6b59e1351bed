//! `sqs-kit publish`: send the message bodies of a file to an SNS topic with `PublishBatch` or
//! to an SQS queue with `SendMessageBatch`.
//!
//! On a FIFO target (a topic ARN or queue URL ending in `.fifo`) every message gets the ids
//! `--group-by` and `--dedup-by` point at in its body (see [`fifo`](super::fifo)); a body without
//! them (a poison message published on purpose) gets the group `default` and the SHA-256 of its
//! text. Entries a batch call reports as failed are retried; those that still fail are listed
//! with their error, and the command exits 1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args};
use serde_json::{json, Value};

use super::aws::{self, describe, BATCH_LIMIT, MAX_MESSAGE_BYTES};
use super::fifo::{FifoArgs, FifoIds};
use sqs_kit::output::{note, print_json, print_json_pretty};
use sqs_kit::runner::{exit, BadInput};

/// Attempts at sending the entries a batch call reports as failed (the first one included).
const ATTEMPTS: u32 = 3;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").args(["topic_arn", "queue_url"])))]
pub(super) struct PublishArgs {
    /// A JSON file holding a list of message bodies (`-` for standard input). A JSON string in
    /// the list is sent as it is (so a malformed body can be sent on purpose); any other value
    /// is sent as its JSON text.
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// The SNS topic to publish to (PublishBatch).
    #[arg(long, value_name = "ARN")]
    topic_arn: Option<String>,
    /// The SQS queue to send to (SendMessageBatch).
    #[arg(long, value_name = "URL")]
    queue_url: Option<String>,
    #[command(flatten)]
    fifo: FifoArgs,
    /// Check the bodies and print the messages instead of sending them: a JSON list of
    /// {"body": TEXT}, with messageGroupId and messageDeduplicationId for a FIFO target.
    #[arg(long)]
    dry_run: bool,
}

/// One message to send: its place in the input, its text and (FIFO) ids.
struct Entry {
    index: usize,
    text: String,
    fifo_ids: Option<FifoIds>,
}

impl Entry {
    /// The message as `--dry-run` shows it.
    fn preview(&self) -> Value {
        let mut preview = json!({"body": self.text});
        if let Some(ids) = &self.fifo_ids {
            preview["messageGroupId"] = ids.group.clone().into();
            preview["messageDeduplicationId"] = ids.deduplication.clone().into();
        }
        preview
    }
}

/// Why an entry was not sent.
#[derive(Clone, Debug)]
struct Failure {
    code: String,
    message: String,
    sender_fault: bool,
}

impl Failure {
    fn new(code: &str, message: Option<&str>, sender_fault: bool) -> Self {
        Failure { code: code.to_owned(), message: message.unwrap_or_default().to_owned(), sender_fault }
    }
}

/// What one batch call did: message ids of the sent entries, errors of the others, by index.
#[derive(Default)]
struct BatchOutcome {
    sent: Vec<(usize, String)>,
    failed: Vec<(usize, Failure)>,
}

impl BatchOutcome {
    /// From a batch response: the (entry id, message id) of each entry sent, the (entry id,
    /// failure) of each other one.
    fn of<'a>(
        sent: impl IntoIterator<Item = (&'a str, &'a str)>,
        failed: impl IntoIterator<Item = (&'a str, Failure)>,
    ) -> anyhow::Result<Self> {
        Ok(BatchOutcome {
            sent: sent.into_iter().map(|(id, message_id)| Ok((parse_id(id)?, message_id.to_owned()))).collect::<anyhow::Result<_>>()?,
            failed: failed.into_iter().map(|(id, failure)| Ok((parse_id(id)?, failure))).collect::<anyhow::Result<_>>()?,
        })
    }
}

enum Target {
    Topic { client: aws_sdk_sns::Client, arn: String },
    Queue { client: aws_sdk_sqs::Client, url: String },
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Topic { arn, .. } => arn,
            Target::Queue { url, .. } => url,
        }
    }

    async fn send(&self, entries: &[&Entry]) -> anyhow::Result<BatchOutcome> {
        match self {
            Target::Topic { client, arn } => {
                use aws_sdk_sns::types::PublishBatchRequestEntry;
                let mut request = client.publish_batch().topic_arn(arn);
                for entry in entries {
                    let built = PublishBatchRequestEntry::builder().id(entry.index.to_string()).message(&entry.text);
                    let ids = entry.fifo_ids.as_ref();
                    let built = built.set_message_group_id(ids.map(|ids| ids.group.clone()));
                    request = request.publish_batch_request_entries(
                        built.set_message_deduplication_id(ids.map(|ids| ids.deduplication.clone())).build()?,
                    );
                }
                let output = request.send().await.map_err(|e| anyhow::anyhow!("PublishBatch to {arn} failed: {}", describe(e)))?;
                BatchOutcome::of(
                    output.successful().iter().filter_map(|ok| ok.id().zip(ok.message_id())),
                    output
                        .failed()
                        .iter()
                        .map(|failed| (failed.id(), Failure::new(failed.code(), failed.message(), failed.sender_fault()))),
                )
            }
            Target::Queue { client, url } => {
                use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
                let mut request = client.send_message_batch().queue_url(url);
                for entry in entries {
                    let built = SendMessageBatchRequestEntry::builder().id(entry.index.to_string()).message_body(&entry.text);
                    let ids = entry.fifo_ids.as_ref();
                    let built = built.set_message_group_id(ids.map(|ids| ids.group.clone()));
                    request = request.entries(built.set_message_deduplication_id(ids.map(|ids| ids.deduplication.clone())).build()?);
                }
                let output = request.send().await.map_err(|e| anyhow::anyhow!("SendMessageBatch to {url} failed: {}", describe(e)))?;
                BatchOutcome::of(
                    output.successful().iter().map(|ok| (ok.id(), ok.message_id())),
                    output
                        .failed()
                        .iter()
                        .map(|failed| (failed.id(), Failure::new(failed.code(), failed.message(), failed.sender_fault()))),
                )
            }
        }
    }
}

fn parse_id(id: &str) -> anyhow::Result<usize> {
    id.parse().map_err(|_| anyhow::anyhow!("the batch response names an entry id {id:?} that was not sent"))
}

pub(super) async fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let bodies: Vec<Value> = aws::load_bodies(&args.file)?;
    if bodies.is_empty() {
        return Err(BadInput("the list of bodies is empty: nothing to publish".into()).into());
    }
    let fifo = args.topic_arn.as_deref().or(args.queue_url.as_deref()).is_some_and(aws::is_fifo);
    let mut entries: Vec<Entry> = Vec::with_capacity(bodies.len());
    for (index, body) in bodies.iter().enumerate() {
        let text = aws::body_text(body);
        aws::check_body(index, &text, aws::PUBLISH_LIMIT)?;
        entries.push(Entry { index, fifo_ids: fifo.then(|| args.fifo.ids(&text)), text });
    }
    if args.dry_run {
        print_json_pretty(&entries.iter().map(Entry::preview).collect::<Vec<_>>())?;
        return Ok(ExitCode::SUCCESS);
    }

    let config = aws::config().await;
    let target = match (args.topic_arn, args.queue_url) {
        (Some(arn), None) => Target::Topic { client: aws_sdk_sns::Client::new(&config), arn },
        (None, Some(url)) => Target::Queue { client: aws_sdk_sqs::Client::new(&config), url },
        _ => return Err(BadInput("publish needs a target: --topic-arn ARN or --queue-url URL (or --dry-run)".into()).into()),
    };

    let mut sent: BTreeMap<usize, String> = BTreeMap::new();
    let mut failed: BTreeMap<usize, Failure> = BTreeMap::new();
    for batch in batches(&entries) {
        match send_with_retries(&target, &batch).await {
            Ok(outcome) => {
                sent.extend(outcome.sent);
                failed.extend(outcome.failed);
            }
            Err(error) => {
                if sent.is_empty() {
                    return Err(error);
                }
                // The send error matters more than one about printing what was sent.
                let _ = print_json(&report(&target, &sent, &failed));
                return Err(error.context(format!("sent {} of {} messages to {}", sent.len(), entries.len(), target.name())));
            }
        }
    }
    print_json(&report(&target, &sent, &failed))?;
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let (index, first) = failed.iter().next().expect("failed is not empty");
    note(&format!(
        "error: {} of {} messages were not sent to {} (body {index}: {}: {}; all are listed in \"failed\")",
        failed.len(),
        entries.len(),
        target.name(),
        first.code,
        first.message
    ));
    Ok(ExitCode::from(exit::RUNTIME))
}

/// Splits the entries into batch calls: at most 10 entries and 256 KiB of bodies per call.
fn batches(entries: &[Entry]) -> Vec<Vec<&Entry>> {
    let mut batches: Vec<Vec<&Entry>> = Vec::new();
    let mut current: Vec<&Entry> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        if current.len() == BATCH_LIMIT || (!current.is_empty() && bytes + entry.text.len() > MAX_MESSAGE_BYTES) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += entry.text.len();
        current.push(entry);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Sends one batch, then resends the entries the response reports as failed (unless the error
/// is the sender's fault, which a retry cannot fix).
async fn send_with_retries(target: &Target, batch: &[&Entry]) -> anyhow::Result<BatchOutcome> {
    let mut result = BatchOutcome::default();
    let mut pending: Vec<&Entry> = batch.to_vec();
    for attempt in 1..=ATTEMPTS {
        let outcome = target.send(&pending).await?;
        let answered: std::collections::HashSet<usize> =
            outcome.sent.iter().map(|(index, _)| *index).chain(outcome.failed.iter().map(|(index, _)| *index)).collect();
        result.sent.extend(outcome.sent);
        let mut retry = Vec::new();
        for (index, failure) in outcome.failed {
            if failure.sender_fault || attempt == ATTEMPTS {
                result.failed.push((index, failure));
            } else {
                retry.extend(pending.iter().find(|entry| entry.index == index).copied());
            }
        }
        // An entry the response does not mention at all is a failure too.
        for entry in pending.iter().filter(|entry| !answered.contains(&entry.index)) {
            if attempt == ATTEMPTS {
                let message = "the batch response does not mention this entry".to_owned();
                result.failed.push((entry.index, Failure { code: "NoResult".into(), message, sender_fault: false }));
            } else {
                retry.push(*entry);
            }
        }
        if retry.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        pending = retry;
    }
    Ok(result)
}

fn report(target: &Target, sent: &BTreeMap<usize, String>, failed: &BTreeMap<usize, Failure>) -> Value {
    let mut report = json!({
        "sent": sent.len(),
        "target": target.name(),
        "messageIds": sent.values().collect::<Vec<_>>(),
    });
    if !failed.is_empty() {
        report["failed"] = failed
            .iter()
            .map(|(index, f)| json!({"index": index, "code": f.code, "message": f.message, "senderFault": f.sender_fault}))
            .collect();
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: usize, size: usize) -> Entry {
        Entry { index, text: "x".repeat(size), fifo_ids: None }
    }

    #[test]
    fn batches_hold_ten_entries_and_256_kib_at_most() {
        let small: Vec<Entry> = (0..23).map(|i| entry(i, 100)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);

        let big: Vec<Entry> = (0..5).map(|i| entry(i, 100_000)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);

        let full: Vec<Entry> = (0..2).map(|i| entry(i, MAX_MESSAGE_BYTES)).collect();
        assert_eq!(batches(&full).len(), 2);
    }
}
