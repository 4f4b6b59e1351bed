//! The smallest function: a typed handler and a `Runner`, nothing else.
//!
//! ```text
//! cargo run -p sqs-kit --example minimal -- replay events/examples/signups.json
//! ```
//!
//! prints the `batchItemFailures` Lambda would get on stdout and a line per record on stderr.
//! With no idempotency there is no store: replaying the file again runs every record again.
//! Deployed with `AWS_LAMBDA_RUNTIME_API` set, the same binary serves Lambda.

use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use sqs_kit::runner::Runner;
use sqs_kit::{handler_fn, typed, RecordContext, RecordError};

/// The body the handler is written against. A body that does not deserialize into it (a
/// missing field, a string where a number belongs) fails permanently before the handler runs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Signup {
    user_id: String,
    plan: String,
}

/// What the handler reports: the replay summary shows it beside the record.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Welcomed {
    user_id: String,
    plan: String,
}

/// `cx` carries the record's metadata (message id, receive count, group) and the invocation's
/// deadline; this handler needs neither. The record's log span already names its message id.
async fn welcome(signup: Signup, _cx: RecordContext) -> Result<Welcomed, RecordError> {
    tracing::info!(user_id = %signup.user_id, plan = %signup.plan, "welcome sent");
    Ok(Welcomed { user_id: signup.user_id, plan: signup.plan })
}

#[tokio::main]
async fn main() -> ExitCode {
    Runner::new("minimal", typed(handler_fn(welcome))).run().await
}
