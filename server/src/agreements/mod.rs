//! Framework agreements that follow awards, and the call-offs municipalities place under them.

pub mod graphql;
pub mod live;
pub mod loaders;
pub mod model;
pub mod rules;
pub mod seed;

use sea_orm::{ConnectionTrait, EntityTrait};

use crate::errors::ApiError;

/// A call-off by id (call-offs have no by-id loader: they are reached through agreements).
pub async fn find_call_off<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<model::call_off::Model>, ApiError> {
    Ok(model::call_off::Entity::find_by_id(id).one(db).await?)
}
