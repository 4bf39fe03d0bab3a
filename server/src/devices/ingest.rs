//! Ingest: device messages in, normalised events stored once, receipts for every message, and
//! dead letters for what could not be stored — nothing acknowledged is lost.
//!
//! A message is decoded by its product's active adapter outside any transaction; then one
//! write transaction per request stores, per message, a receipt and its events (idempotent on
//! device + supplier event id) or a dead letter holding the original bytes. A message whose
//! decode failed for a reason that is not the message's fault (the host at its instance limit)
//! is answered `RETRY` and not acknowledged.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use velferd_plugins::{DecodeError, Event, ValidatedAdapter};

use super::model::{AdapterStatus, IngestOutcome, adapter, dead_letter, device, device_event, device_product, ingest_receipt};
use super::runtime::AdapterRuntime;
use crate::db::Database;
use crate::graphql::errors::ApiError;
use crate::graphql::relay::{NodeType, global_id};

/// One device message as the supplier sent it.
#[derive(Debug, Clone)]
pub struct Message {
    pub content_type: String,
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
    /// Not acknowledged and never will be: over the size limit (batch form only; the single
    /// form answers 413).
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

/// The product's active adapter, compiled (from the cache after the first message).
pub async fn active_adapter(
    db: &Database,
    runtime: &AdapterRuntime,
    product_id: i64,
) -> Result<Option<(i64, Result<ValidatedAdapter, String>)>, ApiError> {
    let id: Option<i64> = adapter::Entity::find()
        .select_only()
        .column(adapter::Column::Id)
        .filter(adapter::Column::ProductId.eq(product_id))
        .filter(adapter::Column::Status.eq(AdapterStatus::Active))
        .into_tuple()
        .one(db.read())
        .await?;
    let Some(id) = id else { return Ok(None) };
    compiled(db, runtime, id).await.map(|a| Some((id, a)))
}

/// Adapter `id`, compiled; `Err` when its stored component no longer validates (e.g. the
/// limits were lowered since it was uploaded).
pub async fn compiled(db: &Database, runtime: &AdapterRuntime, id: i64) -> Result<Result<ValidatedAdapter, String>, ApiError> {
    if let Some(hit) = runtime.cached(id) {
        return Ok(Ok(hit));
    }
    let component: Option<Vec<u8>> = adapter::Entity::find_by_id(id)
        .select_only()
        .column(adapter::Column::Component)
        .into_tuple()
        .one(db.read())
        .await?;
    let component = component.ok_or_else(|| ApiError::internal(format!("adapter {id} vanished")))?;
    Ok(runtime.compile(id, component).await.map_err(|e| e.to_string()))
}

async fn decode(
    runtime: &AdapterRuntime,
    active: &Option<(i64, Result<ValidatedAdapter, String>)>,
    key: &str,
    message: &Message,
    received_at: DateTime<Utc>,
) -> Decoded {
    match active {
        None => Decoded::Failed(reason("no-active-adapter", "the product has no active adapter yet; the message is kept")),
        Some((_, Err(e))) => Decoded::Failed(reason("adapter-unavailable", e.clone())),
        Some((id, Ok(_))) if runtime.quarantined_until(*id).is_some() => Decoded::Failed(reason(
            "adapter-quarantined",
            "the active adapter kept running into its limits and is paused; the message is kept for replay",
        )),
        Some((id, Ok(adapter))) => {
            match runtime.decode_guarded(*id, adapter, key, &message.content_type, message.body.clone(), received_at).await {
                Ok(events) => Decoded::Events(events),
                Err(e) if e.is_retryable() => Decoded::Retry(reason(e.code(), e.to_string())),
                Err(e) => Decoded::Failed(decode_reason(&e)),
            }
        }
    }
}

fn decode_reason(e: &DecodeError) -> Reason {
    reason(e.code(), e.to_string())
}

/// Ingests messages for `product`: decodes each with the active adapter, then stores all of
/// them in one transaction. `retention` is how many recent bodies per product are kept for
/// replay review.
pub async fn ingest(
    db: &Database,
    runtime: &AdapterRuntime,
    product: &device_product::Model,
    messages: Vec<Message>,
    retention: u32,
) -> Result<IngestReply, ApiError> {
    let received_at = Utc::now();
    let active = active_adapter(db, runtime, product.id).await?;
    let mut decoded = Vec::with_capacity(messages.len());
    for message in &messages {
        decoded.push(decode(runtime, &active, &product.slug, message, received_at).await);
    }
    let adapter_id = active.as_ref().map(|(id, _)| *id);
    let txn = db.write().begin().await?;
    let devices = devices_named(&txn, product.id, &decoded).await?;
    let mut results = Vec::with_capacity(messages.len());
    for (message, decoded) in messages.iter().zip(decoded) {
        let result = match decoded {
            Decoded::Retry(why) => MessageResult {
                status: MessageStatus::Retry,
                receipt_id: None,
                events_stored: 0,
                events_duplicate: 0,
                dead_letter_id: None,
                reason: Some(why),
            },
            Decoded::Failed(why) => {
                reject(&txn, product.id, adapter_id, message, why, None, received_at).await?
            }
            Decoded::Events(events) => match unknown_serial(&events, &devices) {
                Some(serial) => {
                    let why = reason("unknown-device", format!("no device {serial:?} of this product is registered; the message is kept"));
                    reject(&txn, product.id, adapter_id, message, why, Some(serial), received_at).await?
                }
                None => {
                    let adapter_id = adapter_id.expect("events come from an adapter");
                    accept(&txn, product.id, adapter_id, message, &events, &devices, received_at, true).await?
                }
            },
        };
        results.push(result);
    }
    if let Some(last) = results.iter().filter_map(|r| r.receipt_id).max()
        && last % 64 == 0
    {
        prune_bodies(&txn, product.id, retention).await?;
    }
    txn.commit().await?;
    Ok(IngestReply::of(results))
}

/// The registered devices of the product named by any decoded event, by serial.
async fn devices_named<C: ConnectionTrait>(db: &C, product_id: i64, decoded: &[Decoded]) -> Result<HashMap<String, i64>, DbErr> {
    let mut serials: Vec<&str> = decoded
        .iter()
        .filter_map(|d| match d {
            Decoded::Events(events) => Some(events.iter().map(|e| e.device_serial.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    serials.sort_unstable();
    serials.dedup();
    devices_by_serial(db, product_id, &serials).await
}

async fn devices_by_serial<C: ConnectionTrait>(db: &C, product_id: i64, serials: &[&str]) -> Result<HashMap<String, i64>, DbErr> {
    let mut found = HashMap::new();
    for chunk in serials.chunks(500) {
        let rows: Vec<(i64, String)> = device::Entity::find()
            .select_only()
            .column(device::Column::Id)
            .column(device::Column::Serial)
            .filter(device::Column::ProductId.eq(product_id))
            .filter(device::Column::Serial.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        found.extend(rows.into_iter().map(|(id, serial)| (serial, id)));
    }
    Ok(found)
}

fn unknown_serial(events: &[Event], devices: &HashMap<String, i64>) -> Option<String> {
    events.iter().find(|e| !devices.contains_key(&e.device_serial)).map(|e| e.device_serial.clone())
}

fn sha256_hex(body: &[u8]) -> String {
    format!("{:x}", Sha256::digest(body))
}

/// Stores a decoded message's events with a receipt.
#[allow(clippy::too_many_arguments)]
async fn accept<C: ConnectionTrait>(
    db: &C,
    product_id: i64,
    adapter_id: i64,
    message: &Message,
    events: &[Event],
    devices: &HashMap<String, i64>,
    received_at: DateTime<Utc>,
    keep_body: bool,
) -> Result<MessageResult, DbErr> {
    let total = events.len() as i32;
    let receipt = ingest_receipt::ActiveModel {
        product_id: Set(product_id),
        adapter_id: Set(Some(adapter_id)),
        received_at: Set(received_at.fixed_offset()),
        content_type: Set(message.content_type.clone()),
        body_sha256: Set(sha256_hex(&message.body)),
        body: Set(keep_body.then(|| message.body.to_vec())),
        outcome: Set(IngestOutcome::Accepted),
        events_stored: Set(total),
        events_duplicate: Set(0),
        dead_letter_id: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let stored = store_events(db, receipt.id, adapter_id, events, devices, received_at).await? as i32;
    let duplicate = total - stored;
    let outcome = if total > 0 && stored == 0 { IngestOutcome::Duplicate } else { IngestOutcome::Accepted };
    if duplicate > 0 {
        ingest_receipt::Entity::update_many()
            .col_expr(ingest_receipt::Column::EventsStored, Expr::value(stored))
            .col_expr(ingest_receipt::Column::EventsDuplicate, Expr::value(duplicate))
            .col_expr(ingest_receipt::Column::Outcome, Expr::value(outcome))
            .filter(ingest_receipt::Column::Id.eq(receipt.id))
            .exec(db)
            .await?;
    }
    Ok(MessageResult {
        status: if outcome == IngestOutcome::Duplicate { MessageStatus::Duplicate } else { MessageStatus::Accepted },
        receipt_id: Some(receipt.id),
        events_stored: stored as u32,
        events_duplicate: duplicate as u32,
        dead_letter_id: None,
        reason: None,
    })
}

/// Inserts events, skipping those already stored; returns how many were new.
async fn store_events<C: ConnectionTrait>(
    db: &C,
    receipt_id: i64,
    adapter_id: i64,
    events: &[Event],
    devices: &HashMap<String, i64>,
    received_at: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut stored = 0;
    // A few hundred events at most (the adapter's output cap); chunked for SQLite's limit on
    // bound parameters all the same.
    for chunk in events.chunks(200) {
        let rows = chunk.iter().map(|e| device_event::ActiveModel {
            device_id: Set(devices[&e.device_serial]),
            receipt_id: Set(receipt_id),
            adapter_id: Set(adapter_id),
            supplier_event_id: Set(e.supplier_event_id.clone()),
            kind: Set(e.kind.name().to_string()),
            vkp_code: Set(e.vkp.map(|v| v.code.to_string())),
            severity: Set(severity_name(e)),
            occurred_at: Set(e.occurred_at.fixed_offset()),
            received_at: Set(received_at.fixed_offset()),
            detail: Set(e.detail.clone()),
            data: Set(serde_json::to_string(e).expect("events serialise")),
            ..Default::default()
        });
        stored += device_event::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([device_event::Column::DeviceId, device_event::Column::SupplierEventId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(stored)
}

fn severity_name(e: &Event) -> String {
    serde_json::to_value(e.severity).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Keeps a message as a dead letter (one per distinct body: a message sent again updates the
/// same dead letter) and writes its receipt.
#[allow(clippy::too_many_arguments)]
async fn reject<C: ConnectionTrait>(
    db: &C,
    product_id: i64,
    adapter_id: Option<i64>,
    message: &Message,
    why: Reason,
    device_serial: Option<String>,
    received_at: DateTime<Utc>,
) -> Result<MessageResult, DbErr> {
    let sha = sha256_hex(&message.body);
    let existing = dead_letter::Entity::find()
        .filter(dead_letter::Column::ProductId.eq(product_id))
        .filter(dead_letter::Column::BodySha256.eq(&sha))
        .one(db)
        .await?;
    let now = received_at.fixed_offset();
    let dead_letter_id = match existing {
        Some(letter) => {
            let attempts = letter.attempts + 1;
            let mut letter: dead_letter::ActiveModel = letter.into();
            letter.attempts = Set(attempts);
            letter.last_received_at = Set(now);
            letter.reason_code = Set(why.code.clone());
            letter.reason = Set(why.message.clone());
            letter.device_serial = Set(device_serial);
            letter.adapter_id = Set(adapter_id);
            letter.resolved_at = Set(None);
            letter.update(db).await?.id
        }
        None => {
            dead_letter::ActiveModel {
                product_id: Set(product_id),
                content_type: Set(message.content_type.clone()),
                body: Set(message.body.to_vec()),
                body_sha256: Set(sha.clone()),
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
        content_type: Set(message.content_type.clone()),
        body_sha256: Set(sha),
        // The active version saw it: keep it for replay review like any other message.
        body: Set(adapter_id.map(|_| message.body.to_vec())),
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
    let mut decoded = Vec::with_capacity(letters.len());
    for letter in &letters {
        let message = Message { content_type: letter.content_type.clone(), body: Arc::from(letter.body.as_slice()) };
        decoded.push(decode(runtime, &active, &product.slug, &message, now).await);
    }
    let txn = db.write().begin().await?;
    let devices = devices_named(&txn, product.id, &decoded).await?;
    let mut outcomes = Vec::with_capacity(letters.len());
    for (letter, decoded) in letters.into_iter().zip(decoded) {
        let message = Message { content_type: letter.content_type.clone(), body: Arc::from(letter.body.as_slice()) };
        let failure = match decoded {
            Decoded::Retry(why) | Decoded::Failed(why) => Some((why, None)),
            Decoded::Events(events) => match unknown_serial(&events, &devices) {
                Some(serial) => Some((
                    reason("unknown-device", format!("no device {serial:?} of this product is registered")),
                    Some(serial),
                )),
                None => {
                    let adapter_id = adapter_id.expect("events come from an adapter");
                    let result = accept(&txn, product.id, adapter_id, &message, &events, &devices, now, false).await?;
                    dead_letter::Entity::update_many()
                        .col_expr(dead_letter::Column::ResolvedAt, Expr::value(now.fixed_offset()))
                        .col_expr(dead_letter::Column::AdapterId, Expr::value(adapter_id))
                        .col_expr(dead_letter::Column::Attempts, Expr::col(dead_letter::Column::Attempts).add(1))
                        .filter(dead_letter::Column::Id.eq(letter.id))
                        .exec(&txn)
                        .await?;
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
    txn.commit().await?;
    Ok(outcomes)
}

/// The most recent retained messages of a product, newest first, for replay review.
pub async fn recent_messages(db: &Database, product_id: i64, last: u64) -> Result<Vec<ingest_receipt::Model>, ApiError> {
    Ok(ingest_receipt::Entity::find()
        .filter(ingest_receipt::Column::ProductId.eq(product_id))
        .filter(ingest_receipt::Column::Body.is_not_null())
        .order_by_desc(ingest_receipt::Column::Id)
        .limit(last)
        .all(db.read())
        .await?)
}

