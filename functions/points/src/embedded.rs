//! Balances and ledger entries in the embedded store's database, committed in the same SQLite
//! transaction as the order event's idempotency record.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use sqs_kit::store::{BusinessWrite, EmbeddedStore, WriteRejected};

use crate::domain::{Account, EntryKind, LedgerEntry, PointsPort};

pub struct EmbeddedPoints {
    store: Arc<EmbeddedStore>,
}

impl EmbeddedPoints {
    pub fn new(store: Arc<EmbeddedStore>) -> anyhow::Result<Self> {
        store.with_connection("create the points tables", |connection| {
            connection.execute_batch(
                "CREATE TABLE IF NOT EXISTS points_balances (
                     customer_id TEXT PRIMARY KEY,
                     balance INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS points_ledger (
                     customer_id TEXT NOT NULL,
                     order_id TEXT NOT NULL,
                     kind TEXT NOT NULL,
                     event_id TEXT NOT NULL,
                     points INTEGER NOT NULL,
                     PRIMARY KEY (customer_id, order_id, kind)
                 );",
            )
        })?;
        Ok(Self { store })
    }
}

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    let kind: String = row.get(3)?;
    Ok(LedgerEntry {
        customer_id: row.get(0)?,
        order_id: row.get(1)?,
        points: row.get(2)?,
        kind: EntryKind::parse(&kind).unwrap_or(EntryKind::Accrual),
        event_id: row.get(4)?,
    })
}

#[async_trait]
impl PointsPort for EmbeddedPoints {
    fn post(&self, entry: &LedgerEntry, counterpart_exists: bool) -> Vec<BusinessWrite> {
        // Three writes in the order the port promises: the index of a failed condition tells
        // the domain which rule held.
        let (insert, guard, add) = (entry.clone(), entry.clone(), entry.clone());
        vec![
            BusinessWrite::Embedded(Box::new(move |tx| {
                let inserted = tx.execute(
                    "INSERT INTO points_ledger (customer_id, order_id, kind, event_id, points)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    params![insert.customer_id, insert.order_id, insert.kind.as_str(), insert.event_id, insert.points],
                )?;
                if inserted == 0 {
                    return Err(WriteRejected::Condition(format!(
                        "order {} already has a {} entry",
                        insert.order_id,
                        insert.kind.as_str()
                    )));
                }
                Ok(())
            })),
            BusinessWrite::Embedded(Box::new(move |tx| {
                let counterpart = guard.kind.counterpart();
                let exists: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM points_ledger WHERE customer_id = ?1 AND order_id = ?2 AND kind = ?3)",
                    params![guard.customer_id, guard.order_id, counterpart.as_str()],
                    |row| row.get(0),
                )?;
                if exists != counterpart_exists {
                    let has = if exists { "now has" } else { "no longer has" };
                    return Err(WriteRejected::Condition(format!("order {} {has} a {} entry", guard.order_id, counterpart.as_str())));
                }
                Ok(())
            })),
            BusinessWrite::Embedded(Box::new(move |tx| {
                // Summed here, not in SQL: SQLite turns an overflowing integer sum into a float.
                let balance: i64 = tx
                    .query_row("SELECT balance FROM points_balances WHERE customer_id = ?1", [&add.customer_id], |row| row.get(0))
                    .optional()?
                    .unwrap_or(0);
                let Some(balance) = balance.checked_add(add.points) else {
                    return Err(WriteRejected::Condition(format!(
                        "customer {}'s balance {balance} plus {} points does not fit an i64",
                        add.customer_id, add.points
                    )));
                };
                tx.execute(
                    "INSERT INTO points_balances (customer_id, balance) VALUES (?1, ?2)
                     ON CONFLICT (customer_id) DO UPDATE SET balance = excluded.balance",
                    params![add.customer_id, balance],
                )?;
                Ok(())
            })),
        ]
    }

    async fn entry(&self, customer_id: &str, order_id: &str, kind: EntryKind) -> anyhow::Result<Option<LedgerEntry>> {
        Ok(self.store.with_connection("read a ledger entry", |connection| {
            connection
                .query_row(
                    "SELECT customer_id, order_id, points, kind, event_id FROM points_ledger
                     WHERE customer_id = ?1 AND order_id = ?2 AND kind = ?3",
                    params![customer_id, order_id, kind.as_str()],
                    entry_from_row,
                )
                .optional()
        })?)
    }

    async fn account(&self, customer_id: &str) -> anyhow::Result<Account> {
        Ok(self.store.with_connection("read an account", |connection| {
            let balance = connection
                .query_row("SELECT balance FROM points_balances WHERE customer_id = ?1", [customer_id], |row| row.get(0))
                .optional()?
                .unwrap_or(0);
            let mut statement = connection.prepare(
                "SELECT customer_id, order_id, points, kind, event_id FROM points_ledger
                 WHERE customer_id = ?1 ORDER BY order_id, kind",
            )?;
            let ledger = statement.query_map([customer_id], entry_from_row)?.collect::<rusqlite::Result<_>>()?;
            Ok(Account { customer_id: customer_id.to_owned(), balance, ledger })
        })?)
    }
}
