//! The message attributes sqs-kit adds to a record it sends to a dead-letter queue itself, so
//! that an operator sees why the message is there (`sqs-kit dlq peek` shows them, `sqs-kit dlq
//! redrive` strips them). Every name starts with [`PREFIX`]; a message's own attributes with
//! that prefix are dropped before these are added, so a message dead-lettered again carries one
//! set, the latest.

/// What every attribute name sqs-kit adds starts with.
pub const PREFIX: &str = "SqsKit.";
/// `String`: why the record failed, e-mail addresses redacted, at most [`MAX_REASON_BYTES`]
/// bytes.
pub const FAILURE_REASON: &str = "SqsKit.FailureReason";
/// `String`: the name of the function that failed it.
pub const FAILED_FUNCTION: &str = "SqsKit.FailedFunction";
/// `Number`: the `ApproximateReceiveCount` of the delivery that failed.
pub const RECEIVE_COUNT: &str = "SqsKit.ReceiveCount";
/// `String`: the ARN of the queue the record came from.
pub const SOURCE_QUEUE: &str = "SqsKit.SourceQueue";
/// `String`: the record's message id in its source queue (the copy in the dead-letter queue
/// gets a new one), which the function's log lines name.
pub const SOURCE_MESSAGE_ID: &str = "SqsKit.SourceMessageId";
/// Every name above.
pub const ALL: [&str; 5] = [FAILURE_REASON, FAILED_FUNCTION, RECEIVE_COUNT, SOURCE_QUEUE, SOURCE_MESSAGE_ID];
/// The longest failure reason kept, in bytes: reasons quote what they were given, and SQS counts
/// attributes into the message's size limit.
pub const MAX_REASON_BYTES: usize = 1000;
/// SQS takes at most this many message attributes on a message.
pub const SQS_LIMIT: usize = 10;
