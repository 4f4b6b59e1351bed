//! Every environment variable the toolkit reads, in one place (the README's configuration
//! table lists the same). A variable set to the empty string counts as unset.
//!
//! The ones only a feature reads are built with it.

/// Name of the DynamoDB idempotency table (Lambda mode, and `--store dynamodb`).
#[cfg(feature = "dynamodb")]
pub(crate) const IDEMPOTENCY_TABLE: &str = "IDEMPOTENCY_TABLE";
/// The Redis store's server (Lambda mode, and `--store redis`): `redis://` or `rediss://` (TLS),
/// with `user:password@` for AUTH.
#[cfg(feature = "redis")]
pub(crate) const REDIS_URL: &str = "REDIS_URL";
/// Connections the Redis store keeps open, 1 to 64; default 2.
#[cfg(feature = "redis")]
pub(crate) const REDIS_CONNECTIONS: &str = "SQS_KIT_REDIS_CONNECTIONS";
/// How long the Redis store waits to connect and for each answer, in milliseconds (1 to
/// 60000); default 1000.
#[cfg(feature = "redis")]
pub(crate) const REDIS_TIMEOUT_MS: &str = "SQS_KIT_REDIS_TIMEOUT_MS";
/// Local state directory of the embedded store; `--state` overrides it. Default `.local`.
#[cfg(feature = "local")]
pub(crate) const STATE_DIR: &str = "SQS_KIT_STATE";
/// Set by Lambda (and `cargo lambda watch`): serve the Runtime API.
pub(crate) const LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// Set by Lambda Managed Instances: how many invocations the process serves at once. Unset, 1,
/// or not a whole number above 0 (with a warning): one at a time.
pub(crate) const LAMBDA_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";
/// The deployed function's name; in local modes it overrides the binary's own name.
pub(crate) const FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
/// Log level (`error`, `warn`, `info`, `debug`, `trace`) or `target=level` directives
/// (`info,sqs_kit=debug`); `RUST_LOG` is read when it is unset. Default `info`.
pub(crate) const LOG_LEVEL: &str = "LOG_LEVEL";
/// The usual `tracing` filter variable, read when `LOG_LEVEL` is unset (the same directives).
pub(crate) const RUST_LOG: &str = "RUST_LOG";

/// Records a batch runs at once (default 10, or what the function configured); for a backend
/// that cannot take concurrent writes to one item, or to match a downstream's capacity.
pub(crate) const MAX_CONCURRENCY: &str = "SQS_KIT_MAX_CONCURRENCY";

/// Backoff of transiently failed records: `off`, or `base=<s>,cap=<s>[,jitter=full|none]`
/// (`retry::Backoff`). Unset: what the function configured (by default none).
pub(crate) const BACKOFF: &str = "SQS_KIT_BACKOFF";
/// Permanently failed records straight to a dead-letter queue: `off`, `redrive-policy`, or a
/// queue URL (`retry::DeadLetterTarget`). Unset: what the function configured (by default off).
pub(crate) const DEAD_LETTER: &str = "SQS_KIT_DEAD_LETTER";

/// CloudWatch namespace of the embedded metrics. Default `SqsKit`.
pub(crate) const METRICS_NAMESPACE: &str = "SQS_KIT_METRICS_NAMESPACE";
/// Name of the metrics' dimension, whose value is the function name. Default `FunctionName`.
pub(crate) const METRICS_DIMENSION: &str = "SQS_KIT_METRICS_DIMENSION";
/// `off` turns the embedded metric lines off.
pub(crate) const METRICS: &str = "SQS_KIT_METRICS";

/// Fault injection for crash tests (see the `fault` module); unset in normal use.
pub(crate) const FAULT: &str = "SQS_KIT_FAULT";

/// Seconds a warm process answers a completed idempotency key from memory, 0 (no cache) to
/// 3600; default 60. It bounds how long a key evicted with `sqs-kit key evict` is still
/// skipped by running processes.
pub(crate) const CACHE_SECONDS: &str = "SQS_KIT_CACHE_SECONDS";

/// The state directory when neither `--state` nor `SQS_KIT_STATE` says.
#[cfg(feature = "local")]
pub(crate) const DEFAULT_STATE_DIR: &str = ".local";

/// The value of `name`; `None` when it is unset, empty, or not Unicode.
pub(crate) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
