//! The `sqs-kit` command line: tooling around the functions rather than a function itself.
//!
//! - `key show|evict`: idempotency records.
//! - `publish`: send order events to the SNS topic or a queue.
//! - `dlq peek|redrive`: look into a dead-letter queue; move its messages back.
//! - `event`: wrap message bodies into a Lambda SQS event for `replay` and `cargo lambda invoke`.
//! - `local up`: create template.yaml's topics, queues and tables on a local AWS API.

mod aws;
mod dlq;
mod event;
mod key;
mod local;
mod publish;
mod sample;
mod template;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::runner::report_error;

#[derive(Debug, Parser)]
#[command(name = "sqs-kit", about = "Operator tooling for Lambda functions built on sqs-kit", arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect or evict idempotency records.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Send order events (from a file, or generated) to an SNS topic or an SQS queue.
    ///
    /// 10 per PublishBatch / SendMessageBatch call. On a FIFO target: MessageGroupId = the
    /// body's customerId, MessageDeduplicationId = its eventId (a body without them: group
    /// "default", the SHA-256 of the body). stdout: {"sent": N, "target": ..., "messageIds": [...]}.
    Publish(publish::PublishArgs),
    /// Look into a dead-letter queue, or move its messages back to their source queue.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Wrap message bodies into a Lambda SQS event, for `replay` and `cargo lambda invoke`.
    ///
    /// stdout: the event ({"Records": [...]}) as Lambda builds it, standard or FIFO, for
    /// `<function> replay FILE` and `cargo lambda invoke --data-file FILE`.
    Event(event::EventArgs),
    /// Run the template's topology on a local AWS API.
    #[command(subcommand)]
    Local(local::LocalCommand),
}

pub async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return crate::runner::print_usage_error(error),
    };
    let result = match cli.command {
        Command::Key(command) => key::run(command).await,
        Command::Publish(args) => publish::run(args).await,
        Command::Dlq(command) => dlq::run(command).await,
        Command::Event(args) => event::run(args).await,
        Command::Local(command) => local::run(command).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => report_error(error),
    }
}
