//! Retention of the tables that grow with every message (issue 16): one sweep, every
//! `VELFERD_RETENTION_INTERVAL_SECONDS` on each instance, deletes what is older than its
//! setting — device events and ingest receipts, resolved dead letters, finished webhook
//! deliveries (with their attempts), the refusal log's counts and the audit log's oldest
//! entries (`crate::audit::retention`, which keeps the chain verifiable) — and never what
//! another row still needs. `docs/operations.md` lists what is kept how long, and why.
//!
//! Two other sweeps keep their own schedule: the outbox's pruning (`crate::live`, every minute
//! or so, past `VELFERD_LIVE_RETENTION_SECONDS` and never past a webhook fan-out that has not
//! handled a row) and the care area's erasure of recipients whose service ended
//! (`crate::care::sweep`).
//!
//! Each table is walked by its primary key, `batch` rows at a time, from its oldest row: one
//! short `DELETE … WHERE id > ? AND id <= ?` per chunk, so no statement holds the write lock
//! (SQLite) or many row locks (PostgreSQL) for long, and a chunk that holds a row newer than
//! the cutoff ends the walk (ids grow with time). Rows kept because something still needs them
//! are walked over again by the next sweep: few, and each costs one index lookup. Deleting is
//! idempotent, so instances sweeping one database at once do no harm.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use crate::db::Database;
use crate::telemetry::Metrics;

/// How long each kind of row is kept, in days (`None`: forever), and how the sweep runs.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Device events and the ingest receipts they came in (`VELFERD_EVENT_RETENTION_DAYS`).
    pub events_days: Option<u32>,
    /// Dead letters, counted from when they were resolved (`VELFERD_DEAD_LETTER_RETENTION_DAYS`).
    pub dead_letters_days: Option<u32>,
    /// Webhook deliveries, from when they succeeded or failed for good
    /// (`VELFERD_WEBHOOK_DELIVERY_RETENTION_DAYS`).
    pub webhook_deliveries_days: Option<u32>,
    /// The refusal log's per-minute counts (`VELFERD_REFUSAL_RETENTION_DAYS`).
    pub refusals_days: Option<u32>,
    /// The audit log of health data (`VELFERD_AUDIT_RETENTION_DAYS`).
    pub audit_days: Option<u32>,
    /// How often each instance sweeps (`VELFERD_RETENTION_INTERVAL_SECONDS`).
    pub interval: Duration,
    /// Most rows one delete statement removes (`VELFERD_RETENTION_BATCH`).
    pub batch: u64,
}

/// The tables the sweep deletes from, in the order it sweeps them (events before the receipts
/// they came in: a receipt goes only when no event of it is left).
pub const TABLES: [&str; 6] =
    ["device_event", "ingest_receipt", "dead_letter", "webhook_delivery", "refused_attempt", "audit_entry"];

/// Rows one sweep deleted, by table, in [`TABLES`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub deleted: Vec<(&'static str, u64)>,
}

impl Swept {
    /// Rows deleted from `table`.
    pub fn from(&self, table: &str) -> u64 {
        self.deleted.iter().filter(|(t, _)| *t == table).map(|(_, n)| n).sum()
    }

    pub fn total(&self) -> u64 {
        self.deleted.iter().map(|(_, n)| n).sum()
    }
}

/// One table's walk: which rows are old (`made` compared with the cutoff) and what else a row
/// must be to go (`and`, SQL with `?` for the cutoff).
struct Walk {
    table: &'static str,
    made: &'static str,
    and: &'static str,
}

/// An event goes unless an alert it raised is still open.
const EVENTS: Walk = Walk {
    table: "device_event",
    made: "received_at",
    and: "NOT EXISTS (SELECT 1 FROM alert WHERE alert.event_id = device_event.id AND alert.status <> 'resolved')",
};

/// A receipt goes once none of its events is left (deleting it would take them with it), and
/// not while the dead letter it made is unresolved.
const RECEIPTS: Walk = Walk {
    table: "ingest_receipt",
    made: "received_at",
    and: "NOT EXISTS (SELECT 1 FROM device_event WHERE device_event.receipt_id = ingest_receipt.id) \
          AND (ingest_receipt.dead_letter_id IS NULL OR NOT EXISTS (SELECT 1 FROM dead_letter \
          WHERE dead_letter.id = ingest_receipt.dead_letter_id AND dead_letter.resolved_at IS NULL))",
};

/// A dead letter goes once it was resolved before the cutoff; an unresolved one stays, however
/// old (the supplier's quota bounds those).
const DEAD_LETTERS: Walk =
    Walk { table: "dead_letter", made: "first_received_at", and: "resolved_at IS NOT NULL AND resolved_at < ?" };

/// A delivery goes once it succeeded or failed for good before the cutoff; a pending one
/// stays. Its attempts go with it (their foreign key cascades).
const DELIVERIES: Walk = Walk {
    table: "webhook_delivery",
    made: "created_at",
    and: "status <> 'pending' AND finished_at IS NOT NULL AND finished_at < ?",
};

/// The refusal log's counts: nothing else refers to them.
const REFUSALS: Walk = Walk { table: "refused_attempt", made: "minute", and: "1 = 1" };

/// The cutoff `days` before `now`; `None` when kept forever.
fn cutoff(now: DateTime<Utc>, days: Option<u32>) -> Option<DateTime<Utc>> {
    days.and_then(|days| now.checked_sub_signed(chrono::Duration::days(i64::from(days))))
}

/// Runs every sweep once, as at `now`: deletes what its settings say is too old and nothing
/// another row still needs. Tests call it with a `now` of their choosing rather than wait.
pub async fn sweep(db: &Database, settings: &RetentionSettings, now: DateTime<Utc>) -> Result<Swept, DbErr> {
    let batch = settings.batch.max(1);
    let mut swept = Swept::default();
    let at = |days| cutoff(now, days).map(|c| Value::from(c.fixed_offset()));
    let walks = [
        (&EVENTS, at(settings.events_days)),
        (&RECEIPTS, at(settings.events_days)),
        (&DEAD_LETTERS, at(settings.dead_letters_days)),
        (&DELIVERIES, at(settings.webhook_deliveries_days)),
        (&REFUSALS, cutoff(now, settings.refusals_days).map(|c| Value::from(c.timestamp()))),
    ];
    for (walk, cutoff) in walks {
        let deleted = match cutoff {
            Some(cutoff) => delete_old(db, walk, cutoff, batch).await?,
            None => 0,
        };
        swept.deleted.push((walk.table, deleted));
    }
    let audit = match cutoff(now, settings.audit_days) {
        Some(cutoff) => crate::audit::retention::sweep(db, cutoff, &crate::audit::key::current(), batch).await?,
        None => 0,
    };
    swept.deleted.push(("audit_entry", audit));
    Ok(swept)
}

/// A pause between two chunks: lets waiting writers (ingest) take the write lock in between.
const PAUSE: Duration = Duration::from_millis(5);

/// Walks `walk.table` from its oldest row, `batch` ids at a time, deleting in each chunk the
/// rows made before `cutoff` that may go; stops after the first chunk holding a newer row.
async fn delete_old(db: &Database, walk: &Walk, cutoff: Value, batch: u64) -> Result<u64, DbErr> {
    let backend = db.write().get_database_backend();
    let Walk { table, made, and } = walk;
    let chunk_end =
        format!("SELECT MAX(id) AS upper FROM (SELECT id FROM {table} WHERE id > ? ORDER BY id LIMIT {batch}) chunk");
    let delete = format!("DELETE FROM {table} WHERE id > ? AND id <= ? AND {made} < ? AND ({and})");
    let newer = format!("SELECT id FROM {table} WHERE id > ? AND id <= ? AND {made} >= ? LIMIT 1");
    let cutoffs_in_and = and.matches('?').count();
    let mut after = 0i64;
    let mut deleted = 0;
    loop {
        let row = db.background().query_one_raw(statement(backend, &chunk_end, vec![after.into()])).await?;
        let Some(upper) = row.map(|r| r.try_get::<Option<i64>>("", "upper")).transpose()?.flatten() else { break };
        let mut values: Vec<Value> = vec![after.into(), upper.into(), cutoff.clone()];
        values.extend(std::iter::repeat_n(cutoff.clone(), cutoffs_in_and));
        deleted += db.write().execute_raw(statement(backend, &delete, values)).await?.rows_affected();
        let newer_row = db
            .background()
            .query_one_raw(statement(backend, &newer, vec![after.into(), upper.into(), cutoff.clone()]))
            .await?;
        if newer_row.is_some() {
            break;
        }
        after = upper;
        tokio::time::sleep(PAUSE).await;
    }
    Ok(deleted)
}

/// `sql` with its `?` placeholders numbered for PostgreSQL (`$1`, `$2`, …).
fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            let mut numbered = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    numbered.push_str(&format!("${n}"));
                } else {
                    numbered.push(c);
                }
            }
            numbered
        }
        _ => sql.to_string(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The sweep's task: it stops when this is dropped (with the server's last state).
pub struct Retention {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Retention {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Retention {
    /// Starts sweeping on the current Tokio runtime: once at start, then every interval.
    pub fn start(db: Database, settings: RetentionSettings, metrics: Arc<Metrics>) -> Retention {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(settings.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Nobody's request: its statements stay out of the request statement count.
                match crate::db::unmetered(sweep(&db, &settings, Utc::now())).await {
                    Ok(swept) => {
                        for (table, deleted) in swept.deleted.into_iter().filter(|(_, n)| *n > 0) {
                            metrics.retention_deleted(table, deleted);
                            tracing::info!(table, deleted, "retention: deleted rows older than their retention");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the retention sweep failed; it runs again at the next interval")
                    }
                }
            }
        });
        Retention { task }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let sql = "DELETE FROM t WHERE id > ? AND id <= ? AND (x < ?)";
        let pg = statement(DbBackend::Postgres, sql, vec![]);
        assert_eq!(pg.sql, "DELETE FROM t WHERE id > $1 AND id <= $2 AND (x < $3)");
        assert_eq!(statement(DbBackend::Sqlite, sql, vec![]).sql, sql);
    }

    #[test]
    fn a_cutoff_lies_that_many_days_back_and_none_keeps_forever() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(cutoff(now, None), None);
        assert_eq!(cutoff(now, Some(30)).unwrap().to_rfc3339(), "2026-11-06T12:00:00+00:00");
    }
}
