//! The retention sweep of recipient data (`docs/care.md`): every hour, each instance erases the
//! data of recipients whose service ended more than `VELFERD_CARE_RETENTION_DAYS` days ago.
//! Erasing is idempotent, so instances running it at once on one database do no harm.

use std::time::Duration;

use chrono::{Days, Utc};

use crate::db::Database;

/// How often the sweep runs.
const EVERY: Duration = Duration::from_secs(3600);

/// Starts the sweep on the runtime; it runs once at start, then every hour.
pub fn start(db: Database, retention_days: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let Some(cutoff) = Utc::now().date_naive().checked_sub_days(Days::new(u64::from(retention_days))) else {
                continue;
            };
            // One transaction: a recipient is erased whole or not at all. On the background
            // connection, outside the request statement count.
            let erased = async {
                use sea_orm::TransactionTrait;
                let txn = db.background().begin().await?;
                let erased = super::rules::erase_ended(&txn, cutoff).await?;
                txn.commit().await?;
                Ok::<u64, crate::errors::ApiError>(erased)
            };
            match erased.await {
                Ok(0) => {}
                Ok(erased) => tracing::info!(erased, %cutoff, "erased the data of recipients whose service ended"),
                Err(e) => tracing::warn!(error = %e, "the care retention sweep failed; it runs again within the hour"),
            }
        }
    })
}
