//! Which events raise alerts, and what they do to a device's open alerts: the rule table, and
//! raising in the ingest transaction. No GraphQL here.
//!
//! One event raises at most one alert (the alert keeps the event's id, unique); an event that
//! was not stored (a duplicate) is never read back here, so it raises nothing; an event of a
//! kind the device already has an open alert for joins that alert (its count and last time)
//! instead of raising another — the open alert's `open_key` is unique, so two writers racing
//! join too.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use velferd_plugins::Severity;

use super::live::{AlertNotice, Notices};
use super::model::{
    AlertOutcome, AlertStatus, StepKind, alert, alert_deadline, alert_escalation, alert_step, device_watch,
    product_monitoring,
};
use crate::devices::model::{device, device_event};

/// The kind of alert Velferd raises when a device's events stop past its product's heartbeat
/// interval.
pub const DEVICE_OFFLINE: &str = "device-offline";
/// The kind of alert Velferd raises when a device's test transmissions stop past its product's
/// test interval.
pub const TEST_MISSED: &str = "test-transmission-missed";

/// Which family a kind belongs to: an `alarm-cancelled` event cancels the device's open alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Medication,
    Alarm,
    Device,
}

/// Whether an event raises an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raise {
    /// Always, at the event's severity but never below `floor`.
    Always { floor: Severity },
    /// Only when the device rates the event at least `min` (then at the event's severity).
    From { min: Severity },
    /// Never: information, or a state that clears another.
    Never,
}

/// What an event does to the device's other open alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clears {
    Nothing,
    /// Closes the open alerts of these kinds: the condition is over (resolved by the device).
    Kinds(&'static [&'static str]),
    /// Cancels the device's open alarms (the alarm family) not yet handed to a responder.
    Alarms,
}

/// One line of the rule table.
#[derive(Debug, Clone, Copy)]
pub struct KindRule {
    /// The event kind's name in the WIT (or a derived kind).
    pub kind: &'static str,
    pub family: Family,
    pub raise: Raise,
    pub clears: Clears,
}

const fn rule(kind: &'static str, family: Family, raise: Raise, clears: Clears) -> KindRule {
    KindRule { kind, family, raise, clears }
}

use Clears::Nothing;
use Family::{Alarm, Device, Medication};
use Raise::{Always, From, Never};
use Severity::{Critical, Moderate, Serious};

/// The rule table: every event kind of every served `velferd:device` version, and the two kinds
/// Velferd derives. `docs/alerts.md` shows it; a test checks it covers the vocabulary.
pub const RULES: &[KindRule] = &[
    // Medication: a dose not taken, or that cannot be, needs a human today.
    rule("dose-available", Medication, Never, Nothing),
    rule("dose-dispensed", Medication, Never, Clears::Kinds(&["dose-missed", "medication-waiting"])),
    rule("as-needed-dose-dispensed", Medication, Never, Nothing),
    rule("travel-doses-dispensed", Medication, Never, Nothing),
    rule("message-acknowledged", Medication, Never, Clears::Kinds(&["message-not-read"])),
    rule("dose-missed", Medication, Always { floor: Serious }, Nothing),
    rule("dispensing-blocked-empty", Medication, Always { floor: Serious }, Nothing),
    rule("dose-not-confirmed", Medication, Always { floor: Moderate }, Nothing),
    rule("message-not-read", Medication, From { min: Serious }, Nothing),
    rule("technical-fault", Medication, From { min: Serious }, Nothing),
    rule("pouch-not-read", Medication, From { min: Serious }, Nothing),
    rule("roll-error", Medication, From { min: Serious }, Nothing),
    rule("roll-jammed", Medication, From { min: Serious }, Nothing),
    rule("reject-drawer-full", Medication, From { min: Serious }, Nothing),
    rule("medication-waiting", Medication, From { min: Serious }, Nothing),
    rule("supply-insufficient-for-trip", Medication, Always { floor: Moderate }, Nothing),
    rule("supply-low", Medication, From { min: Serious }, Nothing),
    rule("supply-empty", Medication, Always { floor: Serious }, Nothing),
    rule("no-schedule", Medication, Always { floor: Moderate }, Nothing),
    rule(
        "refilled",
        Medication,
        Never,
        Clears::Kinds(&["supply-low", "supply-empty", "dispensing-blocked-empty", "supply-insufficient-for-trip"]),
    ),
    rule("lid-opened", Medication, From { min: Serious }, Nothing),
    rule("lid-closed", Medication, Never, Clears::Kinds(&["lid-opened"])),
    rule("break-in-attempt", Medication, Always { floor: Serious }, Nothing),
    rule("tray-misplaced", Medication, From { min: Serious }, Nothing),
    // Safety alarms: someone may be hurt now.
    rule("alarm-button", Alarm, Always { floor: Critical }, Nothing),
    rule("pull-cord", Alarm, Always { floor: Critical }, Nothing),
    rule("fall", Alarm, Always { floor: Critical }, Nothing),
    rule("fire", Alarm, Always { floor: Critical }, Nothing),
    rule("water-leak", Alarm, Always { floor: Serious }, Nothing),
    rule("door-opened", Alarm, From { min: Serious }, Nothing),
    rule("door-closed", Alarm, Never, Nothing),
    rule("left-home", Alarm, Always { floor: Serious }, Nothing),
    rule("left-bed", Alarm, From { min: Serious }, Nothing),
    rule("inactivity", Alarm, Always { floor: Serious }, Nothing),
    rule("no-movement", Alarm, Always { floor: Serious }, Nothing),
    rule("long-bathroom-stay", Alarm, From { min: Serious }, Nothing),
    rule("safety-alarm", Alarm, Always { floor: Critical }, Nothing),
    rule("alarm-cancelled", Alarm, Never, Clears::Alarms),
    rule("test-transmission", Alarm, Never, Clears::Kinds(&[TEST_MISSED])),
    // Device health: an alarm that cannot reach the centre is itself an alarm.
    rule("heartbeat", Device, Never, Nothing),
    rule("offline", Device, Always { floor: Serious }, Nothing),
    rule("online", Device, Never, Clears::Kinds(&["offline", DEVICE_OFFLINE])),
    rule("battery-low", Device, From { min: Serious }, Nothing),
    rule("battery-empty", Device, Always { floor: Serious }, Nothing),
    rule("mains-power-lost", Device, From { min: Serious }, Nothing),
    rule("mains-power-restored", Device, Never, Clears::Kinds(&["mains-power-lost"])),
    // Derived by Velferd's sweep, never reported by adapters.
    rule(DEVICE_OFFLINE, Device, Always { floor: Serious }, Nothing),
    rule(TEST_MISSED, Device, Always { floor: Serious }, Nothing),
];

/// The rule for `kind`; an unknown kind (a newer adapter's) never raises.
pub fn rule_of(kind: &str) -> Option<&'static KindRule> {
    RULES.iter().find(|r| r.kind == kind)
}

/// The severity an event of `kind` rated `severity` raises an alert at, or `None`.
pub fn raises(kind: &str, severity: Severity) -> Option<Severity> {
    match rule_of(kind)?.raise {
        Raise::Always { floor } => Some(severity.max(floor)),
        Raise::From { min } if severity >= min => Some(severity),
        Raise::From { .. } | Raise::Never => None,
    }
}

/// A severity by its stored name; unknown names read as not reported.
pub fn severity_of(name: &str) -> Severity {
    Severity::ALL.into_iter().find(|s| s.name() == name).unwrap_or(Severity::NotReported)
}

/// The queue's sort key: most severe first, then oldest first.
fn queue_key(severity: Severity, raised_at: DateTime<Utc>) -> String {
    let rank = 4 - Severity::ALL.iter().position(|s| *s == severity).unwrap_or(0);
    format!("{rank}-{:015}", Ord::max(raised_at.timestamp_millis(), 0))
}

/// The VKP alert code of a derived kind.
fn derived_vkp(kind: &str) -> Option<&'static str> {
    (kind == DEVICE_OFFLINE).then_some("1.20")
}

/// Default time to acknowledge an alert: 60 s (the TEC Quality standard answers 97.5 % of calls
/// within 60 s).
pub const DEFAULT_ACKNOWLEDGE_SECONDS: i32 = 60;
/// Default time for a responder to accept a hand-over.
pub const DEFAULT_ACCEPT_SECONDS: i32 = 300;

/// The municipality's escalation line for `severity`, or the defaults (next line: itself).
pub async fn escalation_of<C: ConnectionTrait>(
    db: &C,
    municipality_id: i64,
    severity: &str,
) -> Result<(i32, i32, Option<i64>), DbErr> {
    let row = alert_escalation::Entity::find()
        .filter(alert_escalation::Column::MunicipalityId.eq(municipality_id))
        .filter(alert_escalation::Column::Severity.eq(severity))
        .one(db)
        .await?;
    Ok(row.map_or((DEFAULT_ACKNOWLEDGE_SECONDS, DEFAULT_ACCEPT_SECONDS, None), |r| {
        (r.acknowledge_seconds, r.accept_seconds, r.next_line_id)
    }))
}

/// Who did a step: a person acting for an organisation under a role, or Velferd itself.
#[derive(Debug, Clone)]
pub struct Actor {
    pub subject: String,
    pub organization_id: Option<i64>,
    pub role: Option<crate::auth::Role>,
}

impl Actor {
    /// Velferd itself: the raise, the sweep, a device's own report.
    pub fn velferd() -> Actor {
        Actor { subject: "velferd".into(), organization_id: None, role: None }
    }
}

/// Appends a step to an alert's history.
pub async fn add_step<C: ConnectionTrait>(
    db: &C,
    alert_id: i64,
    kind: StepKind,
    actor: &Actor,
    note: Option<String>,
    outcome: Option<AlertOutcome>,
    at: DateTime<FixedOffset>,
) -> Result<(), DbErr> {
    alert_step::ActiveModel {
        alert_id: Set(alert_id),
        kind: Set(kind),
        vkp_code: Set(Some(kind.vkp_code().to_string())),
        note: Set(note),
        outcome: Set(outcome),
        subject: Set(actor.subject.chars().take(200).collect()),
        organization_id: Set(actor.organization_id),
        role: Set(actor.role.map(|r| r.as_str().to_string())),
        at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Marks the alert's open deadlines of `kinds` (all when empty) as met.
pub async fn settle_deadlines<C: ConnectionTrait>(db: &C, alert_id: i64, kinds: &[&str]) -> Result<(), DbErr> {
    let mut update = alert_deadline::Entity::update_many()
        .col_expr(alert_deadline::Column::SettledAtMs, Expr::value(super::now_ms()))
        .filter(alert_deadline::Column::AlertId.eq(alert_id))
        .filter(alert_deadline::Column::FiredAtMs.is_null())
        .filter(alert_deadline::Column::SettledAtMs.is_null());
    if !kinds.is_empty() {
        update = update.filter(alert_deadline::Column::Kind.is_in(kinds.iter().copied()));
    }
    update.exec(db).await?;
    Ok(())
}

/// Adds a deadline `seconds` from now.
pub async fn add_deadline<C: ConnectionTrait>(db: &C, alert_id: i64, kind: &str, seconds: i32) -> Result<(), DbErr> {
    alert_deadline::ActiveModel {
        alert_id: Set(alert_id),
        kind: Set(kind.to_string()),
        due_at_ms: Set(super::now_ms() + i64::from(seconds) * 1000),
        fired_at_ms: Set(None),
        settled_at_ms: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Closes an open alert as the device's doing: resolved with `outcome`, its deadlines moot.
pub async fn close_by_device<C: ConnectionTrait>(
    db: &C,
    open: &alert::Model,
    outcome: AlertOutcome,
    note: &str,
) -> Result<Option<alert::Model>, DbErr> {
    let now = Utc::now().fixed_offset();
    let closed = alert::Entity::update_many()
        .col_expr(alert::Column::Status, Expr::value(AlertStatus::Resolved))
        .col_expr(alert::Column::Outcome, Expr::value(outcome))
        .col_expr(alert::Column::OpenKey, Expr::value(Option::<String>::None))
        .col_expr(alert::Column::ResolvedAt, Expr::value(now))
        .filter(alert::Column::Id.eq(open.id))
        .filter(alert::Column::Status.ne(AlertStatus::Resolved))
        .exec(db)
        .await?;
    if closed.rows_affected == 0 {
        return Ok(None);
    }
    add_step(db, open.id, StepKind::Resolved, &Actor::velferd(), Some(note.to_string()), Some(outcome), now).await?;
    settle_deadlines(db, open.id, &[]).await?;
    alert::Entity::find_by_id(open.id).one(db).await
}

/// What raises an alert: the device, the kind and severity, and the event (none when derived).
pub struct Raising<'a> {
    pub device: &'a device::Model,
    pub kind: &'a str,
    pub severity: Severity,
    pub vkp_code: Option<String>,
    pub event_id: Option<i64>,
    pub occurred_at: DateTime<FixedOffset>,
}

/// Raises an alert, or joins the device's open alert of the same kind; the notice says which.
pub async fn raise<C: ConnectionTrait>(db: &C, raising: Raising<'_>) -> Result<AlertNotice, DbErr> {
    let now = Utc::now();
    let open_key = format!("{}:{}", raising.device.id, raising.kind);
    let new = alert::ActiveModel {
        municipality_id: Set(raising.device.municipality_id),
        device_id: Set(raising.device.id),
        recipient_id: Set(raising.device.recipient_id),
        kind: Set(raising.kind.to_string()),
        severity: Set(raising.severity.name().to_string()),
        vkp_code: Set(raising.vkp_code.clone()),
        queue_key: Set(queue_key(raising.severity, now)),
        event_id: Set(raising.event_id),
        open_key: Set(Some(open_key.clone())),
        status: Set(AlertStatus::Raised),
        outcome: Set(None),
        event_count: Set(1),
        first_event_at: Set(raising.occurred_at),
        last_event_at: Set(raising.occurred_at),
        raised_at: Set(now.fixed_offset()),
        resolved_at: Set(None),
        responder_id: Set(None),
        escalated_to_id: Set(None),
        escalations: Set(0),
        ..Default::default()
    };
    // An open alert of this device and kind takes the event instead (the unique `open_key`
    // makes a concurrent raise on another instance join too).
    let inserted = alert::Entity::insert(new)
        .on_conflict(OnConflict::column(alert::Column::OpenKey).do_nothing().to_owned())
        .exec_without_returning(db)
        .await;
    let inserted = match inserted {
        Ok(rows) => rows > 0,
        Err(DbErr::RecordNotInserted) => false,
        Err(e) => return Err(e),
    };
    let open = alert::Entity::find()
        .filter(alert::Column::OpenKey.eq(open_key))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::Custom("an open alert conflicted and vanished".into()))?;
    if inserted {
        add_step(db, open.id, StepKind::Raised, &Actor::velferd(), None, None, now.fixed_offset()).await?;
        let (acknowledge, _, _) = escalation_of(db, open.municipality_id, &open.severity).await?;
        add_deadline(db, open.id, "acknowledge", acknowledge).await?;
        return Ok(AlertNotice::raised(open));
    }
    alert::Entity::update_many()
        .col_expr(alert::Column::EventCount, Expr::col(alert::Column::EventCount).add(1))
        .col_expr(alert::Column::LastEventAt, Expr::value(Ord::max(raising.occurred_at, open.last_event_at)))
        .filter(alert::Column::Id.eq(open.id))
        .exec(db)
        .await?;
    let joined = alert::Entity::find_by_id(open.id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::Custom("a joined alert vanished".into()))?;
    Ok(AlertNotice::changed(joined))
}

/// The open alerts of `devices`. Naming the open statuses lets the lookup use both columns of
/// `idx_alert_device (device_id, status)`: by device alone it walked every alert the devices
/// ever had, resolved ones included, on every message — a cost that grew for as long as a
/// device was in service.
pub fn open_alerts(devices: &[i64]) -> sea_orm::Select<alert::Entity> {
    alert::Entity::find()
        .filter(alert::Column::DeviceId.is_in(devices.iter().copied()))
        .filter(alert::Column::Status.is_in(AlertStatus::OPEN))
        .filter(alert::Column::OpenKey.is_not_null())
}

/// Raises (or joins) alerts for `events`, just stored in this transaction, closes what they
/// clear, and restarts the devices' heartbeat and test watches. Called by ingest in its write
/// transaction with the rows its insert returned (in id order), so nothing is read back; the
/// notices go out once it has committed ([`super::live::publish`]).
pub async fn raise_for_events<C: ConnectionTrait>(db: &C, events: &[device_event::Model]) -> Result<Notices, DbErr> {
    let mut notices = Notices::new();
    if events.is_empty() {
        return Ok(notices);
    }
    let device_ids: Vec<i64> = events.iter().map(|e| e.device_id).collect::<HashSet<_>>().into_iter().collect();
    let mut devices: HashMap<i64, device::Model> = HashMap::new();
    let mut open: HashMap<(i64, String), alert::Model> = HashMap::new();
    for chunk in device_ids.chunks(500) {
        for d in device::Entity::find().filter(device::Column::Id.is_in(chunk.iter().copied())).all(db).await? {
            devices.insert(d.id, d);
        }
        let open_alerts = open_alerts(chunk).all(db).await?;
        for a in open_alerts {
            open.insert((a.device_id, a.kind.clone()), a);
        }
    }
    let products: Vec<i64> = devices.values().map(|d| d.product_id).collect::<HashSet<_>>().into_iter().collect();
    let monitoring: HashMap<i64, product_monitoring::Model> = product_monitoring::Entity::find()
        .filter(product_monitoring::Column::ProductId.is_in(products))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.product_id, m))
        .collect();

    let mut tested: HashSet<i64> = HashSet::new();
    for event in events {
        let Some(device) = devices.get(&event.device_id) else { continue };
        if event.kind == "test-transmission" {
            tested.insert(device.id);
        }
        let Some(rule) = rule_of(&event.kind) else { continue };
        match rule.clears {
            Clears::Nothing => {}
            Clears::Kinds(kinds) => {
                for kind in kinds {
                    if let Some(alert) = open.remove(&(device.id, kind.to_string()))
                        && let Some(closed) = close_by_device(
                            db,
                            &alert,
                            AlertOutcome::ResolvedByDevice,
                            &format!("cleared by the device's {} event", event.kind),
                        )
                        .await?
                    {
                        notices.push(AlertNotice::changed(closed));
                    }
                }
            }
            Clears::Alarms => {
                let alarms: Vec<(i64, String)> = open
                    .iter()
                    .filter(|((d, kind), _)| {
                        *d == device.id && rule_of(kind).is_some_and(|r| r.family == Family::Alarm)
                    })
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in alarms {
                    let alert = open[&key].clone();
                    if matches!(alert.status, AlertStatus::Raised | AlertStatus::Acknowledged) {
                        open.remove(&key);
                        if let Some(closed) = close_by_device(
                            db,
                            &alert,
                            AlertOutcome::CancelledByDevice,
                            "the alarm was cancelled at the device",
                        )
                        .await?
                        {
                            notices.push(AlertNotice::changed(closed));
                        }
                    } else {
                        // A responder is on the way: they sign it off, knowing it was cancelled.
                        add_step(
                            db,
                            alert.id,
                            StepKind::CancelledAtDevice,
                            &Actor::velferd(),
                            Some("the alarm was cancelled at the device".into()),
                            None,
                            Utc::now().fixed_offset(),
                        )
                        .await?;
                        notices.push(AlertNotice::changed(alert));
                    }
                }
            }
        }
        let Some(severity) = raises(&event.kind, severity_of(&event.severity)) else { continue };
        let notice = raise(
            db,
            Raising {
                device,
                kind: &event.kind,
                severity,
                vkp_code: event.vkp_code.clone(),
                event_id: Some(event.id),
                occurred_at: event.occurred_at,
            },
        )
        .await?;
        open.insert((device.id, event.kind.clone()), notice.alert.clone());
        notices.push(notice);
    }

    // The devices were heard from: an offline alert closes, and their watches start again.
    let now = super::now_ms();
    let mut ids: Vec<&i64> = devices.keys().collect();
    ids.sort();
    for id in ids {
        let device = &devices[id];
        if let Some(alert) = open.remove(&(device.id, DEVICE_OFFLINE.to_string()))
            && let Some(closed) =
                close_by_device(db, &alert, AlertOutcome::ResolvedByDevice, "the device was heard from again").await?
        {
            notices.push(AlertNotice::changed(closed));
        }
        let Some(monitoring) = monitoring.get(&device.product_id) else { continue };
        if let Some(seconds) = monitoring.heartbeat_seconds {
            watch(db, device.id, "heartbeat", now + i64::from(seconds) * 1000, true).await?;
        }
        if let Some(seconds) = monitoring.test_seconds {
            // Any event starts the test watch; only a test transmission moves it on.
            watch(db, device.id, "test", now + i64::from(seconds) * 1000, tested.contains(&device.id)).await?;
        }
    }
    Ok(notices)
}

/// Sets the device's watch of `kind` due at `due_at_ms` (and not fired), or — `restart`
/// false — starts it only when it has none.
pub async fn watch<C: ConnectionTrait>(
    db: &C,
    device_id: i64,
    kind: &str,
    due_at_ms: i64,
    restart: bool,
) -> Result<(), DbErr> {
    let row = device_watch::ActiveModel {
        device_id: Set(device_id),
        kind: Set(kind.to_string()),
        due_at_ms: Set(due_at_ms),
        fired_at_ms: Set(None),
        ..Default::default()
    };
    let mut conflict = OnConflict::columns([device_watch::Column::DeviceId, device_watch::Column::Kind]);
    if restart {
        conflict.update_columns([device_watch::Column::DueAtMs, device_watch::Column::FiredAtMs]);
    } else {
        conflict.do_nothing();
    }
    match device_watch::Entity::insert(row).on_conflict(conflict.to_owned()).exec_without_returning(db).await {
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The derived alert a fired watch raises.
pub async fn raise_silence<C: ConnectionTrait>(
    db: &C,
    device: &device::Model,
    kind: &str,
    since: DateTime<FixedOffset>,
) -> Result<AlertNotice, DbErr> {
    raise(
        db,
        Raising {
            device,
            kind,
            severity: raises(kind, Severity::Serious).unwrap_or(Severity::Serious),
            vkp_code: derived_vkp(kind).map(str::to_string),
            event_id: None,
            occurred_at: since,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open alert the ingest lookup missed would be raised again and refused by
    /// `uq_alert_open`: a status added later must be open or `Resolved` on purpose.
    #[test]
    fn every_status_but_resolved_is_open() {
        use sea_orm::Iterable;
        let open: Vec<AlertStatus> = AlertStatus::iter().filter(|s| *s != AlertStatus::Resolved).collect();
        assert_eq!(open, AlertStatus::OPEN);
    }

    #[test]
    fn the_rule_table_covers_the_whole_vocabulary_once() {
        for info in velferd_plugins::event::VOCABULARY {
            assert_eq!(RULES.iter().filter(|r| r.kind == info.name).count(), 1, "{}", info.name);
        }
        assert_eq!(RULES.len(), velferd_plugins::event::VOCABULARY.len() + 2, "only the two derived kinds are extra");
    }

    #[test]
    fn alarms_raise_critical_and_information_never_raises() {
        assert_eq!(raises("alarm-button", Severity::Normal), Some(Severity::Critical));
        assert_eq!(raises("dose-missed", Severity::Moderate), Some(Severity::Serious));
        assert_eq!(raises("dose-missed", Severity::Critical), Some(Severity::Critical));
        assert_eq!(raises("battery-low", Severity::Moderate), None);
        assert_eq!(raises("battery-low", Severity::Serious), Some(Severity::Serious));
        assert_eq!(raises("heartbeat", Severity::Critical), None);
        assert_eq!(raises("alarm-cancelled", Severity::Critical), None);
        assert_eq!(raises("a-kind-from-the-future", Severity::Critical), None);
    }

    #[test]
    fn the_queue_key_orders_by_severity_then_age() {
        let early = DateTime::from_timestamp(1_000, 0).unwrap();
        let late = DateTime::from_timestamp(2_000, 0).unwrap();
        let mut keys = [
            queue_key(Severity::Serious, early),
            queue_key(Severity::Critical, late),
            queue_key(Severity::Critical, early),
            queue_key(Severity::Moderate, early),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                queue_key(Severity::Critical, early),
                queue_key(Severity::Critical, late),
                queue_key(Severity::Serious, early),
                queue_key(Severity::Moderate, early),
            ]
        );
    }
}
