//! One instance's reader of the outbox and its subscribers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use futures_util::stream::BoxStream;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{Notify, mpsc, watch};

use super::model::outbox;
use super::{Announcement, CHANNEL, Filter, Interest, Item, LiveError, LiveSettings, Scope, Topic, counters};
use crate::db::{Backend, Database};

/// Rows the reader takes from the outbox per query.
const READ_PAGE: u64 = 500;
/// Rows a resuming subscriber reads per query.
const BACKFILL_PAGE: u64 = 200;
/// How long the listener waits before connecting again after a failure.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// This instance's live updates: publish in a transaction, subscribe to topics. Cheap to clone;
/// the reader and its helpers stop when the last clone is dropped.
#[derive(Clone)]
pub struct Live {
    hub: Arc<Hub>,
    _alive: Arc<watch::Sender<()>>,
}

struct Hub {
    db: Database,
    settings: LiveSettings,
    wake: Notify,
    /// Set by a publish on SQLite: the next read first waits for the one write connection, so
    /// for the publishing transaction's end.
    local_publish: AtomicBool,
    state: Mutex<State>,
    /// The head after each read: what durable consumers (the webhook fan-out) wake on.
    head_watch: watch::Sender<i64>,
}

struct State {
    /// The last sequence read and handed to subscribers.
    head: i64,
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    /// The subscribers of each topic and scope: an item is offered only to those of its
    /// topic under its municipality, its organisation and `Route::Everything`.
    routes: HashMap<(Topic, Route), HashSet<u64>>,
}

/// A key subscribers are routed under (see [`Interest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Route {
    Everything,
    Municipality(i64),
    Organization(i64),
}

impl Route {
    fn of_interest(interest: Interest) -> Vec<Route> {
        match interest {
            Interest::Everything => vec![Route::Everything],
            Interest::Scoped { municipality, organization } => {
                municipality.map(Route::Municipality).into_iter().chain(organization.map(Route::Organization)).collect()
            }
        }
    }

    fn of_item(item: &Item) -> [Option<Route>; 3] {
        [
            Some(Route::Everything),
            item.scope.municipality_id.map(Route::Municipality),
            item.scope.organization_id.map(Route::Organization),
        ]
    }
}

struct Subscriber {
    filter: Arc<Filter>,
    sender: mpsc::Sender<Arc<Item>>,
    /// Set when the hub dropped the subscriber because it fell behind.
    dropped: Arc<AtomicBool>,
    /// The last sequence offered: a subscriber routed under two keys hears an item once.
    offered: i64,
}

impl State {
    fn add(&mut self, filter: Arc<Filter>, sender: mpsc::Sender<Arc<Item>>, dropped: Arc<AtomicBool>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        for &topic in &filter.topics {
            for route in Route::of_interest(filter.interest) {
                self.routes.entry((topic, route)).or_default().insert(id);
            }
        }
        self.subscribers.insert(id, Subscriber { filter, sender, dropped, offered: 0 });
        id
    }

    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let subscriber = self.subscribers.remove(&id)?;
        for &topic in &subscriber.filter.topics {
            for route in Route::of_interest(subscriber.filter.interest) {
                if let Some(ids) = self.routes.get_mut(&(topic, route)) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.routes.remove(&(topic, route));
                    }
                }
            }
        }
        Some(subscriber)
    }

    /// Offers `item` to the subscribers routed to it that it passes, without waiting: one
    /// whose channel is full is dropped (and told so), one whose stream is gone is forgotten.
    fn offer(&mut self, item: Arc<Item>) {
        let mut gone = Vec::new();
        for route in Route::of_item(&item).into_iter().flatten() {
            let Some(ids) = self.routes.get(&(item.topic, route)) else { continue };
            for id in ids {
                let Some(subscriber) = self.subscribers.get_mut(id) else { continue };
                if subscriber.offered == item.sequence || !subscriber.filter.passes(&item) {
                    continue;
                }
                subscriber.offered = item.sequence;
                match subscriber.sender.try_send(item.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        subscriber.dropped.store(true, Ordering::SeqCst);
                        gone.push(*id);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
                }
            }
        }
        for id in gone {
            self.remove(id);
        }
    }
}

impl Hub {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads every row past the head, in order, and hands each to its subscribers.
    async fn catch_up(&self) -> Result<(), DbErr> {
        if self.local_publish.swap(false, Ordering::SeqCst) {
            // The publishing transaction holds the write connection until it ends.
            self.db.write().execute_unprepared("SELECT 1").await?;
        }
        loop {
            let head = self.state().head;
            let rows = outbox::Entity::find()
                .filter(outbox::Column::Id.gt(head))
                .order_by_asc(outbox::Column::Id)
                .limit(READ_PAGE)
                .all(self.db.background())
                .await?;
            let more = rows.len() as u64 == READ_PAGE;
            self.dispatch(rows);
            let head = self.state().head;
            self.head_watch.send_if_modified(|seen| std::mem::replace(seen, head) != head);
            if !more {
                return Ok(());
            }
        }
    }

    fn dispatch(&self, rows: Vec<outbox::Model>) {
        let mut state = self.state();
        for row in rows {
            if row.id <= state.head {
                continue;
            }
            if row.id != state.head + 1 {
                // Sequences have no gaps: rows between were pruned before this instance read
                // them, so every subscriber missed them. Each resumes (and learns it is too late).
                tracing::warn!(
                    head = state.head,
                    next = row.id,
                    "outbox rows were pruned before this instance read them"
                );
                for (_, subscriber) in state.subscribers.drain() {
                    subscriber.dropped.store(true, Ordering::SeqCst);
                }
                state.routes.clear();
            }
            state.head = row.id;
            let Some(item) = Item::of_row(row) else { continue };
            state.offer(Arc::new(item));
        }
    }
}

impl Live {
    /// Starts this instance's reader (from the last committed sequence), its pruning, and on
    /// PostgreSQL its listener on `database_url`, on the current Tokio runtime.
    pub async fn start(db: Database, settings: LiveSettings, database_url: &str) -> Result<Live, DbErr> {
        let (head, _) = counters(db.background()).await?;
        let hub = Arc::new(Hub {
            db: db.clone(),
            settings,
            wake: Notify::new(),
            local_publish: AtomicBool::new(false),
            state: Mutex::new(State { head, next_id: 0, subscribers: HashMap::new(), routes: HashMap::new() }),
            head_watch: watch::channel(head).0,
        });
        let (alive, closed) = watch::channel(());
        tokio::spawn(read_loop(hub.clone(), closed.clone()));
        tokio::spawn(prune_loop(hub.clone(), closed.clone()));
        if db.backend() == Backend::Postgres {
            tokio::spawn(listen_loop(hub.clone(), database_url.to_string(), closed));
        }
        Ok(Live { hub, _alive: Arc::new(alive) })
    }

    /// Announces one change in `txn`, the transaction that makes it; returns its sequence.
    /// Call it last before commit: from here to the commit, other publishing transactions wait.
    pub async fn publish(
        &self,
        txn: &DatabaseTransaction,
        topic: Topic,
        scope: Scope,
        payload: &impl serde::Serialize,
    ) -> Result<i64, DbErr> {
        let last = self.publish_all(txn, vec![Announcement::new(topic, scope, payload)]).await?;
        Ok(last.expect("one announcement was written"))
    }

    /// Announces several changes in `txn`, with consecutive sequences in the order given;
    /// returns the last (none for an empty list, which writes nothing).
    pub async fn publish_all(
        &self,
        txn: &DatabaseTransaction,
        announcements: Vec<Announcement>,
    ) -> Result<Option<i64>, DbErr> {
        let last = super::write(txn, announcements).await?;
        if last.is_some() && self.hub.db.backend() == Backend::Sqlite {
            self.hub.local_publish.store(true, Ordering::SeqCst);
            self.hub.wake.notify_one();
        }
        Ok(last)
    }

    /// The items `filter` admits, in sequence order: from now on, or after sequence `after` —
    /// every later one exactly once, first those already stored, then live. The stream ends
    /// with [`LiveError::TooSlow`] if the subscriber falls `subscriber_buffer` items behind,
    /// or [`LiveError::Expired`] if rows it still needed were pruned. Only what the filter
    /// admits counts towards the buffer: others' changes never wake or drop a subscriber.
    pub async fn subscribe(&self, filter: Filter, after: Option<i64>) -> Result<LiveStream, LiveError> {
        let (sender, receiver) = mpsc::channel(self.hub.settings.subscriber_buffer.max(1));
        let dropped = Arc::new(AtomicBool::new(false));
        let filter = Arc::new(filter);
        // Registered before anything is read: what the hub reads from here on reaches us.
        let (id, head) = {
            let mut state = self.hub.state();
            let id = state.add(filter.clone(), sender, dropped.clone());
            (id, state.head)
        };
        let registration = Registration { hub: self.hub.clone(), id };
        let mut reader = Reader {
            _registration: registration,
            db: self.hub.db.clone(),
            topics: filter.topics.iter().map(|t| t.name().to_string()).collect(),
            filter,
            receiver,
            dropped,
            backfill: None,
            page: VecDeque::new(),
            floor: head,
            last: head,
            ended: false,
        };
        if let Some(after) = after {
            let (latest, pruned_through) = counters(self.hub.db.read()).await?;
            if after < 0 || after > latest {
                return Err(LiveError::Unknown { after, latest });
            }
            if after < pruned_through {
                return Err(LiveError::Expired { after, pruned_through });
            }
            // Stored rows up to what the hub had read when we registered; the hub's later ones
            // come through the channel, past whichever of the two is further.
            if after < head {
                reader.backfill = Some((after, head));
            }
            reader.floor = head.max(after);
            reader.last = after;
        }
        let inner = futures_util::stream::unfold(reader, |mut reader| async move {
            let item = reader.next().await?;
            Some((item, reader))
        });
        Ok(LiveStream { inner: Box::pin(inner) })
    }

    /// The last sequence this instance has read and handed out.
    pub fn head(&self) -> i64 {
        self.hub.state().head
    }

    /// The last sequence this instance has read, changing whenever it reads new rows: a
    /// durable consumer's wake-up.
    pub fn watch_head(&self) -> watch::Receiver<i64> {
        self.hub.head_watch.subscribe()
    }

    /// Subscribers registered on this instance.
    pub fn subscribers(&self) -> usize {
        self.hub.state().subscribers.len()
    }
}

/// A subscriber's items; see [`Live::subscribe`].
pub struct LiveStream {
    inner: BoxStream<'static, Result<Arc<Item>, LiveError>>,
}

impl Stream for LiveStream {
    type Item = Result<Arc<Item>, LiveError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// A subscriber's place in the hub, given up when its stream is dropped.
struct Registration {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.state().remove(self.id);
    }
}

struct Reader {
    _registration: Registration,
    db: Database,
    topics: Vec<String>,
    /// Applied to stored rows as the hub applies it to live ones.
    filter: Arc<Filter>,
    receiver: mpsc::Receiver<Arc<Item>>,
    dropped: Arc<AtomicBool>,
    /// Stored rows still to read: (after this sequence, up to this one).
    backfill: Option<(i64, i64)>,
    page: VecDeque<Arc<Item>>,
    /// Items from the hub at or below this were read from the table (or predate the subscriber).
    floor: i64,
    /// The last sequence handed out: where a subscriber dropped as too slow resumes.
    last: i64,
    ended: bool,
}

impl Reader {
    async fn next(&mut self) -> Option<Result<Arc<Item>, LiveError>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(item) = self.page.pop_front() {
                self.last = item.sequence;
                return Some(Ok(item));
            }
            if let Some((cursor, upper)) = self.backfill {
                if let Err(error) = self.read_page(cursor, upper).await {
                    self.ended = true;
                    return Some(Err(error));
                }
                continue;
            }
            match self.receiver.recv().await {
                Some(item) if item.sequence <= self.floor => continue,
                Some(item) => {
                    self.last = item.sequence;
                    return Some(Ok(item));
                }
                None => {
                    self.ended = true;
                    return self.dropped.load(Ordering::SeqCst).then_some(Err(LiveError::TooSlow { last: self.last }));
                }
            }
        }
    }

    async fn read_page(&mut self, cursor: i64, upper: i64) -> Result<(), LiveError> {
        let rows = outbox::Entity::find()
            .filter(outbox::Column::Id.gt(cursor))
            .filter(outbox::Column::Id.lte(upper))
            .filter(outbox::Column::Topic.is_in(self.topics.iter().map(String::as_str)))
            .order_by_asc(outbox::Column::Id)
            .limit(BACKFILL_PAGE)
            .all(self.db.read())
            .await?;
        // Read after the rows: pruning records what it deletes in the deleting transaction, so
        // rows after `cursor` deleted before the read above show here.
        let (_, pruned_through) = counters(self.db.read()).await?;
        if pruned_through > cursor {
            return Err(LiveError::Expired { after: self.last, pruned_through });
        }
        self.backfill = match rows.last() {
            Some(last) if rows.len() as u64 == BACKFILL_PAGE && last.id < upper => Some((last.id, upper)),
            _ => None,
        };
        self.page
            .extend(rows.into_iter().filter_map(Item::of_row).filter(|item| self.filter.admits(item)).map(Arc::new));
        Ok(())
    }
}

async fn read_loop(hub: Arc<Hub>, mut closed: watch::Receiver<()>) {
    let mut poll = tokio::time::interval(hub.settings.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = closed.changed() => return,
            _ = hub.wake.notified() => {}
            _ = poll.tick() => {}
        }
        if let Err(error) = hub.catch_up().await {
            tracing::warn!(%error, "reading the outbox failed; trying again at the next wake-up");
        }
    }
}

async fn prune_loop(hub: Arc<Hub>, mut closed: watch::Receiver<()>) {
    let mut tick = tokio::time::interval(hub.settings.prune_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = closed.changed() => return,
            _ = tick.tick() => {}
        }
        let retention = chrono::Duration::from_std(hub.settings.retention).unwrap_or(chrono::Duration::MAX);
        let cutoff =
            chrono::Utc::now().checked_sub_signed(retention).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        match super::prune(&hub.db, cutoff).await {
            Ok(Some((through, deleted))) => {
                tracing::debug!(table = "outbox", deleted, through, "retention: pruned the outbox")
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "pruning the outbox failed"),
        }
    }
}

/// PostgreSQL: wakes the reader on every `NOTIFY`, and after every (re)connection, since
/// notifications sent while it was not listening are lost.
async fn listen_loop(hub: Arc<Hub>, url: String, mut closed: watch::Receiver<()>) {
    use sea_orm::sqlx::postgres::PgListener;
    let mut failures = 0u32;
    loop {
        let connect = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            _ = closed.changed() => return,
            connected = connect => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(error) => {
                failures += 1;
                // Once at warn; then quietly, until it works again.
                if failures == 1 {
                    tracing::warn!(%error, "cannot listen for outbox notifications; polling until it works");
                } else {
                    tracing::debug!(%error, "cannot listen for outbox notifications");
                }
                tokio::select! {
                    _ = closed.changed() => return,
                    _ = tokio::time::sleep(RECONNECT_DELAY) => continue,
                }
            }
        };
        failures = 0;
        hub.wake.notify_one();
        loop {
            tokio::select! {
                _ = closed.changed() => return,
                received = listener.try_recv() => match received {
                    // `None`: the connection was lost and is back; what was sent meanwhile is not.
                    Ok(_) => hub.wake.notify_one(),
                    Err(error) => {
                        tracing::warn!(%error, "outbox listener failed; connecting again");
                        break;
                    }
                },
            }
        }
    }
}
