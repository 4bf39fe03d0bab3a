//! GraphQL face of webhooks: endpoints with their delivery log, and the mutations that
//! register, rotate, disable, enable, change, delete, test and replay. Who: the organisation's
//! `municipality_admin` (municipalities) or its `integration` token (any organisation). An
//! endpoint or delivery of another organisation answers exactly like a missing one.

use std::convert::identity;

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::Webhooks;
use super::events::EventType;
use super::model::{DeliveryStatus, webhook_attempt, webhook_delivery, webhook_endpoint};
use super::rules::{self, Created, NewEndpoint, Replay, WebhookError};
use crate::auth::{Caller, Role};
use crate::errors::{ApiError, Invalid, bounded};
use crate::graphql::connection::{OrderDirection, Page, PageArgs, load_page, page_by_id};
use crate::graphql::context::{caller_any, load_one, mutate, session, state};
use crate::graphql::errors::{Payload, UserError, payload};
use crate::graphql::loaders::{AttemptsOf, WebhookDeliveryById, WebhookEndpointById};
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, global_id, input_row};
use crate::text::Text;
use velferd_macros::{connections, row_fields};

// `Query` and `Mutation` name the area's roots for the area table, `crate::areas!`.
pub use self::WebhookMutation as Mutation;
pub use self::WebhookQuery as Query;

/// The roles that manage an organisation's webhooks.
const MANAGERS: &[Role] = &[Role::MunicipalityAdmin, Role::Integration];

fn webhooks<'a>(ctx: &Context<'a>) -> Result<&'a Webhooks, ApiError> {
    state(ctx).webhooks.as_deref().ok_or_else(|| ApiError::internal("webhooks are not running on this server"))
}

/// The caller, acting under the first of [`MANAGERS`] it holds.
fn manager(ctx: &Context<'_>, what: &str) -> Result<Caller, ApiError> {
    caller_any(ctx, MANAGERS, what)
}

/// The organisation whose webhooks the session may read, if any.
fn reader_org(ctx: &Context<'_>) -> Option<i64> {
    let session = session(ctx);
    let org = session.organization()?;
    MANAGERS.iter().any(|r| session.has_role(*r)).then_some(org.id)
}

/// An HTTPS endpoint of your organisation and the events it is sent.
#[derive(Clone)]
pub struct WebhookEndpoint(pub webhook_endpoint::Model);

#[row_fields]
#[connections]
#[Object]
impl WebhookEndpoint {
    pub async fn id(&self) -> ID;

    async fn url(&self) -> &str;

    async fn description(&self) -> Option<&str>;

    async fn event_types(&self) -> Vec<EventType> {
        self.0.event_types.split(' ').filter_map(EventType::of_name).collect()
    }

    /// Whether deliveries are sent. A disabled endpoint's deliveries wait until it is enabled.
    async fn enabled(&self) -> bool;

    /// `MANUAL` (its owner disabled it) or `GONE` (it answered 410 Gone).
    async fn disabled_reason(&self) -> Option<&str>;

    /// Who disabled it: a token's subject, or `velferd` for a 410.
    async fn disabled_by(&self) -> Option<&str>;

    async fn disabled_at(&self) -> Option<DateTime<Utc>>;

    /// The Ed25519 public key (`whpk_` + base64 of the 32-byte key) that verifies `v1a`
    /// signatures: not a secret.
    async fn public_key(&self) -> Result<String> {
        Ok(super::signing::public_key(&self.0.signing_key)
            .ok_or_else(|| ApiError::internal("an endpoint's signing key does not read"))?)
    }

    /// Until when the secret before the last rotation still signs (a second `v1`).
    async fn previous_secret_valid_until(&self) -> Option<DateTime<Utc>> {
        let until = self.0.previous_secret_expires_at?.to_utc();
        (until > Utc::now()).then_some(until)
    }

    async fn created_at(&self) -> DateTime<Utc>;

    /// The delivery log, newest first: every event sent or to be sent here, with its attempts.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        filter: Option<WebhookDeliveryFilter>,
        page: PageArgs,
    ) -> Result<Page<WebhookDelivery>> {
        let page = page.parse()?;
        let filter = filter.unwrap_or_default();
        let mut select = webhook_delivery::Entity::find().filter(webhook_delivery::Column::EndpointId.eq(self.0.id));
        if let Some(status) = filter.status {
            select = select.filter(webhook_delivery::Column::Status.eq(status));
        }
        if let Some(since) = filter.since {
            select = select.filter(webhook_delivery::Column::CreatedAt.gte(since.fixed_offset()));
        }
        if let Some(until) = filter.until {
            select = select.filter(webhook_delivery::Column::CreatedAt.lt(until.fixed_offset()));
        }
        page_by_id(ctx, OrderDirection::Desc, select, webhook_delivery::Column::Id, &page, |d| d.id, WebhookDelivery)
            .await
    }
}

/// Narrows an endpoint's delivery log.
#[derive(InputObject, Default)]
pub struct WebhookDeliveryFilter {
    pub status: Option<DeliveryStatus>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

/// One event for one endpoint: what was sent, and every attempt.
#[derive(Clone)]
pub struct WebhookDelivery(pub webhook_delivery::Model);

#[row_fields]
#[connections]
#[Object]
impl WebhookDelivery {
    pub async fn id(&self) -> ID;

    /// The `webhook-id` header: the same on every attempt and replay, and for every endpoint
    /// the event went to. De-duplicate by it.
    async fn webhook_id(&self) -> &str {
        &self.0.message_id
    }

    /// The endpoint's sequence number (`webhook-sequence` header): orders its deliveries.
    async fn sequence(&self) -> i64;

    /// `alert.raised`, `device.status`, … (`WebhookEventType` names them).
    async fn event_type(&self) -> &str;

    /// The body, byte for byte as signed and sent.
    async fn payload(&self) -> &str;

    async fn status(&self) -> DeliveryStatus;

    /// Attempts made so far.
    async fn attempt_count(&self) -> i32 {
        self.0.attempts
    }

    /// When the next attempt is due, while pending.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        if self.0.status != DeliveryStatus::Pending {
            return None;
        }
        self.0.next_attempt_at_ms.and_then(DateTime::<Utc>::from_timestamp_millis)
    }

    async fn created_at(&self) -> DateTime<Utc>;

    /// When it succeeded or failed for good.
    async fn finished_at(&self) -> Option<DateTime<Utc>>;

    async fn endpoint(&self, ctx: &Context<'_>) -> Result<WebhookEndpoint> {
        let row = load_one(ctx, WebhookEndpointById(self.0.endpoint_id))
            .await?
            .ok_or_else(|| ApiError::internal("a delivery without its endpoint"))?;
        Ok(WebhookEndpoint(row))
    }

    /// Every attempt, oldest first.
    async fn attempts(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<WebhookAttempt>> {
        load_page(ctx, AttemptsOf(self.0.id), page, |_| true, WebhookAttempt, |a| a.0.id).await
    }
}

/// One attempt to deliver.
#[derive(Clone)]
pub struct WebhookAttempt(pub webhook_attempt::Model);

#[row_fields]
#[Object]
impl WebhookAttempt {
    /// 1 for the first attempt, counting on across replays.
    async fn number(&self) -> i32 {
        self.0.n
    }

    async fn at(&self) -> DateTime<Utc>;

    /// The answer's HTTP status; null when none came.
    async fn status_code(&self) -> Option<i32>;

    /// Why no answer came: `TIMEOUT`, `CONNECT_FAILED`, `TLS_FAILED`, `ADDRESS_REFUSED`,
    /// `REQUEST_FAILED`, or the code of an address refused before sending.
    async fn failure(&self) -> Option<&str>;

    async fn latency_ms(&self) -> i64;

    /// At most 1 KiB of the answer's body, or of the failure.
    async fn response_excerpt(&self) -> Option<&str> {
        self.0.excerpt.as_deref()
    }

    /// The address connected to.
    async fn remote_address(&self) -> Option<&str> {
        self.0.remote.as_deref()
    }
}

#[derive(Default)]
pub struct WebhookQuery;

#[connections]
#[Object]
impl WebhookQuery {
    /// Your organisation's webhook endpoints, oldest first (`municipality_admin`,
    /// `integration`).
    async fn webhook_endpoints(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<WebhookEndpoint>> {
        let caller = manager(ctx, "see webhook endpoints")?;
        let page = page.parse()?;
        let select =
            webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::OrganizationId.eq(caller.org.id));
        page_by_id(ctx, OrderDirection::Asc, select, webhook_endpoint::Column::Id, &page, |e| e.id, WebhookEndpoint)
            .await
    }
}

impl NodeObject for WebhookEndpoint {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<WebhookEndpoint>, ApiError> {
        let Some(org) = reader_org(ctx) else { return Ok(None) };
        let row = load_one(ctx, WebhookEndpointById(id)).await?;
        Ok(row.filter(|e| e.organization_id == org).map(WebhookEndpoint))
    }
}

impl NodeObject for WebhookDelivery {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<WebhookDelivery>, ApiError> {
        let Some(org) = reader_org(ctx) else { return Ok(None) };
        let Some(row) = load_one(ctx, WebhookDeliveryById(id)).await? else { return Ok(None) };
        let endpoint = load_one(ctx, WebhookEndpointById(row.endpoint_id)).await?;
        Ok(endpoint.filter(|e| e.organization_id == org).map(|_| WebhookDelivery(row)))
    }
}

#[derive(InputObject)]
pub struct WebhookEndpointCreateInput {
    /// An `https://` URL whose host resolves to public addresses only.
    pub url: String,
    /// What to send: at least one type (not `WEBHOOK_TEST`, which only `webhookEndpointTest`
    /// sends).
    pub event_types: Vec<EventType>,
    /// Up to 500 characters.
    pub description: Option<String>,
}

/// A new endpoint with its signing secret — shown here once, never again.
#[derive(SimpleObject)]
pub struct WebhookEndpointCreatePayload {
    pub endpoint: Option<WebhookEndpoint>,
    /// `whsec_` + base64 of 32 random bytes: verifies `v1` signatures. Keep it; it cannot be
    /// read again (rotate it to get a new one).
    pub secret: Option<String>,
    /// `whpk_` + base64 of the Ed25519 public key: verifies `v1a` signatures.
    pub public_key: Option<String>,
    pub user_errors: Vec<UserError>,
}

/// A new secret — shown here once. The previous one goes on signing until
/// `previousSecretValidUntil`.
#[derive(SimpleObject)]
pub struct WebhookEndpointRotateSecretPayload {
    pub endpoint: Option<WebhookEndpoint>,
    pub secret: Option<String>,
    pub user_errors: Vec<UserError>,
}

impl Payload for WebhookEndpointCreatePayload {
    type Object = Created;

    fn new(created: Option<Created>, user_errors: Vec<UserError>) -> WebhookEndpointCreatePayload {
        let Some(created) = created else {
            return WebhookEndpointCreatePayload { endpoint: None, secret: None, public_key: None, user_errors };
        };
        WebhookEndpointCreatePayload {
            public_key: super::signing::public_key(&created.endpoint.signing_key),
            secret: Some(created.secret),
            endpoint: Some(WebhookEndpoint(created.endpoint)),
            user_errors,
        }
    }
}

impl Payload for WebhookEndpointRotateSecretPayload {
    type Object = Created;

    fn new(rotated: Option<Created>, user_errors: Vec<UserError>) -> WebhookEndpointRotateSecretPayload {
        let (endpoint, secret) = rotated.map(|r| (WebhookEndpoint(r.endpoint), r.secret)).unzip();
        WebhookEndpointRotateSecretPayload { endpoint, secret, user_errors }
    }
}

#[derive(InputObject)]
pub struct WebhookEndpointInput {
    pub endpoint_id: ID,
}

impl WebhookEndpointInput {
    fn parse(&self) -> Result<i64, Invalid> {
        endpoint_row(&self.endpoint_id)
    }
}

fn endpoint_row(id: &ID) -> Result<i64, Invalid> {
    input_row(id, NodeType::WebhookEndpoint, "endpointId")
}

#[derive(InputObject)]
pub struct WebhookEndpointUpdateInput {
    pub endpoint_id: ID,
    /// The new set of event types, when given.
    pub event_types: Option<Vec<EventType>>,
    /// The new description, when given; blank removes it.
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct WebhookDeliveriesReplayInput {
    pub endpoint_id: ID,
    /// These deliveries (at most 100) …
    pub delivery_ids: Option<Vec<ID>>,
    /// … or those created in `[since, until)` (at most 1000).
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

payload!(WebhookEndpointPayload, endpoint: WebhookEndpoint, "An endpoint as the change left it.");
payload!(WebhookEndpointDeletePayload, deleted_endpoint_id: ID, "The id of the endpoint deleted.");
payload!(WebhookEndpointTestPayload, delivery: WebhookDelivery, "The test event's delivery, due now.");
payload!(WebhookDeliveriesReplayPayload, deliveries: Vec<WebhookDelivery>, "The deliveries queued again.");

fn event_types(types: &[EventType]) -> Result<String, WebhookError> {
    bounded("eventTypes", types)?;
    rules::event_types(types)
}

fn description(text: Option<&str>) -> Result<Option<String>, Invalid> {
    Ok(Text::<500>::parse_optional("description", text)?.map(Text::into_string))
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an HTTPS endpoint of your organisation for the event types given; answers its
    /// `whsec_` secret, once, and its `whpk_` public key. A URL that is not `https://` or whose
    /// host resolves to a private, loopback, link-local or otherwise non-public address is
    /// refused with the reason's code, and nothing is written. Roles: `municipality_admin`,
    /// `integration`.
    async fn webhook_endpoint_create(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointCreateInput,
    ) -> Result<WebhookEndpointCreatePayload> {
        let caller = manager(ctx, "register webhook endpoints")?;
        let hooks = webhooks(ctx)?;
        let parsed = (|| -> Result<NewEndpoint, WebhookError> {
            let url = state(ctx)
                .outbound()
                .check_url(input.url.trim())
                .map_err(|r| WebhookError::UrlRefused { code: r.code, message: r.message })?;
            Ok(NewEndpoint {
                url,
                event_types: event_types(&input.event_types)?,
                description: description(input.description.as_deref())?,
            })
        })();
        mutate(ctx, parsed, identity, async |txn, new| rules::create(txn, &caller, new, &hooks.settings).await).await
    }

    /// Gives the endpoint a new secret, answered once; the previous one signs too (a second
    /// `v1` in `webhook-signature`) for the grace period (`VELFERD_WEBHOOK_ROTATION_GRACE`,
    /// 24 h by default). Roles: as `webhookEndpointCreate`.
    async fn webhook_endpoint_rotate_secret(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> Result<WebhookEndpointRotateSecretPayload> {
        let caller = manager(ctx, "rotate webhook secrets")?;
        let grace = webhooks(ctx)?.settings.rotation_grace;
        mutate(ctx, input.parse(), identity, async |txn, id| rules::rotate(txn, &caller, id, grace).await).await
    }

    /// Stops sending to the endpoint (reason `MANUAL`); its deliveries wait. Roles: as
    /// `webhookEndpointCreate`.
    async fn webhook_endpoint_disable(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> Result<WebhookEndpointPayload> {
        set_enabled(ctx, input, false).await
    }

    /// Sends to the endpoint again, starting with the deliveries that waited. Roles: as
    /// `webhookEndpointCreate`.
    async fn webhook_endpoint_enable(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> Result<WebhookEndpointPayload> {
        set_enabled(ctx, input, true).await
    }

    /// Changes the event types (from the next event on) or the description. Roles: as
    /// `webhookEndpointCreate`.
    async fn webhook_endpoint_update(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointUpdateInput,
    ) -> Result<WebhookEndpointPayload> {
        let caller = manager(ctx, "change webhook endpoints")?;
        let parsed = (|| {
            let id = endpoint_row(&input.endpoint_id)?;
            let types = input.event_types.as_deref().map(event_types).transpose()?;
            let description = input.description.as_deref().map(|d| description(Some(d))).transpose()?;
            Ok::<_, WebhookError>((id, types, description))
        })();
        mutate(ctx, parsed, WebhookEndpoint, async |txn, (id, types, description)| {
            rules::update(txn, &caller, id, types, description).await
        })
        .await
    }

    /// Deletes the endpoint with its delivery log. Roles: as `webhookEndpointCreate`.
    async fn webhook_endpoint_delete(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> Result<WebhookEndpointDeletePayload> {
        let caller = manager(ctx, "delete webhook endpoints")?;
        let deleted = |id| global_id(NodeType::WebhookEndpoint, id);
        mutate(ctx, input.parse(), deleted, async |txn, id| rules::delete(txn, &caller, id).await).await
    }

    /// Sends a `webhook.test` event to the endpoint now (signed like any other). Roles: as
    /// `webhookEndpointCreate`.
    async fn webhook_endpoint_test(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> Result<WebhookEndpointTestPayload> {
        let caller = manager(ctx, "test webhook endpoints")?;
        let hooks = webhooks(ctx)?;
        let sent = async |txn: &_, id| rules::test(txn, &caller, id, hooks.base_url()).await;
        let payload: WebhookEndpointTestPayload = mutate(ctx, input.parse(), WebhookDelivery, sent).await?;
        wake_if_done(hooks, &payload.user_errors);
        Ok(payload)
    }

    /// Sends deliveries again, now, each with its own `webhook-id` and body: by id (at most
    /// 100) or those created in a time range (at most 1000). The retry schedule starts over.
    /// Roles: as `webhookEndpointCreate`.
    async fn webhook_deliveries_replay(
        &self,
        ctx: &Context<'_>,
        input: WebhookDeliveriesReplayInput,
    ) -> Result<WebhookDeliveriesReplayPayload> {
        let caller = manager(ctx, "replay webhook deliveries")?;
        let hooks = webhooks(ctx)?;
        let parsed = (|| {
            let id = endpoint_row(&input.endpoint_id)?;
            let what = match (&input.delivery_ids, input.since, input.until) {
                (Some(ids), None, None) if !ids.is_empty() => {
                    bounded("deliveryIds", ids)?;
                    let rows = ids
                        .iter()
                        .map(|d| input_row(d, NodeType::WebhookDelivery, "deliveryIds"))
                        .collect::<Result<std::collections::BTreeSet<i64>, _>>()?;
                    Replay::Ids(rows.into_iter().collect())
                }
                (None, Some(since), Some(until)) => Replay::Range { since, until },
                _ => return Err(WebhookError::ReplayWhat),
            };
            Ok((id, what))
        })();
        let deliveries = |rows: Vec<_>| rows.into_iter().map(WebhookDelivery).collect();
        let replayed = async |txn: &_, (id, what)| rules::replay(txn, &caller, id, what).await;
        let payload: WebhookDeliveriesReplayPayload = mutate(ctx, parsed, deliveries, replayed).await?;
        wake_if_done(hooks, &payload.user_errors);
        Ok(payload)
    }
}

async fn set_enabled(ctx: &Context<'_>, input: WebhookEndpointInput, enabled: bool) -> Result<WebhookEndpointPayload> {
    let caller = manager(ctx, if enabled { "enable webhook endpoints" } else { "disable webhook endpoints" })?;
    let changed = async |txn: &_, id| rules::set_enabled(txn, &caller, id, enabled).await;
    let payload: WebhookEndpointPayload = mutate(ctx, input.parse(), WebhookEndpoint, changed).await?;
    if enabled {
        wake_if_done(webhooks(ctx)?, &payload.user_errors);
    }
    Ok(payload)
}

/// Wakes the delivery worker for what a mutation queued, unless a rule refused it (nothing
/// was written).
fn wake_if_done(hooks: &Webhooks, user_errors: &[UserError]) {
    if user_errors.is_empty() {
        hooks.wake();
    }
}
