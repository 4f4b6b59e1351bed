//! `sqs-kit dlq peek|redrive`: look into a dead-letter queue without consuming it, and move its
//! messages back to their source queue once the cause is fixed.
//!
//! **peek** receives the messages with a visibility timeout that hides them while the peek
//! lasts (so every receive returns new ones, on FIFO queues too), then makes them visible
//! again at once (`ChangeMessageVisibilityBatch` to 0). Receiving counts: each peek adds one
//! to a message's `ApproximateReceiveCount`. If a peek is interrupted, the messages reappear
//! on their own after the visibility timeout. A FIFO queue hands out at most the messages in
//! flight per message group that fit in one receive, so a peek of a FIFO DLQ shows at most 10
//! messages per group. A message that a function sent there itself (sqs-kit's dead-letter
//! forwarding, `SQS_KIT_DEAD_LETTER`) carries `SqsKit.*` message attributes saying why it
//! failed; peek shows them as its `failure` and, since SQS names no source queue for such a
//! message, takes its `sourceQueueArn` from `SqsKit.SourceQueue`.
//!
//! **redrive** first checks the direction: the messages go only to a queue whose dead-letter
//! queue `--queue-url` is (the destination's `RedrivePolicy` names it), or one the DLQ's
//! `RedriveAllowPolicy` names (`byQueue`), or, with `allowAll`, anywhere if some queue uses it as
//! its DLQ. Anything else, such as a live queue named as the source and its DLQ as `--to`,
//! would drain a live queue, and is refused unless `--force` is given.
//!
//! It then starts an SQS message move task (`StartMessageMoveTask`) where the API has one
//! and no `--max` is given, and waits for it to finish. Otherwise (a `--max`, `--manual`, an
//! API without move tasks, such as moto, or a DLQ that holds forwarded messages, see below) it
//! moves the messages itself, one at a time: receive, `SendMessage` to the source (same body
//! and message attributes but the `SqsKit.*` ones; on FIFO queues the same message group and a
//! deduplication id derived from the DLQ message's id), and only after the send succeeded,
//! `DeleteMessage` from the DLQ.
//!
//! A move task moves messages as they are, so it would bring a forwarded message back with its
//! `SqsKit.*` failure attributes: stale once the message is retried. Before starting one,
//! redrive therefore looks at the first messages it receives (up to 10); if any carries a
//! `SqsKit.*` attribute it moves the whole DLQ itself, stripping them. A DLQ where forwarded
//! messages sit behind more than 10 others can still go by move task and keep them on those:
//! `--manual` strips them from every message. An interruption can never lose a
//! message: at worst a message that was sent but not yet deleted is sent again by the next
//! redrive — deduplicated by a FIFO queue within its 5-minute deduplication interval, and
//! delivered twice by a standard queue, where the consumers' idempotency (the same `eventId`)
//! absorbs it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitCode;
use std::time::Duration;

use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use aws_sdk_sqs::Client;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::aws::{self, describe, BATCH_LIMIT};
use super::fifo;
use sqs_kit::output::{note, print_json, print_json_pretty};
use sqs_kit::retry::attributes as forwarding;
use sqs_kit::runner::BadInput;

/// How long a received message stays hidden while a peek or a redrive holds it.
const HOLD_SECONDS: i32 = 60;
/// Long poll of each receive: long enough to ask every SQS server, short enough for an empty
/// queue to end the command quickly.
const WAIT_SECONDS: i32 = 1;
/// Messages a peek shows by default.
const DEFAULT_PEEK: u32 = 100;
/// Messages a peek shows at most: it holds every one it shows in flight (hidden) until it
/// ends, and SQS refuses receives beyond a queue's in-flight limit.
const MAX_PEEK: u32 = 10_000;

/// How peek names each attribute of sqs-kit's dead-letter forwarding in a message's `failure`.
const FAILURE_FIELDS: [(&str, &str); 5] = [
    (forwarding::FAILURE_REASON, "reason"),
    (forwarding::FAILED_FUNCTION, "function"),
    (forwarding::RECEIVE_COUNT, "receiveCount"),
    (forwarding::SOURCE_QUEUE, "sourceQueue"),
    (forwarding::SOURCE_MESSAGE_ID, "sourceMessageId"),
];

#[derive(Debug, Subcommand)]
pub(super) enum DlqCommand {
    /// Show a dead-letter queue's messages as pretty JSON on stdout, and leave them there.
    ///
    /// Each message: messageId, receiveCount (ApproximateReceiveCount, which counts this
    /// peek's own receive), firstReceivedAt and sentAt (RFC 3339), messageGroupId (FIFO),
    /// sourceQueueArn (where SQS reports it, or else the SqsKit.SourceQueue attribute),
    /// messageAttributes (those a redrive sends back), failure (for a message a function
    /// forwarded: reason, function, receiveCount, sourceQueue, sourceMessageId, from its
    /// SqsKit.* attributes) and the body (parsed JSON, or the raw text).
    Peek(PeekArgs),
    /// Move a dead-letter queue's messages back to its source queue (after a fix).
    ///
    /// Refused (exit 2) unless --queue-url is a dead-letter queue of the destination: the
    /// destination's RedrivePolicy names it, or its RedriveAllowPolicy allows the destination
    /// (byQueue naming it, or allowAll on a queue some queue uses as its DLQ). --force overrides.
    ///
    /// Uses a StartMessageMoveTask where the API has one, unless --max or --manual is given or
    /// the first messages received carry SqsKit.* attributes (messages a function forwarded,
    /// whose failure attributes a move task would keep): then it moves the messages itself,
    /// and sends each back without its SqsKit.* attributes. --manual strips them from every
    /// message, however deep in the DLQ.
    ///
    /// Prints {"moved": N, "from": DLQ_URL, "to": SOURCE_URL, "method": ...}. No message is
    /// lost if interrupted: each is deleted from the DLQ only after it was sent to the source;
    /// one sent but not yet deleted is sent again by the next redrive (deduplicated on FIFO
    /// queues, absorbed by the consumers' idempotency on standard queues).
    Redrive(RedriveArgs),
}

#[derive(Debug, Args)]
pub(super) struct PeekArgs {
    /// The dead-letter queue.
    #[arg(long, value_name = "URL")]
    queue_url: String,
    /// Show at most N messages (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PEEK, value_parser = super::whole_number(1, MAX_PEEK))]
    max: u32,
}

#[derive(Debug, Args)]
pub(super) struct RedriveArgs {
    /// The dead-letter queue.
    #[arg(long, value_name = "URL")]
    queue_url: String,
    /// The queue to move the messages to [default: the single source queue that the DLQ's
    /// RedriveAllowPolicy allows, or else the single queue that uses it as its DLQ].
    #[arg(long, value_name = "SOURCE_URL")]
    to: Option<String>,
    /// Move at most N messages (always moved by receive/send/delete).
    #[arg(long, value_name = "N", value_parser = super::whole_number(1, u32::MAX))]
    max: Option<u32>,
    /// Move the messages by receive/send/delete even where the API has StartMessageMoveTask
    /// (which strips the SqsKit.* attributes from every message).
    #[arg(long)]
    manual: bool,
    /// Move the messages even though --queue-url is not a dead-letter queue of --to.
    #[arg(long)]
    force: bool,
}

pub(super) async fn run(command: DlqCommand) -> anyhow::Result<ExitCode> {
    let config = aws::config().await;
    let client = Client::new(&config);
    match command {
        DlqCommand::Peek(args) => peek(&client, args).await,
        DlqCommand::Redrive(args) => redrive(&client, args).await,
    }
}

/// Receives up to `max` messages, hidden for [`HOLD_SECONDS`], with every attribute.
pub(super) async fn receive(client: &Client, url: &str, max: usize) -> anyhow::Result<Vec<Message>> {
    let output = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.min(BATCH_LIMIT) as i32)
        .visibility_timeout(HOLD_SECONDS)
        .wait_time_seconds(WAIT_SECONDS)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot receive from {url}: {}", describe(e)))?;
    Ok(output.messages.unwrap_or_default())
}

async fn peek(client: &Client, args: PeekArgs) -> anyhow::Result<ExitCode> {
    let url = &args.queue_url;
    let max = args.max as usize;
    // Fails early, with a clear message, when the queue does not exist.
    aws::queue_attributes(client, url).await?;
    let mut shown: Vec<Value> = Vec::new();
    // The latest receipt handle of every held message, to make it visible again.
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    let result = async {
        while shown.len() < max {
            let messages = receive(client, url, max - shown.len()).await?;
            let mut new = 0;
            for message in messages {
                let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else { continue };
                let first_time = !held.contains_key(id);
                held.insert(id.to_owned(), receipt.to_owned());
                if first_time && shown.len() < max {
                    shown.push(describe_message(&message));
                    new += 1;
                }
            }
            if new == 0 {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    let restored = restore(client, url, &held).await;
    result?;
    if let Err(error) = restored {
        note(&format!("warning: {error:#}; those messages stay hidden for up to {HOLD_SECONDS} s, then reappear in the DLQ"));
    }
    print_json_pretty(&shown)?;
    note(&format!("{} message(s) in {url}, left in the queue", shown.len()));
    Ok(ExitCode::SUCCESS)
}

/// Makes the held messages visible again, 10 per call.
pub(super) async fn restore(client: &Client, url: &str, held: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let handles: Vec<&String> = held.values().collect();
    let mut failures = 0;
    let mut first_error = None;
    for chunk in handles.chunks(BATCH_LIMIT) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder().id(i.to_string()).receipt_handle(*handle).visibility_timeout(0).build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        match client.change_message_visibility_batch().queue_url(url).set_entries(Some(entries)).send().await {
            Ok(output) => {
                failures += output.failed().len();
                if let Some(failed) = output.failed().first() {
                    first_error.get_or_insert_with(|| format!("{}: {}", failed.code(), failed.message().unwrap_or_default()));
                }
            }
            Err(error) => {
                failures += chunk.len();
                first_error.get_or_insert_with(|| describe(error));
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(error) => Err(anyhow::anyhow!("could not make {failures} message(s) visible again in {url} ({error})")),
    }
}

pub(super) fn system_attribute<'m>(message: &'m Message, name: &MessageSystemAttributeName) -> Option<&'m str> {
    message.attributes().and_then(|attributes| attributes.get(name)).map(String::as_str)
}

fn describe_message(message: &Message) -> Value {
    let time = |name| system_attribute(message, &name).and_then(|ms| ms.parse::<i64>().ok()).map(aws::rfc3339_ms);
    let mut shown = Map::new();
    shown.insert("messageId".into(), message.message_id().unwrap_or_default().into());
    let count = system_attribute(message, &MessageSystemAttributeName::ApproximateReceiveCount).and_then(|c| c.parse::<u64>().ok());
    shown.insert("receiveCount".into(), count.into());
    shown.insert("firstReceivedAt".into(), time(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp).into());
    shown.insert("sentAt".into(), time(MessageSystemAttributeName::SentTimestamp).into());
    if let Some(group) = system_attribute(message, &MessageSystemAttributeName::MessageGroupId) {
        shown.insert("messageGroupId".into(), group.into());
    }
    let message_attributes = message.message_attributes().cloned().unwrap_or_default();
    let forwarded_source = message_attributes.get(forwarding::SOURCE_QUEUE).and_then(MessageAttributeValue::string_value);
    if let Some(source) = system_attribute(message, &MessageSystemAttributeName::DeadLetterQueueSourceArn).or(forwarded_source) {
        shown.insert("sourceQueueArn".into(), source.into());
    }
    let (forwarded, original): (HashMap<_, _>, HashMap<_, _>) =
        message_attributes.into_iter().partition(|(name, _)| is_forwarding_attribute(name));
    if !original.is_empty() {
        let original: Map<String, Value> = original
            .iter()
            .map(|(name, value)| {
                let shown = match value.string_value() {
                    Some(text) => json!({"dataType": value.data_type(), "stringValue": text}),
                    None => json!({"dataType": value.data_type()}),
                };
                (name.clone(), shown)
            })
            .collect();
        shown.insert("messageAttributes".into(), original.into());
    }
    if !forwarded.is_empty() {
        shown.insert("failure".into(), failure(&forwarded));
    }
    let body = message.body().unwrap_or_default();
    shown.insert("body".into(), serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())));
    shown.into()
}

fn is_forwarding_attribute(attribute: &str) -> bool {
    attribute.starts_with(forwarding::PREFIX)
}

/// The forwarding attributes of a message, by the names of [`FAILURE_FIELDS`] (a number as a
/// number); one this version does not know keeps its name without the prefix.
fn failure(forwarded: &HashMap<String, MessageAttributeValue>) -> Value {
    let mut failure = Map::new();
    for (name, value) in forwarded {
        let field = FAILURE_FIELDS.iter().find(|(attribute, _)| attribute == name).map_or(&name[forwarding::PREFIX.len()..], |(_, f)| f);
        let text = value.string_value().unwrap_or_default();
        let shown = match text.parse::<u64>() {
            Ok(number) if value.data_type().starts_with("Number") => Value::from(number),
            _ => Value::from(text),
        };
        failure.insert(field.to_owned(), shown);
    }
    failure.into()
}

/// A message's attributes as a redrive sends them back: without those the forwarding added.
fn original_attributes(message: &Message) -> Option<HashMap<String, MessageAttributeValue>> {
    let original: HashMap<String, MessageAttributeValue> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter(|(name, _)| !is_forwarding_attribute(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    Some(original).filter(|original| !original.is_empty())
}

/// The receipt handles of received messages, by message id, for [`restore`].
fn receipts(messages: &[Message]) -> BTreeMap<String, String> {
    messages.iter().filter_map(|m| Some((m.message_id()?.to_owned(), m.receipt_handle()?.to_owned()))).collect()
}

async fn redrive(client: &Client, args: RedriveArgs) -> anyhow::Result<ExitCode> {
    let from = &args.queue_url;
    let attributes = aws::queue_attributes(client, from).await?;
    let dlq_arn = attributes.get(QueueAttributeName::QueueArn.as_str()).cloned().unwrap_or_default();
    let to = match &args.to {
        Some(to) => to.clone(),
        None => source_queue(client, from, &attributes).await?,
    };
    if to == *from {
        return Err(BadInput(format!("--to names the dead-letter queue itself ({to}): nothing to move")).into());
    }
    if aws::is_fifo(from) != aws::is_fifo(&to) {
        let kind = |url: &str| if aws::is_fifo(url) { "a FIFO queue" } else { "a standard queue" };
        return Err(
            BadInput(format!("{from} is {} but {to} is {}: a redrive needs two queues of the same type", kind(from), kind(&to))).into()
        );
    }
    let to_attributes = aws::queue_attributes(client, &to).await?;
    let to_arn = to_attributes.get(QueueAttributeName::QueueArn.as_str()).cloned().unwrap_or_default();
    let source = QueueInfo { url: from, arn: &dlq_arn, attributes: &attributes };
    let destination = QueueInfo { url: &to, arn: &to_arn, attributes: &to_attributes };
    if let Err(checked) = check_direction(client, &source, &destination).await {
        let refusal = format!("{from} is not a dead-letter queue of {to}: {checked}");
        if !args.force {
            return Err(BadInput(format!(
                "refusing to move the messages of {from} to {to}, which could drain a live queue: {refusal}; check that \
                 --queue-url is the dead-letter queue and --to the queue it serves, or pass --force to move them anyway"
            ))
            .into());
        }
        note(&format!("warning: --force: {refusal}; moving the messages anyway"));
    }

    // Messages received before the move loop, which it moves first.
    let mut received = Vec::new();
    if args.max.is_none() && !args.manual {
        received = receive(client, from, BATCH_LIMIT).await?;
        let forwarded =
            received.iter().any(|m| m.message_attributes().into_iter().flatten().any(|(name, _)| is_forwarding_attribute(name)));
        if forwarded {
            note(&format!(
                "{from} holds messages a function forwarded ({}* attributes), which a move task would keep: \
                 moving the messages by receive, send, delete, without those attributes",
                forwarding::PREFIX
            ));
        } else if let Err(error) = restore(client, from, &receipts(&received)).await {
            note(&format!("warning: {error:#}: moving the messages by receive, send, delete"));
        } else {
            received.clear();
            match move_task(client, &dlq_arn, &to_arn).await? {
                MoveTask::Done { moved, handle } => {
                    let report = json!({"moved": moved, "from": from, "to": to, "method": "StartMessageMoveTask", "taskHandle": handle});
                    print_json(&report)?;
                    return Ok(ExitCode::SUCCESS);
                }
                MoveTask::Unsupported(reason) => {
                    note(&format!("the SQS API has no StartMessageMoveTask ({reason}): moving the messages by receive, send, delete"));
                }
            }
        }
    }

    let max = args.max.map_or(usize::MAX, |max| max as usize);
    let mut moved = 0usize;
    let mut seen: HashSet<String> = HashSet::new();
    let outcome = async {
        while moved < max {
            let messages = match std::mem::take(&mut received) {
                held if held.is_empty() => receive(client, from, max - moved).await?,
                held => held,
            };
            if messages.is_empty() {
                break;
            }
            let mut progress = false;
            for (position, message) in messages.iter().enumerate() {
                let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else { continue };
                if moved >= max || !seen.insert(id.to_owned()) {
                    // Over the bound, or received again: leave it for later, visible at once.
                    let _ = client.change_message_visibility().queue_url(from).receipt_handle(receipt).visibility_timeout(0).send().await;
                    continue;
                }
                if let Err(error) = send_to_source(client, message, &to).await {
                    let _ = restore(client, from, &receipts(&messages[position..])).await;
                    return Err(error.context(format!("message {id} stays in {from}")));
                }
                client.delete_message().queue_url(from).receipt_handle(receipt).send().await.map_err(|e| {
                    anyhow::anyhow!(
                        "message {id} was sent to {to} but could not be deleted from {from} ({}); the next redrive sends it again \
                         (a FIFO queue deduplicates it within 5 minutes, a standard queue's consumers skip it as a duplicate)",
                        describe(e)
                    )
                })?;
                moved += 1;
                progress = true;
            }
            if !progress {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    let report = json!({"moved": moved, "from": from, "to": to, "method": "receive-send-delete"});
    let printed = print_json(&report);
    // A failed move matters more than a failure to print how far it got.
    outcome?;
    printed?;
    Ok(ExitCode::SUCCESS)
}

/// Sends a DLQ message to the source queue as it was: body, message attributes (but the
/// forwarding's `SqsKit.*` ones, which describe the failure, not the message), its message
/// group, and on FIFO queues a deduplication id derived from its message id. A fair queue's
/// message (a standard queue's, with a group) keeps its group: it names the tenant the queue
/// shares its capacity by.
async fn send_to_source(client: &Client, message: &Message, to: &str) -> anyhow::Result<()> {
    let id = message.message_id().unwrap_or_default();
    let mut request = client
        .send_message()
        .queue_url(to)
        .message_body(message.body().unwrap_or_default())
        .set_message_attributes(original_attributes(message));
    let group = system_attribute(message, &MessageSystemAttributeName::MessageGroupId);
    if aws::is_fifo(to) {
        request = request.message_group_id(group.unwrap_or(fifo::DEFAULT_GROUP)).message_deduplication_id(redrive_deduplication_id(id));
    } else if let Some(group) = group {
        request = request.message_group_id(group);
    }
    request.send().await.map_err(|e| anyhow::anyhow!("cannot send message {id} to {to}: {}", describe(e)))?;
    Ok(())
}

/// The deduplication id of a redriven message: the same for every re-send of one DLQ message,
/// so a FIFO queue drops the copy a redrive interrupted between send and delete sends again.
fn redrive_deduplication_id(message_id: &str) -> String {
    format!("redrive-{message_id}")
}

/// Where a DLQ's messages go back to when `--to` is not given: the single queue its
/// RedriveAllowPolicy allows, or else the single queue that names it as its DLQ.
async fn source_queue(client: &Client, dlq: &str, attributes: &HashMap<String, String>) -> anyhow::Result<String> {
    let allowed: Vec<String> = attributes
        .get(QueueAttributeName::RedriveAllowPolicy.as_str())
        .and_then(|policy| serde_json::from_str::<Value>(policy).ok())
        .filter(|policy| policy["redrivePermission"] == "byQueue")
        .and_then(|policy| policy["sourceQueueArns"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|arn| arn.as_str().map(str::to_owned))
        .collect();
    if let [arn] = allowed.as_slice() {
        return aws::queue_url_of(client, arn).await.map_err(|e| e.context(format!("the RedriveAllowPolicy of {dlq} names {arn}")));
    }
    let sources = match client.list_dead_letter_source_queues().queue_url(dlq).send().await {
        Ok(output) => output.queue_urls,
        Err(error) => {
            note(&format!("note: cannot list the queues that use {dlq} as their DLQ: {}", describe(error)));
            Vec::new()
        }
    };
    match sources.as_slice() {
        [url] => Ok(url.clone()),
        _ => Err(BadInput(format!(
            "cannot tell where to redrive {dlq}: its RedriveAllowPolicy names {} source queue(s) and {} queue(s) use it as their DLQ; pass --to SOURCE_URL",
            allowed.len(),
            sources.len()
        ))
        .into()),
    }
}

/// A queue as the direction check sees it.
struct QueueInfo<'a> {
    url: &'a str,
    arn: &'a str,
    attributes: &'a HashMap<String, String>,
}

/// A queue attribute that holds a JSON policy, parsed (`None` if unset or not JSON).
fn policy(queue: &QueueInfo<'_>, name: QueueAttributeName) -> Option<Value> {
    queue.attributes.get(name.as_str()).and_then(|text| serde_json::from_str(text).ok())
}

/// What two queues' policies say about moving `from`'s messages to `to`.
#[derive(Debug, PartialEq)]
enum Direction {
    /// `to`'s RedrivePolicy names `from`, or `from`'s RedriveAllowPolicy is `byQueue` naming `to`.
    Allowed,
    /// `from`'s RedriveAllowPolicy is `allowAll`: a live queue can say that too, so it counts only
    /// if some queue does use `from` as its DLQ. `redrive_policy` says what `to`'s names.
    AllowedIfADlq { redrive_policy: String },
    /// Neither: what both policies say.
    Refused(String),
}

fn direction(from: &QueueInfo<'_>, to: &QueueInfo<'_>) -> Direction {
    let target =
        policy(to, QueueAttributeName::RedrivePolicy).and_then(|redrive| redrive["deadLetterTargetArn"].as_str().map(str::to_owned));
    if target.as_deref() == Some(from.arn) {
        return Direction::Allowed;
    }
    let redrive_policy = match &target {
        Some(arn) => format!("the RedrivePolicy of {} names {arn} as its dead-letter queue, not {}", to.url, from.arn),
        None => format!("the RedrivePolicy of {} names no dead-letter queue", to.url),
    };
    let allow = policy(from, QueueAttributeName::RedriveAllowPolicy);
    let allows = match allow.as_ref().and_then(|allow| allow["redrivePermission"].as_str()) {
        None => "is not set".to_owned(),
        Some("allowAll") => return Direction::AllowedIfADlq { redrive_policy },
        Some("byQueue") => {
            let sources: Vec<&str> = allow
                .as_ref()
                .and_then(|allow| allow["sourceQueueArns"].as_array())
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if sources.contains(&to.arn) {
                return Direction::Allowed;
            }
            format!("allows only {}", if sources.is_empty() { "no queue".to_owned() } else { sources.join(", ") })
        }
        Some(other) => format!("is {other}"),
    };
    Direction::Refused(format!("{redrive_policy}, and the RedriveAllowPolicy of {} {allows}", from.url))
}

/// Whether `from` is a dead-letter queue of `to` (see [`Direction`]); the error says what was
/// checked.
async fn check_direction(client: &Client, from: &QueueInfo<'_>, to: &QueueInfo<'_>) -> Result<(), String> {
    let redrive_policy = match direction(from, to) {
        Direction::Allowed => return Ok(()),
        Direction::Refused(checked) => return Err(checked),
        Direction::AllowedIfADlq { redrive_policy } => redrive_policy,
    };
    let allows = match client.list_dead_letter_source_queues().queue_url(from.url).send().await {
        Ok(output) if !output.queue_urls.is_empty() => return Ok(()),
        Ok(_) => "is allowAll, but no queue uses it as its dead-letter queue".to_owned(),
        Err(error) => format!("is allowAll, but the queues that use it as their DLQ cannot be listed ({})", describe(error)),
    };
    Err(format!("{redrive_policy}, and the RedriveAllowPolicy of {} {allows}", from.url))
}

enum MoveTask {
    Done { moved: i64, handle: String },
    Unsupported(String),
}

/// Runs a message move task to its end, or tells that the API has none.
async fn move_task(client: &Client, dlq_arn: &str, to_arn: &str) -> anyhow::Result<MoveTask> {
    // One attempt: an API without the operation (moto) answers 500, which the SDK would retry
    // with backoff before the fallback below; falling back is safe whatever the cause.
    let one_attempt = aws_sdk_sqs::config::Builder::default().retry_config(RetryConfig::standard().with_max_attempts(1));
    let request = client.start_message_move_task().source_arn(dlq_arn).destination_arn(to_arn);
    let started = match request.customize().config_override(one_attempt).send().await {
        Ok(output) => output,
        Err(error) => {
            // An API without the operation answers with an error no SQS model knows (moto: a
            // 500 "not implemented"), an unknown-operation code, or UnsupportedOperation.
            let unsupported = error.raw_response().is_some()
                && matches!(
                    error.code(),
                    None | Some(
                        "UnsupportedOperation"
                            | "AWS.SimpleQueueService.UnsupportedOperation"
                            | "InvalidAction"
                            | "UnknownOperationException"
                            | "NotImplemented"
                            | "InternalFailure"
                            | "InternalError"
                    )
                );
            if unsupported {
                let reason = match (error.code(), error.raw_response()) {
                    (Some(code), _) => code.to_owned(),
                    (None, Some(response)) => format!("HTTP {} without an SQS error code", response.status().as_u16()),
                    (None, None) => describe(&error),
                };
                return Ok(MoveTask::Unsupported(reason));
            }
            return Err(anyhow::anyhow!("cannot start a message move task from {dlq_arn}: {}", describe(error)));
        }
    };
    let handle = started.task_handle().unwrap_or_default().to_owned();
    note(&format!("message move task started: {handle}"));
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let tasks = client
            .list_message_move_tasks()
            .source_arn(dlq_arn)
            .max_results(1)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot follow the message move task {handle}: {}", describe(e)))?;
        // Only one task runs per queue: the most recent one is ours.
        let Some(task) = tasks.results().first() else { continue };
        match task.status() {
            Some("COMPLETED") => return Ok(MoveTask::Done { moved: task.approximate_number_of_messages_moved(), handle }),
            Some(status @ ("FAILED" | "CANCELLED" | "CANCELLING")) => {
                return Err(anyhow::anyhow!(
                    "the message move task {handle} is {status} after moving {} message(s){}",
                    task.approximate_number_of_messages_moved(),
                    task.failure_reason().map(|reason| format!(": {reason}")).unwrap_or_default()
                ))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direction_comes_from_the_redrive_policies() {
        let queue = |url: &'static str, arn: &'static str, policies: &[(QueueAttributeName, Value)]| {
            let attributes: HashMap<String, String> =
                policies.iter().map(|(name, policy)| (name.as_str().to_owned(), policy.to_string())).collect();
            (url, arn, attributes)
        };
        let check = |from: &(&str, &str, HashMap<String, String>), to: &(&str, &str, HashMap<String, String>)| {
            direction(&QueueInfo { url: from.0, arn: from.1, attributes: &from.2 }, &QueueInfo { url: to.0, arn: to.1, attributes: &to.2 })
        };
        let by_queue = |arns: &[&str]| json!({"redrivePermission": "byQueue", "sourceQueueArns": arns});
        let dlq = queue("u:dlq", "a:dlq", &[(QueueAttributeName::RedriveAllowPolicy, by_queue(&["a:live"]))]);
        let live = queue("u:live", "a:live", &[(QueueAttributeName::RedrivePolicy, json!({"deadLetterTargetArn": "a:dlq"}))]);
        let other = queue("u:other", "a:other", &[]);

        assert_eq!(check(&dlq, &live), Direction::Allowed, "the destination's RedrivePolicy names the DLQ");
        assert_eq!(
            check(&dlq, &other),
            Direction::Refused(
                "the RedrivePolicy of u:other names no dead-letter queue, and the RedriveAllowPolicy of u:dlq allows only a:live".into()
            )
        );
        assert_eq!(
            check(&live, &dlq),
            Direction::Refused(
                "the RedrivePolicy of u:dlq names no dead-letter queue, and the RedriveAllowPolicy of u:live is not set".into()
            )
        );
        assert_eq!(check(&other, &live), Direction::Refused(
            "the RedrivePolicy of u:live names a:dlq as its dead-letter queue, not a:other, and the RedriveAllowPolicy of u:other is not set".into()
        ));

        let naming_other = queue("u:dlq", "a:dlq", &[(QueueAttributeName::RedriveAllowPolicy, by_queue(&["a:live", "a:other"]))]);
        assert_eq!(check(&naming_other, &other), Direction::Allowed, "byQueue names the destination");
        let allow_all = queue("u:dlq", "a:dlq", &[(QueueAttributeName::RedriveAllowPolicy, json!({"redrivePermission": "allowAll"}))]);
        assert_eq!(
            check(&allow_all, &other),
            Direction::AllowedIfADlq { redrive_policy: "the RedrivePolicy of u:other names no dead-letter queue".into() }
        );
        let deny_all = queue("u:dlq", "a:dlq", &[(QueueAttributeName::RedriveAllowPolicy, json!({"redrivePermission": "denyAll"}))]);
        assert!(matches!(check(&deny_all, &other), Direction::Refused(why) if why.ends_with("RedriveAllowPolicy of u:dlq is denyAll")));
        assert_eq!(check(&deny_all, &live), Direction::Allowed, "the destination's RedrivePolicy decides first");
    }

    #[test]
    fn peek_names_the_forwarding_attributes_and_keeps_unknown_ones() {
        let attribute =
            |data_type: &str, value: &str| MessageAttributeValue::builder().data_type(data_type).string_value(value).build().unwrap();
        let forwarded = HashMap::from([
            (forwarding::RECEIVE_COUNT.to_owned(), attribute("Number", "3")),
            (forwarding::FAILURE_REASON.to_owned(), attribute("String", "42")),
            (format!("{}Retries", forwarding::PREFIX), attribute("String", "later")),
        ]);
        assert_eq!(failure(&forwarded), json!({"receiveCount": 3, "reason": "42", "Retries": "later"}));
        assert!(is_forwarding_attribute(forwarding::SOURCE_QUEUE));
        assert!(!is_forwarding_attribute("sqskit.note"), "the prefix is case-sensitive, as SQS attribute names are");
    }

    #[test]
    fn a_redriven_message_keeps_its_deduplication_id_across_resends() {
        assert_eq!(redrive_deduplication_id("m-1"), redrive_deduplication_id("m-1"));
        assert!(redrive_deduplication_id(&"f".repeat(100)).len() <= 128);
    }
}
