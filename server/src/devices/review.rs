//! Review by replay: run a candidate adapter version and the active one over the same recent
//! messages and show, message by message, where their events differ.

use std::sync::Arc;

use async_graphql::{Enum, Json, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;
use velferd_plugins::{DecodeError, Event};

use super::adapter_limits::{EffectiveLimits, RequestedLimits};
use super::graphql::Adapter;
use super::ingest::{self, recent_messages};
use super::model::LimitsApproval;
use super::model::device_product;
use super::runtime::{AdapterRuntime, Compiled};
use crate::db::Database;
use crate::errors::ApiError;

/// A candidate version replayed against the active one.
#[derive(SimpleObject)]
pub struct ReplayReview {
    /// The version active now; null when the product has none (every event is then `ADDED`).
    pub baseline: Option<Adapter>,
    pub candidate: Adapter,
    /// The limits the candidate asked for, which this replay ran it under (the baseline runs
    /// under its own): what approving them at activation lets it use.
    pub candidate_limits: EffectiveLimits,
    /// The limits a version gets without asking, for comparison.
    pub default_limits: EffectiveLimits,
    /// `PENDING` when the candidate asks for more than the defaults: activating it then needs
    /// `approveLimits: true`.
    pub limits_approval: LimitsApproval,
    pub messages_compared: i32,
    /// Messages on which both versions agree exactly.
    pub identical: i32,
    pub differing: i32,
    /// The compared messages, newest first.
    pub messages: Vec<ReplayedMessage>,
}

/// One message as both versions decode it.
#[derive(SimpleObject)]
pub struct ReplayedMessage {
    pub received_at: DateTime<Utc>,
    pub content_type: String,
    /// sha-256 of the body, to find the same message again.
    pub body_sha256: String,
    pub baseline: DecodeOutcome,
    pub candidate: DecodeOutcome,
    pub identical: bool,
    /// Event by event, keyed by device serial and supplier event id. A version whose decode
    /// failed counts as producing no events.
    pub differences: Vec<EventDifference>,
}

/// Events, or why the decode failed.
#[derive(SimpleObject)]
pub struct DecodeOutcome {
    /// The normalised events, as stored; null when the decode failed.
    pub events: Option<Vec<Json<Value>>>,
    /// The adapter error code (`malformed`, `unsupported`, `trap` …), when it failed.
    pub error_code: Option<String>,
    pub error: Option<String>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum EventChange {
    /// Only the candidate produces it.
    Added,
    /// Only the baseline produces it.
    Removed,
    /// Both produce it, differently.
    Changed,
}

/// How one event differs between the versions.
#[derive(SimpleObject)]
pub struct EventDifference {
    pub device_serial: String,
    pub supplier_event_id: String,
    pub change: EventChange,
    pub baseline: Option<Json<Value>>,
    pub candidate: Option<Json<Value>>,
    /// The top-level fields that differ (`severity`, `kind` …), for `CHANGED`.
    pub fields: Vec<String>,
}

type Outcome = Result<Vec<Value>, DecodeError>;

fn as_values(events: Vec<Event>) -> Vec<Value> {
    events.iter().map(|e| serde_json::to_value(e).expect("events serialise")).collect()
}

fn key(event: &Value) -> (String, String) {
    let field = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    (field("device_serial"), field("supplier_event_id"))
}

/// The event-by-event differences between two successful decodes.
pub fn differences(baseline: &[Value], candidate: &[Value]) -> Vec<EventDifference> {
    let mut out = Vec::new();
    for b in baseline {
        let (serial, id) = key(b);
        match candidate.iter().find(|c| key(c) == (serial.clone(), id.clone())) {
            None => out.push(EventDifference {
                device_serial: serial,
                supplier_event_id: id,
                change: EventChange::Removed,
                baseline: Some(Json(b.clone())),
                candidate: None,
                fields: vec![],
            }),
            Some(c) if c != b => {
                let mut fields: Vec<String> = match (b.as_object(), c.as_object()) {
                    (Some(bo), Some(co)) => {
                        bo.keys().chain(co.keys()).filter(|k| bo.get(*k) != co.get(*k)).cloned().collect()
                    }
                    _ => vec![],
                };
                fields.sort();
                fields.dedup();
                out.push(EventDifference {
                    device_serial: serial,
                    supplier_event_id: id,
                    change: EventChange::Changed,
                    baseline: Some(Json(b.clone())),
                    candidate: Some(Json(c.clone())),
                    fields,
                });
            }
            Some(_) => {}
        }
    }
    for c in candidate {
        let (serial, id) = key(c);
        if !baseline.iter().any(|b| key(b) == (serial.clone(), id.clone())) {
            out.push(EventDifference {
                device_serial: serial,
                supplier_event_id: id,
                change: EventChange::Added,
                baseline: None,
                candidate: Some(Json(c.clone())),
                fields: vec![],
            });
        }
    }
    out
}

fn outcome(result: &Outcome) -> DecodeOutcome {
    match result {
        Ok(events) => {
            DecodeOutcome { events: Some(events.iter().cloned().map(Json).collect()), error_code: None, error: None }
        }
        Err(e) => DecodeOutcome { events: None, error_code: Some(e.code().to_string()), error: Some(e.to_string()) },
    }
}

/// Replays the product's `last` retained messages through the candidate and the active version.
pub async fn review(
    db: &Database,
    runtime: &AdapterRuntime,
    product: &device_product::Model,
    candidate_id: i64,
    last: u64,
) -> Result<ReplayReview, ApiError> {
    use crate::devices::model::{AdapterStatus, adapter};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let candidate_row = adapter::Entity::find_by_id(candidate_id)
        .into_partial_model::<adapter::Summary>()
        .one(db.read())
        .await?
        .ok_or_else(|| ApiError::internal("the reviewed adapter vanished"))?;
    let baseline_row = adapter::Entity::find()
        .filter(adapter::Column::ProductId.eq(product.id))
        .filter(adapter::Column::Status.eq(AdapterStatus::Active))
        .into_partial_model::<adapter::Summary>()
        .one(db.read())
        .await?;
    let candidate = ingest::compiled(db, runtime, candidate_id)
        .await?
        .map_err(|e| ApiError::BadUserInput(format!("the candidate no longer validates: {e}")))?;
    let baseline = match &baseline_row {
        Some(row) => Some(
            ingest::compiled(db, runtime, row.id)
                .await?
                .map_err(|e| ApiError::BadUserInput(format!("the active version no longer validates: {e}")))?,
        ),
        None => None,
    };
    let messages = recent_messages(db, product.id, last).await?;
    let key = format!("review:{}", product.slug);
    let mut replayed = Vec::with_capacity(messages.len());
    for message in messages {
        let body: Arc<[u8]> = Arc::from(message.body.clone().unwrap_or_default());
        let received_at = message.received_at.to_utc();
        let decode = |adapter: Compiled| {
            let (body, key, content_type) = (body.clone(), key.clone(), message.content_type.clone());
            async move { runtime.review(&adapter, &key, &content_type, body, received_at).await.map(as_values) }
        };
        let candidate_result: Outcome = decode(candidate.clone()).await;
        let baseline_result: Outcome = match &baseline {
            Some(b) => decode(b.clone()).await,
            None => Ok(vec![]),
        };
        // A version that fails produces no events: what the other produces is added or removed.
        let events = |r: &Outcome| r.as_ref().map(Vec::as_slice).unwrap_or(&[]).to_vec();
        let differences = differences(&events(&baseline_result), &events(&candidate_result));
        let identical = match (&baseline_result, &candidate_result) {
            (Ok(_), Ok(_)) => differences.is_empty(),
            (Err(b), Err(c)) => b == c,
            _ => false,
        };
        replayed.push(ReplayedMessage {
            received_at,
            content_type: message.content_type.clone(),
            body_sha256: message.body_sha256.clone(),
            baseline: outcome(&baseline_result),
            candidate: outcome(&candidate_result),
            identical,
            differences,
        });
    }
    let identical = replayed.iter().filter(|m| m.identical).count() as i32;
    let requested = RequestedLimits::of(&candidate_row);
    Ok(ReplayReview {
        baseline: baseline_row.map(Adapter),
        candidate_limits: requested.effective(runtime.limits()),
        default_limits: RequestedLimits::default().effective(runtime.limits()),
        limits_approval: candidate_row.limits_approval,
        candidate: Adapter(candidate_row),
        messages_compared: replayed.len() as i32,
        identical,
        differing: replayed.len() as i32 - identical,
        messages: replayed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_added_removed_and_changed_events_with_their_fields() {
        let baseline = vec![
            json!({"device_serial": "A", "supplier_event_id": "1", "severity": "serious", "kind": {"type": "dose-missed"}}),
            json!({"device_serial": "A", "supplier_event_id": "2", "severity": "normal"}),
        ];
        let candidate = vec![
            json!({"device_serial": "A", "supplier_event_id": "1", "severity": "critical", "kind": {"type": "dose-missed"}}),
            json!({"device_serial": "A", "supplier_event_id": "3", "severity": "normal"}),
        ];
        let diff = differences(&baseline, &candidate);
        let summary: Vec<(EventChange, &str, Vec<String>)> =
            diff.iter().map(|d| (d.change, d.supplier_event_id.as_str(), d.fields.clone())).collect();
        assert_eq!(
            summary,
            vec![
                (EventChange::Changed, "1", vec!["severity".to_string()]),
                (EventChange::Removed, "2", vec![]),
                (EventChange::Added, "3", vec![]),
            ]
        );
        assert!(differences(&baseline, &baseline).is_empty());
    }
}
