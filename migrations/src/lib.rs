//! Velferd's schema migrations. They run on SQLite and PostgreSQL alike, so they stick to what
//! both can do (SQLite cannot alter a column: add new columns or tables instead).

pub use sea_orm_migration::prelude::*;

mod ddl;
mod m20261122_000001_organizations;
mod m20261122_000002_procurements;
mod m20261122_000003_learning;
mod m20261122_000004_devices;
mod m20261205_000005_dead_letter_identity;
mod m20261206_000006_device_delivery;

pub use m20261205_000005_dead_letter_identity::{MAX_CONTENT_TYPE_BYTES, message_key, normalise_content_type};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_organizations::Migration),
            Box::new(m20261122_000002_procurements::Migration),
            Box::new(m20261122_000003_learning::Migration),
            Box::new(m20261122_000004_devices::Migration),
            Box::new(m20261205_000005_dead_letter_identity::Migration),
            Box::new(m20261206_000006_device_delivery::Migration),
        ]
    }
}
