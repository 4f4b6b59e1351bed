//! `sqs-kit`: the building blocks of AWS Lambda functions triggered by Amazon SQS.
//!
//! - [`batch`]: process a batch record by record and report partial failures.
//! - [`handler`]: the handler trait a function implements, and the service layers wrap.
//! - [`idempotency`]: process each key once, against a [`store`].
//! - [`runner`]: one call in `main` that serves Lambda or runs the local modes.

pub mod batch;
pub mod env;
pub mod error;
pub mod fault;
pub mod handler;
pub mod idempotency;
pub mod metrics;
pub mod output;
pub mod record;
pub mod redact;
pub mod runner;
pub mod store;
pub mod tool;

pub use batch::{AllFailedPolicy, BatchConfig, BatchProcessor, FifoFailureMode, Outcome, QueueKind};
pub use error::{FailureKind, RecordError};
pub use handler::{handler_fn, typed, RecordContext, RecordHandler, RecordService};
pub use idempotency::{IdempotencyConfig, Idempotent};
pub use record::{InvocationContext, RecordMeta};
