//! The command line of every function binary.

use std::path::PathBuf;
use std::sync::Arc;

use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[cfg(any(feature = "embedded", feature = "redis"))]
use super::BadInput;
#[cfg(feature = "embedded")]
use crate::store::EmbeddedStore;
#[cfg(feature = "redis")]
use crate::store::RedisStore;
use crate::store::{Backend, MemoryStore};

#[derive(Debug, Parser)]
#[command(
    about = "An AWS Lambda function for Amazon SQS. Without a command, and with AWS_LAMBDA_RUNTIME_API set, it serves the Lambda Runtime API.",
    arg_required_else_help = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Process one Lambda SQS event ({"Records":[...]}) in-process, as one invocation.
    ///
    /// stdout gets the JSON the function would return to Lambda; stderr gets the logs and a
    /// summary of every record's outcome.
    Replay(ReplayArgs),
    /// Consume a real SQS queue like Lambda's event source mapping: long-poll, process each
    /// batch, delete the successes, leave the failures to the queue's redrive policy.
    ///
    /// stdout gets each batch's response JSON, one line per batch; stderr the logs. SIGINT or
    /// SIGTERM finishes every batch in hand, then exits 0.
    Poll(PollArgs),
}

/// Lambda's longest invocation (15 minutes), so the most time `--remaining-ms` may simulate.
const MAX_REMAINING_MS: u64 = 900_000;
/// Lambda's largest SQS batch (with a batching window; 10 without one).
const MAX_BATCH_SIZE: u64 = 10_000;
/// Lambda's longest batching window (`MaximumBatchingWindowInSeconds`).
const MAX_BATCHING_WINDOW_S: u64 = 300;
/// The longest `--idle-exit`, a day, and the most `--max-batches`: past those a poller is
/// meant to keep running, and leaves the flag out.
const MAX_IDLE_EXIT_S: u64 = 86_400;
const MAX_BATCHES: u64 = 1_000_000;
/// The most batches `poll` keeps in flight: Lambda's largest `ScalingConfig.MaximumConcurrency`.
const MAX_POLL_CONCURRENCY: u64 = 1_000;

#[derive(Debug, Args)]
pub(crate) struct PollArgs {
    /// The queue to consume (AWS, or the API at AWS_ENDPOINT_URL).
    #[arg(long)]
    pub queue_url: String,
    /// Messages per batch, 1 to 10000 (SQS returns at most 10 per receive; more needs
    /// --batching-window, as with Lambda).
    #[arg(long, default_value_t = 10, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_BATCH_SIZE))]
    pub batch_size: usize,
    /// Seconds to keep gathering a batch after the first message arrived, 0 to 300 (Lambda's
    /// maximum). The window spends the first messages' visibility timeout, so it must be
    /// shorter than the queue's.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=MAX_BATCHING_WINDOW_S))]
    pub batching_window: Option<u64>,
    /// Stop after this many batches, 1 to 1000000.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_BATCHES))]
    pub max_batches: Option<usize>,
    /// Stop after this many seconds without a message, 1 to 86400.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_IDLE_EXIT_S))]
    pub idle_exit: Option<u64>,
    /// Batches in flight at once, 1 to 1000, each with its own receive, deadline and delete, as
    /// the event source mapping's ScalingConfig.MaximumConcurrency allows (`sqs-kit local up`
    /// prints each function's).
    #[arg(long, default_value_t = 1, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_POLL_CONCURRENCY))]
    pub concurrency: usize,
    #[command(flatten)]
    pub function: FunctionNameArg,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The event file; `-` or nothing reads standard input.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// Simulated time left in the invocation, in milliseconds: 1 to 900000 (Lambda's longest
    /// timeout). A claim made by the replay lapses when this time is up.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=MAX_REMAINING_MS))]
    pub remaining_ms: u64,
    #[command(flatten)]
    pub function: FunctionNameArg,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct FunctionNameArg {
    /// The function name that prefixes idempotency keys (`NAME#key`) [default: the function's
    /// own name]. AWS_LAMBDA_FUNCTION_NAME is only read under Lambda; pass the deployed name here
    /// to share a deployed function's records.
    #[arg(long = "function-name", value_name = "NAME", value_parser = function_name)]
    pub name: Option<String>,
}

/// Lambda's rule for function names, which also keeps `#` (the key separator) out of the prefix.
fn function_name(name: &str) -> Result<String, String> {
    let valid = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    match valid {
        true => Ok(name.to_owned()),
        false => Err("a function name is 1 to 64 letters, digits, hyphens or underscores".to_owned()),
    }
}

/// The stores the local modes can open (`--store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum StoreKind {
    /// SQLite in the state directory.
    #[cfg(feature = "embedded")]
    Embedded,
    /// The DynamoDB table named by IDEMPOTENCY_TABLE (AWS, or AWS_ENDPOINT_URL).
    #[cfg(feature = "dynamodb")]
    Dynamodb,
    /// The Redis or Valkey server at REDIS_URL (claim mode only).
    #[cfg(feature = "redis")]
    Redis,
    /// In memory, gone when the process ends: nothing is remembered between runs.
    Memory,
}

impl StoreKind {
    /// The embedded store where it is built in; otherwise DynamoDB, otherwise memory.
    pub const DEFAULT: StoreKind = {
        #[cfg(feature = "embedded")]
        let kind = StoreKind::Embedded;
        #[cfg(all(not(feature = "embedded"), feature = "dynamodb"))]
        let kind = StoreKind::Dynamodb;
        #[cfg(not(any(feature = "embedded", feature = "dynamodb")))]
        let kind = StoreKind::Memory;
        kind
    };
}

/// Where state lives: the embedded store by default, DynamoDB, Redis or memory on request.
#[derive(Clone, Debug, Args)]
pub struct StoreArgs {
    /// Which store keeps idempotency records and the function's state.
    #[arg(long, value_enum, default_value_t = StoreKind::DEFAULT)]
    pub store: StoreKind,
    /// State directory of the embedded store.
    #[arg(long, env = crate::env::STATE_DIR, default_value = crate::env::DEFAULT_STATE_DIR)]
    pub state: PathBuf,
}

impl StoreArgs {
    /// The store, created if it does not exist yet: for the commands that write. DynamoDB's
    /// client is configured from the environment.
    pub async fn open(&self) -> anyhow::Result<Backend> {
        self.open_with(None).await
    }

    /// [`Self::open`], with DynamoDB's client built from `config` when one is given.
    pub async fn open_with(&self, config: Option<&aws_config::SdkConfig>) -> anyhow::Result<Backend> {
        // Only DynamoDB's client is configured from it.
        #[cfg(not(feature = "dynamodb"))]
        let _ = config;
        Ok(match self.store {
            #[cfg(feature = "embedded")]
            StoreKind::Embedded => Backend::Embedded(Arc::new(EmbeddedStore::open(&self.state)?)),
            #[cfg(feature = "dynamodb")]
            StoreKind::Dynamodb => match config {
                Some(config) => Backend::dynamodb_with_config(config)?,
                None => Backend::dynamodb_from_env().await?,
            },
            #[cfg(feature = "redis")]
            StoreKind::Redis => Backend::Redis(Arc::new(RedisStore::from_env().map_err(|error| BadInput(error.to_string()))?)),
            StoreKind::Memory => Backend::Memory(Arc::new(MemoryStore::new())),
        })
    }

    /// The store, which must exist: for the commands that only read it, where a mistyped
    /// `--state` would otherwise create an empty store and show nothing as if that were the
    /// state. A missing embedded store is a [`BadInput`](super::BadInput).
    pub async fn open_existing(&self) -> anyhow::Result<Backend> {
        #[cfg(feature = "embedded")]
        if self.store == StoreKind::Embedded && !self.state.is_dir() {
            return Err(BadInput(format!(
                "the state directory {} does not exist; `replay` (or `seed`) creates it, and --state or {} picks another",
                self.state.display(),
                crate::env::STATE_DIR
            ))
            .into());
        }
        self.open().await
    }
}
