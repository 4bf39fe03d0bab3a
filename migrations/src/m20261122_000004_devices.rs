//! Devices and their adapters in service: suppliers' signing keys, device products with their
//! uploaded adapter versions, devices registered to municipalities, ingest receipts (with the
//! raw bodies of the most recent messages kept for replay review), normalised device events
//! (unique per device and supplier event id, which makes ingest idempotent) and dead letters
//! (the original bytes of messages that could not be stored as events, unique per body).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organization {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum CallOff {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SigningKey {
    Table,
    Id,
    SupplierId,
    PublicKey,
    Label,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum DeviceProduct {
    Table,
    Id,
    SupplierId,
    Slug,
    CreatedAt,
}

#[derive(DeriveIden)]
#[allow(clippy::enum_variant_names, reason = "variants are the column names: renaming one renames its column")]
enum Adapter {
    Table,
    Id,
    ProductId,
    Status,
    AdapterVersion,
    InterfaceVersion,
    Sha256,
    SizeBytes,
    Component,
    Description,
    SigningKeyId,
    UploadedBy,
    UploadedAt,
    ActivatedAt,
    RetiredAt,
}

#[derive(DeriveIden)]
enum Device {
    Table,
    Id,
    ProductId,
    MunicipalityId,
    Serial,
    CallOffId,
    RecipientRef,
    RegisteredAt,
}

#[derive(DeriveIden)]
enum IngestReceipt {
    Table,
    Id,
    ProductId,
    AdapterId,
    ReceivedAt,
    ContentType,
    BodySha256,
    Body,
    Outcome,
    EventsStored,
    EventsDuplicate,
    DeadLetterId,
}

#[derive(DeriveIden)]
enum DeviceEvent {
    Table,
    Id,
    DeviceId,
    ReceiptId,
    AdapterId,
    SupplierEventId,
    Kind,
    VkpCode,
    Severity,
    OccurredAt,
    ReceivedAt,
    Detail,
    Data,
}

#[derive(DeriveIden)]
enum DeadLetter {
    Table,
    Id,
    ProductId,
    ContentType,
    Body,
    BodySha256,
    ReasonCode,
    Reason,
    DeviceSerial,
    AdapterId,
    Attempts,
    FirstReceivedAt,
    LastReceivedAt,
    ResolvedAt,
}

fn fk(
    from_table: impl IntoIden,
    from_col: impl IntoIden,
    to_table: impl IntoIden,
    to_col: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from_table, from_col).to(to_table, to_col).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            Table::create()
                .table(SigningKey::Table)
                .if_not_exists()
                .col(big_pk_auto(SigningKey::Id))
                .col(big_integer(SigningKey::SupplierId))
                .col(string_len(SigningKey::PublicKey, 64))
                .col(string_len_null(SigningKey::Label, 200))
                .col(timestamp_with_time_zone(SigningKey::CreatedAt))
                .col(timestamp_with_time_zone_null(SigningKey::RevokedAt))
                .foreign_key(&mut fk(SigningKey::Table, SigningKey::SupplierId, Organization::Table, Organization::Id))
                .to_owned(),
            Table::create()
                .table(DeviceProduct::Table)
                .if_not_exists()
                .col(big_pk_auto(DeviceProduct::Id))
                .col(big_integer(DeviceProduct::SupplierId))
                .col(string_len(DeviceProduct::Slug, 63))
                .col(timestamp_with_time_zone(DeviceProduct::CreatedAt))
                .foreign_key(&mut fk(
                    DeviceProduct::Table,
                    DeviceProduct::SupplierId,
                    Organization::Table,
                    Organization::Id,
                ))
                .to_owned(),
            Table::create()
                .table(Adapter::Table)
                .if_not_exists()
                .col(big_pk_auto(Adapter::Id))
                .col(big_integer(Adapter::ProductId))
                .col(string_len(Adapter::Status, 20))
                .col(string_len(Adapter::AdapterVersion, 100))
                .col(string_len(Adapter::InterfaceVersion, 40))
                .col(string_len(Adapter::Sha256, 64))
                .col(big_integer(Adapter::SizeBytes))
                .col(blob(Adapter::Component))
                .col(text(Adapter::Description))
                .col(big_integer(Adapter::SigningKeyId))
                .col(string_len(Adapter::UploadedBy, 200))
                .col(timestamp_with_time_zone(Adapter::UploadedAt))
                .col(timestamp_with_time_zone_null(Adapter::ActivatedAt))
                .col(timestamp_with_time_zone_null(Adapter::RetiredAt))
                .foreign_key(&mut fk(Adapter::Table, Adapter::ProductId, DeviceProduct::Table, DeviceProduct::Id))
                .foreign_key(&mut fk(Adapter::Table, Adapter::SigningKeyId, SigningKey::Table, SigningKey::Id))
                .to_owned(),
            Table::create()
                .table(Device::Table)
                .if_not_exists()
                .col(big_pk_auto(Device::Id))
                .col(big_integer(Device::ProductId))
                .col(big_integer(Device::MunicipalityId))
                .col(string_len(Device::Serial, 64))
                .col(big_integer_null(Device::CallOffId))
                .col(string_len_null(Device::RecipientRef, 100))
                .col(timestamp_with_time_zone(Device::RegisteredAt))
                .foreign_key(&mut fk(Device::Table, Device::ProductId, DeviceProduct::Table, DeviceProduct::Id))
                .foreign_key(&mut fk(Device::Table, Device::MunicipalityId, Organization::Table, Organization::Id))
                .foreign_key(&mut fk(Device::Table, Device::CallOffId, CallOff::Table, CallOff::Id))
                .to_owned(),
            Table::create()
                .table(DeadLetter::Table)
                .if_not_exists()
                .col(big_pk_auto(DeadLetter::Id))
                .col(big_integer(DeadLetter::ProductId))
                .col(string_len(DeadLetter::ContentType, 200))
                .col(blob(DeadLetter::Body))
                .col(string_len(DeadLetter::BodySha256, 64))
                .col(string_len(DeadLetter::ReasonCode, 40))
                .col(text(DeadLetter::Reason))
                .col(string_len_null(DeadLetter::DeviceSerial, 64))
                .col(big_integer_null(DeadLetter::AdapterId))
                .col(integer(DeadLetter::Attempts))
                .col(timestamp_with_time_zone(DeadLetter::FirstReceivedAt))
                .col(timestamp_with_time_zone(DeadLetter::LastReceivedAt))
                .col(timestamp_with_time_zone_null(DeadLetter::ResolvedAt))
                .foreign_key(&mut fk(DeadLetter::Table, DeadLetter::ProductId, DeviceProduct::Table, DeviceProduct::Id))
                .to_owned(),
            Table::create()
                .table(IngestReceipt::Table)
                .if_not_exists()
                .col(big_pk_auto(IngestReceipt::Id))
                .col(big_integer(IngestReceipt::ProductId))
                .col(big_integer_null(IngestReceipt::AdapterId))
                .col(timestamp_with_time_zone(IngestReceipt::ReceivedAt))
                .col(string_len(IngestReceipt::ContentType, 200))
                .col(string_len(IngestReceipt::BodySha256, 64))
                .col(blob_null(IngestReceipt::Body))
                .col(string_len(IngestReceipt::Outcome, 20))
                .col(integer(IngestReceipt::EventsStored))
                .col(integer(IngestReceipt::EventsDuplicate))
                .col(big_integer_null(IngestReceipt::DeadLetterId))
                .foreign_key(&mut fk(
                    IngestReceipt::Table,
                    IngestReceipt::ProductId,
                    DeviceProduct::Table,
                    DeviceProduct::Id,
                ))
                .to_owned(),
            Table::create()
                .table(DeviceEvent::Table)
                .if_not_exists()
                .col(big_pk_auto(DeviceEvent::Id))
                .col(big_integer(DeviceEvent::DeviceId))
                .col(big_integer(DeviceEvent::ReceiptId))
                .col(big_integer(DeviceEvent::AdapterId))
                .col(string_len(DeviceEvent::SupplierEventId, 128))
                .col(string_len(DeviceEvent::Kind, 40))
                .col(string_len_null(DeviceEvent::VkpCode, 20))
                .col(string_len(DeviceEvent::Severity, 20))
                .col(timestamp_with_time_zone(DeviceEvent::OccurredAt))
                .col(timestamp_with_time_zone(DeviceEvent::ReceivedAt))
                .col(text_null(DeviceEvent::Detail))
                .col(text(DeviceEvent::Data))
                .foreign_key(&mut fk(DeviceEvent::Table, DeviceEvent::DeviceId, Device::Table, Device::Id))
                .foreign_key(&mut fk(
                    DeviceEvent::Table,
                    DeviceEvent::ReceiptId,
                    IngestReceipt::Table,
                    IngestReceipt::Id,
                ))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }

        let unique = [
            ("uq_signing_key", SigningKey::Table.into_iden(), vec![SigningKey::PublicKey.into_iden()]),
            ("uq_product_slug", DeviceProduct::Table.into_iden(), vec![DeviceProduct::Slug.into_iden()]),
            (
                "uq_adapter_component",
                Adapter::Table.into_iden(),
                vec![Adapter::ProductId.into_iden(), Adapter::Sha256.into_iden()],
            ),
            (
                "uq_device_serial",
                Device::Table.into_iden(),
                vec![Device::ProductId.into_iden(), Device::Serial.into_iden()],
            ),
            (
                "uq_dead_letter_body",
                DeadLetter::Table.into_iden(),
                vec![DeadLetter::ProductId.into_iden(), DeadLetter::BodySha256.into_iden()],
            ),
            // The idempotency key of ingest: one event per device and supplier event id.
            (
                "uq_device_event",
                DeviceEvent::Table.into_iden(),
                vec![DeviceEvent::DeviceId.into_iden(), DeviceEvent::SupplierEventId.into_iden()],
            ),
            (
                "idx_receipt_product",
                IngestReceipt::Table.into_iden(),
                vec![IngestReceipt::ProductId.into_iden(), IngestReceipt::Id.into_iden()],
            ),
        ];
        for (name, table, columns) in unique {
            let mut index = Index::create().name(name).table(table).if_not_exists().to_owned();
            if name.starts_with("uq_") {
                index.unique();
            }
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        let lookups = [
            ("idx_adapter_product", Adapter::Table.into_iden(), Adapter::ProductId.into_iden()),
            ("idx_device_municipality", Device::Table.into_iden(), Device::MunicipalityId.into_iden()),
            ("idx_signing_key_supplier", SigningKey::Table.into_iden(), SigningKey::SupplierId.into_iden()),
            ("idx_product_supplier", DeviceProduct::Table.into_iden(), DeviceProduct::SupplierId.into_iden()),
        ];
        for (name, table, column) in lookups {
            manager
                .create_index(Index::create().name(name).table(table).col(column).if_not_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DeviceEvent::Table.into_iden(),
            IngestReceipt::Table.into_iden(),
            DeadLetter::Table.into_iden(),
            Device::Table.into_iden(),
            Adapter::Table.into_iden(),
            DeviceProduct::Table.into_iden(),
            SigningKey::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
