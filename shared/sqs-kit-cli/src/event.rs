//! `sqs-kit event`: wrap message bodies into a Lambda SQS event (`{"Records":[...]}`) as Lambda
//! builds it, for `<fn> replay` and `cargo lambda invoke --data-file`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};

use super::aws::{self, hex, now_ms, sha256_hex, uuid_from};
use super::fifo::FifoArgs;
use sqs_kit::runner::BadInput;

/// The account of the default event source ARN (AWS's documentation account).
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
/// The queue of the default event source ARN, a name AWS's own examples use.
const QUEUE: &str = "my-queue";
/// The `SenderId` of every record: an IAM user id shaped like AWS's.
const SENDER_ID: &str = "AIDAIENQZJOLO23YVJ4VO";

#[derive(Debug, Args)]
pub(super) struct EventArgs {
    /// A JSON file holding a list of message bodies (`-` for standard input). A JSON string in
    /// the list is the body text itself; any other value becomes its JSON text.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// A FIFO queue's event: records get MessageGroupId and MessageDeduplicationId (see
    /// --group-by and --dedup-by) and SequenceNumber.
    #[arg(long)]
    fifo: bool,
    /// The queue the event comes from [default: arn:aws:sqs:us-east-1:123456789012:my-queue,
    /// or my-queue.fifo with --fifo]. An ARN ending in .fifo makes a FIFO event.
    #[arg(long, value_name = "ARN")]
    queue_arn: Option<String>,
    #[command(flatten)]
    ids: FifoArgs,
}

pub(super) async fn run(args: EventArgs) -> anyhow::Result<ExitCode> {
    let (arn, fifo) = match args.queue_arn {
        Some(arn) => {
            if aws::parse_arn(&arn).is_none() {
                return Err(BadInput(format!("--queue-arn {arn} is not an ARN (arn:aws:sqs:REGION:ACCOUNT:QUEUE)")).into());
            }
            if args.fifo && !aws::is_fifo(&arn) {
                return Err(BadInput(format!("--fifo needs a FIFO queue, but --queue-arn {arn} does not end in .fifo")).into());
            }
            let fifo = aws::is_fifo(&arn);
            (arn, fifo)
        }
        None => {
            let suffix = if args.fifo { ".fifo" } else { "" };
            (format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}{suffix}"), args.fifo)
        }
    };
    let region = aws::parse_arn(&arn).map(|parts| parts.region.to_owned()).filter(|r| !r.is_empty()).unwrap_or_else(|| REGION.to_owned());
    let bodies = aws::load_bodies(&args.file)?;
    if bodies.is_empty() {
        return Err(BadInput(format!("{} holds no bodies: an SQS event has at least one record", origin(&args.file))).into());
    }
    let texts: Vec<String> = bodies.iter().map(aws::body_text).collect();
    for (index, text) in texts.iter().enumerate() {
        aws::check_body(index, text, aws::EVENT_LIMIT)?;
    }
    let sent = now_ms();
    let ids = fifo.then_some(&args.ids);
    let records: Vec<Value> = texts.iter().enumerate().map(|(index, text)| record(index, text, &arn, &region, ids, sent)).collect();
    sqs_kit::output::print_json_pretty(&json!({ "Records": records }))?;
    Ok(ExitCode::SUCCESS)
}

fn origin(file: &std::path::Path) -> String {
    if file == std::path::Path::new("-") {
        "standard input".to_owned()
    } else {
        file.display().to_string()
    }
}

/// One record as Lambda delivers it, from a FIFO queue if it gets `fifo` ids; the message id is
/// derived from the index and the body, so the same input gives the same ids.
fn record(index: usize, text: &str, arn: &str, region: &str, fifo: Option<&FifoArgs>, sent: i64) -> Value {
    let message_id = uuid_from(format!("{index}\n{text}").as_bytes());
    let mut attributes = Map::new();
    attributes.insert("ApproximateReceiveCount".into(), "1".into());
    attributes.insert("SentTimestamp".into(), sent.to_string().into());
    attributes.insert("SenderId".into(), SENDER_ID.into());
    attributes.insert("ApproximateFirstReceiveTimestamp".into(), (sent + 10).to_string().into());
    if let Some(fifo) = fifo {
        let ids = fifo.ids(text);
        attributes.insert("MessageGroupId".into(), ids.group.into());
        attributes.insert("MessageDeduplicationId".into(), ids.deduplication.into());
        // 20 digits, increasing with the index, like SQS's.
        attributes.insert("SequenceNumber".into(), format!("{sent}{index:07}").into());
    }
    json!({
        "messageId": message_id,
        "receiptHandle": format!("AQEB{}", &sha256_hex(message_id.as_bytes())[..48]),
        "body": text,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hex(&Md5::digest(text.as_bytes())),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqs_kit::runner::MAX_BODY_BYTES;

    #[test]
    fn a_fifo_record_carries_the_group_and_deduplication_ids() {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            ids: FifoArgs,
        }
        let fifo = Flags::parse_from(["event", "--group-by", "/customerId", "--dedup-by", "/eventId"]).ids;
        let body = r#"{"eventId":"e-1","customerId":"CUST-42"}"#;
        let record = record(3, body, "arn:aws:sqs:ap-northeast-2:1:q.fifo", "ap-northeast-2", Some(&fifo), 1_764_061_200_000);
        assert_eq!(record["attributes"]["MessageGroupId"], "CUST-42");
        assert_eq!(record["attributes"]["MessageDeduplicationId"], "e-1");
        assert_eq!(record["attributes"]["SequenceNumber"], "17640612000000000003");
        assert_eq!(record["md5OfBody"], hex(&Md5::digest(body.as_bytes())));
        assert_eq!(record["awsRegion"], "ap-northeast-2");
        let again = super::record(3, body, "arn:aws:sqs:ap-northeast-2:1:q.fifo", "ap-northeast-2", Some(&fifo), 0);
        assert_eq!(record["messageId"], again["messageId"]);
        let standard = super::record(3, body, "arn:aws:sqs:ap-northeast-2:1:q", "ap-northeast-2", None, 0);
        assert!(standard["attributes"].get("MessageGroupId").is_none(), "{standard}");
    }

    #[test]
    fn bodies_up_to_the_sqs_maximum_are_checked_whole() {
        let check = |index, text: &str| aws::check_body(index, text, aws::EVENT_LIMIT);
        assert!(check(0, &"x".repeat(MAX_BODY_BYTES)).is_ok());
        let over = check(1, &"x".repeat(MAX_BODY_BYTES + 1)).unwrap_err().0;
        assert!(over.starts_with("body 1 is 1048577 bytes, over the 1048576-byte (1 MiB) limit"), "{over}");
        assert!(check(2, "").unwrap_err().0.contains("body 2 is empty"));
        let late = format!("{}\u{1}", "x".repeat(aws::MAX_MESSAGE_BYTES + 10));
        assert!(check(3, &late).unwrap_err().0.contains("U+0001"));
    }

    #[test]
    fn md5_matches_a_known_digest() {
        assert_eq!(hex(&Md5::digest(b"hello")), "5d41402abc4b2a76b9719d911017c592");
    }
}
