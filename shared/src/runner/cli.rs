//! The command line of every function binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The event file; `-` or nothing reads standard input.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// Simulated time left in the invocation, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub remaining_ms: u64,
}
