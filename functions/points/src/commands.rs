//! `points balance CUSTOMER`: a customer's balance and ledger as JSON.

use clap::Subcommand;
use sqs_kit::runner::StoreArgs;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a customer's balance and ledger as JSON (a customer with no points has balance 0).
    Balance {
        customer: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Balance { customer, store } => {
            let account = crate::points_port(&store.open_existing().await?)?.account(&customer).await?;
            sqs_kit::output::print_json(&account)?;
        }
    }
    Ok(())
}
