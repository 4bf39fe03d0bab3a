//! What every request handler shares: the database and the in-process event bus.

use tokio::sync::broadcast;

use crate::config::DeviceSettings;
use crate::db::Database;
use crate::devices::ingest::IngestWriter;
use crate::devices::runtime::AdapterRuntime;
use crate::organizations::Organization;

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub events: EventBus,
    /// Runs suppliers' adapters.
    pub adapters: AdapterRuntime,
    /// Writes ingested messages, many requests per transaction.
    pub ingest: IngestWriter,
    pub devices: DeviceSettings,
}

impl AppState {
    /// The state of one server; starts the ingest writer on the current Tokio runtime.
    pub fn new(db: Database, adapters: AdapterRuntime, devices: DeviceSettings) -> AppState {
        let ingest = IngestWriter::start(db.clone());
        AppState { db, events: EventBus::new(), adapters, ingest, devices }
    }
}

/// Domain events for GraphQL subscriptions, within one server instance.
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
