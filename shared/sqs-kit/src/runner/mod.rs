//! One entry point for a function binary: Lambda when the Runtime API is there, the local
//! commands otherwise.
//!
//! ```no_run
//! use sqs_kit::{handler_fn, typed, IdempotencyConfig, RecordContext, RecordError};
//! use sqs_kit::runner::Runner;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct Payment { payment_id: String }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let handler = handler_fn(|payment: Payment, _cx: RecordContext| async move {
//!         Ok::<_, RecordError>(payment.payment_id)
//!     });
//!     Runner::new("payments", typed(handler))
//!         .idempotent(IdempotencyConfig::keyed_by("/paymentId"))
//!         .run()
//!         .await
//! }
//! ```

#[cfg(feature = "local")]
mod cli;
mod lambda;
pub(crate) mod logging;
#[cfg(feature = "local")]
mod poll;
#[cfg(feature = "local")]
mod replay;

use std::process::ExitCode;
use std::sync::Arc;

#[cfg(feature = "local")]
use clap::{ArgMatches, CommandFactory, FromArgMatches, Subcommand};
#[cfg(feature = "local")]
use futures::future::BoxFuture;

#[cfg(feature = "local")]
pub use cli::{StoreArgs, StoreKind};
#[cfg(feature = "local")]
pub use replay::{load_event, load_json, parse_event, InputError, MAX_BODY_BYTES};

use crate::batch::{BatchConfig, BatchProcessor};
use crate::handler::RecordService;
use crate::idempotency::{IdempotencyConfig, Idempotent};
use crate::metrics::Metrics;
use crate::store::{Backend, IdempotencyStore, MissingTable, UnsupportedBackend};

/// Exit status of the local commands.
pub mod exit {
    /// Bad input: a missing file, invalid JSON, a document of the wrong shape, a bad flag.
    pub const BAD_INPUT: u8 = 2;
    /// The command could not do its work: a store or an endpoint failed.
    pub const RUNTIME: u8 = 1;
}

type BuildService = Box<dyn FnOnce(Option<&Backend>) -> anyhow::Result<Arc<dyn RecordService>> + Send>;

#[cfg(feature = "local")]
type CommandFuture = BoxFuture<'static, anyhow::Result<()>>;
#[cfg(feature = "local")]
type RunCommand = Box<dyn FnOnce(&ArgMatches) -> Result<CommandFuture, clap::Error> + Send>;

/// A function's own commands (state inspection, seeding), parsed beside `replay`.
#[cfg(feature = "local")]
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
///
/// Built with [`Runner::new`] (a service that keeps no state of its own) or
/// [`Runner::with_backend`] (one whose adapters use the store), configured with the `with_*`
/// methods and [`Runner::idempotent`], then [`Runner::run`] in `main` (see the
/// [module](self) for an example). Every mode processes batches with the same
/// [`BatchProcessor`], so a local replay shows what Lambda would do.
pub struct Runner {
    name: String,
    build: BuildService,
    needs_backend: bool,
    idempotency: Option<IdempotencyConfig>,
    config: BatchConfig,
    store: Option<Arc<dyn IdempotencyStore>>,
    #[cfg(any(feature = "dynamodb", feature = "sqs"))]
    sdk_config: Option<aws_config::SdkConfig>,
    #[cfg(feature = "local")]
    commands: Option<Commands>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("name", &self.name)
            .field("idempotency", &self.idempotency)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A function whose service needs no store of its own. `name` is its name in local modes
    /// (in Lambda, the deployed name is used).
    pub fn new<S: RecordService>(name: impl Into<String>, service: S) -> Self {
        Self::build(name, false, move |_| Ok(Arc::new(service) as Arc<dyn RecordService>))
    }

    /// A function whose adapters are built on the backend the mode picks: DynamoDB in Lambda,
    /// the embedded store (or DynamoDB with `--store dynamodb`, or memory with `--store
    /// memory`) locally, or the store given to [`Runner::with_store`]. `build` runs once, after
    /// the configuration is checked and the store is opened, before the first batch; its error
    /// stops the binary before any batch runs.
    ///
    /// ```no_run
    /// use sqs_kit::runner::Runner;
    /// use sqs_kit::store::Backend;
    /// use sqs_kit::{handler_fn, typed, IdempotencyConfig, RecordContext, RecordError};
    ///
    /// # async fn run() -> std::process::ExitCode {
    /// Runner::with_backend("ledger", |backend: &Backend| {
    ///     // A function's adapters pick their implementation by the store in use.
    ///     let place = match backend {
    ///         Backend::DynamoDb(store) => format!("DynamoDB, beside table {}", store.table()),
    ///         Backend::Embedded(store) => format!("SQLite in {}", store.state_dir().display()),
    ///         other => return Err(other.unsupported("ledger").into()),
    ///     };
    ///     Ok(typed(handler_fn(move |_entry: serde_json::Value, _cx: RecordContext| {
    ///         let place = place.clone();
    ///         async move { Ok::<_, RecordError>(format!("posted in {place}")) }
    ///     })))
    /// })
    /// .idempotent(IdempotencyConfig::keyed_by("/entryId").transactional())
    /// .run()
    /// .await
    /// # }
    /// ```
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
        Self {
            name: name.into(),
            build: Box::new(build),
            needs_backend,
            idempotency: None,
            config: BatchConfig::default(),
            store: None,
            #[cfg(any(feature = "dynamodb", feature = "sqs"))]
            sdk_config: None,
            #[cfg(feature = "local")]
            commands: None,
        }
    }

    /// Wraps the service in the idempotency layer, on the backend's store; the environment's
    /// `SQS_KIT_CACHE_SECONDS` overrides the configuration's cache lifetime. A function made
    /// with [`Runner::new`] then opens a store too.
    pub fn idempotent(self, config: IdempotencyConfig) -> Self {
        Self { idempotency: Some(config), needs_backend: true, ..self }
    }

    /// The batch configuration (`SQS_KIT_MAX_CONCURRENCY` still overrides its concurrency).
    pub fn with_config(self, config: BatchConfig) -> Self {
        Self { config, ..self }
    }

    /// Keeps idempotency records in `store`, in every mode, instead of the store the mode
    /// picks: a store of one's own, or one built with settings of one's own. The function's
    /// adapters get it as [`Backend::Custom`].
    pub fn with_store(self, store: Arc<dyn IdempotencyStore>) -> Self {
        Self { store: Some(store), ..self }
    }

    /// Builds the AWS clients (the DynamoDB store, `poll`'s SQS client) from `config` instead
    /// of loading the configuration from the environment: for a caller that already has one,
    /// with its own credentials provider, retry settings or endpoint.
    #[cfg(any(feature = "dynamodb", feature = "sqs"))]
    pub fn with_sdk_config(self, config: aws_config::SdkConfig) -> Self {
        Self { sdk_config: Some(config), ..self }
    }

    #[cfg(any(feature = "dynamodb", feature = "sqs"))]
    async fn sdk_config(&self) -> aws_config::SdkConfig {
        match &self.sdk_config {
            Some(config) => config.clone(),
            None => aws_config::load_from_env().await,
        }
    }

    /// Adds the function's own subcommands `C` beside `replay`; `run` executes the parsed one.
    /// A command prints its result on stdout; its error goes to stderr as one line, with exit
    /// status 2 for a [`BadInput`] or an [`InputError`] and 1 otherwise.
    #[cfg(feature = "local")]
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
        retry_from_env(&mut batch)?;
        let idempotency =
            self.idempotency.clone().map(IdempotencyConfig::with_env).transpose().map_err(|error| BadInput(error.to_string()))?;
        let metrics = Metrics::from_env().map_err(|error| BadInput(error.to_string()))?;
        crate::fault::warn_if_unavailable();
        Ok(Settings { batch, idempotency, metrics })
    }

    fn processor(self, backend: Option<&Backend>, settings: Settings) -> anyhow::Result<(BatchProcessor<Arc<dyn RecordService>>, Metrics)> {
        // Before the adapters: that the store cannot serve the configuration is the first thing
        // to tell whoever picked it (the adapters of a transactional function refuse Redis too,
        // for a reason that would hide this one).
        if let (Some(idempotency), Some(backend)) = (&settings.idempotency, backend) {
            idempotency.check_for(&*backend.store())?;
        }
        let mut service = (self.build)(backend)?;
        if let (Some(idempotency), Some(backend)) = (settings.idempotency, backend) {
            service = Arc::new(Idempotent::new(service, backend.store(), idempotency)?);
        }
        Ok((BatchProcessor::new(service, settings.batch), settings.metrics))
    }

    /// Serves Lambda if `AWS_LAMBDA_RUNTIME_API` is set and no command was given; otherwise
    /// parses the command line and runs the command (with the `local` feature; without it, a
    /// binary run outside Lambda says so and exits with status 2).
    ///
    /// The settings from the environment (`SQS_KIT_MAX_CONCURRENCY`, `SQS_KIT_CACHE_SECONDS`,
    /// `SQS_KIT_METRICS*`) are checked before a store is opened or a record runs. Locally, a bad
    /// one exits with status 2 ([`exit::BAD_INPUT`]), as does bad input to a command, and a
    /// store or endpoint that fails with status 1 ([`exit::RUNTIME`]), each after one line on
    /// stderr. In Lambda, whatever stops the function is logged and exits with status 1;
    /// serving returns only then.
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
        #[cfg(feature = "local")]
        return self.run_local(args).await;
        #[cfg(not(feature = "local"))]
        {
            crate::output::note(&format!(
                "error: {} serves Lambda only (it was built without sqs-kit's `local` feature, which has replay and poll); \
                 {} is not set, so there is no Lambda Runtime API to serve",
                self.name,
                crate::env::LAMBDA_RUNTIME_API
            ));
            ExitCode::from(exit::BAD_INPUT)
        }
    }

    #[cfg(feature = "local")]
    async fn run_local(self, args: Vec<std::ffi::OsString>) -> ExitCode {
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
                let (processor, metrics) = match self.local_processor(&args.store, None).await {
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
                let sdk_config = self.sdk_config().await;
                let (processor, metrics) = match self.local_processor(&args.store, Some(&sdk_config)).await {
                    Ok(ready) => ready,
                    Err(failure) => return failure,
                };
                match poll::run(&name, &processor, &metrics, args, &sdk_config).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => report_error(error),
                }
            }
        }
    }

    async fn serve_lambda(self) -> anyhow::Result<()> {
        let settings = self.settings()?;
        let backend = match self.needs_backend {
            true => Some(self.lambda_backend().await?),
            false => None,
        };
        // The AWS configuration only when retry control acts on queues: a cold start without it
        // need not load one.
        #[cfg(feature = "sqs")]
        let queue = match settings.batch.acts_on_queues() {
            true => Some(sqs_queue(&self.sdk_config().await)),
            false => None,
        };
        let (processor, metrics) = self.processor(backend.as_ref(), settings)?;
        #[cfg(feature = "sqs")]
        let processor = match queue {
            Some(queue) => processor.with_queue(queue),
            None => processor,
        };
        lambda::serve(processor, metrics).await.map_err(|e| anyhow::anyhow!(e))
    }

    /// The store of Lambda mode: the caller's, else the DynamoDB table `IDEMPOTENCY_TABLE` names,
    /// else the Redis server `REDIS_URL` names. The table wins because `REDIS_URL` is a common
    /// name that a function may well have for a Redis of its own business.
    async fn lambda_backend(&self) -> anyhow::Result<Backend> {
        if let Some(store) = &self.store {
            return Ok(Backend::Custom(Arc::clone(store)));
        }
        #[cfg(feature = "redis")]
        {
            #[cfg(feature = "dynamodb")]
            let table = crate::env::var(crate::env::IDEMPOTENCY_TABLE);
            #[cfg(not(feature = "dynamodb"))]
            let table: Option<String> = None;
            match (table, crate::env::var(crate::env::REDIS_URL)) {
                (None, Some(_)) => {
                    let store = crate::store::RedisStore::from_env().map_err(|error| BadInput(error.to_string()))?;
                    return Ok(Backend::Redis(Arc::new(store)));
                }
                (None, None) => {
                    let table = if cfg!(feature = "dynamodb") { "IDEMPOTENCY_TABLE to a DynamoDB table, or " } else { "" };
                    return Err(BadInput(format!(
                        "{} needs an idempotency store in Lambda: set {table}{} to a Redis server",
                        self.name,
                        crate::env::REDIS_URL
                    ))
                    .into());
                }
                (Some(_), _) => {}
            }
        }
        #[cfg(feature = "dynamodb")]
        return Ok(Backend::dynamodb_with_config(&self.sdk_config().await)?);
        #[cfg(not(feature = "dynamodb"))]
        Err(BadInput(format!(
            "{} needs an idempotency store in Lambda: build it with sqs-kit's `dynamodb` feature, or give one to Runner::with_store",
            self.name
        ))
        .into())
    }

    /// The processor of a local mode; `sqs` is the AWS configuration of a mode that talks to SQS
    /// (`poll`), which then gets the retry control configured. `replay` has none: it shows what
    /// the records do, and leaves queues alone.
    #[cfg(feature = "local")]
    async fn local_processor(
        self,
        store: &StoreArgs,
        sqs: Option<&aws_config::SdkConfig>,
    ) -> Result<(BatchProcessor<Arc<dyn RecordService>>, Metrics), ExitCode> {
        let mut settings = self.settings().map_err(|error| report_error(error.into()))?;
        let queue = match sqs {
            Some(config) => settings.batch.acts_on_queues().then(|| sqs_queue(config)),
            None => {
                if settings.batch.backoff.take().is_some() | settings.batch.dead_letter.take().is_some() {
                    tracing::info!("replay leaves queues alone: failed records get no backoff and none is sent to a dead-letter queue");
                }
                None
            }
        };
        let backend = match (self.needs_backend, &self.store) {
            (false, _) => None,
            (true, Some(custom)) => Some(Backend::Custom(Arc::clone(custom))),
            (true, None) => Some(store.open_with(self.sdk_config.as_ref()).await.map_err(report_error)?),
        };
        let (processor, metrics) = self.processor(backend.as_ref(), settings).map_err(report_error)?;
        let processor = match queue {
            Some(queue) => processor.with_queue(queue),
            None => processor,
        };
        Ok((processor, metrics))
    }
}

/// Sets the batch's retry control from `SQS_KIT_BACKOFF` and `SQS_KIT_DEAD_LETTER`: `off` turns
/// off what the function configured, unset keeps it.
fn retry_from_env(batch: &mut BatchConfig) -> Result<(), BadInput> {
    use crate::env::{var, BACKOFF, DEAD_LETTER};
    let bad = |variable: &str, error: &dyn std::fmt::Display| BadInput(format!("{variable}: {error}"));
    if let Some(value) = var(BACKOFF) {
        batch.backoff = match value.trim() {
            "off" => None,
            spec => Some(spec.parse().map_err(|error| bad(BACKOFF, &error))?),
        };
    }
    if let Some(value) = var(DEAD_LETTER) {
        batch.dead_letter = match value.trim() {
            "off" => None,
            target => Some(target.parse().map_err(|error| bad(DEAD_LETTER, &error))?),
        };
    }
    if cfg!(not(feature = "sqs")) && batch.acts_on_queues() {
        return Err(BadInput(format!(
            "{BACKOFF} and {DEAD_LETTER} act through SQS: build the function with sqs-kit's `sqs` feature, or turn them off"
        )));
    }
    Ok(())
}

/// The SQS client retry control acts through.
#[cfg(feature = "sqs")]
fn sqs_queue(config: &aws_config::SdkConfig) -> Arc<dyn crate::retry::QueueActions> {
    Arc::new(crate::retry::SqsQueue::new(aws_sdk_sqs::Client::new(config)))
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

#[cfg(feature = "local")]
enum Parsed {
    Toolkit(cli::Cli),
    Own(ArgMatches),
}

/// Prints a command-line parse error the way the local commands do: help and version whole
/// (on stdout, exit 0), a usage error as its one line with where to look next (exit 2).
#[cfg(feature = "local")]
pub fn print_usage_error(error: clap::Error) -> ExitCode {
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

/// Prints a command's error as one line on stderr (`error: ` and its chain of causes) and picks
/// the exit status: 2 ([`exit::BAD_INPUT`]) for a [`BadInput`], an `InputError`, a missing
/// `IDEMPOTENCY_TABLE`, a store the function has no adapters for ([`UnsupportedBackend`]) or an
/// idempotency configuration the store cannot serve,
/// 1 ([`exit::RUNTIME`]) for anything else.
pub fn report_error(error: anyhow::Error) -> ExitCode {
    crate::output::note(&format!("error: {error:#}"));
    let bad_input = error.is::<MissingTable>()
        || error.is::<BadInput>()
        || error.is::<UnsupportedBackend>()
        || error.is::<crate::idempotency::InvalidIdempotencyConfig>();
    #[cfg(feature = "local")]
    let bad_input = bad_input || error.is::<InputError>();
    ExitCode::from(if bad_input { exit::BAD_INPUT } else { exit::RUNTIME })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::handler::{handler_fn, typed, RecordContext};
    use crate::record::InvocationContext;
    use crate::store::MemoryStore;
    use crate::RecordError;

    fn echo() -> impl RecordService {
        typed(handler_fn(|body: serde_json::Value, _cx: RecordContext| async move { Ok::<_, RecordError>(body) }))
    }

    fn event() -> aws_lambda_events::event::sqs::SqsEvent {
        serde_json::from_value(serde_json::json!({"Records": [{"messageId": "m-1", "body": "{\"eventId\":\"e-1\"}"}]})).unwrap()
    }

    #[tokio::test]
    async fn a_store_of_ones_own_serves_lambda_instead_of_dynamodb() {
        let store = Arc::new(MemoryStore::new());
        let runner = Runner::new("f", echo()).idempotent(IdempotencyConfig::keyed_by("/eventId")).with_store(store.clone());
        let backend = runner.lambda_backend().await.unwrap();
        assert!(matches!(backend, Backend::Custom(_)), "{backend:?}");
        let settings = runner.settings().unwrap();
        let (processor, _) = runner.processor(Some(&backend), settings).unwrap();
        let report = processor.process(event(), InvocationContext::with_remaining("f", "r", Duration::from_secs(30))).await.unwrap();
        assert!(!report.all_failed(), "{report:?}");
        assert!(store.get("f#e-1").await.unwrap().is_some(), "the record went to the caller's store");
    }

    #[cfg(all(feature = "local", feature = "embedded"))]
    #[tokio::test]
    async fn a_store_of_ones_own_wins_over_the_store_flag_locally() {
        let parent = tempfile::tempdir().unwrap();
        let state = parent.path().join("state");
        let store = Arc::new(MemoryStore::new());
        let runner = Runner::new("f", echo()).idempotent(IdempotencyConfig::keyed_by("/eventId")).with_store(store.clone());
        let args = StoreArgs { store: StoreKind::Embedded, state: state.clone() };
        let (processor, _) = runner.local_processor(&args, None).await.unwrap();
        processor.process(event(), InvocationContext::with_remaining("f", "r", Duration::from_secs(30))).await.unwrap();
        assert!(store.get("f#e-1").await.unwrap().is_some(), "the record went to the caller's store");
        assert!(!state.exists(), "no embedded store was opened");
    }

    #[test]
    fn a_store_without_the_functions_adapters_is_bad_input() {
        let backend = Backend::Memory(Arc::new(MemoryStore::new()));
        assert_eq!(report_error(backend.unsupported("points").into()), ExitCode::from(exit::BAD_INPUT));
    }
}
