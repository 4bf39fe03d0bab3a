//! Rules of benefits realisation: who enters and reads indicators, what an indicator and a
//! measurement must hold, and the municipality's assumptions. No GraphQL here.

use chrono::{NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};

use super::model::{benefit_assumption, benefit_indicator, benefit_measurement};
use super::values::Quantity;
use crate::auth::{Caller, Grant, Role};
use crate::errors::{Invalid, RuleResult, RuleViolation, ensure, refuse};
use crate::organizations::OrganizationKind;
use crate::procurement::model::{participant, procurement};
use crate::text::CareText;

/// Most indicators one municipality follows for one procurement.
pub const MAX_INDICATORS: u64 = 50;
/// Most measurements one indicator holds (a weekly figure for nearly ten years).
pub const MAX_MEASUREMENTS: u64 = 500;
/// The dose window a municipality may set, in minutes (up to half a day either side).
pub const DOSE_WINDOW_MINUTES: std::ops::RangeInclusive<i32> = 1..=720;
/// Minutes one home visit may be assumed to take (up to a working day).
pub const MINUTES_PER_VISIT: std::ops::RangeInclusive<i32> = 1..=480;

/// An indicator's name, unit and a measurement's note: free text that never holds a national
/// identity number.
pub type IndicatorName = CareText<300>;
pub type IndicatorUnit = CareText<100>;
pub type MeasurementNote = CareText<2000>;

/// Rule violations of benefits realisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, RuleViolation)]
pub enum BenefitsError {
    #[error(transparent)]
    #[violation(transparent)]
    Invalid(#[from] Invalid),
    #[error("no such procurement")]
    #[violation(field = "procurementId", code = "NOT_FOUND")]
    UnknownProcurement,
    #[error("your municipality does not take part in this procurement")]
    #[violation(field = "procurementId", code = "NOT_TAKING_PART")]
    NotTakingPart,
    #[error("the target date {target} is not after the baseline date {baseline}")]
    #[violation(field = "target.on", code = "TARGET_BEFORE_BASELINE")]
    TargetBeforeBaseline { baseline: NaiveDate, target: NaiveDate },
    #[error("your municipality follows an indicator with this name for this procurement already")]
    #[violation(field = "name", code = "INDICATOR_NAME_TAKEN")]
    NameTaken,
    #[error("your municipality follows {MAX_INDICATORS} indicators for this procurement, the most allowed")]
    #[violation(field = "procurementId", code = "TOO_MANY_INDICATORS")]
    TooManyIndicators,
    #[error("no such benefit indicator")]
    #[violation(field = "indicatorId", code = "NOT_FOUND")]
    UnknownIndicator,
    #[error("the indicator has a measurement on {0} already")]
    #[violation(field = "measuredOn", code = "MEASUREMENT_DATE_TAKEN")]
    DateTaken(NaiveDate),
    #[error("a measurement on {on} is before the indicator's baseline date {baseline}")]
    #[violation(field = "measuredOn", code = "MEASURED_BEFORE_BASELINE")]
    BeforeBaseline { on: NaiveDate, baseline: NaiveDate },
    #[error("a measurement on {0} is in the future")]
    #[violation(field = "measuredOn", code = "MEASURED_IN_FUTURE")]
    InFuture(NaiveDate),
    #[error("the indicator has {MAX_MEASUREMENTS} measurements, the most allowed")]
    #[violation(field = "indicatorId", code = "TOO_MANY_MEASUREMENTS")]
    TooManyMeasurements,
}

/// A value on a date: a baseline or a target.
#[derive(Debug, Clone, Copy)]
pub struct Dated {
    pub value: Quantity,
    pub on: NaiveDate,
}

/// A new indicator, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewIndicator {
    pub procurement_id: i64,
    pub name: IndicatorName,
    pub unit: IndicatorUnit,
    pub baseline: Dated,
    pub target: Dated,
}

/// A new measurement, parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewMeasurement {
    pub indicator_id: i64,
    pub measured_on: NaiveDate,
    pub value: Quantity,
    pub note: Option<MeasurementNote>,
}

/// New assumptions, parsed at the edge.
#[derive(Debug, Clone, Copy)]
pub struct NewAssumptions {
    pub dose_window_minutes: i32,
    pub minutes_per_visit: Option<i32>,
}

impl NewAssumptions {
    pub fn new(dose_window_minutes: i32, minutes_per_visit: Option<i32>) -> Result<NewAssumptions, Invalid> {
        if !DOSE_WINDOW_MINUTES.contains(&dose_window_minutes) {
            return Err(Invalid::new(
                "doseWindowMinutes",
                "INVALID_DOSE_WINDOW",
                format!("the dose window is {} to {} minutes", DOSE_WINDOW_MINUTES.start(), DOSE_WINDOW_MINUTES.end()),
            ));
        }
        if minutes_per_visit.is_some_and(|m| !MINUTES_PER_VISIT.contains(&m)) {
            return Err(Invalid::new(
                "minutesPerVisit",
                "INVALID_MINUTES_PER_VISIT",
                format!("a home visit is {} to {} minutes", MINUTES_PER_VISIT.start(), MINUTES_PER_VISIT.end()),
            ));
        }
        Ok(NewAssumptions { dose_window_minutes, minutes_per_visit })
    }
}

/// Whether the caller reads the benefit figures and indicators of `municipality_id`: the
/// municipality's own roles (any of them), and the programme's `advisor`.
pub fn may_read(grant: &Grant, municipality_id: i64) -> bool {
    let own = grant.organization().is_some_and(|o| o.id == municipality_id && o.kind == OrganizationKind::Municipality);
    (own && grant.roles().next().is_some()) || grant.has_role(Role::Advisor)
}

/// Whether the municipality takes part in the procurement: its lead, a participant or a
/// follower.
async fn takes_part<C: ConnectionTrait>(
    db: &C,
    procurement: &procurement::Model,
    org: i64,
) -> Result<bool, sea_orm::DbErr> {
    if procurement.lead_id == org {
        return Ok(true);
    }
    let rows = participant::Entity::find()
        .filter(participant::Column::ProcurementId.eq(procurement.id))
        .filter(participant::Column::OrganizationId.eq(org))
        .count(db)
        .await?;
    Ok(rows > 0)
}

/// Creates an indicator for the caller's municipality. Roles: `procurement_officer`,
/// `municipality_admin`.
pub async fn create_indicator<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    new: NewIndicator,
) -> RuleResult<benefit_indicator::Model, BenefitsError> {
    let Some(p) = procurement::Entity::find_by_id(new.procurement_id).one(db).await? else {
        return refuse(BenefitsError::UnknownProcurement);
    };
    ensure(takes_part(db, &p, caller.org.id).await?, BenefitsError::NotTakingPart)?;
    ensure(
        new.target.on > new.baseline.on,
        BenefitsError::TargetBeforeBaseline { baseline: new.baseline.on, target: new.target.on },
    )?;
    let mine = benefit_indicator::Entity::find()
        .filter(benefit_indicator::Column::ProcurementId.eq(p.id))
        .filter(benefit_indicator::Column::MunicipalityId.eq(caller.org.id));
    ensure(
        mine.clone().filter(benefit_indicator::Column::Name.eq(new.name.as_str())).count(db).await? == 0,
        BenefitsError::NameTaken,
    )?;
    ensure(mine.count(db).await? < MAX_INDICATORS, BenefitsError::TooManyIndicators)?;
    Ok(benefit_indicator::ActiveModel {
        procurement_id: Set(p.id),
        municipality_id: Set(caller.org.id),
        name: Set(new.name.into_string()),
        unit: Set(new.unit.into_string()),
        baseline_value_e4: Set(new.baseline.value.e4()),
        baseline_on: Set(new.baseline.on),
        target_value_e4: Set(new.target.value.e4()),
        target_on: Set(new.target.on),
        created_by: Set(caller.subject.clone()),
        created_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Adds a measurement to one of the caller's municipality's indicators (another
/// municipality's answers as a missing one). Roles: `procurement_officer`,
/// `municipality_admin`.
pub async fn add_measurement<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    new: NewMeasurement,
    today: NaiveDate,
) -> RuleResult<benefit_indicator::Model, BenefitsError> {
    let indicator = benefit_indicator::Entity::find_by_id(new.indicator_id).one(db).await?;
    let Some(indicator) = indicator.filter(|i| i.municipality_id == caller.org.id) else {
        return refuse(BenefitsError::UnknownIndicator);
    };
    ensure(new.measured_on <= today, BenefitsError::InFuture(new.measured_on))?;
    ensure(
        new.measured_on >= indicator.baseline_on,
        BenefitsError::BeforeBaseline { on: new.measured_on, baseline: indicator.baseline_on },
    )?;
    let existing =
        benefit_measurement::Entity::find().filter(benefit_measurement::Column::IndicatorId.eq(indicator.id));
    ensure(
        existing.clone().filter(benefit_measurement::Column::MeasuredOn.eq(new.measured_on)).count(db).await? == 0,
        BenefitsError::DateTaken(new.measured_on),
    )?;
    ensure(existing.count(db).await? < MAX_MEASUREMENTS, BenefitsError::TooManyMeasurements)?;
    benefit_measurement::ActiveModel {
        indicator_id: Set(indicator.id),
        measured_on: Set(new.measured_on),
        value_e4: Set(new.value.e4()),
        note: Set(new.note.map(CareText::into_string)),
        recorded_by: Set(caller.subject.clone()),
        recorded_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(indicator)
}

/// Sets the caller's municipality's assumptions. Role: `municipality_admin`.
pub async fn set_assumptions<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    new: NewAssumptions,
) -> RuleResult<i64, BenefitsError> {
    let existing = benefit_assumption::Entity::find()
        .filter(benefit_assumption::Column::MunicipalityId.eq(caller.org.id))
        .one(db)
        .await?;
    let now = Utc::now().fixed_offset();
    match existing {
        Some(row) => {
            let mut row: benefit_assumption::ActiveModel = row.into();
            row.dose_window_minutes = Set(new.dose_window_minutes);
            row.minutes_per_visit = Set(new.minutes_per_visit);
            row.updated_by = Set(caller.subject.clone());
            row.updated_at = Set(now);
            row.update(db).await?;
        }
        None => {
            benefit_assumption::ActiveModel {
                municipality_id: Set(caller.org.id),
                dose_window_minutes: Set(new.dose_window_minutes),
                minutes_per_visit: Set(new.minutes_per_visit),
                updated_by: Set(caller.subject.clone()),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await?;
        }
    }
    Ok(caller.org.id)
}
