//! Limits per adapter version: a supplier may ask, at upload, for more than the platform's
//! strict defaults (a larger component, more memory, more instructions or a longer deadline per
//! call), within ceilings the operator configures; an admin approves the request when activating
//! the version. Each column holds what was asked for, null where the version takes the default,
//! so that a version that asked for nothing follows the server's configured defaults.
//! `limits_fuel` 0 asks for no metering at all. `limits_approval` is `not_needed` (nothing above
//! the defaults), `pending` or `approved`, with who approved and when.
//!
//! Up adds the columns (existing versions asked for nothing: `not_needed`); down drops them.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Adapter {
    Table,
    LimitsComponentBytes,
    LimitsMemoryBytes,
    LimitsFuel,
    LimitsDeadlineMs,
    LimitsApproval,
    LimitsApprovedBy,
    LimitsApprovedAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

fn columns() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(Adapter::LimitsComponentBytes).big_integer().null().to_owned(),
        ColumnDef::new(Adapter::LimitsMemoryBytes).big_integer().null().to_owned(),
        ColumnDef::new(Adapter::LimitsFuel).big_integer().null().to_owned(),
        ColumnDef::new(Adapter::LimitsDeadlineMs).big_integer().null().to_owned(),
        ColumnDef::new(Adapter::LimitsApproval).string_len(20).not_null().default("not_needed").to_owned(),
        ColumnDef::new(Adapter::LimitsApprovedBy).string_len(200).null().to_owned(),
        ColumnDef::new(Adapter::LimitsApprovedAt).timestamp_with_time_zone().null().to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for column in columns() {
            manager.alter_table(Table::alter().table(Adapter::Table).add_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in columns().into_iter().rev() {
            let name = column.get_column_name();
            manager.alter_table(Table::alter().table(Adapter::Table).drop_column(Alias::new(name)).to_owned()).await?;
        }
        Ok(())
    }
}
