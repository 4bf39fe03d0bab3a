//! Rules for framework agreements and call-offs, independent of GraphQL.

use chrono::{NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use super::model::{Acquisition, CallOffStatus, RolloutScope, call_off, framework_agreement};
use crate::auth::Caller;
use crate::db::Backend;
use crate::errors::{ApiError, Invalid, RuleViolation, ensure, refuse};
use crate::procurement::model::{ParticipantRole, award, participant, procurement, tender, tender_response};
use crate::procurement::phase::Phase;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, RuleViolation)]
pub enum AgreementError {
    #[error(transparent)]
    #[violation(transparent)]
    Invalid(#[from] Invalid),
    #[error("only the lead municipality's procurement officers may make framework agreements")]
    #[violation(field = "awardId", code = "NOT_LEAD")]
    NotLead,
    #[error("an award already has its framework agreement")]
    #[violation(field = "awardId", code = "AGREEMENT_EXISTS")]
    AgreementExists,
    #[error("followers learn from a procurement but do not buy under it; only participants call off")]
    #[violation(field = "agreementId", code = "FOLLOWER_CANNOT_CALL_OFF")]
    FollowerCannotCallOff,
    #[error("your organisation does not take part in this procurement")]
    #[violation(field = "agreementId", code = "NOT_A_PARTICIPANT")]
    NotAParticipant,
    #[error("call-offs are placed in the implementation phase; the procurement is in {0:?}")]
    #[violation(field = "agreementId", code = "WRONG_PHASE")]
    WrongPhase(Phase),
    #[error("the agreement runs from {starts} to {ends}; {placed} is outside it")]
    #[violation(field = "placedOn", code = "OUTSIDE_AGREEMENT_PERIOD")]
    OutsidePeriod { starts: NaiveDate, ends: NaiveDate, placed: NaiveDate },
    #[error("the agreement has {remaining} units left of its volume cap; {requested} were asked for")]
    #[violation(field = "quantity", code = "OVER_VOLUME_CAP")]
    OverVolume { remaining: i64, requested: i64 },
    #[error("the agreement has no {0:?} price")]
    #[violation(field = "acquisition", code = "NO_PRICE")]
    NoPriceFor(Acquisition),
    #[error("a call-off cannot go from {from:?} to {to:?}")]
    #[violation(field = "status", code = "ILLEGAL_STATUS_CHANGE")]
    IllegalStatus { from: CallOffStatus, to: CallOffStatus },
    #[error("only the {0} may set this status")]
    #[violation(field = "status", code = "WRONG_PARTY")]
    WrongParty(&'static str),
}

/// What an agreement rule returns: its value, or why not.
pub type AgreementResult<T> = crate::errors::RuleResult<T, AgreementError>;

/// An agreement's period, ending after it starts, and its volume cap of at least one unit.
pub struct AgreementTerms {
    starts_on: NaiveDate,
    ends_on: NaiveDate,
    volume_cap: i32,
}

impl AgreementTerms {
    pub fn new(starts_on: NaiveDate, ends_on: NaiveDate, volume_cap: i32) -> Result<AgreementTerms, Invalid> {
        if ends_on <= starts_on {
            return Err(Invalid::new("endsOn", "INVALID_PERIOD", "the agreement must end after it starts"));
        }
        if volume_cap < 1 {
            return Err(Invalid::new("volumeCap", "INVALID_VOLUME", "the volume cap must be at least 1"));
        }
        Ok(AgreementTerms { starts_on, ends_on, volume_cap })
    }
}

/// The framework agreement that follows an award, at the awarded response's prices.
pub async fn create_agreement<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    award_id: i64,
    terms: AgreementTerms,
) -> AgreementResult<framework_agreement::Model> {
    let Some(award) = award::Entity::find_by_id(award_id).one(db).await? else {
        return refuse(Invalid::new("awardId", "NOT_FOUND", "no such award"));
    };
    let p = procurement::Entity::find_by_id(award.procurement_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("award without procurement"))?;
    ensure(p.lead_id == caller.org.id, AgreementError::NotLead)?;
    let existing =
        framework_agreement::Entity::find().filter(framework_agreement::Column::AwardId.eq(award.id)).one(db).await?;
    ensure(existing.is_none(), AgreementError::AgreementExists)?;
    let response = tender_response::Entity::find_by_id(award.tender_response_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("award without response"))?;
    let t = tender::Entity::find_by_id(response.tender_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("response without tender"))?;
    let row = framework_agreement::ActiveModel {
        award_id: Set(award.id),
        procurement_id: Set(p.id),
        supplier_id: Set(t.supplier_id),
        user_story_id: Set(award.user_story_id),
        starts_on: Set(terms.starts_on),
        ends_on: Set(terms.ends_on),
        purchase_price_ore: Set(response.purchase_price_ore),
        lease_price_ore_per_month: Set(response.lease_price_ore_per_month),
        volume_cap: Set(terms.volume_cap),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// Units of an agreement's volume taken by call-offs that are not cancelled.
pub fn used_volume(call_offs: &[call_off::Model]) -> i64 {
    call_offs.iter().filter(|c| c.status.uses_volume()).map(|c| i64::from(c.quantity)).sum()
}

/// A call-off of at least one unit, made as DRAFT or PLACED.
pub struct NewCallOff {
    pub agreement_id: i64,
    pub acquisition: Acquisition,
    pub scope: RolloutScope,
    pub quantity: CallOffQuantity,
    pub placed_on: NaiveDate,
    pub status: OpeningStatus,
}

/// The units a call-off takes: at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOffQuantity(i32);

impl CallOffQuantity {
    pub fn parse(quantity: i32) -> Result<CallOffQuantity, Invalid> {
        if quantity < 1 {
            return Err(Invalid::new("quantity", "INVALID_QUANTITY", "the quantity must be at least 1"));
        }
        Ok(CallOffQuantity(quantity))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// The status a call-off is made in: DRAFT or PLACED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningStatus(CallOffStatus);

impl OpeningStatus {
    pub fn parse(status: CallOffStatus) -> Result<OpeningStatus, Invalid> {
        if !matches!(status, CallOffStatus::Draft | CallOffStatus::Placed) {
            return Err(Invalid::new("status", "INVALID_STATUS", "a new call-off is DRAFT or PLACED"));
        }
        Ok(OpeningStatus(status))
    }
}

/// A participating municipality calls off under an agreement, within its period and volume.
pub async fn create_call_off<C: ConnectionTrait>(
    db: &C,
    backend: Backend,
    caller: &Caller,
    new: NewCallOff,
) -> AgreementResult<call_off::Model> {
    // Lock the agreement row on PostgreSQL so two call-offs cannot both take the last units;
    // SQLite writes are already serialised through the one write connection.
    let mut query = framework_agreement::Entity::find_by_id(new.agreement_id);
    if backend == Backend::Postgres {
        query = query.lock_exclusive();
    }
    let Some(agreement) = query.one(db).await? else {
        return refuse(Invalid::new("agreementId", "NOT_FOUND", "no such framework agreement"));
    };
    let p = procurement::Entity::find_by_id(agreement.procurement_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("agreement without procurement"))?;
    let membership = participant::Entity::find()
        .filter(participant::Column::ProcurementId.eq(p.id))
        .filter(participant::Column::OrganizationId.eq(caller.org.id))
        .one(db)
        .await?;
    match membership.map(|m| m.role) {
        None => return refuse(AgreementError::NotAParticipant),
        Some(ParticipantRole::Follower) => return refuse(AgreementError::FollowerCannotCallOff),
        Some(ParticipantRole::Lead | ParticipantRole::Participant) => {}
    }
    ensure(p.phase == Phase::Implementation, AgreementError::WrongPhase(p.phase))?;
    ensure(
        (agreement.starts_on..=agreement.ends_on).contains(&new.placed_on),
        AgreementError::OutsidePeriod { starts: agreement.starts_on, ends: agreement.ends_on, placed: new.placed_on },
    )?;
    let has_price = match new.acquisition {
        Acquisition::Buy => agreement.purchase_price_ore.is_some(),
        Acquisition::Lease => agreement.lease_price_ore_per_month.is_some(),
    };
    ensure(has_price, AgreementError::NoPriceFor(new.acquisition))?;
    let existing = call_off::Entity::find().filter(call_off::Column::AgreementId.eq(agreement.id)).all(db).await?;
    let remaining = i64::from(agreement.volume_cap) - used_volume(&existing);
    ensure(
        i64::from(new.quantity.get()) <= remaining,
        AgreementError::OverVolume { remaining, requested: i64::from(new.quantity.get()) },
    )?;
    let row = call_off::ActiveModel {
        agreement_id: Set(agreement.id),
        municipality_id: Set(caller.org.id),
        acquisition: Set(new.acquisition),
        scope: Set(new.scope),
        quantity: Set(new.quantity.get()),
        status: Set(new.status.0),
        placed_on: Set(new.placed_on),
        created_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// Who moves a call-off along: the municipality places and cancels, the supplier confirms and
/// delivers.
pub async fn change_status<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    call_off_id: i64,
    to: CallOffStatus,
) -> AgreementResult<call_off::Model> {
    let not_found = || refuse(Invalid::new("callOffId", "NOT_FOUND", "no such call-off"));
    let Some(row) = call_off::Entity::find_by_id(call_off_id).one(db).await? else {
        return not_found();
    };
    let agreement = framework_agreement::Entity::find_by_id(row.agreement_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("call-off without agreement"))?;
    // A call-off the caller may not read answers like a missing one: its status, and that it
    // exists, are the placing municipality's, the supplier's and the lead's business only.
    let party = row.municipality_id == caller.org.id || agreement.supplier_id == caller.org.id;
    if !party {
        let lead = procurement::Entity::find_by_id(agreement.procurement_id)
            .one(db)
            .await?
            .is_some_and(|p| p.lead_id == caller.org.id);
        if !lead {
            return not_found();
        }
    }
    use CallOffStatus::*;
    let legal = matches!(
        (row.status, to),
        (Draft, Placed) | (Placed, Confirmed) | (Confirmed, Delivered) | (Draft | Placed | Confirmed, Cancelled)
    );
    ensure(legal, AgreementError::IllegalStatus { from: row.status, to })?;
    let by_municipality = matches!(to, Placed | Cancelled);
    if by_municipality {
        ensure(
            row.municipality_id == caller.org.id,
            AgreementError::WrongParty("municipality that placed the call-off"),
        )?;
    } else {
        ensure(agreement.supplier_id == caller.org.id, AgreementError::WrongParty("agreement's supplier"))?;
    }
    let mut active: call_off::ActiveModel = row.into();
    active.status = Set(to);
    Ok(active.update(db).await?)
}
