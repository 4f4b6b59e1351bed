//! The examples, built by cargo and run as a user would: the runner-based ones through `replay`
//! of their sample events on a fresh store, `lambda_runtime_layer` against a Lambda Runtime API
//! served on 127.0.0.1.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use e2e::runtime_api::{Reply, RuntimeApi};
use e2e::{Function, Run, Table};
use serde_json::{json, Value};

const SIGNUPS: &str = "events/examples/signups.json";
const PAYMENTS: &str = "events/examples/payments.json";
const DEPOSITS: &str = "events/examples/deposits.json";
const FIFO: &str = "events/examples/fifo-two-groups.json";
const INVOICES: &str = "events/examples/invoices.json";

/// The example's binary, built now.
fn example(name: &str) -> String {
    e2e::example("sqs-kit", name).display().to_string()
}

/// The example on a fresh embedded state directory.
fn embedded(name: &str) -> Function {
    Function::embedded(&example(name))
}

/// The example on fresh DynamoDB tables of the local AWS API (`None` without one).
async fn dynamodb(name: &str, tables: &[Table]) -> Option<Function> {
    Function::dynamodb(&example(name), tables).await
}

/// Checks the replay summary's totals line, all but its duration.
fn assert_totals(run: &Run, expected: &str) {
    let totals = run.stderr.lines().find(|line| line.starts_with("totals: ")).unwrap_or_else(|| panic!("no totals line in {run:?}"));
    assert!(totals.starts_with(&format!("totals: {expected} in ")), "expected totals: {expected}, got: {totals}");
}

#[test]
fn minimal_runs_every_record_on_every_replay() {
    let signups = e2e::message_ids(SIGNUPS);
    let function = embedded("minimal");
    // No idempotency, so no store: the second replay does the work again.
    for _ in 0..2 {
        let run = function.replay(SIGNUPS);
        assert_eq!(run.failures(), [signups[2].as_str()], "the signup without a plan: {run:?}");
        assert_totals(&run, "2 processed, 0 duplicate, 1 failed (0 transient, 1 permanent), 0 not attempted");
        // The second signup came through SNS: the handler saw the message, not the envelope.
        assert!(run.stderr.contains(&format!(r#"{}  processed -> {{"plan":"team","userId":"user-2"}}"#, signups[1])), "{run:?}");
    }
}

/// The sample's two copies of `pay-1001` are captured once, and a second replay captures nothing.
async fn payments_are_captured_once(function: Function) {
    let zero_amount = e2e::message_ids(PAYMENTS).remove(3);
    let first = function.replay(PAYMENTS);
    assert_eq!(first.failures(), [zero_amount.as_str()]);
    assert_totals(&first, "2 processed, 1 duplicate, 1 failed (0 transient, 1 permanent), 0 not attempted");

    let second = function.replay(PAYMENTS);
    assert_eq!(second.failures(), [zero_amount.as_str()], "a permanent failure leaves no record behind to skip it");
    assert_totals(&second, "0 processed, 3 duplicate, 1 failed (0 transient, 1 permanent), 0 not attempted");
    assert!(
        second.stderr.contains(r#"duplicate (skipped) -> {"amount":1250,"currency":"EUR","paymentId":"pay-1001"}"#),
        "a duplicate reports the output the capture stored: {second:?}"
    );
}

e2e::on_both_stores!(payments_are_captured_once, super::embedded("dynamodb_idempotent"), super::dynamodb("dynamodb_idempotent", &[]));

const BALANCES: Table = Table { variable: "BALANCES_TABLE", partition_key: "account", sort_key: None };

/// Each deposit is credited once: the redelivered `dep-1` in the sample and the whole second
/// replay are duplicates, and the balances say so.
async fn deposits_are_credited_once(function: Function) {
    let first = function.replay(DEPOSITS);
    assert_eq!(first.failures(), Vec::<String>::new());
    assert_totals(&first, "3 processed, 1 duplicate, 0 failed (0 transient, 0 permanent), 0 not attempted");
    let second = function.replay(DEPOSITS);
    assert_totals(&second, "0 processed, 4 duplicate, 0 failed (0 transient, 0 permanent), 0 not attempted");

    for (account, balance) in [("acc-1", 7500), ("acc-2", 1000), ("acc-3", 0)] {
        let shown = function.run(&["balance", account]);
        assert_eq!(shown.code, Some(0), "{shown:?}");
        assert_eq!(shown.json(), json!({"account": account, "balance": balance}));
    }
}

e2e::on_both_stores!(deposits_are_credited_once, super::embedded("transactional"), super::dynamodb("transactional", &[super::BALANCES]));

#[test]
fn transactional_refuses_a_store_it_has_no_adapters_for() {
    let run = e2e::run(e2e::example("sqs-kit", "transactional").as_path(), ["replay", DEPOSITS, "--store", "memory"], &[]);
    assert_eq!(run.code, Some(2), "a store the function cannot use is bad input: {run:?}");
    assert!(
        run.stderr.contains("transactional keeps its state in DynamoDB or the embedded store and has no adapters for the memory store"),
        "{run:?}"
    );
    assert_eq!(run.stdout, "", "nothing was processed");
}

#[test]
fn transactional_mode_on_redis_is_refused_at_start_before_any_record() {
    // Only the URL's shape matters: the refusal comes before anything is sent.
    let run = e2e::run(
        e2e::example("sqs-kit", "transactional").as_path(),
        ["replay", DEPOSITS, "--store", "redis"],
        &[("REDIS_URL", "redis://127.0.0.1:9")],
    );
    assert_eq!(run.code, Some(2), "a store that cannot serve the configuration is bad input: {run:?}");
    assert!(
        run.stderr.contains("transactional idempotency needs a store that commits the record with the business writes, and the Redis store at 127.0.0.1:9 cannot"),
        "{run:?}"
    );
    assert_eq!(run.stdout, "", "nothing was processed");
}

#[test]
fn fifo_holds_back_the_rest_of_the_failed_group_only() {
    let run = embedded("fifo").replay(FIFO);
    // acc-A's debit overdraws; acc-A's later credit waits for it. acc-B's debit, after the
    // failure in the batch, runs.
    assert_eq!(run.failures(), ["m-a2", "m-a3"]);
    assert!(run.stderr.contains("m-a3  not attempted: message m-a2 of group acc-A failed before it"), "{run:?}");
    assert!(run.stderr.contains(r#"m-b2  processed -> {"account":"acc-B","balance":100}"#), "{run:?}");
    assert_totals(&run, "3 processed, 0 duplicate, 1 failed (0 transient, 1 permanent), 1 not attempted");
}

#[test]
fn lambda_runtime_layer_serves_lambda_and_skips_what_a_warm_instance_completed() {
    let binary = e2e::example("sqs-kit", "lambda_runtime_layer");
    let event = e2e::read_event(INVOICES);
    let truncated = e2e::message_ids(INVOICES).remove(2);
    let api = RuntimeApi::function("invoices").serve(vec![event.clone(), event]);
    let mut function = api.command(binary).stdout(Stdio::piped()).spawn().unwrap();
    let replies: Vec<Reply> = (0..2).map(|_| api.reply(Duration::from_secs(60))).collect::<Result<_, _>>().unwrap();
    function.kill().unwrap();
    let mut logs = String::new();
    function.stdout.take().unwrap().read_to_string(&mut logs).unwrap();
    function.wait().unwrap();

    for (index, Reply { request_id, kind, body }) in replies.iter().enumerate() {
        assert_eq!((request_id.as_str(), *kind), (format!("req-{index}").as_str(), "response"), "{body}");
        let response: Value = serde_json::from_str(body).unwrap();
        assert_eq!(response, json!({"batchItemFailures": [{"itemIdentifier": truncated}]}), "invocation {index}");
    }

    let lines: Vec<Value> = logs.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let fields = |message: &str, names: &[&str]| -> Vec<String> {
        let logged = lines.iter().filter(|line| line["fields"]["message"] == message);
        logged.map(|line| names.iter().map(|name| line["fields"][name].to_string()).collect::<Vec<_>>().join(" ")).collect()
    };
    // The second invocation's invoices were completed by the first: the handler ran once each
    // (the two records of a batch run side by side, in either order).
    let mut sent = fields("invoice sent", &["invoice_id"]);
    sent.sort();
    assert_eq!(sent, [r#""inv-2001""#, r#""inv-2002""#], "{logs}");
    // The example's own layer saw both invocations.
    assert_eq!(fields("batch answered", &["request_id", "records", "failed"]), [r#""req-0" 3 1"#, r#""req-1" 3 1"#], "{logs}");
}
