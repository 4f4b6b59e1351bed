//! `inventory seed FILE` and `inventory stock [SKU]`: set and read stock levels, locally or in
//! DynamoDB, as JSON `[{"sku": "SKU-KEYBOARD", "available": 10}]`.

use std::collections::HashSet;
use std::path::PathBuf;

use clap::Subcommand;
use sqs_kit::output::print_json;
use sqs_kit::runner::{load_json, BadInput, StoreArgs};

use crate::domain::StockLevel;

const SHAPE: &str = r#"a list of stock levels like [{"sku": "SKU-KEYBOARD", "available": 10}]"#;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set stock levels from a JSON file (`-` for stdin): [{"sku": "SKU-KEYBOARD", "available": 10}].
    /// SKUs not in the file keep their levels.
    Seed {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print stock levels as JSON: every SKU, or one.
    Stock {
        sku: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Seed { file, store } => {
            let levels: Vec<StockLevel> = load_json(&file, SHAPE)?;
            check_levels(&levels)?;
            let stock = crate::stock_port(&store.open().await?)?;
            stock.seed(&levels).await?;
            print_json(&levels)?;
        }
        Command::Stock { sku, store } => {
            let stock = crate::stock_port(&store.open_existing().await?)?;
            let levels = match sku {
                Some(sku) => {
                    let available = stock
                        .level(&sku)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no stock level for {sku}; set one with `inventory seed FILE`"))?;
                    vec![StockLevel { sku, available }]
                }
                None => stock.levels().await?,
            };
            print_json(&levels)?;
        }
    }
    Ok(())
}

fn check_levels(levels: &[StockLevel]) -> Result<(), BadInput> {
    let mut seen = HashSet::new();
    for (index, level) in levels.iter().enumerate() {
        if level.sku.trim().is_empty() {
            return Err(BadInput(format!("stock level {index} has an empty sku")));
        }
        if level.sku.len() > orders::limits::MAX_SKU_BYTES {
            return Err(BadInput(format!(
                "stock level {index} has a {}-byte sku; at most {} bytes are allowed, {}",
                level.sku.len(),
                orders::limits::MAX_SKU_BYTES,
                orders::limits::SKU_LIMIT
            )));
        }
        if level.available < 0 {
            return Err(BadInput(format!("stock level {index} ({}) has a negative available count {}", level.sku, level.available)));
        }
        if !seen.insert(level.sku.as_str()) {
            return Err(BadInput(format!("{} appears more than once", level.sku)));
        }
    }
    Ok(())
}
