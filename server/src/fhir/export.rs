//! The export itself, shared by `GET /fhir/…` and GraphQL's `fhirExport`: who may read, the
//! query window and paging, loading one page of a municipality's rows, building the resources
//! and auditing every one served that names a recipient.
//!
//! **Windows.** Every resource has a version time Velferd sets itself, `meta.lastUpdated`: a
//! dose's when it was stored (`device_event.received_at`; events never change), an alert's its
//! newest step (every change to what is exported writes a step). A search answers the resources
//! whose version time lies in `[from, to)`, oldest first (ties by row id), a page at a time; the
//! cursor is the last row read, so paging a window returns each resource once. With no upper
//! bound the window ends [`SETTLE`] before the request, so that rows of transactions still
//! committing fall into the next window rather than between two: a client that asks from the
//! previous window's end misses nothing.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query as SqlQuery};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::{Value, json};

use super::resources::{self, AlertFacts, DeviceFacts, DispenseFacts, OrgFacts, Subject, instant};
use super::settings;
use crate::alerts::model::{alert, alert_step};
use crate::alerts::rules::{Family, rule_of};
use crate::audit;
use crate::auth::{Grant, Role};
use crate::care::model::service_recipient;
use crate::devices::model::{DeviceStatus, adapter, device, device_event, device_product, device_status_change};
use crate::errors::ApiError;
use crate::organizations::OrganizationKind;
use crate::organizations::model as organization;

/// Default page size.
pub const DEFAULT_COUNT: u64 = 50;
/// Largest page (`_count`, `first`).
pub const MAX_COUNT: u64 = 100;
/// How long before the request a window without an upper bound ends.
pub const SETTLE: chrono::Duration = chrono::Duration::seconds(2);

/// What a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum FhirResource {
    /// Dispensed doses (and acknowledged messages) as MedicationDispense.
    MedicationDispense,
    /// One `collection` Bundle per alarm: DetectedIssue + Encounter + Composition.
    Bundle,
    /// Alerts that are not alarms (medication and device alerts) as DetectedIssue.
    DetectedIssue,
}

impl FhirResource {
    /// By the resource type in the URL (`/fhir/MedicationDispense`).
    pub fn from_type(name: &str) -> Option<FhirResource> {
        match name {
            "MedicationDispense" => Some(FhirResource::MedicationDispense),
            "Bundle" => Some(FhirResource::Bundle),
            "DetectedIssue" => Some(FhirResource::DetectedIssue),
            _ => None,
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            FhirResource::MedicationDispense => "MedicationDispense",
            FhirResource::Bundle => "Bundle",
            FhirResource::DetectedIssue => "DetectedIssue",
        }
    }

    fn cursor_tag(self) -> &'static str {
        match self {
            FhirResource::MedicationDispense => "md",
            FhirResource::Bundle => "al",
            FhirResource::DetectedIssue => "di",
        }
    }
}

/// Whether alerts of `kind` are alarms, reported as a Bundle: the alarm family of the alert
/// rule table (safety alarm and home sensors: VKP 3 and 4.x), which the response centre
/// handles. Medication and device alerts are DetectedIssues alone.
pub fn is_alarm(kind: &str) -> bool {
    rule_of(kind).is_some_and(|rule| rule.family == Family::Alarm)
}

/// A bad search: the caller's to fix (HTTP 400, GraphQL `BAD_USER_INPUT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadSearch(pub String);

/// A position in a window: the version time and row id of the last row read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: i64,
}

impl Cursor {
    /// Opaque to clients: only Velferd reads it back, for the same resource type.
    pub fn encode(&self, resource: FhirResource) -> String {
        let nanos = self.at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let raw = format!("v1.{}.{nanos}.{}", resource.cursor_tag(), self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(text: &str, resource: FhirResource) -> Result<Cursor, BadSearch> {
        let bad = || BadSearch("the cursor is not one this search gave out".into());
        if text.len() > 200 {
            return Err(bad());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let parts: Vec<&str> = raw.split('.').collect();
        let [version, tag, nanos, id] = parts.as_slice() else { return Err(bad()) };
        if *version != "v1" || *tag != resource.cursor_tag() {
            return Err(bad());
        }
        let nanos: i64 = nanos.parse().map_err(|_| bad())?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        Ok(Cursor { at: DateTime::from_timestamp_nanos(nanos), id })
    }
}

/// One search: what, which window, how many, from where.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub resource: FhirResource,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    pub count: u64,
    pub after: Option<Cursor>,
}

/// A FHIR `instant`/`dateTime` with a zone, or a date (midnight UTC).
pub fn parse_time(value: &str) -> Result<DateTime<Utc>, BadSearch> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(BadSearch(format!(
        "{:?} is not a date (YYYY-MM-DD) or a time with its zone (YYYY-MM-DDThh:mm:ss[.fff]Z)",
        value.chars().take(40).collect::<String>()
    )))
}

impl Search {
    /// A search from the window's bounds (`since` inclusive, `until` exclusive), a page size
    /// and a cursor, as GraphQL's arguments give them.
    pub fn new(
        resource: FhirResource,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        count: Option<i64>,
        after: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Search, BadSearch> {
        let count = match count {
            None => DEFAULT_COUNT,
            Some(n) if (1..=MAX_COUNT as i64).contains(&n) => n as u64,
            Some(n) => return Err(BadSearch(format!("the page size must be 1 to {MAX_COUNT}; {n} is not"))),
        };
        let after = after.map(|c| Cursor::decode(c, resource)).transpose()?;
        Ok(Search { resource, from: since, to: until.unwrap_or(now - SETTLE), count, after })
    }

    /// A search from a FHIR query string's parameters: `_count`, `_since`, `_lastUpdated` with
    /// `ge`, `gt`, `le` or `lt` (twice at most), `_cursor` (from a `next` link) and `_format`
    /// (JSON only). Anything else is refused, so a misspelt filter never exports more than
    /// asked for.
    pub fn from_params(
        resource: FhirResource,
        params: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<Search, BadSearch> {
        if params.len() > 8 {
            return Err(BadSearch("too many search parameters".into()));
        }
        let (mut count, mut since, mut cursor) = (None, None, None);
        let mut from: Option<DateTime<Utc>> = None;
        let mut to: Option<DateTime<Utc>> = None;
        let mut bounds = 0;
        let once = |slot: &Option<String>, name: &str| match slot {
            Some(_) => Err(BadSearch(format!("{name} may be given once"))),
            None => Ok(()),
        };
        for (name, value) in params {
            match name.as_str() {
                "_count" => {
                    once(&count, "_count")?;
                    count = Some(value.clone());
                }
                "_since" => {
                    once(&since, "_since")?;
                    since = Some(value.clone());
                }
                "_cursor" => {
                    once(&cursor, "_cursor")?;
                    cursor = Some(value.clone());
                }
                "_format" => {
                    if !matches!(value.as_str(), "json" | "application/json" | "application/fhir+json") {
                        return Err(BadSearch("only JSON is offered (_format=json)".into()));
                    }
                }
                "_lastUpdated" => {
                    bounds += 1;
                    if bounds > 2 {
                        return Err(BadSearch("_lastUpdated may be given twice at most (ge… and lt…)".into()));
                    }
                    // By `get`: a value is the caller's text, and byte 2 need not be a char boundary.
                    let prefix = value.get(..2).filter(|p| matches!(*p, "ge" | "gt" | "le" | "lt"));
                    let Some(prefix) = prefix else {
                        return Err(BadSearch(
                            "_lastUpdated takes a prefix: ge, gt, le or lt (e.g. _lastUpdated=ge2026-12-01)".into(),
                        ));
                    };
                    let at = parse_time(&value[2..])?;
                    let tick = chrono::Duration::nanoseconds(1);
                    match prefix {
                        "ge" => from = std::cmp::max(from, Some(at)),
                        "gt" => from = std::cmp::max(from, Some(at + tick)),
                        "lt" => to = Some(to.map_or(at, |t| std::cmp::min(t, at))),
                        _ => to = Some(to.map_or(at + tick, |t| std::cmp::min(t, at + tick))),
                    }
                }
                other => {
                    return Err(BadSearch(format!(
                        "unknown search parameter {:?}; this search takes _count, _since, _lastUpdated, _cursor and _format",
                        other.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
        if let Some(since) = since {
            from = std::cmp::max(from, Some(parse_time(&since)?));
        }
        let count = count
            .map(|c| c.parse::<i64>().map_err(|_| BadSearch(format!("_count must be a whole number 1 to {MAX_COUNT}"))))
            .transpose()?;
        Search::new(resource, from, to, count, cursor.as_deref(), now)
    }

    /// This search's query string, with the window resolved (and a cursor, for `next`).
    pub fn query_string(&self, after: Option<&Cursor>) -> String {
        let mut parts = Vec::new();
        if let Some(from) = self.from {
            parts.push(format!("_lastUpdated=ge{}", url_time(from)));
        }
        parts.push(format!("_lastUpdated=lt{}", url_time(self.to)));
        parts.push(format!("_count={}", self.count));
        if let Some(cursor) = after {
            parts.push(format!("_cursor={}", cursor.encode(self.resource)));
        }
        parts.join("&")
    }
}

/// A time as a query-string value (nanoseconds, so a bound round-trips exactly; `+` never
/// appears: the zone is `Z`).
fn url_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).replace(':', "%3A")
}

/// Who reads the export: a municipality's `integration` token (its journal system) or its
/// `case_worker`s, for its own recipients only.
#[derive(Debug, Clone)]
pub struct Reader {
    pub subject: String,
    pub municipality: organization::Model,
    pub role: Role,
}

impl Reader {
    pub fn of(grant: &Grant) -> Result<Reader, ApiError> {
        let principal = grant.require_any(&[Role::Integration, Role::CaseWorker], "read the FHIR export")?;
        let org = grant.organization().ok_or_else(|| ApiError::internal("a role without an organisation"))?;
        if org.kind != OrganizationKind::Municipality {
            return Err(ApiError::Forbidden(
                "the FHIR export is a municipality's: only its integration token and case workers read it".into(),
            ));
        }
        let role = if grant.has_role(Role::Integration) { Role::Integration } else { Role::CaseWorker };
        Ok(Reader { subject: principal.subject.clone(), municipality: org.clone(), role })
    }

    /// The namespace of the municipality's stable ids.
    fn namespace(&self) -> String {
        self.municipality.org_number.clone().unwrap_or_else(|| format!("org-{}", self.municipality.id))
    }
}

/// One resource served, for the audit log.
struct Served {
    recipient_id: i64,
    object_type: &'static str,
    object_id: i64,
}

/// Runs `search` for `reader`: a `searchset` Bundle whose links start with `base` (the server's
/// address for HTTP, empty for GraphQL). Every resource it holds that names a recipient is
/// written to the audit log before it is answered.
pub async fn search(db: &crate::db::Database, reader: &Reader, search: &Search, base: &str) -> Result<Value, ApiError> {
    let read = db.read();
    let (system, _) = settings::recipient_system(read, &reader.municipality).await?;
    let page = PageRequest { reader, search, namespace: reader.namespace(), system };
    let (entries, served, next) = match search.resource {
        FhirResource::MedicationDispense => doses(read, &page).await?,
        FhirResource::Bundle | FhirResource::DetectedIssue => alerts(read, &page).await?,
    };
    if !served.is_empty() {
        let txn = db.write().begin().await?;
        for s in &served {
            audit::record(
                &txn,
                audit::Access {
                    subject: &reader.subject,
                    organization_id: reader.municipality.id,
                    role: reader.role,
                    municipality_id: reader.municipality.id,
                    recipient_id: s.recipient_id,
                    operation: "fhir.read",
                    object_type: s.object_type,
                    object_id: s.object_id,
                    purpose: audit::Purpose::Casework,
                    decision: audit::Decision::Granted,
                },
            )
            .await?;
        }
        txn.commit().await?;
    }
    let path = format!("{base}/fhir/{}", search.resource.type_name());
    let mut links =
        vec![json!({ "relation": "self", "url": format!("{path}?{}", search.query_string(search.after.as_ref())) })];
    if let Some(next) = next {
        links.push(json!({ "relation": "next", "url": format!("{path}?{}", search.query_string(Some(&next))) }));
    }
    let now = instant(Utc::now());
    Ok(json!({
        "resourceType": "Bundle",
        "meta": { "lastUpdated": now },
        "type": "searchset",
        "timestamp": now,
        "link": links,
        "entry": entries.into_iter().map(|resource| {
            let url = format!("urn:uuid:{}", resource["id"].as_str().unwrap_or_default());
            json!({ "fullUrl": url, "resource": resource, "search": { "mode": "match" } })
        }).collect::<Vec<_>>(),
    }))
}

type PageOf = (Vec<Value>, Vec<Served>, Option<Cursor>);

/// What one page is read for: who reads, what they search, and the names its resources are
/// written under.
struct PageRequest<'a> {
    reader: &'a Reader,
    search: &'a Search,
    /// The namespace of the municipality's stable ids ([`Reader::namespace`]).
    namespace: String,
    /// The identifier system of its recipients' references.
    system: String,
}

/// What a dose's resource needs: its recipient (row and reference), its device, its VKP code.
type Exported<'a> = (i64, &'a String, &'a DeviceFacts, String);

fn utc(at: sea_orm::prelude::DateTimeWithTimeZone) -> DateTime<Utc> {
    at.with_timezone(&Utc)
}

/// The window and cursor as a condition on a version-time column and an id column.
fn window_condition<T, I>(search: &Search, at: T, id: I) -> Condition
where
    T: ColumnTrait,
    I: ColumnTrait,
{
    let mut condition = Condition::all().add(at.lt(search.to.fixed_offset()));
    if let Some(from) = search.from {
        condition = condition.add(at.gte(from.fixed_offset()));
    }
    if let Some(c) = search.after {
        let at_c = c.at.fixed_offset();
        condition =
            condition.add(Condition::any().add(at.gt(at_c)).add(Condition::all().add(at.eq(at_c)).add(id.gt(c.id))));
    }
    condition
}

/// Most rows one page of doses reads, per entry it may hold: doses of unassigned devices are
/// read and skipped, so a page reads ahead to fill itself, this far.
const SCAN_FACTOR: u64 = 4;

/// A page of dispensed doses. A dose whose device was assigned to nobody when it was stored
/// names no recipient and is not exported (MedicationDispense needs its subject); the page reads
/// on past such rows (up to [`SCAN_FACTOR`] rows per entry), so it is full unless the window
/// ends, and has a `next` link only when more may follow.
async fn doses<C: ConnectionTrait>(db: &C, page: &PageRequest<'_>) -> Result<PageOf, ApiError> {
    let PageRequest { reader, search, namespace, system } = page;
    let devices_of_municipality = SqlQuery::select()
        .column(device::Column::Id)
        .from(device::Entity)
        .and_where(device::Column::MunicipalityId.eq(reader.municipality.id))
        .to_owned();
    let scan = search.count * SCAN_FACTOR;
    let mut rows = device_event::Entity::find()
        .filter(device_event::Column::Kind.is_in(resources::DISPENSE_KINDS))
        .filter(device_event::Column::DeviceId.in_subquery(devices_of_municipality))
        .filter(window_condition(search, device_event::Column::ReceivedAt, device_event::Column::Id))
        .order_by_asc(device_event::Column::ReceivedAt)
        .order_by_asc(device_event::Column::Id)
        .limit(scan + 1)
        .all(db)
        .await?;
    let truncated = rows.len() as u64 > scan;
    rows.truncate(scan as usize);
    let device_ids: BTreeSet<i64> = rows.iter().map(|r| r.device_id).collect();
    let history = device_status_change::Entity::find()
        .filter(device_status_change::Column::DeviceId.is_in(device_ids.iter().copied()))
        .order_by_asc(device_status_change::Column::At)
        .order_by_asc(device_status_change::Column::Id)
        .all(db)
        .await?;
    // The recipient each event's device was assigned to when the event was stored: what the
    // alerts raised by the same ingest record, too.
    let holder = |event: &device_event::Model| -> Option<i64> {
        let last = history.iter().rfind(|c| c.device_id == event.device_id && utc(c.at) <= utc(event.received_at))?;
        matches!(last.to_status, DeviceStatus::Assigned | DeviceStatus::Active | DeviceStatus::Faulty)
            .then_some(last.recipient_id)
            .flatten()
    };
    let holders: Vec<Option<i64>> = rows.iter().map(holder).collect();
    let recipients = recipients_of(db, reader, holders.iter().flatten().copied()).await?;
    let devices = device_facts(db, device_ids.iter().copied()).await?;
    // Each row with what its resource needs, when it is exported.
    let exported: Vec<(&device_event::Model, Option<Exported>)> = rows
        .iter()
        .zip(holders)
        .map(|(row, holder)| {
            let parts = (|| {
                let recipient = holder?;
                Some((recipient, recipients.get(&recipient)?, devices.get(&row.device_id)?, row.vkp_code.clone()?))
            })();
            (row, parts)
        })
        .collect();
    let mut entries = Vec::new();
    let mut served = Vec::new();
    let mut next = None;
    for (i, (row, parts)) in exported.iter().enumerate() {
        let Some((recipient_id, reference, device, code)) = parts else { continue };
        if entries.len() as u64 == search.count {
            // A further entry exists: the page ends before it.
            let (last, _) = exported[i - 1];
            next = Some(Cursor { at: utc(last.received_at), id: last.id });
            break;
        }
        let dose = DispenseFacts {
            event_id: row.id,
            kind: row.kind.clone(),
            code: code.clone(),
            occurred_at: utc(row.occurred_at),
            received_at: utc(row.received_at),
            scheduled_for: resources::scheduled_for(&row.data),
        };
        let subject = Subject { system: system.to_string(), reference: (*reference).clone() };
        entries.push(resources::medication_dispense(namespace, &dose, &subject, device));
        served.push(Served { recipient_id: *recipient_id, object_type: "DeviceEvent", object_id: row.id });
    }
    if next.is_none() && truncated {
        // The rows read ran out before the window did.
        next = rows.last().map(|r| Cursor { at: utc(r.received_at), id: r.id });
    }
    Ok((entries, served, next))
}

/// The references of the municipality's recipients among `ids`.
async fn recipients_of<C: ConnectionTrait>(
    db: &C,
    reader: &Reader,
    ids: impl Iterator<Item = i64>,
) -> Result<BTreeMap<i64, String>, DbErr> {
    let ids: BTreeSet<i64> = ids.collect();
    Ok(service_recipient::Entity::find()
        .filter(service_recipient::Column::Id.is_in(ids))
        .filter(service_recipient::Column::MunicipalityId.eq(reader.municipality.id))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.id, r.reference))
        .collect())
}

/// Serial, product and product name of each device.
async fn device_facts<C: ConnectionTrait>(
    db: &C,
    ids: impl Iterator<Item = i64>,
) -> Result<BTreeMap<i64, DeviceFacts>, DbErr> {
    let devices = device::Entity::find().filter(device::Column::Id.is_in(ids)).all(db).await?;
    let product_ids: BTreeSet<i64> = devices.iter().map(|d| d.product_id).collect();
    let products: BTreeMap<i64, device_product::Model> = device_product::Entity::find()
        .filter(device_product::Column::Id.is_in(product_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    // The product's name as its newest adapter describes it.
    let adapters: Vec<adapter::Summary> = adapter::Entity::find()
        .filter(adapter::Column::ProductId.is_in(product_ids.iter().copied()))
        .order_by_desc(adapter::Column::Id)
        .into_partial_model()
        .all(db)
        .await?;
    let mut names: BTreeMap<i64, String> = BTreeMap::new();
    for a in adapters {
        if names.contains_key(&a.product_id) {
            continue;
        }
        let described: Option<Value> = serde_json::from_str(&a.description).ok();
        if let Some(name) = described.as_ref().and_then(|d| d.get("product")).and_then(Value::as_str) {
            names.insert(a.product_id, name.chars().take(200).collect());
        }
    }
    Ok(devices
        .into_iter()
        .filter_map(|d| {
            let product = products.get(&d.product_id)?;
            let name = names.get(&d.product_id).cloned().unwrap_or_else(|| product.slug.clone());
            Some((d.id, DeviceFacts { serial: d.serial, product_slug: product.slug.clone(), product_name: name }))
        })
        .collect())
}

/// A page of alerts: alarms as Bundles, or the other alerts as DetectedIssues. Only alerts that
/// name a recipient and carry a VKP alert code are exported (DetectedIssue needs both).
async fn alerts<C: ConnectionTrait>(db: &C, page: &PageRequest<'_>) -> Result<PageOf, ApiError> {
    let PageRequest { reader, search, namespace, system } = page;
    let alarm_kinds: Vec<&str> = crate::alerts::rules::RULES.iter().map(|r| r.kind).filter(|k| is_alarm(k)).collect();
    let mut exported = SqlQuery::select()
        .column(alert::Column::Id)
        .from(alert::Entity)
        .and_where(alert::Column::MunicipalityId.eq(reader.municipality.id))
        .and_where(alert::Column::RecipientId.is_not_null())
        .and_where(alert::Column::VkpCode.is_not_null())
        .to_owned();
    match search.resource {
        FhirResource::Bundle => exported.and_where(alert::Column::Kind.is_in(alarm_kinds)),
        _ => exported.and_where(alert::Column::Kind.is_not_in(alarm_kinds)),
    };
    let updated = Expr::col((alert_step::Entity, alert_step::Column::At)).max();
    let mut having = Condition::all().add(updated.clone().lt(search.to.fixed_offset()));
    if let Some(from) = search.from {
        having = having.add(updated.clone().gte(from.fixed_offset()));
    }
    if let Some(c) = search.after {
        let at_c = c.at.fixed_offset();
        having = having.add(
            Condition::any()
                .add(updated.clone().gt(at_c))
                .add(Condition::all().add(updated.clone().eq(at_c)).add(alert_step::Column::AlertId.gt(c.id))),
        );
    }
    let mut versions: Vec<(i64, sea_orm::prelude::DateTimeWithTimeZone)> = alert_step::Entity::find()
        .select_only()
        .column(alert_step::Column::AlertId)
        .expr_as(updated.clone(), "updated")
        .filter(alert_step::Column::AlertId.in_subquery(exported))
        .group_by(alert_step::Column::AlertId)
        .having(having)
        .order_by(updated, Order::Asc)
        .order_by_asc(alert_step::Column::AlertId)
        .limit(search.count + 1)
        .into_tuple()
        .all(db)
        .await?;
    let next = if versions.len() as u64 > search.count {
        versions.truncate(search.count as usize);
        versions.last().map(|(id, at)| Cursor { at: utc(*at), id: *id })
    } else {
        None
    };
    let ids: Vec<i64> = versions.iter().map(|(id, _)| *id).collect();
    let rows: BTreeMap<i64, alert::Model> = alert::Entity::find()
        .filter(alert::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let steps = alert_step::Entity::find()
        .filter(alert_step::Column::AlertId.is_in(ids.iter().copied()))
        .order_by_asc(alert_step::Column::At)
        .order_by_asc(alert_step::Column::Id)
        .all(db)
        .await?;
    let recipients = recipients_of(db, reader, rows.values().filter_map(|a| a.recipient_id)).await?;
    let devices = device_facts(db, rows.values().map(|a| a.device_id)).await?;
    let org_ids: BTreeSet<i64> = steps.iter().filter_map(|s| s.organization_id).collect();
    let orgs: BTreeMap<i64, OrgFacts> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(org_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|o| (o.id, OrgFacts { name: o.name, org_number: o.org_number }))
        .collect();
    let event_ids: BTreeSet<i64> = rows.values().filter_map(|a| a.event_id).collect();
    let locations: BTreeMap<i64, String> = device_event::Entity::find()
        .filter(device_event::Column::Id.is_in(event_ids))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|e| {
            let data: Value = serde_json::from_str(&e.data).ok()?;
            let location = data.get("kind")?.get("location")?.as_str()?.chars().take(100).collect();
            Some((e.id, location))
        })
        .collect();
    let municipality =
        OrgFacts { name: reader.municipality.name.clone(), org_number: reader.municipality.org_number.clone() };
    let mut entries = Vec::new();
    let mut served = Vec::new();
    for id in ids {
        let Some(a) = rows.get(&id) else { continue };
        let (Some(recipient_id), Some(device)) = (a.recipient_id, devices.get(&a.device_id)) else { continue };
        let Some(reference) = recipients.get(&recipient_id) else { continue };
        let own_steps: Vec<alert_step::Model> = steps.iter().filter(|s| s.alert_id == id).cloned().collect();
        let step_orgs = own_steps.iter().map(|s| s.organization_id.and_then(|o| orgs.get(&o)).cloned()).collect();
        let facts = AlertFacts {
            alert: a.clone(),
            steps: own_steps,
            subject: Subject { system: system.to_string(), reference: reference.clone() },
            device: device.clone(),
            municipality: municipality.clone(),
            step_orgs,
            location: a.event_id.and_then(|e| locations.get(&e)).cloned(),
        };
        let resource = match search.resource {
            FhirResource::Bundle => resources::alarm_bundle(namespace, &facts),
            _ => resources::detected_issue(namespace, &facts),
        };
        if let Some(resource) = resource {
            entries.push(resource);
            served.push(Served { recipient_id, object_type: "Alert", object_id: id });
        }
    }
    Ok((entries, served, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_window_is_read_from_since_and_last_updated_and_ends_before_the_request_by_default() {
        let md = FhirResource::MedicationDispense;
        let s = Search::from_params(md, &[], now()).unwrap();
        assert_eq!((s.from, s.to, s.count, s.after), (None, now() - SETTLE, DEFAULT_COUNT, None));
        let s = Search::from_params(
            md,
            &params(&[
                ("_lastUpdated", "ge2026-12-01"),
                ("_lastUpdated", "lt2026-12-02T00:00:00+01:00"),
                ("_count", "7"),
            ]),
            now(),
        )
        .unwrap();
        assert_eq!(s.from.map(instant).as_deref(), Some("2026-12-01T00:00:00.000000Z"));
        assert_eq!(instant(s.to), "2026-12-01T23:00:00.000000Z");
        assert_eq!(s.count, 7);
        let s = Search::from_params(md, &params(&[("_since", "2026-12-03"), ("_lastUpdated", "ge2026-12-02")]), now())
            .unwrap();
        assert_eq!(s.from.map(instant).as_deref(), Some("2026-12-03T00:00:00.000000Z"), "the later lower bound");
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        let md = FhirResource::MedicationDispense;
        for bad in [
            vec![("_count", "0")],
            vec![("_count", "101")],
            vec![("_count", "ten")],
            vec![("_count", "1"), ("_count", "2")],
            vec![("_lastUpdated", "2026-12-01")],
            vec![("_lastUpdated", "eq2026-12-01")],
            vec![("_lastUpdated", "aæ2026")],
            vec![("_lastUpdated", "g")],
            vec![("_lastUpdated", "ge2026-13-01")],
            vec![("_lastUpdated", "ge1"), ("_lastUpdated", "lt2"), ("_lastUpdated", "lt3")],
            vec![("_since", "yesterday")],
            vec![("_lastupdated", "ge2026-12-01")],
            vec![("patient", "tm-0042")],
            vec![("_format", "xml")],
            vec![("_cursor", "bm90IGEgY3Vyc29y")],
        ] {
            let pairs: Vec<(&str, &str)> = bad.clone();
            assert!(Search::from_params(md, &params(&pairs), now()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cursor_round_trips_and_belongs_to_its_resource_type() {
        let cursor = Cursor { at: DateTime::from_timestamp_nanos(1_796_000_000_123_456_789), id: 42 };
        let text = cursor.encode(FhirResource::Bundle);
        assert_eq!(Cursor::decode(&text, FhirResource::Bundle), Ok(cursor));
        assert!(Cursor::decode(&text, FhirResource::MedicationDispense).is_err());
        assert!(Cursor::decode("!!", FhirResource::Bundle).is_err());
        let s = Search::from_params(FhirResource::Bundle, &params(&[("_cursor", &text)]), now()).unwrap();
        assert_eq!(s.after, Some(cursor));
        let again = s.query_string(s.after.as_ref());
        assert!(again.contains(&format!("_cursor={text}")) && again.contains("_lastUpdated=lt"), "{again}");
    }

    #[test]
    fn alarms_are_the_alarm_family() {
        assert!(is_alarm("alarm-button") && is_alarm("fall") && is_alarm("safety-alarm"));
        assert!(!is_alarm("dose-missed") && !is_alarm("device-offline") && !is_alarm("battery-low"));
    }
}
