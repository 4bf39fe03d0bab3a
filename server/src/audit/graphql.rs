//! GraphQL face of the audit log, for the municipality's privacy officer: one recipient's log
//! (`auditLog`), the entries flagged for review (`auditEntriesFlagged`) and the export a
//! recipient is given ("who has looked at my data", `auditExport`).
//!
//! Read-only by design: there is no mutation that changes or deletes an entry. Every read here
//! is itself written to the log (purpose `oversight`), in the chain of the privacy officer's
//! municipality, before the answer leaves. A recipient id of another municipality, or one
//! that names nothing, answers `null` alike; any other role is refused and nothing is written.

use std::collections::{BTreeSet, HashMap};

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use velferd_macros::{connections, row_fields};

use super::model::audit_entry;
use super::{Access, Decision, Purpose};
use crate::auth::{Caller, Role};
use crate::db::Database;
use crate::errors::ApiError;
use crate::graphql::connection::{Cursor, OrderDirection, Page, PageArgs, SortKey, page_sorted};
use crate::graphql::context::{caller, load_one, state};

// `Query` names the area's root for the area table, `crate::areas!`.
pub use self::AuditQuery as Query;

/// The node type name of service recipients' global ids.
const RECIPIENT_TYPE: &str = "ServiceRecipient";

/// Most entries one export holds; a longer log is paged with `auditLog`.
pub const MAX_EXPORT_ENTRIES: u64 = 5000;

/// The row id inside a service recipient's global id (`base64url("ServiceRecipient:<id>")`,
/// as `crate::ids` encodes every node), or `None` for anything else.
pub fn recipient_row_id(id: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let (name, row) = std::str::from_utf8(&bytes).ok()?.split_once(':')?;
    let row: i64 = row.parse().ok()?;
    (name == RECIPIENT_TYPE && row > 0).then_some(row)
}

/// A service recipient's global id.
pub fn recipient_global_id(row: i64) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{RECIPIENT_TYPE}:{row}")))
}

/// Whether the access was allowed, and whether it waits for a privacy officer's review.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AuditDecision {
    Granted,
    /// Allowed, but the caller had no open alert or assignment for the recipient.
    GrantedFlagged,
}

/// Why the caller touched the recipient's data.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AuditPurposeKind {
    /// Handling an open alert that names the recipient.
    Alert,
    /// A device assignment that links the caller to the recipient.
    Assignment,
    /// Casework: registering, assessing, assigning, ending the service.
    Casework,
    /// A reason the caller gave.
    Stated,
    /// A privacy officer reading the log.
    Oversight,
    /// A kind this version does not know.
    Other,
}

/// One read or change of a recipient's data, as the log holds it.
#[derive(Clone)]
pub struct AuditEntry(pub audit_entry::Model);

#[row_fields]
#[Object]
impl AuditEntry {
    /// The entry's place in its municipality's hash chain (1, 2, 3 …).
    async fn seq(&self) -> i64;

    async fn at(&self) -> DateTime<Utc>;

    /// The recipient whose data was touched (`ServiceRecipient.id`).
    async fn recipient_id(&self) -> ID {
        recipient_global_id(self.0.recipient_id)
    }

    /// Who: the subject of the caller's token.
    async fn subject(&self) -> &str;

    /// Who: the caller's organisation (`Organization.id`).
    async fn organization_id(&self) -> ID {
        ID(crate::ids::global_id(crate::ids::NodeType::Organization, self.0.organization_id))
    }

    /// Who: the caller's organisation's name (null if it has since been removed).
    async fn organization_name(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let org = load_one(ctx, crate::graphql::loaders::OrganizationById(self.0.organization_id)).await?;
        Ok(org.map(|o| o.name))
    }

    /// Who: the role the caller acted under, e.g. `case_worker`.
    async fn role(&self) -> &str;

    /// What was done, e.g. `recipient.read`, `assessment.create`.
    async fn operation(&self) -> &str;

    /// The kind of object read or changed, e.g. `ServiceRecipient`.
    async fn object_type(&self) -> &str;

    /// The object's row id.
    async fn object_id(&self) -> i64;

    async fn purpose_kind(&self) -> AuditPurposeKind {
        purpose_kind(&self.0.purpose_kind)
    }

    /// The alert's or device's row id, or the caller's stated reason; empty otherwise.
    async fn purpose_detail(&self) -> &str {
        &self.0.purpose
    }

    async fn decision(&self) -> AuditDecision {
        decision(&self.0.decision)
    }

    /// The entry in plain language: what was done, and why.
    async fn description(&self) -> String {
        format!("{}, {}", what(&self.0), why(&self.0))
    }
}

/// Which entries of a recipient's log to list.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// Only entries flagged for review (`true`) or only those not flagged (`false`).
    pub flagged: Option<bool>,
    /// Only this operation, e.g. `recipient.read`.
    pub operation: Option<String>,
}

/// A recipient's log as a document for the recipient: who looked at their data, when, what
/// they did and why, in plain language.
#[derive(SimpleObject, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditExport {
    pub recipient_id: ID,
    /// The municipality that serves the recipient and keeps the log.
    pub municipality: String,
    pub generated_at: DateTime<Utc>,
    /// False when the log holds more than the export's 5000 entries (the newest are given;
    /// page through `auditLog` for the rest).
    pub complete: bool,
    /// Oldest first.
    pub entries: Vec<AuditExportLine>,
    /// The same, as a plain-text letter.
    pub text: String,
}

/// One line of an export.
#[derive(SimpleObject, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditExportLine {
    pub at: DateTime<Utc>,
    /// The person, as their organisation identifies them.
    pub who: String,
    pub organization: String,
    pub role: String,
    pub what: String,
    pub why: String,
    /// A privacy officer is asked to look at this access: the person had no open alarm or
    /// assignment for the recipient.
    pub flagged_for_review: bool,
}

#[derive(Default)]
pub struct AuditQuery;

#[connections]
#[Object]
impl AuditQuery {
    /// One service recipient's audit log, in chain order (newest first by default): every
    /// read or change of their data. The privacy officer (`privacy_officer`) of the recipient's
    /// municipality only; null for a recipient of another municipality or none. This read is
    /// logged (purpose `oversight`).
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        recipient_id: ID,
        filter: Option<AuditLogFilter>,
        direction: Option<OrderDirection>,
        page: PageArgs,
    ) -> Result<Option<Page<AuditEntry>>> {
        let caller = caller(ctx, Role::PrivacyOfficer, "read the audit log").await?;
        let page = page.parse()?;
        let filter = filter.unwrap_or_default();
        let operation = match filter.operation.as_deref().map(str::trim) {
            Some(op) if op.chars().count() > 80 => {
                return Err(ApiError::BadUserInput("`operation` has more than 80 characters".into()).into());
            }
            other => other.map(str::to_string),
        };
        let db = state(ctx).db.read();
        let Some(recipient) = known_recipient(db, &caller, &recipient_id).await? else { return Ok(None) };
        oversight(&state(ctx).db, &caller, [recipient], "audit.read").await?;
        let mut select = audit_entry::Entity::find()
            .filter(audit_entry::Column::MunicipalityId.eq(caller.org.id))
            .filter(audit_entry::Column::RecipientId.eq(recipient));
        if let Some(flagged) = filter.flagged {
            let column = audit_entry::Column::Decision;
            let flagged_value = Decision::GrantedFlagged.as_str();
            select = select.filter(if flagged { column.eq(flagged_value) } else { column.ne(flagged_value) });
        }
        if let Some(operation) = operation {
            select = select.filter(audit_entry::Column::Operation.eq(operation));
        }
        let direction = direction.unwrap_or(OrderDirection::Desc);
        Ok(Some(entries_page(ctx, select, direction, &page).await?))
    }

    /// The entries of the privacy officer's municipality flagged for review, newest first:
    /// reads and changes by someone who had no open alert or assignment for the recipient
    /// (the area that served the access judges it and records `GRANTED_FLAGGED`). The
    /// privacy officer (`privacy_officer`) only; each recipient on the page gets an
    /// `oversight` entry.
    async fn audit_entries_flagged(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<AuditEntry>> {
        let caller = caller(ctx, Role::PrivacyOfficer, "read the audit log").await?;
        let page = page.parse()?;
        let select = audit_entry::Entity::find()
            .filter(audit_entry::Column::MunicipalityId.eq(caller.org.id))
            .filter(audit_entry::Column::Decision.eq(Decision::GrantedFlagged.as_str()));
        let connection = entries_page(ctx, select, OrderDirection::Desc, &page).await?;
        let recipients: BTreeSet<i64> = connection.edges.iter().map(|e| e.node.0.recipient_id).collect();
        oversight(&state(ctx).db, &caller, recipients, "audit.read_flagged").await?;
        Ok(connection)
    }

    /// One recipient's log as a document to give them ("who has looked at my data"): who
    /// (person, organisation, role), when, what and why, in plain language, oldest first.
    /// The privacy officer (`privacy_officer`) of the recipient's municipality only; null for a
    /// recipient of another municipality or none. The export is logged (purpose `oversight`)
    /// and appears in itself.
    #[graphql(complexity = 500)]
    async fn audit_export(&self, ctx: &Context<'_>, recipient_id: ID) -> Result<Option<AuditExport>> {
        let caller = caller(ctx, Role::PrivacyOfficer, "export the audit log").await?;
        Ok(export(&state(ctx).db, &caller, &recipient_id).await?)
    }
}

/// One recipient's log as a document for them (`auditExport`, and
/// `GET /audit/recipients/{id}/export`), for a privacy officer `caller`: `None` for a recipient
/// of another municipality or none. Logs the export first (purpose `oversight`), so it appears
/// in itself.
pub async fn export(database: &Database, caller: &Caller, recipient_id: &str) -> Result<Option<AuditExport>, ApiError> {
    let db = database.read();
    let Some(recipient) = known_recipient(db, caller, recipient_id).await? else { return Ok(None) };
    oversight(database, caller, [recipient], "audit.export").await?;
    let of_recipient = audit_entry::Entity::find()
        .filter(audit_entry::Column::MunicipalityId.eq(caller.org.id))
        .filter(audit_entry::Column::RecipientId.eq(recipient));
    let total = of_recipient.clone().count(db).await?;
    let mut rows = of_recipient.order_by_desc(audit_entry::Column::Seq).limit(MAX_EXPORT_ENTRIES).all(db).await?;
    rows.reverse();
    let org_ids: Vec<i64> = rows.iter().map(|r| r.organization_id).collect::<BTreeSet<_>>().into_iter().collect();
    let names: HashMap<i64, String> = crate::organizations::model::Entity::find()
        .filter(crate::organizations::model::Column::Id.is_in(org_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let entries: Vec<AuditExportLine> = rows
        .iter()
        .map(|row| AuditExportLine {
            at: row.at.with_timezone(&Utc),
            who: row.subject.clone(),
            organization: names.get(&row.organization_id).cloned().unwrap_or_else(|| "(organisation removed)".into()),
            role: role_phrase(&row.role).to_string(),
            what: what(row),
            why: why(row),
            flagged_for_review: row.decision == Decision::GrantedFlagged.as_str(),
        })
        .collect();
    let generated_at = Utc::now();
    let complete = total <= MAX_EXPORT_ENTRIES;
    let text = letter(&caller.org.name, generated_at, &entries, complete, total);
    Ok(Some(AuditExport {
        recipient_id: recipient_global_id(recipient),
        municipality: caller.org.name.clone(),
        generated_at,
        complete,
        entries,
        text,
    }))
}

/// The recipient `id` names, if the caller's municipality serves it or its log holds entries
/// for it (the log outlives the recipient's erasure).
async fn known_recipient<C: ConnectionTrait>(db: &C, caller: &Caller, id: &str) -> Result<Option<i64>, ApiError> {
    let Some(row) = recipient_row_id(id) else { return Ok(None) };
    use crate::care::model::service_recipient;
    let served = service_recipient::Entity::find_by_id(row)
        .filter(service_recipient::Column::MunicipalityId.eq(caller.org.id))
        .count(db)
        .await?
        > 0;
    if served {
        return Ok(Some(row));
    }
    let logged = audit_entry::Entity::find()
        .filter(audit_entry::Column::MunicipalityId.eq(caller.org.id))
        .filter(audit_entry::Column::RecipientId.eq(row))
        .count(db)
        .await?
        > 0;
    Ok(logged.then_some(row))
}

/// Writes the privacy officer's read of the log of each of `recipients` (in one transaction,
/// committed before the answer is given: an unlogged read is no read).
pub(crate) async fn oversight(
    db: &Database,
    caller: &Caller,
    recipients: impl IntoIterator<Item = i64>,
    operation: &'static str,
) -> Result<(), ApiError> {
    let txn = db.write().begin().await?;
    for recipient in recipients {
        let access =
            Access::granted(caller, caller.org.id, recipient, operation, ("AuditLog", recipient), Purpose::Oversight);
        super::record(&txn, access).await?;
    }
    txn.commit().await?;
    Ok(())
}

async fn entries_page(
    ctx: &Context<'_>,
    select: sea_orm::Select<audit_entry::Entity>,
    direction: OrderDirection,
    page: &crate::graphql::connection::PageRequest,
) -> Result<Page<AuditEntry>> {
    let sort = SortKey::integer(audit_entry::Column::Seq);
    page_sorted(ctx, select, sort, audit_entry::Column::Id, direction, page, |row| {
        (Cursor { key: serde_json::json!(row.seq), id: row.id }, AuditEntry(row))
    })
    .await
}

fn purpose_kind(kind: &str) -> AuditPurposeKind {
    match kind {
        "alert" => AuditPurposeKind::Alert,
        "assignment" => AuditPurposeKind::Assignment,
        "casework" => AuditPurposeKind::Casework,
        "stated" => AuditPurposeKind::Stated,
        "oversight" => AuditPurposeKind::Oversight,
        _ => AuditPurposeKind::Other,
    }
}

fn decision(text: &str) -> AuditDecision {
    if text == Decision::GrantedFlagged.as_str() { AuditDecision::GrantedFlagged } else { AuditDecision::Granted }
}

/// A role as a recipient would say it.
fn role_phrase(role: &str) -> &str {
    match role {
        "case_worker" => "case worker",
        "operator" => "response-centre operator",
        "privacy_officer" => "privacy officer",
        "procurement_officer" => "procurement officer",
        "municipality_admin" => "municipal administrator",
        "integration" => "system integration",
        "admin" => "platform operator",
        "advisor" => "programme adviser",
        "supplier" => "supplier",
        other => other,
    }
}

/// What was done, in plain language: "looked at your service record".
fn what(entry: &audit_entry::Model) -> String {
    let object = match entry.object_type.as_str() {
        "ServiceRecipient" => "your service record".to_string(),
        "Assessment" => "an assessment of your needs".to_string(),
        "Device" => "a device assigned to you".to_string(),
        "Alert" => "an alarm concerning you".to_string(),
        "AuditLog" => "the log of who has looked at your data".to_string(),
        other => format!("{other} {}", entry.object_id),
    };
    let verb = entry.operation.rsplit('.').next().unwrap_or("");
    let action = match verb {
        "read" | "read_flagged" | "view" | "list" => "looked at",
        "export" => "exported",
        "create" | "register" => "created",
        "update" | "change" | "edit" => "changed",
        "assign" => "assigned",
        "end" | "close" | "resolve" => "closed",
        _ => return format!("{} ({object})", entry.operation),
    };
    format!("{action} {object}")
}

/// Why, in plain language.
fn why(entry: &audit_entry::Model) -> String {
    let detail = &entry.purpose;
    let why = match entry.purpose_kind.as_str() {
        "alert" => format!("to handle alarm {detail}"),
        "assignment" => format!("because device {detail} is assigned to you"),
        "casework" => "as part of casework on your service".to_string(),
        "stated" => format!("giving the reason: {detail}"),
        "oversight" => "to check who has looked at your data (the privacy officer's oversight)".to_string(),
        other => format!("purpose: {other} {detail}"),
    };
    if entry.decision == Decision::GrantedFlagged.as_str() {
        format!("{why} — flagged for review: no open alarm or assignment linked them to you")
    } else {
        why
    }
}

/// The export as a letter.
fn letter(
    municipality: &str,
    generated_at: DateTime<Utc>,
    entries: &[AuditExportLine],
    complete: bool,
    total: u64,
) -> String {
    use std::fmt::Write;
    let mut text = format!(
        "Who has looked at your data\n{municipality}, {} (UTC)\n\nEvery time someone reads or changes your data in \
         Velferd it is logged: who, when, what and why. These are the {} entries of your log.\n\n",
        generated_at.format("%Y-%m-%d %H:%M"),
        entries.len()
    );
    if !complete {
        let _ = writeln!(text, "Your log has {total} entries; this letter shows the newest {}.\n", entries.len());
    }
    for e in entries {
        let _ = writeln!(
            text,
            "{}: {} ({}, {}) {}, {}.",
            e.at.format("%Y-%m-%d %H:%M"),
            e.who,
            e.role,
            e.organization,
            e.what,
            e.why
        );
    }
    text.push_str("\nIf an access looks wrong to you, contact the municipality's privacy officer.\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_ids_are_the_relay_encoding() {
        let id = recipient_global_id(42);
        assert_eq!(recipient_row_id(&id), Some(42));
        assert_eq!(recipient_row_id(&crate::ids::global_id(crate::ids::NodeType::Organization, 42)), None);
        assert_eq!(recipient_row_id("garbage"), None);
        assert_eq!(recipient_row_id(&URL_SAFE_NO_PAD.encode("ServiceRecipient:-1")), None);
    }
}
