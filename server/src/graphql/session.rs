//! What one request knows about its caller, and its DataLoaders. Built per request (and per
//! subscription connection), never shared between callers: a loader's cache must not leak one
//! caller's view to another.

use async_graphql::dataloader::DataLoader;
use sea_orm::DatabaseConnection;
use tokio::sync::OnceCell;

use super::errors::ApiError;
use super::loaders::DbLoader;
use crate::auth::{Actor, Role};
use crate::organizations::{self, model as organization};

pub struct Session {
    pub actor: Actor,
    db: DatabaseConnection,
    organization: OnceCell<Option<organization::Model>>,
    pub loader: DataLoader<DbLoader>,
}

impl Session {
    pub fn new(actor: Actor, db: DatabaseConnection) -> Session {
        let loader = DataLoader::new(DbLoader::new(db.clone()), tokio::spawn);
        Session { actor, db, organization: OnceCell::new(), loader }
    }

    /// The registered organisation the caller acts for, looked up once per request.
    pub async fn organization(&self) -> Result<Option<&organization::Model>, ApiError> {
        let Some(principal) = self.actor.principal() else { return Ok(None) };
        let org = self
            .organization
            .get_or_try_init(|| organizations::find_by_org_number(&self.db, principal.org))
            .await?;
        Ok(org.as_ref())
    }

    /// The caller's organisation id, when it is registered.
    pub async fn organization_id(&self) -> Result<Option<i64>, ApiError> {
        Ok(self.organization().await?.map(|o| o.id))
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.actor.has_role(role)
    }
}
