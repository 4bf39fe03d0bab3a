//! GraphQL face of organisations.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use velferd_macros::{connections, row_fields};

use super::identifiers::{CountyName, MunicipalityNumber, OrgNumber, OrganizationName};
use super::model::{self, OrganizationKind};
use super::service::{self, MunicipalityFacts, NewOrganization, OrganizationError, PopulationFigure};
use crate::auth::Role;
use crate::errors::Invalid;
use crate::errors::{ApiError, Refusal};
use crate::graphql::connection::{Cursor, OrderDirection, PageArgs, SortKey, TotalCount, page_sorted};
use crate::graphql::context::{load_existing, load_one, require_role, state};
use crate::graphql::errors::UserError;
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, global_id, input_row};
use crate::text::Text;

// `Query`, `Mutation` and `Subscription` name the area's roots for the area table, `crate::areas!`.
pub use self::OrganizationMutation as Mutation;
pub use self::OrganizationQuery as Query;
pub use self::OrganizationSubscription as Subscription;

/// A municipality, supplier, programme, response centre or the platform operator.
#[derive(Clone, Debug)]
pub struct Organization(pub model::Model);

impl Organization {
    /// The organisation a row refers to, through the request's DataLoader.
    pub async fn by_id(ctx: &Context<'_>, id: i64) -> Result<Organization> {
        Ok(Organization(load_existing(ctx, crate::graphql::loaders::OrganizationById(id), "organisation").await?))
    }

    /// The organisation an optional reference names; `None` when it names none.
    pub async fn by_optional_id(ctx: &Context<'_>, id: Option<i64>) -> Result<Option<Organization>> {
        Ok(match id {
            Some(id) => Some(Organization::by_id(ctx, id).await?),
            None => None,
        })
    }
}

/// Organisations are public.
impl NodeObject for Organization {
    async fn fetch(ctx: &Context<'_>, row_id: i64) -> Result<Option<Organization>, ApiError> {
        Ok(load_one(ctx, crate::graphql::loaders::OrganizationById(row_id)).await?.map(Organization))
    }
}

#[row_fields]
#[Object]
impl Organization {
    /// Opaque global id (Relay `Node`).
    pub async fn id(&self) -> ID;

    async fn kind(&self) -> OrganizationKind;

    async fn name(&self) -> &str;

    /// Organisation number in the Central Coordinating Register for Legal Entities (9 digits,
    /// modulus-11 checked). Null only for reference data whose number no public source gave.
    async fn org_number(&self) -> Option<&str>;

    /// Municipality number (kommunenummer) as it stood when recorded; municipalities only.
    async fn municipality_number(&self) -> Option<&str>;

    /// County (fylke) as it stood when recorded; municipalities only.
    async fn county(&self) -> Option<&str>;

    /// Inhabitants, as counted in `populationYear`. Null when no public figure was found:
    /// Velferd never estimates.
    async fn population(&self) -> Option<i64>;

    /// The year (1 January) `population` was counted.
    async fn population_year(&self) -> Option<i32>;

    async fn created_at(&self) -> DateTime<Utc>;
}

#[derive(InputObject, Default)]
pub struct OrganizationFilter {
    pub kind: Option<OrganizationKind>,
    /// Exact county name, e.g. "Vestfold".
    pub county: Option<String>,
    /// Part of the name, ignoring ASCII case.
    pub name_contains: Option<String>,
}

#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OrganizationOrderField {
    #[default]
    Name,
    /// The order organisations were registered in.
    CreatedAt,
}

#[derive(InputObject, Default)]
pub struct OrganizationOrder {
    #[graphql(default)]
    pub field: OrganizationOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

pub type OrganizationConnection = Connection<Cursor, Organization, TotalCount>;

#[derive(Default)]
pub struct OrganizationQuery;

#[connections]
#[Object]
impl OrganizationQuery {
    /// All organisations, public to everyone: these are facts from public registers.
    async fn organizations(
        &self,
        ctx: &Context<'_>,
        page: PageArgs,
        filter: Option<OrganizationFilter>,
        order_by: Option<OrganizationOrder>,
    ) -> Result<OrganizationConnection> {
        let page = page.parse()?;
        let filter = filter.unwrap_or_default();
        let order = order_by.unwrap_or_default();
        let mut select = model::Entity::find();
        if let Some(kind) = filter.kind {
            select = select.filter(model::Column::Kind.eq(kind));
        }
        if let Some(county) = filter.county {
            select = select.filter(model::Column::County.eq(county.trim()));
        }
        if let Some(part) = filter.name_contains {
            let pattern = format!("%{}%", escape_like(&part.to_lowercase()));
            select = select.filter(
                Expr::expr(Func::lower(Expr::col(model::Column::Name)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
            );
        }
        let sort = match order.field {
            OrganizationOrderField::Name => SortKey::text(model::Column::Name),
            OrganizationOrderField::CreatedAt => SortKey::integer(model::Column::Id),
        };
        page_sorted(ctx, select, sort, model::Column::Id, order.direction, &page, |row| {
            let key = match order.field {
                OrganizationOrderField::Name => serde_json::json!(row.name),
                OrganizationOrderField::CreatedAt => serde_json::json!(row.id),
            };
            (Cursor { key, id: row.id }, Organization(row))
        })
        .await
    }

    /// The organisation with this organisation number, if registered.
    async fn organization(&self, ctx: &Context<'_>, org_number: String) -> Result<Option<Organization>> {
        let number: OrgNumber = org_number
            .parse()
            .map_err(|e: super::identifiers::OrgNumberError| ApiError::BadUserInput(e.to_string()))?;
        Ok(service::find_by_org_number(state(ctx).db.read(), number).await?.map(Organization))
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Registers an organisation. Municipalities need their municipality number and county.
#[derive(InputObject)]
pub struct OrganizationCreateInput {
    pub kind: OrganizationKind,
    pub name: String,
    /// Nine digits, modulus-11 checked; spaces between groups are accepted.
    pub org_number: String,
    pub municipality_number: Option<String>,
    pub county: Option<String>,
    /// Inhabitants, with the year they were counted in `populationYear`.
    pub population: Option<i32>,
    pub population_year: Option<i32>,
}

impl OrganizationCreateInput {
    /// Parses every field, reporting every problem at once so a form can mark them all.
    fn parse(self) -> std::result::Result<NewOrganization, Vec<OrganizationError>> {
        let mut errors = Vec::new();
        if self.kind == OrganizationKind::Operator {
            errors.push(OrganizationError::OperatorReserved);
        }
        let name = self
            .name
            .parse::<OrganizationName>()
            .map_err(|e| errors.push(OrganizationError::InvalidName(e.to_string())))
            .ok();
        let org_number = self
            .org_number
            .parse::<OrgNumber>()
            .map_err(|e| errors.push(OrganizationError::InvalidOrgNumber(e.to_string())))
            .ok();
        let number = self.municipality_number.as_deref().map(|n| {
            n.parse::<MunicipalityNumber>()
                .map_err(|e| errors.push(OrganizationError::InvalidMunicipalityNumber(e.to_string())))
        });
        let county = self
            .county
            .as_deref()
            .map(|c| c.parse::<CountyName>().map_err(|e| errors.push(OrganizationError::InvalidCounty(e.to_string()))));
        let population = match (self.population, self.population_year) {
            (None, None) => None,
            (Some(n), Some(year)) if n >= 0 && (1800..=2100).contains(&year) => {
                Some(PopulationFigure { inhabitants: n as u32, year })
            }
            (Some(_), Some(_)) => {
                errors.push(OrganizationError::InvalidPopulation(
                    "population must not be negative and its year must be between 1800 and 2100".into(),
                ));
                None
            }
            _ => {
                errors.push(OrganizationError::InvalidPopulation("give population and populationYear together".into()));
                None
            }
        };
        let is_municipality = self.kind == OrganizationKind::Municipality;
        let municipality = match (number, county) {
            (Some(Ok(number)), Some(Ok(county))) if is_municipality => Some(MunicipalityFacts { number, county }),
            (None, None) if is_municipality => {
                errors.push(OrganizationError::MunicipalityFactsMissing);
                None
            }
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) if is_municipality => {
                errors.push(OrganizationError::MunicipalityFactsMissing);
                None
            }
            _ if !is_municipality => {
                errors.push(OrganizationError::MunicipalityFactsOnNonMunicipality);
                None
            }
            _ => None, // a parse error is already recorded
        };
        if !is_municipality && population.is_some() {
            errors.push(OrganizationError::MunicipalityFactsOnNonMunicipality);
        }
        match (name, org_number) {
            (Some(name), Some(org_number)) if errors.is_empty() => {
                Ok(NewOrganization { kind: self.kind, name, org_number: Some(org_number), municipality, population })
            }
            _ => Err(errors),
        }
    }
}

#[derive(SimpleObject)]
pub struct OrganizationCreatePayload {
    /// The new organisation; null when `userErrors` is not empty.
    pub organization: Option<Organization>,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct OrganizationMutation;

#[Object]
impl OrganizationMutation {
    /// Registers an organisation (any kind but `OPERATOR`, which is configured). Requires the
    /// `admin` role.
    async fn organization_create(
        &self,
        ctx: &Context<'_>,
        input: OrganizationCreateInput,
    ) -> Result<OrganizationCreatePayload> {
        require_role(ctx, Role::Admin, "register organisations")?;
        let rejected = |errors: Vec<OrganizationError>| OrganizationCreatePayload {
            organization: None,
            user_errors: errors.iter().map(UserError::from_violation).collect(),
        };
        let new = match input.parse() {
            Ok(new) => new,
            Err(errors) => return Ok(rejected(errors)),
        };
        let app = state(ctx);
        match service::insert(app.db.write(), new).await {
            Ok(model) => {
                let organization = Organization(model);
                app.events.organization_created(organization.clone());
                Ok(OrganizationCreatePayload { organization: Some(organization), user_errors: vec![] })
            }
            Err(Refusal::Rule(error)) => Ok(rejected(vec![error])),
            Err(Refusal::Fault(fault)) => Err(fault.into()),
        }
    }

    /// Revokes, before they expire, every token of one subject of one organisation issued up
    /// to now (`subject` with `orgNumber` or `organizationId`), or one token by its id
    /// (`tokenId`, its `jti` claim): for a token that leaked. A subject's tokens issued later
    /// work. Every server instance refuses them within seconds (401 `token has been revoked`).
    /// Requires the `admin` role.
    async fn token_revoke(&self, ctx: &Context<'_>, input: TokenRevokeInput) -> Result<TokenRevokePayload> {
        let admin = require_role(ctx, Role::Admin, "revoke tokens")?;
        let note = |reason: Option<Text<500>>| super::revocations::RevocationNote {
            reason: reason.map(Text::into_string),
            revoked_by: admin.subject.clone(),
        };
        let result: crate::errors::RuleResult<_, Invalid> = async {
            let reason = Text::<500>::parse_optional("reason", input.reason.as_deref())?;
            let app = state(ctx);
            let named = input.org_number.is_some() || input.organization_id.is_some() || input.subject.is_some();
            if let Some(token_id) = input.token_id {
                if named {
                    return Err(Invalid::new(
                        "tokenId",
                        "INVALID_REVOCATION",
                        "revoke one token by `tokenId`, or a subject's tokens by `subject` and its organisation; not both",
                    )
                    .into());
                }
                let token_id = Text::<200>::parse("tokenId", &token_id)?;
                return Ok(super::revocations::revoke_token_id(
                    app.db.write(),
                    &app.revocations,
                    token_id.as_str(),
                    note(reason),
                )
                .await?);
            }
            let subject = Text::<200>::parse("subject", input.subject.as_deref().unwrap_or_default())?;
            let (org_number, organization_id) = match (input.org_number, input.organization_id) {
                (Some(number), None) => {
                    let number: OrgNumber = number.parse().map_err(|e: super::identifiers::OrgNumberError| {
                        Invalid::new("orgNumber", "INVALID_ORG_NUMBER", e.to_string())
                    })?;
                    let registered = service::find_by_org_number(app.db.write(), number).await?;
                    (Some(number), registered.map(|o| o.id))
                }
                (None, Some(id)) => {
                    let row = input_row(&id, NodeType::Organization, "organizationId")?;
                    let org = service::find_by_id(app.db.write(), row)
                        .await?
                        .ok_or_else(|| Invalid::not_found("organizationId", "no such organisation"))?;
                    let number = org.org_number.as_deref().and_then(|n| n.parse::<OrgNumber>().ok());
                    (number, Some(org.id))
                }
                _ => {
                    return Err(Invalid::new(
                        "orgNumber",
                        "INVALID_REVOCATION",
                        "name the tokens' organisation by exactly one of `orgNumber` and `organizationId`",
                    )
                    .into());
                }
            };
            Ok(super::revocations::revoke_subject(
                app.db.write(),
                &app.revocations,
                org_number,
                organization_id,
                subject.as_str(),
                note(reason),
            )
            .await?)
        }
        .await;
        Ok(TokenRevokePayload::from_rule(result, TokenRevocation::from)?)
    }
}

crate::graphql::errors::payload!(TokenRevokePayload, revocation: TokenRevocation, "Result of `tokenRevoke`.");

/// What to revoke: `tokenId` alone, or `subject` with exactly one of `orgNumber` and
/// `organizationId`.
#[derive(InputObject)]
pub struct TokenRevokeInput {
    /// The organisation number the tokens name (their `org` claim). Tokens naming the same
    /// registered organisation by `oid` are revoked too.
    pub org_number: Option<String>,
    /// The organisation the tokens act for (`Organization.id`, their `oid` claim), for one
    /// without an organisation number. Tokens naming it by `org` are revoked too.
    pub organization_id: Option<ID>,
    /// The tokens' subject (their `sub` claim), e.g. a machine's client id.
    pub subject: Option<String>,
    /// One token's id (its `jti` claim).
    pub token_id: Option<String>,
    /// Why, for whoever reads the revocation later.
    pub reason: Option<String>,
}

/// A revocation: every token of one subject of one organisation issued up to `issuedUpTo`, or
/// the one token `tokenId`, is refused.
#[derive(SimpleObject)]
pub struct TokenRevocation {
    /// The organisation's number, when it has one.
    pub org_number: Option<String>,
    /// The organisation, when it is registered.
    pub organization_id: Option<ID>,
    pub subject: Option<String>,
    pub issued_up_to: Option<DateTime<Utc>>,
    pub token_id: Option<String>,
    pub reason: Option<String>,
    pub revoked_at: DateTime<Utc>,
}

impl From<super::revocations::Revoked> for TokenRevocation {
    fn from(row: super::revocations::Revoked) -> Self {
        TokenRevocation {
            issued_up_to: row.issued_up_to.map(|t| DateTime::from_timestamp(t, 0).unwrap_or_default()),
            org_number: row.org_number,
            organization_id: row.organization_id.map(|id| global_id(NodeType::Organization, id)),
            subject: row.subject,
            token_id: row.token_id,
            reason: row.reason,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(Default)]
pub struct OrganizationSubscription;

#[Subscription]
impl OrganizationSubscription {
    /// Organisations as they are registered (on this server instance).
    async fn organization_created(&self, ctx: &Context<'_>) -> impl Stream<Item = Organization> + use<> {
        let receiver = state(ctx).events.subscribe_organizations();
        crate::app::stream_of(receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: OrganizationKind) -> OrganizationCreateInput {
        OrganizationCreateInput {
            kind,
            name: "Larvik kommune".into(),
            org_number: "974760673".into(),
            municipality_number: Some("0712".into()),
            county: Some("Vestfold".into()),
            population: Some(46_000),
            population_year: Some(2018),
        }
    }

    #[test]
    fn a_complete_municipality_parses() {
        assert!(input(OrganizationKind::Municipality).parse().is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut bad = input(OrganizationKind::Municipality);
        bad.name = " ".into();
        bad.org_number = "123".into();
        bad.county = None;
        let errors = bad.parse().unwrap_err();
        let codes: Vec<_> = errors.iter().map(|e| UserError::from_violation(e).code).collect();
        assert_eq!(codes, ["INVALID_NAME", "INVALID_ORG_NUMBER", "MUNICIPALITY_FACTS_MISSING"]);
    }

    #[test]
    fn suppliers_have_no_municipality_facts() {
        let errors = input(OrganizationKind::Supplier).parse().unwrap_err();
        assert!(errors.contains(&OrganizationError::MunicipalityFactsOnNonMunicipality));
    }
}
