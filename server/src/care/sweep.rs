//! The retention sweep of recipient data (`docs/care.md`): every hour, each instance erases the
//! data of recipients whose service ended more than `VELFERD_CARE_RETENTION_DAYS` days ago.
//! Erasing is idempotent, so instances running it at once on one database do no harm.

use std::time::Duration;

use chrono::{Days, Utc};

use crate::db::Database;

/// How often the sweep runs.
const EVERY: Duration = Duration::from_secs(3600);
/// How soon a sweep that failed runs again.
const RETRY: Duration = Duration::from_secs(60);

/// Starts the sweep on the runtime; it runs once at start, then every hour, and a minute after
/// a run that failed.
pub fn start(db: Database, retention_days: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let Some(cutoff) = Utc::now().date_naive().checked_sub_days(Days::new(u64::from(retention_days))) else {
                continue;
            };
            let erased = loop {
                match crate::db::unmetered(erase(&db, cutoff)).await {
                    Ok(erased) => break erased,
                    Err(e) => {
                        tracing::warn!(error = %e, "the care retention sweep failed; it runs again in a minute");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            };
            if erased > 0 {
                tracing::info!(erased, %cutoff, "erased the data of recipients whose service ended");
            }
        }
    })
}

/// One sweep, in one transaction: a recipient is erased whole or not at all. On the write
/// connection, like every read-then-write transaction: on SQLite a transaction that reads on
/// another connection and then writes fails as soon as anything else wrote meanwhile (CI saw
/// the sweep fail beside the start-up writers), and the recipient's data then waited an hour. Out of the request statement count (`unmetered`).
async fn erase(db: &Database, cutoff: chrono::NaiveDate) -> Result<u64, crate::errors::ApiError> {
    use sea_orm::TransactionTrait;
    let txn = db.write().begin().await?;
    let erased = super::rules::erase_ended(&txn, cutoff).await?;
    txn.commit().await?;
    Ok(erased)
}
