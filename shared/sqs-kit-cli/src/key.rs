//! `sqs-kit key show|evict`: one idempotency record, for an operator who needs to see why a
//! message is skipped, or to force it to be processed again.

use std::process::ExitCode;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};

use sqs_kit::idempotency::{cache_lifetime_from_env, parse_cache_seconds, DEFAULT_CACHE_LIFETIME};
use sqs_kit::output::{note, print_json, print_json_pretty};
use sqs_kit::runner::{exit, BadInput, StoreArgs};

#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
    /// Print a key's record as JSON (exit 1 if there is none).
    Show(KeyArgs),
    /// Delete a key's record, whatever its status, so the next delivery is processed again.
    ///
    /// stdout: {"id", "evicted", "warm_skip_seconds"}. A warm process (a poller, a Lambda
    /// execution environment) that completed the key itself may still skip it from memory for
    /// up to its cache lifetime (SQS_KIT_CACHE_SECONDS, default 60 s): warm_skip_seconds.
    Evict(EvictArgs),
}

#[derive(Debug, Args)]
pub(super) struct KeyArgs {
    /// The record id, `<function>#<key>`; or just `<key>` with --function.
    #[arg(value_parser = NonEmptyStringValueParser::new())]
    key: String,
    /// The function whose key this is; prefixed to KEY.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    function: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub(super) struct EvictArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The cache lifetime of the functions' processes, in seconds (0 to 3600), if they do not
    /// run with the default or with the SQS_KIT_CACHE_SECONDS set here.
    #[arg(long, value_name = "SECONDS", value_parser = cache_seconds)]
    cache_seconds: Option<Duration>,
}

fn cache_seconds(text: &str) -> Result<Duration, String> {
    parse_cache_seconds(text).map_err(|_| "a whole number of seconds from 0 to 3600".to_owned())
}

impl KeyArgs {
    fn id(&self) -> String {
        match &self.function {
            Some(function) => format!("{function}#{}", self.key),
            None => self.key.clone(),
        }
    }
}

pub(super) async fn run(command: KeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Show(args) => {
            let id = args.id();
            let store = args.store.open_existing().await?.store();
            match store.get(&id).await? {
                Some(record) => {
                    print_json_pretty(&record)?;
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    note(&format!("error: no idempotency record for {id} in the {}", store.describe()));
                    Ok(ExitCode::from(exit::RUNTIME))
                }
            }
        }
        KeyCommand::Evict(EvictArgs { key: args, cache_seconds }) => {
            let warm_skip = match cache_seconds {
                Some(lifetime) => lifetime,
                None => cache_lifetime_from_env().map_err(|e| BadInput(e.to_string()))?.unwrap_or(DEFAULT_CACHE_LIFETIME),
            };
            let id = args.id();
            let store = args.store.open_existing().await?.store();
            let evicted = store.evict(&id).await?;
            print_json(&serde_json::json!({ "id": id, "evicted": evicted, "warm_skip_seconds": warm_skip.as_secs() }))?;
            if !evicted {
                note(&format!("no record for {id} in the {}: nothing to evict", store.describe()));
            }
            if !warm_skip.is_zero() {
                note(&format!(
                    "processes already running that completed {id} themselves may still skip it for up to {} s (their idempotency \
                     cache lifetime); after that every delivery is processed again",
                    warm_skip.as_secs()
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
