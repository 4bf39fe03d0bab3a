//! One DataLoader for every relation: each key type is one batched query, so a request's SQL
//! statement count depends on the shape of the query, not on how many rows it returns. The keys
//! live beside their tables, in each area's `loaders.rs`; this module holds the loader and the
//! two macros that declare keys, and re-exports every area's keys so a resolver can follow a
//! relation into another area.

/// Re-exports `crate::<area>::loaders::*` of every area in the area table, `crate::areas!`.
macro_rules! area_keys {
    ($($area:ident: nodes [$($node:ident),*], roots [$($root:ident),*];)*) => {
        // An area without relations to batch (the refusal log) exports no keys.
        $(#[allow(unused_imports)] pub use crate::$area::loaders::*;)*
    };
}

crate::areas!(area_keys);

use sea_orm::DatabaseConnection;

pub struct DbLoader {
    pub(crate) db: DatabaseConnection,
}

impl DbLoader {
    pub fn new(db: DatabaseConnection) -> DbLoader {
        DbLoader { db }
    }
}

/// `$key(id)` loads the row of `$entity` with that id.
macro_rules! by_id {
    ($key:ident, $entity:ident) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl async_graphql::dataloader::Loader<$key> for $crate::graphql::loaders::DbLoader {
            type Value = $entity::Model;
            type Error = std::sync::Arc<sea_orm::DbErr>;

            async fn load(&self, keys: &[$key]) -> Result<std::collections::HashMap<$key, Self::Value>, Self::Error> {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
                let rows = $entity::Entity::find()
                    .filter($entity::Column::Id.is_in(ids))
                    .all(&self.db)
                    .await
                    .map_err(std::sync::Arc::new)?;
                Ok(rows.into_iter().map(|row| ($key(row.id), row)).collect())
            }
        }
    };
}

/// `$key(parent)` loads the rows of `$entity` whose `$column` is `parent`, in id order.
macro_rules! children {
    ($key:ident, $entity:ident, $column:ident, $field:ident) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl async_graphql::dataloader::Loader<$key> for $crate::graphql::loaders::DbLoader {
            type Value = Vec<$entity::Model>;
            type Error = std::sync::Arc<sea_orm::DbErr>;

            async fn load(&self, keys: &[$key]) -> Result<std::collections::HashMap<$key, Self::Value>, Self::Error> {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
                let rows = $entity::Entity::find()
                    .filter($entity::Column::$column.is_in(ids))
                    .order_by_asc($entity::Column::Id)
                    .all(&self.db)
                    .await
                    .map_err(std::sync::Arc::new)?;
                let mut grouped: std::collections::HashMap<$key, Vec<$entity::Model>> =
                    keys.iter().map(|k| (*k, Vec::new())).collect();
                for row in rows {
                    grouped.entry($key(row.$field)).or_default().push(row);
                }
                Ok(grouped)
            }
        }
    };
}
pub(crate) use {by_id, children};
