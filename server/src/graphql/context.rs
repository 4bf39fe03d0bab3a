//! What every resolver needs from the request: the state, the session and its caller, the
//! DataLoader, "today", and the write transaction a mutation's rules run in. Areas import
//! their plumbing from here, never from each other.

use async_graphql::Context;
use chrono::{NaiveDate, Utc};
use sea_orm::{DatabaseTransaction, TransactionTrait};

use super::errors::Payload;
use super::loaders::DbLoader;
use super::session::Session;
use crate::app::AppState;
use crate::auth::{Caller, Principal, Role};
use crate::errors::{ApiError, Refusal, RuleResult, RuleViolation};

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// The request's session; every execution path (HTTP, WebSocket) inserts one.
pub(crate) fn session<'a>(ctx: &Context<'a>) -> &'a Session {
    ctx.data_unchecked::<std::sync::Arc<Session>>()
}

/// The date a change takes effect on when the input names none.
pub(crate) fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The caller, if it holds `role` for its organisation ([`crate::auth::Grant::require`]).
pub(crate) fn require_role<'a>(ctx: &Context<'a>, role: Role, what: &str) -> Result<&'a Principal, ApiError> {
    session(ctx).grant.require(role, what)
}

/// The signed-in caller with `role`, acting for its registered organisation.
pub(crate) async fn caller(ctx: &Context<'_>, role: Role, what: &str) -> Result<Caller, ApiError> {
    session(ctx).grant.caller(role, what)
}

/// The signed-in caller acting under the first of `roles` it holds, for its registered
/// organisation.
pub(crate) fn caller_any(ctx: &Context<'_>, roles: &[Role], what: &str) -> Result<Caller, ApiError> {
    let grant = &session(ctx).grant;
    grant.require_any(roles, what)?;
    let role = roles.iter().copied().find(|r| grant.has_role(*r)).expect("require_any found one");
    grant.caller(role, what)
}

/// Loads one value through the request's DataLoader.
pub(crate) async fn load_one<K>(
    ctx: &Context<'_>,
    key: K,
) -> Result<Option<<DbLoader as async_graphql::dataloader::Loader<K>>::Value>, ApiError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    DbLoader: async_graphql::dataloader::Loader<K, Error = std::sync::Arc<sea_orm::DbErr>>,
{
    session(ctx).loader.load_one(key).await.map_err(ApiError::internal)
}

/// Loads a row another row refers to: its absence is a broken reference, an internal error.
pub(crate) async fn load_existing<K>(
    ctx: &Context<'_>,
    key: K,
    what: &str,
) -> Result<<DbLoader as async_graphql::dataloader::Loader<K>>::Value, ApiError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    DbLoader: async_graphql::dataloader::Loader<K, Error = std::sync::Arc<sea_orm::DbErr>>,
{
    load_one(ctx, key).await?.ok_or_else(|| ApiError::internal(format!("dangling reference to {what}")))
}

/// Runs a mutation's rules in one write transaction: committed when they hold, rolled back
/// (nothing written) when one is broken or the database fails.
pub(crate) async fn in_transaction<T, E, F>(ctx: &Context<'_>, work: F) -> RuleResult<T, E>
where
    F: AsyncFnOnce(&DatabaseTransaction) -> RuleResult<T, E>,
{
    let txn = state(ctx).db.write().begin().await?;
    match work(&txn).await {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(Refusal::Rule(rule)) => {
            txn.rollback().await?;
            Err(Refusal::Rule(rule))
        }
        // Dropping the transaction rolls it back.
        Err(fault) => Err(fault),
    }
}

/// A mutation past its caller check: the input as parsed at the edge (or the field it fails
/// on, before any rule runs), then the rules on the parsed values, as [`in_transaction`].
pub(crate) async fn run_parsed<I, V, T, E, F>(ctx: &Context<'_>, input: Result<I, V>, rules: F) -> RuleResult<T, E>
where
    E: From<V>,
    F: AsyncFnOnce(&DatabaseTransaction, I) -> RuleResult<T, E>,
{
    let input = input.map_err(|violation| Refusal::Rule(violation.into()))?;
    in_transaction(ctx, async |txn| rules(txn, input).await).await
}

/// A mutation past its caller check, whole: `input` as parsed at the edge, `rules` on it in one
/// transaction ([`run_parsed`]), and the payload: the object `wrap` makes of the rules' value,
/// or the broken rule as a user error.
pub(crate) async fn mutate<P, I, V, T, E>(
    ctx: &Context<'_>,
    input: Result<I, V>,
    wrap: impl FnOnce(T) -> P::Object,
    rules: impl AsyncFnOnce(&DatabaseTransaction, I) -> RuleResult<T, E>,
) -> async_graphql::Result<P>
where
    P: Payload,
    E: RuleViolation + From<V>,
{
    Ok(P::from_rule(run_parsed(ctx, input, rules).await, wrap)?)
}
