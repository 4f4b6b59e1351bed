//! The command line of every function binary.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::store::{Backend, EmbeddedStore};

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
    /// SIGTERM finishes the batch in hand, then exits 0.
    Poll(PollArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PollArgs {
    /// The queue to consume (AWS, or the API at AWS_ENDPOINT_URL).
    #[arg(long)]
    pub queue_url: String,
    /// Messages per batch (SQS returns at most 10 per receive; more needs --batching-window).
    #[arg(long, default_value_t = 10)]
    pub batch_size: usize,
    /// Seconds to keep gathering a batch after the first message arrived. The window spends
    /// the first messages' visibility timeout, so it must be shorter than the queue's.
    #[arg(long)]
    pub batching_window: Option<u64>,
    /// Stop after this many batches.
    #[arg(long)]
    pub max_batches: Option<usize>,
    /// Stop after this many seconds without a message.
    #[arg(long)]
    pub idle_exit: Option<u64>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The event file; `-` or nothing reads standard input.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// Simulated time left in the invocation, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub remaining_ms: u64,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// SQLite in the state directory.
    Embedded,
    /// The DynamoDB table named by IDEMPOTENCY_TABLE (AWS, or AWS_ENDPOINT_URL).
    Dynamodb,
}

/// Where state lives: the embedded store by default, DynamoDB on request.
#[derive(Clone, Debug, Args)]
pub struct StoreArgs {
    /// Which store keeps idempotency records and the function's state.
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
    /// State directory of the embedded store.
    #[arg(long, env = crate::env::STATE_DIR, default_value = crate::env::DEFAULT_STATE_DIR)]
    pub state: PathBuf,
}

impl StoreArgs {
    pub async fn open(&self) -> anyhow::Result<Backend> {
        Ok(match self.store {
            StoreKind::Embedded => Backend::Embedded(Arc::new(EmbeddedStore::open(&self.state)?)),
            StoreKind::Dynamodb => Backend::dynamodb_from_env().await?,
        })
    }
}
