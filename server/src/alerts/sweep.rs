//! The background sweep: every instance looks, at an interval, for deadlines that have come due
//! — an alert not acknowledged or a hand-over not accepted in time, a device not heard from —
//! and claims each one with a conditional update (`... WHERE fired_at_ms IS NULL`) in the same
//! transaction as its effect. Whichever instance's update lands first fires it; the others'
//! touch no row, so each deadline fires exactly once across instances, and a deadline that came
//! due while no instance ran (a restart) fires on the next sweep.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::live::{self, AlertNotice, Notices};
use super::model::{AlertStatus, StepKind, alert, alert_deadline, device_watch, product_monitoring};
use super::rules::{self, Actor, DEVICE_OFFLINE, TEST_MISSED};
use crate::db::Database;
use crate::devices::model::{DeviceStatus, device};
use crate::live::Live;

/// Most deadlines one sweep fires of each sort; the rest wait for the next.
const BATCH: u64 = 200;

/// The sweep's task: it stops when this is dropped (with the server's last state).
pub struct Sweep {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sweep {
    /// Starts sweeping every `interval` on the current Tokio runtime.
    pub fn start(db: Database, live: Live, interval: Duration) -> Sweep {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = sweep_once(&db, &live).await {
                    tracing::warn!(%error, "the alert sweep failed; it tries again at the next tick");
                }
            }
        });
        Sweep { task }
    }
}

/// Fires what is due now; returns how many deadlines this instance fired.
pub async fn sweep_once(db: &Database, live: &Live) -> Result<usize, DbErr> {
    let now = super::now_ms();
    // The look is a timed background read, on its own connection; only a claim writes.
    let due: Vec<i64> = alert_deadline::Entity::find()
        .select_only()
        .column(alert_deadline::Column::Id)
        .filter(alert_deadline::Column::FiredAtMs.is_null())
        .filter(alert_deadline::Column::SettledAtMs.is_null())
        .filter(alert_deadline::Column::DueAtMs.lte(now))
        .order_by_asc(alert_deadline::Column::DueAtMs)
        .limit(BATCH)
        .into_tuple()
        .all(db.background())
        .await?;
    let silent: Vec<i64> = device_watch::Entity::find()
        .select_only()
        .column(device_watch::Column::Id)
        .filter(device_watch::Column::FiredAtMs.is_null())
        .filter(device_watch::Column::DueAtMs.lte(now))
        .order_by_asc(device_watch::Column::DueAtMs)
        .limit(BATCH)
        .into_tuple()
        .all(db.background())
        .await?;
    let mut fired = 0;
    for id in due {
        let txn = db.write().begin().await?;
        let notices = escalate(&txn, id, now).await?;
        if let Some(notices) = notices {
            fired += 1;
            live::publish(&txn, live, notices).await?;
        }
        txn.commit().await?;
    }
    for id in silent {
        let txn = db.write().begin().await?;
        let notices = fall_silent(&txn, id, now).await?;
        if let Some(notices) = notices {
            fired += 1;
            live::publish(&txn, live, notices).await?;
        }
        txn.commit().await?;
    }
    Ok(fired)
}

/// Claims alert deadline `id` if it is still due and unfired, and escalates its alert to the
/// municipality's next line; `None` when another instance (or the step itself) got there first.
async fn escalate<C: ConnectionTrait>(db: &C, id: i64, now: i64) -> Result<Option<Notices>, DbErr> {
    let claimed = alert_deadline::Entity::update_many()
        .col_expr(alert_deadline::Column::FiredAtMs, Expr::value(now))
        .filter(alert_deadline::Column::Id.eq(id))
        .filter(alert_deadline::Column::FiredAtMs.is_null())
        .filter(alert_deadline::Column::SettledAtMs.is_null())
        .filter(alert_deadline::Column::DueAtMs.lte(now))
        .exec(db)
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(None);
    }
    let Some(deadline) = alert_deadline::Entity::find_by_id(id).one(db).await? else { return Ok(None) };
    let Some(current) = alert::Entity::find_by_id(deadline.alert_id).one(db).await? else { return Ok(None) };
    if current.status == AlertStatus::Resolved {
        return Ok(Some(Notices::new()));
    }
    let (acknowledge, accept, next_line) = rules::escalation_of(db, current.municipality_id, &current.severity).await?;
    let next_line = next_line.unwrap_or(current.municipality_id);
    let line = crate::organizations::model::Entity::find_by_id(next_line).one(db).await?;
    let line_name = line.map_or_else(|| "the municipality".to_string(), |org| org.name);
    let why = match deadline.kind.as_str() {
        "accept" => format!("the hand-over was not accepted within {accept} s"),
        _ => format!("not acknowledged within {acknowledge} s"),
    };
    alert::Entity::update_many()
        .col_expr(alert::Column::EscalatedToId, Expr::value(next_line))
        .col_expr(alert::Column::Escalations, Expr::col(alert::Column::Escalations).add(1))
        .filter(alert::Column::Id.eq(current.id))
        .exec(db)
        .await?;
    let at = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_else(Utc::now).fixed_offset();
    rules::add_step(
        db,
        current.id,
        StepKind::Escalated,
        &Actor::velferd(),
        Some(format!("{why}: escalated to {line_name}")),
        None,
        at,
    )
    .await?;
    let changed = alert::Entity::find_by_id(current.id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::Custom("an escalated alert vanished".into()))?;
    Ok(Some(vec![AlertNotice::changed(changed)]))
}

/// Claims device watch `id` if it is still due and unfired, and raises the device's offline
/// (or missed test) alert; `None` when another instance, or a new event, got there first.
async fn fall_silent<C: ConnectionTrait>(db: &C, id: i64, now: i64) -> Result<Option<Notices>, DbErr> {
    let claimed = device_watch::Entity::update_many()
        .col_expr(device_watch::Column::FiredAtMs, Expr::value(now))
        .filter(device_watch::Column::Id.eq(id))
        .filter(device_watch::Column::FiredAtMs.is_null())
        .filter(device_watch::Column::DueAtMs.lte(now))
        .exec(db)
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(None);
    }
    let Some(watch) = device_watch::Entity::find_by_id(id).one(db).await? else { return Ok(None) };
    let Some(device) = device::Entity::find_by_id(watch.device_id).one(db).await? else { return Ok(None) };
    // A device out of service is expected to fall silent.
    if matches!(device.status, DeviceStatus::Returned | DeviceStatus::Retired) {
        return Ok(Some(Notices::new()));
    }
    let monitoring = product_monitoring::Entity::find()
        .filter(product_monitoring::Column::ProductId.eq(device.product_id))
        .one(db)
        .await?;
    let (kind, interval) = match watch.kind.as_str() {
        "test" => (TEST_MISSED, monitoring.and_then(|m| m.test_seconds)),
        _ => (DEVICE_OFFLINE, monitoring.and_then(|m| m.heartbeat_seconds)),
    };
    // Turned off since the watch was set.
    let Some(interval) = interval else { return Ok(Some(Notices::new())) };
    let since = DateTime::<Utc>::from_timestamp_millis(watch.due_at_ms - i64::from(interval) * 1000)
        .unwrap_or_else(Utc::now)
        .fixed_offset();
    Ok(Some(vec![rules::raise_silence(db, &device, kind, since).await?]))
}
