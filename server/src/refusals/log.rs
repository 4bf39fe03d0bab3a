//! Counting refused attempts in memory and writing the counts to the database.
//!
//! An attempt costs a lookup in a table of at most [`MAX_PENDING`] entries; the callers that do
//! not fit are counted together under [`OVERFLOW_CALLER`], per code, so the table and the rows
//! it becomes stay bounded whatever the flood (at most `MAX_PENDING` plus one per code for each
//! flush). A background task adds the counts to `refused_attempt` every
//! `VELFERD_REFUSAL_LOG_FLUSH_SECONDS`; an instance that stops loses at most that much of its log
//! (Prometheus has every attempt).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{DbErr, EntityTrait, Set};

use super::model::refused_attempt;
use crate::db::Database;
use crate::telemetry::Metrics;
use crate::throttle::CallerKey;

/// The codes the log keeps; any other code is not a refusal worth an operator's eye.
pub const LOGGED_CODES: &[&str] = &[
    "THROTTLED",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "MAX_DEPTH_EXCEEDED",
    "MAX_COST_EXCEEDED",
    "MAX_TOKENS_EXCEEDED",
    "MAX_NESTING_EXCEEDED",
    "MAX_SELECTIONS_EXCEEDED",
    "MAX_FRAGMENTS_EXCEEDED",
    "MAX_DIRECTIVES_EXCEEDED",
    "RESPONSE_TOO_LARGE",
    "BATCH_TOO_LARGE",
    "PAYLOAD_TOO_LARGE",
    "TOO_MANY_SUBSCRIPTIONS",
    "INGEST_RATE_LIMITED",
    "DEAD_LETTER_QUOTA_EXCEEDED",
    WS_TOKEN_EXPIRED,
    WS_TOO_MANY_CONNECTIONS,
    WS_MESSAGE_TOO_BIG,
    WS_FLOODED,
];

/// A WebSocket closed (4403) because its token expired.
pub const WS_TOKEN_EXPIRED: &str = "WS_TOKEN_EXPIRED";
/// A WebSocket closed (1013) because its subject or client address had as many open as allowed.
pub const WS_TOO_MANY_CONNECTIONS: &str = "WS_TOO_MANY_CONNECTIONS";
/// A WebSocket closed (1009) for a frame or message over `VELFERD_MAX_BODY_BYTES`.
pub const WS_MESSAGE_TOO_BIG: &str = "WS_MESSAGE_TOO_BIG";
/// A WebSocket closed (1008) for sending faster than it was answered.
pub const WS_FLOODED: &str = "WS_FLOODED";

/// Most (minute, caller, code) entries held between flushes.
pub const MAX_PENDING: usize = 1_000;
/// The caller the entries past [`MAX_PENDING`] are counted under.
pub const OVERFLOW_CALLER: &str = "(others)";
/// Rows per upsert statement (four values each, well under SQLite's variable limit).
const ROWS_PER_STATEMENT: usize = 250;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Entry {
    minute: i64,
    caller: String,
    code: &'static str,
}

/// The refused attempts of this instance not yet written.
pub struct RefusalLog {
    pending: Mutex<HashMap<Entry, u64>>,
    metrics: Arc<Metrics>,
    db: Database,
}

impl RefusalLog {
    /// The log, flushed every `flush` on the current Tokio runtime while it lives.
    pub fn start(db: Database, metrics: Arc<Metrics>, flush: Duration) -> Arc<RefusalLog> {
        let log = Arc::new(RefusalLog { pending: Mutex::new(HashMap::new()), metrics, db });
        let weak = Arc::downgrade(&log);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(flush);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(log) = weak.upgrade() else { return };
                if let Err(e) = log.flush().await {
                    tracing::warn!("the refusal log could not be written: {e}");
                }
            }
        });
        log
    }

    /// Counts one refused attempt of `caller` with `code`; a code not in [`LOGGED_CODES`] is not
    /// counted.
    pub fn record(&self, caller: &CallerKey, code: &str) {
        let Some(code) = LOGGED_CODES.iter().copied().find(|known| *known == code) else { return };
        self.metrics.refused_attempt(code);
        let minute = chrono::Utc::now().timestamp().div_euclid(60) * 60;
        let entry = Entry { minute, caller: caller.describe(), code };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if add(&mut pending, entry, 1) {
            self.metrics.refusal_log_overflow();
        }
    }

    /// Adds the counts held here to the database, by upsert: instances add to the same rows.
    /// On failure the counts are kept for the next flush.
    pub async fn flush(&self) -> Result<(), DbErr> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let entries: Vec<(Entry, u64)> = taken.into_iter().collect();
        for (i, chunk) in entries.chunks(ROWS_PER_STATEMENT).enumerate() {
            if let Err(e) = upsert(&self.db, chunk).await {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (entry, count) in entries[i * ROWS_PER_STATEMENT..].iter().cloned() {
                    add(&mut pending, entry, count);
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Adds `count` to `entry`, or to its code's overflow entry when the table is full; true when
/// it overflowed.
fn add(pending: &mut HashMap<Entry, u64>, entry: Entry, count: u64) -> bool {
    if let Some(n) = pending.get_mut(&entry) {
        *n += count;
        return false;
    }
    if pending.len() < MAX_PENDING {
        pending.insert(entry, count);
        return false;
    }
    let overflow = Entry { caller: OVERFLOW_CALLER.into(), ..entry };
    *pending.entry(overflow).or_insert(0) += count;
    true
}

async fn upsert(db: &Database, entries: &[(Entry, u64)]) -> Result<(), DbErr> {
    use refused_attempt::Column;
    let rows = entries.iter().map(|(entry, count)| refused_attempt::ActiveModel {
        minute: Set(entry.minute),
        caller: Set(entry.caller.clone()),
        code: Set(entry.code.to_string()),
        attempts: Set(i64::try_from(*count).unwrap_or(i64::MAX)),
        ..Default::default()
    });
    let added = Expr::col((refused_attempt::Entity, Column::Attempts)).add(Expr::cust("excluded.attempts"));
    refused_attempt::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([Column::Minute, Column::Caller, Column::Code])
                .value(Column::Attempts, added)
                .to_owned(),
        )
        .exec_without_returning(db.write())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(caller: &str, code: &'static str) -> Entry {
        Entry { minute: 60, caller: caller.into(), code }
    }

    #[test]
    fn the_table_stays_bounded_and_counts_what_does_not_fit() {
        let mut pending = HashMap::new();
        for i in 0..MAX_PENDING {
            assert!(!add(&mut pending, entry(&format!("address 192.0.2.{i}"), "THROTTLED"), 1));
        }
        assert!(!add(&mut pending, entry("address 192.0.2.0", "THROTTLED"), 1), "a known entry still counts");
        for i in 0..10_000 {
            assert!(add(&mut pending, entry(&format!("address 198.51.100.{i}"), "THROTTLED"), 1));
        }
        add(&mut pending, entry("address 203.0.113.1", "FORBIDDEN"), 2);
        assert_eq!(pending.len(), MAX_PENDING + 2);
        assert_eq!(pending[&entry(OVERFLOW_CALLER, "THROTTLED")], 10_000);
        assert_eq!(pending[&entry(OVERFLOW_CALLER, "FORBIDDEN")], 2);
        assert_eq!(pending[&entry("address 192.0.2.0", "THROTTLED")], 2);
    }
}
