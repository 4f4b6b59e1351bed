//! A FIFO-queue function: ledger entries per account, in order, where a failed entry holds back
//! the later entries of its own account and no other.
//!
//! ```text
//! cargo run -p sqs-kit --example fifo -- replay events/examples/fifo-two-groups.json
//! ```
//!
//! The queue's message group is the account. On a FIFO queue (its ARN ends in `.fifo`) the
//! batch processor runs the records of one group one after the other, and the groups side by
//! side. When an entry fails, the later entries of its group are not attempted and go back to
//! the queue with it, so that SQS delivers them again in their order; the other groups go on.
//! In the sample, `acc-A`'s debit overdraws: it and the credit after it are in
//! `batchItemFailures`, while both of `acc-B`'s entries, one of them after the failure in the
//! batch, are processed.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sqs_kit::runner::Runner;
use sqs_kit::{typed, BatchConfig, FifoFailureMode, RecordContext, RecordError, RecordHandler};

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Credit,
    Debit,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    account: String,
    kind: Kind,
    /// In cents.
    amount: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Posted {
    account: String,
    balance: i64,
}

/// Running balances, in memory to keep the example about ordering; a real function keeps them
/// in a store, written in transactional mode as the `transactional` example does.
#[derive(Default)]
struct Ledger {
    balances: Mutex<HashMap<String, i64>>,
}

impl RecordHandler for Ledger {
    type Body = Entry;
    type Output = Posted;

    async fn handle(&self, entry: Entry, cx: RecordContext) -> Result<Posted, RecordError> {
        let mut balances = self.balances.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let balance = balances.entry(entry.account.clone()).or_default();
        let after = match entry.kind {
            Kind::Credit => *balance + i64::from(entry.amount),
            Kind::Debit => *balance - i64::from(entry.amount),
        };
        if after < 0 {
            // Order is why this is a FIFO queue: after the credit that follows it, the same debit
            // would pass. Permanent: redelivered in the same order, it meets the same balance,
            // until the redrive policy moves it to the dead-letter queue and the group goes on.
            return Err(RecordError::permanent(format!(
                "a debit of {} would overdraw account {} (balance {balance}, message group {})",
                entry.amount,
                entry.account,
                cx.meta.message_group_id.as_deref().unwrap_or("none")
            )));
        }
        *balance = after;
        Ok(Posted { account: entry.account, balance: after })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // `HoldBackGroup` is the default, spelled out here; `StopBatch` would hold back every later
    // record of the batch, whatever its group.
    let config = BatchConfig::default().with_fifo_failure_mode(FifoFailureMode::HoldBackGroup);
    Runner::new("fifo", typed(Ledger::default())).with_config(config).run().await
}
