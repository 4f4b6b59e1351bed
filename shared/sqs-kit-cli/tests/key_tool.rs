//! `sqs-kit key show|evict` on every store, and `replay --store dynamodb|redis`.

use std::process::{Command, Output};

const EVENT_ID: &str = "8c1f6d0e-5d3a-4c55-9a57-1f2b8f0c4a11";

fn sqs_kit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sqs-kit")).args(args).current_dir(e2e::workspace_root()).output().unwrap()
}

fn replay(args: &[&str]) -> Output {
    Command::new(e2e::example("sqs-kit", "validate_orders"))
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
    assert_eq!(text(&evicted.stdout).trim(), format!(r#"{{"evicted":true,"id":"validate_orders#{EVENT_ID}","warm_skip_seconds":60}}"#));

    let missing = sqs_kit(&["key", "show", "--function", "validate_orders", EVENT_ID, "--state", state_arg]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no idempotency record for validate_orders#"));

    let again = text(&replay(&["--state", state_arg]).stderr);
    assert!(again.contains("totals: 1 processed, 1 duplicate"), "only the evicted key runs again: {again}");
}

#[tokio::test]
async fn replay_and_key_tooling_on_dynamodb() {
    let Some(config) = e2e::local_aws().await else { return };
    let table = e2e::unique_name("idempotency");
    e2e::create_table(&config, &table, "id", None).await;
    let with_table = |command: &mut Command| {
        command.env("IDEMPOTENCY_TABLE", &table);
    };

    let mut replay = Command::new(e2e::example("sqs-kit", "validate_orders"));
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

#[test]
fn evict_says_how_long_running_processes_may_still_skip_the_key() {
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap();
    let evict = |extra: &[&str], env: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sqs-kit"));
        command.args(["key", "evict", "fn#evt-1", "--state", state_arg]).args(extra).env_remove("SQS_KIT_CACHE_SECONDS");
        if let Some(seconds) = env {
            command.env("SQS_KIT_CACHE_SECONDS", seconds);
        }
        command.output().unwrap()
    };
    let warm_skip = |output: &Output| {
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["warm_skip_seconds"].clone()
    };

    let default = evict(&[], None);
    assert_eq!(warm_skip(&default), 60, "the default cache lifetime");
    assert!(text(&default.stderr).contains("may still skip it for up to 60 s"), "{}", text(&default.stderr));
    assert_eq!(warm_skip(&evict(&[], Some("15"))), 15, "the lifetime the functions run with, from the environment");
    assert_eq!(warm_skip(&evict(&["--cache-seconds", "5"], Some("15"))), 5, "the lifetime the operator passes");
    let off = evict(&["--cache-seconds", "0"], None);
    assert_eq!(warm_skip(&off), 0);
    assert!(!text(&off.stderr).contains("may still skip"), "{}", text(&off.stderr));

    for (extra, env) in [(&["--cache-seconds", "3601"][..], None), (&[][..], Some("forever"))] {
        let refused = evict(extra, env);
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
        assert!(text(&refused.stderr).contains("0 to 3600"), "{}", text(&refused.stderr));
        assert!(refused.stdout.is_empty());
    }
}

#[test]
fn an_empty_key_or_function_is_a_usage_error() {
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap();
    for args in [&["show", ""][..], &["evict", ""], &["show", "--function", "validate_orders", ""], &["show", "--function", "", "k"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_sqs-kit")).arg("key").args(args).args(["--state", state_arg]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains("a value is required"), "{args:?}: {}", text(&output.stderr));
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn show_and_evict_on_a_state_directory_that_does_not_exist_say_so_and_create_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("typo");
    let missing_arg = missing.to_str().unwrap();
    for command in ["show", "evict"] {
        let run = sqs_kit(&["key", command, "validate_orders#k", "--state", missing_arg]);
        assert_eq!(run.status.code(), Some(2), "{command}: {}", text(&run.stderr));
        let stderr = text(&run.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("the state directory {missing_arg} does not exist")), "{stderr}");
        assert!(run.stdout.is_empty());
        assert!(!missing.exists(), "{command} created the state directory");
    }
}

/// A command with `REDIS_URL` set to `url`.
fn with_redis(mut command: Command, url: &str) -> Output {
    command.current_dir(e2e::workspace_root()).env_remove("AWS_LAMBDA_RUNTIME_API").env("REDIS_URL", url).output().unwrap()
}

#[tokio::test]
async fn replay_and_key_tooling_on_redis_over_tls_with_auth() {
    let Some(url) = e2e::local_redis() else { return };
    // A function name of this test's own keeps its keys apart on the shared server.
    let function = e2e::unique_name("validate");
    let replay = || {
        let mut command = Command::new(e2e::example("sqs-kit", "validate_orders"));
        command.args(["replay", "events/example/validate-orders.json", "--store", "redis", "--function-name", &function]);
        with_redis(command, &url)
    };
    let first = replay();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(text(&first.stderr).contains("totals: 2 processed"), "{}", text(&first.stderr));
    let second = text(&replay().stderr);
    assert!(second.contains("totals: 0 processed, 2 duplicate"), "the second replay finds every valid order done: {second}");

    // The record carries a TTL on the server: it expires with the record.
    let id = format!("{function}#{EVENT_ID}");
    let mut connection = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL").arg(format!("idempotency:{id}")).query_async(&mut connection).await.unwrap();
    assert!(ttl_ms > 0, "the key has no expiry (PTTL {ttl_ms})");

    // The operator's commands, over TLS (the server's certificate is signed by the test CA).
    let tls_url = std::env::var("SQS_KIT_TEST_REDIS_TLS_URL").expect("scripts/with-redis sets the TLS URL");
    let ca = std::env::var("SQS_KIT_TEST_REDIS_CA").expect("scripts/with-redis sets the CA file");
    let tls = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sqs-kit"));
        command.args(args).env("SSL_CERT_FILE", &ca);
        with_redis(command, &tls_url)
    };
    let shown = tls(&["key", "show", "--store", "redis", &id]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let record: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("the record as JSON");
    assert_eq!(record["status"], "COMPLETED");
    assert_eq!(record["result"], serde_json::json!({"orderId": "ORD-1001", "items": 1}));
    assert!(record["expiration"].as_i64().unwrap() * 1000 >= ttl_ms, "{record}");

    let evicted = tls(&["key", "evict", "--store", "redis", &id]);
    assert!(text(&evicted.stdout).contains(r#""evicted":true"#), "{}", text(&evicted.stderr));
    let again = text(&replay().stderr);
    assert!(again.contains("totals: 1 processed, 1 duplicate"), "only the evicted key runs again: {again}");
}

#[test]
fn redis_with_a_wrong_password_or_no_server_is_an_error_naming_the_store_without_the_password() {
    let Some(url) = e2e::local_redis() else { return };
    let (_, host) = url.rsplit_once('@').expect("the test server's URL has credentials");
    let wrong = format!("redis://sqs-kit:not-the-password@{host}");
    let mut show = Command::new(env!("CARGO_BIN_EXE_sqs-kit"));
    show.args(["key", "show", "--store", "redis", "f#k"]);
    let output = with_redis(show, &wrong);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("the idempotency store (Redis store at {host}) failed to read")), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "the password is not printed: {stderr}");

    let mut show = Command::new(env!("CARGO_BIN_EXE_sqs-kit"));
    show.args(["key", "show", "--store", "redis", "f#k"]);
    let output = with_redis(show, "http://127.0.0.1:9");
    assert_eq!(output.status.code(), Some(2), "a URL that is not Redis's is bad input: {}", text(&output.stderr));
    assert!(text(&output.stderr).contains("REDIS_URL is not a usable Redis URL"), "{}", text(&output.stderr));
}
