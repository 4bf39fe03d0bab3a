//! Learning across municipalities: learning networks with members and gatherings (attendance per
//! organisation), experience reports with lessons and full-text search, and follower reuse of
//! another procurement's needs mapping with provenance.
//!
//! Full-text search differs per back end: on SQLite an FTS5 table kept in sync with
//! `experience_report.search_text` by triggers; on PostgreSQL a GIN index over
//! `to_tsvector('simple', search_text)`. Both are created only on their own back end.

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organization {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Procurement {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum LearningNetwork {
    Table,
    Id,
    Name,
    Description,
    CoordinatorId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum NetworkMember {
    Table,
    Id,
    NetworkId,
    OrganizationId,
    JoinedOn,
}

#[derive(DeriveIden)]
enum Gathering {
    Table,
    Id,
    NetworkId,
    Number,
    HeldOn,
    HostId,
    Venue,
    Topic,
}

#[derive(DeriveIden)]
enum GatheringAttendance {
    Table,
    Id,
    GatheringId,
    OrganizationId,
    People,
}

#[derive(DeriveIden)]
enum ExperienceReport {
    Table,
    Id,
    AuthorId,
    ProcurementId,
    NetworkId,
    Phase,
    Title,
    Summary,
    Public,
    PublishedOn,
    SearchText,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Lesson {
    Table,
    Id,
    ReportId,
    Phase,
    Text,
}

#[derive(DeriveIden)]
enum ProcurementReuse {
    Table,
    Id,
    SourceId,
    CopyId,
    OrganizationId,
    ReusedOn,
}

#[derive(DeriveIden)]
enum ReusedItem {
    Table,
    Id,
    ReuseId,
    Kind,
    SourceItemId,
    CopyItemId,
    Text,
    Provenance,
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
                .table(LearningNetwork::Table)
                .if_not_exists()
                .col(big_pk_auto(LearningNetwork::Id))
                .col(string_len(LearningNetwork::Name, 300))
                .col(text_null(LearningNetwork::Description))
                .col(big_integer(LearningNetwork::CoordinatorId))
                .col(timestamp_with_time_zone(LearningNetwork::CreatedAt))
                .foreign_key(&mut fk(
                    LearningNetwork::Table,
                    LearningNetwork::CoordinatorId,
                    Organization::Table,
                    Organization::Id,
                ))
                .to_owned(),
            Table::create()
                .table(NetworkMember::Table)
                .if_not_exists()
                .col(big_pk_auto(NetworkMember::Id))
                .col(big_integer(NetworkMember::NetworkId))
                .col(big_integer(NetworkMember::OrganizationId))
                .col(date_null(NetworkMember::JoinedOn))
                .foreign_key(&mut fk(
                    NetworkMember::Table,
                    NetworkMember::NetworkId,
                    LearningNetwork::Table,
                    LearningNetwork::Id,
                ))
                .foreign_key(&mut fk(
                    NetworkMember::Table,
                    NetworkMember::OrganizationId,
                    Organization::Table,
                    Organization::Id,
                ))
                .to_owned(),
            Table::create()
                .table(Gathering::Table)
                .if_not_exists()
                .col(big_pk_auto(Gathering::Id))
                .col(big_integer(Gathering::NetworkId))
                .col(integer(Gathering::Number))
                .col(date(Gathering::HeldOn))
                .col(big_integer(Gathering::HostId))
                .col(string_len_null(Gathering::Venue, 300))
                .col(string_len(Gathering::Topic, 300))
                .foreign_key(&mut fk(
                    Gathering::Table,
                    Gathering::NetworkId,
                    LearningNetwork::Table,
                    LearningNetwork::Id,
                ))
                .foreign_key(&mut fk(Gathering::Table, Gathering::HostId, Organization::Table, Organization::Id))
                .to_owned(),
            Table::create()
                .table(GatheringAttendance::Table)
                .if_not_exists()
                .col(big_pk_auto(GatheringAttendance::Id))
                .col(big_integer(GatheringAttendance::GatheringId))
                .col(big_integer(GatheringAttendance::OrganizationId))
                .col(integer(GatheringAttendance::People))
                .foreign_key(&mut fk(
                    GatheringAttendance::Table,
                    GatheringAttendance::GatheringId,
                    Gathering::Table,
                    Gathering::Id,
                ))
                .foreign_key(&mut fk(
                    GatheringAttendance::Table,
                    GatheringAttendance::OrganizationId,
                    Organization::Table,
                    Organization::Id,
                ))
                .to_owned(),
            Table::create()
                .table(ExperienceReport::Table)
                .if_not_exists()
                .col(big_pk_auto(ExperienceReport::Id))
                .col(big_integer(ExperienceReport::AuthorId))
                .col(big_integer(ExperienceReport::ProcurementId))
                .col(big_integer_null(ExperienceReport::NetworkId))
                .col(string_len_null(ExperienceReport::Phase, 20))
                .col(string_len(ExperienceReport::Title, 300))
                .col(text(ExperienceReport::Summary))
                .col(boolean(ExperienceReport::Public))
                .col(date(ExperienceReport::PublishedOn))
                .col(text(ExperienceReport::SearchText))
                .col(timestamp_with_time_zone(ExperienceReport::CreatedAt))
                .foreign_key(&mut fk(
                    ExperienceReport::Table,
                    ExperienceReport::AuthorId,
                    Organization::Table,
                    Organization::Id,
                ))
                .foreign_key(&mut fk(
                    ExperienceReport::Table,
                    ExperienceReport::ProcurementId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .foreign_key(&mut fk(
                    ExperienceReport::Table,
                    ExperienceReport::NetworkId,
                    LearningNetwork::Table,
                    LearningNetwork::Id,
                ))
                .to_owned(),
            Table::create()
                .table(Lesson::Table)
                .if_not_exists()
                .col(big_pk_auto(Lesson::Id))
                .col(big_integer(Lesson::ReportId))
                .col(string_len(Lesson::Phase, 20))
                .col(text(Lesson::Text))
                .foreign_key(&mut fk(Lesson::Table, Lesson::ReportId, ExperienceReport::Table, ExperienceReport::Id))
                .to_owned(),
            Table::create()
                .table(ProcurementReuse::Table)
                .if_not_exists()
                .col(big_pk_auto(ProcurementReuse::Id))
                .col(big_integer(ProcurementReuse::SourceId))
                .col(big_integer(ProcurementReuse::CopyId))
                .col(big_integer(ProcurementReuse::OrganizationId))
                .col(date(ProcurementReuse::ReusedOn))
                .foreign_key(&mut fk(
                    ProcurementReuse::Table,
                    ProcurementReuse::SourceId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .foreign_key(&mut fk(
                    ProcurementReuse::Table,
                    ProcurementReuse::CopyId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .foreign_key(&mut fk(
                    ProcurementReuse::Table,
                    ProcurementReuse::OrganizationId,
                    Organization::Table,
                    Organization::Id,
                ))
                .to_owned(),
            Table::create()
                .table(ReusedItem::Table)
                .if_not_exists()
                .col(big_pk_auto(ReusedItem::Id))
                .col(big_integer(ReusedItem::ReuseId))
                .col(string_len(ReusedItem::Kind, 20))
                .col(big_integer(ReusedItem::SourceItemId))
                .col(big_integer(ReusedItem::CopyItemId))
                .col(text(ReusedItem::Text))
                .col(text(ReusedItem::Provenance))
                .foreign_key(&mut fk(
                    ReusedItem::Table,
                    ReusedItem::ReuseId,
                    ProcurementReuse::Table,
                    ProcurementReuse::Id,
                ))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }

        let unique = [
            (
                "uq_network_member",
                NetworkMember::Table.into_iden(),
                vec![NetworkMember::NetworkId.into_iden(), NetworkMember::OrganizationId.into_iden()],
            ),
            (
                "uq_gathering_number",
                Gathering::Table.into_iden(),
                vec![Gathering::NetworkId.into_iden(), Gathering::Number.into_iden()],
            ),
            (
                "uq_gathering_attendance",
                GatheringAttendance::Table.into_iden(),
                vec![GatheringAttendance::GatheringId.into_iden(), GatheringAttendance::OrganizationId.into_iden()],
            ),
            ("uq_reuse_copy", ProcurementReuse::Table.into_iden(), vec![ProcurementReuse::CopyId.into_iden()]),
        ];
        for (name, table, columns) in unique {
            let mut index = Index::create().name(name).table(table).unique().if_not_exists().to_owned();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        let lookups = [
            ("idx_member_org", NetworkMember::Table.into_iden(), NetworkMember::OrganizationId.into_iden()),
            (
                "idx_report_procurement",
                ExperienceReport::Table.into_iden(),
                ExperienceReport::ProcurementId.into_iden(),
            ),
            ("idx_lesson_report", Lesson::Table.into_iden(), Lesson::ReportId.into_iden()),
            ("idx_reuse_source", ProcurementReuse::Table.into_iden(), ProcurementReuse::SourceId.into_iden()),
            ("idx_reused_item_reuse", ReusedItem::Table.into_iden(), ReusedItem::ReuseId.into_iden()),
        ];
        for (name, table, column) in lookups {
            manager
                .create_index(Index::create().name(name).table(table).col(column).if_not_exists().to_owned())
                .await?;
        }

        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                for statement in [
                    "CREATE VIRTUAL TABLE IF NOT EXISTS experience_report_fts USING fts5(search_text, content='experience_report', content_rowid='id')",
                    "CREATE TRIGGER IF NOT EXISTS experience_report_fts_insert AFTER INSERT ON experience_report BEGIN \
                       INSERT INTO experience_report_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
                    "CREATE TRIGGER IF NOT EXISTS experience_report_fts_delete AFTER DELETE ON experience_report BEGIN \
                       INSERT INTO experience_report_fts(experience_report_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
                    "CREATE TRIGGER IF NOT EXISTS experience_report_fts_update AFTER UPDATE OF search_text ON experience_report BEGIN \
                       INSERT INTO experience_report_fts(experience_report_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); \
                       INSERT INTO experience_report_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
                ] {
                    db.execute_unprepared(statement).await?;
                }
            }
            DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS idx_experience_report_search ON experience_report \
                     USING GIN (to_tsvector('simple', search_text))",
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            let db = manager.get_connection();
            for statement in [
                "DROP TRIGGER IF EXISTS experience_report_fts_insert",
                "DROP TRIGGER IF EXISTS experience_report_fts_delete",
                "DROP TRIGGER IF EXISTS experience_report_fts_update",
                "DROP TABLE IF EXISTS experience_report_fts",
            ] {
                db.execute_unprepared(statement).await?;
            }
        }
        let tables = [
            ReusedItem::Table.into_iden(),
            ProcurementReuse::Table.into_iden(),
            Lesson::Table.into_iden(),
            ExperienceReport::Table.into_iden(),
            GatheringAttendance::Table.into_iden(),
            Gathering::Table.into_iden(),
            NetworkMember::Table.into_iden(),
            LearningNetwork::Table.into_iden(),
        ];
        for table in tables {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
