//! Helpers the workspace's tests share: the local AWS API, DynamoDB tables, and running a
//! function binary's commands as a user would.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A Lambda Runtime API on 127.0.0.1, for running a function binary as Lambda does.
pub mod runtime_api;

/// The workspace root (the folder with `events/` and `template.yaml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

/// The SDK configuration for the local AWS API, or `None` when `AWS_ENDPOINT_URL` is not set
/// (plain `cargo test`); `scripts/test` sets `SQS_KIT_TEST_REQUIRE_AWS`, so that there a
/// missing API fails the run instead of skipping.
pub async fn local_aws() -> Option<aws_config::SdkConfig> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        assert!(
            std::env::var_os("SQS_KIT_TEST_REQUIRE_AWS").is_none(),
            "AWS_ENDPOINT_URL is not set: run the tests through scripts/test, which starts moto"
        );
        eprintln!("skipping the AWS part: AWS_ENDPOINT_URL is not set (scripts/test starts moto)");
        return None;
    }
    Some(aws_config::load_from_env().await)
}

/// The URL of the local Redis server (`REDIS_URL`, with its credentials), or `None` when it is
/// not set (plain `cargo test`); `scripts/test` runs the tests under `scripts/with-redis` and sets
/// `SQS_KIT_TEST_REQUIRE_REDIS`, so that there a missing server fails the run instead of skipping.
pub fn local_redis() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("SQS_KIT_TEST_REQUIRE_REDIS").is_none(),
                "REDIS_URL is not set: run the tests through scripts/test, which starts redis-server"
            );
            eprintln!("skipping the Redis part: REDIS_URL is not set (scripts/with-redis starts a server)");
            None
        }
    }
}

/// A resource name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Creates an on-demand table with a string partition key and optional string sort key.
pub async fn create_table(config: &aws_config::SdkConfig, name: &str, partition_key: &str, sort_key: Option<&str>) {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let attribute =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap();
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap();
    let mut request = aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(partition_key))
        .key_schema(key(partition_key, KeyType::Hash));
    if let Some(sort_key) = sort_key {
        request = request.attribute_definitions(attribute(sort_key)).key_schema(key(sort_key, KeyType::Range));
    }
    request.send().await.expect("the local AWS API creates the table");
}

/// A fresh idempotency table (partition key `id`), as the template declares it.
pub async fn idempotency_table(config: &aws_config::SdkConfig) -> String {
    let table = unique_name("idempotency");
    create_table(config, &table, "id", None).await;
    table
}

/// A finished command: its exit status and output as text.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout as JSON, or a panic that shows what the command printed.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `binary args...` from the workspace root, outside Lambda, with `envs` set. The Lambda
/// variables of the developer's shell are dropped: a local mode warns about an inherited
/// `AWS_LAMBDA_FUNCTION_NAME`, which would add a line to what the tests read.
pub fn run<I, S>(binary: &Path, args: I, envs: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(binary);
    command.args(args).current_dir(workspace_root()).env_remove("AWS_LAMBDA_RUNTIME_API").env_remove("AWS_LAMBDA_FUNCTION_NAME");
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display())).into()
}

/// A function binary and where its state lives for one test: a fresh embedded store, or fresh
/// DynamoDB tables on the local AWS API. Every command gets the matching flags and variables.
pub struct Function {
    binary: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    _state: Option<tempfile::TempDir>,
}

/// A DynamoDB table a function needs: the variable that names it and its key attributes.
pub struct Table {
    pub variable: &'static str,
    pub partition_key: &'static str,
    pub sort_key: Option<&'static str>,
}

impl Function {
    /// `binary` on a fresh embedded state directory.
    pub fn embedded(binary: &str) -> Self {
        let state = tempfile::tempdir().expect("a temporary state directory");
        Function {
            binary: PathBuf::from(binary),
            args: vec!["--state".into(), state.path().display().to_string()],
            envs: Vec::new(),
            _state: Some(state),
        }
    }

    /// `binary` on DynamoDB: a fresh idempotency table and `tables`; `None` without a local
    /// AWS API (see [`local_aws`]).
    pub async fn dynamodb(binary: &str, tables: &[Table]) -> Option<Self> {
        let config = local_aws().await?;
        let mut envs = vec![("IDEMPOTENCY_TABLE".to_owned(), idempotency_table(&config).await)];
        for table in tables {
            let name = unique_name(&table.variable.to_lowercase().replace('_', "-"));
            create_table(&config, &name, table.partition_key, table.sort_key).await;
            envs.push((table.variable.to_owned(), name));
        }
        Some(Function { binary: PathBuf::from(binary), args: vec!["--store".into(), "dynamodb".into()], envs, _state: None })
    }

    /// The state directory of an embedded-store function.
    pub fn state_dir(&self) -> Option<&Path> {
        self._state.as_ref().map(|state| state.path())
    }

    /// The variables every command of this function gets (table names, for DynamoDB).
    pub fn envs(&self) -> &[(String, String)] {
        &self.envs
    }

    /// Runs `<binary> args... <store flags>` with `extra` variables added.
    pub fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut envs: Vec<(&str, &str)> = self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        envs.extend_from_slice(extra);
        let args = args.iter().copied().chain(self.args.iter().map(String::as_str));
        run(&self.binary, args, &envs)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// `replay FILE`, which must exit 0.
    pub fn replay(&self, file: &str) -> Run {
        let run = self.run(&["replay", file]);
        assert_eq!(run.code, Some(0), "replay {file} failed: {run:?}");
        run
    }
}

impl Run {
    /// The message ids in the `batchItemFailures` a replay printed.
    pub fn failures(&self) -> Vec<String> {
        self.json()["batchItemFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("no batchItemFailures in {self:?}"))
            .iter()
            .map(|failure| failure["itemIdentifier"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The message ids of an event file under the workspace root, in order.
pub fn message_ids(file: &str) -> Vec<String> {
    let event: serde_json::Value = serde_json::from_str(&read_event(file)).expect("event files are JSON");
    event["Records"].as_array().unwrap().iter().map(|r| r["messageId"].as_str().unwrap().to_owned()).collect()
}

/// The text of a file under the workspace root.
pub fn read_event(file: &str) -> String {
    std::fs::read_to_string(workspace_root().join(file)).unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
}

/// Verifies `sender` as an SES identity on the local AWS API, as SES requires before sending.
pub async fn verify_ses_identity(config: &aws_config::SdkConfig, sender: &str) {
    aws_sdk_sesv2::Client::new(config)
        .create_email_identity()
        .email_identity(sender)
        .send()
        .await
        .expect("the local AWS API verifies the sender");
}

/// Runs an async scenario `fn scenario(Function)` on both stores, as two tests named
/// `scenario::embedded` and `scenario::dynamodb` (the latter skipped without a local AWS API).
///
/// ```text
/// e2e::on_both_stores!(clean_batch_is_processed_once, embedded(), dynamodb());
/// ```
#[macro_export]
macro_rules! on_both_stores {
    ($scenario:ident, $embedded:expr, $dynamodb:expr) => {
        mod $scenario {
            #[tokio::test]
            async fn embedded() {
                super::$scenario($embedded).await;
            }

            #[tokio::test]
            async fn dynamodb() {
                if let Some(function) = $dynamodb.await {
                    super::$scenario(function).await;
                }
            }
        }
    };
}

/// A binary of the workspace (a function, or `sqs-kit`), built once per test process with the
/// profile of the running test, for tests outside the binary's own package.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "--bins", "-p", "sqs-kit-cli", "-p", "email", "-p", "shipping", "-p", "inventory", "-p", "points"]);
        // As the test build resolved them (every test dev-depends on fault injection), so that
        // cargo reuses the binaries it built for the tests instead of building them again.
        build.args(["--features", "sqs-kit/fault-injection"]);
        // The binaries must come from this test's own profile folder, built now, not left over.
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.current_dir(workspace_root()).status().expect("cargo runs");
        assert!(status.success(), "building the workspace's binaries failed");
    });
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent().and_then(Path::parent).expect("a target directory").join(name)
}

/// An example of a workspace package, built by cargo with the profile of the running test (and
/// the features the test build resolved), for the tests that run it.
pub fn example(package: &str, name: &str) -> PathBuf {
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "-p", package, "--example", name]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build.current_dir(workspace_root()).status().expect("cargo runs");
    assert!(status.success(), "building the example {name} of {package} failed");
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent().and_then(Path::parent).expect("a target directory").join("examples").join(name)
}

/// Messages in a queue: (visible, in flight), as SQS counts them.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (usize, usize) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("the local AWS API answers")
        .attributes
        .unwrap_or_default();
    let count = |name| attributes.get(&name).map(|n| n.parse().expect("SQS counts in whole numbers")).unwrap_or_default();
    (count(QueueAttributeName::ApproximateNumberOfMessages), count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// Messages in a queue, visible or in flight.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    let (visible, in_flight) = queue_counts(sqs, url).await;
    visible + in_flight
}

/// What `sqs-kit local up` created from template.yaml, and how to run a function against it.
pub struct Topology {
    pub json: serde_json::Value,
    /// Variables every function command gets on top of its template environment.
    pub extra_env: Vec<(String, String)>,
}

impl Topology {
    /// `sqs-kit local up` under a fresh stack name, with queue settings for tests.
    pub fn local_up(prefix: &str, visibility_timeout_s: u64, max_receive_count: u64) -> Self {
        let stack = unique_name(prefix);
        let up = run(
            &binary("sqs-kit"),
            [
                "local",
                "up",
                "--stack-name",
                &stack,
                "--visibility-timeout",
                &visibility_timeout_s.to_string(),
                "--max-receive-count",
                &max_receive_count.to_string(),
            ],
            &[],
        );
        assert_eq!(up.code, Some(0), "local up failed: {up:?}");
        Topology { json: up.json(), extra_env: Vec::new() }
    }

    /// The stack name `local up` was given.
    pub fn stack(&self) -> &str {
        self.json["stack"].as_str().expect("local up names its stack")
    }

    /// The function's environment as the template declares it, plus [`Topology::extra_env`].
    pub fn environment(&self, function: &str) -> Vec<(String, String)> {
        let declared = self.json["functions"][function]["environment"].as_object().expect("a function of the template");
        let mut envs: Vec<(String, String)> =
            declared.iter().map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned())).collect();
        envs.extend(self.extra_env.iter().cloned());
        envs
    }

    pub fn binary(&self, function: &str) -> PathBuf {
        binary(self.json["functions"][function]["binary"].as_str().expect("the function's binary"))
    }

    pub fn queue_url(&self, function: &str) -> &str {
        self.json["functions"][function]["queueUrl"].as_str().expect("the function's queue")
    }

    /// A function's state command on DynamoDB, which must succeed.
    pub fn state(&self, function: &str, args: &[&str]) -> Run {
        let envs = self.environment(function);
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = args.iter().copied().chain(["--store", "dynamodb"]).collect();
        let result = run(&self.binary(function), &args, &envs);
        assert_eq!(result.code, Some(0), "{function} {args:?}: {result:?}");
        result
    }

    /// A `poll` of the function's queue on DynamoDB, not yet started.
    pub fn poller(&self, function: &str, idle_exit_s: u64) -> Command {
        let mut command = Command::new(self.binary(function));
        command
            .args(["poll", "--queue-url", self.queue_url(function), "--idle-exit", &idle_exit_s.to_string(), "--store", "dynamodb"])
            .envs(self.environment(function))
            .current_dir(workspace_root());
        command
    }
}

/// An event file under the workspace root with its records in reverse order, written to a
/// temporary file: the order a redrive or a retry can deliver them in.
pub fn reversed_event(file: &str) -> tempfile::NamedTempFile {
    let mut event: serde_json::Value = serde_json::from_str(&read_event(file)).expect("event files are JSON");
    event["Records"].as_array_mut().expect("an SQS event has Records").reverse();
    let reversed = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(reversed.path(), event.to_string()).expect("the temporary file is writable");
    reversed
}

/// An SQS event of `bodies` (messages `message-0`, `message-1`, ...) from the standard queue
/// `queue_arn`, written to a temporary file for `replay`.
pub fn event_file(bodies: &[serde_json::Value], queue_arn: &str) -> tempfile::NamedTempFile {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(n, body)| {
            serde_json::json!({
                "messageId": format!("message-{n}"), "receiptHandle": format!("handle-{n}"), "body": body.to_string(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"}, "messageAttributes": {},
                "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "ap-northeast-2",
            })
        })
        .collect();
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), serde_json::json!({"Records": records}).to_string()).expect("the temporary file is writable");
    file
}

/// The SKUs (and unit prices) of generated orders.
pub const SKUS: [(&str, i64); 3] = [("SKU-KEYBOARD", 89_000), ("SKU-MOUSE", 25_000), ("SKU-PAD", 12_000)];

/// A valid `OrderPlaced` event whose items and quantities vary with `n`, with a total that
/// matches them.
pub fn generated_order(n: usize, event_id: &str, order_id: &str, customer_id: &str) -> serde_json::Value {
    let items: Vec<serde_json::Value> = (0..1 + n % 3)
        .map(|i| {
            let (sku, price) = SKUS[(n + i) % SKUS.len()];
            serde_json::json!({"sku": sku, "quantity": 1 + (n + i) % 2, "unitPrice": price})
        })
        .collect();
    let total: i64 = items.iter().map(|i| i["quantity"].as_i64().unwrap() * i["unitPrice"].as_i64().unwrap()).sum();
    serde_json::json!({
        "eventId": event_id, "eventType": "OrderPlaced", "occurredAt": "2026-11-24T09:00:00Z",
        "orderId": order_id, "customerId": customer_id,
        "customerEmail": format!("{}@example.com", customer_id.to_lowercase()),
        "items": items, "totalAmount": total, "currency": "KRW",
        "shippingAddress": {"name": "Minji Kim", "line1": "12 Teheran-ro", "city": "Seoul", "postalCode": "06236", "country": "KR"}
    })
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("the local AWS API answers")
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .expect("every queue has an ARN")
}
