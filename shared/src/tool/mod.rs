//! The `sqs-kit` command line: tooling around the functions rather than a function itself.

mod key;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::runner::{exit, report_error};

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
}

pub async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { exit::BAD_INPUT } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Key(command) => key::run(command).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => report_error(error),
    }
}
