//! GraphQL face of the refusal log: `refusedAttempts`, for the platform operator.

use async_graphql::{Context, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use velferd_macros::{connections, row_fields};

use super::model::refused_attempt;
use crate::auth::Role;
use crate::errors::ApiError;
use crate::graphql::connection::{Cursor, OrderDirection, Page, PageArgs, SortKey, page_sorted};
use crate::graphql::context::{require_role, state};

// `Query` names the area's root for the area table, `crate::areas!`.
pub use self::RefusalQuery as Query;

/// Refused or throttled attempts of one caller with one code within one minute, as counted by
/// every server instance together.
#[derive(Clone)]
pub struct RefusedAttempt(pub refused_attempt::Model);

#[row_fields]
#[Object]
impl RefusedAttempt {
    /// The minute the attempts were made in (its first second).
    async fn minute(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0.minute, 0).unwrap_or_default()
    }

    /// Who tried: `org <organisation number> sub <subject>` for a signed-in caller,
    /// `address <client address>` (an IPv6 address's `/64`) for an anonymous one or one whose
    /// token was refused, or `(others)` for the callers counted together when more tried within
    /// a few seconds than one instance keeps apart.
    async fn caller(&self) -> &str;

    /// The refusal's code: an `extensions.code` (`THROTTLED`, `FORBIDDEN`, …) or a WebSocket
    /// close (`WS_…`); see `docs/errors.md`.
    async fn code(&self) -> &str;

    /// How many attempts were refused.
    async fn attempts(&self) -> i64;
}

/// Which refused attempts to list.
#[derive(InputObject, Default)]
pub struct RefusedAttemptFilter {
    /// Only this code.
    pub code: Option<String>,
    /// Only the minutes that end after this time.
    pub since: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct RefusalQuery;

#[connections]
#[Object]
impl RefusalQuery {
    /// The refusal log, newest minute first: refused and throttled attempts counted per minute,
    /// caller and code. Platform operator (`admin`) only. What this instance has counted and not
    /// yet written (it writes every `VELFERD_REFUSAL_LOG_FLUSH_SECONDS`) is written first.
    async fn refused_attempts(
        &self,
        ctx: &Context<'_>,
        page: PageArgs,
        filter: Option<RefusedAttemptFilter>,
    ) -> Result<Page<RefusedAttempt>> {
        require_role(ctx, Role::Admin, "read the refusal log")?;
        let page = page.parse()?;
        let filter = filter.unwrap_or_default();
        let state = state(ctx);
        state.refusals.flush().await.map_err(ApiError::internal)?;
        let mut select = refused_attempt::Entity::find();
        if let Some(code) = filter.code {
            select = select.filter(refused_attempt::Column::Code.eq(code.trim()));
        }
        if let Some(since) = filter.since {
            select = select.filter(refused_attempt::Column::Minute.gt(since.timestamp() - 60));
        }
        let sort = SortKey::integer(refused_attempt::Column::Minute);
        page_sorted(ctx, select, sort, refused_attempt::Column::Id, OrderDirection::Desc, &page, |row| {
            (Cursor { key: serde_json::json!(row.minute), id: row.id }, RefusedAttempt(row))
        })
        .await
    }
}
