//! `sqs-kit`: the building blocks of AWS Lambda functions triggered by Amazon SQS.
//!
//! A function implements a [`RecordHandler`] (or an async closure through [`handler_fn`]) over
//! its own body type, and [`runner::Runner`] turns it into a binary that serves Lambda or runs
//! the local modes. Underneath, every piece is usable on its own:
//!
//! - [`handler`]: the handler trait a function implements, [`typed`] to erase its body type into
//!   a [`RecordService`] (the unit layers wrap), and adapters to and from `tower`.
//! - [`batch`]: the [`BatchProcessor`] runs a service over a batch record by record and reports
//!   partial failures (`batchItemFailures`); it is a `tower::Service` of Lambda's SQS events.
//! - [`idempotency`]: the [`Idempotent`] layer (also a `tower::Layer`, [`IdempotencyLayer`])
//!   processes each key once, in claim mode or transactionally with the handler's own writes.
//! - [`store`]: where idempotency records live: [`store::MemoryStore`] always,
//!   [`store::DynamoDbStore`], [`store::EmbeddedStore`] and [`store::RedisStore`] behind
//!   features, or a store of one's own implementing [`store::IdempotencyStore`].
//! - [`retry`]: backoff of transient failures and permanent failures sent straight to the
//!   dead-letter queue, through a [`retry::QueueActions`] port (SQS with the `sqs` feature).
//! - [`metrics`]: CloudWatch embedded metric lines from a batch's report.
//! - [`runner`]: one call in `main` that serves Lambda or runs `replay` and `poll` locally.
//! - [`error`] and [`record`]: a record's failure and what a handler learns about its record;
//!   [`output`] and [`redact`]: printing results and keeping e-mail addresses out of them.
//!
//! The modules depend one way: [`error`] and [`record`] ← [`handler`] ← [`store`] ←
//! [`idempotency`] ← [`retry`] ← [`batch`] ← [`metrics`] ← [`runner`]. `docs/architecture.md` in the
//! repository describes the design.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use aws_lambda_events::event::sqs::SqsEvent;
//! use sqs_kit::store::MemoryStore;
//! use sqs_kit::{handler_fn, typed, BatchConfig, BatchProcessor, IdempotencyConfig, Idempotent, InvocationContext, RecordContext, RecordError};
//!
//! #[derive(serde::Deserialize)]
//! struct Signup {
//!     email: String,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let welcome = handler_fn(|signup: Signup, _cx: RecordContext| async move { Ok::<_, RecordError>(format!("welcomed {}", signup.email)) });
//! let idempotent = Idempotent::new(typed(welcome), Arc::new(MemoryStore::new()), IdempotencyConfig::keyed_by("/email")).unwrap();
//! let processor = BatchProcessor::new(idempotent, BatchConfig::default());
//!
//! let event: SqsEvent = serde_json::from_str(r#"{"Records": [{"messageId": "m1", "body": "{\"email\": \"a@example.com\"}"}]}"#).unwrap();
//! let invocation = InvocationContext::with_remaining("signups", "request-1", Duration::from_secs(30));
//! let response = processor.handle_event(event, invocation).await.unwrap();
//! assert!(response.batch_item_failures.is_empty());
//! # }
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `dynamodb` | yes | [`store::DynamoDbStore`], DynamoDB business writes, Lambda mode's default store |
//! | `embedded` | yes | [`store::EmbeddedStore`]: SQLite in a file, shared by local processes |
//! | `redis` | no | [`store::RedisStore`]: a Redis or Valkey server (claim mode only), Lambda mode's store when `REDIS_URL` is set, `--store redis` |
//! | `sqs` | yes (through `local`) | [`retry::SqsQueue`]: backoff and dead-lettering through the SQS API, in Lambda mode and `poll` (`SQS_KIT_BACKOFF`, `SQS_KIT_DEAD_LETTER`) |
//! | `local` | yes | the `replay` and `poll` modes of [`runner::Runner`], its `--store` flags ([`runner::StoreArgs`]) and the helpers for a function's own commands |
//! | `opentelemetry` | no | one OpenTelemetry span per record (through `tracing-opentelemetry`), with the messaging attributes and a link to the producer's span from `AWSTraceHeader` |
//! | `fault-injection` | no | `SQS_KIT_FAULT` crash and fault rules, for tests |
//!
//! With `default-features = false` the crate has no AWS SDK, no SQLite and no clap: batch
//! processing, idempotency on the memory store or a store of one's own, and Lambda mode.
//!
//! # Stability
//!
//! The configurations ([`BatchConfig`], [`IdempotencyConfig`]) and the enums a caller matches
//! on (outcomes, errors, failure kinds) are `#[non_exhaustive]`: build a configuration from its
//! `Default` (or constructor) and its `with_*` methods, and give a `match` on an outcome or an
//! error a `_` arm, so that a later release can add a setting or a case without breaking it.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod batch;
mod env;
pub mod error;
mod fault;
pub mod handler;
pub mod idempotency;
pub mod metrics;
pub mod output;
pub mod record;
pub mod redact;
pub mod retry;
pub mod runner;
pub mod store;
mod trace;

pub use batch::{AllFailedPolicy, BatchConfig, BatchProcessor, FifoFailureMode, Outcome, QueueKind};
pub use error::{FailureKind, RecordError};
pub use handler::{handler_fn, typed, RecordContext, RecordHandler, RecordService};
pub use idempotency::{IdempotencyConfig, IdempotencyLayer, Idempotent};
pub use record::{InvocationContext, RecordMeta};
