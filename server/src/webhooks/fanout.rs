//! The fan-out: outbox rows become deliveries, in one transaction per page with the consumer's
//! position (`crate::live::consumer`), so each row is fanned out once across every instance
//! and a crash before the commit leaves the row for the next run.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait};
use tokio::sync::Notify;

use super::model::{DeliveryStatus, webhook_delivery, webhook_endpoint};
use super::{BaseUrl, CONSUMER, WebhookSettings, events, now_ms};
use crate::db::Database;
use crate::live::{Live, consumer};

/// Outbox rows handled per transaction.
const PAGE: u64 = 200;

/// Fans out whenever this instance's live hub reads new rows, and at the poll interval.
pub async fn run(db: Database, live: Live, settings: WebhookSettings, base_url: BaseUrl, worker: Arc<Notify>) {
    let mut head = live.watch_head();
    loop {
        loop {
            match fan_out_once(&db, &settings, base_url.get()).await {
                Ok((made, more)) => {
                    if made > 0 {
                        worker.notify_one();
                    }
                    if !more {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "the webhook fan-out failed; it tries again at the next wake-up");
                    break;
                }
            }
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(settings.poll_interval) => {}
        }
    }
}

/// Fans out the next page of outbox rows: (deliveries made, whether rows remain).
pub async fn fan_out_once(db: &Database, settings: &WebhookSettings, base_url: &str) -> Result<(usize, bool), DbErr> {
    // A look without writing first: an idle instance opens no write transaction.
    let seen = consumer::position(db.background(), CONSUMER).await?.unwrap_or(i64::MAX);
    let latest = crate::live::last_sequence(db.background()).await?;
    if latest <= seen {
        return Ok((0, false));
    }
    let txn = db.write().begin().await?;
    let position = consumer::lock(&txn, CONSUMER).await?;
    let (items, last) = consumer::read_after(&txn, position, PAGE).await?;
    let Some(last) = last else {
        txn.commit().await?;
        return Ok((0, false));
    };
    let events: Vec<(i64, events::Event)> =
        items.iter().filter_map(|(item, at)| Some((item.sequence, events::of_item(item, *at, base_url)?))).collect();
    let owners: BTreeSet<i64> = events.iter().flat_map(|(_, e)| e.owners.into_iter().flatten()).collect();
    let mut made = 0;
    if !owners.is_empty() {
        let endpoints = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::OrganizationId.is_in(owners))
            .filter(webhook_endpoint::Column::Enabled.eq(true))
            .order_by_asc(webhook_endpoint::Column::Id)
            .all(&txn)
            .await?;
        let mut next: HashMap<i64, i64> = endpoints.iter().map(|e| (e.id, e.next_sequence)).collect();
        let (now, due) = (Utc::now().fixed_offset(), now_ms() + first_delay_ms(settings));
        let mut rows = Vec::new();
        for (sequence, event) in &events {
            for endpoint in &endpoints {
                let owned = event.owners.contains(&Some(endpoint.organization_id));
                // An endpoint registered after the change was announced (before the fan-out
                // reached it) does not get it: it asked for what happens from now on.
                let later = endpoint.created_at.to_utc() > event.at;
                if !owned || later || !endpoint.wants(event.event_type.name()) {
                    continue;
                }
                let n = next.get_mut(&endpoint.id).expect("every endpoint has its sequence");
                rows.push(webhook_delivery::ActiveModel {
                    endpoint_id: Set(endpoint.id),
                    message_id: Set(format!("msg_{sequence}")),
                    sequence: Set(*n),
                    event_type: Set(event.event_type.name().to_string()),
                    payload: Set(event.body.clone()),
                    status: Set(DeliveryStatus::Pending),
                    attempts: Set(0),
                    queued_after_attempts: Set(0),
                    next_attempt_at_ms: Set(Some(due)),
                    lease_until_ms: Set(None),
                    lease_owner: Set(None),
                    created_at: Set(now),
                    finished_at: Set(None),
                    ..Default::default()
                });
                *n += 1;
            }
        }
        made = rows.len();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(100).collect();
            webhook_delivery::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([webhook_delivery::Column::EndpointId, webhook_delivery::Column::MessageId])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        for endpoint in &endpoints {
            if next[&endpoint.id] != endpoint.next_sequence {
                webhook_endpoint::Entity::update_many()
                    .col_expr(webhook_endpoint::Column::NextSequence, Expr::value(next[&endpoint.id]))
                    .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
                    .exec(&txn)
                    .await?;
            }
        }
    }
    consumer::advance(&txn, CONSUMER, last).await?;
    txn.commit().await?;
    Ok((made, last < latest))
}

/// The schedule's first delay, in milliseconds ("immediately" by default).
pub fn first_delay_ms(settings: &WebhookSettings) -> i64 {
    settings.retry_schedule.first().map_or(0, |d| d.as_millis() as i64)
}
