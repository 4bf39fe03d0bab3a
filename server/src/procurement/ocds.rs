//! Export of a procurement as an Open Contracting Data Standard (OCDS 1.1, schema 1.1.5)
//! release package.
//!
//! One joint procurement is one contracting process (`<prefix>-<procurement id>`): the lead
//! municipality is the `buyer` (roles `leadBuyer`, `buyer`, `procuringEntity`), the other
//! participating municipalities are parties with the `buyer` role, the user stories are the
//! tender's lots, each award (one per user story) becomes a framework agreement, exported as one
//! contract, and `tender.techniques` says that call-offs happen without reopening competition.
//! Each call-off is its own contracting process (`<prefix>-<procurement id>-calloff-<id>`) whose
//! `relatedProcesses` entry with relationship `framework` points back at the procurement.
//!
//! Fields outside the core schema come from three OCDS extensions, declared in the package's
//! `extensions`: lots (`tender.lots`, `awards[].relatedLots`, `items[].relatedLot`,
//! `bids.details[].relatedLots`), techniques (`tender.techniques`, a call-off's
//! `tender.competitive`) and bids (`bids`, only in the non-public export).
//!
//! Followers (følgekommuner) are left out of `parties` altogether: they neither buy, pay nor
//! tender, and the one code that might fit, `interestedParty`, is used for economic operators
//! that show interest in bidding, so listing them would mislead anyone counting interest in the
//! competition.
//!
//! Sealed tenders: nobody learns who tendered before the tender deadline has passed. After it,
//! the public export names the tenderers (as OCDS expects) and publishes only the awarded
//! responses' prices; `include_sealed_tenders` adds every response's prices as `bids`.
//!
//! Money is kept in øre; amounts here are NOK (`{"amount": 4500.5, "currency": "NOK"}`). An
//! award's `value` is the awarded response's purchase price and a framework contract's `value`
//! the agreement's purchase price, both per unit; the same prices appear as the unit price of
//! the contract's `items`, whose quantity is the agreement's volume cap.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::agreements::model::{Acquisition, CallOffStatus, RolloutScope, call_off, framework_agreement};
use crate::errors::ApiError;
use crate::organizations::model::{self as organization, OrganizationKind};
use crate::procurement::access::{Access, Viewer};
use crate::procurement::model::{
    Category, ParticipantRole, award, evaluation_criterion, participant, phase_transition, procurement, tender,
    tender_response, user_story,
};
use crate::procurement::phase::Phase;

/// The OCDS version the packages declare (`major.minor`); the fields follow schema 1.1.5.
pub const OCDS_VERSION: &str = "1.1";
/// The lots extension (`tender.lots`, `relatedLots`), at the tag matching OCDS 1.1.5.
pub const LOTS_EXTENSION: &str =
    "https://raw.githubusercontent.com/open-contracting-extensions/ocds_lots_extension/v1.1.5/extension.json";
/// The techniques extension (`tender.techniques.frameworkAgreement`), which has no release tags.
pub const TECHNIQUES_EXTENSION: &str =
    "https://raw.githubusercontent.com/open-contracting-extensions/ocds_techniques_extension/master/extension.json";
/// The bid statistics and details extension (`bids`), declared only when bids are exported.
pub const BID_EXTENSION: &str =
    "https://raw.githubusercontent.com/open-contracting-extensions/ocds_bid_extension/v1.1.5/extension.json";

/// The organisation-identifier scheme of Brønnøysund's Central Coordinating Register for Legal
/// Entities, as listed on org-id.guide.
const ORG_ID_SCHEME: &str = "NO-ORG";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcdsOptions {
    /// The publisher's OCID prefix, e.g. `ocds-velferd`.
    pub ocid_prefix: String,
    pub publisher_name: String,
    /// Where packages are published; a package's `uri` is `<base_uri>/<ocid>`.
    pub base_uri: String,
    /// Whether every tender response's prices are exported (as `bids`), not only the awarded
    /// ones. `false` for the public export. Even when `true`, nothing about tenders is exported
    /// before the tender deadline has passed: they are sealed until then for everyone.
    pub include_sealed_tenders: bool,
}

/// The OCID of a procurement's contracting process.
pub fn ocid(prefix: &str, procurement_id: i64) -> String {
    format!("{prefix}-{procurement_id}")
}

/// The OCID of a call-off's own contracting process.
pub fn call_off_ocid(prefix: &str, procurement_id: i64, call_off_id: i64) -> String {
    format!("{prefix}-{procurement_id}-calloff-{call_off_id}")
}

/// The release package of one procurement as `viewer` may read it: its own release followed by
/// one release per call-off placed under its framework agreements that the viewer may see (none
/// for anonymous viewers: call-offs are never published proactively). `Ok(None)` when there is
/// no such procurement or the viewer may not see it — the same answer, so ids cannot be probed.
pub async fn release_package<C: ConnectionTrait>(
    db: &C,
    procurement_id: i64,
    viewer: &Viewer,
    options: &OcdsOptions,
) -> Result<Option<Value>, ApiError> {
    release_package_at(db, procurement_id, viewer, options, Utc::now()).await
}

/// As [`release_package`], as seen at `now` (which decides whether tenders are still sealed,
/// which contracts are in force, and the package's `publishedDate`).
async fn release_package_at<C: ConnectionTrait>(
    db: &C,
    procurement_id: i64,
    viewer: &Viewer,
    options: &OcdsOptions,
    now: DateTime<Utc>,
) -> Result<Option<Value>, ApiError> {
    let Some(procurement) = procurement::Entity::find_by_id(procurement_id).one(db).await? else {
        return Ok(None);
    };
    if !viewer.can_see(&procurement) {
        return Ok(None);
    }
    let loaded = Loaded::load(db, procurement).await?;
    Ok(Some(package(&loaded, viewer, options, now)))
}

/// The rows of `column`'s table whose `column` is one of `parents`, in the order they were made.
async fn rows_of<Column, C>(
    db: &C,
    column: Column,
    parents: impl IntoIterator<Item = i64>,
) -> Result<Vec<<Column::EntityName as EntityTrait>::Model>, DbErr>
where
    Column: ColumnTrait,
    Column::EntityName: EntityTrait,
    C: ConnectionTrait,
{
    let parents: Vec<i64> = parents.into_iter().collect();
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    <Column::EntityName as EntityTrait>::find().filter(column.is_in(parents)).order_by_id_asc().all(db).await
}

/// Everything the export reads, loaded up front so the mapping itself is a pure function.
struct Loaded {
    procurement: procurement::Model,
    participants: Vec<participant::Model>,
    transitions: Vec<phase_transition::Model>,
    stories: Vec<user_story::Model>,
    criteria: Vec<evaluation_criterion::Model>,
    tenders: Vec<tender::Model>,
    responses: Vec<tender_response::Model>,
    awards: Vec<award::Model>,
    agreements: Vec<framework_agreement::Model>,
    call_offs: Vec<call_off::Model>,
    organizations: HashMap<i64, organization::Model>,
}

impl Loaded {
    async fn load<C: ConnectionTrait>(db: &C, procurement: procurement::Model) -> Result<Loaded, ApiError> {
        let procurement_id = procurement.id;
        let participants = participant::Entity::find()
            .filter(participant::Column::ProcurementId.eq(procurement_id))
            .order_by_asc(participant::Column::JoinedOn)
            .order_by_asc(participant::Column::Id)
            .all(db)
            .await?;
        let transitions = rows_of(db, phase_transition::Column::ProcurementId, [procurement_id]).await?;
        let stories = user_story::Entity::find()
            .filter(user_story::Column::ProcurementId.eq(procurement_id))
            .order_by_asc(user_story::Column::Code)
            .order_by_asc(user_story::Column::Id)
            .all(db)
            .await?;
        let criteria = rows_of(db, evaluation_criterion::Column::ProcurementId, [procurement_id]).await?;
        let tenders = rows_of(db, tender::Column::ProcurementId, [procurement_id]).await?;
        let responses = rows_of(db, tender_response::Column::TenderId, tenders.iter().map(|t| t.id)).await?;
        let awards = rows_of(db, award::Column::ProcurementId, [procurement_id]).await?;
        let agreements = rows_of(db, framework_agreement::Column::ProcurementId, [procurement_id]).await?;
        let call_offs = rows_of(db, call_off::Column::AgreementId, agreements.iter().map(|a| a.id)).await?;

        let mut organization_ids: Vec<i64> = std::iter::once(procurement.lead_id)
            .chain(participants.iter().map(|p| p.organization_id))
            .chain(tenders.iter().map(|t| t.supplier_id))
            .chain(agreements.iter().map(|a| a.supplier_id))
            .chain(call_offs.iter().map(|c| c.municipality_id))
            .collect();
        organization_ids.sort_unstable();
        organization_ids.dedup();
        let organizations = organization::Entity::find()
            .filter(organization::Column::Id.is_in(organization_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|o| (o.id, o))
            .collect();

        Ok(Loaded {
            procurement,
            participants,
            transitions,
            stories,
            criteria,
            tenders,
            responses,
            awards,
            agreements,
            call_offs,
            organizations,
        })
    }

    fn story(&self, id: i64) -> Option<&user_story::Model> {
        self.stories.iter().find(|s| s.id == id)
    }

    fn response(&self, id: i64) -> Option<&tender_response::Model> {
        self.responses.iter().find(|r| r.id == id)
    }

    fn tender(&self, id: i64) -> Option<&tender::Model> {
        self.tenders.iter().find(|t| t.id == id)
    }

    fn agreement_for_award(&self, award_id: i64) -> Option<&framework_agreement::Model> {
        self.agreements.iter().find(|a| a.award_id == award_id)
    }

    /// The lot id of a user story: its code (or, should the story be missing, its row id).
    fn lot_id(&self, user_story_id: i64) -> String {
        self.story(user_story_id).map_or_else(|| format!("user-story-{user_story_id}"), |s| s.code.clone())
    }

    /// The supplier an award went to: the tenderer of the awarded response.
    fn award_supplier(&self, award: &award::Model) -> Option<i64> {
        self.response(award.tender_response_id)
            .and_then(|r| self.tender(r.tender_id))
            .map(|t| t.supplier_id)
            .or_else(|| self.agreement_for_award(award.id).map(|a| a.supplier_id))
    }

    fn party_id(&self, organization_id: i64) -> String {
        match self.organizations.get(&organization_id) {
            Some(organization::Model { org_number: Some(number), .. }) => format!("{ORG_ID_SCHEME}-{number}"),
            _ => format!("velferd-org-{organization_id}"),
        }
    }

    /// An OCDS `OrganizationReference` to a party of the same release.
    fn org_ref(&self, organization_id: i64) -> Value {
        let mut reference = json!({ "id": self.party_id(organization_id) });
        if let Some(org) = self.organizations.get(&organization_id) {
            reference["name"] = json!(org.name);
        }
        reference
    }

    /// An OCDS `Organization` entry of `parties`.
    fn party(&self, organization_id: i64, roles: &[&str]) -> Value {
        let mut party = self.org_ref(organization_id);
        if let Some(org) = self.organizations.get(&organization_id) {
            if let Some(number) = &org.org_number {
                party["identifier"] = json!({ "scheme": ORG_ID_SCHEME, "id": number, "legalName": org.name });
            }
            if org.kind == OrganizationKind::Municipality {
                let mut address = json!({ "countryName": "Norway" });
                put(&mut address, "region", org.county.as_ref().map(|c| json!(c)));
                party["address"] = address;
            }
        }
        party["roles"] = json!(roles);
        party
    }

    /// The phase whose meaning the export shows: while on hold, the phase it will resume to
    /// (the tender status codelist of OCDS 1.1 has no code for a suspended process).
    fn shown_phase(&self) -> Phase {
        match self.procurement.phase {
            Phase::OnHold => self.procurement.resume_phase.unwrap_or(Phase::Needs),
            phase => phase,
        }
    }

    /// Tenders are sealed until the deadline; without a deadline, until the first award.
    fn tenders_opened(&self, now: DateTime<Utc>) -> bool {
        match self.procurement.tender_deadline {
            Some(deadline) => deadline.with_timezone(&Utc) <= now,
            None => !self.awards.is_empty(),
        }
    }
}

fn package(loaded: &Loaded, viewer: &Viewer, options: &OcdsOptions, now: DateTime<Utc>) -> Value {
    let ocid = ocid(&options.ocid_prefix, loaded.procurement.id);
    let main = procurement_release(loaded, options, now, &ocid);
    let mut extensions = vec![LOTS_EXTENSION, TECHNIQUES_EXTENSION];
    if main.get("bids").is_some() {
        extensions.push(BID_EXTENSION);
    }
    let mut releases = vec![main];
    let access = Access::of(viewer, &loaded.procurement, &loaded.participants);
    for call_off in &loaded.call_offs {
        // A draft is the municipality's work in progress, not yet an order to anyone.
        if call_off.status == CallOffStatus::Draft {
            continue;
        }
        let Some(agreement) = loaded.agreements.iter().find(|a| a.id == call_off.agreement_id) else { continue };
        // The call-off's one read rule, as for the `CallOff` object.
        if access.can_see_call_off(call_off.municipality_id, agreement.supplier_id) {
            releases.push(call_off_release(loaded, options, &ocid, agreement, call_off));
        }
    }
    json!({
        "uri": format!("{}/{}", options.base_uri.trim_end_matches('/'), ocid),
        "version": OCDS_VERSION,
        "extensions": extensions,
        "publishedDate": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "publisher": { "name": options.publisher_name },
        "releases": releases,
    })
}

/// The procurement's own release: parties, tender with lots, awards and framework contracts.
fn procurement_release(loaded: &Loaded, options: &OcdsOptions, now: DateTime<Utc>, ocid: &str) -> Value {
    let p = &loaded.procurement;
    let phase = loaded.shown_phase();
    let opened = loaded.tenders_opened(now);
    let today = now.date_naive();

    // Parties, in a stable order: the lead, the participants by join date, then suppliers.
    let mut parties = Roles::default();
    for role in ["leadBuyer", "buyer", "procuringEntity"] {
        parties.add(p.lead_id, role);
    }
    for participant in &loaded.participants {
        match participant.role {
            ParticipantRole::Lead | ParticipantRole::Participant => parties.add(participant.organization_id, "buyer"),
            // Followers do not buy: see the module documentation.
            ParticipantRole::Follower => {}
        }
    }
    if opened {
        for tender in &loaded.tenders {
            parties.add(tender.supplier_id, "tenderer");
        }
    }
    for award in &loaded.awards {
        if let Some(supplier) = loaded.award_supplier(award) {
            parties.add(supplier, "supplier");
        }
    }
    for agreement in &loaded.agreements {
        parties.add(agreement.supplier_id, "supplier");
    }

    let tender_status = match phase {
        Phase::Needs | Phase::Dialogue | Phase::OnHold => "planning",
        Phase::Competition => "active",
        Phase::Implementation | Phase::Evaluation | Phase::Closed if loaded.awards.is_empty() => "unsuccessful",
        Phase::Implementation | Phase::Evaluation | Phase::Closed => "complete",
    };

    let lots: Vec<Value> = loaded
        .stories
        .iter()
        .map(|story| {
            let awarded = loaded.awards.iter().any(|a| a.user_story_id == story.id);
            let status = match tender_status {
                _ if awarded => "complete",
                "complete" => "unsuccessful",
                other => other,
            };
            let mut lot = json!({
                "id": story.code,
                "title": story.title,
                "description": story.narrative,
                "status": status,
            });
            if let Some(agreement) = loaded.agreements.iter().find(|a| a.user_story_id == story.id) {
                lot["contractPeriod"] = period(agreement.starts_on, agreement.ends_on);
            }
            lot
        })
        .collect();

    let buyer_names: Vec<&str> =
        parties.with_role("buyer").filter_map(|id| loaded.organizations.get(&id).map(|o| o.name.as_str())).collect();
    let mut framework = json!({ "method": "withoutReopeningCompetition" });
    if !buyer_names.is_empty() {
        framework["buyerCategories"] = json!(format!("The participating municipalities: {}", buyer_names.join(", ")));
    }

    let mut tender = json!({
        "id": p.id.to_string(),
        "title": p.title,
        "description": format!("Joint procurement of welfare technology: {}.", category_label(p.category)),
        "status": tender_status,
        "procuringEntity": loaded.org_ref(p.lead_id),
        "procurementMethod": "open",
        "procurementMethodDetails": concat!(
            "Joint procurement by several municipalities; one framework agreement per user story (lot), ",
            "with call-offs without reopening competition."
        ),
        "lots": lots,
        "techniques": { "hasFrameworkAgreement": true, "frameworkAgreement": framework },
    });
    if p.notice_published_on.is_some() || p.tender_deadline.is_some() {
        let mut tender_period = json!({});
        put(&mut tender_period, "startDate", p.notice_published_on.map(|d| json!(date(d))));
        put(&mut tender_period, "endDate", p.tender_deadline.map(|t| json!(datetime(t))));
        tender["tenderPeriod"] = tender_period;
    }
    if !loaded.criteria.is_empty() {
        tender["awardCriteria"] = json!("ratedCriteria");
        let details: Vec<String> = loaded.criteria.iter().map(|c| format!("{} {} %", c.name, c.weight)).collect();
        tender["awardCriteriaDetails"] = json!(details.join("; "));
    }
    if let Some(reference) = &p.notice_reference {
        // The competition notice (Doffin / TED). We know its reference, not its address.
        let mut notice = json!({
            "id": reference,
            "documentType": "tenderNotice",
            "title": format!("Competition notice {reference}"),
        });
        put(&mut notice, "datePublished", p.notice_published_on.map(|d| json!(date(d))));
        tender["documents"] = json!([notice]);
    }
    if opened {
        let mut tenderers: Vec<i64> = loaded.tenders.iter().map(|t| t.supplier_id).collect();
        tenderers.dedup();
        tender["numberOfTenderers"] = json!(tenderers.len());
        if !tenderers.is_empty() {
            tender["tenderers"] = Value::Array(tenderers.iter().map(|id| loaded.org_ref(*id)).collect());
        }
    }

    let awards: Vec<Value> = loaded
        .awards
        .iter()
        .map(|award| {
            let lot = loaded.lot_id(award.user_story_id);
            let mut out = json!({
                "id": award.id.to_string(),
                "title": story_title(loaded, award.user_story_id),
                "status": "active",
                "date": date(award.awarded_on),
                "relatedLots": [lot],
            });
            if let Some(supplier) = loaded.award_supplier(award) {
                out["suppliers"] = json!([loaded.org_ref(supplier)]);
            }
            put(
                &mut out,
                "value",
                loaded.response(award.tender_response_id).and_then(|r| r.purchase_price_ore).map(nok),
            );
            if let Some(agreement) = loaded.agreement_for_award(award.id) {
                out["contractPeriod"] = period(agreement.starts_on, agreement.ends_on);
            }
            out
        })
        .collect();

    let contracts: Vec<Value> = loaded
        .agreements
        .iter()
        .map(|agreement| {
            let status = if today < agreement.starts_on {
                "pending"
            } else if today > agreement.ends_on {
                "terminated"
            } else {
                "active"
            };
            let supplier = loaded.organizations.get(&agreement.supplier_id).map_or("", |o| o.name.as_str());
            let mut contract = json!({
                "id": agreement.id.to_string(),
                "awardID": agreement.award_id.to_string(),
                "title": format!("Framework agreement {}", story_title(loaded, agreement.user_story_id)),
                "description": format!(
                    "Framework agreement with {supplier}; call-offs up to {} units in all.",
                    agreement.volume_cap
                ),
                "status": status,
                "period": period(agreement.starts_on, agreement.ends_on),
                "items": agreement_items(loaded, agreement),
            });
            put(&mut contract, "value", agreement.purchase_price_ore.map(nok));
            contract
        })
        .collect();

    let mut tag = vec![match phase {
        Phase::Needs | Phase::Dialogue | Phase::OnHold => "planning",
        _ => "tender",
    }];
    if !awards.is_empty() {
        tag.push("award");
    }
    if !contracts.is_empty() {
        tag.push("contract");
    }

    // The release date: the latest change to what the release says.
    let mut changed = vec![p.created_at.with_timezone(&Utc)];
    changed.extend(loaded.transitions.iter().map(|t| t.recorded_at.with_timezone(&Utc)));
    changed.extend(p.notice_published_on.map(midnight));
    changed.extend(loaded.awards.iter().map(|a| midnight(a.awarded_on)));
    let release_date = changed.into_iter().max().expect("created_at is always there");

    let mut release = json!({
        "ocid": ocid,
        "id": "",
        "date": release_date.to_rfc3339_opts(SecondsFormat::Secs, true),
        "tag": tag,
        "initiationType": "tender",
        "parties": parties.to_json(loaded),
        "buyer": loaded.org_ref(p.lead_id),
        "tender": tender,
    });
    if !awards.is_empty() {
        release["awards"] = Value::Array(awards);
    }
    if !contracts.is_empty() {
        release["contracts"] = Value::Array(contracts);
    }
    if options.include_sealed_tenders && opened && !loaded.responses.is_empty() {
        release["bids"] = json!({ "details": bids(loaded) });
    }
    with_release_id(release)
}

/// Every tender response as a bid on one lot, prices included (the non-public export only).
fn bids(loaded: &Loaded) -> Vec<Value> {
    loaded
        .responses
        .iter()
        .filter_map(|response| {
            let tender = loaded.tender(response.tender_id)?;
            let lot = loaded.lot_id(response.user_story_id);
            let mut bid = json!({
                "id": format!("{}-{}", tender.id, lot),
                "date": datetime(tender.submitted_at),
                "tenderers": [loaded.org_ref(tender.supplier_id)],
                "relatedLots": [lot],
            });
            put(&mut bid, "value", response.purchase_price_ore.map(nok));
            Some(bid)
        })
        .collect()
}

/// The unit prices of an agreement: the purchase price (quantity = the volume cap) and, when
/// leasing is offered, the lease price per month.
fn agreement_items(loaded: &Loaded, agreement: &framework_agreement::Model) -> Vec<Value> {
    let lot = loaded.lot_id(agreement.user_story_id);
    let title = loaded.story(agreement.user_story_id).map_or_else(|| lot.clone(), |s| s.title.clone());
    let mut purchase = json!({
        "id": lot,
        "description": title,
        "quantity": agreement.volume_cap,
        "unit": { "name": "unit" },
        "relatedLot": lot,
    });
    put(&mut purchase["unit"], "value", agreement.purchase_price_ore.map(nok));
    let mut items = vec![purchase];
    if let Some(lease) = agreement.lease_price_ore_per_month {
        items.push(json!({
            "id": format!("{lot}-lease"),
            "description": format!("{title} (lease)"),
            "unit": { "name": "unit per month", "value": nok(lease) },
            "relatedLot": lot,
        }));
    }
    items
}

/// A call-off as its own contracting process, linked to the procurement as its framework.
fn call_off_release(
    loaded: &Loaded,
    options: &OcdsOptions,
    framework_ocid: &str,
    agreement: &framework_agreement::Model,
    call_off: &call_off::Model,
) -> Value {
    let p = &loaded.procurement;
    let ocid = call_off_ocid(&options.ocid_prefix, p.id, call_off.id);
    let municipality = call_off.municipality_id;
    let title = story_title(loaded, agreement.user_story_id);
    let cancelled = call_off.status == CallOffStatus::Cancelled;
    let contract_status = match (call_off.status, call_off.acquisition) {
        (CallOffStatus::Draft | CallOffStatus::Placed, _) => "pending",
        (CallOffStatus::Confirmed, _) | (CallOffStatus::Delivered, Acquisition::Lease) => "active",
        // A purchase that has been delivered is fulfilled.
        (CallOffStatus::Delivered, Acquisition::Buy) => "terminated",
        (CallOffStatus::Cancelled, _) => "cancelled",
    };
    let scope = match call_off.scope {
        RolloutScope::PilotZone => "pilot zone",
        RolloutScope::FullRollout => "full rollout",
    };
    let (unit_ore, unit_name, how) = match call_off.acquisition {
        Acquisition::Buy => (agreement.purchase_price_ore, "unit", "purchase"),
        Acquisition::Lease => (agreement.lease_price_ore_per_month, "unit per month", "lease"),
    };
    let mut item = json!({
        "id": "1",
        "description": format!("{title} ({how}, {scope})"),
        "quantity": call_off.quantity,
        "unit": { "name": unit_name },
    });
    put(&mut item["unit"], "value", unit_ore.map(nok));
    // Only a purchase has a total; a lease is priced per month.
    let total = match call_off.acquisition {
        Acquisition::Buy => unit_ore.and_then(|ore| ore.checked_mul(i64::from(call_off.quantity))).map(nok),
        Acquisition::Lease => None,
    };

    let mut award = json!({
        "id": call_off.id.to_string(),
        "title": format!("Call-off under framework agreement {}", agreement.id),
        "status": if cancelled { "cancelled" } else { "active" },
        "date": date(call_off.placed_on),
        "suppliers": [loaded.org_ref(agreement.supplier_id)],
        "items": [item.clone()],
    });
    put(&mut award, "value", total.clone());
    let mut contract = json!({
        "id": call_off.id.to_string(),
        "awardID": call_off.id.to_string(),
        "title": format!("Call-off: {title}"),
        "status": contract_status,
        "items": [item],
    });
    put(&mut contract, "value", total);

    let release = json!({
        "ocid": ocid,
        "id": "",
        "date": datetime(call_off.created_at),
        "tag": ["award", "contract"],
        "initiationType": "tender",
        "parties": [
            loaded.party(municipality, &["buyer", "procuringEntity"]),
            loaded.party(agreement.supplier_id, &["supplier"]),
        ],
        "buyer": loaded.org_ref(municipality),
        "tender": {
            "id": call_off.id.to_string(),
            "title": format!("Call-off: {title}"),
            "status": if cancelled { "cancelled" } else { "complete" },
            "procuringEntity": loaded.org_ref(municipality),
            "procurementMethodDetails": "Call-off under a framework agreement without reopening competition",
            "competitive": false,
        },
        "awards": [award],
        "contracts": [contract],
        "relatedProcesses": [{
            "id": "framework",
            "relationship": ["framework"],
            "title": p.title,
            "scheme": "ocid",
            "identifier": framework_ocid,
        }],
    });
    with_release_id(release)
}

/// Parties and their roles, in the order they were first named.
#[derive(Default)]
struct Roles(Vec<(i64, Vec<&'static str>)>);

impl Roles {
    fn add(&mut self, organization_id: i64, role: &'static str) {
        match self.0.iter_mut().find(|(id, _)| *id == organization_id) {
            Some((_, roles)) if roles.contains(&role) => {}
            Some((_, roles)) => roles.push(role),
            None => self.0.push((organization_id, vec![role])),
        }
    }

    fn with_role(&self, role: &'static str) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().filter(move |(_, roles)| roles.contains(&role)).map(|(id, _)| *id)
    }

    fn to_json(&self, loaded: &Loaded) -> Value {
        Value::Array(self.0.iter().map(|(id, roles)| loaded.party(*id, roles)).collect())
    }
}

fn category_label(category: Category) -> &'static str {
    match category {
        Category::MedicationSupport => "medication support",
        Category::SafetyAlarm => "safety alarms",
        Category::ResponseCentre => "response centre",
        Category::DigitalHomeFollowUp => "digital home follow-up",
        Category::Other => "other welfare technology",
    }
}

fn story_title(loaded: &Loaded, user_story_id: i64) -> String {
    match loaded.story(user_story_id) {
        Some(story) => format!("{}: {}", story.code, story.title),
        None => loaded.lot_id(user_story_id),
    }
}

/// Sets `key` when there is a value; OCDS prefers an absent field to a null one.
fn put(target: &mut Value, key: &str, value: Option<Value>) {
    if let (Some(value), Some(object)) = (value, target.as_object_mut()) {
        object.insert(key.to_string(), value);
    }
}

/// An amount in øre as an OCDS `Value` in NOK, whole kroner as integers.
fn nok(ore: i64) -> Value {
    let amount = if ore % 100 == 0 { json!(ore / 100) } else { json!(ore as f64 / 100.0) };
    json!({ "amount": amount, "currency": "NOK" })
}

fn period(starts_on: NaiveDate, ends_on: NaiveDate) -> Value {
    json!({ "startDate": date(starts_on), "endDate": date(ends_on) })
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// A date as an RFC 3339 date-time at midnight UTC, as OCDS wants date-times.
fn date(day: NaiveDate) -> String {
    format!("{}T00:00:00Z", day.format("%Y-%m-%d"))
}

fn datetime(at: DateTime<FixedOffset>) -> String {
    at.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Gives a release its `id`: the ocid and a digest of its content, so regenerating an unchanged
/// release repeats its id and any change gives a new one (OCDS wants an id unique per ocid).
fn with_release_id(mut release: Value) -> Value {
    let text = serde_json::to_string(&release).expect("a JSON value serialises");
    // FNV-1a: stable across Rust versions, unlike the standard library's hashers.
    let digest = text
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    let ocid = release["ocid"].as_str().unwrap_or_default().to_string();
    release["id"] = json!(format!("{ocid}-{digest:016x}"));
    release
}

/// The options of the public export (GraphQL `ocds` and `GET /ocds/procurements/{id}`).
pub fn public_options() -> OcdsOptions {
    OcdsOptions {
        ocid_prefix: "ocds-velferd".into(),
        publisher_name: "Velferd".into(),
        base_uri: "https://velferd.example/ocds".into(),
        include_sealed_tenders: false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use chrono::TimeZone;
    use sea_orm::{ActiveModelTrait, Set};

    use super::*;
    use crate::db::Database;

    const RELEASE_SCHEMA_URL: &str = "https://standard.open-contracting.org/schema/1__1__5/release-schema.json";

    // ---- the database ----------------------------------------------------------------------

    fn at(rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    async fn fresh_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("ocds.db").display());
        let db = Database::connect(&url, 2, Duration::from_secs(5)).await.unwrap();
        db.migrate().await.unwrap();
        (dir, db)
    }

    async fn organization(
        db: &Database,
        kind: OrganizationKind,
        name: &str,
        org_number: Option<&str>,
        county: Option<&str>,
    ) -> organization::Model {
        organization::ActiveModel {
            kind: Set(kind),
            name: Set(name.into()),
            org_number: Set(org_number.map(Into::into)),
            municipality_number: Set(county.map(|_| "3805".into())),
            county: Set(county.map(Into::into)),
            population: Set(None),
            population_year: Set(None),
            created_at: Set(at("2025-01-01T08:00:00+01:00")),
            ..Default::default()
        }
        .insert(db.write())
        .await
        .unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        db: Database,
        procurement: procurement::Model,
        lead: organization::Model,
        participant: organization::Model,
        follower: organization::Model,
        supplier_a: organization::Model,
        supplier_b: organization::Model,
        /// A second procurement, still in competition, whose deadline has not passed.
        open_competition: procurement::Model,
    }

    /// Larvik leads a medication-support procurement with Sandefjord taking part and Tønsberg
    /// following; two suppliers tender on both user stories; each wins one; municipalities call
    /// off under both agreements.
    async fn fixture() -> Fixture {
        let (dir, db) = fresh_db().await;
        let w = db.write();
        use OrganizationKind::{Municipality, Supplier};
        let lead = organization(&db, Municipality, "Larvik kommune", Some("940583500"), Some("Vestfold")).await;
        let participant =
            organization(&db, Municipality, "Sandefjord kommune", Some("964338531"), Some("Vestfold")).await;
        let follower = organization(&db, Municipality, "Tønsberg kommune", Some("810651121"), Some("Vestfold")).await;
        let supplier_a = organization(&db, Supplier, "Dosetech AS", Some("923456783"), None).await;
        // A supplier whose organisation number is not known.
        let supplier_b = organization(&db, Supplier, "Pillbox Nordic AB", None, None).await;

        let procurement = procurement::ActiveModel {
            title: Set("Medisineringsstøtte i Vestfold".into()),
            category: Set(Category::MedicationSupport),
            lead_id: Set(lead.id),
            phase: Set(Phase::Implementation),
            resume_phase: Set(None),
            hold_reason: Set(None),
            notice_reference: Set(Some("2025-101234".into())),
            notice_published_on: Set(Some(day(2025, 3, 1))),
            tender_deadline: Set(Some(at("2025-04-15T12:00:00+02:00"))),
            created_at: Set(at("2025-01-10T09:00:00+01:00")),
            ..Default::default()
        }
        .insert(w)
        .await
        .unwrap();
        for (org, role, joined) in [
            (&lead, ParticipantRole::Lead, day(2025, 1, 10)),
            (&participant, ParticipantRole::Participant, day(2025, 1, 20)),
            (&follower, ParticipantRole::Follower, day(2025, 2, 1)),
        ] {
            participant::ActiveModel {
                procurement_id: Set(procurement.id),
                organization_id: Set(org.id),
                role: Set(role),
                joined_on: Set(joined),
                ..Default::default()
            }
            .insert(w)
            .await
            .unwrap();
        }
        phase_transition::ActiveModel {
            procurement_id: Set(procurement.id),
            from_phase: Set(Some(Phase::Competition)),
            to_phase: Set(Phase::Implementation),
            reason: Set(None),
            effective_on: Set(day(2025, 6, 1)),
            actor_subject: Set("lead-user".into()),
            actor_org_number: Set(Some("940583500".into())),
            recorded_at: Set(at("2025-06-02T10:00:00+02:00")),
            ..Default::default()
        }
        .insert(w)
        .await
        .unwrap();
        for (name, weight) in [("Pris", 40), ("Kvalitet", 60)] {
            evaluation_criterion::ActiveModel {
                procurement_id: Set(procurement.id),
                name: Set(name.into()),
                weight: Set(weight),
                ..Default::default()
            }
            .insert(w)
            .await
            .unwrap();
        }
        let mut stories = Vec::new();
        for (code, title, narrative) in [
            ("US1", "Påminnelse om dose", "Som bruker vil jeg bli minnet på medisinen min."),
            ("US2", "Varsel ved glemt dose", "Som hjemmetjeneste vil vi få varsel når en dose ikke er tatt."),
        ] {
            stories.push(
                user_story::ActiveModel {
                    procurement_id: Set(procurement.id),
                    code: Set(code.into()),
                    title: Set(title.into()),
                    narrative: Set(narrative.into()),
                    acceptance_criteria: Set("[]".into()),
                    ..Default::default()
                }
                .insert(w)
                .await
                .unwrap(),
            );
        }
        // Prices in øre. A wins US1 at 4500.00, B wins US2 at 2999.00; the losing prices
        // (A's 3177.77 on US2, B's 4200.55 on US1) must stay out of the public export.
        let mut responses = HashMap::new();
        for (supplier, submitted, prices) in [
            (&supplier_a, "2025-04-10T15:00:00+02:00", [(0, 450_000, Some(19_950)), (1, 317_777, None)]),
            (&supplier_b, "2025-04-14T11:00:00+02:00", [(0, 420_055, None), (1, 299_900, Some(12_500))]),
        ] {
            let tender = tender::ActiveModel {
                procurement_id: Set(procurement.id),
                supplier_id: Set(supplier.id),
                submitted_at: Set(at(submitted)),
                ..Default::default()
            }
            .insert(w)
            .await
            .unwrap();
            for (story, purchase, lease) in prices {
                let response = tender_response::ActiveModel {
                    tender_id: Set(tender.id),
                    user_story_id: Set(stories[story].id),
                    solution: Set("Dispenser med app".into()),
                    purchase_price_ore: Set(Some(purchase)),
                    lease_price_ore_per_month: Set(lease),
                    ..Default::default()
                }
                .insert(w)
                .await
                .unwrap();
                responses.insert((supplier.id, story), response);
            }
        }
        let mut agreements = Vec::new();
        for (story, supplier, ends_on, cap) in
            [(0, &supplier_a, day(2027, 5, 31), 500), (1, &supplier_b, day(2025, 12, 31), 200)]
        {
            let response = &responses[&(supplier.id, story)];
            let award = award::ActiveModel {
                procurement_id: Set(procurement.id),
                user_story_id: Set(stories[story].id),
                tender_response_id: Set(response.id),
                awarded_on: Set(day(2025, 5, 20)),
                ..Default::default()
            }
            .insert(w)
            .await
            .unwrap();
            agreements.push(
                framework_agreement::ActiveModel {
                    award_id: Set(award.id),
                    procurement_id: Set(procurement.id),
                    supplier_id: Set(supplier.id),
                    user_story_id: Set(stories[story].id),
                    starts_on: Set(day(2025, 6, 1)),
                    ends_on: Set(ends_on),
                    purchase_price_ore: Set(response.purchase_price_ore),
                    lease_price_ore_per_month: Set(response.lease_price_ore_per_month),
                    volume_cap: Set(cap),
                    ..Default::default()
                }
                .insert(w)
                .await
                .unwrap(),
            );
        }
        for (agreement, municipality, acquisition, scope, quantity, status) in [
            (&agreements[0], &participant, Acquisition::Buy, RolloutScope::PilotZone, 20, CallOffStatus::Confirmed),
            (&agreements[1], &lead, Acquisition::Lease, RolloutScope::FullRollout, 50, CallOffStatus::Delivered),
            // A draft is not exported.
            (&agreements[0], &lead, Acquisition::Buy, RolloutScope::FullRollout, 5, CallOffStatus::Draft),
        ] {
            call_off::ActiveModel {
                agreement_id: Set(agreement.id),
                municipality_id: Set(municipality.id),
                acquisition: Set(acquisition),
                scope: Set(scope),
                quantity: Set(quantity),
                status: Set(status),
                placed_on: Set(day(2025, 7, 1)),
                created_at: Set(at("2025-07-01T09:30:00+02:00")),
                ..Default::default()
            }
            .insert(w)
            .await
            .unwrap();
        }

        // Still in competition, one tender in, deadline in the future.
        let open_competition = procurement::ActiveModel {
            title: Set("Trygghetsalarmer".into()),
            category: Set(Category::SafetyAlarm),
            lead_id: Set(lead.id),
            phase: Set(Phase::Competition),
            resume_phase: Set(None),
            hold_reason: Set(None),
            notice_reference: Set(Some("2026-200001".into())),
            notice_published_on: Set(Some(day(2026, 5, 1))),
            tender_deadline: Set(Some(at("2026-07-01T12:00:00+02:00"))),
            created_at: Set(at("2026-03-01T09:00:00+01:00")),
            ..Default::default()
        }
        .insert(w)
        .await
        .unwrap();
        participant::ActiveModel {
            procurement_id: Set(open_competition.id),
            organization_id: Set(lead.id),
            role: Set(ParticipantRole::Lead),
            joined_on: Set(day(2026, 3, 1)),
            ..Default::default()
        }
        .insert(w)
        .await
        .unwrap();
        let alarm_story = user_story::ActiveModel {
            procurement_id: Set(open_competition.id),
            code: Set("A1".into()),
            title: Set("Alarm i hjemmet".into()),
            narrative: Set("Som bruker vil jeg kunne tilkalle hjelp.".into()),
            acceptance_criteria: Set("[]".into()),
            ..Default::default()
        }
        .insert(w)
        .await
        .unwrap();
        let early = tender::ActiveModel {
            procurement_id: Set(open_competition.id),
            supplier_id: Set(supplier_a.id),
            submitted_at: Set(at("2026-06-01T10:00:00+02:00")),
            ..Default::default()
        }
        .insert(w)
        .await
        .unwrap();
        tender_response::ActiveModel {
            tender_id: Set(early.id),
            user_story_id: Set(alarm_story.id),
            solution: Set("Alarm".into()),
            purchase_price_ore: Set(Some(123_456)),
            lease_price_ore_per_month: Set(None),
            ..Default::default()
        }
        .insert(w)
        .await
        .unwrap();

        Fixture { _dir: dir, db, procurement, lead, participant, follower, supplier_a, supplier_b, open_competition }
    }

    fn options(include_sealed_tenders: bool) -> OcdsOptions {
        OcdsOptions {
            ocid_prefix: "ocds-velferd".into(),
            publisher_name: "Velferd".into(),
            base_uri: "https://velferd.example/ocds/".into(),
            include_sealed_tenders,
        }
    }

    /// 1 June 2026: tenders opened, the US1 agreement in force, the US2 one expired.
    fn june_2026() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    async fn export(f: &Fixture, procurement_id: i64, include_sealed: bool) -> Value {
        release_package_at(
            f.db.read(),
            procurement_id,
            &Viewer::platform_admin(),
            &options(include_sealed),
            june_2026(),
        )
        .await
        .unwrap()
        .expect("the procurement exists")
    }

    // ---- the schemas -----------------------------------------------------------------------

    /// The folder holding `release-schema.json` and `release-package-schema.json`, or `None`
    /// (after saying so) when they are absent outside CI. In CI their absence fails the test.
    fn schema_dir() -> Option<PathBuf> {
        let base = std::env::var_os("VELFERD_SHARED_SCHEMAS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/schemas")));
        let dir = base.join("ocds-1.1.5");
        if dir.join("release-schema.json").is_file() && dir.join("release-package-schema.json").is_file() {
            return Some(dir);
        }
        if std::env::var_os("CI").is_some() {
            panic!("the OCDS 1.1.5 schemas are missing from {} (set VELFERD_SHARED_SCHEMAS)", dir.display());
        }
        println!("skipped: OCDS 1.1.5 schemas not found in {} (set VELFERD_SHARED_SCHEMAS)", dir.display());
        None
    }

    fn read_json(path: PathBuf) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Serves the release schema under its canonical URL; refuses everything else, so nothing
    /// is ever fetched from the network.
    struct LocalSchemas(Value);

    impl jsonschema::Retrieve for LocalSchemas {
        fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
            if uri.as_str() == RELEASE_SCHEMA_URL {
                Ok(self.0.clone())
            } else {
                Err(format!("no local copy of {uri}; refusing to fetch it").into())
            }
        }
    }

    /// The excerpts of the extensions this export uses, as JSON merge patches of the release
    /// schema: lots (v1.1.5), techniques (master), bids (v1.1.5). Only the fields we emit, with
    /// their types and closed codelists as in the extensions' own `release-schema.json`.
    fn extensions_patch() -> Value {
        let string_array = json!({ "type": ["array", "null"], "items": { "type": "string" } });
        json!({
            "properties": { "bids": { "$ref": "#/definitions/Bids" } },
            "definitions": {
                "Tender": { "properties": {
                    "lots": { "type": "array", "items": { "$ref": "#/definitions/Lot" } },
                    "techniques": { "$ref": "#/definitions/Techniques" },
                    "competitive": { "type": ["boolean", "null"] },
                } },
                "Award": { "properties": { "relatedLots": string_array } },
                "Item": { "properties": { "relatedLot": { "type": ["string", "null"] } } },
                "Lot": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": { "type": "string" },
                        "title": { "type": ["string", "null"] },
                        "description": { "type": ["string", "null"] },
                        "status": { "type": ["string", "null"], "enum": [
                            "planning", "planned", "active", "cancelled", "unsuccessful", "complete", "withdrawn", null,
                        ] },
                        "value": { "$ref": "#/definitions/Value" },
                        "contractPeriod": { "$ref": "#/definitions/Period" },
                    },
                },
                "Techniques": { "type": "object", "properties": {
                    "hasFrameworkAgreement": { "type": ["boolean", "null"] },
                    "frameworkAgreement": { "$ref": "#/definitions/FrameworkAgreement" },
                } },
                "FrameworkAgreement": { "type": "object", "properties": {
                    "method": { "type": ["string", "null"], "enum": [
                        "withReopeningCompetition", "withoutReopeningCompetition", "withAndWithoutReopeningCompetition", null,
                    ] },
                    "buyerCategories": { "type": ["string", "null"] },
                } },
                "Bids": { "type": "object", "properties": {
                    "details": { "type": "array", "items": { "$ref": "#/definitions/Bid" } },
                } },
                "Bid": { "type": "object", "required": ["id"], "properties": {
                    "id": { "type": ["string"] },
                    "date": { "type": ["string", "null"], "format": "date-time" },
                    "tenderers": { "type": "array", "items": { "$ref": "#/definitions/OrganizationReference" } },
                    "value": { "$ref": "#/definitions/Value" },
                    "relatedLots": string_array,
                } },
            },
        })
    }

    /// RFC 7396 JSON merge patch.
    fn merge(target: &mut Value, patch: &Value) {
        match (target.as_object_mut(), patch.as_object()) {
            (Some(target), Some(patch)) => {
                for (key, value) in patch {
                    if value.is_null() {
                        target.remove(key);
                    } else {
                        merge(target.entry(key.clone()).or_insert(Value::Null), value);
                    }
                }
            }
            _ => *target = patch.clone(),
        }
    }

    struct Validators {
        /// The package schema with the core release schema, as published.
        core: jsonschema::Validator,
        /// The same with the extensions' fields added.
        extended: jsonschema::Validator,
        package_schema: Value,
        extended_release_schema: Value,
    }

    fn validators(dir: PathBuf) -> Validators {
        let package_schema = read_json(dir.join("release-package-schema.json"));
        let release_schema = read_json(dir.join("release-schema.json"));
        assert_eq!(release_schema["id"], RELEASE_SCHEMA_URL, "the release schema's canonical URL");
        let mut extended_release_schema = release_schema.clone();
        merge(&mut extended_release_schema, &extensions_patch());
        let build = |release: &Value| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .should_validate_formats(true)
                .with_retriever(LocalSchemas(release.clone()))
                .build(&package_schema)
                .expect("the package schema compiles, with the release schema resolved locally")
        };
        Validators {
            core: build(&release_schema),
            extended: build(&extended_release_schema),
            package_schema: package_schema.clone(),
            extended_release_schema,
        }
    }

    fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }

    /// Fields that neither the schema nor the extensions declare. OCDS schemas allow additional
    /// properties, so a misspelt field would validate; this catches it.
    fn undeclared(instance: &Value, schema: &Value, root: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            if let Some(name) = reference.strip_prefix("#/definitions/") {
                return undeclared(instance, &root["definitions"][name], root, path, out);
            }
            return; // an external reference: checked by its own call
        }
        match instance {
            Value::Object(fields) => {
                let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return };
                for (key, value) in fields {
                    match properties.get(key) {
                        Some(field_schema) => undeclared(value, field_schema, root, &format!("{path}/{key}"), out),
                        None => out.push(format!("{path}/{key}")),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        undeclared(item, item_schema, root, &format!("{path}/{i}"), out);
                    }
                }
            }
            _ => {}
        }
    }

    fn assert_valid(v: &Validators, package: &Value) {
        let core = errors(&v.core, package);
        assert!(core.is_empty(), "invalid against OCDS 1.1.5: {core:#?}\n{package:#}");
        let extended = errors(&v.extended, package);
        assert!(extended.is_empty(), "invalid against OCDS 1.1.5 + extensions: {extended:#?}\n{package:#}");
        let mut unknown = Vec::new();
        undeclared(package, &v.package_schema, &v.package_schema, "", &mut unknown);
        for (i, release) in package["releases"].as_array().unwrap().iter().enumerate() {
            let schema = &v.extended_release_schema;
            undeclared(release, schema, schema, &format!("/releases/{i}"), &mut unknown);
        }
        assert!(unknown.is_empty(), "fields outside OCDS 1.1.5 and the declared extensions: {unknown:#?}");
    }

    // ---- helpers over the output -----------------------------------------------------------

    fn party<'a>(release: &'a Value, name: &str) -> Option<&'a Value> {
        release["parties"].as_array().unwrap().iter().find(|p| p["name"] == name)
    }

    fn roles(release: &Value, name: &str) -> Vec<String> {
        let party = party(release, name).unwrap_or_else(|| panic!("{name} is a party"));
        party["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
    }

    fn strings(value: &Value) -> Vec<&str> {
        value.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
    }

    // ---- the tests -------------------------------------------------------------------------

    #[tokio::test]
    async fn exports_are_valid_ocds_1_1_5() {
        let Some(dir) = schema_dir() else { return };
        let v = validators(dir);
        let f = fixture().await;
        for include_sealed in [false, true] {
            assert_valid(&v, &export(&f, f.procurement.id, include_sealed).await);
            assert_valid(&v, &export(&f, f.open_competition.id, include_sealed).await);
        }
        // And through the public entry point, at the real clock.
        let now = release_package(f.db.read(), f.procurement.id, &Viewer::platform_admin(), &options(false))
            .await
            .unwrap()
            .unwrap();
        assert_valid(&v, &now);
    }

    #[tokio::test]
    async fn the_validator_applies_the_referenced_release_schema() {
        let Some(dir) = schema_dir() else { return };
        let v = validators(dir);
        let f = fixture().await;
        let good = export(&f, f.procurement.id, true).await;
        assert!(v.core.is_valid(&good) && v.extended.is_valid(&good));

        // A closed codelist of the core release schema, reached only through the package
        // schema's reference to it by URL.
        let mut bad_tag = good.clone();
        bad_tag["releases"][0]["tag"] = json!(["not-a-tag"]);
        assert!(!v.core.is_valid(&bad_tag), "a release tag outside the codelist must fail");
        assert!(errors(&v.core, &bad_tag).iter().any(|e| e.contains("/releases/0/tag/0")));

        // A format check inside the release schema.
        let mut bad_date = good.clone();
        bad_date["releases"][1]["date"] = json!("1 July 2025");
        assert!(!v.core.is_valid(&bad_date), "a release date that is not a date-time must fail");

        // A required field of the core schema (a contract's awardID).
        let mut no_award_id = good.clone();
        no_award_id["releases"][0]["contracts"][0].as_object_mut().unwrap().remove("awardID");
        assert!(!v.core.is_valid(&no_award_id), "a contract without awardID must fail");

        // The extensions: a lot without its id, an unknown framework-agreement method.
        let mut lot_without_id = good.clone();
        lot_without_id["releases"][0]["tender"]["lots"][0].as_object_mut().unwrap().remove("id");
        assert!(!v.extended.is_valid(&lot_without_id), "a lot without id must fail");
        let mut bad_method = good.clone();
        bad_method["releases"][0]["tender"]["techniques"]["frameworkAgreement"]["method"] = json!("miniCompetition");
        assert!(!v.extended.is_valid(&bad_method), "an unknown framework agreement method must fail");

        // A misspelt field validates (OCDS allows additional fields) but is reported.
        let mut misspelt = good.clone();
        misspelt["releases"][0]["tender"]["techniques"]["hasFrameworkAgreements"] = json!(true);
        assert!(v.extended.is_valid(&misspelt));
        let mut unknown = Vec::new();
        let schema = &v.extended_release_schema;
        undeclared(&misspelt["releases"][0], schema, schema, "", &mut unknown);
        assert_eq!(unknown, ["/tender/techniques/hasFrameworkAgreements"]);
    }

    #[tokio::test]
    async fn a_joint_procurement_maps_to_one_process_with_lots_awards_and_framework_contracts() {
        let f = fixture().await;
        let package = export(&f, f.procurement.id, false).await;
        let ocid = format!("ocds-velferd-{}", f.procurement.id);
        assert_eq!(package["version"], "1.1");
        assert_eq!(package["uri"], format!("https://velferd.example/ocds/{ocid}"));
        assert_eq!(package["publisher"]["name"], "Velferd");
        assert_eq!(package["publishedDate"], "2026-06-01T12:00:00Z");
        assert_eq!(strings(&package["extensions"]), [LOTS_EXTENSION, TECHNIQUES_EXTENSION]);

        let releases = package["releases"].as_array().unwrap();
        assert_eq!(releases.len(), 3, "the procurement and its two placed call-offs (not the draft)");
        let main = &releases[0];
        assert_eq!(main["ocid"], ocid);
        assert!(main["id"].as_str().unwrap().starts_with(&format!("{ocid}-")));
        assert_eq!(strings(&main["tag"]), ["tender", "award", "contract"]);
        assert_eq!(main["initiationType"], "tender");
        assert_eq!(main["date"], "2025-06-02T08:00:00Z", "the latest change: the move to implementation");

        // Parties and roles.
        let lead_id = "NO-ORG-940583500";
        assert_eq!(main["buyer"], json!({ "id": lead_id, "name": "Larvik kommune" }));
        assert_eq!(roles(main, &f.lead.name), ["leadBuyer", "buyer", "procuringEntity"]);
        assert_eq!(roles(main, &f.participant.name), ["buyer"]);
        assert!(party(main, &f.follower.name).is_none(), "followers are not parties");
        assert!(!package.to_string().contains(&f.follower.name), "nor named anywhere");
        assert_eq!(roles(main, &f.supplier_a.name), ["tenderer", "supplier"]);
        assert_eq!(roles(main, &f.supplier_b.name), ["tenderer", "supplier"]);
        let lead = party(main, &f.lead.name).unwrap();
        assert_eq!(lead["id"], lead_id);
        assert_eq!(lead["identifier"], json!({ "scheme": "NO-ORG", "id": "940583500", "legalName": "Larvik kommune" }));
        assert_eq!(lead["address"]["region"], "Vestfold");
        let b = party(main, &f.supplier_b.name).unwrap();
        assert_eq!(b["id"], format!("velferd-org-{}", f.supplier_b.id), "no org number: a local id");
        assert!(b.get("identifier").is_none() && b.get("address").is_none());
        let party_ids: Vec<&str> =
            main["parties"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(party_ids.len(), 4);

        // Tender: user stories as lots, a framework agreement without reopening competition.
        let tender = &main["tender"];
        assert_eq!(tender["status"], "complete");
        assert_eq!(tender["procurementMethod"], "open");
        assert_eq!(tender["procuringEntity"]["id"], lead_id);
        assert_eq!(
            tender["tenderPeriod"],
            json!({ "startDate": "2025-03-01T00:00:00Z", "endDate": "2025-04-15T10:00:00Z" })
        );
        assert_eq!(tender["documents"][0]["id"], "2025-101234");
        assert_eq!(tender["documents"][0]["documentType"], "tenderNotice");
        assert_eq!(tender["awardCriteria"], "ratedCriteria");
        assert_eq!(tender["awardCriteriaDetails"], "Pris 40 %; Kvalitet 60 %");
        assert_eq!(tender["numberOfTenderers"], 2);
        let lots = tender["lots"].as_array().unwrap();
        assert_eq!(lots.len(), 2);
        assert_eq!(lots[0]["id"], "US1");
        assert_eq!(lots[0]["title"], "Påminnelse om dose");
        assert_eq!(lots[0]["description"], "Som bruker vil jeg bli minnet på medisinen min.");
        assert_eq!(lots[0]["status"], "complete");
        assert_eq!(lots[1]["id"], "US2");
        assert_eq!(tender["techniques"]["hasFrameworkAgreement"], true);
        assert_eq!(tender["techniques"]["frameworkAgreement"]["method"], "withoutReopeningCompetition");
        assert_eq!(
            tender["techniques"]["frameworkAgreement"]["buyerCategories"],
            "The participating municipalities: Larvik kommune, Sandefjord kommune"
        );

        // Awards, one per user story, with the awarded price only.
        let awards = main["awards"].as_array().unwrap();
        assert_eq!(awards.len(), 2);
        assert_eq!(awards[0]["status"], "active");
        assert_eq!(awards[0]["date"], "2025-05-20T00:00:00Z");
        assert_eq!(strings(&awards[0]["relatedLots"]), ["US1"]);
        assert_eq!(awards[0]["suppliers"], json!([{ "id": "NO-ORG-923456783", "name": "Dosetech AS" }]));
        assert_eq!(awards[0]["value"], json!({ "amount": 4500, "currency": "NOK" }));
        assert_eq!(strings(&awards[1]["relatedLots"]), ["US2"]);
        assert_eq!(awards[1]["suppliers"][0]["id"], format!("velferd-org-{}", f.supplier_b.id));
        assert_eq!(awards[1]["value"], json!({ "amount": 2999, "currency": "NOK" }));
        assert!(main.get("bids").is_none(), "no bids in the public export");
        let text = package.to_string();
        for losing in ["3177.77", "4200.55"] {
            assert!(!text.contains(losing), "an unsuccessful price ({losing}) leaked");
        }

        // One contract per framework agreement, status by date.
        let contracts = main["contracts"].as_array().unwrap();
        assert_eq!(contracts.len(), 2);
        for (contract, award) in contracts.iter().zip(awards) {
            assert_eq!(contract["awardID"], award["id"]);
        }
        assert_eq!(contracts[0]["status"], "active");
        assert_eq!(
            contracts[0]["period"],
            json!({ "startDate": "2025-06-01T00:00:00Z", "endDate": "2027-05-31T00:00:00Z" })
        );
        assert_eq!(contracts[0]["value"], json!({ "amount": 4500, "currency": "NOK" }));
        assert_eq!(contracts[0]["items"][0]["quantity"], 500);
        assert_eq!(contracts[0]["items"][0]["relatedLot"], "US1");
        assert_eq!(contracts[0]["items"][1]["unit"]["value"], json!({ "amount": 199.5, "currency": "NOK" }));
        assert_eq!(contracts[1]["status"], "terminated", "ended 31 December 2025");

        // The call-offs: their own processes, linked back to the framework.
        let buy = &releases[1];
        let lease = &releases[2];
        for (release, municipality) in [(buy, &f.participant), (lease, &f.lead)] {
            assert!(release["ocid"].as_str().unwrap().starts_with(&format!("{ocid}-calloff-")));
            assert_ne!(release["ocid"], main["ocid"]);
            assert_eq!(strings(&release["tag"]), ["award", "contract"]);
            assert_eq!(release["initiationType"], "tender");
            assert_eq!(
                release["relatedProcesses"],
                json!([{
                    "id": "framework",
                    "relationship": ["framework"],
                    "title": "Medisineringsstøtte i Vestfold",
                    "scheme": "ocid",
                    "identifier": ocid,
                }])
            );
            assert_eq!(release["buyer"]["name"], municipality.name.as_str());
            assert_eq!(roles(release, &municipality.name), ["buyer", "procuringEntity"]);
            assert_eq!(release["tender"]["competitive"], false);
            assert_eq!(release["awards"][0]["id"], release["contracts"][0]["awardID"]);
        }
        assert_eq!(roles(buy, "Dosetech AS"), ["supplier"]);
        assert_eq!(buy["contracts"][0]["status"], "active");
        assert_eq!(buy["contracts"][0]["value"], json!({ "amount": 90000, "currency": "NOK" }), "20 × 4500");
        assert_eq!(lease["contracts"][0]["status"], "active", "a delivered lease runs on");
        assert!(lease["contracts"][0].get("value").is_none(), "a lease has no total");
        assert_eq!(
            lease["contracts"][0]["items"][0]["unit"],
            json!({ "name": "unit per month", "value": { "amount": 125, "currency": "NOK" } })
        );
    }

    #[tokio::test]
    async fn sealed_tenders_stay_sealed() {
        let f = fixture().await;

        // After the deadline, the internal export has every response as a bid.
        let internal = export(&f, f.procurement.id, true).await;
        assert!(strings(&internal["extensions"]).contains(&BID_EXTENSION));
        let bids = internal["releases"][0]["bids"]["details"].as_array().unwrap();
        assert_eq!(bids.len(), 4);
        assert!(bids.iter().any(|b| b["value"]["amount"] == json!(4200.55) && strings(&b["relatedLots"]) == ["US1"]));
        assert!(bids.iter().any(|b| b["value"]["amount"] == json!(3177.77)));

        // Before the deadline nobody, not even the internal export, learns who tendered.
        for include_sealed in [false, true] {
            let package = export(&f, f.open_competition.id, include_sealed).await;
            let main = &package["releases"][0];
            assert_eq!(package["releases"].as_array().unwrap().len(), 1);
            assert_eq!(strings(&main["tag"]), ["tender"]);
            assert_eq!(main["tender"]["status"], "active");
            assert_eq!(
                strings(&main["tender"]["lots"].as_array().unwrap().iter().map(|l| l["id"].clone()).collect()),
                ["A1"]
            );
            for absent in ["bids", "awards", "contracts"] {
                assert!(main.get(absent).is_none(), "{absent} before the deadline");
            }
            assert!(main["tender"].get("tenderers").is_none() && main["tender"].get("numberOfTenderers").is_none());
            let text = package.to_string();
            assert!(!text.contains(&f.supplier_a.name) && !text.contains("1234.56"), "a sealed tender leaked");
            assert_eq!(roles(main, &f.lead.name), ["leadBuyer", "buyer", "procuringEntity"]);
        }
    }

    #[tokio::test]
    async fn release_ids_are_stable_and_change_with_the_content() {
        let f = fixture().await;
        let first = export(&f, f.procurement.id, false).await;
        let again = export(&f, f.procurement.id, false).await;
        let internal = export(&f, f.procurement.id, true).await;
        assert_eq!(first["releases"][0]["id"], again["releases"][0]["id"]);
        assert_ne!(first["releases"][0]["id"], internal["releases"][0]["id"]);
        let ids: std::collections::HashSet<&str> =
            first["releases"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 3);
    }

    #[tokio::test]
    async fn an_unknown_procurement_has_no_package() {
        let f = fixture().await;
        assert!(
            release_package(f.db.read(), 9_999, &Viewer::platform_admin(), &options(false)).await.unwrap().is_none()
        );
    }

    #[test]
    fn amounts_are_nok_from_ore() {
        assert_eq!(nok(450_000), json!({ "amount": 4500, "currency": "NOK" }));
        assert_eq!(nok(19_950), json!({ "amount": 199.5, "currency": "NOK" }));
        assert_eq!(nok(1), json!({ "amount": 0.01, "currency": "NOK" }));
        assert_eq!(date(day(2025, 3, 1)), "2025-03-01T00:00:00Z");
        assert_eq!(datetime(at("2025-04-15T12:00:00+02:00")), "2025-04-15T10:00:00Z");
    }
}
