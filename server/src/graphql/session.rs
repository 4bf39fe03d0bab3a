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
        let loader = DataLoader::new(DbLoader::new(db.clone()), tokio::spawn).delay(batch_window);
        let session = Session { actor, db, organization: OnceCell::new(), loader };
        session.organization().await?;
        Ok(session)
    }

    /// The registered organisation the caller acts for, looked up once per request.
    pub async fn organization(&self) -> Result<Option<&organization::Model>, ApiError> {
        let Some(principal) = self.actor.principal() else { return Ok(None) };
        let org =
            self.organization.get_or_try_init(|| organizations::find_by_org_number(&self.db, principal.org)).await?;
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
