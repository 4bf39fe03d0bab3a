//! The GraphQL schema: roots merged from the domain areas, Relay `Node`, limits and cost. This
//! module only assembles; the plumbing areas share is in `context`, ids in `relay`.

pub mod connection;
pub mod context;
pub mod errors;
pub mod guard;
pub mod limits;
pub mod loaders;
pub mod node;
pub mod relay;
pub mod session;
pub mod viewer;

use async_graphql::{MergedObject, MergedSubscription, Schema};

use crate::agreements::graphql::AgreementMutation;
use crate::app::AppState;
use crate::config::{GraphqlLimits, Profile};
use crate::devices::graphql::{DeviceMutation, DeviceQuery, DeviceSubscription};
use crate::learning::graphql::{LearningMutation, LearningQuery};
use crate::organizations::{OrganizationMutation, OrganizationQuery, OrganizationSubscription};
use crate::procurement::graphql::{ProcurementMutation, ProcurementQuery};
pub use node::Node;
use node::NodeQuery;
use viewer::ViewerQuery;

pub type VelferdSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(NodeQuery, ViewerQuery, OrganizationQuery, ProcurementQuery, LearningQuery, DeviceQuery);

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(OrganizationMutation, ProcurementMutation, AgreementMutation, LearningMutation, DeviceMutation);

#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(OrganizationSubscription, DeviceSubscription);

/// Builds the schema. `state` is `None` only for printing the SDL.
pub fn build_schema(state: Option<AppState>, profile: Profile, limits: &GraphqlLimits) -> VelferdSchema {
    let mut builder = Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
        .extension(limits::QueryLimits {
            max_depth: limits.max_depth,
            max_complexity: limits.max_complexity,
            document: limits.document,
            max_response_bytes: limits.max_response_bytes,
        });
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
        max_response_bytes: 1,
        document: guard::DocumentLimits {
            max_tokens: 1,
            max_nesting: 1,
            max_selections: 1,
            max_fragments: 1,
            max_directives: 1,
        },
        batch_window: std::time::Duration::ZERO,
    };
    build_schema(None, Profile::Development, &limits).sdl()
}
