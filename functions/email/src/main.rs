//! `email`: sends an order confirmation for every `OrderPlaced` and a cancellation notice for
//! every `OrderCancelled`, exactly once per event id.
//!
//! Runs under Lambda (SES v2, idempotency in DynamoDB, or in Redis when `REDIS_URL` is set), or
//! locally: `email replay FILE` writes each mail as an `.eml` file into `<state>/outbox/`, and
//! `email outbox` lists them (`--store dynamodb` sends through SES and lists what it sent;
//! `--store redis` sends through SES too).

mod commands;
mod domain;
mod mime;
mod outbox;
mod ses;
mod templates;

use std::process::ExitCode;
use std::sync::Arc;

use orders::config;
use sqs_kit::runner::Runner;
use sqs_kit::store::Backend;
use sqs_kit::{typed, IdempotencyConfig};

use domain::{Email, Mailer};

/// The mailer for the backend the run mode picked, and the From address it sends as. In AWS
/// the sender must be configured (SES only sends as a verified identity); locally a default
/// keeps `replay` working out of the box.
fn mailer(backend: &Backend) -> anyhow::Result<(Arc<dyn Mailer>, String)> {
    let (mailer, sender): (Arc<dyn Mailer>, String) = match backend {
        Backend::Embedded(store) => (
            Arc::new(outbox::OutboxMailer::open(store.state_dir())),
            config::var(config::EMAIL_SENDER).unwrap_or_else(|| config::DEFAULT_LOCAL_SENDER.to_owned()),
        ),
        Backend::DynamoDb(_) | Backend::Redis(_) => (
            Arc::new(ses::SesMailer::new()),
            config::required(config::EMAIL_SENDER, "the From address of order e-mails, an address of a verified SES identity")?,
        ),
        other => return Err(other.unsupported("email").into()),
    };
    domain::check_sender(&sender)?;
    Ok((mailer, sender))
}

#[tokio::main]
async fn main() -> ExitCode {
    Runner::with_backend("email", |backend| {
        let (mailer, sender) = mailer(backend)?;
        Ok(typed(Email::new(mailer, sender)))
    })
    // Claim mode: sending a mail is not a database write that could join a transaction.
    .idempotent(IdempotencyConfig::keyed_by("/eventId"))
    .with_commands(commands::run)
    .run()
    .await
}
