//! Learning across municipalities: learning networks with members and gatherings (attendance per
//! organisation), experience reports with lessons and full-text search, and follower reuse of
//! another procurement's needs mapping with provenance.
//!
//! Full-text search differs per back end: on SQLite an FTS5 table kept in sync with
//! `experience_report.search_text` by triggers; on PostgreSQL a GIN index over
//! `to_tsvector('simple', search_text)`. Both are created only on their own back end.

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references, references_null};
use crate::m20261122_000001_organizations::Organization;
use crate::m20261122_000002_procurements::Procurement;

#[derive(DeriveMigrationName)]
pub struct Migration;

ddl::schema! {
    LearningNetwork {
        Name: string_len(300),
        Description: text_null,
        CoordinatorId: references(Organization::Table),
        CreatedAt: timestamp_with_time_zone,
    }
    #[unique(uq_network_member: NetworkId, OrganizationId)]
    #[index(idx_member_org: OrganizationId)]
    NetworkMember {
        NetworkId: references(LearningNetwork::Table),
        OrganizationId: references(Organization::Table),
        JoinedOn: date_null,
    }
    #[unique(uq_gathering_number: NetworkId, Number)]
    Gathering {
        NetworkId: references(LearningNetwork::Table),
        Number: integer,
        HeldOn: date,
        HostId: references(Organization::Table),
        Venue: string_len_null(300),
        Topic: string_len(300),
    }
    #[unique(uq_gathering_attendance: GatheringId, OrganizationId)]
    GatheringAttendance {
        GatheringId: references(Gathering::Table),
        OrganizationId: references(Organization::Table),
        People: integer,
    }
    #[index(idx_report_procurement: ProcurementId)]
    ExperienceReport {
        AuthorId: references(Organization::Table),
        ProcurementId: references(Procurement::Table),
        NetworkId: references_null(LearningNetwork::Table),
        Phase: string_len_null(20),
        Title: string_len(300),
        Summary: text,
        Public: boolean,
        PublishedOn: date,
        SearchText: text,
        CreatedAt: timestamp_with_time_zone,
    }
    #[index(idx_lesson_report: ReportId)]
    Lesson {
        ReportId: references(ExperienceReport::Table),
        Phase: string_len(20),
        Text: text,
    }
    #[unique(uq_reuse_copy: CopyId)]
    #[index(idx_reuse_source: SourceId)]
    ProcurementReuse {
        SourceId: references(Procurement::Table),
        CopyId: references(Procurement::Table),
        OrganizationId: references(Organization::Table),
        ReusedOn: date,
    }
    #[index(idx_reused_item_reuse: ReuseId)]
    ReusedItem {
        ReuseId: references(ProcurementReuse::Table),
        Kind: string_len(20),
        SourceItemId: big_integer,
        CopyItemId: big_integer,
        Text: text,
        Provenance: text,
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::create(manager, tables(), indexes()).await?;
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
        ddl::drop_tables(manager, tables()).await
    }
}
