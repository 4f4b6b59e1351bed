//! `sqs-kit key show|evict` on both stores, and `replay --store dynamodb`.

mod common;

use std::process::{Command, Output};

const EVENT_ID: &str = "8c1f6d0e-5d3a-4c55-9a57-1f2b8f0c4a11";



fn sqs_kit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sqs-kit")).args(args).current_dir(e2e::workspace_root()).output().unwrap()
}

fn replay(args: &[&str]) -> Output {
    Command::new(common::example_binary())
        .args(["replay", "events/example/validate-orders.json"])
        .args(args)
        .current_dir(e2e::workspace_root())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn show_and_evict_on_the_embedded_store_force_reprocessing() {
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap();
    replay(&["--state", state_arg]);

    let shown = sqs_kit(&["key", "show", "--function", "validate_orders", EVENT_ID, "--state", state_arg]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let record: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(record["id"], format!("validate_orders#{EVENT_ID}"));
    assert_eq!(record["status"], "COMPLETED");
    assert_eq!(record["result"], serde_json::json!({"orderId": "ORD-1001", "items": 1}));

    let evicted = sqs_kit(&["key", "evict", &format!("validate_orders#{EVENT_ID}"), "--state", state_arg]);
    assert_eq!(text(&evicted.stdout).trim(), format!(r#"{{"evicted":true,"id":"validate_orders#{EVENT_ID}"}}"#));

    let missing = sqs_kit(&["key", "show", "--function", "validate_orders", EVENT_ID, "--state", state_arg]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no idempotency record for validate_orders#"));

    let again = text(&replay(&["--state", state_arg]).stderr);
    assert!(again.contains("totals: 1 processed, 1 duplicate"), "only the evicted key runs again: {again}");
}

#[tokio::test]
async fn replay_and_key_tooling_on_dynamodb() {
    let Some(config) = common::local_aws().await else { return };
    let table = common::unique_name("idempotency");
    common::create_table(&config, &table, "id", None).await;
    let with_table = |command: &mut Command| {
        command.env("IDEMPOTENCY_TABLE", &table);
    };

    let mut replay = Command::new(common::example_binary());
    replay.args(["replay", "events/example/validate-orders.json", "--store", "dynamodb"]).current_dir(e2e::workspace_root());
    with_table(&mut replay);
    let first = replay.output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let second = text(&replay.output().unwrap().stderr);
    assert!(second.contains("totals: 0 processed, 2 duplicate"), "{second}");

    let mut show = Command::new(env!("CARGO_BIN_EXE_sqs-kit"));
    show.args(["key", "show", "--store", "dynamodb", "--function", "validate_orders", EVENT_ID]);
    with_table(&mut show);
    let shown = show.output().unwrap();
    let record: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("the record as JSON");
    assert_eq!(record["status"], "COMPLETED");

    let mut evict = Command::new(env!("CARGO_BIN_EXE_sqs-kit"));
    evict.args(["key", "evict", "--store", "dynamodb", &format!("validate_orders#{EVENT_ID}")]);
    with_table(&mut evict);
    assert!(text(&evict.output().unwrap().stdout).contains(r#""evicted":true"#));
}

#[test]
fn dynamodb_without_a_table_name_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_sqs-kit"))
        .args(["key", "show", "--store", "dynamodb", "x#y"])
        .env_remove("IDEMPOTENCY_TABLE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(text(&output.stderr).trim(), "error: the DynamoDB store needs IDEMPOTENCY_TABLE set to the name of the idempotency table");
}
