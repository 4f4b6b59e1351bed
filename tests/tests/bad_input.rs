//! Bad input to every command of every binary: exit 2 for usage and input errors, 1 for runtime
//! failures (an unreachable endpoint), one clear line on stderr, nothing on stdout, and nothing
//! partial written.

use std::path::Path;

use e2e::{binary, run, Run};

const FUNCTIONS: [&str; 4] = ["email", "shipping", "inventory", "points"];
/// An endpoint where nothing listens: every AWS call fails to connect.
/// One attempt per call: the SDK's retries (with their backoff) against a closed port would only
/// make each command take longer to fail the same way.
const UNREACHABLE: [(&str, &str); 7] = [
    ("AWS_MAX_ATTEMPTS", "1"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9"),
    ("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9"),
    ("AWS_ACCESS_KEY_ID", "x"),
    ("AWS_SECRET_ACCESS_KEY", "x"),
    ("AWS_REGION", "us-east-1"),
];
const TABLES: [(&str, &str); 5] = [
    ("IDEMPOTENCY_TABLE", "t"),
    ("STOCK_TABLE", "t"),
    ("SHIPMENTS_TABLE", "t"),
    ("POINTS_TABLE", "t"),
    ("EMAIL_SENDER", "orders@example.com"),
];

struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files: [(&str, String); 6] = [
            ("empty.json", String::new()),
            ("bodies.json", serde_json::json!([{"n": 1}]).to_string()),
            ("invalid.json", "{\"Records\": [".into()),
            ("shape.json", r#"{"orders": []}"#.into()),
            ("oversized.json", serde_json::json!({"Records": [{"messageId": "m", "body": "x".repeat(1024 * 1024 + 1)}]}).to_string()),
            ("bodies-oversized.json", serde_json::json!(["x".repeat(300 * 1024)]).to_string()),
        ];
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        Inputs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn state(&self) -> String {
        self.path("state")
    }
}

/// Checks the contract and returns the one stderr line.
fn assert_refused(what: &str, run: &Run, code: i32, expected: &str) {
    assert_eq!(run.code, Some(code), "{what}: {run:?}");
    assert!(run.stdout.is_empty(), "{what}: nothing on stdout, got {:?}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line on stderr, got {:?}", run.stderr);
    assert!(lines[0].contains(expected), "{what}: expected {expected:?} in {:?}", lines[0]);
}

#[test]
fn replay_refuses_bad_events_and_writes_no_state() {
    let inputs = Inputs::new();
    for function in FUNCTIONS {
        let cases = [
            ("missing", inputs.path("missing.json"), "cannot read"),
            ("empty", inputs.path("empty.json"), "is empty"),
            ("invalid", inputs.path("invalid.json"), "is not valid JSON: EOF while parsing a list at line 1 column 13"),
            ("wrong shape", inputs.path("shape.json"), "is not a Lambda SQS event"),
            ("oversized", inputs.path("oversized.json"), "SQS delivers at most 1048576 (1 MiB)"),
        ];
        for (what, file, expected) in cases {
            let result = run(&binary(function), ["replay", &file, "--state", &inputs.state()], &[]);
            assert_refused(&format!("{function} replay {what}"), &result, 2, expected);
            assert!(!Path::new(&inputs.state()).exists(), "{function} replay {what} wrote state");
        }
        let result = run(&binary(function), ["replay", "--no-such-flag"], &[]);
        assert_refused(&format!("{function} replay --no-such-flag"), &result, 2, "unexpected argument '--no-such-flag'");
    }
}

#[test]
fn unreachable_endpoints_are_runtime_errors() {
    let mut envs: Vec<(&str, &str)> = UNREACHABLE.to_vec();
    envs.extend(TABLES);
    let inputs = Inputs::new();
    let event = "events/inventory/clean-batch.json";
    let bodies = inputs.path("bodies.json");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("inventory", vec!["stock", "--store", "dynamodb"]),
        ("inventory", vec!["seed", "events/inventory/stock.json", "--store", "dynamodb"]),
        ("points", vec!["balance", "CUST-42", "--store", "dynamodb"]),
        ("shipping", vec!["status", "ORD-1001", "--store", "dynamodb"]),
        ("email", vec!["outbox", "--store", "dynamodb"]),
        ("inventory", vec!["poll", "--queue-url", "http://127.0.0.1:9/123456789012/q", "--state"]),
        ("sqs-kit", vec!["key", "show", "--store", "dynamodb", "email#x"]),
        ("sqs-kit", vec!["dlq", "peek", "--queue-url", "http://127.0.0.1:9/123456789012/q"]),
        ("sqs-kit", vec!["publish", "--queue-url", "http://127.0.0.1:9/123456789012/q", "--file", &bodies]),
    ];
    for (name, mut args) in cases {
        let state = inputs.state();
        if args.last() == Some(&"--state") {
            args.push(&state);
        }
        let result = run(&binary(name), &args, &envs);
        assert_refused(&format!("{name} {args:?}"), &result, 1, "error:");
    }
    // A replay whose store is unreachable fails every record (transient), and says so.
    let result = run(&binary("inventory"), ["replay", event, "--store", "dynamodb"], &envs);
    assert_eq!(result.code, Some(0), "{result:?}");
    assert!(result.stderr.contains("the idempotency store (DynamoDB table t) failed to"), "{}", result.stderr);
}

#[test]
fn operator_commands_refuse_bad_input() {
    let inputs = Inputs::new();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["publish".into(), "--queue-url".into(), "http://127.0.0.1:9/q".into(), "--file".into(), inputs.path("missing.json")],
            "cannot read",
        ),
        (
            vec!["publish".into(), "--queue-url".into(), "http://127.0.0.1:9/q".into(), "--file".into(), inputs.path("invalid.json")],
            "is not valid JSON",
        ),
        (
            vec![
                "publish".into(),
                "--queue-url".into(),
                "http://127.0.0.1:9/q".into(),
                "--file".into(),
                inputs.path("bodies-oversized.json"),
            ],
            "262144",
        ),
        (vec!["event".into(), inputs.path("empty.json")], "is empty"),
        (vec!["event".into(), inputs.path("shape.json")], "expected shape"),
        (vec!["key".into(), "show".into(), "--bogus".into()], "unexpected argument '--bogus'"),
        (
            vec!["publish".into(), "--dry-run".into(), "--file".into(), inputs.path("bodies.json"), "--group-by".into(), "n".into()],
            "invalid value 'n' for '--group-by <POINTER>'",
        ),
    ];
    for (args, expected) in cases {
        let result = run(&binary("sqs-kit"), &args, &UNREACHABLE);
        assert_refused(&format!("sqs-kit {args:?}"), &result, 2, expected);
    }
    let seed = run(&binary("inventory"), ["seed", &inputs.path("shape.json"), "--state", &inputs.state()], &[]);
    assert_refused("inventory seed wrong shape", &seed, 2, "does not have the expected shape");
}

#[test]
fn read_only_commands_refuse_a_state_directory_that_does_not_exist() {
    let inputs = Inputs::new();
    let state = inputs.state();
    let cases: [(&str, &[&str]); 6] = [
        ("inventory", &["stock"]),
        ("inventory", &["stock", "SKU-PAD"]),
        ("points", &["balance", "CUST-42"]),
        ("shipping", &["status", "ORD-1001"]),
        ("shipping", &["ship", "ORD-1001"]),
        ("email", &["outbox"]),
    ];
    for (name, args) in cases {
        let args: Vec<&str> = args.iter().copied().chain(["--state", &state]).collect();
        let result = run(&binary(name), &args, &[]);
        assert_refused(&format!("{name} {args:?}"), &result, 2, &format!("the state directory {state} does not exist"));
        assert!(!Path::new(&state).exists(), "{name} {args:?} created the state directory");
    }
}

#[test]
fn numbers_and_settings_of_the_run_modes_are_checked_before_anything_runs() {
    let inputs = Inputs::new();
    let state = inputs.state();
    let event = "events/inventory/clean-batch.json";
    let queue = "http://127.0.0.1:9/123456789012/q";
    let flags: Vec<(Vec<&str>, &str)> = vec![
        (vec!["replay", event, "--remaining-ms", "0"], "0 is not in 1..=900000"),
        (vec!["replay", event, "--remaining-ms", "900001"], "900001 is not in 1..=900000"),
        (vec!["replay", event, "--remaining-ms", "18446744073709551615"], "is not in 1..=900000"),
        (vec!["replay", event, "--function-name", "a#b"], "1 to 64 letters, digits, hyphens or underscores"),
        (vec!["poll", "--queue-url", queue, "--batch-size", "0"], "0 is not in 1..=10000"),
        (vec!["poll", "--queue-url", queue, "--batch-size", "10001"], "10001 is not in 1..=10000"),
        (vec!["poll", "--queue-url", queue, "--batch-size", "11"], "needs a --batching-window of at least 1 s"),
        (vec!["poll", "--queue-url", queue, "--batch-size", "11", "--batching-window", "0"], "needs a --batching-window"),
        (vec!["poll", "--queue-url", queue, "--batching-window", "301"], "301 is not in 0..=300"),
        (vec!["poll", "--queue-url", queue, "--max-batches", "0"], "0 is not in 1..=1000000"),
        (vec!["poll", "--queue-url", queue, "--idle-exit", "0"], "0 is not in 1..=86400"),
        (vec!["poll", "--queue-url", queue, "--idle-exit", "86401"], "86401 is not in 1..=86400"),
        (vec!["poll", "--queue-url", queue, "--concurrency", "0"], "0 is not in 1..=1000"),
        (vec!["poll", "--queue-url", queue, "--concurrency", "1001"], "1001 is not in 1..=1000"),
        (vec!["poll", "--queue-url", queue, "--function-name", ""], "1 to 64 letters"),
    ];
    for (args, expected) in flags {
        let args: Vec<&str> = args.into_iter().chain(["--state", &state]).collect();
        let result = run(&binary("inventory"), &args, &UNREACHABLE);
        assert_refused(&format!("inventory {args:?}"), &result, 2, expected);
        assert!(!Path::new(&state).exists(), "inventory {args:?} wrote state");
    }
    let settings = [
        ("SQS_KIT_MAX_CONCURRENCY", "0", "SQS_KIT_MAX_CONCURRENCY must be a whole number from 1 to 1000, not \"0\""),
        ("SQS_KIT_MAX_CONCURRENCY", "1001", "from 1 to 1000, not \"1001\""),
        ("SQS_KIT_MAX_CONCURRENCY", "ten", "from 1 to 1000, not \"ten\""),
        ("SQS_KIT_METRICS", "false", "SQS_KIT_METRICS must be on or off, not \"false\""),
        ("SQS_KIT_METRICS_NAMESPACE", "AWS/Lambda", "is not a CloudWatch namespace"),
        ("SQS_KIT_METRICS_NAMESPACE", "shop\norders", "is not a CloudWatch namespace"),
        ("SQS_KIT_METRICS_DIMENSION", "RecordsProcessed", "is the name of a field of the metric line"),
        ("SQS_KIT_METRICS_DIMENSION", ":Function", "is not a CloudWatch dimension name"),
        ("SQS_KIT_CACHE_SECONDS", "3601", "SQS_KIT_CACHE_SECONDS must be a whole number of seconds from 0 to 3600, not \"3601\""),
        ("SQS_KIT_CACHE_SECONDS", "a minute", "SQS_KIT_CACHE_SECONDS"),
    ];
    for (variable, value, expected) in settings {
        for args in [vec!["replay", event, "--state", &state], vec!["poll", "--queue-url", queue, "--state", &state]] {
            let mut envs = UNREACHABLE.to_vec();
            envs.push((variable, value));
            let result = run(&binary("inventory"), &args, &envs);
            assert_refused(&format!("{variable}={value:?} inventory {args:?}"), &result, 2, expected);
            assert!(!Path::new(&state).exists(), "{variable}={value:?} inventory {args:?} wrote state");
        }
    }
    // The bounds themselves are accepted.
    for remaining in ["1", "900000"] {
        let result = run(&binary("inventory"), ["replay", event, "--remaining-ms", remaining, "--state", &state], &[]);
        assert_eq!(result.code, Some(0), "--remaining-ms {remaining}: {result:?}");
    }
}
