//! Retry control: what happens to a failed record besides being reported failed.
//!
//! Left alone, SQS makes a failed message visible again when its visibility timeout ends, and
//! the queue's redrive policy moves it to the dead-letter queue after `maxReceiveCount`
//! receives. Two opt-in controls change that, each configured in
//! [`BatchConfig`](crate::BatchConfig) (or the environment, through the runner) and carried out
//! through a [`QueueActions`] port ([`SqsQueue`] with the `sqs` feature):
//!
//! - [`Backoff`]: a transiently failed record comes back after an exponential delay that grows
//!   with its receive count, instead of the queue's fixed timeout (`ChangeMessageVisibility`).
//! - [`DeadLetterTarget`]: a permanently failed record is sent to the dead-letter queue at once,
//!   with [`attributes`] saying why, and reported successful only once the queue accepted it.
//!
//! Neither can lose a message: when the call to SQS fails, the record is reported failed exactly
//! as it would have been without the control.

pub mod attributes;
mod backoff;
mod dead_letter;
mod queue;
#[cfg(feature = "sqs")]
mod sqs;

pub use backoff::{Backoff, InvalidBackoff, Jitter, MAX_BACKOFF};
pub use dead_letter::{DeadLetterMessage, DeadLetterTarget, InvalidDeadLetterTarget, NotForwardable};
pub use queue::{queue_url_of_arn, EntryFailure, QueueActions, QueueError, VisibilityChange, VISIBILITY_BATCH_LIMIT};
#[cfg(feature = "sqs")]
pub use sqs::SqsQueue;
