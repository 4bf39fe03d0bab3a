//! Each product's dead-letter quota counts the bytes of its unresolved dead letters. Until now
//! every rejected message summed them again (`SUM(LENGTH(body))` over the product's dead
//! letters), so the check grew with the very backlog it limits. `device_product.dead_letter_bytes`
//! keeps the sum instead: the server changes it in the transaction that stores, reopens or
//! resolves a dead letter, and checks the quota with the same conditional update that adds to it.
//!
//! Up adds the column (0 by default, as SQLite needs to add a NOT NULL column) and sets it from
//! the stored dead letters; down drops it.

use sea_orm_migration::prelude::*;

use crate::ddl;
use crate::m20261122_000004_devices::DeviceProduct;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Counter {
    DeadLetterBytes,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = ColumnDef::new(Counter::DeadLetterBytes).big_integer().not_null().default(0).to_owned();
        ddl::add_column(manager, DeviceProduct::Table, column).await?;
        // One statement, so the backfill sees one state of the dead letters.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE device_product SET dead_letter_bytes = (SELECT COALESCE(SUM(LENGTH(body)), 0) \
                 FROM dead_letter WHERE dead_letter.product_id = device_product.id AND dead_letter.resolved_at IS NULL)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::drop_column(manager, DeviceProduct::Table, Counter::DeadLetterBytes).await
    }
}
