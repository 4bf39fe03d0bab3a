//! The GraphQL schema: roots merged from the domain areas, Relay `Node`, limits and cost. This
//! module only assembles; the plumbing areas share is in `context`, ids in `relay`.

pub mod connection;
pub mod context;
pub mod errors;
pub mod guard;
pub mod limits;
pub mod loaders;
pub mod node;
pub mod operation;
mod order;
pub mod relay;
pub mod row;
pub mod session;
pub mod viewer;

use async_graphql::{MergedObject, MergedSubscription, Schema};

use crate::app::AppState;
use crate::config::{GraphqlLimits, Profile};
pub use node::Node;
use node::NodeQuery;
use viewer::ViewerQuery;

pub type VelferdSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the three roots from the area table, `crate::areas!`: each merges the shell's own
/// fields (Query: `node`, `viewer`) and the `crate::<area>::graphql::{Query, Mutation,
/// Subscription}` of every area that lists it, in the table's order. It first sorts the
/// (area, root) pairs into one list per root, then declares the roots.
macro_rules! root_objects {
    ($($area:ident: nodes [$($node:ident),*], roots [$($root:ident),*];)*) => {
        root_objects!(@sort [] [] [] $($($area $root)*)*);
    };
    (@sort [$($q:ident)*] [$($m:ident)*] [$($s:ident)*] $area:ident Query $($rest:tt)*) => {
        root_objects!(@sort [$($q)* $area] [$($m)*] [$($s)*] $($rest)*);
    };
    (@sort [$($q:ident)*] [$($m:ident)*] [$($s:ident)*] $area:ident Mutation $($rest:tt)*) => {
        root_objects!(@sort [$($q)*] [$($m)* $area] [$($s)*] $($rest)*);
    };
    (@sort [$($q:ident)*] [$($m:ident)*] [$($s:ident)*] $area:ident Subscription $($rest:tt)*) => {
        root_objects!(@sort [$($q)*] [$($m)*] [$($s)* $area] $($rest)*);
    };
    (@sort [$($q:ident)*] [$($m:ident)*] [$($s:ident)*]) => {
        #[derive(MergedObject, Default)]
        #[graphql(name = "Query")]
        pub struct QueryRoot(NodeQuery, ViewerQuery, $(crate::$q::graphql::Query),*);

        #[derive(MergedObject, Default)]
        #[graphql(name = "Mutation")]
        pub struct MutationRoot($(crate::$m::graphql::Mutation),*);

        #[derive(MergedSubscription, Default)]
        #[graphql(name = "Subscription")]
        pub struct SubscriptionRoot($(crate::$s::graphql::Subscription),*);
    };
}

crate::areas!(root_objects);

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
