//! The GraphQL schema: roots merged from the domain areas, Relay `Node`, limits and cost.

pub mod connection;
pub mod errors;
pub mod limits;
pub mod loaders;
pub mod relay;
pub mod session;

use async_graphql::{
    Context, Interface, MergedObject, MergedSubscription, Object, Result, Schema, SimpleObject, ID,
};

use crate::app::AppState;
use crate::auth::{Actor, Role};
use crate::config::{GraphqlLimits, Profile};
use crate::organizations::{
    self, Organization, OrganizationMutation, OrganizationQuery, OrganizationSubscription,
};
use crate::agreements::graphql::{AgreementMutation, CallOff, FrameworkAgreement};
use crate::devices::graphql::{
    Adapter, DeadLetter, Device, DeviceEvent, DeviceMutation, DeviceProduct, DeviceQuery, SigningKey,
};
use crate::learning::graphql::{
    ExperienceReport, Gathering, LearningMutation, LearningNetwork, LearningQuery, ProcurementReuse,
};
use crate::procurement::graphql::{
    Award, Procurement, ProcurementMutation, ProcurementQuery, Tender, TenderResponse, UserStory,
};
use relay::{NodeType, parse_global_id};

pub type VelferdSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(NodeQuery, ViewerQuery, OrganizationQuery, ProcurementQuery, LearningQuery, DeviceQuery);

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(OrganizationMutation, ProcurementMutation, AgreementMutation, LearningMutation, DeviceMutation);

#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(OrganizationSubscription, crate::devices::graphql::DeviceSubscription);

/// An object with a global id, fetchable with `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
pub enum Node {
    Organization(Organization),
    Procurement(Procurement),
    UserStory(UserStory),
    Tender(Tender),
    TenderResponse(TenderResponse),
    Award(Award),
    FrameworkAgreement(FrameworkAgreement),
    CallOff(CallOff),
    LearningNetwork(LearningNetwork),
    Gathering(Gathering),
    ExperienceReport(ExperienceReport),
    ProcurementReuse(ProcurementReuse),
    DeviceProduct(DeviceProduct),
    Adapter(Adapter),
    SigningKey(SigningKey),
    Device(Device),
    DeviceEvent(DeviceEvent),
    DeadLetter(DeadLetter),
}

/// Builds the schema. `state` is `None` only for printing the SDL.
pub fn build_schema(state: Option<AppState>, profile: Profile, limits: &GraphqlLimits) -> VelferdSchema {
    let mut builder = Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
        .extension(limits::QueryLimits { max_depth: limits.max_depth, max_complexity: limits.max_complexity });
    if let Some(state) = state {
        builder = builder.data(state);
    }
    if profile == Profile::Production {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL clients build against; `schema/velferd.graphql` holds a copy.
pub fn sdl() -> String {
    let limits = GraphqlLimits {
        max_depth: 1,
        max_complexity: 1,
        max_batch: 1,
        max_body_bytes: 1,
        batch_window: std::time::Duration::ZERO,
    };
    build_schema(None, Profile::Development, &limits).sdl()
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// The request's session; every execution path (HTTP, WebSocket) inserts one.
pub(crate) fn session<'a>(ctx: &Context<'a>) -> &'a session::Session {
    ctx.data_unchecked::<std::sync::Arc<session::Session>>()
}

pub(crate) fn actor<'a>(ctx: &Context<'a>) -> &'a Actor {
    &session(ctx).actor
}

/// Loads a row another row refers to: its absence is a broken reference, an internal error.
pub(crate) async fn load_existing<K>(
    ctx: &Context<'_>,
    key: K,
    what: &str,
) -> std::result::Result<<loaders::DbLoader as async_graphql::dataloader::Loader<K>>::Value, errors::ApiError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    loaders::DbLoader: async_graphql::dataloader::Loader<K, Error = std::sync::Arc<sea_orm::DbErr>>,
{
    load_one(ctx, key).await?.ok_or_else(|| errors::ApiError::internal(format!("dangling reference to {what}")))
}

/// Loads one value through the request's DataLoader.
pub(crate) async fn load_one<K>(
    ctx: &Context<'_>,
    key: K,
) -> std::result::Result<Option<<loaders::DbLoader as async_graphql::dataloader::Loader<K>>::Value>, errors::ApiError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    loaders::DbLoader: async_graphql::dataloader::Loader<K, Error = std::sync::Arc<sea_orm::DbErr>>,
{
    session(ctx).loader.load_one(key).await.map_err(errors::ApiError::internal)
}

/// The caller, if it holds `role`: anonymous callers are told to authenticate, others that
/// their roles do not allow `what`.
pub(crate) fn require_role<'a>(
    ctx: &Context<'a>,
    role: Role,
    what: &str,
) -> std::result::Result<&'a crate::auth::Principal, errors::ApiError> {
    match actor(ctx).principal() {
        None => Err(errors::ApiError::Unauthenticated(format!("sign in with a token to {what}"))),
        Some(p) if p.roles.contains(&role) => Ok(p),
        Some(_) => Err(errors::ApiError::Forbidden(format!(
            "your roles do not allow you to {what} (needs `{role}`)"
        ))),
    }
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Fetches any object by its global id. Null when no object has that id or you may not see
    /// it — the two are deliberately indistinguishable.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        resolve_node(ctx, &id).await
    }

    /// Fetches objects by global id, in the order given, with null where `node(id:)` would be.
    #[graphql(complexity = "1 + ids.len() * child_complexity")]
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        if ids.len() > connection::MAX_PAGE as usize {
            return Err(errors::ApiError::BadUserInput(format!(
                "at most {} ids at a time",
                connection::MAX_PAGE
            ))
            .into());
        }
        let mut nodes = Vec::with_capacity(ids.len());
        for id in &ids {
            nodes.push(resolve_node(ctx, id).await?);
        }
        Ok(nodes)
    }
}

async fn resolve_node(ctx: &Context<'_>, id: &str) -> Result<Option<Node>> {
    let Some((node_type, row_id)) = parse_global_id(id) else { return Ok(None) };
    match node_type {
        NodeType::Organization => Ok(load_one(ctx, loaders::OrganizationById(row_id))
            .await?
            .map(|m| Node::Organization(Organization(m)))),
        NodeType::FrameworkAgreement | NodeType::CallOff => {
            crate::agreements::graphql::resolve_node(ctx, node_type, row_id).await
        }
        NodeType::LearningNetwork | NodeType::Gathering | NodeType::ExperienceReport | NodeType::ProcurementReuse => {
            crate::learning::graphql::resolve_node(ctx, node_type, row_id).await
        }
        NodeType::DeviceProduct
        | NodeType::Adapter
        | NodeType::SigningKey
        | NodeType::Device
        | NodeType::DeviceEvent
        | NodeType::DeadLetter => crate::devices::graphql::resolve_node(ctx, node_type, row_id).await,
        // Criteria are reached through their procurement, not fetched alone.
        NodeType::EvaluationCriterion => Ok(None),
        _ => crate::procurement::graphql::resolve_node(ctx, node_type, row_id).await,
    }
}

/// Who the request acts as.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Viewer {
    /// False for requests without a token.
    pub authenticated: bool,
    /// The token's subject (`sub`).
    pub subject: Option<String>,
    /// Organisation number of the organisation the viewer acts for.
    pub org_number: Option<String>,
    pub roles: Vec<Role>,
}

#[async_graphql::ComplexObject]
impl Viewer {
    /// The organisation the viewer acts for, when it is registered.
    async fn organization(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        let Some(number) = actor(ctx).principal().map(|p| p.org) else { return Ok(None) };
        Ok(organizations::find_by_org_number(state(ctx).db.read(), number).await?.map(Organization))
    }
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The caller: anonymous, or the subject, organisation and roles of its token.
    async fn viewer(&self, ctx: &Context<'_>) -> Viewer {
        match actor(ctx).principal() {
            None => Viewer { authenticated: false, subject: None, org_number: None, roles: vec![] },
            Some(p) => Viewer {
                authenticated: true,
                subject: Some(p.subject.clone()),
                org_number: Some(p.org.to_string()),
                roles: p.roles.iter().copied().collect(),
            },
        }
    }
}
