//! Helpers the workspace's tests share: the local AWS API, DynamoDB tables, and running a
//! function binary's commands as a user would.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    let attribute = |name: &str| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
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

/// Runs `binary args...` from the workspace root, outside Lambda, with `envs` set.
pub fn run<I, S>(binary: &Path, args: I, envs: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(binary);
    command.args(args).current_dir(workspace_root()).env_remove("AWS_LAMBDA_RUNTIME_API");
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display())).into()
}
