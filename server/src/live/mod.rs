//! Live updates on one instance or many: the outbox, its sequence, and the fan-out to
//! subscribers (docs/live.md).
//!
//! * **Publish**: [`Live::publish`] writes an outbox row in the caller's transaction, with a
//!   sequence taken from the `outbox_counter` row (`UPDATE … SET value = value + n RETURNING
//!   value`). The row lock is held until commit, so sequences follow commit order and have no
//!   gaps: a reader that has seen sequence `n` has seen every row up to `n`, and a transaction
//!   that rolls back gives its sequences back. Publish last in a transaction: the lock
//!   serialises every publishing transaction from the publish to the commit.
//! * **Wake-up**: on PostgreSQL `pg_notify('velferd_outbox')` in the same transaction wakes
//!   every instance's reader at commit (each `LISTEN`s); on SQLite (one instance) publishing
//!   wakes the reader directly, which waits for the one write connection (so for the commit)
//!   before it reads. A slow poll covers a missed notification.
//! * **Fan-out**: each instance's reader reads rows past the last it read, in sequence order,
//!   and hands each to the subscribers its [`Filter`] admits — routed by topic and scope, then
//!   the subscriber's own test, run in the reader on a payload read once for all — through a
//!   bounded channel per subscriber. What a subscriber may not hear never wakes it.
//!   A subscriber whose channel is full is dropped, never waited for: its stream ends with
//!   [`LiveError::TooSlow`] naming the last sequence it took, from which it can resume.
//! * **Resume**: [`Live::subscribe`] after a sequence replays the rows after it from the table,
//!   then goes on live, each row exactly once and in order; a sequence pruning may have
//!   removed rows after is [`LiveError::Expired`].
//!
//! * **Durable consumers**: a consumer that must see every row (the webhook fan-out) keeps its
//!   position in `outbox_consumer` ([`consumer`]); it reads after it and advances it in one
//!   transaction with what it made of the rows. Pruning never deletes a row past the slowest
//!   consumer's position, so a crash or a long outage of a consumer loses nothing.
//!
//! Areas depend on this module, never the reverse: a row names its topic and the scope that
//! decides who may hear it (a municipality, an organisation); what the payload means and who
//! may read it is the area's business.

pub mod graphql;
mod hub;
pub mod model;

use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, Set, Statement,
};
use serde::Serialize;

pub use hub::{Live, LiveStream};
use model::{outbox, outbox_consumer, outbox_counter};

/// The PostgreSQL channel every instance listens on.
pub const CHANNEL: &str = "velferd_outbox";

/// What an outbox row announces. Stored by name; an instance that does not know a name (a newer
/// version's, during a rolling deploy) skips its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A device event was stored (payload: the event's row; scope: the device's municipality
    /// and the product's supplier).
    DeviceEvent,
    /// An alert was raised or changed (payload: `crate::alerts::live::AlertNotice`; scope: the
    /// alert's municipality and the organisation it is handed to).
    Alert,
    /// A device's lifecycle status changed, or it was registered (payload:
    /// `crate::devices::live::StatusNotice`; scope: the device's municipality).
    DeviceStatus,
    /// A call-off was placed or changed status (payload: `crate::agreements::live::CallOffNotice`;
    /// scope: the municipality and the agreement's supplier).
    CallOff,
}

impl Topic {
    pub const ALL: [Topic; 4] = [Topic::DeviceEvent, Topic::Alert, Topic::DeviceStatus, Topic::CallOff];

    pub fn name(self) -> &'static str {
        match self {
            Topic::DeviceEvent => "device-event",
            Topic::Alert => "alert",
            Topic::DeviceStatus => "device-status",
            Topic::CallOff => "call-off",
        }
    }

    pub fn of_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Who an announced change concerns, by organisation id: what a subscription checks against
/// its caller before it reads the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    /// The municipality the change belongs to.
    pub municipality_id: Option<i64>,
    /// Another organisation it concerns (a device's supplier, an alert's response centre).
    pub organization_id: Option<i64>,
}

/// One announced change, as subscribers receive it: one value shared by every subscriber that
/// hears it, so its payload is read once however many do.
#[derive(Debug)]
pub struct Item {
    pub sequence: i64,
    pub topic: Topic,
    pub scope: Scope,
    /// JSON, as published.
    pub payload: String,
    /// The payload as the first reader of [`Item::decoded`] read it (`None`: it did not read).
    decoded: OnceLock<Option<Box<dyn Any + Send + Sync>>>,
    /// What subscribers share of the item, by what they asked ([`Item::shared`]).
    shared: Mutex<Vec<(Arc<str>, SharedPlace)>>,
}

/// A place subscribers share on an item ([`Item::shared`]), of the type its users agree on.
type SharedPlace = Arc<dyn Any + Send + Sync>;

/// The most different asks one item keeps a shared place for ([`Item::shared`]).
const MOST_SHARED: usize = 8;

impl Item {
    pub fn new(sequence: i64, topic: Topic, scope: Scope, payload: String) -> Item {
        Item { sequence, topic, scope, payload, decoded: OnceLock::new(), shared: Mutex::default() }
    }

    /// The place where subscribers that ask the same of this item (`key`) share what they make
    /// of it: the same `S` for every caller with the same key, made on first use. `None` past
    /// [`MOST_SHARED`] keys: a stranger varying its subscriptions adds nothing more, and its
    /// callers make their own. The item lives as long as a subscriber still has it queued, so
    /// this memory goes with it.
    pub fn shared<S: Default + Send + Sync + 'static>(&self, key: &Arc<str>) -> Option<Arc<S>> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        // Keys are mostly one shared string (`live::graphql` interns them): pointers first.
        if let Some((_, slot)) = shared.iter().find(|(k, _)| Arc::ptr_eq(k, key) || k == key) {
            return slot.clone().downcast::<S>().ok();
        }
        if shared.len() >= MOST_SHARED {
            return None;
        }
        let slot = Arc::new(S::default());
        shared.push((key.clone(), slot.clone()));
        Some(slot)
    }

    /// The payload read as the type it was published as, afresh.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    /// The payload read as `T`, once for all who ask: every reader of a topic reads it as the
    /// one type it is published as (another type gets `None`). A payload that does not read is
    /// logged once and is `None` for everyone.
    pub fn decoded<T: serde::de::DeserializeOwned + Send + Sync + 'static>(&self) -> Option<&T> {
        let decoded = self.decoded.get_or_init(|| match serde_json::from_str::<T>(&self.payload) {
            Ok(value) => Some(Box::new(value)),
            Err(error) => {
                let topic = self.topic.name();
                tracing::warn!(%error, sequence = self.sequence, topic, "a live payload did not read; it is not sent");
                None
            }
        });
        decoded.as_ref()?.downcast_ref::<T>()
    }

    fn of_row(row: outbox::Model) -> Option<Item> {
        let scope = Scope { municipality_id: row.municipality_id, organization_id: row.organization_id };
        Some(Item::new(row.id, Topic::of_name(&row.topic)?, scope, row.payload))
    }
}

/// Whose changes a subscriber may hear, by the scope they are announced with. The hub routes
/// on it: a subscriber is not woken for a change outside it, whatever else is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Every change of its topics: an admin, or a reader whose rule needs more than the scope
    /// and decides each item itself.
    Everything,
    /// The changes of this municipality and those concerning this organisation.
    Scoped { municipality: Option<i64>, organization: Option<i64> },
}

impl Interest {
    pub fn admits(&self, scope: &Scope) -> bool {
        match *self {
            Interest::Everything => true,
            Interest::Scoped { municipality, organization } => {
                (municipality.is_some() && municipality == scope.municipality_id)
                    || (organization.is_some() && organization == scope.organization_id)
            }
        }
    }
}

/// A test of each item, run once per item and subscriber, before anything wakes the subscriber.
pub type Test = dyn Fn(&Item) -> bool + Send + Sync;

/// What a subscriber hears: items of its topics, of its [`Interest`], that pass its test.
#[derive(Clone)]
pub struct Filter {
    topics: Vec<Topic>,
    interest: Interest,
    test: Option<Arc<Test>>,
}

impl Filter {
    pub fn new(topics: &[Topic], interest: Interest) -> Filter {
        Filter { topics: topics.to_vec(), interest, test: None }
    }

    /// Every item of `topics`.
    pub fn everything(topics: &[Topic]) -> Filter {
        Filter::new(topics, Interest::Everything)
    }

    /// Only the items `test` passes too (a payload's severity, an alert's kind). Read the
    /// payload with [`Item::decoded`]: it is read once for every subscriber.
    pub fn and(mut self, test: impl Fn(&Item) -> bool + Send + Sync + 'static) -> Filter {
        self.test = Some(Arc::new(test));
        self
    }

    pub fn admits(&self, item: &Item) -> bool {
        self.topics.contains(&item.topic) && self.interest.admits(&item.scope) && self.passes(item)
    }

    /// The test alone: for an item already routed by topic and interest.
    fn passes(&self, item: &Item) -> bool {
        self.test.as_ref().is_none_or(|test| test(item))
    }
}

/// A change to announce: see [`Live::publish_all`].
#[derive(Debug, Clone)]
pub struct Announcement {
    pub topic: Topic,
    pub scope: Scope,
    /// JSON.
    pub payload: String,
}

impl Announcement {
    pub fn new(topic: Topic, scope: Scope, payload: &impl Serialize) -> Announcement {
        Announcement { topic, scope, payload: serde_json::to_string(payload).expect("payloads serialise") }
    }
}

/// The outbox's settings (`VELFERD_LIVE_*`).
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// How long rows are kept for subscribers to resume from.
    pub retention: Duration,
    /// How often each instance reads the outbox without being woken.
    pub poll_interval: Duration,
    /// Items one subscriber may have waiting before it is dropped as too slow.
    pub subscriber_buffer: usize,
}

impl LiveSettings {
    /// How often each instance prunes rows older than the retention.
    pub fn prune_interval(&self) -> Duration {
        (self.retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
    }
}

/// Why a subscription could not start or ended.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Rows after `after` may have been pruned: resume no earlier than `pruned_through`, or
    /// read the current state by query and subscribe afresh.
    #[error(
        "sequence {after} is older than the outbox keeps (rows through {pruned_through} are pruned); \
         read the current state by query and subscribe again without afterSequence"
    )]
    Expired { after: i64, pruned_through: i64 },
    /// A sequence never handed out (a client bug, or a sequence of another database).
    #[error("sequence {after} was never handed out; the latest is {latest}")]
    Unknown { after: i64, latest: i64 },
    /// The subscriber did not keep up; it resumes after `last`.
    #[error(
        "the subscriber fell too far behind and was disconnected; resume with afterSequence: \"{last}\" to get what followed"
    )]
    TooSlow { last: i64 },
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl LiveError {
    pub fn code(&self) -> &'static str {
        match self {
            LiveError::Expired { .. } => "SEQUENCE_EXPIRED",
            LiveError::Unknown { .. } => "SEQUENCE_UNKNOWN",
            LiveError::TooSlow { .. } => "SUBSCRIBER_TOO_SLOW",
            LiveError::Database(_) => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// Writes the announcements as outbox rows in `txn`, with consecutive sequences; returns the
/// last. The counter row stays locked until `txn` ends.
async fn write(txn: &DatabaseTransaction, announcements: Vec<Announcement>) -> Result<Option<i64>, DbErr> {
    if announcements.is_empty() {
        return Ok(None);
    }
    let count = announcements.len() as i64;
    let taken = outbox_counter::Entity::update_many()
        .col_expr(outbox_counter::Column::Value, Expr::col(outbox_counter::Column::Value).add(count))
        .filter(outbox_counter::Column::Name.eq(outbox_counter::SEQUENCE))
        .exec_with_returning(txn)
        .await?;
    let last =
        taken.first().map(|row| row.value).ok_or_else(|| DbErr::Custom("the outbox counter is missing".into()))?;
    let now = Utc::now().fixed_offset();
    let rows: Vec<outbox::ActiveModel> = announcements
        .into_iter()
        .enumerate()
        .map(|(i, a)| outbox::ActiveModel {
            id: Set(last - count + 1 + i as i64),
            topic: Set(a.topic.name().to_string()),
            municipality_id: Set(a.scope.municipality_id),
            organization_id: Set(a.scope.organization_id),
            payload: Set(a.payload),
            created_at: Set(now),
        })
        .collect();
    // 200 rows of 6 columns stay far below SQLite's limit on bound parameters.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(200).collect();
        outbox::Entity::insert_many(chunk).exec_without_returning(txn).await?;
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        // Delivered at commit, to every listening instance (this one included), once per
        // transaction whatever the number of rows.
        txn.execute_raw(Statement::from_string(DbBackend::Postgres, format!("SELECT pg_notify('{CHANNEL}', '')")))
            .await?;
    }
    Ok(Some(last))
}

/// The committed sequence counters: (last sequence taken, highest pruned).
async fn counters<C: ConnectionTrait>(db: &C) -> Result<(i64, i64), DbErr> {
    let rows = outbox_counter::Entity::find().all(db).await?;
    let get = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| r.value)
            .ok_or_else(|| DbErr::Custom(format!("the outbox counter {name} is missing")))
    };
    Ok((get(outbox_counter::SEQUENCE)?, get(outbox_counter::PRUNED_THROUGH)?))
}

/// Most outbox rows one pruning transaction deletes: a backlog (after a long outage of the
/// fan-out, or a first prune of a big outbox) goes in short transactions, none holding the
/// write lock for long.
const PRUNE_BATCH: u64 = 5000;

/// Deletes the rows created before `cutoff` (and any with a lower sequence), oldest first, at
/// most [`PRUNE_BATCH`] a transaction, each recording the highest sequence it deletes first;
/// returns the highest sequence deleted, if any row went, and how many rows went.
pub async fn prune(db: &crate::db::Database, cutoff: chrono::DateTime<Utc>) -> Result<Option<(i64, u64)>, DbErr> {
    use sea_orm::{QueryOrder, QuerySelect, TransactionTrait};
    let boundary: Option<Option<i64>> = outbox::Entity::find()
        .select_only()
        .column_as(outbox::Column::Id.max(), "boundary")
        .filter(outbox::Column::CreatedAt.lt(cutoff.fixed_offset()))
        .into_tuple()
        .one(db.background())
        .await?;
    let Some(boundary) = boundary.flatten() else { return Ok(None) };
    // Never past a durable consumer: what it has not handled stays, however old.
    let slowest: Option<Option<i64>> = outbox_consumer::Entity::find()
        .select_only()
        .column_as(outbox_consumer::Column::Position.min(), "slowest")
        .into_tuple()
        .one(db.background())
        .await?;
    let boundary = match slowest.flatten() {
        Some(slowest) => Ord::min(boundary, slowest),
        None => boundary,
    };
    if boundary <= 0 {
        return Ok(None);
    }
    let mut deleted = 0;
    let mut pruned = None;
    loop {
        // The batch's last sequence: the oldest rows, up to the boundary.
        let batch: Vec<i64> = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::Id)
            .filter(outbox::Column::Id.lte(boundary))
            .order_by_asc(outbox::Column::Id)
            .limit(PRUNE_BATCH)
            .into_tuple()
            .all(db.background())
            .await?;
        let Some(&through) = batch.last() else { break };
        let txn = db.write().begin().await?;
        outbox_counter::Entity::update_many()
            .col_expr(outbox_counter::Column::Value, Expr::value(through))
            .filter(outbox_counter::Column::Name.eq(outbox_counter::PRUNED_THROUGH))
            .filter(outbox_counter::Column::Value.lt(through))
            .exec(&txn)
            .await?;
        deleted +=
            outbox::Entity::delete_many().filter(outbox::Column::Id.lte(through)).exec(&txn).await?.rows_affected;
        txn.commit().await?;
        pruned = Some(through);
        if through >= boundary || (batch.len() as u64) < PRUNE_BATCH {
            break;
        }
    }
    Ok(pruned.map(|through| (through, deleted)))
}

/// Durable consumers of the outbox: each reads the rows after its position and advances it in
/// the transaction that handles them, so a row is handled once (or, after a crash before the
/// commit, again by the next run), and never pruned before.
pub mod consumer {
    use sea_orm::sea_query::{LockType, OnConflict};
    use sea_orm::{
        ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
        QuerySelect, Set,
    };

    use super::model::{outbox, outbox_consumer};
    use super::{Item, counters};

    /// Registers consumer `name` at the outbox's current sequence unless it exists; its
    /// position.
    pub async fn register<C: ConnectionTrait>(db: &C, name: &str) -> Result<i64, DbErr> {
        let (sequence, _) = counters(db).await?;
        let row = outbox_consumer::ActiveModel {
            name: Set(name.to_string()),
            position: Set(sequence),
            updated_at: Set(chrono::Utc::now().fixed_offset()),
            ..Default::default()
        };
        outbox_consumer::Entity::insert(row)
            .on_conflict(OnConflict::column(outbox_consumer::Column::Name).do_nothing().to_owned())
            .exec_without_returning(db)
            .await?;
        position(db, name).await?.ok_or_else(|| DbErr::Custom(format!("the outbox consumer {name} is missing")))
    }

    /// Consumer `name`'s position, if it is registered.
    pub async fn position<C: ConnectionTrait>(db: &C, name: &str) -> Result<Option<i64>, DbErr> {
        let row = outbox_consumer::Entity::find().filter(outbox_consumer::Column::Name.eq(name)).one(db).await?;
        Ok(row.map(|r| r.position))
    }

    /// Consumer `name`'s position, its row locked until `txn` ends (PostgreSQL `FOR UPDATE`;
    /// SQLite has one writer): instances taking turns never handle a row twice.
    pub async fn lock(txn: &DatabaseTransaction, name: &str) -> Result<i64, DbErr> {
        let mut select = outbox_consumer::Entity::find().filter(outbox_consumer::Column::Name.eq(name));
        if txn.get_database_backend() == DbBackend::Postgres {
            select = select.lock(LockType::Update);
        }
        let row =
            select.one(txn).await?.ok_or_else(|| DbErr::Custom(format!("the outbox consumer {name} is missing")))?;
        Ok(row.position)
    }

    /// At most `limit` rows after `position`, in sequence order, each with when it was
    /// written, and the last sequence read (rows of topics this version does not know are
    /// skipped but counted).
    pub async fn read_after<C: ConnectionTrait>(
        db: &C,
        position: i64,
        limit: u64,
    ) -> Result<(Vec<(Item, chrono::DateTime<chrono::Utc>)>, Option<i64>), DbErr> {
        let rows = outbox::Entity::find()
            .filter(outbox::Column::Id.gt(position))
            .order_by_asc(outbox::Column::Id)
            .limit(limit)
            .all(db)
            .await?;
        let last = rows.last().map(|r| r.id);
        let items = rows
            .into_iter()
            .filter_map(|row| {
                let at = row.created_at.to_utc();
                Some((Item::of_row(row)?, at))
            })
            .collect();
        Ok((items, last))
    }

    /// Moves consumer `name` to `position` in `txn`.
    pub async fn advance(txn: &DatabaseTransaction, name: &str, position: i64) -> Result<(), DbErr> {
        use sea_orm::sea_query::Expr;
        outbox_consumer::Entity::update_many()
            .col_expr(outbox_consumer::Column::Position, Expr::value(position))
            .col_expr(outbox_consumer::Column::UpdatedAt, Expr::value(chrono::Utc::now().fixed_offset()))
            .filter(outbox_consumer::Column::Name.eq(name))
            .exec(txn)
            .await?;
        Ok(())
    }
}

/// The counter row a publisher holds: what a benchmark or a test of commit order inspects.
pub async fn last_sequence<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    Ok(counters(db).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_by_name() {
        for topic in Topic::ALL {
            assert_eq!(Topic::of_name(topic.name()), Some(topic));
        }
        assert_eq!(Topic::of_name("no-such-topic"), None);
    }

    #[test]
    fn pruning_runs_a_few_times_per_retention_within_bounds() {
        let settings = |secs| LiveSettings {
            retention: Duration::from_secs(secs),
            poll_interval: Duration::from_secs(5),
            subscriber_buffer: 8,
        };
        assert_eq!(settings(3600).prune_interval(), Duration::from_secs(60));
        assert_eq!(settings(1).prune_interval(), Duration::from_millis(250));
    }

    #[test]
    fn an_item_shares_one_place_per_ask_and_keeps_at_most_a_few() {
        let item = Item::new(1, Topic::DeviceEvent, Scope::default(), "{}".into());
        let asks: Vec<Arc<str>> = (0..MOST_SHARED + 1).map(|i| Arc::from(format!("ask {i}"))).collect();
        let first = item.shared::<std::sync::Mutex<u32>>(&asks[0]).unwrap();
        *first.lock().unwrap() = 7;
        // The same ask, however its key was made, finds the same place.
        let again = item.shared::<std::sync::Mutex<u32>>(&Arc::from("ask 0")).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(*again.lock().unwrap(), 7);
        // Another type under the same key is not that place.
        assert!(item.shared::<std::sync::Mutex<String>>(&asks[0]).is_none());
        for ask in &asks[1..MOST_SHARED] {
            assert!(item.shared::<std::sync::Mutex<u32>>(ask).is_some());
        }
        assert!(item.shared::<std::sync::Mutex<u32>>(&asks[MOST_SHARED]).is_none(), "past the bound");
        assert!(item.shared::<std::sync::Mutex<u32>>(&asks[1]).is_some(), "those kept stay");
    }
}
