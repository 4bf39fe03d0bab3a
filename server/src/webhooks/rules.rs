//! The rules of endpoints and their deliveries: who owns what, how many, and what a change
//! writes. They take parsed values and run in the caller's transaction; nothing here knows
//! GraphQL. An endpoint of another organisation answers exactly like a missing one.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use serde_json::json;

use super::events::{self, EventType};
use super::model::{DeliveryStatus, webhook_delivery, webhook_endpoint};
use super::{WebhookSettings, now_ms, signing};
use crate::auth::Caller;
use crate::errors::{Invalid, RuleResult, RuleViolation, ensure, refuse};
use crate::ids::{NodeType, global_id};
use crate::outbound::EndpointUrl;

/// Why an endpoint was disabled: by its owner.
pub const DISABLED_MANUAL: &str = "MANUAL";
/// Why an endpoint was disabled: it answered 410 Gone.
pub const DISABLED_GONE: &str = "GONE";
/// Who disabled an endpoint that answered 410.
pub const VELFERD: &str = "velferd";

/// Most deliveries one replay by time range re-queues.
pub const MAX_REPLAY: u64 = 1000;

/// A broken rule of webhooks.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// `Outbound::check_url` refused the URL; its code is the client's to see.
    #[error("{message}")]
    UrlRefused { code: &'static str, message: String },
    #[error("your organisation has {max} webhook endpoints, the most allowed; delete one first")]
    TooManyEndpoints { max: usize },
    #[error("name at least one event type")]
    NoEventTypes,
    #[error("`webhook.test` is sent by webhookEndpointTest only; it cannot be subscribed to")]
    TestNotSubscribable,
    #[error("`since` must be before `until`")]
    EmptyRange,
    #[error("{count} deliveries fall in the range; replay at most {MAX_REPLAY} at a time (narrow it)")]
    TooManyToReplay { count: u64 },
    #[error("name deliveries by id or a time range, not both and not neither")]
    ReplayWhat,
}

impl RuleViolation for WebhookError {
    fn field(&self) -> &'static str {
        match self {
            WebhookError::Invalid(e) => e.field(),
            WebhookError::UrlRefused { .. } => "url",
            WebhookError::TooManyEndpoints { .. } => "",
            WebhookError::NoEventTypes | WebhookError::TestNotSubscribable => "eventTypes",
            WebhookError::EmptyRange | WebhookError::TooManyToReplay { .. } => "since",
            WebhookError::ReplayWhat => "",
        }
    }

    fn code(&self) -> &'static str {
        match self {
            WebhookError::Invalid(e) => e.code(),
            WebhookError::UrlRefused { code, .. } => code,
            WebhookError::TooManyEndpoints { .. } => "TOO_MANY_WEBHOOK_ENDPOINTS",
            WebhookError::NoEventTypes => "NO_EVENT_TYPES",
            WebhookError::TestNotSubscribable => "EVENT_TYPE_NOT_SUBSCRIBABLE",
            WebhookError::EmptyRange => "INVALID_RANGE",
            WebhookError::TooManyToReplay { .. } => "TOO_MANY_DELIVERIES",
            WebhookError::ReplayWhat => "REPLAY_WHAT",
        }
    }
}

pub type WebhookResult<T> = RuleResult<T, WebhookError>;

/// Event types as the endpoint stores them: known, subscribable, each once, in the API's order.
pub fn event_types(types: &[EventType]) -> Result<String, WebhookError> {
    if types.is_empty() {
        return Err(WebhookError::NoEventTypes);
    }
    if types.contains(&EventType::WebhookTest) {
        return Err(WebhookError::TestNotSubscribable);
    }
    let names: Vec<&str> = EventType::ALL.into_iter().filter(|t| types.contains(t)).map(EventType::name).collect();
    Ok(names.join(" "))
}

/// What a new endpoint's owner sees once: the endpoint and its secret.
pub struct Created {
    pub endpoint: webhook_endpoint::Model,
    pub secret: String,
}

/// A new endpoint of the caller's organisation.
pub struct NewEndpoint {
    pub url: EndpointUrl,
    pub event_types: String,
    pub description: Option<String>,
}

pub async fn create<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    new: NewEndpoint,
    settings: &WebhookSettings,
) -> WebhookResult<Created> {
    let count = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::OrganizationId.eq(caller.org.id))
        .count(db)
        .await?;
    ensure(count < settings.max_endpoints as u64, WebhookError::TooManyEndpoints { max: settings.max_endpoints })?;
    let secret = signing::new_secret();
    let endpoint = webhook_endpoint::ActiveModel {
        organization_id: Set(caller.org.id),
        url: Set(new.url.as_str().to_string()),
        description: Set(new.description),
        event_types: Set(new.event_types),
        enabled: Set(true),
        disabled_reason: Set(None),
        disabled_by: Set(None),
        disabled_at: Set(None),
        next_sequence: Set(1),
        secret: Set(secret.clone()),
        previous_secret: Set(None),
        previous_secret_expires_at: Set(None),
        signing_key: Set(signing::new_signing_key()),
        ..crate::created_by!(webhook_endpoint, caller)
    }
    .insert(db)
    .await?;
    Ok(Created { endpoint, secret })
}

/// The caller's organisation's endpoint `id`; another's answers like a missing one.
pub async fn own_endpoint<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
) -> WebhookResult<webhook_endpoint::Model> {
    match webhook_endpoint::Entity::find_by_id(id).one(db).await? {
        Some(e) if e.organization_id == caller.org.id => Ok(e),
        _ => refuse(Invalid::not_found("endpointId", "no such webhook endpoint")),
    }
}

/// A new secret, shown once; the old one goes on signing (a second `v1`) for the grace period.
pub async fn rotate<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
    grace: std::time::Duration,
) -> WebhookResult<Created> {
    let endpoint = own_endpoint(db, caller, id).await?;
    let secret = signing::new_secret();
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::days(1));
    let mut row: webhook_endpoint::ActiveModel = endpoint.clone().into();
    row.previous_secret = Set(Some(endpoint.secret));
    row.previous_secret_expires_at = Set(Some(until.fixed_offset()));
    row.secret = Set(secret.clone());
    row.updated_at = Set(now.fixed_offset());
    Ok(Created { endpoint: row.update(db).await?, secret })
}

/// Disables (reason `MANUAL`) or enables an endpoint; a disabled one's pending deliveries wait.
pub async fn set_enabled<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
    enabled: bool,
) -> WebhookResult<webhook_endpoint::Model> {
    let endpoint = own_endpoint(db, caller, id).await?;
    if endpoint.enabled == enabled {
        return Ok(endpoint);
    }
    let now = Utc::now().fixed_offset();
    let mut row: webhook_endpoint::ActiveModel = endpoint.into();
    row.enabled = Set(enabled);
    row.disabled_reason = Set((!enabled).then(|| DISABLED_MANUAL.to_string()));
    row.disabled_by = Set((!enabled).then(|| caller.subject.chars().take(200).collect()));
    row.disabled_at = Set((!enabled).then_some(now));
    row.updated_at = Set(now);
    Ok(row.update(db).await?)
}

/// Changes what an endpoint is sent (from the next event on) and its description.
pub async fn update<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
    event_types: Option<String>,
    description: Option<Option<String>>,
) -> WebhookResult<webhook_endpoint::Model> {
    let endpoint = own_endpoint(db, caller, id).await?;
    let mut row: webhook_endpoint::ActiveModel = endpoint.into();
    if let Some(types) = event_types {
        row.event_types = Set(types);
    }
    if let Some(description) = description {
        row.description = Set(description);
    }
    row.updated_at = Set(Utc::now().fixed_offset());
    Ok(row.update(db).await?)
}

/// Deletes an endpoint with its deliveries and their attempts.
pub async fn delete<C: ConnectionTrait>(db: &C, caller: &Caller, id: i64) -> WebhookResult<i64> {
    let endpoint = own_endpoint(db, caller, id).await?;
    webhook_endpoint::Entity::delete_by_id(endpoint.id).exec(db).await?;
    Ok(endpoint.id)
}

/// Queues a `webhook.test` event for the endpoint alone, due now.
pub async fn test<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
    base_url: &str,
) -> WebhookResult<webhook_delivery::Model> {
    let endpoint = own_endpoint(db, caller, id).await?;
    let now = Utc::now();
    let data = json!({ "endpointId": global_id(NodeType::WebhookEndpoint, endpoint.id) });
    let body = events::body(EventType::WebhookTest, now, data, base_url);
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::NextSequence, Expr::col(webhook_endpoint::Column::NextSequence).add(1))
        .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
        .exec(db)
        .await?;
    let delivery = webhook_delivery::ActiveModel {
        endpoint_id: Set(endpoint.id),
        message_id: Set(format!("msg_test_{}", signing::random_id())),
        sequence: Set(endpoint.next_sequence),
        event_type: Set(EventType::WebhookTest.name().to_string()),
        payload: Set(body),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        queued_after_attempts: Set(0),
        next_attempt_at_ms: Set(Some(now_ms())),
        lease_until_ms: Set(None),
        lease_owner: Set(None),
        created_at: Set(now.fixed_offset()),
        finished_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(delivery)
}

/// Which deliveries of an endpoint to send again.
pub enum Replay {
    Ids(Vec<i64>),
    /// Created in `[since, until)`.
    Range {
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

/// Queues the endpoint's deliveries again, due now, each with its own `webhook-id` and body;
/// the retry schedule starts over. Returns them (ids that are not the endpoint's are refused
/// like missing ones).
pub async fn replay<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    id: i64,
    what: Replay,
) -> WebhookResult<Vec<webhook_delivery::Model>> {
    let endpoint = own_endpoint(db, caller, id).await?;
    let select = webhook_delivery::Entity::find().filter(webhook_delivery::Column::EndpointId.eq(endpoint.id));
    let rows = match what {
        Replay::Ids(ids) => {
            let wanted = ids.len();
            let rows = select.filter(webhook_delivery::Column::Id.is_in(ids)).all(db).await?;
            ensure(rows.len() == wanted, Invalid::not_found("deliveryIds", "no such delivery of this endpoint"))?;
            rows
        }
        Replay::Range { since, until } => {
            ensure(since < until, WebhookError::EmptyRange)?;
            let select = select
                .filter(webhook_delivery::Column::CreatedAt.gte(since.fixed_offset()))
                .filter(webhook_delivery::Column::CreatedAt.lt(until.fixed_offset()));
            let count = select.clone().count(db).await?;
            ensure(count <= MAX_REPLAY, WebhookError::TooManyToReplay { count })?;
            select.order_by_asc(webhook_delivery::Column::Sequence).limit(MAX_REPLAY).all(db).await?
        }
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(DeliveryStatus::Pending))
        .col_expr(webhook_delivery::Column::QueuedAfterAttempts, Expr::col(webhook_delivery::Column::Attempts))
        .col_expr(webhook_delivery::Column::NextAttemptAtMs, Expr::value(now_ms()))
        .col_expr(
            webhook_delivery::Column::FinishedAt,
            Expr::value(Option::<chrono::DateTime<chrono::FixedOffset>>::None),
        )
        .filter(webhook_delivery::Column::Id.is_in(ids.clone()))
        .exec(db)
        .await?;
    Ok(webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Id.is_in(ids))
        .order_by_asc(webhook_delivery::Column::Sequence)
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_stored_once_each_in_order_and_test_is_not_subscribable() {
        let types = [EventType::DeviceStatus, EventType::AlertRaised, EventType::DeviceStatus];
        assert_eq!(event_types(&types).unwrap(), "alert.raised device.status");
        assert_eq!(event_types(&[]).unwrap_err().code(), "NO_EVENT_TYPES");
        assert_eq!(event_types(&[EventType::WebhookTest]).unwrap_err().code(), "EVENT_TYPE_NOT_SUBSCRIBABLE");
    }
}
