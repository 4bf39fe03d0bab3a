//! GraphQL face of care operations: service recipients, their status history and assessments,
//! and the values the care migration quarantined.
//!
//! Who sees what: a municipality's `case_worker` sees and changes its own recipients and their
//! assessments; nobody else sees them (another municipality, suppliers, admins, operators,
//! anonymous): a recipient they may not see answers exactly like a missing one. Its
//! `privacy_officer` sees the quarantined values (where they were, never the value). Every
//! recipient or assessment served writes one audit entry (`crate::audit`), in the resolver that
//! produced it.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::model::{AssessmentDecision, RecipientStatus, assessment, recipient_status_change, service_recipient};
use super::rules::{self, NewAssessment, NewRecipient};
use crate::audit::{self, Access, Purpose};
use crate::auth::Role;
use crate::errors::{ApiError, Invalid};
use crate::graphql::connection::{OrderDirection, Page, PageArgs, load_page, page_by_id};
use crate::graphql::context::{caller, load_existing, load_one, mutate, session, state, today};
use crate::graphql::errors::payload;
use crate::graphql::loaders::*;
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, input_row};
use crate::organizations::Organization;
use crate::procurement::graphql::UserStory;
use crate::text::{CareLine, CareNote};
use velferd_macros::{connections, row_fields};

// `Query`, `Mutation` and `Subscription` name the area's roots for the area table, `crate::areas!`.
pub use self::CareMutation as Mutation;
pub use self::CareQuery as Query;

/// The municipality whose recipients the caller may read: its own, as a `case_worker`.
pub(crate) fn case_worker_municipality(ctx: &Context<'_>) -> Option<i64> {
    let session = session(ctx);
    // Effective roles count only for the organisation kinds they belong to: a case worker's
    // organisation is a municipality.
    session.has_role(Role::CaseWorker).then(|| session.organization_id()).flatten()
}

/// Writes the audit entry of one read of recipient data a case worker is served: the object
/// `object` of the recipient `recipient_id` of `municipality_id`, for casework.
pub(crate) async fn audit_read(
    ctx: &Context<'_>,
    municipality_id: i64,
    recipient_id: i64,
    operation: &'static str,
    object: (&'static str, i64),
) -> Result<(), ApiError> {
    let caller = caller(ctx, Role::CaseWorker, "read recipient data").await?;
    record_read(ctx, &caller, municipality_id, recipient_id, operation, object, Purpose::Casework).await
}

/// Writes the audit entry of one read of recipient data `caller` is served, with `purpose`: the
/// one place reads are logged, for any area that serves recipient data (an alert naming its
/// recipient passes `Purpose::Alert`). In a transaction of its own on the request's write
/// connection: the chain's head stays locked while the entry is appended, so the concurrent
/// resolvers of one list append one after another.
pub(crate) async fn record_read(
    ctx: &Context<'_>,
    caller: &crate::auth::Caller,
    municipality_id: i64,
    recipient_id: i64,
    operation: &'static str,
    object: (&'static str, i64),
    purpose: Purpose,
) -> Result<(), ApiError> {
    use sea_orm::TransactionTrait;
    let txn = state(ctx).db.write().begin().await?;
    audit::record(&txn, Access::granted(caller, municipality_id, recipient_id, operation, object, purpose)).await?;
    txn.commit().await?;
    Ok(())
}

/// `recipient` when the caller may read it, with its read audited; `None` otherwise.
pub(crate) async fn read_recipient(
    ctx: &Context<'_>,
    recipient: service_recipient::Model,
) -> Result<Option<ServiceRecipient>, ApiError> {
    if case_worker_municipality(ctx) != Some(recipient.municipality_id) {
        return Ok(None);
    }
    audit_read(ctx, recipient.municipality_id, recipient.id, "recipient.read", ("ServiceRecipient", recipient.id))
        .await?;
    Ok(Some(ServiceRecipient(recipient)))
}

/// The recipient `id` when the caller may read it, with its read audited.
pub(crate) async fn read_recipient_by_id(ctx: &Context<'_>, id: i64) -> Result<Option<ServiceRecipient>, ApiError> {
    match load_one(ctx, RecipientById(id)).await? {
        Some(r) => read_recipient(ctx, r).await,
        None => Ok(None),
    }
}

async fn read_assessment(ctx: &Context<'_>, a: assessment::Model) -> Result<Option<Assessment>, ApiError> {
    if case_worker_municipality(ctx) != Some(a.municipality_id) {
        return Ok(None);
    }
    audit_read(ctx, a.municipality_id, a.recipient_id, "assessment.read", ("Assessment", a.id)).await?;
    Ok(Some(Assessment(a)))
}

/// A municipality's service recipient (tjenestemottaker), named only by the municipality's
/// pseudonymous reference.
#[derive(Clone)]
pub struct ServiceRecipient(pub service_recipient::Model);

#[row_fields]
#[connections]
#[Object]
impl ServiceRecipient {
    pub async fn id(&self) -> ID;

    /// The municipality's own pseudonymous reference (never a national identity number).
    async fn reference(&self) -> &str;

    async fn care_zone(&self) -> Option<&str>;

    async fn status(&self) -> RecipientStatus;

    async fn started_on(&self) -> NaiveDate;

    /// Set while the service is paused.
    async fn paused_on(&self) -> Option<NaiveDate>;

    async fn ended_on(&self) -> Option<NaiveDate>;

    async fn municipality(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.municipality_id).await
    }

    /// Every status the service has had, oldest first, with who set it and when.
    async fn status_history(&self, ctx: &Context<'_>) -> Result<Vec<RecipientStatusChange>> {
        let rows = load_one(ctx, RecipientHistory(self.0.id)).await?.unwrap_or_default();
        Ok(rows.into_iter().map(RecipientStatusChange).collect())
    }

    /// The recipient's assessments, oldest first.
    async fn assessments(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<Assessment>> {
        let page = load_page(ctx, AssessmentsOf(self.0.id), page, |_| true, Assessment, |a| a.0.id).await?;
        for edge in &page.edges {
            let a = &edge.node.0;
            audit_read(ctx, a.municipality_id, a.recipient_id, "assessment.read", ("Assessment", a.id)).await?;
        }
        Ok(page)
    }

    async fn created_at(&self) -> DateTime<Utc>;
}

/// One status a recipient's service has had.
#[derive(Clone)]
pub struct RecipientStatusChange(pub recipient_status_change::Model);

#[row_fields]
#[Object]
impl RecipientStatusChange {
    async fn status(&self) -> RecipientStatus;

    /// The date the status took effect.
    async fn effective_on(&self) -> NaiveDate;

    /// The subject of the token that set it.
    async fn subject(&self) -> &str;

    /// The role it was set under.
    async fn role(&self) -> &str;

    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.organization_id).await
    }

    /// When it was recorded.
    async fn at(&self) -> DateTime<Utc>;
}

/// A professional assessment (faglig vurdering): a recipient matched to a user story of a
/// framework agreement the municipality has called off.
#[derive(Clone)]
pub struct Assessment(pub assessment::Model);

#[row_fields]
#[Object]
impl Assessment {
    pub async fn id(&self) -> ID;

    async fn recipient(&self, ctx: &Context<'_>) -> Result<Option<ServiceRecipient>> {
        Ok(read_recipient_by_id(ctx, self.0.recipient_id).await?)
    }

    async fn user_story(&self, ctx: &Context<'_>) -> Result<UserStory> {
        Ok(UserStory(load_existing(ctx, UserStoryById(self.0.user_story_id), "user story").await?))
    }

    async fn decision(&self) -> AssessmentDecision;

    async fn reason(&self) -> &str;

    async fn decided_on(&self) -> NaiveDate;

    /// The subject of the case worker's token that recorded it.
    async fn recorded_by(&self) -> &str {
        &self.0.subject
    }

    async fn created_at(&self) -> DateTime<Utc>;
}

/// A stored value shaped like a national identity number that the care migration moved out of
/// reach. The value itself is never served: the privacy officer finds it from where it was.
#[derive(SimpleObject)]
pub struct QuarantinedValue {
    /// Where it was: `device.recipient_ref`.
    pub source: String,
    /// The serial of the device whose recipient reference it was, when the device still exists.
    pub device_serial: Option<String>,
    pub found_at: DateTime<Utc>,
}

impl NodeObject for ServiceRecipient {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<ServiceRecipient>, ApiError> {
        read_recipient_by_id(ctx, id).await
    }
}

impl NodeObject for Assessment {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Assessment>, ApiError> {
        match load_one(ctx, AssessmentById(id)).await? {
            Some(a) => read_assessment(ctx, a).await,
            None => Ok(None),
        }
    }
}

#[derive(Default)]
pub struct CareQuery;

#[connections]
#[Object]
impl CareQuery {
    /// Your municipality's service recipients (case workers), in the order registered;
    /// `status` narrows to one status. Anyone else gets an empty list. Each recipient served is
    /// written to the audit log.
    async fn service_recipients(
        &self,
        ctx: &Context<'_>,
        status: Option<RecipientStatus>,
        page: PageArgs,
    ) -> Result<Page<ServiceRecipient>> {
        let page = page.parse()?;
        // Nobody else's: an empty `any` matches no row.
        let mut select = service_recipient::Entity::find();
        select = match case_worker_municipality(ctx) {
            Some(m) => select.filter(service_recipient::Column::MunicipalityId.eq(m)),
            None => select.filter(sea_orm::Condition::any()),
        };
        if let Some(status) = status {
            select = select.filter(service_recipient::Column::Status.eq(status));
        }
        let page = page_by_id(
            ctx,
            OrderDirection::Asc,
            select,
            service_recipient::Column::Id,
            &page,
            |r| r.id,
            ServiceRecipient,
        )
        .await?;
        for edge in &page.edges {
            let r = &edge.node.0;
            audit_read(ctx, r.municipality_id, r.id, "recipient.read", ("ServiceRecipient", r.id)).await?;
        }
        Ok(page)
    }

    /// Values shaped like a national identity number that were stored before Velferd refused
    /// them, moved out of reach by the care migration (privacy officers of the municipality).
    /// Anyone else gets an empty list.
    async fn quarantined_values(&self, ctx: &Context<'_>) -> Result<Vec<QuarantinedValue>> {
        let session = session(ctx);
        let Some(municipality) = session.has_role(Role::PrivacyOfficer).then(|| session.organization_id()).flatten()
        else {
            return Ok(vec![]);
        };
        let db = state(ctx).db.read();
        let rows = rules::quarantined(db, municipality).await?;
        let devices: Vec<i64> = rows.iter().filter(|r| r.source_table == "device").map(|r| r.source_id).collect();
        let devices = crate::devices::model::device::Entity::find()
            .filter(crate::devices::model::device::Column::Id.is_in(devices))
            .filter(crate::devices::model::device::Column::MunicipalityId.eq(municipality))
            .all(db)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|r| QuarantinedValue {
                source: format!("{}.{}", r.source_table, r.source_column),
                device_serial: devices
                    .iter()
                    .find(|d| r.source_table == "device" && d.id == r.source_id)
                    .map(|d| d.serial.clone()),
                found_at: r.found_at.to_utc(),
            })
            .collect())
    }
}

payload!(ServiceRecipientRegisterPayload, service_recipient: ServiceRecipient, "Result of `serviceRecipientRegister`.");
payload!(ServiceRecipientUpdatePayload, service_recipient: ServiceRecipient, "Result of `serviceRecipientUpdate`.");
payload!(
    ServiceRecipientStatusChangePayload,
    service_recipient: ServiceRecipient,
    "Result of `serviceRecipientStatusChange`."
);
payload!(AssessmentCreatePayload, assessment: Assessment, "Result of `assessmentCreate`.");

#[derive(InputObject)]
pub struct ServiceRecipientRegisterInput {
    /// Your municipality's pseudonymous reference, unique in it; never a national identity
    /// number (any run of 11 digits, or 6 and 5 with a separator, is refused).
    pub reference: String,
    pub care_zone: Option<String>,
    /// Defaults to today.
    pub started_on: Option<NaiveDate>,
}

#[derive(InputObject)]
pub struct ServiceRecipientUpdateInput {
    pub recipient_id: ID,
    /// The new care zone; absent or blank clears it.
    pub care_zone: Option<String>,
}

#[derive(InputObject)]
pub struct ServiceRecipientStatusChangeInput {
    pub recipient_id: ID,
    /// PAUSED, ACTIVE (resume) or ENDED (final: the recipient's devices return to stock).
    pub status: RecipientStatus,
    /// Defaults to today.
    pub effective_on: Option<NaiveDate>,
}

#[derive(InputObject)]
pub struct AssessmentCreateInput {
    pub recipient_id: ID,
    /// A user story of a framework agreement your municipality has a confirmed or delivered
    /// call-off under.
    pub user_story_id: ID,
    pub decision: AssessmentDecision,
    /// Why; never a national identity number.
    pub reason: String,
    /// Defaults to today.
    pub decided_on: Option<NaiveDate>,
}

impl ServiceRecipientRegisterInput {
    fn parse(self) -> Result<NewRecipient, Invalid> {
        Ok(NewRecipient {
            reference: CareLine::parse("reference", &self.reference)?,
            care_zone: CareLine::parse_optional("careZone", self.care_zone.as_deref())?,
            started_on: self.started_on.unwrap_or_else(today),
        })
    }
}

impl ServiceRecipientUpdateInput {
    /// The recipient and its new care zone (none when blank).
    fn parse(self) -> Result<(i64, Option<CareLine>), Invalid> {
        let zone = CareLine::parse_optional("careZone", self.care_zone.as_deref())?;
        Ok((input_row(&self.recipient_id, NodeType::ServiceRecipient, "recipientId")?, zone))
    }
}

impl AssessmentCreateInput {
    fn parse(self) -> Result<NewAssessment, Invalid> {
        // Free text first: a national identity number is refused before any id is looked at.
        let reason = CareNote::parse("reason", &self.reason)?;
        Ok(NewAssessment {
            recipient_id: input_row(&self.recipient_id, NodeType::ServiceRecipient, "recipientId")?,
            user_story_id: input_row(&self.user_story_id, NodeType::UserStory, "userStoryId")?,
            decision: self.decision,
            reason,
            decided_on: self.decided_on.unwrap_or_else(today),
        })
    }
}

#[derive(Default)]
pub struct CareMutation;

#[Object]
impl CareMutation {
    /// Registers a service recipient of your municipality, active from `startedOn`. Role:
    /// `case_worker`.
    async fn service_recipient_register(
        &self,
        ctx: &Context<'_>,
        input: ServiceRecipientRegisterInput,
    ) -> Result<ServiceRecipientRegisterPayload> {
        let caller = caller(ctx, Role::CaseWorker, "register service recipients").await?;
        mutate(ctx, input.parse(), ServiceRecipient, async |txn, new| {
            rules::register_recipient(txn, &caller, new).await
        })
        .await
    }

    /// Changes a recipient's care zone. Role: `case_worker` of its municipality.
    async fn service_recipient_update(
        &self,
        ctx: &Context<'_>,
        input: ServiceRecipientUpdateInput,
    ) -> Result<ServiceRecipientUpdatePayload> {
        let caller = caller(ctx, Role::CaseWorker, "update service recipients").await?;
        mutate(ctx, input.parse(), ServiceRecipient, async |txn, (id, zone)| {
            rules::update_recipient(txn, &caller, id, zone).await
        })
        .await
    }

    /// Pauses, resumes or ends a recipient's service. Ending is final and returns the
    /// recipient's devices to stock. Role: `case_worker` of its municipality.
    async fn service_recipient_status_change(
        &self,
        ctx: &Context<'_>,
        input: ServiceRecipientStatusChangeInput,
    ) -> Result<ServiceRecipientStatusChangePayload> {
        let caller = caller(ctx, Role::CaseWorker, "change service recipients' status").await?;
        let on = input.effective_on.unwrap_or_else(today);
        let live = state(ctx).live.clone();
        mutate(
            ctx,
            input_row(&input.recipient_id, NodeType::ServiceRecipient, "recipientId"),
            ServiceRecipient,
            async |txn, id| {
                let (row, returned) =
                    rules::change_status_returning_devices(txn, &caller, id, input.status, on).await?;
                crate::devices::live::publish(txn, &live, &returned).await?;
                Ok(row)
            },
        )
        .await
    }

    /// Records a professional assessment of a recipient against a user story your
    /// municipality has called off: GRANTED lets a device under that user story be assigned.
    /// Role: `case_worker` of the recipient's municipality.
    async fn assessment_create(
        &self,
        ctx: &Context<'_>,
        input: AssessmentCreateInput,
    ) -> Result<AssessmentCreatePayload> {
        let caller = caller(ctx, Role::CaseWorker, "assess service recipients").await?;
        mutate(ctx, input.parse(), Assessment, async |txn, new| rules::assess(txn, &caller, new).await).await
    }
}
