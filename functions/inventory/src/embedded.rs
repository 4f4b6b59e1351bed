//! Stock and reservations in the embedded store's database, so that a reservation commits in
//! the same SQLite transaction as the order event's idempotency record.

use std::sync::Arc;

use async_trait::async_trait;
use orders::Line;
use rusqlite::{params, OptionalExtension};
use sqs_kit::store::{BusinessWrite, EmbeddedStore, WriteRejected};

use crate::domain::{Reservation, ReservationStatus, StockLevel, StockPort};

pub struct EmbeddedStock {
    store: Arc<EmbeddedStore>,
}

impl EmbeddedStock {
    pub fn new(store: Arc<EmbeddedStore>) -> anyhow::Result<Self> {
        store.with_connection("create the inventory tables", |connection| {
            connection.execute_batch(
                "CREATE TABLE IF NOT EXISTS inventory_stock (
                     sku TEXT PRIMARY KEY,
                     available INTEGER NOT NULL CHECK (available >= 0)
                 );
                 CREATE TABLE IF NOT EXISTS inventory_reservations (
                     order_id TEXT PRIMARY KEY,
                     event_id TEXT NOT NULL,
                     status TEXT NOT NULL,
                     lines TEXT NOT NULL,
                     reason TEXT
                 );",
            )
        })?;
        Ok(Self { store })
    }
}

fn insert_reservation(reservation: &Reservation) -> BusinessWrite {
    let reservation = reservation.clone();
    BusinessWrite::Embedded(Box::new(move |tx| {
        let inserted = tx.execute(
            "INSERT INTO inventory_reservations (order_id, event_id, status, lines, reason)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (order_id) DO NOTHING",
            params![
                reservation.order_id,
                reservation.event_id,
                reservation.status.as_str(),
                serde_json::to_string(&reservation.lines).expect("lines serialize"),
                reservation.reason,
            ],
        )?;
        if inserted == 0 {
            return Err(WriteRejected::Condition(format!("order {} already has a reservation", reservation.order_id)));
        }
        Ok(())
    }))
}

#[async_trait]
impl StockPort for EmbeddedStock {
    fn reserve(&self, reservation: &Reservation) -> Vec<BusinessWrite> {
        let mut writes: Vec<BusinessWrite> = reservation
            .lines
            .iter()
            .map(|line| {
                let Line { sku, quantity } = line.clone();
                BusinessWrite::Embedded(Box::new(move |tx| {
                    let taken = tx.execute(
                        "UPDATE inventory_stock SET available = available - ?2 WHERE sku = ?1 AND available >= ?2",
                        params![sku, quantity],
                    )?;
                    if taken == 0 {
                        return Err(WriteRejected::Condition(format!("not enough {sku} for {quantity}")));
                    }
                    Ok(())
                }))
            })
            .collect();
        writes.push(insert_reservation(reservation));
        writes
    }

    fn record(&self, reservation: &Reservation) -> BusinessWrite {
        insert_reservation(reservation)
    }

    fn release(&self, reservation: &Reservation) -> Vec<BusinessWrite> {
        let mut writes: Vec<BusinessWrite> = reservation
            .lines
            .iter()
            .map(|line| {
                let Line { sku, quantity } = line.clone();
                BusinessWrite::Embedded(Box::new(move |tx| {
                    // Summed here, not in SQL: SQLite turns an overflowing integer sum into a float.
                    let available: i64 = tx
                        .query_row("SELECT available FROM inventory_stock WHERE sku = ?1", [&sku], |row| row.get(0))
                        .optional()?
                        .unwrap_or(0);
                    let Some(available) = available.checked_add(quantity) else {
                        return Err(WriteRejected::Condition(format!("{sku}: {available} plus {quantity} does not fit an i64")));
                    };
                    tx.execute(
                        "INSERT INTO inventory_stock (sku, available) VALUES (?1, ?2)
                         ON CONFLICT (sku) DO UPDATE SET available = excluded.available",
                        params![sku, available],
                    )?;
                    Ok(())
                }))
            })
            .collect();
        let order_id = reservation.order_id.clone();
        writes.push(BusinessWrite::Embedded(Box::new(move |tx| {
            let released = tx.execute(
                "UPDATE inventory_reservations SET status = 'RELEASED' WHERE order_id = ?1 AND status = 'RESERVED'",
                [&order_id],
            )?;
            if released == 0 {
                return Err(WriteRejected::Condition(format!("the reservation of order {order_id} is no longer RESERVED")));
            }
            Ok(())
        })));
        writes
    }

    async fn reservation(&self, order_id: &str) -> anyhow::Result<Option<Reservation>> {
        let row = self.store.with_connection("read a reservation", |connection| {
            connection
                .query_row(
                    "SELECT order_id, event_id, status, lines, reason FROM inventory_reservations WHERE order_id = ?1",
                    [order_id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?, row.get(4)?)),
                )
                .optional()
        })?;
        row.map(|(order_id, event_id, status, lines, reason)| {
            Ok(Reservation {
                order_id,
                event_id,
                status: ReservationStatus::parse(&status).ok_or_else(|| anyhow::anyhow!("unknown reservation status {status}"))?,
                lines: serde_json::from_str(&lines)?,
                reason,
            })
        })
        .transpose()
    }

    async fn level(&self, sku: &str) -> anyhow::Result<Option<i64>> {
        Ok(self.store.with_connection("read a stock level", |connection| {
            connection.query_row("SELECT available FROM inventory_stock WHERE sku = ?1", [sku], |row| row.get(0)).optional()
        })?)
    }

    async fn levels(&self) -> anyhow::Result<Vec<StockLevel>> {
        Ok(self.store.with_connection("read stock levels", |connection| {
            let mut statement = connection.prepare("SELECT sku, available FROM inventory_stock ORDER BY sku")?;
            let levels = statement.query_map([], |row| Ok(StockLevel { sku: row.get(0)?, available: row.get(1)? }))?;
            levels.collect()
        })?)
    }

    async fn seed(&self, levels: &[StockLevel]) -> anyhow::Result<()> {
        Ok(self.store.with_connection("seed stock levels", |connection| {
            let tx = connection.transaction()?;
            for level in levels {
                tx.execute(
                    "INSERT INTO inventory_stock (sku, available) VALUES (?1, ?2)
                     ON CONFLICT (sku) DO UPDATE SET available = excluded.available",
                    params![level.sku, level.available],
                )?;
            }
            tx.commit()
        })?)
    }
}
