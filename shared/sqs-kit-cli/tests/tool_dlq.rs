//! `sqs-kit dlq peek|redrive` against the local AWS API (moto), on a topology from `local up`.
//! Skipped without AWS_ENDPOINT_URL (see `e2e::local_aws`).

mod common;

use aws_sdk_sqs::types::MessageAttributeValue;
use common::{bodies_file, drain, orders, sqs_kit, BY_CUSTOMER};
use e2e::queue_counts as counts;
use serde_json::{json, Value};

/// `local up` on a fresh stack: its JSON report.
fn stack(prefix: &str, extra: &[&str]) -> Value {
    let stack = e2e::unique_name(prefix);
    let run = sqs_kit(&[&["local", "up", "--stack-name", &stack], extra].concat());
    assert_eq!(run.code, Some(0), "{run:?}");
    run.json()
}

#[tokio::test]
async fn peek_shows_a_standard_dlq_and_leaves_it_and_redrive_moves_it_back() {
    let Some(config) = e2e::local_aws().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topology = stack("dlq", &[]);
    let source = topology["queues"]["EmailQueue"].as_str().unwrap().to_owned();
    let dlq = topology["dlqs"]["EmailDLQ"].as_str().unwrap().to_owned();

    // 22 failed orders and a poison body in the DLQ, one with a message attribute.
    let mut bodies: Vec<String> = orders(22).iter().map(Value::to_string).collect();
    bodies.push("not json {".to_owned());
    for (i, body) in bodies.iter().enumerate() {
        let mut request = sqs.send_message().queue_url(&dlq).message_body(body);
        if i == 0 {
            let attribute = MessageAttributeValue::builder().data_type("String").string_value("first").build().unwrap();
            request = request.message_attributes("note", attribute);
        }
        request.send().await.unwrap();
    }

    let peek = sqs_kit(&["dlq", "peek", "--queue-url", &dlq]);
    assert_eq!(peek.code, Some(0), "{peek:?}");
    let shown = peek.json();
    let shown = shown.as_array().unwrap();
    assert_eq!(shown.len(), 23, "every message once: {}", peek.stdout);
    let mut ids: Vec<&str> = shown.iter().map(|m| m["messageId"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 23);
    for message in shown {
        assert_eq!(message["receiveCount"], 1, "{message}");
        assert!(message["sentAt"].as_str().unwrap().ends_with('Z'), "{message}");
        assert!(message["firstReceivedAt"].as_str().unwrap().contains('T'), "{message}");
        assert!(message.get("messageGroupId").is_none());
    }
    assert!(shown.iter().any(|m| m["body"] == "not json {"), "a raw body is shown as a string");
    assert!(shown.iter().filter(|m| m["body"]["eventId"].is_string()).count() == 22, "JSON bodies are shown parsed");
    assert!(shown.iter().any(|m| m["messageAttributes"]["note"]["stringValue"] == "first"));
    // Pretty-printed.
    assert!(peek.stdout.lines().count() > 23 * 5);
    // Still there, and visible at once.
    assert_eq!(counts(&sqs, &dlq).await, (23, 0));

    let again = sqs_kit(&["dlq", "peek", "--queue-url", &dlq, "--max", "5"]);
    let again = again.json();
    assert_eq!(again.as_array().unwrap().len(), 5);
    assert!(again.as_array().unwrap().iter().all(|m| m["receiveCount"] == 2), "{again}");
    assert_eq!(counts(&sqs, &dlq).await, (23, 0));

    // --max bounds a redrive; without --to, the source is the queue that uses the DLQ.
    let run = sqs_kit(&["dlq", "redrive", "--queue-url", &dlq, "--max", "4"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json(), json!({"moved": 4, "from": dlq, "to": source, "method": "receive-send-delete"}));
    assert_eq!(counts(&sqs, &dlq).await, (19, 0));
    assert_eq!(counts(&sqs, &source).await, (4, 0));

    let run = sqs_kit(&["dlq", "redrive", "--queue-url", &dlq]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json()["moved"], 19);
    assert_eq!(counts(&sqs, &dlq).await, (0, 0));

    let mut moved = drain(&sqs, &source).await;
    assert_eq!(moved.len(), 23);
    let mut sent = bodies.clone();
    sent.sort();
    let mut moved_bodies: Vec<String> = moved.iter().map(|m| m.body.clone()).collect();
    moved_bodies.sort();
    assert_eq!(moved_bodies, sent, "every body moved once, unchanged");
    moved.retain(|m| m.body == bodies[0]);
    assert_eq!(moved[0].attributes.get("note").map(String::as_str), Some("first"), "message attributes are kept");

    // An empty DLQ: nothing to show, nothing to move.
    let peek = sqs_kit(&["dlq", "peek", "--queue-url", &dlq]);
    assert_eq!(peek.json(), json!([]));
    assert_eq!(sqs_kit(&["dlq", "redrive", "--queue-url", &dlq]).json()["moved"], 0);
}

#[tokio::test]
async fn fifo_messages_dead_lettered_by_the_queue_go_back_to_their_groups() {
    let Some(config) = e2e::local_aws().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topology = stack("dlq-fifo", &["--visibility-timeout", "0", "--max-receive-count", "2"]);
    let source = topology["queues"]["PointsQueue"].as_str().unwrap().to_owned();
    let dlq = topology["dlqs"]["PointsDLQ"].as_str().unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let run = sqs_kit(&[&["publish", "--file", &bodies_file(dir.path(), &orders(6)), "--queue-url", &source][..], &BY_CUSTOMER].concat());
    assert_eq!(run.code, Some(0), "{run:?}");
    // Received and never deleted, until the queue's redrive policy moves them to the DLQ.
    for _ in 0..10 {
        sqs.receive_message()
            .queue_url(&source)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        if counts(&sqs, &dlq).await.0 == 6 {
            break;
        }
    }
    assert_eq!(counts(&sqs, &dlq).await, (6, 0));
    assert_eq!(counts(&sqs, &source).await.0, 0);

    let peek = sqs_kit(&["dlq", "peek", "--queue-url", &dlq]);
    assert_eq!(peek.code, Some(0), "{peek:?}");
    let shown = peek.json();
    assert_eq!(shown.as_array().unwrap().len(), 6, "{shown}");
    for message in shown.as_array().unwrap() {
        assert_eq!(message["messageGroupId"], message["body"]["customerId"], "{message}");
        assert!(message["receiveCount"].as_u64().unwrap() >= 3, "the queue's receives and the peek's: {message}");
    }
    assert_eq!(counts(&sqs, &dlq).await, (6, 0));

    let run = sqs_kit(&["dlq", "redrive", "--queue-url", &dlq, "--to", &source]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json()["moved"], 6);
    assert_eq!(counts(&sqs, &dlq).await, (0, 0));
    let moved = drain(&sqs, &source).await;
    assert_eq!(moved.len(), 6);
    for message in &moved {
        let order: Value = serde_json::from_str(&message.body).unwrap();
        assert_eq!(message.group.as_deref(), order["customerId"].as_str());
    }
}

#[tokio::test]
async fn redrive_needs_to_know_where_to() {
    let Some(_config) = e2e::local_aws().await else { return };
    let topology = stack("dlq-where", &[]);
    let email = topology["queues"]["EmailQueue"].as_str().unwrap();
    let points_dlq = topology["dlqs"]["PointsDLQ"].as_str().unwrap();

    // No queue uses the email queue as its DLQ, and it has no redrive allow policy.
    let run = sqs_kit(&["dlq", "redrive", "--queue-url", email]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("pass --to SOURCE_URL"), "{run:?}");

    let run = sqs_kit(&["dlq", "redrive", "--queue-url", points_dlq, "--to", email]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("same type"), "{run:?}");

    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let missing = format!("{endpoint}/123456789012/{}", e2e::unique_name("missing"));
    let run = sqs_kit(&["dlq", "peek", "--queue-url", &missing]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
    assert!(run.stdout.is_empty());
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, bodies: &[Value]) {
    for body in bodies {
        sqs.send_message().queue_url(url).message_body(body.to_string()).send().await.unwrap();
    }
}

/// The RedrivePolicy side of the direction check; moto drops RedriveAllowPolicy, so its side is
/// tested in the unit tests of src/dlq.rs.
#[tokio::test]
async fn redrive_moves_messages_only_from_a_dlq_to_a_queue_it_serves_unless_forced() {
    let Some(config) = e2e::local_aws().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topology = stack("dlq-direction", &[]);
    let email = topology["queues"]["EmailQueue"].as_str().unwrap().to_owned();
    let email_dlq = topology["dlqs"]["EmailDLQ"].as_str().unwrap().to_owned();
    let shipping_dlq = topology["dlqs"]["ShippingDLQ"].as_str().unwrap().to_owned();
    let email_dlq_arn = e2e::queue_arn(&sqs, &email_dlq).await;
    send(&sqs, &email, &orders(2)).await;

    // The slip: the live queue named as the DLQ, its DLQ as the destination. Both methods refuse.
    for method in [&[][..], &["--manual"][..]] {
        let run = sqs_kit(&[&["dlq", "redrive", "--queue-url", &email, "--to", &email_dlq], method].concat());
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
        assert!(run.stderr.contains(&format!("{email} is not a dead-letter queue of {email_dlq}")), "{run:?}");
        assert!(run.stderr.contains(&format!("the RedrivePolicy of {email_dlq} names no dead-letter queue")), "{run:?}");
        assert!(run.stderr.contains(&format!("the RedriveAllowPolicy of {email} is not set")), "{run:?}");
        assert!(run.stderr.contains("--force"), "{run:?}");
        assert_eq!(counts(&sqs, &email).await, (2, 0), "nothing moved");
    }

    // Unrelated queues of one type: the shipping DLQ into the email queue.
    let run = sqs_kit(&["dlq", "redrive", "--queue-url", &shipping_dlq, "--to", &email]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains(&format!("names {email_dlq_arn} as its dead-letter queue")), "{run:?}");

    // The DLQ into the queue it serves, named or found: moved.
    send(&sqs, &email_dlq, &orders(2)).await;
    let run = sqs_kit(&["dlq", "redrive", "--queue-url", &email_dlq, "--to", &email, "--max", "1"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json()["moved"], 1);
    let run = sqs_kit(&["dlq", "redrive", "--queue-url", &email_dlq]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!((run.json()["moved"].clone(), run.json()["to"].clone()), (json!(1), json!(email)));
    assert_eq!(counts(&sqs, &email).await, (4, 0));

    // --force moves them anyway, and says what it overrode.
    let run = sqs_kit(&["dlq", "redrive", "--queue-url", &email, "--to", &email_dlq, "--force"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json()["moved"], 4);
    assert!(run.stderr.contains(&format!("warning: --force: {email} is not a dead-letter queue of {email_dlq}")), "{run:?}");
    assert_eq!(counts(&sqs, &email).await, (0, 0));
    assert_eq!(counts(&sqs, &email_dlq).await, (4, 0));
}

#[test]
fn message_counts_out_of_range_are_usage_errors_naming_the_range() {
    let url = "http://127.0.0.1:9/123456789012/unused";
    for (args, range) in [
        (&["dlq", "peek", "--queue-url", url, "--max", "0"][..], "a whole number from 1 to 10000"),
        (&["dlq", "peek", "--queue-url", url, "--max", "10001"][..], "a whole number from 1 to 10000"),
        (&["dlq", "redrive", "--queue-url", url, "--max", "0"][..], "a whole number from 1 to 4294967295"),
        (&["dlq", "redrive", "--queue-url", url, "--max", "4294967296"][..], "a whole number from 1 to 4294967295"),
    ] {
        let run = sqs_kit(args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:?}");
        assert!(run.stderr.contains(range), "{args:?}: {range} not in {run:?}");
    }
}

/// A fair queue's dead letters (standard messages with a group) go back with their groups: the
/// group is the tenant the queue shares its capacity by.
#[tokio::test]
async fn fair_queue_messages_go_back_with_their_groups() {
    let Some(config) = e2e::local_aws().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topology = stack("dlq-fair", &[]);
    let source = topology["queues"]["EmailQueue"].as_str().unwrap().to_owned();
    let dlq = topology["dlqs"]["EmailDLQ"].as_str().unwrap().to_owned();
    for (index, tenant) in ["tenant-a", "tenant-b", "tenant-a"].iter().enumerate() {
        let body = json!({"n": index}).to_string();
        sqs.send_message().queue_url(&dlq).message_body(body).message_group_id(*tenant).send().await.unwrap();
    }
    sqs.send_message().queue_url(&dlq).message_body(json!({"n": 3}).to_string()).send().await.unwrap();

    let run = sqs_kit(&["dlq", "redrive", "--queue-url", &dlq, "--to", &source]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json()["moved"], 4, "{run:?}");
    let mut moved: Vec<(u64, Option<String>)> = drain(&sqs, &source)
        .await
        .into_iter()
        .map(|m| (serde_json::from_str::<Value>(&m.body).unwrap()["n"].as_u64().unwrap(), m.group))
        .collect();
    moved.sort();
    let expected = [(0, Some("tenant-a")), (1, Some("tenant-b")), (2, Some("tenant-a")), (3, None)];
    assert_eq!(moved, expected.map(|(n, group)| (n, group.map(str::to_owned))), "{run:?}");
}

/// The attributes a function's dead-letter forwarding adds (`sqs_kit::retry::attributes`).
fn forwarding_attributes(source_arn: &str, message_id: &str) -> Vec<(&'static str, MessageAttributeValue)> {
    let attribute =
        |data_type: &str, value: &str| MessageAttributeValue::builder().data_type(data_type).string_value(value).build().unwrap();
    vec![
        ("SqsKit.FailureReason", attribute("String", "order total is negative")),
        ("SqsKit.FailedFunction", attribute("String", "orders-points")),
        ("SqsKit.ReceiveCount", attribute("Number", "1")),
        ("SqsKit.SourceQueue", attribute("String", source_arn)),
        ("SqsKit.SourceMessageId", attribute("String", message_id)),
    ]
}

/// Messages a function forwarded to its DLQ (crafted here as the library sends them, with an
/// attribute of their own): peek shows the failure, redrive delivers them to the source with
/// only their own attributes.
async fn forwarded_messages_are_shown_and_redriven_without_the_failure(prefix: &str, queue: &str, dlq: &str, redrive: &[&str]) {
    let Some(config) = e2e::local_aws().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topology = stack(prefix, &[]);
    let source = topology["queues"][queue].as_str().unwrap().to_owned();
    let dlq = topology["dlqs"][dlq].as_str().unwrap().to_owned();
    let source_arn = e2e::queue_arn(&sqs, &source).await;
    let fifo = source.ends_with(".fifo");

    let bodies = orders(3);
    for (i, body) in bodies.iter().enumerate() {
        let own = MessageAttributeValue::builder().data_type("String").string_value(format!("trace-{i}")).build().unwrap();
        let mut request = sqs.send_message().queue_url(&dlq).message_body(body.to_string()).message_attributes("traceparent", own);
        for (name, value) in forwarding_attributes(&source_arn, &format!("original-{i}")) {
            request = request.message_attributes(name, value);
        }
        if fifo {
            let group = body["customerId"].as_str().unwrap();
            request = request.message_group_id(group).message_deduplication_id(format!("original-{i}"));
        }
        request.send().await.unwrap();
    }

    let peek = sqs_kit(&["dlq", "peek", "--queue-url", &dlq]);
    assert_eq!(peek.code, Some(0), "{peek:?}");
    let shown = peek.json();
    let shown = shown.as_array().unwrap();
    assert_eq!(shown.len(), 3, "{shown:?}");
    for message in shown {
        let i = bodies.iter().position(|b| *b == message["body"]).expect("a body that was sent");
        assert_eq!(
            message["failure"],
            json!({
                "reason": "order total is negative",
                "function": "orders-points",
                "receiveCount": 1,
                "sourceQueue": source_arn,
                "sourceMessageId": format!("original-{i}"),
            }),
            "{message}"
        );
        // SQS names no source for a message sent to the DLQ: the forwarding's attribute does.
        assert_eq!(message["sourceQueueArn"], source_arn.as_str(), "{message}");
        assert_eq!(message["messageAttributes"], json!({"traceparent": {"dataType": "String", "stringValue": format!("trace-{i}")}}));
    }

    let run = sqs_kit(&[&["dlq", "redrive", "--queue-url", &dlq][..], redrive].concat());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json()["moved"], 3, "{run:?}");
    assert_eq!(run.json()["method"], "receive-send-delete", "{run:?}");
    if redrive.is_empty() {
        assert!(run.stderr.contains("holds messages a function forwarded"), "{run:?}");
    }
    assert_eq!(counts(&sqs, &dlq).await, (0, 0));
    let moved = drain(&sqs, &source).await;
    assert_eq!(moved.len(), 3);
    for message in &moved {
        let body: Value = serde_json::from_str(&message.body).unwrap();
        let i = bodies.iter().position(|b| *b == body).expect("a body that was sent, unchanged");
        assert_eq!(message.attributes, [("traceparent".to_owned(), format!("trace-{i}"))].into(), "only its own attributes");
        if fifo {
            assert_eq!(message.group.as_deref(), body["customerId"].as_str(), "its group");
        }
    }
}

#[tokio::test]
async fn forwarded_messages_of_a_standard_dlq_go_back_without_the_failure_attributes() {
    // No --manual: the failure attributes make redrive move the messages itself.
    forwarded_messages_are_shown_and_redriven_without_the_failure("dlq-forwarded", "EmailQueue", "EmailDLQ", &[]).await;
}

#[tokio::test]
async fn forwarded_messages_of_a_fifo_dlq_go_back_to_their_groups_without_the_failure_attributes() {
    forwarded_messages_are_shown_and_redriven_without_the_failure("dlq-forwarded-fifo", "PointsQueue", "PointsDLQ", &["--manual"]).await;
}
