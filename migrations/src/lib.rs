//! Velferd's schema migrations. They run on SQLite and PostgreSQL alike, so they stick to what
//! both can do (SQLite cannot alter a column: add new columns or tables instead).

pub use sea_orm_migration::prelude::*;

mod ddl;
pub mod national_id;

/// Declares each migration's module and lists it in [`Migrator`], from one line per migration,
/// in the order they run. `cargo fmt` does not see modules a macro declares: `.ci/run` names
/// their files to rustfmt.
macro_rules! migrations {
    ($($name:ident,)*) => {
        $(mod $name;)*

        pub struct Migrator;

        #[async_trait::async_trait]
        impl MigratorTrait for Migrator {
            fn migrations() -> Vec<Box<dyn MigrationTrait>> {
                vec![$(Box::new($name::Migration)),*]
            }
        }
    };
}

migrations! {
    m20261122_000001_organizations,
    m20261122_000002_procurements,
    m20261122_000003_learning,
    m20261122_000004_devices,
    m20261205_000005_dead_letter_identity,
    m20261206_000006_device_delivery,
    m20261206_000007_token_revocation,
    m20261206_000008_dead_letter_bytes,
    m20261206_000009_token_revocation_by_id,
    m20261206_000010_refused_attempts,
    m20261207_000011_audit_log,
    m20261207_000012_care,
    m20261207_000013_alerts,
    m20261207_000014_outbox,
    m20261208_000015_webhooks,
    m20261208_000016_fhir,
    m20261208_000017_benefits,
    m20261209_000018_adapter_limits,
    m20261209_000019_ingest_indexes,
    m20261210_000020_audit_cut,
    m20261211_000021_webhook_in_flight,
}

pub use m20261205_000005_dead_letter_identity::{MAX_CONTENT_TYPE_BYTES, message_key, normalise_content_type};
pub use national_id::holds_national_id;
