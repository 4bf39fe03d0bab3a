//! Webhooks, Standard Webhooks compatible (docs/webhooks.md; the spec is
//! `standard-webhooks/standard-webhooks`, `spec/standard-webhooks.md`): an organisation
//! registers HTTPS endpoints with the event types it wants; every change announced in the
//! outbox (`crate::live`) becomes one delivery per matching endpoint, signed `v1` (HMAC-SHA256)
//! and `v1a` (Ed25519) over `webhook-id.webhook-timestamp.body`, and is retried on the spec's
//! schedule until a 2xx answer.
//!
//! * **Fan-out** (`fanout`): a durable consumer of the outbox, on every instance. In one
//!   transaction it locks its position, reads the next rows, makes their deliveries and
//!   advances. Ingest still writes one outbox row per change, however many endpoints there are;
//!   a crash between an ingest's commit and the fan-out loses nothing (the row stays until the
//!   consumer has passed it).
//! * **Delivery** (`worker`): on every instance, claims due deliveries under a lease, at most
//!   one in flight per endpoint, signs each attempt afresh, posts it through
//!   `crate::outbound::Outbound` (no redirects, public addresses only unless loopback is
//!   allowed), and records the attempt. A process killed mid-attempt leaves a lease that
//!   expires; the delivery is then sent again with the same `webhook-id`.
//! * **Endpoints** (`rules`, `graphql`): the organisation's `municipality_admin` or its
//!   `integration` token registers, rotates, disables, tests and replays.

pub mod events;
pub mod fanout;
pub mod graphql;
pub mod loaders;
pub mod model;
pub mod rules;
pub mod schedule;
pub mod signing;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::Database;
use crate::live::Live;
use crate::outbound::Outbound;

/// The outbox consumer the fan-out keeps its position under.
pub const CONSUMER: &str = "webhooks";

/// Webhook settings (`VELFERD_WEBHOOK_*`, `VELFERD_PUBLIC_BASE_URL`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The delay before each attempt, the first counted from the event (`schedule::parse`).
    pub retry_schedule: Vec<Duration>,
    /// Deliveries one instance sends at once; 0: this instance neither fans out nor sends.
    pub concurrency: usize,
    /// How long the previous secret still signs after a rotation.
    pub rotation_grace: Duration,
    /// Most endpoints one organisation may register.
    pub max_endpoints: usize,
    /// How long a claimed delivery is an instance's before another may send it: longer than
    /// the outbound request timeout.
    pub lease: Duration,
    /// How often the fan-out and the worker look without being woken.
    pub poll_interval: Duration,
    /// The public address of this API, for the link in each payload; none: the address this
    /// server listens on ([`Webhooks::listening_on`]).
    pub public_base_url: Option<String>,
}

/// Webhooks on this instance: what the API needs (the settings, the links' base, a way to wake
/// the worker) and the background tasks, which stop when the last clone is dropped.
pub struct Webhooks {
    pub settings: WebhookSettings,
    base_url: BaseUrl,
    wake: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Webhooks {
    /// Registers the outbox consumer and, unless `concurrency` is 0, starts the fan-out and the
    /// delivery worker on the current Tokio runtime.
    pub async fn start(
        db: Database,
        live: Live,
        outbound: Outbound,
        settings: WebhookSettings,
    ) -> Result<Webhooks, sea_orm::DbErr> {
        crate::live::consumer::register(db.write(), CONSUMER).await?;
        let base_url = BaseUrl::default();
        if let Some(url) = &settings.public_base_url {
            base_url.0.get_or_init(|| url.clone());
        }
        let wake = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        if settings.concurrency > 0 {
            tasks.push(tokio::spawn(crate::db::unmetered(fanout::run(
                db.clone(),
                live,
                settings.clone(),
                base_url.clone(),
                wake.clone(),
            ))));
            tasks.push(tokio::spawn(crate::db::unmetered(worker::run(db, outbound, settings.clone(), wake.clone()))));
        }
        Ok(Webhooks { settings, base_url, wake, tasks })
    }

    /// Links point at `addr` unless `VELFERD_PUBLIC_BASE_URL` says otherwise: called once the
    /// server listens (its port may have been picked by the system).
    pub fn listening_on(&self, addr: std::net::SocketAddr) {
        self.base_url.0.get_or_init(|| format!("http://{addr}"));
    }

    /// The base of the links in payloads.
    pub fn base_url(&self) -> &str {
        self.base_url.get()
    }

    /// Tells the worker a delivery may be due now (a test event, a replay, an enabled endpoint).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The API's public address, known once the server listens.
#[derive(Clone, Default)]
pub struct BaseUrl(Arc<std::sync::OnceLock<String>>);

impl BaseUrl {
    pub fn get(&self) -> &str {
        // Before the server listens nothing is announced; a link is still well-formed.
        self.0.get().map_or("http://localhost", String::as_str)
    }
}

/// Milliseconds since the Unix epoch: how due times and leases are stored and compared.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
