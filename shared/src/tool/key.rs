//! `sqs-kit key show|evict`: one idempotency record, for an operator who needs to see why a
//! message is skipped, or to force it to be processed again.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::runner::{exit, StoreArgs};

#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
    /// Print a key's record as JSON (exit 1 if there is none).
    Show(KeyArgs),
    /// Delete a key's record, whatever its status, so the next delivery is processed again.
    Evict(KeyArgs),
}

#[derive(Debug, Args)]
pub(super) struct KeyArgs {
    /// The record id, `<function>#<key>`; or just `<key>` with --function.
    key: String,
    /// The function whose key this is; prefixed to KEY.
    #[arg(long)]
    function: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
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
            let store = args.store.open().await?.store();
            match store.get(&id).await? {
                Some(record) => {
                    println!("{}", serde_json::to_string_pretty(&record)?);
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("error: no idempotency record for {id} in the {}", store.describe());
                    Ok(ExitCode::from(exit::RUNTIME))
                }
            }
        }
        KeyCommand::Evict(args) => {
            let id = args.id();
            let store = args.store.open().await?.store();
            let evicted = store.evict(&id).await?;
            println!("{}", serde_json::json!({ "id": id, "evicted": evicted }));
            if !evicted {
                eprintln!("no record for {id} in the {}: nothing to evict", store.describe());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
