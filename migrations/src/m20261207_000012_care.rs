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
        move_recipient_refs(manager).await?;
        manager.alter_table(Table::alter().table(Device::Table).drop_column(InService::RecipientRef).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Device::Table)
                    .add_column(ColumnDef::new(InService::RecipientRef).string_len(100).null())
                    .to_owned(),
            )
            .await?;
        restore_recipient_refs(manager).await?;
        for column in [InService::LastSeenAt, InService::RecipientId, InService::Status] {
            manager.alter_table(Table::alter().table(Device::Table).drop_column(column).to_owned()).await?;
        }
        ddl::drop_tables(manager, tables()).await
    }
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
            let insert = Query::insert()
                .into_table(QuarantinedValue::Table)
                .columns([
                    QuarantinedValue::MunicipalityId,
                    QuarantinedValue::SourceTable,
                    QuarantinedValue::SourceColumn,
                    QuarantinedValue::SourceId,
                    QuarantinedValue::Value,
                    QuarantinedValue::FoundAt,
                ])
                .values_panic([
                    municipality.into(),
                    "device".into(),
                    "recipient_ref".into(),
                    device.into(),
                    value.clone().into(),
                    now.into(),
                ])
                .to_owned();
            db.execute_raw(backend.build(&insert)).await?;
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
                let insert = Query::insert()
                    .into_table(ServiceRecipient::Table)
                    .columns([
                        ServiceRecipient::MunicipalityId,
                        ServiceRecipient::Reference,
                        ServiceRecipient::Status,
                        ServiceRecipient::StartedOn,
                        ServiceRecipient::CreatedBy,
                        ServiceRecipient::CreatedAt,
                        ServiceRecipient::UpdatedAt,
                    ])
                    .values_panic([
                        municipality.into(),
                        reference.clone().into(),
                        "active".into(),
                        registered.date_naive().into(),
                        MIGRATION_SUBJECT.into(),
                        now.into(),
                        now.into(),
                    ])
                    .to_owned();
                db.execute_raw(backend.build(&insert)).await?;
                let row = db
                    .query_one_raw(backend.build(&existing))
                    .await?
                    .ok_or_else(|| DbErr::Migration("the recipient just inserted is missing".into()))?;
                let id: i64 = row.try_get("", "id")?;
                let history = Query::insert()
                    .into_table(RecipientStatusChange::Table)
                    .columns([
                        RecipientStatusChange::RecipientId,
                        RecipientStatusChange::Status,
                        RecipientStatusChange::EffectiveOn,
                        RecipientStatusChange::Subject,
                        RecipientStatusChange::OrganizationId,
                        RecipientStatusChange::Role,
                        RecipientStatusChange::At,
                    ])
                    .values_panic([
                        id.into(),
                        "active".into(),
                        registered.date_naive().into(),
                        MIGRATION_SUBJECT.into(),
                        municipality.into(),
                        "migration".into(),
                        now.into(),
                    ])
                    .to_owned();
                db.execute_raw(backend.build(&history)).await?;
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
        let history = Query::insert()
            .into_table(DeviceStatusChange::Table)
            .columns([
                DeviceStatusChange::DeviceId,
                DeviceStatusChange::FromStatus,
                DeviceStatusChange::ToStatus,
                DeviceStatusChange::RecipientId,
                DeviceStatusChange::Subject,
                DeviceStatusChange::OrganizationId,
                DeviceStatusChange::Role,
                DeviceStatusChange::At,
            ])
            .values_panic([
                device.into(),
                "in_stock".into(),
                "assigned".into(),
                recipient.into(),
                MIGRATION_SUBJECT.into(),
                municipality.into(),
                "migration".into(),
                now.into(),
            ])
            .to_owned();
        db.execute_raw(backend.build(&history)).await?;
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
