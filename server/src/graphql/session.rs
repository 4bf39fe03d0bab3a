//! What one request knows about its caller, and its DataLoaders. Built per request (and per
//! subscription connection), never shared between callers: a loader's cache must not leak one
//! caller's view to another.

use async_graphql::dataloader::DataLoader;
use sea_orm::DatabaseConnection;

use super::errors::ApiError;
use super::loaders::DbLoader;
use crate::auth::{Actor, Grant, Role};
use crate::organizations::model as organization;

pub struct Session {
    /// The caller with its organisation and effective roles, computed once at the start.
    pub grant: Grant,
    pub loader: DataLoader<DbLoader>,
}

impl Session {
    /// A session with the caller's organisation already looked up: resolvers then never wait
    /// on that lookup, so the loads of one list level reach the DataLoader together and batch
    /// into one statement, whatever the list's length.
    ///
    /// `batch_window` is how long a loader collects keys before it queries: it must cover the
    /// time to poll one whole level of a list (its items are polled in chunks), or that level
    /// splits into more than one statement. It is a latency cost per nested level.
    pub async fn start(
        actor: Actor,
        db: DatabaseConnection,
        batch_window: std::time::Duration,
    ) -> Result<Session, ApiError> {
        let grant = Grant::resolve(&db, actor).await?;
        let loader = DataLoader::new(DbLoader::new(db), tokio::spawn).delay(batch_window);
        Ok(Session { grant, loader })
    }

    /// Who is asking: anonymous or the token's subject and organisation.
    pub fn actor(&self) -> &Actor {
        self.grant.actor()
    }

    /// The registered organisation the caller acts for.
    pub fn organization(&self) -> Option<&organization::Model> {
        self.grant.organization()
    }

    /// The caller's organisation id, when it is registered.
    pub fn organization_id(&self) -> Option<i64> {
        self.organization().map(|o| o.id)
    }

    /// Whether the caller holds `role` for its organisation (its effective roles).
    pub fn has_role(&self, role: Role) -> bool {
        self.grant.has_role(role)
    }
}
