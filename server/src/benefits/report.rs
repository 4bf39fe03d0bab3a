//! The measured indicators of one municipality over a range of months: rows loaded, handed to
//! the arithmetic in `measure.rs`, grouped per month, indicator and supplier with the
//! municipality's total, and put through disclosure control. One implementation behind the
//! GraphQL field and the CSV export. Aggregates only: no recipient, device or event leaves.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::measure::{
    self, AlarmCall, AnswerStats, AnswerTimes, DoseEvent, DoseReport, DoseTally, OnlineTally, Span, Suppression,
};
use super::model::benefit_assumption;
use super::values::YearMonth;
use crate::alerts::model::{AlertOutcome, StepKind, alert, alert_step};
use crate::alerts::rules::DEVICE_OFFLINE;
use crate::devices::model::{DeviceStatus, device, device_event, device_product, device_status_change};

/// Most months one report covers: a year, so one request reads a bounded amount of events.
pub const MAX_MONTHS: usize = 12;
/// The dose window when the municipality has set none.
pub const DEFAULT_DOSE_WINDOW_MINUTES: u32 = 60;
/// TEC Quality's targets for alarm calls: 97.5 % answered within 60 s, 99 % within 180 s.
pub const TARGET_WITHIN_60S: &str = "0.975";
pub const TARGET_WITHIN_180S: &str = "0.99";

/// The safety alarms whose answer times count: the calls for help — the button, the pull cord,
/// a detected fall or fire, and an alarm the device cannot classify. Sensor observations
/// (door, bed, inactivity, water) and technical alerts are not calls someone waits on.
pub const ALARM_CALLS: [&str; 5] = ["alarm-button", "pull-cord", "fall", "fire", "safety-alarm"];

/// Dose events that tell what became of a scheduled dose.
const DOSE_KINDS: [&str; 4] = ["dose-dispensed", "dose-missed", "dispensing-blocked-empty", "dose-not-confirmed"];
/// Dose events are read this far either side of the range: a dose scheduled in it may be
/// reported late (a dispense after a missed-dose alert), or early.
const DOSE_SLACK_DAYS: i64 = 2;
/// How far before the range offline and online events are read, to know a device that was
/// already offline when the range began.
const OFFLINE_LOOKBACK_DAYS: i64 = 366;

/// A municipality's assumptions behind the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assumptions {
    pub dose_window_minutes: u32,
    /// None until the municipality sets it: then no minutes freed are shown.
    pub minutes_per_visit: Option<u32>,
}

impl Assumptions {
    pub async fn of<C: ConnectionTrait>(db: &C, municipality_id: i64) -> Result<Assumptions, DbErr> {
        let row = benefit_assumption::Entity::find()
            .filter(benefit_assumption::Column::MunicipalityId.eq(municipality_id))
            .one(db)
            .await?;
        Ok(match row {
            Some(r) => Assumptions {
                dose_window_minutes: r.dose_window_minutes.max(0) as u32,
                minutes_per_visit: r.minutes_per_visit.map(|m| m.max(0) as u32),
            },
            None => Assumptions { dose_window_minutes: DEFAULT_DOSE_WINDOW_MINUTES, minutes_per_visit: None },
        })
    }
}

/// The three measured indicators, each a group of cells of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, async_graphql::Enum)]
pub enum Indicator {
    /// Dose adherence, home visits replaced and minutes freed (medication dispensers).
    Medication,
    /// Alarm answer times (safety alarms).
    AlarmAnswer,
    /// Devices online (every device in service).
    DevicesOnline,
}

impl Indicator {
    /// Its name in the API (and the CSV export).
    pub fn code(self) -> &'static str {
        measure::api_name(self)
    }
}

/// The figures of one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Figures {
    Medication(DoseTally),
    AlarmAnswer(AnswerStats),
    DevicesOnline(OnlineTally),
}

/// One published cell: a month, an indicator, a supplier (none: the municipality's total).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub month: YearMonth,
    pub indicator: Indicator,
    pub supplier_id: Option<i64>,
    /// Recipients it covers; none when suppressed.
    pub recipients: Option<u64>,
    pub suppressed: Option<Suppression>,
    /// None when suppressed.
    pub figures: Option<Figures>,
}

/// The report: its cells and what they assume.
#[derive(Debug, Clone)]
pub struct Report {
    pub municipality_id: i64,
    pub from: YearMonth,
    pub to: YearMonth,
    pub threshold: u32,
    pub assumptions: Assumptions,
    pub cells: Vec<Cell>,
}

/// Figures being added up, with the recipients they cover.
#[derive(Default)]
struct Acc {
    recipients: BTreeSet<i64>,
    doses: DoseTally,
    answers: AnswerTimes,
    online: OnlineTally,
}

impl Acc {
    fn figures(&self, indicator: Indicator) -> Figures {
        match indicator {
            Indicator::Medication => Figures::Medication(self.doses),
            Indicator::AlarmAnswer => Figures::AlarmAnswer(self.answers.stats()),
            Indicator::DevicesOnline => Figures::DevicesOnline(self.online),
        }
    }
}

/// A device of the municipality, with its service history.
struct Dev {
    supplier_id: i64,
    recipient_id: Option<i64>,
    /// Spans it was `ACTIVE` (in use by a recipient), each with that recipient.
    service: Vec<(Span, Option<i64>)>,
}

impl Dev {
    /// The recipient the device served at `at`, else the one it is assigned to now.
    fn recipient_at(&self, at: DateTime<Utc>) -> Option<i64> {
        self.service.iter().find(|(s, _)| s.start <= at && at < s.end).and_then(|(_, r)| *r).or(self.recipient_id)
    }
}

/// The report of `municipality_id` for the months `from` to `to` (both included; the caller
/// checked the range). A month still running is measured up to `now`.
pub async fn measure<C: ConnectionTrait>(
    db: &C,
    municipality_id: i64,
    from: YearMonth,
    to: YearMonth,
    threshold: u32,
    now: DateTime<Utc>,
) -> Result<Report, DbErr> {
    let assumptions = Assumptions::of(db, municipality_id).await?;
    let (start, end) = (from.start(), to.end());
    let devices = devices_of(db, municipality_id, now).await?;
    let ids: Vec<i64> = devices.keys().copied().collect();
    let mut cells: BTreeMap<(YearMonth, Indicator, i64), Acc> = BTreeMap::new();

    // Dose adherence: the schedule as the devices report it.
    let window = Duration::minutes(i64::from(assumptions.dose_window_minutes));
    let mut doses = Vec::new();
    for chunk in ids.chunks(500) {
        let rows = device_event::Entity::find()
            .filter(device_event::Column::DeviceId.is_in(chunk.iter().copied()))
            .filter(device_event::Column::Kind.is_in(DOSE_KINDS))
            .filter(device_event::Column::OccurredAt.gte((start - Duration::days(DOSE_SLACK_DAYS)).fixed_offset()))
            .filter(device_event::Column::OccurredAt.lt((end + Duration::days(DOSE_SLACK_DAYS)).fixed_offset()))
            .all(db)
            .await?;
        doses.extend(rows.iter().filter_map(dose_event));
    }
    for dose in measure::scheduled_doses(&doses, window) {
        if dose.scheduled_for < start || dose.scheduled_for >= end {
            continue;
        }
        let dev = &devices[&dose.device];
        let acc = cells.entry((YearMonth::of(dose.scheduled_for), Indicator::Medication, dev.supplier_id)).or_default();
        acc.doses.add(&dose);
        acc.recipients.extend(dev.recipient_at(dose.scheduled_for));
    }

    // Alarm answer times: from raised to the first acknowledgement.
    let alarms = alert::Entity::find()
        .filter(alert::Column::MunicipalityId.eq(municipality_id))
        .filter(alert::Column::Kind.is_in(ALARM_CALLS))
        .filter(alert::Column::RaisedAt.gte(start.fixed_offset()))
        .filter(alert::Column::RaisedAt.lt(end.fixed_offset()))
        .all(db)
        .await?;
    let mut acknowledged: HashMap<i64, DateTime<Utc>> = HashMap::new();
    let alarm_ids: Vec<i64> = alarms.iter().map(|a| a.id).collect();
    for chunk in alarm_ids.chunks(500) {
        let steps = alert_step::Entity::find()
            .filter(alert_step::Column::AlertId.is_in(chunk.iter().copied()))
            .filter(alert_step::Column::Kind.eq(StepKind::Acknowledged))
            .all(db)
            .await?;
        for s in steps {
            let at = s.at.with_timezone(&Utc);
            acknowledged.entry(s.alert_id).and_modify(|first| *first = (*first).min(at)).or_insert(at);
        }
    }
    for a in &alarms {
        let ack = acknowledged.get(&a.id).copied();
        if !measure::alarm_counts(a.outcome == Some(AlertOutcome::CancelledByDevice), ack.is_some()) {
            continue;
        }
        let Some(dev) = devices.get(&a.device_id) else { continue };
        let raised_at = a.raised_at.with_timezone(&Utc);
        let acc = cells.entry((YearMonth::of(raised_at), Indicator::AlarmAnswer, dev.supplier_id)).or_default();
        acc.answers.add(&AlarmCall { raised_at, acknowledged_at: ack });
        acc.recipients.extend(a.recipient_id);
    }

    // Devices online: offline spans from the devices' offline/online events and the sweep's
    // offline alerts, weighted by time in service.
    let offline = offline_spans(db, &ids, start, end, now).await?;
    for month in from.through(to) {
        let period = Span::new(month.start(), month.end().min(now));
        if period.start >= period.end {
            continue;
        }
        for (id, dev) in &devices {
            let service: Vec<Span> = dev.service.iter().map(|(s, _)| *s).collect();
            let (in_service, online) =
                measure::online_seconds(&service, offline.get(id).map_or(&[], Vec::as_slice), period);
            if in_service == 0 {
                continue;
            }
            let acc = cells.entry((month, Indicator::DevicesOnline, dev.supplier_id)).or_default();
            acc.online.add(in_service, online);
            acc.recipients.extend(
                dev.service
                    .iter()
                    .filter(|(s, _)| s.start < period.end && period.start < s.end)
                    .filter_map(|(_, r)| *r),
            );
        }
    }

    Ok(Report { municipality_id, from, to, threshold, assumptions, cells: publish(cells, threshold) })
}

/// The cells with their totals, suppressed as `measure::suppress` says.
fn publish(cells: BTreeMap<(YearMonth, Indicator, i64), Acc>, threshold: u32) -> Vec<Cell> {
    let mut groups: BTreeMap<(YearMonth, Indicator), BTreeMap<i64, Acc>> = BTreeMap::new();
    for ((month, indicator, supplier), acc) in cells {
        groups.entry((month, indicator)).or_default().insert(supplier, acc);
    }
    let mut out = Vec::new();
    for ((month, indicator), suppliers) in groups {
        let recipients: BTreeMap<i64, BTreeSet<i64>> =
            suppliers.iter().map(|(s, acc)| (*s, acc.recipients.clone())).collect();
        let (hidden, total_hidden) = measure::suppress(&recipients, threshold as usize);
        let mut total = Acc::default();
        for acc in suppliers.values() {
            total.recipients.extend(acc.recipients.iter().copied());
            total.doses.scheduled += acc.doses.scheduled;
            total.doses.on_time += acc.doses.on_time;
            total.doses.unassisted_on_time += acc.doses.unassisted_on_time;
            total.answers.millis.extend(acc.answers.millis.iter().copied());
            total.online.devices += acc.online.devices;
            total.online.in_service_seconds += acc.online.in_service_seconds;
            total.online.online_seconds += acc.online.online_seconds;
        }
        let cell = |supplier_id: Option<i64>, acc: &Acc, suppressed: Option<Suppression>| Cell {
            month,
            indicator,
            supplier_id,
            recipients: suppressed.is_none().then_some(acc.recipients.len() as u64),
            suppressed,
            figures: suppressed.is_none().then(|| acc.figures(indicator)),
        };
        for (supplier, acc) in &suppliers {
            out.push(cell(Some(*supplier), acc, hidden.get(supplier).copied()));
        }
        out.push(cell(None, &total, total_hidden));
    }
    out
}

/// A stored dose event as the arithmetic reads it; none without a reported schedule.
fn dose_event(row: &device_event::Model) -> Option<DoseEvent> {
    let data: serde_json::Value = serde_json::from_str(&row.data).ok()?;
    let kind = data.get("kind")?;
    let scheduled_for: DateTime<Utc> = kind.get("scheduled_for")?.as_str()?.parse().ok()?;
    let report = match row.kind.as_str() {
        "dose-dispensed" => {
            DoseReport::Dispensed { unassisted: kind.get("assistance").and_then(|a| a.as_str()) == Some("unassisted") }
        }
        _ => DoseReport::Miss,
    };
    Some(DoseEvent { device: row.device_id, scheduled_for, occurred_at: row.occurred_at.with_timezone(&Utc), report })
}

/// The municipality's devices with their supplier and service spans (status `ACTIVE`, up to
/// the next change, or `now`).
async fn devices_of<C: ConnectionTrait>(
    db: &C,
    municipality_id: i64,
    now: DateTime<Utc>,
) -> Result<BTreeMap<i64, Dev>, DbErr> {
    let rows = device::Entity::find().filter(device::Column::MunicipalityId.eq(municipality_id)).all(db).await?;
    let products: HashMap<i64, i64> = device_product::Entity::find()
        .filter(device_product::Column::Id.is_in(rows.iter().map(|d| d.product_id).collect::<BTreeSet<_>>()))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p.supplier_id))
        .collect();
    let mut devices: BTreeMap<i64, Dev> = BTreeMap::new();
    for d in &rows {
        let Some(&supplier_id) = products.get(&d.product_id) else { continue };
        devices.insert(d.id, Dev { supplier_id, recipient_id: d.recipient_id, service: Vec::new() });
    }
    let ids: Vec<i64> = devices.keys().copied().collect();
    for chunk in ids.chunks(500) {
        let changes = device_status_change::Entity::find()
            .filter(device_status_change::Column::DeviceId.is_in(chunk.iter().copied()))
            .order_by_asc(device_status_change::Column::DeviceId)
            .order_by_asc(device_status_change::Column::At)
            .order_by_asc(device_status_change::Column::Id)
            .all(db)
            .await?;
        let mut open: HashMap<i64, (DateTime<Utc>, Option<i64>)> = HashMap::new();
        for c in changes {
            let at = c.at.with_timezone(&Utc);
            if let Some((since, recipient)) = open.remove(&c.device_id) {
                devices.get_mut(&c.device_id).expect("loaded").service.push((Span::new(since, at), recipient));
            }
            if c.to_status == DeviceStatus::Active {
                open.insert(c.device_id, (at, c.recipient_id));
            }
        }
        for (device_id, (since, recipient)) in open {
            devices.get_mut(&device_id).expect("loaded").service.push((Span::new(since, now), recipient));
        }
    }
    Ok(devices)
}

/// Each device's offline spans that may touch `[start, end)`: from an `offline` event to the
/// device's next `online` event, and from the time a sweep's `device-offline` alert says the
/// device was last heard to the device's next event; an outage still going lasts until `now`.
async fn offline_spans<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<HashMap<i64, Vec<Span>>, DbErr> {
    let mut spans: HashMap<i64, Vec<Span>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let events = device_event::Entity::find()
            .filter(device_event::Column::DeviceId.is_in(chunk.iter().copied()))
            .filter(device_event::Column::Kind.is_in(["offline", "online"]))
            .filter(
                device_event::Column::OccurredAt.gte((start - Duration::days(OFFLINE_LOOKBACK_DAYS)).fixed_offset()),
            )
            .filter(device_event::Column::OccurredAt.lt(end.fixed_offset()))
            .order_by_asc(device_event::Column::DeviceId)
            .order_by_asc(device_event::Column::OccurredAt)
            .order_by_asc(device_event::Column::Id)
            .all(db)
            .await?;
        let mut dark_since: HashMap<i64, DateTime<Utc>> = HashMap::new();
        for e in events {
            let at = e.occurred_at.with_timezone(&Utc);
            match e.kind.as_str() {
                "offline" => {
                    dark_since.entry(e.device_id).or_insert(at);
                }
                _ => {
                    if let Some(since) = dark_since.remove(&e.device_id) {
                        spans.entry(e.device_id).or_default().push(Span::new(since, at));
                    }
                }
            }
        }
        for (device_id, since) in dark_since {
            spans.entry(device_id).or_default().push(Span::new(since, now));
        }
        let silences = alert::Entity::find()
            .filter(alert::Column::DeviceId.is_in(chunk.iter().copied()))
            .filter(alert::Column::Kind.eq(DEVICE_OFFLINE))
            .filter(alert::Column::FirstEventAt.lt(end.fixed_offset()))
            .filter(alert::Column::FirstEventAt.gte((start - Duration::days(OFFLINE_LOOKBACK_DAYS)).fixed_offset()))
            .all(db)
            .await?;
        for s in silences {
            let since = s.first_event_at;
            let heard: Option<device_event::Model> = device_event::Entity::find()
                .filter(device_event::Column::DeviceId.eq(s.device_id))
                .filter(device_event::Column::OccurredAt.gt(since))
                .order_by_asc(device_event::Column::OccurredAt)
                .one(db)
                .await?;
            let until = heard.map_or(now, |e| e.occurred_at.with_timezone(&Utc));
            spans.entry(s.device_id).or_default().push(Span::new(since.with_timezone(&Utc), until));
        }
    }
    Ok(spans)
}
