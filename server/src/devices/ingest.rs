//! Ingest: device messages in, normalised events stored once, receipts for every message, and
//! dead letters for what could not be stored — nothing acknowledged is lost.
//!
//! A message is decoded by its product's active adapter outside any transaction; then one
//! write transaction per request stores, per message, a receipt and its events (idempotent on
//! device + supplier event id) or a dead letter holding the original bytes. A message whose
//! decode failed for a reason that is not the message's fault (the host at its instance limit)
//! is answered `RETRY` and not acknowledged.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use velferd_plugins::{DecodeError, Event};

use super::adapter_limits::RequestedLimits;
use super::runtime::Compiled;

use super::content_type::ContentType;
use super::model::{
    AdapterStatus, IngestOutcome, adapter, dead_letter, device, device_event, device_product, ingest_receipt,
};
use super::runtime::{AdapterRuntime, Call, Input};
use crate::db::Database;
use crate::errors::ApiError;
use crate::ids::{NodeType, global_id};
use crate::live::{Announcement, Live, Scope, Topic};
use crate::organizations::model as organization;

/// One device message as the supplier sent it, its content type parsed at the edge.
#[derive(Debug, Clone)]
pub struct Message {
    pub content_type: ContentType,
    pub body: Arc<[u8]>,
}

/// How one message was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageStatus {
    /// Stored: its new events are kept (a message with no events is accepted too).
    Accepted,
    /// Every event in it was stored before.
    Duplicate,
    /// Kept as a dead letter, with the reason; it can be replayed later.
    Rejected,
    /// Not acknowledged: send it again later.
    Retry,
    /// Not acknowledged and never will be: over the size limit or with an invalid content type
    /// (batch form only; the single form answers 413 or 400).
    Refused,
}

/// Why a message became a dead letter (or must be retried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

/// The answer for one message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageResult {
    pub status: MessageStatus,
    /// The receipt of an acknowledged message.
    pub receipt_id: Option<i64>,
    pub events_stored: u32,
    pub events_duplicate: u32,
    /// The dead letter's global id, for `REJECTED`.
    pub dead_letter_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl MessageResult {
    fn retry(why: Reason) -> MessageResult {
        MessageResult {
            status: MessageStatus::Retry,
            receipt_id: None,
            events_stored: 0,
            events_duplicate: 0,
            dead_letter_id: None,
            reason: Some(why),
        }
    }
}

/// The answer for a request: counts of messages by status and one result per message, in
/// order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestReply {
    pub accepted: u32,
    pub duplicate: u32,
    pub rejected: u32,
    pub retry: u32,
    pub refused: u32,
    pub results: Vec<MessageResult>,
}

impl IngestReply {
    pub fn of(results: Vec<MessageResult>) -> IngestReply {
        let count = |s: MessageStatus| results.iter().filter(|r| r.status == s).count() as u32;
        IngestReply {
            accepted: count(MessageStatus::Accepted),
            duplicate: count(MessageStatus::Duplicate),
            rejected: count(MessageStatus::Rejected),
            retry: count(MessageStatus::Retry),
            refused: count(MessageStatus::Refused),
            results,
        }
    }
}

/// What decoding one message came to.
enum Decoded {
    Events(Vec<Event>),
    Failed(Reason),
    Retry(Reason),
}

fn reason(code: &str, message: impl Into<String>) -> Reason {
    Reason { code: code.to_string(), message: message.into() }
}

/// A product as ingest reads it for each request: its row, its active adapter's id and its
/// supplier, in one statement instead of three (the supplier is, for a sender allowed to post,
/// the caller's own organisation: see `auth::Grant::of_named_organization`).
#[derive(Debug, Clone)]
pub struct IngestProduct {
    pub product: device_product::Model,
    pub active_adapter_id: Option<i64>,
    pub supplier: organization::Model,
}

/// The product columns of [`product_for_ingest`]'s row, with the active adapter's id.
#[derive(Debug, sea_orm::FromQueryResult)]
struct ProductRow {
    id: i64,
    supplier_id: i64,
    slug: String,
    created_at: sea_orm::prelude::DateTimeWithTimeZone,
    dead_letter_bytes: i64,
    active_adapter_id: Option<i64>,
}

/// The product posted to as `slug`, with its active adapter's id and its supplier.
pub async fn product_for_ingest<C: ConnectionTrait>(db: &C, slug: &str) -> Result<Option<IngestProduct>, DbErr> {
    use sea_orm::sea_query::{SimpleExpr, SubQueryStatement};
    use sea_orm::{EntityTrait as _, JoinType, QueryTrait};
    let active = adapter::Entity::find()
        .select_only()
        .column(adapter::Column::Id)
        .filter(adapter::Column::Status.eq(AdapterStatus::Active))
        .filter(
            Expr::col((adapter::Entity, adapter::Column::ProductId))
                .equals((device_product::Entity, device_product::Column::Id)),
        )
        .limit(1)
        .into_query();
    let supplier = device_product::Entity::belongs_to(organization::Entity)
        .from(device_product::Column::SupplierId)
        .to(organization::Column::Id)
        .into();
    let row = device_product::Entity::find()
        .column_as(
            SimpleExpr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(active))),
            "active_adapter_id",
        )
        .join(JoinType::InnerJoin, supplier)
        .select_also(organization::Entity)
        .filter(device_product::Column::Slug.eq(slug))
        .into_model::<ProductRow, organization::Model>()
        .one(db)
        .await?;
    Ok(row.and_then(|(row, supplier)| {
        Some(IngestProduct {
            product: device_product::Model {
                id: row.id,
                supplier_id: row.supplier_id,
                slug: row.slug,
                created_at: row.created_at,
                dead_letter_bytes: row.dead_letter_bytes,
            },
            active_adapter_id: row.active_adapter_id,
            supplier: supplier?,
        })
    }))
}

/// Most products kept; past it the cache starts again (there are a few hundred products).
const MOST_PRODUCTS: usize = 4096;

/// The products ingest reads on every request — row, active adapter and supplier — kept for
/// `VELFERD_INGEST_PRODUCT_FRESH_MS` (1 s), so that a sender's steady stream costs one read a
/// second instead of one a message (on PostgreSQL two round trips: the read and the pool's check
/// of the connection it gives back). An adapter activated, rolled back or retired on this
/// instance is used for the next message at once ([`IngestProducts::changed`]); on other
/// instances within the freshness, as token revocations are. Only products that exist are kept:
/// an unknown slug is read every time, so strangers cannot fill the cache.
#[derive(Debug, Default)]
pub struct IngestProducts {
    fresh: std::time::Duration,
    kept: std::sync::Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// Counts [`IngestProducts::changed`]: a read that began before a change is not kept.
    generation: u64,
    by_slug: HashMap<String, (std::time::Instant, Arc<IngestProduct>)>,
}

impl IngestProducts {
    /// Products used for `fresh` after they are read.
    pub fn new(fresh: std::time::Duration) -> IngestProducts {
        IngestProducts { fresh, kept: std::sync::Mutex::default() }
    }

    /// The product posted to as `slug`, read at most the freshness ago.
    pub async fn get<C: ConnectionTrait>(&self, db: &C, slug: &str) -> Result<Option<Arc<IngestProduct>>, DbErr> {
        let read_at = std::time::Instant::now();
        let generation = {
            let kept = self.kept.lock().expect("product cache lock");
            if let Some((at, product)) = kept.by_slug.get(slug)
                && read_at.duration_since(*at) < self.fresh
            {
                return Ok(Some(product.clone()));
            }
            kept.generation
        };
        let Some(product) = product_for_ingest(db, slug).await? else { return Ok(None) };
        let product = Arc::new(product);
        let mut kept = self.kept.lock().expect("product cache lock");
        if kept.generation == generation {
            if kept.by_slug.len() >= MOST_PRODUCTS {
                kept.by_slug.clear();
            }
            kept.by_slug.insert(slug.to_string(), (read_at, product.clone()));
        }
        Ok(Some(product))
    }

    /// Forgets every product read: a product's active adapter changed on this instance (called
    /// after the change committed).
    pub fn changed(&self) {
        let mut kept = self.kept.lock().expect("product cache lock");
        kept.generation += 1;
        kept.by_slug.clear();
    }
}

/// The product's active adapter, compiled (from the cache after the first message).
pub async fn active_adapter(
    db: &Database,
    runtime: &AdapterRuntime,
    product_id: i64,
) -> Result<Option<(i64, Result<Compiled, String>)>, ApiError> {
    let id: Option<i64> = adapter::Entity::find()
        .select_only()
        .column(adapter::Column::Id)
        .filter(adapter::Column::ProductId.eq(product_id))
        .filter(adapter::Column::Status.eq(AdapterStatus::Active))
        .into_tuple()
        .one(db.read())
        .await?;
    compiled_active(db, runtime, id).await
}

/// The active adapter `id` (if any), compiled.
async fn compiled_active(
    db: &Database,
    runtime: &AdapterRuntime,
    id: Option<i64>,
) -> Result<Option<(i64, Result<Compiled, String>)>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    compiled(db, runtime, id).await.map(|a| Some((id, a)))
}

/// Adapter `id`, compiled for the limits it asked for (approved, once it is active); `Err` when
/// its stored component no longer validates (e.g. the limits were lowered since it was
/// uploaded).
pub async fn compiled(db: &Database, runtime: &AdapterRuntime, id: i64) -> Result<Result<Compiled, String>, ApiError> {
    if let Some(hit) = runtime.cached(id) {
        return Ok(Ok(hit));
    }
    let row = adapter::Entity::find_by_id(id)
        .into_partial_model::<adapter::Summary>()
        .one(db.read())
        .await?
        .ok_or_else(|| ApiError::internal(format!("adapter {id} vanished")))?;
    let component: Option<Vec<u8>> = adapter::Entity::find_by_id(id)
        .select_only()
        .column(adapter::Column::Component)
        .into_tuple()
        .one(db.read())
        .await?;
    let component = component.ok_or_else(|| ApiError::internal(format!("adapter {id} vanished")))?;
    let limits = RequestedLimits::of(&row).effective(runtime.limits());
    Ok(runtime.compile(id, component, &limits).await.map_err(|e| e.to_string()))
}

/// Decodes `messages` of `product` with its active adapter (as [`compiled_active`] found it),
/// in as few trips to the adapter slots as the runtime's turns allow; one answer per message.
async fn decode_all(
    runtime: &AdapterRuntime,
    product_id: i64,
    active: &Option<(i64, Result<Compiled, String>)>,
    key: &str,
    messages: &[Message],
    received_at: DateTime<Utc>,
) -> Vec<Decoded> {
    let failed = |why: Reason| messages.iter().map(|_| Decoded::Failed(why.clone())).collect();
    let (id, adapter) = match active {
        None => {
            return failed(reason("no-active-adapter", "the product has no active adapter yet; the message is kept"));
        }
        Some((_, Err(e))) => return failed(reason("adapter-unavailable", e.clone())),
        Some((id, Ok(adapter))) => (*id, adapter),
    };
    let inputs = messages
        .iter()
        .map(|m| Input { content_type: m.content_type.as_str().to_string(), payload: m.body.clone() })
        .collect();
    let calls = runtime.decode_all(product_id, id, adapter, key, inputs, received_at).await;
    calls
        .into_iter()
        .map(|call| match call {
            Call::Ran(Ok(events)) => Decoded::Events(events),
            Call::Ran(Err(e)) if e.is_retryable() => Decoded::Retry(reason(e.code(), e.to_string())),
            Call::Ran(Err(e)) => Decoded::Failed(decode_reason(&e)),
            Call::Quarantined => Decoded::Failed(reason(
                "adapter-quarantined",
                "the active adapter kept running into its limits and is paused; the message is kept for replay",
            )),
        })
        .collect()
}

fn decode_reason(e: &DecodeError) -> Reason {
    reason(e.code(), e.to_string())
}

/// Ingests messages for `product`: decodes each with the active adapter, then hands them to
/// the writer, which stores them together with other requests' messages in one transaction.
pub async fn ingest(
    db: &Database,
    runtime: &AdapterRuntime,
    writer: &IngestWriter,
    product: &IngestProduct,
    messages: Vec<Message>,
    retention: u32,
    dead_letter_quota: u64,
) -> Result<IngestReply, ApiError> {
    let received_at = Utc::now();
    let active = compiled_active(db, runtime, product.active_adapter_id).await?;
    let product = &product.product;
    let decoded = decode_all(runtime, product.id, &active, &product.slug, &messages, received_at).await;
    let items: Vec<(Message, Decoded)> = messages.into_iter().zip(decoded).collect();
    crate::failpoint::hit(crate::failpoint::Point::AfterDecode);
    let adapter_id = active.as_ref().map(|(id, _)| *id);
    let (reply, answer) = oneshot::channel();
    let pending =
        Pending { product_id: product.id, adapter_id, retention, dead_letter_quota, received_at, items, reply };
    writer.queue.send(pending).await.map_err(|_| ApiError::internal("the ingest writer stopped"))?;
    let results = answer
        .await
        .map_err(|_| ApiError::internal("the ingest writer dropped a request"))?
        .map_err(ApiError::internal)?;
    Ok(IngestReply::of(results))
}

/// Most messages one group transaction takes; the rest wait for the next.
const MAX_GROUP: usize = 512;

/// One request's decoded messages, waiting for the writer.
struct Pending {
    product_id: i64,
    adapter_id: Option<i64>,
    retention: u32,
    /// Bytes of unresolved dead letters the product may keep.
    dead_letter_quota: u64,
    received_at: DateTime<Utc>,
    items: Vec<(Message, Decoded)>,
    reply: oneshot::Sender<Result<Vec<MessageResult>, String>>,
}

/// Group commit for ingest: one task writes whatever requests are waiting in one transaction,
/// so concurrent senders share a commit (and, on SQLite, the one write connection) instead of
/// queueing for one each. A failed transaction fails every request in it with 503: none of
/// them was acknowledged, so the senders retry and idempotency sorts out the rest.
#[derive(Clone)]
pub struct IngestWriter {
    queue: mpsc::Sender<Pending>,
}

impl IngestWriter {
    /// Starts the writer task on the current Tokio runtime. Stored events are announced on
    /// `live` in the transaction that stores them.
    pub fn start(db: Database, live: Live) -> IngestWriter {
        let (queue, mut waiting) = mpsc::channel::<Pending>(1024);
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut size = first.items.len();
                let mut group = vec![first];
                while size < MAX_GROUP {
                    let Ok(next) = waiting.try_recv() else { break };
                    size += next.items.len();
                    group.push(next);
                }
                // A panic must not take the writer (and all ingest after it) down with it.
                let written = AssertUnwindSafe(write_group(&db, &live, &mut group)).catch_unwind().await;
                match written {
                    Ok(Ok(results)) => {
                        for (pending, results) in group.into_iter().zip(results) {
                            let _ = pending.reply.send(Ok(results));
                        }
                    }
                    failed => {
                        let message = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "the ingest writer panicked".to_string(),
                        };
                        for pending in group {
                            let _ = pending.reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        IngestWriter { queue }
    }
}

/// Writes a group of requests in one transaction; one result list per request.
async fn write_group(db: &Database, live: &Live, group: &mut [Pending]) -> Result<Vec<Vec<MessageResult>>, DbErr> {
    let txn = db.write().begin().await?;
    let mut named: Vec<(i64, &str)> = Vec::new();
    for pending in group.iter() {
        for (_, decoded) in &pending.items {
            if let Decoded::Events(events) = decoded {
                named.extend(events.iter().map(|e| (pending.product_id, e.device_serial.as_str())));
            }
        }
    }
    let devices = devices_by_serial(&txn, &named).await?;
    // A transaction that changes a product's dead letters takes the product's row (its
    // dead-letter counter) first, in id order, so that writers on other instances and replays
    // queue behind each other instead of deadlocking on dead letters and counters.
    let mut rejecting: Vec<i64> = group
        .iter()
        .filter(|p| {
            p.items.iter().any(|(_, decoded)| match decoded {
                Decoded::Failed(_) => true,
                Decoded::Events(events) => unknown_serial(p.product_id, events, &devices).is_some(),
                Decoded::Retry(_) => false,
            })
        })
        .map(|p| p.product_id)
        .collect();
    rejecting.sort_unstable();
    rejecting.dedup();
    for product_id in rejecting {
        add_dead_letter_bytes(&txn, product_id, 0, None).await?;
    }
    let mut results: Vec<Vec<Option<MessageResult>>> = group.iter().map(|p| vec![None; p.items.len()]).collect();
    let mut accepted = Vec::new();
    for (g, pending) in group.iter_mut().enumerate() {
        let (product_id, adapter_id, received_at) = (pending.product_id, pending.adapter_id, pending.received_at);
        let quota = Some(pending.dead_letter_quota);
        for (i, (message, decoded)) in pending.items.drain(..).enumerate() {
            match decoded {
                Decoded::Retry(why) => results[g][i] = Some(MessageResult::retry(why)),
                Decoded::Failed(why) => {
                    results[g][i] =
                        Some(reject(&txn, product_id, adapter_id, &message, why, None, received_at, quota).await?)
                }
                Decoded::Events(events) => match unknown_serial(product_id, &events, &devices) {
                    Some(serial) => {
                        let why = reason(
                            "unknown-device",
                            format!("no device {serial:?} of this product is registered; the message is kept"),
                        );
                        results[g][i] = Some(
                            reject(&txn, product_id, adapter_id, &message, why, Some(serial), received_at, quota)
                                .await?,
                        )
                    }
                    None => accepted.push((
                        (g, i),
                        Accepted {
                            product_id,
                            adapter_id: adapter_id.expect("events come from an adapter"),
                            message,
                            events,
                            received_at,
                            keep_body: true,
                        },
                    )),
                },
            }
        }
    }
    let (slots, accepted): (Vec<_>, Vec<_>) = accepted.into_iter().unzip();
    let (accepted, stored) = accept_all(&txn, accepted, &devices).await?;
    for ((g, i), result) in slots.into_iter().zip(accepted) {
        results[g][i] = Some(result);
    }
    // Every 64th receipt prunes its product's replay bodies, in whichever request it falls: a
    // batch of 64 or more messages always holds one. (Pruning only when a request's *last*
    // receipt was the 64th let batches keep every body, and the next single message after
    // hundreds of thousands of batched ones paid for nulling them all.)
    for (pending, results) in group.iter().zip(&results) {
        if results.iter().flatten().filter_map(|r| r.receipt_id).any(|id| id % 64 == 0) {
            prune_bodies(&txn, pending.product_id, pending.retention).await?;
        }
    }
    let alerts = crate::alerts::rules::raise_for_events(&txn, &stored).await?;
    // Last: announcing holds the outbox counter until the commit.
    announce_stored(&txn, live, stored, &devices).await?;
    crate::alerts::live::publish(&txn, live, alerts).await?;
    txn.commit().await?;
    crate::failpoint::hit(crate::failpoint::Point::AfterCommit);
    Ok(results.into_iter().map(|r| r.into_iter().map(|r| r.expect("every message answered")).collect()).collect())
}

/// The outbox payload of a stored device event (topic `device-event`): the event's row. Its
/// scope is the device's municipality and the product's supplier, who decide who may hear it.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct LiveDeviceEvent {
    pub event: device_event::Model,
}

/// Announces `events`, just stored in `txn` (in id order: the order they were stored), each to
/// its device's municipality and product's supplier, as `devices` (read in the same
/// transaction) has them.
async fn announce_stored(
    txn: &sea_orm::DatabaseTransaction,
    live: &Live,
    events: Vec<device_event::Model>,
    devices: &DeviceIds,
) -> Result<(), DbErr> {
    let scopes: HashMap<i64, Scope> = devices.values().map(|device| (device.id, device.scope)).collect();
    let announcements = events
        .into_iter()
        .filter_map(|event| {
            let scope = *scopes.get(&event.device_id)?;
            Some(Announcement::new(Topic::DeviceEvent, scope, &LiveDeviceEvent { event }))
        })
        .collect();
    live.publish_all(txn, announcements).await?;
    Ok(())
}

/// A registered device as ingest needs it: its id, and who hears of its events.
#[derive(Debug, Clone, Copy)]
struct Registered {
    id: i64,
    /// The device's municipality and its product's supplier.
    scope: Scope,
}

/// Registered devices by (product, serial).
type DeviceIds = HashMap<(i64, String), Registered>;

/// The devices `named` by (product, serial) that are registered, with their products'
/// suppliers: one read serves the checks, the events' device ids and their announcements.
async fn devices_by_serial<C: ConnectionTrait>(db: &C, named: &[(i64, &str)]) -> Result<DeviceIds, DbErr> {
    use sea_orm::{EntityTrait as _, JoinType};
    let mut named = named.to_vec();
    named.sort_unstable();
    named.dedup();
    let mut found = HashMap::new();
    for chunk in named.chunks(500) {
        let products: Vec<i64> = chunk.iter().map(|(p, _)| *p).collect();
        let product = device::Entity::belongs_to(device_product::Entity)
            .from(device::Column::ProductId)
            .to(device_product::Column::Id)
            .into();
        let rows: Vec<(i64, i64, String, i64, i64)> = device::Entity::find()
            .select_only()
            .column(device::Column::Id)
            .column(device::Column::ProductId)
            .column(device::Column::Serial)
            .column(device::Column::MunicipalityId)
            .column(device_product::Column::SupplierId)
            .join(JoinType::InnerJoin, product)
            .filter(device::Column::ProductId.is_in(products))
            .filter(device::Column::Serial.is_in(chunk.iter().map(|(_, s)| *s)))
            .into_tuple()
            .all(db)
            .await?;
        found.extend(rows.into_iter().map(|(id, product, serial, municipality_id, supplier_id)| {
            let scope = Scope { municipality_id: Some(municipality_id), organization_id: Some(supplier_id) };
            ((product, serial), Registered { id, scope })
        }));
    }
    Ok(found)
}

fn unknown_serial(product_id: i64, events: &[Event], devices: &DeviceIds) -> Option<String> {
    events
        .iter()
        .find(|e| !devices.contains_key(&(product_id, e.device_serial.clone())))
        .map(|e| e.device_serial.clone())
}

fn sha256_hex(body: &[u8]) -> String {
    format!("{:x}", Sha256::digest(body))
}

/// Keys a duplicate check asks for in one statement: 250 pairs are 500 bound parameters.
const STORED_KEYS_CHUNK: usize = 250;

/// The duplicate check: which of these (device, supplier event id) pairs are stored already.
/// Each pair is its own index lookup (`(device = ? AND id = ?) OR …`). Two `IN` lists instead
/// (`device IN (…) AND id IN (…)`) make both SQLite and PostgreSQL probe the unique index for
/// every combination of the lists, devices × ids, and each probe costs more as the index grows:
/// one of the reasons a message cost more the more events were stored (docs/performance.md).
pub fn stored_event_keys(keys: &[(i64, &str)]) -> sea_orm::Select<device_event::Entity> {
    // No pairs asks for no rows, not for every row an empty condition would match.
    let none = Condition::any().add_option(keys.is_empty().then(|| Expr::value(false)));
    let any = keys.iter().fold(none, |any, (device, id)| {
        any.add(device_event::Column::DeviceId.eq(*device).and(device_event::Column::SupplierEventId.eq(*id)))
    });
    device_event::Entity::find()
        .select_only()
        .column(device_event::Column::DeviceId)
        .column(device_event::Column::SupplierEventId)
        .filter(any)
}

/// A decoded message whose devices are all registered.
struct Accepted {
    product_id: i64,
    adapter_id: i64,
    message: Message,
    events: Vec<Event>,
    received_at: DateTime<Utc>,
    /// Keep the body for replay review (fresh traffic, not replays).
    keep_body: bool,
}

/// Stores decoded messages with a receipt each and their new events, with few statements:
/// one query finds which events are stored already, multi-row inserts write the receipts with
/// their final counts and the events (idempotent on device and supplier event id).
async fn accept_all<C: ConnectionTrait>(
    db: &C,
    accepted: Vec<Accepted>,
    devices: &DeviceIds,
) -> Result<(Vec<MessageResult>, Vec<device_event::Model>), DbErr> {
    let device_of = |a: &Accepted, e: &Event| devices[&(a.product_id, e.device_serial.clone())].id;
    let mut seen: HashSet<(i64, String)> = HashSet::new();
    let keys: Vec<(i64, &str)> = accepted
        .iter()
        .flat_map(|a| a.events.iter().map(move |e| (device_of(a, e), e.supplier_event_id.as_str())))
        .collect();
    for chunk in keys.chunks(STORED_KEYS_CHUNK) {
        let rows: Vec<(i64, String)> = stored_event_keys(chunk).into_tuple().all(db).await?;
        seen.extend(rows);
    }
    // Which events of each message are new, and its receipt with the final counts.
    let mut receipts = Vec::with_capacity(accepted.len());
    let mut news = Vec::with_capacity(accepted.len());
    for a in &accepted {
        let new: Vec<&Event> =
            a.events.iter().filter(|e| seen.insert((device_of(a, e), e.supplier_event_id.clone()))).collect();
        let (stored, duplicate) = (new.len() as i32, (a.events.len() - new.len()) as i32);
        let outcome = if stored == 0 && duplicate > 0 { IngestOutcome::Duplicate } else { IngestOutcome::Accepted };
        receipts.push(ingest_receipt::ActiveModel {
            product_id: Set(a.product_id),
            adapter_id: Set(Some(a.adapter_id)),
            received_at: Set(a.received_at.fixed_offset()),
            content_type: Set(a.message.content_type.to_string()),
            body_sha256: Set(sha256_hex(&a.message.body)),
            body: Set(a.keep_body.then(|| a.message.body.to_vec())),
            outcome: Set(outcome),
            events_stored: Set(stored),
            events_duplicate: Set(duplicate),
            dead_letter_id: Set(None),
            ..Default::default()
        });
        news.push(new);
    }
    let receipts = insert_receipts(db, receipts).await?;
    let mut results = Vec::with_capacity(accepted.len());
    let mut rows = Vec::new();
    for ((a, new), receipt) in accepted.iter().zip(news).zip(receipts) {
        rows.extend(new.into_iter().map(|e| device_event::ActiveModel {
            device_id: Set(device_of(a, e)),
            receipt_id: Set(receipt.id),
            adapter_id: Set(a.adapter_id),
            supplier_event_id: Set(e.supplier_event_id.clone()),
            kind: Set(e.kind.name().to_string()),
            vkp_code: Set(e.vkp.map(|v| v.code.to_string())),
            severity: Set(severity_name(e)),
            occurred_at: Set(e.occurred_at.fixed_offset()),
            received_at: Set(a.received_at.fixed_offset()),
            detail: Set(e.detail.clone()),
            data: Set(serde_json::to_string(e).expect("events serialise")),
            ..Default::default()
        }));
        results.push(MessageResult {
            status: if receipt.outcome == IngestOutcome::Duplicate {
                MessageStatus::Duplicate
            } else {
                MessageStatus::Accepted
            },
            receipt_id: Some(receipt.id),
            events_stored: receipt.events_stored as u32,
            events_duplicate: receipt.events_duplicate as u32,
            dead_letter_id: None,
            reason: None,
        });
    }
    super::rules::record_last_seen(db, &rows).await?;
    // The inserted rows come back (`RETURNING`), so alerts and the outbox need not read them
    // again; a row another writer stored meanwhile is not inserted and not returned.
    let mut stored = Vec::with_capacity(rows.len());
    // 200 rows of 11 columns stay far below SQLite's limit on bound parameters.
    let mut chunks = rows.into_iter().peekable();
    while chunks.peek().is_some() {
        let chunk: Vec<_> = chunks.by_ref().take(200).collect();
        stored.extend(
            device_event::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([device_event::Column::DeviceId, device_event::Column::SupplierEventId])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_with_returning(db)
                .await?,
        );
    }
    // Neither back end promises the order of `RETURNING` rows; ids follow the insert's order.
    stored.sort_unstable_by_key(|e| e.id);
    Ok((results, stored))
}

/// Receipts written by one statement at most.
const RECEIPTS_PER_INSERT: usize = 200;

/// Inserts `receipts` with one multi-row statement per [`RECEIPTS_PER_INSERT`] (a single message
/// used to cost a statement of its own) and answers the stored rows in the order given. Both
/// back ends number a multi-row insert's rows in the order of its values, but neither promises
/// the order `RETURNING` answers them in: the rows are put in id order, and each is checked
/// against the receipt it must be. A mismatch fails the whole group (503, nothing acknowledged)
/// rather than answer a message with another's receipt.
async fn insert_receipts<C: ConnectionTrait>(
    db: &C,
    receipts: Vec<ingest_receipt::ActiveModel>,
) -> Result<Vec<ingest_receipt::Model>, DbErr> {
    let mut stored = Vec::with_capacity(receipts.len());
    let mut chunks = receipts.into_iter().peekable();
    while chunks.peek().is_some() {
        let chunk: Vec<ingest_receipt::ActiveModel> = chunks.by_ref().take(RECEIPTS_PER_INSERT).collect();
        let expected: Vec<(String, i32, i32)> = chunk
            .iter()
            .map(|r| (r.body_sha256.as_ref().clone(), *r.events_stored.as_ref(), *r.events_duplicate.as_ref()))
            .collect();
        let mut rows = ingest_receipt::Entity::insert_many(chunk).exec_with_returning(db).await?;
        rows.sort_unstable_by_key(|r| r.id);
        let matches = rows.len() == expected.len()
            && rows.iter().zip(&expected).all(|(row, (sha, new, duplicate))| {
                (&row.body_sha256, row.events_stored, row.events_duplicate) == (sha, *new, *duplicate)
            });
        if !matches {
            return Err(DbErr::Custom("the stored receipts do not match the messages in insert order".into()));
        }
        stored.extend(rows);
    }
    Ok(stored)
}

fn severity_name(e: &Event) -> String {
    serde_json::to_value(e.severity).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Keeps a message as a dead letter (one per message identity — product, content type and
/// bytes: the same message sent again updates the same dead letter) and writes its receipt. A
/// new dead letter that would take the product's unresolved dead letters over `quota` bytes is
/// not kept: the message is answered `RETRY` (reason `dead-letter-quota`) and nothing is written,
/// so the sender keeps it until the supplier has fixed and replayed what is stuck.
#[allow(clippy::too_many_arguments)]
async fn reject<C: ConnectionTrait>(
    db: &C,
    product_id: i64,
    adapter_id: Option<i64>,
    message: &Message,
    why: Reason,
    device_serial: Option<String>,
    received_at: DateTime<Utc>,
    quota: Option<u64>,
) -> Result<MessageResult, DbErr> {
    let sha = sha256_hex(&message.body);
    let key = velferd_migration::message_key(product_id, message.content_type.as_str(), &message.body);
    let existing = dead_letter::Entity::find()
        .filter(dead_letter::Column::ProductId.eq(product_id))
        .filter(dead_letter::Column::MessageKey.eq(&key))
        .one(db)
        .await?;
    let now = received_at.fixed_offset();
    let bytes = i64::try_from(message.body.len()).unwrap_or(i64::MAX);
    let dead_letter_id = match existing {
        Some(letter) => {
            // A resolved dead letter seen again is reopened: its bytes count again (it was kept
            // before, so the quota does not refuse it). Only the update that clears
            // `resolved_at` adds them, so a concurrent replay cannot make them count twice.
            let reopened = dead_letter::Entity::update_many()
                .col_expr(
                    dead_letter::Column::ResolvedAt,
                    Expr::value(Option::<sea_orm::prelude::DateTimeWithTimeZone>::None),
                )
                .filter(dead_letter::Column::Id.eq(letter.id))
                .filter(dead_letter::Column::ResolvedAt.is_not_null())
                .exec(db)
                .await?;
            if reopened.rows_affected > 0 {
                add_dead_letter_bytes(db, product_id, bytes, None).await?;
            }
            dead_letter::Entity::update_many()
                .col_expr(dead_letter::Column::Attempts, Expr::col(dead_letter::Column::Attempts).add(1))
                .col_expr(dead_letter::Column::LastReceivedAt, Expr::value(now))
                .col_expr(dead_letter::Column::ReasonCode, Expr::value(why.code.clone()))
                .col_expr(dead_letter::Column::Reason, Expr::value(why.message.clone()))
                .col_expr(dead_letter::Column::DeviceSerial, Expr::value(device_serial))
                .col_expr(dead_letter::Column::AdapterId, Expr::value(adapter_id))
                .filter(dead_letter::Column::Id.eq(letter.id))
                .exec(db)
                .await?;
            letter.id
        }
        None => {
            if !add_dead_letter_bytes(db, product_id, bytes, quota).await? {
                let used = dead_letter_bytes(db, product_id).await?;
                let quota = quota.unwrap_or(u64::MAX);
                let why = reason(
                    DEAD_LETTER_QUOTA,
                    format!(
                        "the product keeps {used} bytes of unresolved dead letters, its quota is {quota}; \
                         the message is not kept: send it again once the dead letters are replayed"
                    ),
                );
                return Ok(MessageResult::retry(why));
            }
            dead_letter::ActiveModel {
                product_id: Set(product_id),
                content_type: Set(message.content_type.to_string()),
                body: Set(message.body.to_vec()),
                body_sha256: Set(sha.clone()),
                message_key: Set(key),
                reason_code: Set(why.code.clone()),
                reason: Set(why.message.clone()),
                device_serial: Set(device_serial),
                adapter_id: Set(adapter_id),
                attempts: Set(1),
                first_received_at: Set(now),
                last_received_at: Set(now),
                resolved_at: Set(None),
                ..Default::default()
            }
            .insert(db)
            .await?
            .id
        }
    };
    let receipt = ingest_receipt::ActiveModel {
        product_id: Set(product_id),
        adapter_id: Set(adapter_id),
        received_at: Set(now),
        content_type: Set(message.content_type.to_string()),
        body_sha256: Set(sha),
        // The dead letter holds the body: stored once. Replay review reads it from there.
        body: Set(None),
        outcome: Set(IngestOutcome::Rejected),
        events_stored: Set(0),
        events_duplicate: Set(0),
        dead_letter_id: Set(Some(dead_letter_id)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(MessageResult {
        status: MessageStatus::Rejected,
        receipt_id: Some(receipt.id),
        events_stored: 0,
        events_duplicate: 0,
        dead_letter_id: Some(global_id(NodeType::DeadLetter, dead_letter_id).to_string()),
        reason: Some(why),
    })
}

/// Drops the bodies of all but the `retention` most recent receipts of a product.
async fn prune_bodies<C: ConnectionTrait>(db: &C, product_id: i64, retention: u32) -> Result<(), DbErr> {
    let boundary: Option<i64> = ingest_receipt::Entity::find()
        .select_only()
        .column(ingest_receipt::Column::Id)
        .filter(ingest_receipt::Column::ProductId.eq(product_id))
        .filter(ingest_receipt::Column::Body.is_not_null())
        .order_by_desc(ingest_receipt::Column::Id)
        .offset(u64::from(retention))
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    if let Some(boundary) = boundary {
        ingest_receipt::Entity::update_many()
            .col_expr(ingest_receipt::Column::Body, Expr::value(Option::<Vec<u8>>::None))
            .filter(ingest_receipt::Column::ProductId.eq(product_id))
            .filter(ingest_receipt::Column::Id.lte(boundary))
            .filter(ingest_receipt::Column::Body.is_not_null())
            .exec(db)
            .await?;
    }
    Ok(())
}

/// The reason code of a message refused because its product's dead-letter quota is full.
pub const DEAD_LETTER_QUOTA: &str = "dead-letter-quota";

/// Adds `bytes` (negative: takes them off) to the product's unresolved dead-letter bytes, within
/// `quota` when one is given; `false` when that would go over it, and then nothing changed. One
/// conditional update both checks and adds: it holds the product's row until the transaction
/// ends, so concurrent writers (other instances on PostgreSQL, a replay) see each other's bytes
/// and cannot together pass the quota.
async fn add_dead_letter_bytes<C: ConnectionTrait>(
    db: &C,
    product_id: i64,
    bytes: i64,
    quota: Option<u64>,
) -> Result<bool, DbErr> {
    let sum = Expr::col(device_product::Column::DeadLetterBytes).add(bytes);
    let mut update = device_product::Entity::update_many()
        .col_expr(device_product::Column::DeadLetterBytes, sum.clone())
        .filter(device_product::Column::Id.eq(product_id));
    if let Some(quota) = quota {
        update = update.filter(sum.lte(i64::try_from(quota).unwrap_or(i64::MAX)));
    }
    Ok(update.exec(db).await?.rows_affected > 0)
}

/// Bytes of the product's unresolved dead letters: what its quota counts.
pub async fn dead_letter_bytes<C: ConnectionTrait>(db: &C, product_id: i64) -> Result<u64, DbErr> {
    let bytes: Option<i64> = device_product::Entity::find_by_id(product_id)
        .select_only()
        .column(device_product::Column::DeadLetterBytes)
        .into_tuple()
        .one(db)
        .await?;
    Ok(bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0)))
}

/// What replaying one dead letter came to.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    pub dead_letter_id: i64,
    pub result: MessageResult,
}

/// Replays unresolved dead letters of a product through its active adapter (all of them up to
/// `limit`, or those in `ids`). A dead letter that now decodes and names registered devices
/// becomes events (idempotently) and is marked resolved; one that still fails keeps the new
/// reason.
pub async fn replay_dead_letters(
    db: &Database,
    live: &Live,
    runtime: &AdapterRuntime,
    product: &device_product::Model,
    ids: Option<Vec<i64>>,
    limit: u64,
) -> Result<Vec<ReplayOutcome>, ApiError> {
    let mut select = dead_letter::Entity::find()
        .filter(dead_letter::Column::ProductId.eq(product.id))
        .filter(dead_letter::Column::ResolvedAt.is_null())
        .order_by_asc(dead_letter::Column::Id)
        .limit(limit);
    if let Some(ids) = ids {
        select = select.filter(dead_letter::Column::Id.is_in(ids));
    }
    let letters = select.all(db.read()).await?;
    let active = active_adapter(db, runtime, product.id).await?;
    let adapter_id = active.as_ref().map(|(id, _)| *id);
    let now = Utc::now();
    let messages: Vec<Message> = letters
        .iter()
        .map(|letter| Message {
            content_type: ContentType::from_stored(&letter.content_type),
            body: Arc::from(letter.body.as_slice()),
        })
        .collect();
    let decoded = decode_all(runtime, product.id, &active, &product.slug, &messages, now).await;
    let txn = db.write().begin().await?;
    // The product's row first, as the ingest writer takes it (see `write_group`).
    add_dead_letter_bytes(&txn, product.id, 0, None).await?;
    let named: Vec<(i64, &str)> = decoded
        .iter()
        .filter_map(|d| match d {
            Decoded::Events(events) => Some(events.iter().map(|e| (product.id, e.device_serial.as_str()))),
            _ => None,
        })
        .flatten()
        .collect();
    let devices = devices_by_serial(&txn, &named).await?;
    let mut outcomes = Vec::with_capacity(letters.len());
    let mut stored = Vec::new();
    for ((letter, message), decoded) in letters.into_iter().zip(messages).zip(decoded) {
        let failure = match decoded {
            Decoded::Retry(why) | Decoded::Failed(why) => Some((why, None)),
            Decoded::Events(events) => match unknown_serial(product.id, &events, &devices) {
                Some(serial) => Some((
                    reason("unknown-device", format!("no device {serial:?} of this product is registered")),
                    Some(serial),
                )),
                None => {
                    let adapter_id = adapter_id.expect("events come from an adapter");
                    let replayed = Accepted {
                        product_id: product.id,
                        adapter_id,
                        message,
                        events,
                        received_at: now,
                        keep_body: false,
                    };
                    let (mut results, events) = accept_all(&txn, vec![replayed], &devices).await?;
                    let result = results.remove(0);
                    stored.extend(events);
                    let resolved = dead_letter::Entity::update_many()
                        .col_expr(dead_letter::Column::ResolvedAt, Expr::value(now.fixed_offset()))
                        .col_expr(dead_letter::Column::AdapterId, Expr::value(adapter_id))
                        .col_expr(dead_letter::Column::Attempts, Expr::col(dead_letter::Column::Attempts).add(1))
                        .filter(dead_letter::Column::Id.eq(letter.id))
                        .filter(dead_letter::Column::ResolvedAt.is_null())
                        .exec(&txn)
                        .await?;
                    // Only the replay that resolved it takes its bytes off (a concurrent one
                    // finds it resolved already).
                    if resolved.rows_affected > 0 {
                        let bytes = i64::try_from(letter.body.len()).unwrap_or(i64::MAX);
                        add_dead_letter_bytes(&txn, product.id, -bytes, None).await?;
                    }
                    outcomes.push(ReplayOutcome { dead_letter_id: letter.id, result });
                    None
                }
            },
        };
        if let Some((why, serial)) = failure {
            dead_letter::Entity::update_many()
                .col_expr(dead_letter::Column::ReasonCode, Expr::value(why.code.clone()))
                .col_expr(dead_letter::Column::Reason, Expr::value(why.message.clone()))
                .col_expr(dead_letter::Column::DeviceSerial, Expr::value(serial))
                .col_expr(dead_letter::Column::AdapterId, Expr::value(adapter_id))
                .col_expr(dead_letter::Column::Attempts, Expr::col(dead_letter::Column::Attempts).add(1))
                .filter(dead_letter::Column::Id.eq(letter.id))
                .exec(&txn)
                .await?;
            outcomes.push(ReplayOutcome {
                dead_letter_id: letter.id,
                result: MessageResult {
                    status: MessageStatus::Rejected,
                    receipt_id: None,
                    events_stored: 0,
                    events_duplicate: 0,
                    dead_letter_id: Some(global_id(NodeType::DeadLetter, letter.id).to_string()),
                    reason: Some(why),
                },
            });
        }
    }
    // Replayed events need a human as much as fresh ones: an alarm never decoded was never handled.
    let alerts = crate::alerts::rules::raise_for_events(&txn, &stored).await?;
    announce_stored(&txn, live, stored, &devices).await?;
    crate::alerts::live::publish(&txn, live, alerts).await?;
    txn.commit().await?;
    Ok(outcomes)
}

/// The most recent retained messages of a product, newest first, for replay review.
pub async fn recent_messages(
    db: &Database,
    product_id: i64,
    last: u64,
) -> Result<Vec<ingest_receipt::Model>, ApiError> {
    // Accepted messages keep their body on the receipt (the most recent ones); a rejected one
    // the active version saw keeps it on its dead letter, which is read back here.
    let mut receipts = ingest_receipt::Entity::find()
        .filter(ingest_receipt::Column::ProductId.eq(product_id))
        .filter(
            Condition::any().add(ingest_receipt::Column::Body.is_not_null()).add(
                Condition::all()
                    .add(ingest_receipt::Column::DeadLetterId.is_not_null())
                    .add(ingest_receipt::Column::AdapterId.is_not_null()),
            ),
        )
        .order_by_desc(ingest_receipt::Column::Id)
        .limit(last)
        .all(db.read())
        .await?;
    let letters: Vec<i64> = receipts.iter().filter(|r| r.body.is_none()).filter_map(|r| r.dead_letter_id).collect();
    if !letters.is_empty() {
        let bodies: std::collections::HashMap<i64, Vec<u8>> = dead_letter::Entity::find()
            .filter(dead_letter::Column::Id.is_in(letters))
            .all(db.read())
            .await?
            .into_iter()
            .map(|l| (l.id, l.body))
            .collect();
        for receipt in receipts.iter_mut().filter(|r| r.body.is_none()) {
            receipt.body = receipt.dead_letter_id.and_then(|id| bodies.get(&id).cloned());
        }
    }
    Ok(receipts)
}
