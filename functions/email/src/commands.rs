//! `email outbox`: the mails sent, as JSON. Locally, the `.eml` files in `<state>/outbox/`; with
//! `--store dynamodb`, what SES accepted, read from the function's completed idempotency
//! records (SES keeps no list of sent mail that could be read back).

use clap::Subcommand;
use sqs_kit::idempotency::Status;
use sqs_kit::runner::{self, StoreArgs};
use sqs_kit::store::attributes::{s, sdk_error, text, Item};
use sqs_kit::store::{Backend, DynamoDbStore};

use crate::domain::SentMail;
use crate::outbox;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the mails sent, as JSON: [{"eventId", "orderId", "kind", "path"}] from the local
    /// outbox, or with --store dynamodb [{..., "messageId"}] from the idempotency table.
    Outbox {
        /// With --store dynamodb: the function whose idempotency records to read, by its
        /// deployed name (`<stack>-email`); default `email`, the name `replay` and `poll` key
        /// their records with unless given --function-name.
        #[arg(long)]
        function: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Outbox { function, store } => {
            let mails = match store.open_existing().await? {
                Backend::Embedded(store) => outbox::list(store.state_dir())?,
                Backend::DynamoDb(store) => {
                    sent_through_ses(&store, &runner::local_function_name("email", function.as_deref(), "--function")).await?
                }
                other => return Err(other.unsupported("email").into()),
            };
            sqs_kit::output::print_json(&mails)?;
        }
    }
    Ok(())
}

/// The results of the `COMPLETED` records keyed `<function>#...`, by event id. A Scan, because
/// the table's only key is the record id; it is an operator's command, not the hot path.
async fn sent_through_ses(store: &DynamoDbStore, function: &str) -> anyhow::Result<Vec<SentMail>> {
    let prefix = format!("{function}#");
    let mut pages = store
        .client()
        .scan()
        .table_name(store.table())
        .filter_expression("begins_with(#id, :prefix) AND #status = :completed")
        .expression_attribute_names("#id", "id")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":prefix", s(&prefix))
        .expression_attribute_values(":completed", s(Status::Completed.as_str()))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    let mut mails = Vec::new();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| anyhow::anyhow!("cannot scan the idempotency table {}: {}", store.table(), sdk_error(&e)))?;
        match sent_mail(&item) {
            Some(mail) => mails.push(mail),
            None => tracing::warn!(
                id = text(&item, "id").unwrap_or("?"),
                "skipping a record whose result is not a sent mail; is {prefix} the email function's prefix?"
            ),
        }
    }
    mails.sort_by(|a, b| (&a.event_id, &a.order_id).cmp(&(&b.event_id, &b.order_id)));
    Ok(mails)
}

fn sent_mail(item: &Item) -> Option<SentMail> {
    serde_json::from_str(text(item, "result")?).ok()
}
