//! The email function through `replay` on the embedded store, as a user runs it: the sample
//! events of `events/email/`, the `.eml` files they leave in `<state>/outbox/`, and
//! `email outbox`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use e2e::Run;
use serde_json::{json, Value};
use tempfile::TempDir;

const CLEAN: &str = "events/email/clean-batch.json";
const DUPLICATE_AND_MALFORMED: &str = "events/email/duplicate-and-malformed.json";
const ORDER_THEN_CANCEL: &str = "events/email/order-then-cancel.json";

const ORD_1001_PLACED: &str = "18312976-aa10-5747-a479-1cc7bbd9a7e7";
const ORD_1002_PLACED: &str = "7f45a350-6361-56b8-a620-69cfa4045a76";
const ORD_1003_PLACED: &str = "ee8b1953-317f-5e08-a012-4ff1dcf99bff";
const ORD_1001_CANCELLED: &str = "40d8e836-68c9-507b-9f9d-c99e6fd50eaa";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_email"))
}

/// Runs `email args... --state STATE` with the variables a developer's shell might have set
/// cleared, so that the defaults are what is tested.
fn email(state: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let state = state.display().to_string();
    let args = args.iter().copied().chain(["--state", state.as_str()]);
    let mut all = vec![("EMAIL_SENDER", ""), ("AWS_LAMBDA_FUNCTION_NAME", ""), ("LOG_LEVEL", "info")];
    all.extend_from_slice(envs);
    e2e::run(binary(), args, &all)
}

fn replay(state: &Path, file: &str) -> Run {
    let run = email(state, &["replay", file], &[]);
    assert_eq!(run.code, Some(0), "replay {file} failed: {run:?}");
    assert_no_address(&run);
    run
}

fn failures(run: &Run) -> Vec<String> {
    run.json()["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {run:?}"))
        .iter()
        .map(|failure| failure["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// Logs and the replay summary (which prints every handler output) never name an address.
fn assert_no_address(run: &Run) {
    for address in ["minji@example.com", "joon@example.com", "orders@example.com", "@example.com", "@"] {
        assert!(!run.stderr.contains(address), "stderr names an address ({address}):\n{}", run.stderr);
    }
}

fn outbox_files(state: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state.join("outbox")) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn outbox_listing(state: &Path) -> Value {
    let run = email(state, &["outbox"], &[]);
    assert_eq!(run.code, Some(0), "email outbox failed: {run:?}");
    run.json()
}

fn eml_path(state: &Path, event_id: &str) -> PathBuf {
    state.join("outbox").join(format!("{event_id}.eml"))
}

fn listed(state: &Path, event_id: &str, order_id: &str, kind: &str) -> Value {
    json!({"eventId": event_id, "orderId": order_id, "kind": kind, "path": eml_path(state, event_id).display().to_string()})
}

/// An outbox file, taken apart: its headers and its two decoded parts.
struct Eml {
    raw: String,
    headers: HashMap<String, String>,
    text: String,
    html: String,
}

impl Eml {
    fn read(path: &Path) -> Eml {
        let raw = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let (head, body) = raw.split_once("\r\n\r\n").expect("headers end with an empty CRLF line");
        let headers = parse_headers(head);
        let content_type = &headers["content-type"];
        assert!(content_type.starts_with("multipart/alternative;"), "{content_type}");
        let boundary = content_type.split("boundary=\"").nth(1).and_then(|b| b.strip_suffix('"')).expect("a quoted boundary");
        let delimiter = format!("\r\n--{boundary}");
        assert!(body.contains(&format!("{delimiter}--\r\n")), "the multipart body is closed");
        let mut parts = HashMap::new();
        for part in body.split(delimiter.as_str()).skip(1).filter(|part| !part.starts_with("--")) {
            let (part_head, part_body) = part.trim_start_matches("\r\n").split_once("\r\n\r\n").expect("a part has headers");
            let part_headers = parse_headers(part_head);
            assert_eq!(part_headers["content-transfer-encoding"], "quoted-printable");
            let content_type = part_headers["content-type"].clone();
            parts.insert(content_type, decode_quoted_printable(part_body));
        }
        assert_eq!(parts.len(), 2, "two alternatives: {:?}", parts.keys());
        let text = parts.remove("text/plain; charset=UTF-8").expect("a text/plain part");
        let html = parts.remove("text/html; charset=UTF-8").expect("a text/html part");
        Eml { raw, headers, text, html }
    }
}

fn parse_headers(head: &str) -> HashMap<String, String> {
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .split("\r\n")
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("not a header line: {line:?}"));
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect()
}

fn decode_quoted_printable(text: &str) -> String {
    for line in text.split("\r\n") {
        assert!(line.len() <= 76, "a quoted-printable line is longer than 76: {line:?}");
    }
    let joined = text.replace("=\r\n", "").replace("\r\n", "\n");
    let (raw, mut bytes, mut i) = (joined.as_bytes(), Vec::new(), 0);
    while i < raw.len() {
        if raw[i] == b'=' {
            bytes.push(u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).unwrap(), 16).unwrap());
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(bytes).expect("the parts are UTF-8")
}

/// An event file in `dir` made from the first record of `base`, its body changed by `edit`.
fn edited_event(dir: &Path, base: &str, edit: impl Fn(&mut Value)) -> String {
    edited_events(dir, base, 1, |_, body| edit(body))
}

/// An event file in `dir` of `count` copies of the first record of `base`, copy `i` with its
/// body changed by `edit(i, body)` and, from the second on, the message id `<messageId>-<i>`.
fn edited_events(dir: &Path, base: &str, count: usize, edit: impl Fn(usize, &mut Value)) -> String {
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(e2e::workspace_root().join(base)).unwrap()).unwrap();
    let first = event["Records"][0].clone();
    let records: Vec<Value> = (0..count)
        .map(|i| {
            let mut record = first.clone();
            let mut body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            edit(i, &mut body);
            record["body"] = Value::String(body.to_string());
            if i > 0 {
                record["messageId"] = json!(format!("{}-{i}", first["messageId"].as_str().unwrap()));
            }
            record
        })
        .collect();
    event["Records"] = Value::Array(records);
    let path = dir.join("event.json");
    std::fs::write(&path, event.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn a_clean_batch_writes_one_confirmation_per_order() {
    let state = TempDir::new().unwrap();
    let run = replay(state.path(), CLEAN);
    assert_eq!(failures(&run), Vec::<String>::new());
    assert!(run.stderr.contains("totals: 3 processed, 0 duplicate, 0 failed"), "{}", run.stderr);

    let mut expected = vec![
        listed(state.path(), ORD_1001_PLACED, "ORD-1001", "confirmation"),
        listed(state.path(), ORD_1002_PLACED, "ORD-1002", "confirmation"),
        listed(state.path(), ORD_1003_PLACED, "ORD-1003", "confirmation"),
    ];
    expected.sort_by_key(|mail| mail["path"].as_str().unwrap().to_owned());
    assert_eq!(outbox_listing(state.path()), Value::Array(expected));
    assert_eq!(outbox_files(state.path()).len(), 3);

    let mail = Eml::read(&eml_path(state.path(), ORD_1001_PLACED));
    let h = &mail.headers;
    assert_eq!(h["from"], "orders@example.com", "the local default sender");
    assert_eq!(h["to"], "minji@example.com");
    assert_eq!(h["subject"], "Your order ORD-1001 is confirmed");
    assert_eq!(h["mime-version"], "1.0");
    assert_eq!(h["message-id"], format!("<{ORD_1001_PLACED}@example.com>"));
    assert_eq!(h["x-order-id"], "ORD-1001");
    assert_eq!(h["x-event-id"], ORD_1001_PLACED);
    assert_eq!(h["x-mail-kind"], "confirmation");
    assert!(h["date"].ends_with(" +0000") && h["date"].len() == "Tue, 24 Nov 2026 09:41:00 +0000".len(), "{}", h["date"]);
    assert!(mail.raw.split("\r\n").all(|line| line.len() <= 998), "RFC 5322 line length");
    assert!(!mail.raw.replace("\r\n", "").contains('\n'), "every line ends in CRLF");

    for part in [&mail.text, &mail.html] {
        for expected in ["Minji Kim", "ORD-1001", "SKU-KEYBOARD", "89,000 KRW", "12 Teheran-ro", "Seoul 06236"] {
            assert!(part.contains(expected), "{expected} missing from\n{part}");
        }
    }
    assert!(mail.text.contains("Total: 89,000 KRW"), "{}", mail.text);
    assert!(mail.html.starts_with("<!DOCTYPE html>") && mail.html.contains("<td>SKU-KEYBOARD</td>"), "{}", mail.html);

    // Quantities, unit prices and line amounts of a two-item order.
    let mail = Eml::read(&eml_path(state.path(), ORD_1002_PLACED));
    assert_eq!(mail.headers["to"], "joon@example.com");
    assert!(mail.text.contains("SKU-MOUSE  x 2  at 25,000 KRW  = 50,000 KRW"), "{}", mail.text);
    assert!(mail.text.contains("SKU-PAD  x 1  at 12,000 KRW  = 12,000 KRW"), "{}", mail.text);
    assert!(mail.text.contains("Total: 62,000 KRW"), "{}", mail.text);
    assert!(mail
        .html
        .contains(r#"<td>SKU-MOUSE</td><td align="right">2</td><td align="right">25,000 KRW</td><td align="right">50,000 KRW</td>"#));
}

#[test]
fn a_duplicate_is_mailed_once_and_a_malformed_body_fails_alone() {
    let state = TempDir::new().unwrap();
    let run = replay(state.path(), DUPLICATE_AND_MALFORMED);
    assert_eq!(failures(&run), ["68b1f962-83af-5c6b-992a-823f56a6229c"]);
    assert!(run.stderr.contains("duplicate (skipped)"), "{}", run.stderr);
    assert!(run.stderr.contains("68b1f962-83af-5c6b-992a-823f56a6229c  failed (permanent): the body is not valid JSON"), "{}", run.stderr);
    assert!(run.stderr.contains("totals: 2 processed, 1 duplicate, 1 failed (0 transient, 1 permanent)"), "{}", run.stderr);
    assert_eq!(outbox_files(state.path()), [eml_path(state.path(), ORD_1001_PLACED), eml_path(state.path(), ORD_1002_PLACED)]);
}

#[test]
fn an_order_then_its_cancellation_sends_a_confirmation_then_a_notice() {
    let state = TempDir::new().unwrap();
    let run = replay(state.path(), ORDER_THEN_CANCEL);
    assert_eq!(failures(&run), Vec::<String>::new());
    let mut expected = vec![
        listed(state.path(), ORD_1001_PLACED, "ORD-1001", "confirmation"),
        listed(state.path(), ORD_1001_CANCELLED, "ORD-1001", "cancellation"),
    ];
    expected.sort_by_key(|mail| mail["path"].as_str().unwrap().to_owned());
    assert_eq!(outbox_listing(state.path()), Value::Array(expected));

    let notice = Eml::read(&eml_path(state.path(), ORD_1001_CANCELLED));
    assert_eq!(notice.headers["subject"], "Your order ORD-1001 has been cancelled");
    assert_eq!(notice.headers["x-mail-kind"], "cancellation");
    assert!(notice.text.contains("has been cancelled, and nothing from it will be shipped"), "{}", notice.text);
    assert!(notice.text.contains("Total: 89,000 KRW") && notice.html.contains("12 Teheran-ro"));
}

#[test]
fn replaying_the_same_events_again_writes_no_new_mail() {
    let state = TempDir::new().unwrap();
    replay(state.path(), CLEAN);
    let before: Vec<(PathBuf, Vec<u8>)> =
        outbox_files(state.path()).into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect();
    let listing = outbox_listing(state.path());

    let run = replay(state.path(), CLEAN);
    assert_eq!(failures(&run), Vec::<String>::new());
    assert_eq!(run.stderr.matches("duplicate (skipped)").count(), 3, "{}", run.stderr);
    assert!(run.stderr.contains("totals: 0 processed, 3 duplicate, 0 failed"), "{}", run.stderr);
    let after: Vec<(PathBuf, Vec<u8>)> =
        outbox_files(state.path()).into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect();
    assert_eq!(before, after, "the outbox is unchanged");
    assert_eq!(outbox_listing(state.path()), listing);

    // The duplicates in another sample are the same events: still no new mail.
    let run = replay(state.path(), DUPLICATE_AND_MALFORMED);
    assert!(run.stderr.contains("totals: 0 processed, 3 duplicate, 1 failed"), "{}", run.stderr);
    assert_eq!(outbox_files(state.path()).len(), 3);
}

/// A crash after the mail was written and before the idempotency record was completed: the
/// claim lapses, the event is processed again, and the mail already in the outbox stays the
/// only one.
#[test]
fn a_mail_left_by_a_crashed_attempt_is_not_written_twice() {
    let state = TempDir::new().unwrap();
    let outbox = state.path().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let earlier = format!(
        "From: orders@example.com\r\nX-Mail-Kind: confirmation\r\nX-Order-Id: ORD-1001\r\nX-Event-Id: {ORD_1001_PLACED}\r\nX-Attempt: first\r\n\r\nbody\r\n"
    );
    let path = eml_path(state.path(), ORD_1001_PLACED);
    std::fs::write(&path, &earlier).unwrap();

    let run = replay(state.path(), ORDER_THEN_CANCEL);
    assert_eq!(failures(&run), Vec::<String>::new());
    assert!(run.stderr.contains("totals: 2 processed"), "{}", run.stderr);
    assert!(run.stderr.contains("already has this event's mail"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), earlier, "the earlier attempt's mail is kept as it was");
    assert_eq!(outbox_files(state.path()), [eml_path(state.path(), ORD_1001_PLACED), eml_path(state.path(), ORD_1001_CANCELLED)]);
    // The completed record points at the mail that exists.
    assert!(run.stderr.contains(&format!("\"path\":\"{}\"", path.display())), "{}", run.stderr);
}

#[test]
fn customer_fields_are_escaped_in_html_and_encoded_in_headers() {
    let state = TempDir::new().unwrap();
    let name = r#"<script>alert("x")</script> Kim & 'Co'"#;
    let event = edited_event(state.path(), CLEAN, |body| {
        body["orderId"] = json!("ORD-<b>서울</b>\r\nBcc: x");
        body["shippingAddress"]["name"] = json!(name);
        body["shippingAddress"]["line1"] = json!("강남구 테헤란로 12");
        body["items"][0]["sku"] = json!("SKU-<i>KEY</i>");
    });
    let run = email(state.path(), &["replay", &event], &[("EMAIL_SENDER", "Order Desk <desk@example.com>")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(failures(&run), Vec::<String>::new());
    assert_no_address(&run);

    let mail = Eml::read(&eml_path(state.path(), ORD_1001_PLACED));
    assert!(!mail.html.contains("<script>") && !mail.html.contains("<b>") && !mail.html.contains("<i>"), "{}", mail.html);
    assert!(mail.html.contains("Hello &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Kim &amp; &#39;Co&#39;,"), "{}", mail.html);
    assert!(mail.html.contains("<td>SKU-&lt;i&gt;KEY&lt;/i&gt;</td>"), "{}", mail.html);
    assert!(mail.html.contains("강남구 테헤란로 12"), "{}", mail.html);
    assert!(mail.text.contains(&format!("Hello {name},")), "the text part is not HTML: {}", mail.text);

    // A CR or LF from the event cannot start a header of its own.
    assert!(!mail.headers.contains_key("bcc"), "{:?}", mail.headers);
    assert!(mail.headers["x-order-id"].starts_with("=?UTF-8?B?"), "{:?}", mail.headers);
    assert_eq!(mail.headers["from"], "Order Desk <desk@example.com>");
    assert_eq!(mail.headers["message-id"], format!("<{ORD_1001_PLACED}@example.com>"));
    let listing = outbox_listing(state.path());
    assert_eq!(listing[0]["orderId"], "ORD-<b>서울</b>\r\nBcc: x", "the listing decodes the header: {listing}");
}

#[test]
fn an_address_mail_cannot_go_to_fails_permanently_without_naming_it() {
    let state = TempDir::new().unwrap();
    let event = edited_event(state.path(), CLEAN, |body| body["customerEmail"] = json!("minji@example.com\r\nBcc: all@example.com"));
    let run = replay(state.path(), &event);
    assert_eq!(failures(&run), ["6d95ad00-3c79-5872-a8cf-c5c5952aa671"]);
    assert!(
        run.stderr.contains(
            "failed (permanent): customerEmail of order ORD-1001 cannot receive mail: it contains spaces, control or non-ASCII characters"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(outbox_files(state.path()), Vec::<PathBuf>::new());
}

#[test]
fn the_outbox_of_a_new_state_directory_is_empty() {
    let state = TempDir::new().unwrap();
    assert_eq!(outbox_listing(state.path()), json!([]));
}

#[test]
fn sending_through_ses_needs_a_sender() {
    // Opening the DynamoDB store needs only the table's name; the mailer checks EMAIL_SENDER
    // before any record is read, so no AWS API is needed to see the error.
    let state = TempDir::new().unwrap();
    let run = email(
        state.path(),
        &["replay", CLEAN, "--store", "dynamodb"],
        &[("IDEMPOTENCY_TABLE", "no-such-table"), ("AWS_REGION", "us-east-1")],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("EMAIL_SENDER is not set; it must name the From address of order e-mails"), "{}", run.stderr);

    let run = email(
        state.path(),
        &["replay", CLEAN, "--store", "dynamodb"],
        &[("IDEMPOTENCY_TABLE", "no-such-table"), ("AWS_REGION", "us-east-1"), ("EMAIL_SENDER", "not an address")],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("EMAIL_SENDER is not a usable From address"), "{}", run.stderr);
}

/// Event ids are free text. Each gets an outbox file of its own, however it is chosen: before,
/// `a/b` was written as `event-<hash>.eml`, and an event whose id was that very name was
/// reported processed with the other event's mail.
#[test]
fn every_event_id_gets_an_outbox_file_of_its_own() {
    use sha2::Digest as _;
    let state = TempDir::new().unwrap();
    let hash: String = sha2::Sha256::digest(b"a/b").iter().map(|byte| format!("{byte:02x}")).collect();
    let long = "x".repeat(300);
    let ids = [
        "a/b".to_owned(),
        format!("event-{}", &hash[..40]),
        "a".to_owned(),
        "%61".to_owned(),
        ".a".to_owned(),
        long.clone(),
        format!("{long}y"),
        "주문 1".to_owned(),
    ];
    let event = edited_events(state.path(), CLEAN, ids.len(), |i, body| {
        body["eventId"] = json!(ids[i]);
        body["orderId"] = json!(format!("ORD-{i}"));
    });
    let run = replay(state.path(), &event);
    assert_eq!(failures(&run), Vec::<String>::new());
    assert!(run.stderr.contains(&format!("totals: {} processed, 0 duplicate, 0 failed", ids.len())), "{}", run.stderr);

    let listing = outbox_listing(state.path());
    let mails = listing.as_array().unwrap();
    assert_eq!(mails.len(), ids.len(), "{listing:#}");
    assert_eq!(outbox_files(state.path()).len(), ids.len());
    for (i, id) in ids.iter().enumerate() {
        let mail = mails.iter().find(|mail| mail["eventId"] == id.as_str()).unwrap_or_else(|| panic!("no mail for {id}: {listing:#}"));
        assert_eq!(mail["orderId"], format!("ORD-{i}"), "{id} has its own mail");
        let path = Path::new(mail["path"].as_str().unwrap());
        assert_eq!(path.parent().unwrap(), state.path().join("outbox"), "{}", path.display());
    }
}

/// A file under an event's name that is not that event's mail (a file put there by hand, or
/// two ids that differ only in case on a case-insensitive file system) is not reported as
/// the event's mail.
#[test]
fn a_file_holding_another_event_s_mail_is_not_taken_for_this_event_s() {
    let state = TempDir::new().unwrap();
    std::fs::create_dir_all(state.path().join("outbox")).unwrap();
    let path = eml_path(state.path(), ORD_1001_PLACED);
    let other =
        "From: orders@example.com\r\nX-Mail-Kind: confirmation\r\nX-Order-Id: ORD-9\r\nX-Event-Id: some-other-event\r\n\r\nbody\r\n";
    std::fs::write(&path, other).unwrap();

    let run = replay(state.path(), CLEAN);
    assert_eq!(failures(&run), ["6d95ad00-3c79-5872-a8cf-c5c5952aa671"]);
    assert!(
        run.stderr.contains(&format!(
            "failed (permanent): the outbox file {} for event {ORD_1001_PLACED} holds the mail of event some-other-event; move that file out of the outbox and replay the event",
            path.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), other);

    std::fs::remove_file(&path).unwrap();
    let run = replay(state.path(), CLEAN);
    assert_eq!(failures(&run), Vec::<String>::new(), "the claim was released: {}", run.stderr);
    assert_eq!(Eml::read(&path).headers["x-event-id"], ORD_1001_PLACED);
}

/// A crash between creating a mail's temporary file and linking it leaves the customer's mail
/// in a dot file. The next run removes it, whether or not it writes mail itself.
#[test]
fn a_temporary_file_left_by_a_crash_is_gone_after_the_next_run() {
    let state = TempDir::new().unwrap();
    let outbox = state.path().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let left_behind = |pid: u32| {
        let path = outbox.join(format!(".{ORD_1001_PLACED}.eml.{pid}-1764061200000000000.tmp"));
        std::fs::write(&path, "To: minji@example.com\r\nSubject: Your order ORD-1001 is confirmed\r\n").unwrap();
        path
    };

    let crashed = left_behind(4_000_001);
    replay(state.path(), CLEAN);
    assert!(!crashed.exists(), "a run that writes mail removes it");

    let crashed = left_behind(4_000_002);
    let run = replay(state.path(), CLEAN);
    assert!(run.stderr.contains("totals: 0 processed, 3 duplicate"), "{}", run.stderr);
    assert!(!crashed.exists(), "a run that writes no mail removes it too");
    let names: Vec<String> = outbox_files(state.path()).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|name| name.ends_with(".eml") && !name.starts_with('.')), "{names:?}");
}
