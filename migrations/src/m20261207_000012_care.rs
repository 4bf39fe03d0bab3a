//! Care operations: service recipients (a municipality's pseudonymous reference, never a
//! national identity number), and devices in service — each device gets a lifecycle status, a
//! link to the recipient it is assigned to, and when it was last heard from.
//!
//! The device columns are added (SQLite adds a NOT NULL column only with a default); the
//! recipient link has no foreign key because SQLite cannot add one to an existing table: the
//! rules keep it.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references};
use crate::m20261122_000001_organizations::Organization;
use crate::m20261122_000004_devices::Device;

ddl::schema! {
    #[unique(uq_service_recipient_reference: MunicipalityId, Reference)]
    ServiceRecipient {
        MunicipalityId: references(Organization::Table),
        // The municipality's own pseudonymous reference.
        Reference: string_len(300),
        CareZone: string_len_null(300),
        // active | paused | ended
        Status: string_len(20),
        StartedOn: date,
        PausedOn: date_null,
        EndedOn: date_null,
        CreatedBy: string_len(200),
        CreatedAt: timestamp_with_time_zone,
        UpdatedAt: timestamp_with_time_zone,
    }
}

#[derive(DeriveIden)]
enum InService {
    Status,
    RecipientId,
    LastSeenAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::create(manager, tables(), indexes()).await?;
        // One column per statement: SQLite alters one column at a time.
        for column in [
            ColumnDef::new(InService::Status).string_len(20).not_null().default("in_stock").to_owned(),
            ColumnDef::new(InService::RecipientId).big_integer().null().to_owned(),
            ColumnDef::new(InService::LastSeenAt).timestamp_with_time_zone().null().to_owned(),
        ] {
            manager.alter_table(Table::alter().table(Device::Table).add_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [InService::LastSeenAt, InService::RecipientId, InService::Status] {
            manager.alter_table(Table::alter().table(Device::Table).drop_column(column).to_owned()).await?;
        }
        ddl::drop_tables(manager, tables()).await
    }
}
