//! One entry point for a function binary: Lambda when the Runtime API is there, the local
//! commands otherwise.
//!
//! ```no_run
//! use sqs_kit::{handler_fn, typed, RecordContext, RecordError};
//! use sqs_kit::runner::Runner;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { order_id: String }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let handler = handler_fn(|order: Order, _cx: RecordContext| async move {
//!         Ok::<_, RecordError>(order.order_id)
//!     });
//!     Runner::new("orders", typed(handler)).run().await
//! }
//! ```

mod cli;
mod lambda;
mod logging;
mod replay;

use std::process::ExitCode;

use clap::Parser;

use crate::batch::{BatchConfig, BatchProcessor};
use crate::handler::RecordService;

pub use replay::{load_event, InputError};

/// Exit status of the local commands.
pub mod exit {
    /// Bad input: a missing file, invalid JSON, a document of the wrong shape, a bad flag.
    pub const BAD_INPUT: u8 = 2;
    /// The command could not do its work: a store or an endpoint failed.
    pub const RUNTIME: u8 = 1;
}

/// A function binary: its name, its record service and how batches are processed.
pub struct Runner<S> {
    name: String,
    service: S,
    config: BatchConfig,
}

impl<S: RecordService> Runner<S> {
    /// `name` is the function's name in local modes (in Lambda, the deployed name is used).
    pub fn new(name: impl Into<String>, service: S) -> Self {
        Self { name: name.into(), service, config: BatchConfig::default() }
    }

    pub fn with_config(self, config: BatchConfig) -> Self {
        Self { config, ..self }
    }

    /// Serves Lambda if `AWS_LAMBDA_RUNTIME_API` is set and no command was given; otherwise
    /// parses the command line and runs the command.
    pub async fn run(self) -> ExitCode {
        let processor = BatchProcessor::new(self.service, self.config);
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if args.len() <= 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            logging::init(logging::Mode::Lambda);
            return match lambda::serve(processor).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "the Lambda runtime stopped");
                    ExitCode::from(exit::RUNTIME)
                }
            };
        }
        let cli = match cli::Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(error) => {
                let _ = error.print();
                return ExitCode::from(if error.use_stderr() { exit::BAD_INPUT } else { 0 });
            }
        };
        logging::init(logging::Mode::Local);
        match cli.command {
            cli::Command::Replay(args) => replay::run(&self.name, &processor, args).await,
        }
    }
}
