//! Lambda mode with `AWS_LAMBDA_MAX_CONCURRENCY`, as Lambda Managed Instances run a function:
//! the shipping binary against a Runtime API on 127.0.0.1 that hands out several events at
//! once, on DynamoDB tables of the local AWS API. Overlapping invocations must each keep their
//! own response, metrics document and request id in the logs; a variable that is not a number
//! of invocations serves one at a time, as `lambda_runtime` reads it.

use std::io::Read;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use e2e::runtime_api::{Reply, RuntimeApi};
use e2e::{Function, Table};
use serde_json::{json, Value};

/// Long enough that every worker of the function has asked for its event before the first
/// record finishes: a function that serves invocations one after the other never has two open.
const SLOW_RECORDS: &str = "slow:1000";
/// A wait this long for a reply means none is coming.
const REPLY: Duration = Duration::from_secs(60);

/// The shipping binary on fresh DynamoDB tables; `None` without a local AWS API.
async fn shipping() -> Option<Function> {
    let shipments = Table { variable: "SHIPMENTS_TABLE", partition_key: "orderId", sort_key: None };
    Function::dynamodb(&e2e::binary("shipping").display().to_string(), &[shipments]).await
}

/// The message ids of event `index`: `valid` orders, then one body that is not JSON.
fn message_ids(index: usize, valid: usize) -> (Vec<String>, String) {
    ((0..valid).map(|n| format!("inv{index}-order{n}")).collect(), format!("inv{index}-bad"))
}

/// Event `index` of a run: `valid` placed orders (which the handler ships) and one body that
/// fails before the handler, so that its response names exactly one message of its own.
fn event(run: &str, index: usize, valid: usize) -> String {
    let (orders, bad) = message_ids(index, valid);
    let message = |id: &str, body: String| {
        json!({
            "messageId": id, "receiptHandle": format!("handle-{id}"), "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:ap-northeast-2:123456789012:orders-shipping",
        })
    };
    let mut records: Vec<Value> = orders
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let order = e2e::generated_order(n, &format!("{run}-{id}"), &format!("ORD-{run}-{id}"), "CUST-1");
            message(id, order.to_string())
        })
        .collect();
    records.push(message(&bad, "not JSON".to_owned()));
    json!({ "Records": records }).to_string()
}

/// The function, started against `api` with `max_concurrency` as AWS_LAMBDA_MAX_CONCURRENCY, and
/// a thread collecting what it writes on stdout (its log and metric lines) until it ends.
fn start(api: &RuntimeApi, function: &Function, max_concurrency: Option<&str>, fault: &str) -> (Child, JoinHandle<String>) {
    let mut command = api.command(e2e::binary("shipping"));
    command.envs(function.envs().iter().cloned()).env("SQS_KIT_FAULT", fault).env("LOG_LEVEL", "info");
    if let Some(value) = max_concurrency {
        command.env("AWS_LAMBDA_MAX_CONCURRENCY", value);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let output = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    (child, output)
}

/// `count` replies, then the function stopped and its stdout as JSON lines.
fn finish(api: &RuntimeApi, mut child: Child, output: JoinHandle<String>, count: usize) -> (Vec<Reply>, Vec<Value>) {
    let replies: Result<Vec<Reply>, _> = (0..count).map(|_| api.reply(REPLY)).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    let text = output.join().unwrap();
    let replies = replies.unwrap_or_else(|error| panic!("a reply is missing ({error}); the function wrote:\n{text}"));
    let lines = text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))).collect();
    (replies, lines)
}

fn failed_ids(reply: &Reply) -> Vec<String> {
    let response: Value = serde_json::from_str(&reply.body).unwrap_or_else(|_| panic!("not a batch response: {reply:?}"));
    let failures = response["batchItemFailures"].as_array().unwrap_or_else(|| panic!("no batchItemFailures: {reply:?}"));
    failures.iter().map(|failure| failure["itemIdentifier"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn overlapping_invocations_keep_their_own_response_metrics_and_request_id() {
    let Some(function) = shipping().await else { return };
    let run = e2e::unique_name("concurrent");
    // Event i has i + 1 orders, so that each invocation's metrics document has counts of its own.
    let events: Vec<String> = (0..4).map(|index| event(&run, index, index + 1)).collect();
    let api = RuntimeApi::function("shipping").serve(events);
    let (child, output) = start(&api, &function, Some("4"), SLOW_RECORDS);
    let (replies, lines) = finish(&api, child, output, 4);

    assert_eq!(api.most_in_flight(), 4, "the four invocations were all in flight at once");

    // Each response names its own event's failure and nothing of the others'.
    let mut answered: Vec<&str> = replies.iter().map(|reply| reply.request_id.as_str()).collect();
    answered.sort_unstable();
    assert_eq!(answered, ["req-0", "req-1", "req-2", "req-3"]);
    for reply in &replies {
        assert_eq!(reply.kind, "response", "{reply:?}");
        let index: usize = reply.request_id.trim_start_matches("req-").parse().unwrap();
        assert_eq!(failed_ids(reply), [message_ids(index, index + 1).1], "{reply:?}");
    }

    // One metrics document per invocation, with that invocation's counts.
    let (metrics, logs): (Vec<&Value>, Vec<&Value>) = lines.iter().partition(|line| line.get("_aws").is_some());
    let mut counts: Vec<(u64, u64)> = metrics
        .iter()
        .map(|document| {
            assert_eq!(document["FunctionName"], "shipping", "{document}");
            (document["RecordsProcessed"].as_u64().unwrap(), document["RecordsFailedPermanent"].as_u64().unwrap())
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [(1, 1), (2, 1), (3, 1), (4, 1)], "{metrics:?}");

    // Every log line is about a record here, and names the request id of the invocation that
    // had the record: each order's shipment, and the failure of the body that is not JSON.
    let mut lines_per_invocation = [0; 4];
    for line in &logs {
        let message_id = line["span"]["message_id"].as_str().unwrap_or_else(|| panic!("a line about no record: {line}"));
        let index: usize = message_id.trim_start_matches("inv").split('-').next().unwrap().parse().unwrap();
        assert_eq!(line["span"]["request_id"], format!("req-{index}"), "{line}");
        lines_per_invocation[index] += 1;
    }
    assert_eq!(lines_per_invocation, [2, 3, 4, 5], "{logs:?}");
}

#[tokio::test]
async fn without_a_usable_concurrency_invocations_are_served_one_at_a_time() {
    let Some(function) = shipping().await else { return };
    for (value, warned) in [(None, false), (Some("1"), false), (Some("0"), true), (Some("four"), true)] {
        let run = e2e::unique_name("sequential");
        let api = RuntimeApi::function("shipping").serve(vec![event(&run, 0, 1), event(&run, 1, 1)]);
        let (child, output) = start(&api, &function, value, SLOW_RECORDS);
        let (replies, lines) = finish(&api, child, output, 2);

        assert_eq!(api.most_in_flight(), 1, "AWS_LAMBDA_MAX_CONCURRENCY={value:?}");
        let request_ids: Vec<&str> = replies.iter().map(|reply| reply.request_id.as_str()).collect();
        assert_eq!(request_ids, ["req-0", "req-1"], "AWS_LAMBDA_MAX_CONCURRENCY={value:?}");

        let warning = lines.iter().find(|line| {
            line["level"] == "WARN" && line["fields"]["message"].as_str().is_some_and(|m| m.contains("AWS_LAMBDA_MAX_CONCURRENCY"))
        });
        match (warned, warning) {
            (true, Some(line)) => {
                let expected = format!(
                    "AWS_LAMBDA_MAX_CONCURRENCY={:?} is not a whole number above 0; serving one invocation at a time",
                    value.unwrap()
                );
                assert_eq!(line["fields"]["message"], expected);
            }
            (false, None) => {}
            (_, warning) => panic!("AWS_LAMBDA_MAX_CONCURRENCY={value:?}: warning {warning:?}"),
        }
    }
}
