//! Transactional mode: a deposit credits an account balance in the same transaction that marks
//! the deposit's idempotency key completed, so a deposit is applied exactly once even when the
//! process dies between the write and the record of it.
//!
//! ```text
//! cargo run -p sqs-kit --example transactional -- replay events/examples/deposits.json
//! cargo run -p sqs-kit --example transactional -- balance acc-1
//! ```
//!
//! The balances live where the idempotency records do, since one transaction can only span one
//! store: a table of the embedded store's SQLite database locally, a DynamoDB table in Lambda or
//! with `--store dynamodb` (named by `BALANCES_TABLE`, partition key `account`, a string). The
//! adapters are picked from the [`Backend`] the runner opened; any other backend (`--store
//! memory`, a store given to `Runner::with_store`) is refused when the function starts.

use std::process::ExitCode;
use std::sync::Arc;

use aws_sdk_dynamodb::types::Update;
use clap::Subcommand;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use sqs_kit::idempotency::Transaction;
use sqs_kit::runner::{BadInput, Runner, StoreArgs};
use sqs_kit::store::{attributes, Backend, BusinessWrite, EmbeddedStore};
use sqs_kit::{typed, IdempotencyConfig, RecordContext, RecordError, RecordHandler};

const NAME: &str = "transactional";
/// The variable naming the DynamoDB balances table.
const BALANCES_TABLE: &str = "BALANCES_TABLE";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Deposit {
    deposit_id: String,
    account: String,
    /// In cents. Unsigned and 32 bits: a deposit cannot take a balance down, and it would take
    /// billions of them to carry a balance past an `i64`.
    amount: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Credited {
    deposit_id: String,
    account: String,
    amount: u32,
}

/// The balances table, on the store the idempotency records are in.
enum Balances {
    Embedded(Arc<EmbeddedStore>),
    DynamoDb { client: aws_sdk_dynamodb::Client, table: String },
}

impl Balances {
    fn on(backend: &Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Embedded(store) => {
                store.with_connection("create the balances table", |connection| {
                    connection.execute_batch("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
                })?;
                Ok(Balances::Embedded(Arc::clone(store)))
            }
            Backend::DynamoDb(store) => {
                let table = std::env::var(BALANCES_TABLE)
                    .map_err(|_| BadInput(format!("{NAME} needs {BALANCES_TABLE} set to the name of its DynamoDB balances table")))?;
                // The idempotency store's client: the same credentials, endpoint and connections.
                Ok(Balances::DynamoDb { client: store.client().clone(), table })
            }
            other => Err(other.unsupported(NAME).into()),
        }
    }

    /// The write that adds `amount` to `account`'s balance (creating it at 0), for the store's
    /// own transaction: SQL run inside the embedded store's, an `Update` item of DynamoDB's.
    fn credit(&self, account: &str, amount: u32) -> BusinessWrite {
        let account = account.to_owned();
        match self {
            Balances::Embedded(_) => BusinessWrite::Embedded(Box::new(move |transaction| {
                transaction.execute(
                    "INSERT INTO balances (account, balance) VALUES (?1, ?2)
                     ON CONFLICT (account) DO UPDATE SET balance = balance + excluded.balance",
                    params![account, amount],
                )?;
                Ok(())
            })),
            Balances::DynamoDb { table, .. } => BusinessWrite::update(
                Update::builder()
                    .table_name(table)
                    .key("account", attributes::s(&account))
                    .update_expression("ADD balance :amount")
                    .expression_attribute_values(":amount", attributes::n(amount.into()))
                    .build()
                    .expect("table, key and expression are set"),
            ),
        }
    }

    async fn balance(&self, account: &str) -> anyhow::Result<i64> {
        Ok(match self {
            Balances::Embedded(store) => store.with_connection("read a balance", |connection| {
                connection.query_row("SELECT balance FROM balances WHERE account = ?1", [account], |row| row.get(0)).optional()
            })?,
            Balances::DynamoDb { client, table } => {
                let read = client.get_item().table_name(table).key("account", attributes::s(account)).consistent_read(true).send().await;
                let read =
                    read.map_err(|e| anyhow::anyhow!("cannot read {account}'s balance from {table}: {}", attributes::sdk_error(&e)))?;
                read.item().and_then(|item| attributes::number(item, "balance"))
            }
        }
        .unwrap_or(0))
    }
}

struct Deposits {
    balances: Balances,
}

impl RecordHandler for Deposits {
    type Body = Deposit;
    type Output = Credited;

    async fn handle(&self, deposit: Deposit, cx: RecordContext) -> Result<Credited, RecordError> {
        let credited = Credited { deposit_id: deposit.deposit_id, account: deposit.account, amount: deposit.amount };
        // One atomic commit of the credit and of the `COMPLETED` record carrying `credited`:
        // a crash before it leaves neither (the redelivery credits), a crash after it both (the
        // redelivery is a duplicate). Had another delivery committed first, the commit writes
        // nothing and the record is reported as that delivery's duplicate.
        let write = self.balances.credit(&credited.account, credited.amount);
        Transaction::of(&cx)?.commit(vec![write], &credited).await?;
        tracing::info!(account = %credited.account, amount = credited.amount, "deposit credited");
        Ok(credited)
    }
}

/// `balance ACCOUNT`, beside `replay`, on the same store flags.
#[derive(Debug, Subcommand)]
enum Command {
    /// Print an account's balance as JSON (an account with no deposit has 0).
    Balance {
        account: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Balance { account, store } = command;
    let balance = Balances::on(&store.open_existing().await?)?.balance(&account).await?;
    sqs_kit::output::print_json(&serde_json::json!({ "account": account, "balance": balance }))?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    Runner::with_backend(NAME, |backend| Ok(typed(Deposits { balances: Balances::on(backend)? })))
        .idempotent(IdempotencyConfig::keyed_by("/depositId").transactional())
        .with_commands(run)
        .run()
        .await
}
