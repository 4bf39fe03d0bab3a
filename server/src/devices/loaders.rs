//! DataLoader keys of the devices area (see `graphql::loaders`). Adapters load without their
//! component's bytes, so their keys are written out rather than declared by macro.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::model::{adapter, device, device_product, device_status_change, signing_key};
use crate::graphql::loaders::DbLoader;
use crate::graphql::loaders::{by_id, children};

by_id!(ProductById, device_product);
by_id!(DeviceById, device);
by_id!(SigningKeyById, signing_key);
children!(DeviceHistory, device_status_change, DeviceId, device_id);

/// `AdapterById(id)` loads an adapter without its component's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdapterById(pub i64);

impl Loader<AdapterById> for DbLoader {
    type Value = adapter::Summary;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[AdapterById]) -> Result<HashMap<AdapterById, Self::Value>, Self::Error> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows: Vec<adapter::Summary> = adapter::Entity::find()
            .filter(adapter::Column::Id.is_in(ids))
            .into_partial_model()
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows.into_iter().map(|row| (AdapterById(row.id), row)).collect())
    }
}

/// `AdaptersOf(product)` loads a product's adapter versions, oldest first, without their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdaptersOf(pub i64);

impl Loader<AdaptersOf> for DbLoader {
    type Value = Vec<adapter::Summary>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[AdaptersOf]) -> Result<HashMap<AdaptersOf, Self::Value>, Self::Error> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows: Vec<adapter::Summary> = adapter::Entity::find()
            .filter(adapter::Column::ProductId.is_in(ids))
            .order_by_asc(adapter::Column::Id)
            .into_partial_model()
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        let mut grouped: HashMap<AdaptersOf, Vec<adapter::Summary>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            grouped.entry(AdaptersOf(row.product_id)).or_default().push(row);
        }
        Ok(grouped)
    }
}
