//! Care operations: service recipients (a municipality's pseudonymous reference, never a
//! national identity number) with their status history, assessments (faglig vurdering), and
//! devices in service — each device gets a lifecycle status with its history, a link to the
//! recipient it is assigned to, and when it was last heard from.
//!
//! The device columns are added (SQLite adds a NOT NULL column only with a default); the
//! recipient link has no foreign key because SQLite cannot add one to an existing table: the
//! rules keep it.
//!
//! The free-text `device.recipient_ref` goes: a value shaped like a national identity number
//! ([`holds_national_id`]) is moved to `quarantined_value` — out of the API's reach, reported to
//! the municipality's privacy officer, never copied into a recipient; every other value becomes
//! a service recipient of the device's municipality (one per distinct reference) to which the
//! device is assigned, the change kept in its status history. Then the column is dropped.
//! Down puts the references back (quarantined ones too: down restores what up found).

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references};
use crate::m20261122_000001_organizations::Organization;
use crate::m20261122_000002_procurements::UserStory;
use crate::m20261122_000004_devices::Device;
use crate::national_id::holds_national_id;

ddl::migration! {
    then: put_devices_in_service;
    first: take_devices_out_of_service;
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
    // Every status a recipient's service has had: who set it, for which date, when.
    #[index(idx_recipient_status_change_recipient: RecipientId)]
    RecipientStatusChange {
        RecipientId: references(ServiceRecipient::Table),
        Status: string_len(20),
        EffectiveOn: date,
        Subject: string_len(200),
        OrganizationId: big_integer,
        Role: string_len(40),
        At: timestamp_with_time_zone,
    }
    #[index(idx_assessment_recipient: RecipientId)]
    Assessment {
        MunicipalityId: references(Organization::Table),
        RecipientId: references(ServiceRecipient::Table),
        UserStoryId: references(UserStory::Table),
        // granted | declined
        Decision: string_len(20),
        Reason: string_len(4000),
        DecidedOn: date,
        Subject: string_len(200),
        CreatedAt: timestamp_with_time_zone,
    }
    // Every status a device has had. The recipient is named without a foreign key: the history
    // outlives the recipient's erasure.
    #[index(idx_device_status_change_device: DeviceId)]
    DeviceStatusChange {
        DeviceId: references(Device::Table),
        FromStatus: string_len_null(20),
        ToStatus: string_len(20),
        RecipientId: big_integer_null,
        Subject: string_len(200),
        OrganizationId: big_integer,
        Role: string_len(40),
        At: timestamp_with_time_zone,
    }
    // Stored values shaped like a national identity number, moved out of the API's reach for the
    // municipality's privacy officer.
    #[index(idx_quarantined_value_municipality: MunicipalityId)]
    QuarantinedValue {
        MunicipalityId: references(Organization::Table),
        SourceTable: string_len(40),
        SourceColumn: string_len(40),
        SourceId: big_integer,
        Value: string_len(300),
        FoundAt: timestamp_with_time_zone,
    }
}

#[derive(DeriveIden)]
enum InService {
    Status,
    RecipientId,
    LastSeenAt,
    RecipientRef,
}

/// Who the migration acts as in the histories it writes.
const MIGRATION_SUBJECT: &str = "migration m20261207_000012_care";

/// Up, once the tables exist: the device columns, then each device's reference moved to a
/// recipient (or the quarantine), then the reference column dropped.
async fn put_devices_in_service(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    for column in [
        ColumnDef::new(InService::Status).string_len(20).not_null().default("in_stock").to_owned(),
        ColumnDef::new(InService::RecipientId).big_integer().null().to_owned(),
        ColumnDef::new(InService::LastSeenAt).timestamp_with_time_zone().null().to_owned(),
    ] {
        ddl::add_column(manager, Device::Table, column).await?;
    }
    move_recipient_refs(manager).await?;
    ddl::drop_column(manager, Device::Table, InService::RecipientRef).await
}

/// Down, before the tables go: the reference column back, filled, and the device columns dropped.
async fn take_devices_out_of_service(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    ddl::add_column(manager, Device::Table, ColumnDef::new(InService::RecipientRef).string_len(100).null().to_owned())
        .await?;
    restore_recipient_refs(manager).await?;
    for column in [InService::LastSeenAt, InService::RecipientId, InService::Status] {
        ddl::drop_column(manager, Device::Table, column).await?;
    }
    Ok(())
}

/// Quarantines the national-ID-shaped references and turns the others into recipients.
async fn move_recipient_refs(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let select = Query::select()
        .columns([Device::Id, Device::MunicipalityId, Device::RecipientRef, Device::RegisteredAt])
        .from(Device::Table)
        .and_where(Expr::col(Device::RecipientRef).is_not_null())
        .order_by(Device::Id, Order::Asc)
        .to_owned();
    let now = chrono_now();
    for row in db.query_all_raw(backend.build(&select)).await? {
        let device: i64 = row.try_get("", "id")?;
        let municipality: i64 = row.try_get("", "municipality_id")?;
        let value: String = row.try_get("", "recipient_ref")?;
        let registered: sea_orm_migration::sea_orm::prelude::DateTimeWithTimeZone = row.try_get("", "registered_at")?;
        let reference = value.trim().to_string();
        if reference.is_empty() {
            continue;
        }
        if holds_national_id(&reference) {
            let quarantined = [
                (QuarantinedValue::MunicipalityId, municipality.into()),
                (QuarantinedValue::SourceTable, "device".into()),
                (QuarantinedValue::SourceColumn, "recipient_ref".into()),
                (QuarantinedValue::SourceId, device.into()),
                (QuarantinedValue::Value, value.clone().into()),
                (QuarantinedValue::FoundAt, now.into()),
            ];
            ddl::insert_row(manager, QuarantinedValue::Table, quarantined).await?;
            continue;
        }
        let existing = Query::select()
            .column(ServiceRecipient::Id)
            .from(ServiceRecipient::Table)
            .and_where(Expr::col(ServiceRecipient::MunicipalityId).eq(municipality))
            .and_where(Expr::col(ServiceRecipient::Reference).eq(reference.as_str()))
            .to_owned();
        let recipient: i64 = match db.query_one_raw(backend.build(&existing)).await? {
            Some(row) => row.try_get("", "id")?,
            None => {
                let recipient = [
                    (ServiceRecipient::MunicipalityId, municipality.into()),
                    (ServiceRecipient::Reference, reference.clone().into()),
                    (ServiceRecipient::Status, "active".into()),
                    (ServiceRecipient::StartedOn, registered.date_naive().into()),
                    (ServiceRecipient::CreatedBy, MIGRATION_SUBJECT.into()),
                    (ServiceRecipient::CreatedAt, now.into()),
                    (ServiceRecipient::UpdatedAt, now.into()),
                ];
                ddl::insert_row(manager, ServiceRecipient::Table, recipient).await?;
                let row = db
                    .query_one_raw(backend.build(&existing))
                    .await?
                    .ok_or_else(|| DbErr::Migration("the recipient just inserted is missing".into()))?;
                let id: i64 = row.try_get("", "id")?;
                let history = [
                    (RecipientStatusChange::RecipientId, id.into()),
                    (RecipientStatusChange::Status, "active".into()),
                    (RecipientStatusChange::EffectiveOn, registered.date_naive().into()),
                    (RecipientStatusChange::Subject, MIGRATION_SUBJECT.into()),
                    (RecipientStatusChange::OrganizationId, municipality.into()),
                    (RecipientStatusChange::Role, "migration".into()),
                    (RecipientStatusChange::At, now.into()),
                ];
                ddl::insert_row(manager, RecipientStatusChange::Table, history).await?;
                id
            }
        };
        let update = Query::update()
            .table(Device::Table)
            .value(InService::RecipientId, recipient)
            .value(InService::Status, "assigned")
            .and_where(Expr::col(Device::Id).eq(device))
            .to_owned();
        db.execute_raw(backend.build(&update)).await?;
        let history = [
            (DeviceStatusChange::DeviceId, device.into()),
            (DeviceStatusChange::FromStatus, "in_stock".into()),
            (DeviceStatusChange::ToStatus, "assigned".into()),
            (DeviceStatusChange::RecipientId, recipient.into()),
            (DeviceStatusChange::Subject, MIGRATION_SUBJECT.into()),
            (DeviceStatusChange::OrganizationId, municipality.into()),
            (DeviceStatusChange::Role, "migration".into()),
            (DeviceStatusChange::At, now.into()),
        ];
        ddl::insert_row(manager, DeviceStatusChange::Table, history).await?;
    }
    Ok(())
}

/// Down: each device's reference back from its recipient, or from the quarantine.
async fn restore_recipient_refs(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    let linked = Query::select()
        .expr_as(Expr::col((Device::Table, Device::Id)), Alias::new("device_id"))
        .expr_as(Expr::col((ServiceRecipient::Table, ServiceRecipient::Reference)), Alias::new("reference"))
        .from(Device::Table)
        .inner_join(
            ServiceRecipient::Table,
            Expr::col((ServiceRecipient::Table, ServiceRecipient::Id)).equals((Device::Table, InService::RecipientId)),
        )
        .to_owned();
    let quarantined = Query::select()
        .expr_as(Expr::col(QuarantinedValue::SourceId), Alias::new("device_id"))
        .expr_as(Expr::col(QuarantinedValue::Value), Alias::new("reference"))
        .from(QuarantinedValue::Table)
        .and_where(Expr::col(QuarantinedValue::SourceTable).eq("device"))
        .to_owned();
    for select in [linked, quarantined] {
        for row in db.query_all_raw(backend.build(&select)).await? {
            let device: i64 = row.try_get("", "device_id")?;
            let reference: String = row.try_get("", "reference")?;
            // The old column held 100 characters.
            let reference: String = reference.chars().take(100).collect();
            let update = Query::update()
                .table(Device::Table)
                .value(InService::RecipientRef, reference)
                .and_where(Expr::col(Device::Id).eq(device))
                .to_owned();
            db.execute_raw(backend.build(&update)).await?;
        }
    }
    Ok(())
}

fn chrono_now() -> sea_orm_migration::sea_orm::prelude::DateTimeWithTimeZone {
    sea_orm_migration::sea_orm::prelude::ChronoUtc::now().fixed_offset()
}
