//! Indexes that keep the cost of ingesting a message from growing with the data stored
//! (issue 16). Before them, every ingest transaction read `device_event` by `receipt_id` twice
//! (announcing the stored events, raising alerts) with no index, so a full scan of all events
//! ever stored; and pruning receipt bodies updated by `product_id, id <= boundary`, which walked
//! every receipt of the product. The partial index holds only the receipts that still keep
//! their body (the newest `VELFERD_REPLAY_RETENTION` per product, plus up to 64), so both
//! of pruning's statements read a few hundred entries whatever the table's size.

use sea_orm_migration::prelude::*;

use crate::ddl;
use crate::m20261122_000004_devices::DeviceEvent;

const EVENT_RECEIPT_INDEX: &str = "idx_device_event_receipt";
const RECEIPT_BODY_INDEX: &str = "idx_receipt_body";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(ddl::index(EVENT_RECEIPT_INDEX, DeviceEvent::Table, [DeviceEvent::ReceiptId])).await?;
        // Partial indexes are the same SQL on SQLite and PostgreSQL; sea-query has no builder
        // for their predicate.
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {RECEIPT_BODY_INDEX} ON ingest_receipt (product_id, id) WHERE body IS NOT NULL"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(&format!("DROP INDEX IF EXISTS {RECEIPT_BODY_INDEX}")).await?;
        manager.drop_index(Index::drop().name(EVENT_RECEIPT_INDEX).table(DeviceEvent::Table).to_owned()).await
    }
}
