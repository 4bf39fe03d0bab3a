//! Relay's `Node` interface and `node`/`nodes`. Every node type is declared once, in the area
//! table `crate::areas!`: the entry gives the type's id name, its `Node` variant and its fetch
//! (the [`NodeObject`] impl of `crate::<area>::graphql::<Type>`), so a type cannot be listed
//! without a way to fetch it, and no id falls through to another table.

use async_graphql::{Context, ID, Interface, Object, Result};

use super::connection;
use crate::errors::ApiError;
pub use crate::ids::NodeType;
use crate::ids::parse_global_id;

/// A node object fetched by row id, with its own read rule applied: `None` when the row is
/// missing or the caller may not see it — the two are deliberately indistinguishable.
pub trait NodeObject: Sized {
    fn fetch(ctx: &Context<'_>, row_id: i64) -> impl Future<Output = Result<Option<Self>, ApiError>> + Send;
}

/// Builds the `Node` interface and its resolver from the node types of `crate::areas!`.
macro_rules! node_interface {
    ($($area:ident: nodes [$($name:ident),*], roots [$($root:ident),*];)*) => {
        /// An object with a global id, fetchable with `node(id:)`.
        #[derive(Interface)]
        #[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
        pub enum Node {
            $($($name(crate::$area::graphql::$name),)*)*
        }

        async fn fetch_node(ctx: &Context<'_>, node_type: NodeType, row_id: i64) -> Result<Option<Node>, ApiError> {
            Ok(match node_type {
                $($(NodeType::$name => {
                    <crate::$area::graphql::$name as NodeObject>::fetch(ctx, row_id).await?.map(Node::$name)
                })*)*
            })
        }
    };
}

crate::areas!(node_interface);

/// Null for an id of an unknown type, garbage, a missing row or a row the caller may not see.
async fn resolve_node(ctx: &Context<'_>, id: &str) -> Result<Option<Node>, ApiError> {
    let Some((node_type, row_id)) = parse_global_id(id) else { return Ok(None) };
    fetch_node(ctx, node_type, row_id).await
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Fetches any object by its global id. Null when no object has that id or you may not see
    /// it — the two are deliberately indistinguishable.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        Ok(resolve_node(ctx, &id).await?)
    }

    /// Fetches objects by global id, in the order given, with null where `node(id:)` would be.
    #[graphql(complexity = "1 + ids.len() * child_complexity")]
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        if ids.len() > connection::MAX_PAGE as usize {
            return Err(ApiError::BadUserInput(format!("at most {} ids at a time", connection::MAX_PAGE)).into());
        }
        let mut nodes = Vec::with_capacity(ids.len());
        for id in &ids {
            nodes.push(resolve_node(ctx, id).await?);
        }
        Ok(nodes)
    }
}
