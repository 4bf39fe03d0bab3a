//! What every request handler shares: the database, the live updates (`crate::live`) and the
//! in-process event bus.

use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;

use crate::config::DeviceSettings;
use crate::db::Database;
use crate::devices::ingest::IngestWriter;
use crate::devices::runtime::AdapterRuntime;
use crate::organizations::Organization;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub events: EventBus,
    /// Live updates through the outbox, across instances.
    pub live: crate::live::Live,
    /// Runs suppliers' adapters.
    pub adapters: AdapterRuntime,
    /// Writes ingested messages, many requests per transaction.
    pub ingest: IngestWriter,
    /// The products ingest posts to, read at most a second ago.
    pub ingest_products: Arc<crate::devices::ingest::IngestProducts>,
    pub devices: DeviceSettings,
    /// The fewest recipients a published benefit figure may cover (`VELFERD_BENEFITS_MIN_RECIPIENTS`).
    pub benefits_min_recipients: u32,
    /// This server's Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Each product's ingest rate limit and what it refused.
    pub ingest_limits: Arc<crate::devices::limits::IngestLimits>,
    /// Revoked tokens, kept fresh from the database.
    pub revocations: Arc<crate::organizations::revocations::Revocations>,
    /// Every caller's cost bucket on this instance.
    pub throttle: Arc<crate::throttle::Throttle>,
    /// Refused and throttled attempts, counted for the platform operator.
    pub refusals: Arc<crate::refusals::RefusalLog>,
    /// The alert sweep (escalation deadlines, silent devices); it stops with the last clone.
    pub alert_sweep: Arc<crate::alerts::sweep::Sweep>,
    /// Webhook endpoints' settings and outbound client, and this instance's fan-out and
    /// delivery worker (`crate::webhooks`); set once at start.
    pub webhooks: Option<Arc<crate::webhooks::Webhooks>>,
    /// The one client for calls to addresses others choose (webhooks): SSRF-safe.
    pub outbound: crate::outbound::Outbound,
    /// The retention sweep (`crate::retention`); set once at start, it stops with the last clone.
    pub retention: Option<Arc<crate::retention::Retention>>,
    /// Writes the audit entries of accesses outside any transaction (live alerts), in batches.
    pub audit: crate::audit::Recorder,
}

impl AppState {
    /// The state of one server; starts the ingest writer, the refusal log's writer and the audit
    /// recorder on the current Tokio runtime.
    #[allow(clippy::too_many_arguments, reason = "each part of the state is made once, at start")]
    pub fn new(
        db: Database,
        live: crate::live::Live,
        adapters: AdapterRuntime,
        devices: DeviceSettings,
        revocations: Arc<crate::organizations::revocations::Revocations>,
        throttle: crate::throttle::ThrottleSettings,
        refusal_log_flush: std::time::Duration,
        alerts: crate::config::AlertSettings,
        outbound: crate::outbound::Outbound,
    ) -> AppState {
        let events = EventBus::new();
        let ingest = IngestWriter::start(db.clone(), live.clone());
        let metrics = Arc::new(Metrics::new());
        let adapters = adapters.with_metrics(metrics.clone());
        let ingest_limits = Arc::new(crate::devices::limits::IngestLimits::new(devices.ingest_limits));
        let refusals = crate::refusals::RefusalLog::start(db.clone(), metrics.clone(), refusal_log_flush);
        let throttle = Arc::new(crate::throttle::Throttle::new(throttle));
        let alert_sweep = Arc::new(crate::alerts::sweep::Sweep::start(db.clone(), live.clone(), alerts.sweep_interval));
        let audit = crate::audit::Recorder::start(db.clone());
        AppState {
            db,
            events,
            live,
            adapters,
            ingest,
            ingest_products: Arc::new(crate::devices::ingest::IngestProducts::new(devices.product_fresh)),
            devices,
            benefits_min_recipients: crate::benefits::DEFAULT_MIN_RECIPIENTS,
            metrics,
            ingest_limits,
            revocations,
            throttle,
            refusals,
            alert_sweep,
            webhooks: None,
            outbound,
            retention: None,
            audit,
        }
    }

    /// The outbound HTTP client, built once at start from `VELFERD_OUTBOUND_*`.
    pub fn outbound(&self) -> &crate::outbound::Outbound {
        &self.outbound
    }
}

/// Domain events for GraphQL subscriptions, within one server instance, that are not worth an
/// outbox row (`organizationCreated`). Anything a subscriber must not miss, or must hear from
/// another instance, goes through `crate::live`.
#[derive(Clone)]
pub struct EventBus {
    organizations: broadcast::Sender<Organization>,
}

impl EventBus {
    fn new() -> EventBus {
        EventBus { organizations: broadcast::channel(256).0 }
    }

    pub fn organization_created(&self, organization: Organization) {
        // No subscriber is not an error.
        let _ = self.organizations.send(organization);
    }

    pub fn subscribe_organizations(&self) -> broadcast::Receiver<Organization> {
        self.organizations.subscribe()
    }
}

/// A subscription's stream of what `receiver` gets. A slow subscriber skips what it missed
/// rather than stalling the others or the sender.
pub fn stream_of<T: Clone + Send + 'static>(receiver: broadcast::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures_util::stream::unfold(receiver, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(item) => return Some((item, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}
