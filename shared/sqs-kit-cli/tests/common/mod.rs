//! What the CLI's tests share: running `sqs-kit`, bodies to send, reading a queue empty.

// Each test crate uses its part.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use e2e::Run;
use serde_json::Value;

/// The flags that give an order its FIFO ids, as the pipeline publishes: in order per customer,
/// each event once.
pub const BY_CUSTOMER: [&str; 4] = ["--group-by", "/customerId", "--dedup-by", "/eventId"];

pub fn sqs_kit<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    e2e::run(Path::new(env!("CARGO_BIN_EXE_sqs-kit")), args, &[])
}

/// `sqs-kit args...` with `input` on standard input.
pub fn sqs_kit_stdin(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sqs-kit"))
        .args(args)
        .current_dir(e2e::workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap().into()
}

/// `count` valid order events, ORD-1001 on, with fresh event ids and five customers.
pub fn orders(count: usize) -> Vec<Value> {
    orders::sample::orders(count, 1001).iter().map(|order| serde_json::to_value(order).unwrap()).collect()
}

/// Writes `bodies` as a JSON list into `dir`, for `--file`; returns its path.
pub fn bodies_file(dir: &Path, bodies: &[Value]) -> String {
    let file = dir.join(format!("{}.json", e2e::unique_name("bodies")));
    std::fs::write(&file, Value::Array(bodies.to_vec()).to_string()).unwrap();
    file.display().to_string()
}

/// A message read off a queue.
#[derive(Debug)]
pub struct Received {
    pub body: String,
    pub group: Option<String>,
    /// Message attributes: name → string value.
    pub attributes: HashMap<String, String>,
}

/// Every message in the queue, deleted as it is read.
pub async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Received> {
    let mut messages = Vec::new();
    loop {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(30)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let received = output.messages.unwrap_or_default();
        if received.is_empty() {
            return messages;
        }
        for message in received {
            let group = message.attributes().and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId)).cloned();
            let attributes = message
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.clone(), value.string_value().unwrap_or_default().to_owned()))
                .collect();
            messages.push(Received { body: message.body().unwrap().to_owned(), group, attributes });
            sqs.delete_message().queue_url(url).receipt_handle(message.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}
