//! Organisations: municipalities, suppliers, programmes and response centres.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organization {
    Table,
    Id,
    Kind,
    Name,
    OrgNumber,
    MunicipalityNumber,
    County,
    Population,
    PopulationYear,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organization::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Organization::Id))
                    .col(string_len(Organization::Kind, 32))
                    .col(string_len(Organization::Name, 200))
                    // Unique but optional: a demo organisation whose number we could not find
                    // in a public source has none rather than an invented one.
                    .col(string_len_null(Organization::OrgNumber, 9).unique_key())
                    .col(string_len_null(Organization::MunicipalityNumber, 4))
                    .col(string_len_null(Organization::County, 64))
                    .col(big_integer_null(Organization::Population))
                    .col(integer_null(Organization::PopulationYear))
                    .col(timestamp_with_time_zone(Organization::CreatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_organization_name", Organization::Name),
            ("idx_organization_county", Organization::County),
            ("idx_organization_kind", Organization::Kind),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Organization::Table)
                        .col(column)
                        .col(Organization::Id)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Organization::Table).to_owned()).await
    }
}
