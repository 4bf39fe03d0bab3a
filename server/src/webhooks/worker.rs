//! The delivery worker: claims due deliveries under a lease, sends each signed afresh, and
//! records the attempt with what comes next (`schedule::verdict`).
//!
//! Claiming: a delivery is due when it is pending, its time has come, its endpoint is enabled
//! and nobody holds an unexpired lease on it. At most one delivery per endpoint is in flight
//! (so an endpoint sees its deliveries one at a time, lowest sequence first): on PostgreSQL the
//! claim locks the endpoints' rows (`FOR UPDATE SKIP LOCKED`, so instances skip each other's)
//! and checks for a live lease after taking the lock; SQLite has one writer. A lease outlives
//! the request's timeout, so it only expires when its holder died: the delivery is then sent
//! again, with the same `webhook-id`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use tokio::sync::{Notify, Semaphore};

use super::model::{DeliveryStatus, webhook_attempt, webhook_delivery, webhook_endpoint};
use super::schedule::{self, Verdict};
use super::{WebhookSettings, now_ms, signing};
use crate::db::Database;
use crate::outbound::{Failure, Outbound};

/// Most characters of an answer or failure kept with an attempt (1 KiB).
pub const MAX_EXCERPT_BYTES: usize = 1024;

/// Claims and sends until the process ends: woken by the fan-out, by the API, or by the clock.
pub async fn run(db: Database, outbound: Outbound, settings: WebhookSettings, wake: Arc<Notify>) {
    let owner = format!("{}-{}", std::process::id(), signing::random_id());
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    loop {
        let free = slots.available_permits();
        let mut claimed = 0;
        if free > 0 {
            match claim(&db, free, &owner, &settings).await {
                Ok(deliveries) => {
                    claimed = deliveries.len();
                    for (delivery, endpoint) in deliveries {
                        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
                        let (db, outbound, settings, wake) =
                            (db.clone(), outbound.clone(), settings.clone(), wake.clone());
                        tokio::spawn(crate::db::unmetered(async move {
                            if let Err(error) = send(&db, &outbound, &settings, delivery, endpoint).await {
                                tracing::warn!(%error, "recording a webhook attempt failed; the lease will expire");
                            }
                            drop(permit);
                            wake.notify_one();
                        }));
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming webhook deliveries failed"),
            }
        }
        if claimed > 0 {
            continue;
        }
        let wait = match next_due(&db).await {
            Ok(Some(due)) if due > now_ms() => Duration::from_millis((due - now_ms()) as u64),
            // Due now but not claimable (its endpoint busy, or no free slot): a finished send
            // wakes us.
            _ => settings.poll_interval,
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait.min(settings.poll_interval)) => {}
        }
    }
}

/// The enabled endpoints' ids, as a subquery.
fn enabled_endpoints() -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(webhook_endpoint::Column::Id)
        .from(webhook_endpoint::Entity)
        .and_where(Expr::col(webhook_endpoint::Column::Enabled).eq(true))
        .to_owned()
}

/// Pending deliveries of enabled endpoints not leased at `now`.
fn unleased(now: i64) -> Condition {
    Condition::all()
        .add(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .add(webhook_delivery::Column::EndpointId.in_subquery(enabled_endpoints()))
        .add(
            Condition::any()
                .add(webhook_delivery::Column::LeaseUntilMs.is_null())
                .add(webhook_delivery::Column::LeaseUntilMs.lte(now)),
        )
}

/// When the next unleased delivery falls due, read without writing.
async fn next_due(db: &Database) -> Result<Option<i64>, DbErr> {
    let due: Option<Option<i64>> = webhook_delivery::Entity::find()
        .select_only()
        .column_as(webhook_delivery::Column::NextAttemptAtMs.min(), "due")
        .filter(unleased(now_ms()))
        .into_tuple()
        .one(db.background())
        .await?;
    Ok(due.flatten())
}

/// Claims up to `free` due deliveries, one per endpoint with none in flight; each with its
/// endpoint as it was when claimed.
pub async fn claim(
    db: &Database,
    free: usize,
    owner: &str,
    settings: &WebhookSettings,
) -> Result<Vec<(webhook_delivery::Model, webhook_endpoint::Model)>, DbErr> {
    let now = now_ms();
    // Looked for first without writing: an idle worker opens no transaction.
    let any = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(unleased(now))
        .filter(webhook_delivery::Column::NextAttemptAtMs.lte(now))
        .limit(1)
        .into_tuple::<i64>()
        .one(db.background())
        .await?;
    if any.is_none() {
        return Ok(Vec::new());
    }
    let txn = db.write().begin().await?;
    let due = webhook_delivery::Entity::find()
        .filter(unleased(now))
        .filter(webhook_delivery::Column::NextAttemptAtMs.lte(now))
        .order_by_asc(webhook_delivery::Column::NextAttemptAtMs)
        .order_by_asc(webhook_delivery::Column::Id)
        .limit((free * 4) as u64)
        .all(&txn)
        .await?;
    // The lowest sequence due of each endpoint, oldest endpoints' first.
    let mut first: BTreeMap<i64, webhook_delivery::Model> = BTreeMap::new();
    for delivery in due {
        match first.get(&delivery.endpoint_id) {
            Some(seen) if seen.sequence <= delivery.sequence => {}
            _ => {
                first.insert(delivery.endpoint_id, delivery);
            }
        }
    }
    let ids: Vec<i64> = first.keys().copied().collect();
    let mut endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(ids.clone()))
        .filter(webhook_endpoint::Column::Enabled.eq(true));
    if txn.get_database_backend() == DbBackend::Postgres {
        endpoints = endpoints.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let endpoints = endpoints.all(&txn).await?;
    // Endpoints with a delivery in flight, read after their rows were locked.
    let busy: HashSet<i64> = in_flight(ids, now).into_tuple::<i64>().all(&txn).await?.into_iter().collect();
    let until = now + settings.lease.as_millis() as i64;
    let mut claimed = Vec::new();
    for endpoint in endpoints {
        if busy.contains(&endpoint.id) || claimed.len() >= free {
            continue;
        }
        let Some(delivery) = first.remove(&endpoint.id) else { continue };
        let taken = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::LeaseUntilMs, Expr::value(until))
            .col_expr(webhook_delivery::Column::LeaseOwner, Expr::value(owner))
            .filter(webhook_delivery::Column::Id.eq(delivery.id))
            .filter(unleased(now))
            .exec(&txn)
            .await?;
        if taken.rows_affected == 1 {
            claimed.push((delivery, endpoint));
        }
    }
    txn.commit().await?;
    Ok(claimed)
}

/// The endpoints among `endpoints` with a delivery in flight at `now` (pending and leased),
/// one row per such delivery. Read at every claim, in the write transaction: it goes through
/// `idx_webhook_delivery_in_flight (status, endpoint_id, lease_until_ms)` and touches only the
/// endpoints' pending deliveries, never the ones sent long ago (`tests/e2e/ingest_plans.rs`).
pub fn in_flight(endpoints: Vec<i64>, now: i64) -> sea_orm::Select<webhook_delivery::Entity> {
    webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::EndpointId)
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .filter(webhook_delivery::Column::EndpointId.is_in(endpoints))
        .filter(webhook_delivery::Column::LeaseUntilMs.gt(now))
}

/// What an attempt came to, before it is recorded.
struct Outcome {
    status: Option<u16>,
    retry_after: Option<Duration>,
    failure: Option<&'static str>,
    excerpt: String,
    remote: Option<String>,
    latency: Duration,
}

fn failure_text(failure: &Failure) -> String {
    match failure {
        Failure::Refused(text) | Failure::Connect(text) | Failure::Tls(text) | Failure::Other(text) => text.clone(),
        Failure::Timeout => "no answer in time".to_string(),
    }
}

/// `text` cut to at most [`MAX_EXCERPT_BYTES`] bytes, on a character boundary.
pub fn excerpt(mut text: String) -> String {
    if text.len() > MAX_EXCERPT_BYTES {
        let mut cut = MAX_EXCERPT_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The headers of one attempt at `timestamp` (seconds): the spec's three, the endpoint's
/// sequence, and the body's type.
pub fn headers(
    endpoint: &webhook_endpoint::Model,
    delivery: &webhook_delivery::Model,
    timestamp: i64,
) -> Option<Vec<(&'static str, String)>> {
    let now = Utc::now().fixed_offset();
    let previous = endpoint
        .previous_secret
        .as_deref()
        .filter(|_| endpoint.previous_secret_expires_at.is_some_and(|until| until > now));
    let signature = signing::signature_header(
        &endpoint.secret,
        previous,
        &endpoint.signing_key,
        &delivery.message_id,
        timestamp,
        delivery.payload.as_bytes(),
    )?;
    Some(vec![
        ("content-type", "application/json".to_string()),
        ("webhook-id", delivery.message_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
        ("webhook-sequence", delivery.sequence.to_string()),
    ])
}

/// One attempt: checks the URL again (a name may now resolve elsewhere), signs, posts, records.
async fn send(
    db: &Database,
    outbound: &Outbound,
    settings: &WebhookSettings,
    delivery: webhook_delivery::Model,
    endpoint: webhook_endpoint::Model,
) -> Result<(), DbErr> {
    let started = Instant::now();
    let failed = |code: &'static str, text: String| Outcome {
        status: None,
        retry_after: None,
        failure: Some(code),
        excerpt: excerpt(text),
        remote: None,
        latency: started.elapsed(),
    };
    let outcome = match (outbound.check_url(&endpoint.url), headers(&endpoint, &delivery, Utc::now().timestamp())) {
        (Err(refused), _) => failed(refused.code, refused.message),
        (_, None) => failed("SIGNING_FAILED", "the endpoint's keys do not read".to_string()),
        (Ok(url), Some(headers)) => {
            let headers: Vec<(&str, String)> = headers.into_iter().collect();
            match outbound.post(&url, &headers, delivery.payload.clone().into_bytes().into()).await {
                Ok(answer) => Outcome {
                    status: Some(answer.status),
                    retry_after: answer.retry_after,
                    failure: None,
                    excerpt: excerpt(answer.excerpt),
                    remote: answer.remote.map(|a| a.to_string()),
                    latency: answer.latency,
                },
                Err(failure) => failed(failure.code(), failure_text(&failure)),
            }
        }
    };
    if outcome.status.is_some_and(|status| (200..300).contains(&status)) {
        // Delivered, not yet recorded: a crash here sends it again, with the same `webhook-id`.
        crate::failpoint::hit(crate::failpoint::Point::AfterDelivery);
    }
    record(db, settings, &delivery, outcome).await
}

/// Keeps the attempt and schedules what follows, in one transaction; a 410 disables the
/// endpoint in the same one.
async fn record(
    db: &Database,
    settings: &WebhookSettings,
    delivery: &webhook_delivery::Model,
    outcome: Outcome,
) -> Result<(), DbErr> {
    let txn = db.write().begin().await?;
    let Some(current) = webhook_delivery::Entity::find_by_id(delivery.id).one(&txn).await? else {
        // Its endpoint was deleted meanwhile.
        return txn.commit().await;
    };
    let n = current.attempts + 1;
    let now = Utc::now().fixed_offset();
    webhook_attempt::ActiveModel {
        delivery_id: Set(current.id),
        n: Set(n),
        at: Set(now),
        status_code: Set(outcome.status.map(i32::from)),
        failure: Set(outcome.failure.map(str::to_string)),
        latency_ms: Set(outcome.latency.as_millis() as i64),
        excerpt: Set(Some(outcome.excerpt).filter(|e| !e.is_empty())),
        remote: Set(outcome.remote),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let made = Ord::max(n - current.queued_after_attempts, 0) as usize;
    let verdict =
        schedule::verdict(outcome.status, outcome.retry_after, made, &settings.retry_schedule, schedule::jitter());
    let mut update = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(n))
        .col_expr(webhook_delivery::Column::LeaseUntilMs, Expr::value(Option::<i64>::None))
        .col_expr(webhook_delivery::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .filter(webhook_delivery::Column::Id.eq(current.id));
    update = match verdict {
        Verdict::Succeeded => update
            .col_expr(webhook_delivery::Column::Status, Expr::value(DeliveryStatus::Succeeded))
            .col_expr(webhook_delivery::Column::NextAttemptAtMs, Expr::value(Option::<i64>::None))
            .col_expr(webhook_delivery::Column::FinishedAt, Expr::value(now)),
        Verdict::Gone | Verdict::Failed => update
            .col_expr(webhook_delivery::Column::Status, Expr::value(DeliveryStatus::Failed))
            .col_expr(webhook_delivery::Column::NextAttemptAtMs, Expr::value(Option::<i64>::None))
            .col_expr(webhook_delivery::Column::FinishedAt, Expr::value(now)),
        Verdict::RetryIn(wait) => {
            update.col_expr(webhook_delivery::Column::NextAttemptAtMs, Expr::value(now_ms() + wait.as_millis() as i64))
        }
    };
    update.exec(&txn).await?;
    if verdict == Verdict::Gone {
        webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::Enabled, Expr::value(false))
            .col_expr(webhook_endpoint::Column::DisabledReason, Expr::value(super::rules::DISABLED_GONE))
            .col_expr(webhook_endpoint::Column::DisabledBy, Expr::value(super::rules::VELFERD))
            .col_expr(webhook_endpoint::Column::DisabledAt, Expr::value(now))
            .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(now))
            .filter(webhook_endpoint::Column::Id.eq(current.endpoint_id))
            .filter(webhook_endpoint::Column::Enabled.eq(true))
            .exec(&txn)
            .await?;
    }
    txn.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_cut_to_a_kibibyte_on_a_character_boundary() {
        assert_eq!(excerpt("ok".into()), "ok");
        let long = "ø".repeat(700);
        let cut = excerpt(long);
        assert!(cut.len() <= MAX_EXCERPT_BYTES && cut.len() >= MAX_EXCERPT_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'ø'));
    }
}
