//! The SES adapter against moto: `replay --store dynamodb` sends through SES v2, once per
//! event id, and `email outbox --store dynamodb` lists what was sent from the idempotency
//! table. Skipped without a local AWS API (`scripts/with-moto cargo test -p email` runs it).
//!
//! What moto "sent" is read from its model dump (`/moto-api/data.json`): SES itself has no API
//! that lists sent mail. Every test uses its own sender address, so tests sharing one moto
//! server only see their own mail.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;

use e2e::Run;
use serde_json::Value;

const CLEAN: &str = "events/email/clean-batch.json";
const DUPLICATE_AND_MALFORMED: &str = "events/email/duplicate-and-malformed.json";
const ORDER_THEN_CANCEL: &str = "events/email/order-then-cancel.json";

/// A fresh idempotency table and a sender address no other test uses.
struct Setup {
    config: aws_config::SdkConfig,
    table: String,
    sender: String,
}

impl Setup {
    async fn new() -> Option<Setup> {
        let config = e2e::local_aws().await?;
        let table = e2e::idempotency_table(&config).await;
        let sender = format!("{}@example.com", e2e::unique_name("orders"));
        Some(Setup { config, table, sender })
    }

    /// Verifies the sender, as SES requires before it sends as an address.
    async fn verify_sender(&self) {
        aws_sdk_sesv2::Client::new(&self.config)
            .create_email_identity()
            .email_identity(&self.sender)
            .send()
            .await
            .expect("moto creates the sender's SES identity");
    }

    fn email(&self, args: &[&str]) -> Run {
        self.email_with(args, &[])
    }

    fn email_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let args = args.iter().copied().chain(["--store", "dynamodb"]);
        let mut envs = vec![
            ("IDEMPOTENCY_TABLE", self.table.as_str()),
            ("EMAIL_SENDER", self.sender.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", ""),
            ("LOG_LEVEL", "info"),
        ];
        envs.extend_from_slice(extra);
        let run = e2e::run(Path::new(env!("CARGO_BIN_EXE_email")), args, &envs);
        assert!(!run.stderr.contains('@'), "stderr names an address:\n{}", run.stderr);
        run
    }

    fn replay(&self, file: &str) -> Run {
        let run = self.email(&["replay", file]);
        assert_eq!(run.code, Some(0), "replay {file} failed: {run:?}");
        run
    }

    fn listed(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["outbox"];
        all.extend_from_slice(args);
        let run = self.email(&all);
        assert_eq!(run.code, Some(0), "email outbox failed: {run:?}");
        run.json().as_array().expect("a JSON list").clone()
    }

    /// The mails moto accepted from this test's sender, in the order they were sent. moto's
    /// model dump is read until two reads agree: under load a dump taken while other tests
    /// write can come back without the latest mails.
    fn sent(&self) -> Vec<Value> {
        let mut last = self.sent_once();
        for _ in 0..10 {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let now = self.sent_once();
            if now == last && !now.is_empty() {
                break;
            }
            last = now;
        }
        last
    }

    fn sent_once(&self) -> Vec<Value> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("local_aws() checked it");
        let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = TcpStream::connect(authority).unwrap_or_else(|e| panic!("cannot connect to moto at {authority}: {e}"));
        write!(stream, "GET /moto-api/data.json HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let response = String::from_utf8_lossy(&response);
        let (status, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"), "{status}");
        let data: Value = serde_json::from_str(body).expect("moto's model dump is JSON");
        data["ses"]["Message"]
            .as_array()
            .map(|messages| messages.iter().filter(|m| m["source"] == self.sender.as_str()).cloned().collect())
            .unwrap_or_default()
    }
}

fn failures(run: &Run) -> Vec<String> {
    run.json()["batchItemFailures"].as_array().unwrap().iter().map(|f| f["itemIdentifier"].as_str().unwrap().to_owned()).collect()
}

fn field<'a>(values: &'a [Value], name: &str) -> BTreeSet<&'a str> {
    values.iter().map(|value| value[name].as_str().unwrap_or_else(|| panic!("no {name} in {value}"))).collect()
}

#[tokio::test]
async fn ses_gets_one_mail_per_event_and_the_outbox_lists_them() {
    let Some(setup) = Setup::new().await else { return };
    setup.verify_sender().await;

    let run = setup.replay(CLEAN);
    assert_eq!(failures(&run), Vec::<String>::new());
    assert!(run.stderr.contains("totals: 3 processed, 0 duplicate, 0 failed"), "{}", run.stderr);
    let sent = setup.sent();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert_eq!(
        field(&sent, "subject"),
        BTreeSet::from(["Your order ORD-1001 is confirmed", "Your order ORD-1002 is confirmed", "Your order ORD-1003 is confirmed"])
    );
    let to_minji = sent.iter().find(|m| m["subject"] == "Your order ORD-1001 is confirmed").unwrap();
    assert_eq!(to_minji["destinations"]["ToAddresses"], serde_json::json!(["minji@example.com"]));
    // moto keeps the HTML body when there is one.
    let body = to_minji["body"].as_str().unwrap();
    assert!(body.contains("<td>SKU-KEYBOARD</td>") && body.contains("89,000 KRW"), "{body}");

    let listed = setup.listed(&[]);
    assert_eq!(listed.len(), 3, "{listed:#?}");
    assert_eq!(field(&listed, "messageId"), field(&sent, "id"), "the outbox names the SES message ids");
    assert_eq!(
        field(&listed, "eventId"),
        BTreeSet::from(["18312976-aa10-5747-a479-1cc7bbd9a7e7", "7f45a350-6361-56b8-a620-69cfa4045a76", "ee8b1953-317f-5e08-a012-4ff1dcf99bff"])
    );
    assert_eq!(field(&listed, "orderId"), BTreeSet::from(["ORD-1001", "ORD-1002", "ORD-1003"]));
    assert_eq!(field(&listed, "kind"), BTreeSet::from(["confirmation"]));
    assert!(listed.iter().all(|mail| mail.get("path").is_none()));
    let event_ids: Vec<&str> = listed.iter().map(|mail| mail["eventId"].as_str().unwrap()).collect();
    assert!(event_ids.is_sorted(), "{event_ids:?}");

    // The same events again, and the samples' duplicates of them: nothing new is sent.
    let run = setup.replay(CLEAN);
    assert!(run.stderr.contains("totals: 0 processed, 3 duplicate, 0 failed"), "{}", run.stderr);
    let run = setup.replay(DUPLICATE_AND_MALFORMED);
    assert_eq!(failures(&run), ["68b1f962-83af-5c6b-992a-823f56a6229c"]);
    assert!(run.stderr.contains("totals: 0 processed, 3 duplicate, 1 failed"), "{}", run.stderr);
    assert_eq!(setup.sent().len(), 3);

    // A cancellation is a new event: one notice.
    let run = setup.replay(ORDER_THEN_CANCEL);
    assert!(run.stderr.contains("totals: 1 processed, 1 duplicate, 0 failed"), "{}", run.stderr);
    let sent = setup.sent();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().any(|m| m["subject"] == "Your order ORD-1001 has been cancelled"), "{sent:#?}");
    let listed = setup.listed(&[]);
    let cancellation: Vec<&Value> = listed.iter().filter(|mail| mail["kind"] == "cancellation").collect();
    assert_eq!(cancellation.len(), 1, "{listed:#?}");
    assert_eq!(cancellation[0]["eventId"], "40d8e836-68c9-507b-9f9d-c99e6fd50eaa");
    assert_eq!(cancellation[0]["orderId"], "ORD-1001");

    // Records of another function name are not this function's mail.
    assert_eq!(setup.listed(&["--function", "shop-email"]), Vec::<Value>::new());
}

#[tokio::test]
async fn a_mail_ses_refuses_fails_permanently_without_naming_an_address() {
    let Some(setup) = Setup::new().await else { return };
    // No verify_sender(): SES refuses to send as an unverified identity.
    let run = setup.replay(ORDER_THEN_CANCEL);
    assert_eq!(failures(&run).len(), 2, "{run:?}");
    assert!(
        run.stderr.contains("failed (permanent): SES refused the confirmation mail for order ORD-1001 (event 18312976-aa10-5747-a479-1cc7bbd9a7e7)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("<address>"), "the address SES quoted is redacted: {}", run.stderr);
    assert!(setup.sent().is_empty());
    // The claims were released, so nothing is listed and a retry can send.
    assert_eq!(setup.listed(&[]), Vec::<Value>::new());
    setup.verify_sender().await;
    let run = setup.replay(ORDER_THEN_CANCEL);
    assert_eq!(failures(&run), Vec::<String>::new(), "{}", run.stderr);
    assert_eq!(setup.sent().len(), 2);
}

#[tokio::test]
async fn an_unreachable_ses_is_a_transient_failure_and_the_event_is_sent_later() {
    let Some(setup) = Setup::new().await else { return };
    setup.verify_sender().await;
    // DynamoDB stays on moto; only SES points at a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let unreachable = format!("http://{closed}");
    let run = setup.email_with(&["replay", ORDER_THEN_CANCEL], &[("AWS_ENDPOINT_URL_SESV2", unreachable.as_str())]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(failures(&run).len(), 2, "{run:?}");
    assert!(
        run.stderr.contains("failed (transient): SES could not send the cancellation mail for order ORD-1001"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("it will be retried"), "{}", run.stderr);
    assert!(setup.sent().is_empty());
    assert_eq!(setup.listed(&[]), Vec::<Value>::new(), "the claims were released");

    let run = setup.replay(ORDER_THEN_CANCEL);
    assert_eq!(failures(&run), Vec::<String>::new(), "{}", run.stderr);
    assert_eq!(setup.sent().len(), 2);
}

#[tokio::test]
async fn the_outbox_reads_the_deployed_function_s_records() {
    let Some(setup) = Setup::new().await else { return };
    setup.verify_sender().await;
    // In Lambda, keys are prefixed with the deployed name, `<stack>-email`.
    let deployed = [("AWS_LAMBDA_FUNCTION_NAME", "shop-email")];
    let run = setup.email_with(&["replay", CLEAN], &deployed);
    assert_eq!(failures(&run), Vec::<String>::new(), "{run:?}");

    assert_eq!(setup.listed(&[]), Vec::<Value>::new(), "nothing under the local name `email`");
    let listed = setup.listed(&["--function", "shop-email"]);
    assert_eq!(field(&listed, "orderId"), BTreeSet::from(["ORD-1001", "ORD-1002", "ORD-1003"]));
    let run = setup.email_with(&["outbox"], &deployed);
    assert_eq!(run.json().as_array().unwrap().len(), 3, "the function name is read from the environment, as replay does");
}
