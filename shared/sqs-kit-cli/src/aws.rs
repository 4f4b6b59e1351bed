//! What the AWS-facing commands share: the SDK configuration, error text, message bodies,
//! queue URLs and ARNs, timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};

use sqs_kit::runner::BadInput;

/// The largest message SQS and SNS accept, in bytes (256 KiB); also the largest batch request.
pub(super) const MAX_MESSAGE_BYTES: usize = 262_144;
/// Entries per `SendMessageBatch`, `PublishBatch`, `ChangeMessageVisibilityBatch` call.
pub(super) const BATCH_LIMIT: usize = 10;

/// The SDK configuration from the environment (`AWS_ENDPOINT_URL` points it at a local API).
pub(super) async fn config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

/// An SDK error as one line, with its causes (`dispatch failure: io error: ... Connection
/// refused`), each said once.
pub(super) fn describe<E: std::error::Error>(error: E) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ").replace('\n', " ")
}

/// A JSON list of message bodies from a file or standard input (`-`). Its errors are bad input
/// (exit 2), said in one line: the file, and for invalid JSON the line and column.
pub(super) fn load_bodies(path: &std::path::Path) -> Result<Vec<Value>, BadInput> {
    sqs_kit::runner::load_json(path, "a JSON list of message bodies ([{...}, ...])").map_err(|e| BadInput(e.to_string()))
}

/// FIFO queues' URLs and ARNs, and FIFO topics' ARNs, end in `.fifo`.
pub(super) fn is_fifo(url_or_arn: &str) -> bool {
    url_or_arn.ends_with(".fifo")
}

/// A message body as it is sent: a JSON string is the body text itself (so a malformed body can
/// be sent on purpose), any other JSON value is sent as its compact JSON text.
pub(super) fn body_text(body: &Value) -> String {
    match body {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Refuses a body SQS or SNS would reject: empty, over 256 KiB, or with characters outside the
/// set SQS allows (#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF).
pub(super) fn check_body(index: usize, text: &str, limit: BodyLimit) -> Result<(), BadInput> {
    if text.is_empty() {
        return Err(BadInput(format!("body {index} is empty: SQS and SNS need at least one character")));
    }
    if text.len() > limit.bytes {
        return Err(BadInput(format!("body {index} is {} bytes, over the {}-byte {}", text.len(), limit.bytes, limit.what)));
    }
    let allowed = |c: char| matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    if let Some(bad) = text.chars().find(|c| !allowed(*c)) {
        return Err(BadInput(format!("body {index} holds the character U+{:04X}, which SQS does not accept", bad as u32)));
    }
    Ok(())
}

/// How large a body may be where it is going.
#[derive(Clone, Copy, Debug)]
pub(super) struct BodyLimit {
    pub bytes: usize,
    /// Whose limit it is, for the error: "(256 KiB) limit of SQS and SNS".
    pub what: &'static str,
}

/// What `publish` sends: SNS still takes at most 256 KiB.
pub(super) const PUBLISH_LIMIT: BodyLimit = BodyLimit { bytes: MAX_MESSAGE_BYTES, what: "(256 KiB) limit of SQS and SNS" };
/// What an SQS event can carry, the limit `replay` applies.
pub(super) const EVENT_LIMIT: BodyLimit = BodyLimit { bytes: sqs_kit::runner::MAX_BODY_BYTES, what: "(1 MiB) limit of an SQS message" };

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A UUID-shaped identifier (version 4 layout) made from the first 16 bytes of `seed`'s SHA-256.
pub(super) fn uuid_from(seed: &[u8]) -> String {
    let mut bytes: [u8; 16] = Sha256::digest(seed)[..16].try_into().expect("a SHA-256 has 32 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex(&bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

/// Epoch milliseconds as RFC 3339 (`2026-11-24T09:00:00.123Z`).
pub(super) fn rfc3339_ms(ms: i64) -> String {
    use aws_sdk_sqs::primitives::{DateTime, DateTimeFormat};
    DateTime::from_millis(ms).fmt(DateTimeFormat::DateTime).unwrap_or_else(|_| ms.to_string())
}

/// The parts of an ARN: `arn:partition:service:region:account:resource`.
pub(super) struct Arn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

pub(super) fn parse_arn(arn: &str) -> Option<Arn<'_>> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let partition = parts.next()?;
    let _service = parts.next()?;
    let region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    (!partition.is_empty() && !resource.is_empty()).then_some(Arn { partition, region, account, resource })
}

/// A queue's attributes (all of them: asking for one by name fails on APIs that do not know it,
/// as moto does with `RedriveAllowPolicy`).
pub(super) async fn queue_attributes(client: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<std::collections::HashMap<String, String>> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let output = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the attributes of queue {url}: {}", describe(e)))?;
    Ok(output.attributes().into_iter().flatten().map(|(name, value)| (name.as_str().to_owned(), value.clone())).collect())
}

/// The URL of the queue an ARN names.
pub(super) async fn queue_url_of(client: &aws_sdk_sqs::Client, arn: &str) -> anyhow::Result<String> {
    let parts = parse_arn(arn).ok_or_else(|| anyhow::anyhow!("{arn} is not a queue ARN"))?;
    let output = client
        .get_queue_url()
        .queue_name(parts.resource)
        .queue_owner_aws_account_id(parts.account)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot find the queue {arn}: {}", describe(e)))?;
    output.queue_url().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no URL for the queue {arn}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_sqs_rejects_are_refused_with_their_index() {
        assert!(check_body(0, "{}", PUBLISH_LIMIT).is_ok());
        assert!(check_body(1, "", PUBLISH_LIMIT).unwrap_err().0.contains("body 1 is empty"));
        assert!(check_body(2, &"x".repeat(MAX_MESSAGE_BYTES), PUBLISH_LIMIT).is_ok());
        assert!(check_body(3, &"x".repeat(MAX_MESSAGE_BYTES + 1), PUBLISH_LIMIT).unwrap_err().0.starts_with("body 3 is 262145 bytes"));
        assert!(check_body(4, "a\u{1}b", PUBLISH_LIMIT).unwrap_err().0.contains("U+0001"));
    }

    #[test]
    fn uuids_are_shaped_like_uuids() {
        let id = uuid_from(b"seed");
        assert_eq!(id.len(), 36);
        assert_eq!(id, uuid_from(b"seed"));
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, uuid_from(b"another seed"));
    }

    #[test]
    fn times_and_arns() {
        assert_eq!(rfc3339_ms(1_764_061_200_123), "2025-11-25T09:00:00.123Z");
        let arn = parse_arn("arn:aws:sqs:us-east-1:123456789012:orders-email").unwrap();
        assert_eq!((arn.partition, arn.region, arn.account, arn.resource), ("aws", "us-east-1", "123456789012", "orders-email"));
        assert!(parse_arn("https://sqs/queue").is_none());
    }
}
