//! The SES adapter against moto: `replay --store dynamodb` sends through SES v2, once per
//! event id, and `email outbox --store dynamodb` lists what was sent from the idempotency
//! table. Skipped without a local AWS API (`scripts/with-moto cargo test -p email` runs it).
//!
//! What moto "sent" is read from its model dump (`/moto-api/data.json`): SES itself has no API
//! that lists sent mail. Every test uses its own sender address, so tests sharing one moto
//! server only see their own mail.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use e2e::Run;
use serde_json::{json, Value};

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
        let run: Run = self.command(args, extra).output().expect("the email binary runs").into();
        assert!(!run.stderr.contains('@'), "stderr names an address:\n{}", run.stderr);
        run
    }

    /// `email args... --store dynamodb` from the workspace root, outside Lambda, as `e2e::run`
    /// runs it.
    fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_email"));
        command.args(args).args(["--store", "dynamodb"]).current_dir(e2e::workspace_root()).env_remove("AWS_LAMBDA_RUNTIME_API");
        let envs = [
            ("IDEMPOTENCY_TABLE", self.table.as_str()),
            ("EMAIL_SENDER", self.sender.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", ""),
            ("LOG_LEVEL", "info"),
        ];
        command.envs(envs.iter().chain(extra).copied());
        command
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
        BTreeSet::from([
            "18312976-aa10-5747-a479-1cc7bbd9a7e7",
            "7f45a350-6361-56b8-a620-69cfa4045a76",
            "ee8b1953-317f-5e08-a012-4ff1dcf99bff"
        ])
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
        run.stderr.contains(
            "failed (permanent): SES refused the confirmation mail for order ORD-1001 (event 18312976-aa10-5747-a479-1cc7bbd9a7e7)"
        ),
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
    assert!(run.stderr.contains("failed (transient): SES could not send the cancellation mail for order ORD-1001"), "{}", run.stderr);
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
    let run = setup.email(&["replay", CLEAN, "--function-name", "shop-email"]);
    assert_eq!(failures(&run), Vec::<String>::new(), "{run:?}");

    assert_eq!(setup.listed(&[]), Vec::<Value>::new(), "nothing under the local name `email`");
    let listed = setup.listed(&["--function", "shop-email"]);
    assert_eq!(field(&listed, "orderId"), BTreeSet::from(["ORD-1001", "ORD-1002", "ORD-1003"]));
    // Outside Lambda an inherited AWS_LAMBDA_FUNCTION_NAME names no function, as in replay.
    let run = setup.email_with(&["outbox"], &[("AWS_LAMBDA_FUNCTION_NAME", "shop-email")]);
    assert_eq!(run.json(), json!([]), "{run:?}");
}

/// A stand-in for SES on a local port: it counts the requests it gets, and answers each with
/// `answer` (status line and error code), or never.
struct FakeSes {
    url: String,
    requests: Arc<AtomicUsize>,
    received: mpsc::Receiver<()>,
}

impl FakeSes {
    fn start(answer: Option<(&'static str, &'static str)>) -> FakeSes {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let (sender, received) = mpsc::channel();
        let counter = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (Ok(mut stream), counter, sender) = (stream, Arc::clone(&counter), sender.clone()) else { return };
                std::thread::spawn(move || {
                    while read_request(&mut stream) {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = sender.send(());
                        let Some((status, code)) = answer else {
                            // Holds the connection open, as a server that took the request
                            // and has not answered yet.
                            std::thread::sleep(Duration::from_secs(3600));
                            return;
                        };
                        let body = format!(r#"{{"message":"{code} from the fake SES"}}"#);
                        let response = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nx-amzn-ErrorType: {code}\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(response.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeSes { url, requests, received }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP request (headers, then a body of Content-Length bytes); false at the end of
/// the connection.
fn read_request(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = head.lines().find_map(|line| line.strip_prefix("content-length:")).map_or(0, |n| n.trim().parse().unwrap_or(0));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).is_ok()
}

/// An event file in `dir` of the first `count` records of `base`, each changed by
/// `edit(i, record)`.
fn edited_records(dir: &Path, base: &str, count: usize, edit: impl Fn(usize, &mut Value)) -> String {
    let mut event: Value = serde_json::from_str(&e2e::read_event(base)).unwrap();
    let records = event["Records"].as_array_mut().unwrap();
    records.truncate(count);
    for (i, record) in records.iter_mut().enumerate() {
        edit(i, record);
    }
    let path = dir.join(format!("event-{}.json", e2e::unique_name("ses")));
    std::fs::write(&path, event.to_string()).unwrap();
    path.display().to_string()
}

fn count_of(sent: &[Value], subject: &str) -> usize {
    sent.iter().filter(|mail| mail["subject"] == subject).count()
}

/// The idempotency claims of these runs lapse at their deadline, REMAINING_MS after the run
/// sets it; a test that times the lapse from the spawn allows the process 600 ms to get there
/// (on a loaded machine 100 ms was not always enough).
const REMAINING_MS: &str = "4000";
const CLAIM_LAPSE: Duration = Duration::from_millis(4600);

/// SES has no idempotency token: after a timeout, a dropped connection or a server error it
/// may have taken the mail, so the SDK must not send it again. Only a refusal is retried.
#[tokio::test]
async fn the_sdk_retries_a_send_only_when_ses_refused_it() {
    let Some(setup) = Setup::new().await else { return };
    for (answer, retried) in [
        (("503 Service Unavailable", "ServiceUnavailable"), false),
        (("500 Internal Server Error", "InternalFailure"), false),
        (("429 Too Many Requests", "TooManyRequestsException"), true),
    ] {
        let fake = FakeSes::start(Some(answer));
        let run = setup.email_with(&["replay", ORDER_THEN_CANCEL], &[("AWS_ENDPOINT_URL_SESV2", fake.url.as_str())]);
        assert_eq!(failures(&run).len(), 2, "{run:?}");
        assert!(run.stderr.contains("failed (transient): SES could not send"), "{}", run.stderr);
        let warned = run.stderr.contains("(SES may have sent it nonetheless; the retry then sends it a second time)");
        if retried {
            assert!(fake.requests() > 2, "a throttled send is tried again: {} requests", fake.requests());
            assert!(!warned, "{}", run.stderr);
        } else {
            assert_eq!(fake.requests(), 2, "one SendEmail per mail after {answer:?}");
            assert!(warned, "the log says a second mail may follow: {}", run.stderr);
        }
    }
}

/// A crash repeats a mail only when it falls between SES taking the mail and the completion of
/// the idempotency record. The three records run one after the other (one FIFO group): the
/// first is completed before the second's mail crashes the process, and the third is never
/// reached, so its crash comes before its send.
#[tokio::test]
async fn a_crash_repeats_a_mail_only_between_ses_taking_it_and_the_completion() {
    let Some(setup) = Setup::new().await else { return };
    setup.verify_sender().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = edited_records(dir.path(), CLEAN, 3, |i, record| {
        record["eventSourceARN"] = json!("arn:aws:sqs:ap-northeast-2:123456789012:orders-email.fifo");
        record["attributes"]["MessageGroupId"] = json!("customers");
        record["attributes"]["MessageDeduplicationId"] = json!(format!("dedup-{i}"));
        record["attributes"]["SequenceNumber"] = json!(format!("1863000000000000000{i}"));
    });
    let [first, second, third] = ["ORD-1001", "ORD-1002", "ORD-1003"].map(|order| format!("Your order {order} is confirmed"));

    let started = Instant::now();
    let crash = [("SQS_KIT_FAULT", "crash-after-handler:7f45a350-6361-56b8-a620-69cfa4045a76")];
    let run = setup.email_with(&["replay", &fifo, "--remaining-ms", REMAINING_MS], &crash);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("SQS_KIT_FAULT: aborting at crash-after-handler"), "{}", run.stderr);
    let sent = setup.sent();
    assert_eq!((count_of(&sent, &first), count_of(&sent, &second), count_of(&sent, &third)), (1, 1, 0), "{sent:#?}");
    // The crashed send is in the log by its SES message id, so a second mail can be traced.
    let crashed = sent.iter().find(|mail| mail["subject"] == second.as_str()).unwrap()["id"].as_str().unwrap().to_owned();
    assert!(run.stderr.contains(&crashed), "{}", run.stderr);

    std::thread::sleep(CLAIM_LAPSE.saturating_sub(started.elapsed()));
    let run = setup.replay(&fifo);
    assert!(run.stderr.contains("totals: 2 processed, 1 duplicate, 0 failed"), "{}", run.stderr);
    let sent = setup.sent();
    assert_eq!(
        (count_of(&sent, &first), count_of(&sent, &second), count_of(&sent, &third)),
        (1, 2, 1),
        "completed before the crash: once; crashed between send and completion: twice; not reached: once\n{sent:#?}"
    );
    let listed = setup.listed(&[]);
    assert_eq!(listed.len(), 3, "{listed:#?}");
    let resent = listed.iter().find(|mail| mail["orderId"] == "ORD-1002").unwrap()["messageId"].as_str().unwrap();
    assert_ne!(resent, crashed, "the record names the mail sent last");

    let run = setup.replay(&fifo);
    assert!(run.stderr.contains("totals: 0 processed, 3 duplicate, 0 failed"), "{}", run.stderr);
    assert_eq!(setup.sent().len(), 4);
}

/// Killed while SES has the request and has not answered (a request SES never took): nothing
/// was sent, the claim keeps other deliveries off until it lapses, and then one mail goes out.
#[tokio::test]
async fn a_crash_before_ses_takes_the_mail_sends_it_once() {
    let Some(setup) = Setup::new().await else { return };
    setup.verify_sender().await;
    let dir = tempfile::tempdir().unwrap();
    let one = edited_records(dir.path(), ORDER_THEN_CANCEL, 1, |_, _| {});
    let silent = FakeSes::start(None);

    let mut child = setup
        .command(&["replay", &one, "--remaining-ms", REMAINING_MS], &[("AWS_ENDPOINT_URL_SESV2", silent.url.as_str())])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    silent.received.recv_timeout(Duration::from_secs(20)).expect("the send reaches SES");
    // The run set its deadline before it sent, so its claim lapses at most REMAINING_MS from
    // now: timed from the spawn instead, a slow start left the claim alive by a few ms.
    let sent = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();

    let run = setup.replay(&one);
    assert_eq!(failures(&run).len(), 1, "the crashed run's claim holds until its deadline: {run:?}");
    assert!(setup.sent().is_empty());

    std::thread::sleep(CLAIM_LAPSE.saturating_sub(sent.elapsed()));
    let run = setup.replay(&one);
    assert_eq!(failures(&run), Vec::<String>::new(), "{}", run.stderr);
    assert_eq!(count_of(&setup.sent(), "Your order ORD-1001 is confirmed"), 1);
}

/// Lambda ends the invocation at its deadline, and the claim lapses then: a mail SES took in
/// the last moment could not be recorded, and would go out again. So none is sent that late,
/// even from a record that started in time (the batch starts none with under 2 s left) and
/// was held up before its send.
#[tokio::test]
async fn no_mail_is_sent_too_close_to_the_deadline_to_record_it() {
    let Some(setup) = Setup::new().await else { return };
    setup.verify_sender().await;
    // About 700 ms are left when the send would start.
    let held_up = [("SQS_KIT_FAULT", "slow:1800")];
    let run = setup.email_with(&["replay", ORDER_THEN_CANCEL, "--remaining-ms", "2600"], &held_up);
    assert_eq!(failures(&run).len(), 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "failed (transient): not sending the confirmation mail for order ORD-1001 (event 18312976-aa10-5747-a479-1cc7bbd9a7e7) yet"
        ),
        "{}",
        run.stderr
    );
    assert!(setup.sent().is_empty());
    let run = setup.replay(ORDER_THEN_CANCEL);
    assert_eq!(failures(&run), Vec::<String>::new(), "{}", run.stderr);
    assert_eq!(setup.sent().len(), 2);
}
