//! The rules of service recipients and assessments, independent of GraphQL. Every function runs
//! inside the caller's transaction and writes the audit entry of the change in it; a broken
//! rule is refused with `Refusal::Rule(CareError)` and the transaction rolled back, so a refused
//! change writes nothing — no audit entry either.

use chrono::{NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::model::{
    AssessmentDecision, RecipientStatus, assessment, quarantined_value, recipient_status_change, service_recipient,
};
use crate::agreements::model::{CallOffStatus, call_off, framework_agreement};
use crate::audit::{self, Access, Purpose};
use crate::auth::Caller;
use crate::errors::{ApiError, Invalid, Refusal, RuleViolation, ensure, refuse};
use crate::organizations::OrganizationKind;
use crate::procurement::model::user_story;
use crate::text::{CareLine, CareNote};

/// Rule violations of care operations, each with the input field it concerns and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, RuleViolation)]
pub enum CareError {
    #[error(transparent)]
    #[violation(transparent)]
    Invalid(#[from] Invalid),
    /// Ending a service returns its devices to stock by the devices' own rules.
    #[error(transparent)]
    #[violation(transparent)]
    Device(#[from] crate::devices::rules::DevicesError),
    #[error("{0} is not a municipality; only municipalities have service recipients")]
    #[violation(field = "", code = "NOT_A_MUNICIPALITY")]
    NotAMunicipality(String),
    #[error("your municipality has a service recipient with this reference already")]
    #[violation(field = "reference", code = "REFERENCE_TAKEN")]
    ReferenceTaken,
    #[error("no such service recipient of your municipality")]
    #[violation(field = "recipientId", code = "NOT_FOUND")]
    UnknownRecipient,
    #[error("the recipient's service has ended; an ended service does not change")]
    #[violation(field = "recipientId", code = "RECIPIENT_ENDED")]
    RecipientEnded,
    #[error("a recipient's service goes from {from:?} to {to:?} only by another step: {allowed}")]
    #[violation(field = "status", code = "ILLEGAL_TRANSITION")]
    IllegalTransition { from: RecipientStatus, to: RecipientStatus, allowed: &'static str },
    #[error("the date {on} is before the service started ({started})")]
    #[violation(field = "effectiveOn", code = "BEFORE_START")]
    BeforeStart { on: NaiveDate, started: NaiveDate },
    #[error("no such user story")]
    #[violation(field = "userStoryId", code = "NOT_FOUND")]
    UnknownStory,
    #[error(
        "your municipality has no confirmed or delivered call-off under a framework agreement for this user \
         story; assess against a solution you have called off"
    )]
    #[violation(field = "userStoryId", code = "STORY_NOT_CALLED_OFF")]
    StoryNotCalledOff,
}

/// What a care rule returns: its value, or why not.
pub type RuleResult<T> = crate::errors::RuleResult<T, CareError>;

/// A new recipient, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewRecipient {
    pub reference: CareLine,
    pub care_zone: Option<CareLine>,
    pub started_on: NaiveDate,
}

/// A new assessment, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewAssessment {
    pub recipient_id: i64,
    pub user_story_id: i64,
    pub decision: AssessmentDecision,
    pub reason: CareNote,
    pub decided_on: NaiveDate,
}

fn require_municipality(caller: &Caller) -> RuleResult<()> {
    ensure(caller.org.kind == OrganizationKind::Municipality, CareError::NotAMunicipality(caller.org.name.clone()))
}

/// The audit entry of a change the caller makes to `recipient`'s data.
pub(crate) async fn audit_change<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    recipient: &service_recipient::Model,
    operation: &'static str,
    object: (&'static str, i64),
) -> Result<(), ApiError> {
    let access = Access::granted(caller, recipient.municipality_id, recipient.id, operation, object, Purpose::Casework);
    audit::record(db, access).await?;
    Ok(())
}

/// The caller's municipality's recipient `id`; another's answers like a missing one.
pub async fn own_recipient<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
) -> RuleResult<service_recipient::Model> {
    match service_recipient::Entity::find_by_id(id).one(db).await? {
        Some(r) if r.municipality_id == caller.org.id => Ok(r),
        _ => refuse(CareError::UnknownRecipient),
    }
}

async fn record_status<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    recipient: &service_recipient::Model,
    on: NaiveDate,
) -> Result<(), ApiError> {
    recipient_status_change::ActiveModel {
        recipient_id: Set(recipient.id),
        status: Set(recipient.status),
        effective_on: Set(on),
        ..crate::changed_by!(recipient_status_change, caller)
    }
    .insert(db)
    .await?;
    Ok(())
}

/// A case worker registers a recipient of the municipality, active from `started_on`.
pub async fn register_recipient<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    new: NewRecipient,
) -> RuleResult<service_recipient::Model> {
    require_municipality(caller)?;
    let taken = service_recipient::Entity::find()
        .filter(service_recipient::Column::MunicipalityId.eq(caller.org.id))
        .filter(service_recipient::Column::Reference.eq(new.reference.as_str()))
        .one(db)
        .await?;
    ensure(taken.is_none(), CareError::ReferenceTaken)?;
    let row = service_recipient::ActiveModel {
        municipality_id: Set(caller.org.id),
        reference: Set(new.reference.into_string()),
        care_zone: Set(new.care_zone.map(CareLine::into_string)),
        status: Set(RecipientStatus::Active),
        started_on: Set(new.started_on),
        paused_on: Set(None),
        ended_on: Set(None),
        ..crate::created_by!(service_recipient, caller)
    }
    .insert(db)
    .await?;
    record_status(db, caller, &row, new.started_on).await?;
    audit_change(db, caller, &row, "recipient.create", ("ServiceRecipient", row.id)).await?;
    Ok(row)
}

/// A case worker changes a recipient's care zone (absent clears it).
pub async fn update_recipient<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
    care_zone: Option<CareLine>,
) -> RuleResult<service_recipient::Model> {
    let recipient = own_recipient(db, caller, id).await?;
    ensure(recipient.status != RecipientStatus::Ended, CareError::RecipientEnded)?;
    let mut row: service_recipient::ActiveModel = recipient.into();
    row.care_zone = Set(care_zone.map(CareLine::into_string));
    row.updated_at = Set(Utc::now().fixed_offset());
    let row = row.update(db).await?;
    audit_change(db, caller, &row, "recipient.update", ("ServiceRecipient", row.id)).await?;
    Ok(row)
}

/// The steps of a recipient's service: active ⇄ paused, either → ended (final).
pub fn transition(from: RecipientStatus, to: RecipientStatus) -> Result<RecipientStatus, CareError> {
    use RecipientStatus::*;
    let (ok, allowed) = match from {
        Active => (matches!(to, Paused | Ended), "PAUSED, ENDED"),
        Paused => (matches!(to, Active | Ended), "ACTIVE, ENDED"),
        Ended => (false, "none, it is final"),
    };
    if ok { Ok(to) } else { Err(CareError::IllegalTransition { from, to, allowed }) }
}

/// A case worker pauses, resumes or ends a recipient's service on `on`. Ending it returns each
/// of the recipient's devices to stock.
pub async fn change_status<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
    to: RecipientStatus,
    on: NaiveDate,
) -> RuleResult<service_recipient::Model> {
    Ok(change_status_returning_devices(db, caller, id, to, on).await?.0)
}

/// [`change_status`], also answering the devices it returned to stock (for their
/// announcement, `crate::devices::live`).
pub async fn change_status_returning_devices<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
    to: RecipientStatus,
    on: NaiveDate,
) -> RuleResult<(service_recipient::Model, Vec<crate::devices::model::device::Model>)> {
    let recipient = own_recipient(db, caller, id).await?;
    let from = recipient.status;
    ensure(from != RecipientStatus::Ended, CareError::RecipientEnded)?;
    transition(from, to).map_err(Refusal::Rule)?;
    ensure(on >= recipient.started_on, CareError::BeforeStart { on, started: recipient.started_on })?;
    let mut row: service_recipient::ActiveModel = recipient.into();
    row.status = Set(to);
    match to {
        RecipientStatus::Paused => row.paused_on = Set(Some(on)),
        RecipientStatus::Active => row.paused_on = Set(None),
        RecipientStatus::Ended => row.ended_on = Set(Some(on)),
    }
    row.updated_at = Set(Utc::now().fixed_offset());
    let row = row.update(db).await?;
    record_status(db, caller, &row, on).await?;
    let operation = match to {
        RecipientStatus::Paused => "recipient.pause",
        RecipientStatus::Active => "recipient.resume",
        RecipientStatus::Ended => "recipient.end",
    };
    audit_change(db, caller, &row, operation, ("ServiceRecipient", row.id)).await?;
    let returned = if to == RecipientStatus::Ended {
        crate::devices::rules::return_devices_of(db, caller, row.id).await.map_err(|r| r.widen())?
    } else {
        Vec::new()
    };
    Ok((row, returned))
}

/// A case worker records an assessment of a recipient against a user story of a framework
/// agreement the municipality has a confirmed or delivered call-off under. A user story the
/// municipality has not called off answers `STORY_NOT_CALLED_OFF` whatever procurement it is
/// of, so the check tells nothing about others' procurements.
pub async fn assess<C: ConnectionTrait>(db: &C, caller: &Caller, new: NewAssessment) -> RuleResult<assessment::Model> {
    let recipient = own_recipient(db, caller, new.recipient_id).await?;
    ensure(recipient.status != RecipientStatus::Ended, CareError::RecipientEnded)?;
    let Some(story) = user_story::Entity::find_by_id(new.user_story_id).one(db).await? else {
        return refuse(CareError::StoryNotCalledOff);
    };
    let agreements: Vec<i64> = framework_agreement::Entity::find()
        .filter(framework_agreement::Column::UserStoryId.eq(story.id))
        .all(db)
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    let called_off = call_off::Entity::find()
        .filter(call_off::Column::MunicipalityId.eq(caller.org.id))
        .filter(call_off::Column::AgreementId.is_in(agreements))
        .filter(call_off::Column::Status.is_in([CallOffStatus::Confirmed, CallOffStatus::Delivered]))
        .one(db)
        .await?;
    ensure(called_off.is_some(), CareError::StoryNotCalledOff)?;
    let row = assessment::ActiveModel {
        municipality_id: Set(caller.org.id),
        recipient_id: Set(recipient.id),
        user_story_id: Set(story.id),
        decision: Set(new.decision),
        reason: Set(new.reason.into_string()),
        decided_on: Set(new.decided_on),
        subject: Set(caller.subject.chars().take(200).collect()),
        created_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    audit_change(db, caller, &recipient, "assessment.create", ("Assessment", row.id)).await?;
    Ok(row)
}

/// The values the care migration quarantined for the municipality, oldest first.
pub async fn quarantined<C: ConnectionTrait>(
    db: &C,
    municipality_id: i64,
) -> Result<Vec<quarantined_value::Model>, ApiError> {
    use sea_orm::QueryOrder;
    Ok(quarantined_value::Entity::find()
        .filter(quarantined_value::Column::MunicipalityId.eq(municipality_id))
        .order_by_asc(quarantined_value::Column::Id)
        .all(db)
        .await?)
}

/// Erases the data of recipients whose service ended on or before `ended_by`: the recipient
/// (reference, care zone, dates), its status history and its assessments. The audit log keeps
/// its entries, which name the recipient by its row id only, and device histories keep the same
/// id: neither holds the reference. Returns how many recipients were erased.
pub async fn erase_ended<C: ConnectionTrait>(db: &C, ended_by: NaiveDate) -> Result<u64, ApiError> {
    let ended: Vec<i64> = service_recipient::Entity::find()
        .filter(service_recipient::Column::Status.eq(RecipientStatus::Ended))
        .filter(service_recipient::Column::EndedOn.lte(ended_by))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    for chunk in ended.chunks(500) {
        assessment::Entity::delete_many()
            .filter(assessment::Column::RecipientId.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
        recipient_status_change::Entity::delete_many()
            .filter(recipient_status_change::Column::RecipientId.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
        // A device still linked (none should be: ending returns them to stock) loses the link.
        crate::devices::model::device::Entity::update_many()
            .col_expr(
                crate::devices::model::device::Column::RecipientId,
                sea_orm::sea_query::Expr::value(Option::<i64>::None),
            )
            .filter(crate::devices::model::device::Column::RecipientId.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
        service_recipient::Entity::delete_many()
            .filter(service_recipient::Column::Id.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
    }
    Ok(ended.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecipientStatus::*;

    #[test]
    fn a_service_pauses_resumes_and_ends_once() {
        let allowed = [(Active, Paused), (Active, Ended), (Paused, Active), (Paused, Ended)];
        for from in [Active, Paused, Ended] {
            for to in [Active, Paused, Ended] {
                assert_eq!(transition(from, to).is_ok(), allowed.contains(&(from, to)), "{from:?} → {to:?}");
            }
        }
    }
}
