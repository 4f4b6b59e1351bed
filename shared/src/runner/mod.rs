//! One entry point for a function binary: Lambda when the Runtime API is there, the local
//! commands otherwise.
//!
//! ```no_run
//! use sqs_kit::{handler_fn, typed, IdempotencyConfig, RecordContext, RecordError};
//! use sqs_kit::runner::Runner;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct Order { order_id: String }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let handler = handler_fn(|order: Order, _cx: RecordContext| async move {
//!         Ok::<_, RecordError>(order.order_id)
//!     });
//!     Runner::new("orders", typed(handler))
//!         .idempotent(IdempotencyConfig::keyed_by("/orderId"))
//!         .run()
//!         .await
//! }
//! ```

mod cli;
mod lambda;
mod logging;
mod poll;
mod replay;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Subcommand};
use futures::future::BoxFuture;

pub use cli::{StoreArgs, StoreKind};
pub use replay::{load_event, load_json, parse_event, InputError, MAX_BODY_BYTES};

use crate::batch::{BatchConfig, BatchProcessor};
use crate::handler::RecordService;
use crate::idempotency::{IdempotencyConfig, Idempotent};
use crate::metrics::Metrics;
use crate::store::{Backend, MissingTable};

/// Exit status of the local commands.
pub mod exit {
    /// Bad input: a missing file, invalid JSON, a document of the wrong shape, a bad flag.
    pub const BAD_INPUT: u8 = 2;
    /// The command could not do its work: a store or an endpoint failed.
    pub const RUNTIME: u8 = 1;
}

type BuildService = Box<dyn FnOnce(Option<&Backend>) -> anyhow::Result<Arc<dyn RecordService>> + Send>;

type CommandFuture = BoxFuture<'static, anyhow::Result<()>>;
type RunCommand = Box<dyn FnOnce(&ArgMatches) -> Result<CommandFuture, clap::Error> + Send>;

/// A function's own commands (state inspection, seeding), parsed beside `replay`.
struct Commands {
    augment: fn(clap::Command) -> clap::Command,
    has: fn(&str) -> bool,
    run: RunCommand,
}

/// A command's input was wrong (exit 2), as opposed to the command failing (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// A function binary: its name, how to build its record service, and how batches run.
pub struct Runner {
    name: String,
    build: BuildService,
    needs_backend: bool,
    idempotency: Option<IdempotencyConfig>,
    config: BatchConfig,
    commands: Option<Commands>,
}

impl Runner {
    /// A function whose service needs no store of its own. `name` is its name in local modes
    /// (in Lambda, the deployed name is used).
    pub fn new<S: RecordService>(name: impl Into<String>, service: S) -> Self {
        Self::build(name, false, move |_| Ok(Arc::new(service) as Arc<dyn RecordService>))
    }

    /// A function whose adapters are built on the backend the mode picks: DynamoDB in Lambda,
    /// the embedded store (or DynamoDB with `--store dynamodb`) locally.
    pub fn with_backend<S, F>(name: impl Into<String>, build: F) -> Self
    where
        S: RecordService,
        F: FnOnce(&Backend) -> anyhow::Result<S> + Send + 'static,
    {
        Self::build(name, true, move |backend| {
            let backend = backend.expect("a backend is opened for functions that need one");
            Ok(Arc::new(build(backend)?) as Arc<dyn RecordService>)
        })
    }

    fn build(
        name: impl Into<String>,
        needs_backend: bool,
        build: impl FnOnce(Option<&Backend>) -> anyhow::Result<Arc<dyn RecordService>> + Send + 'static,
    ) -> Self {
        Self { name: name.into(), build: Box::new(build), needs_backend, idempotency: None, config: BatchConfig::default(), commands: None }
    }

    /// Wraps the service in the idempotency layer, on the backend's store.
    pub fn idempotent(self, config: IdempotencyConfig) -> Self {
        Self { idempotency: Some(config), needs_backend: true, ..self }
    }

    pub fn with_config(self, config: BatchConfig) -> Self {
        Self { config, ..self }
    }

    /// Adds the function's own subcommands `C` beside `replay`; `run` executes the parsed one.
    /// A command prints its result on stdout; its error goes to stderr as one line, with exit
    /// status 2 for a [`BadInput`] or an [`InputError`] and 1 otherwise.
    pub fn with_commands<C, F, Fut>(self, run: F) -> Self
    where
        C: Subcommand + Send + 'static,
        F: FnOnce(C) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let commands = Commands {
            augment: C::augment_subcommands,
            has: C::has_subcommand,
            run: Box::new(move |matches| {
                let command = C::from_arg_matches(matches)?;
                Ok(Box::pin(run(command)) as CommandFuture)
            }),
        };
        Self { commands: Some(commands), ..self }
    }

    /// The batch and idempotency configurations and the metrics, with what the environment sets,
    /// checked before a store is opened or a record runs: a bad setting found after a batch would
    /// be reported after its effects, and on an empty store it would leave one behind.
    fn settings(&self) -> Result<Settings, BadInput> {
        let mut batch = self.config.clone();
        if let Some(limit) = crate::env::var(crate::env::MAX_CONCURRENCY) {
            batch.max_concurrency = match limit.parse::<usize>() {
                Ok(limit) if (1..=MAX_CONCURRENCY).contains(&limit) => limit,
                _ => {
                    let variable = crate::env::MAX_CONCURRENCY;
                    return Err(BadInput(format!("{variable} must be a whole number from 1 to {MAX_CONCURRENCY}, not {limit:?}")));
                }
            };
        }
        let idempotency =
            self.idempotency.clone().map(IdempotencyConfig::with_env).transpose().map_err(|error| BadInput(error.to_string()))?;
        Ok(Settings { batch, idempotency, metrics: Metrics::from_env()? })
    }

    fn processor(self, backend: Option<&Backend>, settings: Settings) -> anyhow::Result<(BatchProcessor<Arc<dyn RecordService>>, Metrics)> {
        let mut service = (self.build)(backend)?;
        if let (Some(idempotency), Some(backend)) = (settings.idempotency, backend) {
            service = Arc::new(Idempotent::new(service, backend.store(), idempotency)?);
        }
        Ok((BatchProcessor::new(service, settings.batch), settings.metrics))
    }

    /// Serves Lambda if `AWS_LAMBDA_RUNTIME_API` is set and no command was given; otherwise
    /// parses the command line and runs the command.
    pub async fn run(self) -> ExitCode {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if args.len() <= 1 && crate::env::var(crate::env::LAMBDA_RUNTIME_API).is_some() {
            logging::init(logging::Mode::Lambda);
            return match self.serve_lambda().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "the function stopped");
                    ExitCode::from(exit::RUNTIME)
                }
            };
        }
        let mut command = cli::Cli::command();
        if let Some(commands) = &self.commands {
            command = (commands.augment)(command);
        }
        let parsed = command.try_get_matches_from(args).and_then(|matches| {
            let own = matches.subcommand_name().is_some_and(|name| self.commands.as_ref().is_some_and(|c| (c.has)(name)));
            Ok(if own { Parsed::Own(matches) } else { Parsed::Toolkit(cli::Cli::from_arg_matches(&matches)?) })
        });
        let cli = match parsed {
            Ok(Parsed::Toolkit(cli)) => cli,
            Ok(Parsed::Own(matches)) => {
                logging::init(logging::Mode::Local);
                let commands = self.commands.expect("own commands were parsed");
                return match (commands.run)(&matches) {
                    Ok(run) => match run.await {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(error) => report_error(error),
                    },
                    Err(error) => print_usage_error(error),
                };
            }
            Err(error) => return print_usage_error(error),
        };
        logging::init(logging::Mode::Local);
        match cli.command {
            cli::Command::Replay(args) => {
                // The input first: bad input leaves no state behind, not even an empty store.
                let event = match load_event(&args.file) {
                    Ok(event) => event,
                    Err(error) => return report_error(error.into()),
                };
                let name = local_function_name(&self.name, args.function.name.as_deref(), "--function-name");
                let (processor, metrics) = match self.local_processor(&args.store).await {
                    Ok(ready) => ready,
                    Err(failure) => return failure,
                };
                replay::run(&name, &processor, &metrics, event, args).await
            }
            cli::Command::Poll(args) => {
                if let Err(error) = poll::check_args(&args) {
                    return report_error(error.into());
                }
                let name = local_function_name(&self.name, args.function.name.as_deref(), "--function-name");
                let (processor, metrics) = match self.local_processor(&args.store).await {
                    Ok(ready) => ready,
                    Err(failure) => return failure,
                };
                match poll::run(&name, &processor, &metrics, args).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => report_error(error),
                }
            }
        }
    }

    async fn serve_lambda(self) -> anyhow::Result<()> {
        let settings = self.settings()?;
        let backend = match self.needs_backend {
            true => Some(Backend::dynamodb_from_env().await?),
            false => None,
        };
        let (processor, metrics) = self.processor(backend.as_ref(), settings)?;
        lambda::serve(processor, metrics).await.map_err(|e| anyhow::anyhow!(e))
    }

    async fn local_processor(self, store: &StoreArgs) -> Result<(BatchProcessor<Arc<dyn RecordService>>, Metrics), ExitCode> {
        let settings = self.settings().map_err(|error| report_error(error.into()))?;
        let backend = match self.needs_backend {
            true => Some(store.open().await.map_err(report_error)?),
            false => None,
        };
        self.processor(backend.as_ref(), settings).map_err(report_error)
    }
}

/// What the environment made of a function's configuration.
struct Settings {
    batch: BatchConfig,
    idempotency: Option<IdempotencyConfig>,
    metrics: Metrics,
}

/// The most records of a batch that may run at once (`SQS_KIT_MAX_CONCURRENCY`).
pub const MAX_CONCURRENCY: usize = 1_000;

/// The name that prefixes idempotency keys in the local modes: `explicit`, given with `flag`,
/// else the function's `own` name. `AWS_LAMBDA_FUNCTION_NAME` is not read here: exported in a
/// shell, it would give every function run from there one prefix, and each would skip the
/// others' records as duplicates. It is only named in a warning, for whoever set it on purpose.
pub fn local_function_name(own: &str, explicit: Option<&str>, flag: &str) -> String {
    let name = explicit.unwrap_or(own).to_owned();
    if let Some(inherited) = crate::env::var(crate::env::FUNCTION_NAME).filter(|inherited| *inherited != name) {
        tracing::warn!(
            "{}={inherited} is ignored outside Lambda: keys are prefixed with {name}# ({flag} picks another)",
            crate::env::FUNCTION_NAME
        );
    }
    name
}

enum Parsed {
    Toolkit(cli::Cli),
    Own(ArgMatches),
}

/// Help and version go out whole; a usage error as its one line, with where to look next.
pub(crate) fn print_usage_error(error: clap::Error) -> ExitCode {
    if !error.use_stderr() {
        // Help and version go to stdout, which may be closed as well.
        return match error.print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(cause) => report_error(crate::output::OutputError::Write(cause).into()),
        };
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or("error: invalid usage");
    crate::output::note(&format!("{first} (see --help)"));
    ExitCode::from(exit::BAD_INPUT)
}

/// Prints a command's error as one line and picks the exit status.
pub fn report_error(error: anyhow::Error) -> ExitCode {
    crate::output::note(&format!("error: {error:#}"));
    let bad_input = error.is::<MissingTable>() || error.is::<InputError>() || error.is::<BadInput>();
    ExitCode::from(if bad_input { exit::BAD_INPUT } else { exit::RUNTIME })
}
