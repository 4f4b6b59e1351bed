//! `sqs-kit`, the operator command line: tooling around functions built on the `sqs-kit` library
//! rather than a function itself.
//!
//! - `key show|evict`: idempotency records.
//! - `publish`: send message bodies to an SNS topic or an SQS queue.
//! - `dlq peek|redrive`: look into a dead-letter queue; move its messages back.
//! - `event`: wrap message bodies into a Lambda SQS event for `replay` and `cargo lambda invoke`.
//! - `local up`: create template.yaml's topics, queues and tables on a local AWS API.
//! - `local alarms`: evaluate template.yaml's CloudWatch alarms against that local stack and the
//!   functions' embedded metric lines.

mod aws;
mod dlq;
mod event;
mod fifo;
mod key;
mod local;
mod publish;
mod template;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sqs_kit::runner::report_error;

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
    /// Send the message bodies of a file to an SNS topic or an SQS queue.
    ///
    /// 10 per PublishBatch / SendMessageBatch call. On a FIFO target: MessageGroupId and
    /// MessageDeduplicationId from the fields --group-by and --dedup-by point at (a body without
    /// them: group "default", the SHA-256 of the body). stdout: {"sent": N, "target": ...,
    /// "messageIds": [...]}.
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

/// The value parser of a numeric flag: a whole number from `min` to `max`. Anything else (out
/// of range, negative, too large for any type, not a number) is a usage error that names the
/// range, so a flag never silently takes a value that would overflow or mean nothing. Give the
/// bounds the field's type (`1_u32`): from bare literals (`i32`) clap could not hand the value
/// to a `u32` field.
fn whole_number<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: Copy + Into<i128> + TryFrom<i128> + std::fmt::Display + Send + Sync + 'static,
{
    move |text| {
        text.parse::<i128>()
            .ok()
            .filter(|n| (min.into()..=max.into()).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| format!("expected a whole number from {min} to {max}"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return sqs_kit::runner::print_usage_error(error),
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

#[cfg(test)]
mod tests {
    #[test]
    fn numeric_flags_take_whole_numbers_in_their_range() {
        let parse = super::whole_number(1u32, 1000);
        assert_eq!(parse("1"), Ok(1));
        assert_eq!(parse("1000"), Ok(1000));
        for bad in ["0", "1001", "-1", "18446744073709551616", "1e3", "1.5", " 7", "", "ten"] {
            assert_eq!(parse(bad), Err("expected a whole number from 1 to 1000".to_owned()), "{bad:?}");
        }
        assert_eq!(super::whole_number(0u64, u64::MAX)("18446744073709551615"), Ok(u64::MAX));
    }
}
