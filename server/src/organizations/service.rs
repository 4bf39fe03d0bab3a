//! The rules for organisations, independent of GraphQL.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};

use super::identifiers::{CountyName, MunicipalityNumber, OrgNumber, OrganizationName};
use super::model::{self, OrganizationKind};
use crate::errors::{ApiError, Refusal, RuleResult, RuleViolation};

/// The facts only a municipality has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MunicipalityFacts {
    pub number: MunicipalityNumber,
    pub county: CountyName,
}

/// A population figure is only meaningful with the year it was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PopulationFigure {
    pub inhabitants: u32,
    pub year: i32,
}

/// An organisation ready to be stored: every field already parsed, and the municipality facts
/// present exactly when the kind is a municipality.
#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub kind: OrganizationKind,
    pub name: OrganizationName,
    /// `None` only for reference data whose number no public source gave us.
    pub org_number: Option<OrgNumber>,
    pub municipality: Option<MunicipalityFacts>,
    pub population: Option<PopulationFigure>,
}

/// Business-rule violations when registering an organisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrganizationError {
    #[error("{0}")]
    InvalidOrgNumber(String),
    #[error("organisation number {0} is already registered")]
    OrgNumberTaken(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidMunicipalityNumber(String),
    #[error("{0}")]
    InvalidCounty(String),
    #[error("a municipality needs its municipality number and county")]
    MunicipalityFactsMissing,
    #[error("only municipalities have a municipality number, county or population")]
    MunicipalityFactsOnNonMunicipality,
    #[error("{0}")]
    InvalidPopulation(String),
    #[error("the platform operator is configured (VELFERD_OPERATOR_*), not registered")]
    OperatorReserved,
}

impl RuleViolation for OrganizationError {
    fn field(&self) -> &'static str {
        match self {
            OrganizationError::InvalidOrgNumber(_) | OrganizationError::OrgNumberTaken(_) => "orgNumber",
            OrganizationError::InvalidName(_) => "name",
            OrganizationError::InvalidMunicipalityNumber(_) => "municipalityNumber",
            OrganizationError::InvalidCounty(_) => "county",
            OrganizationError::MunicipalityFactsMissing => "municipalityNumber",
            OrganizationError::MunicipalityFactsOnNonMunicipality => "kind",
            OrganizationError::InvalidPopulation(_) => "population",
            OrganizationError::OperatorReserved => "kind",
        }
    }

    fn code(&self) -> &'static str {
        match self {
            OrganizationError::InvalidOrgNumber(_) => "INVALID_ORG_NUMBER",
            OrganizationError::OrgNumberTaken(_) => "ORG_NUMBER_TAKEN",
            OrganizationError::InvalidName(_) => "INVALID_NAME",
            OrganizationError::InvalidMunicipalityNumber(_) => "INVALID_MUNICIPALITY_NUMBER",
            OrganizationError::InvalidCounty(_) => "INVALID_COUNTY",
            OrganizationError::MunicipalityFactsMissing => "MUNICIPALITY_FACTS_MISSING",
            OrganizationError::MunicipalityFactsOnNonMunicipality => "NOT_A_MUNICIPALITY",
            OrganizationError::InvalidPopulation(_) => "INVALID_POPULATION",
            OrganizationError::OperatorReserved => "OPERATOR_RESERVED",
        }
    }
}

/// Stores a new organisation. A duplicate organisation number is a business error, also when
/// two requests race for it (the unique index decides).
pub async fn insert<C: ConnectionTrait>(db: &C, new: NewOrganization) -> RuleResult<model::Model, OrganizationError> {
    if let Some(number) = new.org_number
        && find_by_org_number(db, number).await?.is_some()
    {
        return Err(Refusal::Rule(OrganizationError::OrgNumberTaken(number.to_string())));
    }
    let row = model::ActiveModel {
        kind: Set(new.kind),
        name: Set(new.name.as_str().to_string()),
        org_number: Set(new.org_number.map(|n| n.to_string())),
        municipality_number: Set(new.municipality.as_ref().map(|m| m.number.to_string())),
        county: Set(new.municipality.as_ref().map(|m| m.county.as_str().to_string())),
        population: Set(new.population.map(|p| i64::from(p.inhabitants))),
        population_year: Set(new.population.map(|p| p.year)),
        created_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    };
    match row.insert(db).await {
        Ok(model) => Ok(model),
        Err(e) if matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => Err(Refusal::Rule(
            OrganizationError::OrgNumberTaken(new.org_number.map(|n| n.to_string()).unwrap_or_default()),
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn find_by_org_number<C: ConnectionTrait>(
    db: &C,
    number: OrgNumber,
) -> Result<Option<model::Model>, ApiError> {
    Ok(model::Entity::find().filter(model::Column::OrgNumber.eq(number.to_string())).one(db).await?)
}

pub async fn find_by_id<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<model::Model>, ApiError> {
    Ok(model::Entity::find_by_id(id).one(db).await?)
}

/// Why the platform operator's organisation could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(
        "VELFERD_OPERATOR_ORG_NUMBER is {configured}, but the platform operator is registered with {registered}; \
         set the registered number (changing it would void every admin token)"
    )]
    NumberMismatch { configured: OrgNumber, registered: String },
    #[error("VELFERD_OPERATOR_ORG_NUMBER {0} is already registered to {1}, which is not the platform operator")]
    NumberTaken(OrgNumber, String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Creates the platform operator's organisation if there is none, gives it the configured
/// organisation number if it has none yet, and keeps its name as configured. A configured
/// number other than the one it is registered with is refused: admin tokens name that number.
pub async fn ensure_operator<C: ConnectionTrait>(
    db: &C,
    name: &OrganizationName,
    number: Option<OrgNumber>,
) -> Result<model::Model, OperatorError> {
    let existing = model::Entity::find().filter(model::Column::Kind.eq(OrganizationKind::Operator)).one(db).await?;
    if let Some(number) = number {
        let holder = model::Entity::find().filter(model::Column::OrgNumber.eq(number.to_string())).one(db).await?;
        if let Some(holder) = holder.filter(|h| h.kind != OrganizationKind::Operator) {
            return Err(OperatorError::NumberTaken(number, holder.name));
        }
    }
    let Some(existing) = existing else {
        let row = model::ActiveModel {
            kind: Set(OrganizationKind::Operator),
            name: Set(name.as_str().to_string()),
            org_number: Set(number.map(|n| n.to_string())),
            created_at: Set(Utc::now().fixed_offset()),
            ..Default::default()
        };
        return Ok(row.insert(db).await?);
    };
    match (&existing.org_number, number) {
        (Some(registered), Some(configured)) if *registered != configured.to_string() => {
            return Err(OperatorError::NumberMismatch { configured, registered: registered.clone() });
        }
        _ => {}
    }
    let unnumbered = existing.org_number.is_none() && number.is_some();
    if !unnumbered && existing.name == name.as_str() {
        return Ok(existing);
    }
    let mut row: model::ActiveModel = existing.into();
    row.name = Set(name.as_str().to_string());
    if unnumbered {
        row.org_number = Set(number.map(|n| n.to_string()));
    }
    Ok(row.update(db).await?)
}

/// Organisations other than the platform operator, which every server creates at start: a
/// database holding only the operator holds no data yet.
pub async fn count_members<C: ConnectionTrait>(db: &C) -> Result<u64, ApiError> {
    Ok(model::Entity::find().filter(model::Column::Kind.ne(OrganizationKind::Operator)).count(db).await?)
}
