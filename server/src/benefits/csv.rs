//! The measured figures as CSV (`GET /benefits/figures.csv`): the same report as GraphQL's
//! `benefitFigures`, one row per cell, after comment lines stating the threshold and the
//! assumptions.

use std::collections::HashMap;
use std::fmt::Write;

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::measure;
use super::report::{self, Figures, Report};
use crate::organizations::model as organization;

/// The columns, in order.
pub const COLUMNS: [&str; 24] = [
    "month",
    "indicator",
    "supplier",
    "supplier_org_number",
    "recipients",
    "suppressed",
    "doses_scheduled",
    "doses_on_time",
    "adherence",
    "home_visits_replaced",
    "minutes_per_visit",
    "minutes_freed",
    "alarms_counted",
    "alarms_answered",
    "median_answer_seconds",
    "p90_answer_seconds",
    "answered_within_60s",
    "target_within_60s",
    "answered_within_180s",
    "target_within_180s",
    "devices",
    "in_service_seconds",
    "online_seconds",
    "online_share",
];

/// A field quoted when it needs to be (RFC 4180).
fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r', '#']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// The report as CSV text.
pub async fn render<C: ConnectionTrait>(db: &C, report: &Report) -> Result<String, DbErr> {
    let ids: Vec<i64> = report.cells.iter().filter_map(|c| c.supplier_id).chain([report.municipality_id]).collect();
    let orgs: HashMap<i64, organization::Model> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect();
    let a = report.assumptions;
    let municipality = orgs.get(&report.municipality_id).map_or("", |o| o.name.as_str());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Velferd benefit figures for {} ({} to {}), calendar months in Europe/Oslo",
        municipality.replace(['\n', '\r'], " "),
        report.from,
        report.to
    );
    let _ = writeln!(
        out,
        "# Disclosure control: a cell covering fewer than {} service recipients is suppressed (BELOW_THRESHOLD), and further cells so that none can be recovered from the total (COMPLEMENTARY); suppressed cells have empty figures",
        report.threshold
    );
    let _ = writeln!(
        out,
        "# Assumptions: a dose is on time within {} minutes of its scheduled time; one home visit takes {} (set by the municipality); alarm answer times count {} alarms, not those cancelled at the device before an answer; TEC Quality targets {} within 60 s and {} within 180 s",
        a.dose_window_minutes,
        a.minutes_per_visit.map_or("(not stated: no minutes freed)".to_string(), |m| format!("{m} minutes")),
        report::ALARM_CALLS.join("/"),
        report::TARGET_WITHIN_60S,
        report::TARGET_WITHIN_180S,
    );
    let _ = writeln!(out, "{}", COLUMNS.join(","));
    for cell in &report.cells {
        let mut row: Vec<String> = vec![String::new(); COLUMNS.len()];
        row[0] = cell.month.to_string();
        row[1] = cell.indicator.code().to_string();
        match cell.supplier_id.and_then(|id| orgs.get(&id)) {
            Some(o) => {
                row[2] = field(&o.name);
                row[3] = o.org_number.clone().unwrap_or_default();
            }
            None => row[2] = "(total)".to_string(),
        }
        row[4] = cell.recipients.map(|r| r.to_string()).unwrap_or_default();
        row[5] = cell.suppressed.map(|s| s.code().to_string()).unwrap_or_default();
        match &cell.figures {
            Some(Figures::Medication(t)) => {
                row[6] = t.scheduled.to_string();
                row[7] = t.on_time.to_string();
                row[8] = t.adherence().map(|r| r.decimal()).unwrap_or_default();
                row[9] = t.unassisted_on_time.to_string();
                row[10] = a.minutes_per_visit.map(|m| m.to_string()).unwrap_or_default();
                row[11] = t.minutes_freed(a.minutes_per_visit).map(|m| m.to_string()).unwrap_or_default();
            }
            Some(Figures::AlarmAnswer(s)) => {
                row[12] = s.counted.to_string();
                row[13] = s.answered.to_string();
                row[14] = s.median_ms.map(measure::seconds).unwrap_or_default();
                row[15] = s.p90_ms.map(measure::seconds).unwrap_or_default();
                row[16] = s.within_60s.map(|r| r.decimal()).unwrap_or_default();
                row[17] = report::TARGET_WITHIN_60S.to_string();
                row[18] = s.within_180s.map(|r| r.decimal()).unwrap_or_default();
                row[19] = report::TARGET_WITHIN_180S.to_string();
            }
            Some(Figures::DevicesOnline(t)) => {
                row[20] = t.devices.to_string();
                row[21] = t.in_service_seconds.to_string();
                row[22] = t.online_seconds.to_string();
                row[23] = t.share().map(|r| r.decimal()).unwrap_or_default();
            }
            None => {}
        }
        let _ = writeln!(out, "{}", row.join(","));
    }
    Ok(out)
}
