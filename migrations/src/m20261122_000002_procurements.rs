//! Joint procurements from needs to call-offs: participants, the phase history, the needs and
//! dialogue phases, the competition (user stories as lots, sealed tenders, evaluation) and the
//! framework agreements with their call-offs.

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
    Title,
    Category,
    LeadId,
    Phase,
    ResumePhase,
    HoldReason,
    NoticeReference,
    NoticePublishedOn,
    TenderDeadline,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Participant {
    Table,
    Id,
    ProcurementId,
    OrganizationId,
    Role,
    JoinedOn,
}

#[derive(DeriveIden)]
enum PhaseTransition {
    Table,
    Id,
    ProcurementId,
    FromPhase,
    ToPhase,
    Reason,
    EffectiveOn,
    ActorSubject,
    ActorOrgNumber,
    RecordedAt,
}

#[derive(DeriveIden)]
enum JourneyStep {
    Table,
    Id,
    ProcurementId,
    Position,
    Title,
    Description,
}

#[derive(DeriveIden)]
enum Need {
    Table,
    Id,
    ProcurementId,
    JourneyStepId,
    Description,
}

#[derive(DeriveIden)]
enum DialogueActivity {
    Table,
    Id,
    ProcurementId,
    Kind,
    Title,
    HeldOn,
    QuestionsSentInAdvance,
}

#[derive(DeriveIden)]
enum ActivityAttendee {
    Table,
    Id,
    ActivityId,
    OrganizationId,
    People,
}

#[derive(DeriveIden)]
enum SolutionSketch {
    Table,
    Id,
    ProcurementId,
    SupplierId,
    Title,
    Summary,
    SubmittedOn,
}

#[derive(DeriveIden)]
enum UserStory {
    Table,
    Id,
    ProcurementId,
    Code,
    Title,
    Narrative,
    AcceptanceCriteria,
}

#[derive(DeriveIden)]
enum Tender {
    Table,
    Id,
    ProcurementId,
    SupplierId,
    SubmittedAt,
}

#[derive(DeriveIden)]
enum TenderResponse {
    Table,
    Id,
    TenderId,
    UserStoryId,
    Solution,
    PurchasePriceOre,
    LeasePriceOrePerMonth,
}

#[derive(DeriveIden)]
enum EvaluationCriterion {
    Table,
    Id,
    ProcurementId,
    Name,
    Weight,
}

#[derive(DeriveIden)]
enum Score {
    Table,
    Id,
    TenderResponseId,
    CriterionId,
    Hundredths,
}

#[derive(DeriveIden)]
enum Award {
    Table,
    Id,
    ProcurementId,
    UserStoryId,
    TenderResponseId,
    AwardedOn,
}

#[derive(DeriveIden)]
enum FrameworkAgreement {
    Table,
    Id,
    AwardId,
    ProcurementId,
    SupplierId,
    UserStoryId,
    StartsOn,
    EndsOn,
    PurchasePriceOre,
    LeasePriceOrePerMonth,
    VolumeCap,
}

#[derive(DeriveIden)]
enum CallOff {
    Table,
    Id,
    AgreementId,
    MunicipalityId,
    Acquisition,
    Scope,
    Quantity,
    Status,
    PlacedOn,
    CreatedAt,
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
                .table(Procurement::Table)
                .if_not_exists()
                .col(big_pk_auto(Procurement::Id))
                .col(string_len(Procurement::Title, 300))
                .col(string_len(Procurement::Category, 40))
                .col(big_integer(Procurement::LeadId))
                .col(string_len(Procurement::Phase, 20))
                .col(string_len_null(Procurement::ResumePhase, 20))
                .col(text_null(Procurement::HoldReason))
                .col(string_len_null(Procurement::NoticeReference, 100))
                .col(date_null(Procurement::NoticePublishedOn))
                .col(timestamp_with_time_zone_null(Procurement::TenderDeadline))
                .col(timestamp_with_time_zone(Procurement::CreatedAt))
                .foreign_key(&mut fk(Procurement::Table, Procurement::LeadId, Organization::Table, Organization::Id))
                .to_owned(),
            Table::create()
                .table(Participant::Table)
                .if_not_exists()
                .col(big_pk_auto(Participant::Id))
                .col(big_integer(Participant::ProcurementId))
                .col(big_integer(Participant::OrganizationId))
                .col(string_len(Participant::Role, 20))
                .col(date(Participant::JoinedOn))
                .foreign_key(&mut fk(
                    Participant::Table,
                    Participant::ProcurementId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .foreign_key(&mut fk(
                    Participant::Table,
                    Participant::OrganizationId,
                    Organization::Table,
                    Organization::Id,
                ))
                .to_owned(),
            Table::create()
                .table(PhaseTransition::Table)
                .if_not_exists()
                .col(big_pk_auto(PhaseTransition::Id))
                .col(big_integer(PhaseTransition::ProcurementId))
                .col(string_len_null(PhaseTransition::FromPhase, 20))
                .col(string_len(PhaseTransition::ToPhase, 20))
                .col(text_null(PhaseTransition::Reason))
                .col(date(PhaseTransition::EffectiveOn))
                .col(string_len(PhaseTransition::ActorSubject, 200))
                .col(string_len_null(PhaseTransition::ActorOrgNumber, 9))
                .col(timestamp_with_time_zone(PhaseTransition::RecordedAt))
                .foreign_key(&mut fk(
                    PhaseTransition::Table,
                    PhaseTransition::ProcurementId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .to_owned(),
            Table::create()
                .table(JourneyStep::Table)
                .if_not_exists()
                .col(big_pk_auto(JourneyStep::Id))
                .col(big_integer(JourneyStep::ProcurementId))
                .col(integer(JourneyStep::Position))
                .col(string_len(JourneyStep::Title, 300))
                .col(text_null(JourneyStep::Description))
                .foreign_key(&mut fk(
                    JourneyStep::Table,
                    JourneyStep::ProcurementId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .to_owned(),
            Table::create()
                .table(Need::Table)
                .if_not_exists()
                .col(big_pk_auto(Need::Id))
                .col(big_integer(Need::ProcurementId))
                .col(big_integer_null(Need::JourneyStepId))
                .col(text(Need::Description))
                .foreign_key(&mut fk(Need::Table, Need::ProcurementId, Procurement::Table, Procurement::Id))
                .foreign_key(&mut fk(Need::Table, Need::JourneyStepId, JourneyStep::Table, JourneyStep::Id))
                .to_owned(),
            Table::create()
                .table(DialogueActivity::Table)
                .if_not_exists()
                .col(big_pk_auto(DialogueActivity::Id))
                .col(big_integer(DialogueActivity::ProcurementId))
                .col(string_len(DialogueActivity::Kind, 30))
                .col(string_len(DialogueActivity::Title, 300))
                .col(date(DialogueActivity::HeldOn))
                .col(boolean_null(DialogueActivity::QuestionsSentInAdvance))
                .foreign_key(&mut fk(
                    DialogueActivity::Table,
                    DialogueActivity::ProcurementId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .to_owned(),
            Table::create()
                .table(ActivityAttendee::Table)
                .if_not_exists()
                .col(big_pk_auto(ActivityAttendee::Id))
                .col(big_integer(ActivityAttendee::ActivityId))
                .col(big_integer(ActivityAttendee::OrganizationId))
                .col(integer_null(ActivityAttendee::People))
                .foreign_key(&mut fk(
                    ActivityAttendee::Table,
                    ActivityAttendee::ActivityId,
                    DialogueActivity::Table,
                    DialogueActivity::Id,
                ))
                .foreign_key(&mut fk(
                    ActivityAttendee::Table,
                    ActivityAttendee::OrganizationId,
                    Organization::Table,
                    Organization::Id,
                ))
                .to_owned(),
            Table::create()
                .table(SolutionSketch::Table)
                .if_not_exists()
                .col(big_pk_auto(SolutionSketch::Id))
                .col(big_integer(SolutionSketch::ProcurementId))
                .col(big_integer(SolutionSketch::SupplierId))
                .col(string_len(SolutionSketch::Title, 300))
                .col(text(SolutionSketch::Summary))
                .col(date(SolutionSketch::SubmittedOn))
                .foreign_key(&mut fk(
                    SolutionSketch::Table,
                    SolutionSketch::ProcurementId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .foreign_key(&mut fk(
                    SolutionSketch::Table,
                    SolutionSketch::SupplierId,
                    Organization::Table,
                    Organization::Id,
                ))
                .to_owned(),
            Table::create()
                .table(UserStory::Table)
                .if_not_exists()
                .col(big_pk_auto(UserStory::Id))
                .col(big_integer(UserStory::ProcurementId))
                .col(string_len(UserStory::Code, 20))
                .col(string_len(UserStory::Title, 300))
                .col(text(UserStory::Narrative))
                .col(text(UserStory::AcceptanceCriteria))
                .foreign_key(&mut fk(UserStory::Table, UserStory::ProcurementId, Procurement::Table, Procurement::Id))
                .to_owned(),
            Table::create()
                .table(Tender::Table)
                .if_not_exists()
                .col(big_pk_auto(Tender::Id))
                .col(big_integer(Tender::ProcurementId))
                .col(big_integer(Tender::SupplierId))
                .col(timestamp_with_time_zone(Tender::SubmittedAt))
                .foreign_key(&mut fk(Tender::Table, Tender::ProcurementId, Procurement::Table, Procurement::Id))
                .foreign_key(&mut fk(Tender::Table, Tender::SupplierId, Organization::Table, Organization::Id))
                .to_owned(),
            Table::create()
                .table(TenderResponse::Table)
                .if_not_exists()
                .col(big_pk_auto(TenderResponse::Id))
                .col(big_integer(TenderResponse::TenderId))
                .col(big_integer(TenderResponse::UserStoryId))
                .col(text(TenderResponse::Solution))
                .col(big_integer_null(TenderResponse::PurchasePriceOre))
                .col(big_integer_null(TenderResponse::LeasePriceOrePerMonth))
                .foreign_key(&mut fk(TenderResponse::Table, TenderResponse::TenderId, Tender::Table, Tender::Id))
                .foreign_key(&mut fk(
                    TenderResponse::Table,
                    TenderResponse::UserStoryId,
                    UserStory::Table,
                    UserStory::Id,
                ))
                .to_owned(),
            Table::create()
                .table(EvaluationCriterion::Table)
                .if_not_exists()
                .col(big_pk_auto(EvaluationCriterion::Id))
                .col(big_integer(EvaluationCriterion::ProcurementId))
                .col(string_len(EvaluationCriterion::Name, 200))
                .col(integer(EvaluationCriterion::Weight))
                .foreign_key(&mut fk(
                    EvaluationCriterion::Table,
                    EvaluationCriterion::ProcurementId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .to_owned(),
            Table::create()
                .table(Score::Table)
                .if_not_exists()
                .col(big_pk_auto(Score::Id))
                .col(big_integer(Score::TenderResponseId))
                .col(big_integer(Score::CriterionId))
                .col(integer(Score::Hundredths))
                .foreign_key(&mut fk(Score::Table, Score::TenderResponseId, TenderResponse::Table, TenderResponse::Id))
                .foreign_key(&mut fk(
                    Score::Table,
                    Score::CriterionId,
                    EvaluationCriterion::Table,
                    EvaluationCriterion::Id,
                ))
                .to_owned(),
            Table::create()
                .table(Award::Table)
                .if_not_exists()
                .col(big_pk_auto(Award::Id))
                .col(big_integer(Award::ProcurementId))
                .col(big_integer(Award::UserStoryId))
                .col(big_integer(Award::TenderResponseId))
                .col(date(Award::AwardedOn))
                .foreign_key(&mut fk(Award::Table, Award::ProcurementId, Procurement::Table, Procurement::Id))
                .foreign_key(&mut fk(Award::Table, Award::UserStoryId, UserStory::Table, UserStory::Id))
                .foreign_key(&mut fk(Award::Table, Award::TenderResponseId, TenderResponse::Table, TenderResponse::Id))
                .to_owned(),
            Table::create()
                .table(FrameworkAgreement::Table)
                .if_not_exists()
                .col(big_pk_auto(FrameworkAgreement::Id))
                .col(big_integer(FrameworkAgreement::AwardId))
                .col(big_integer(FrameworkAgreement::ProcurementId))
                .col(big_integer(FrameworkAgreement::SupplierId))
                .col(big_integer(FrameworkAgreement::UserStoryId))
                .col(date(FrameworkAgreement::StartsOn))
                .col(date(FrameworkAgreement::EndsOn))
                .col(big_integer_null(FrameworkAgreement::PurchasePriceOre))
                .col(big_integer_null(FrameworkAgreement::LeasePriceOrePerMonth))
                .col(integer(FrameworkAgreement::VolumeCap))
                .foreign_key(&mut fk(FrameworkAgreement::Table, FrameworkAgreement::AwardId, Award::Table, Award::Id))
                .foreign_key(&mut fk(
                    FrameworkAgreement::Table,
                    FrameworkAgreement::ProcurementId,
                    Procurement::Table,
                    Procurement::Id,
                ))
                .foreign_key(&mut fk(
                    FrameworkAgreement::Table,
                    FrameworkAgreement::SupplierId,
                    Organization::Table,
                    Organization::Id,
                ))
                .to_owned(),
            Table::create()
                .table(CallOff::Table)
                .if_not_exists()
                .col(big_pk_auto(CallOff::Id))
                .col(big_integer(CallOff::AgreementId))
                .col(big_integer(CallOff::MunicipalityId))
                .col(string_len(CallOff::Acquisition, 10))
                .col(string_len(CallOff::Scope, 20))
                .col(integer(CallOff::Quantity))
                .col(string_len(CallOff::Status, 20))
                .col(date(CallOff::PlacedOn))
                .col(timestamp_with_time_zone(CallOff::CreatedAt))
                .foreign_key(&mut fk(
                    CallOff::Table,
                    CallOff::AgreementId,
                    FrameworkAgreement::Table,
                    FrameworkAgreement::Id,
                ))
                .foreign_key(&mut fk(CallOff::Table, CallOff::MunicipalityId, Organization::Table, Organization::Id))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }

        // Uniqueness the rules rely on, enforced by the database so races cannot break them.
        let unique = [
            (
                "uq_participant",
                Participant::Table.into_iden(),
                vec![Participant::ProcurementId.into_iden(), Participant::OrganizationId.into_iden()],
            ),
            (
                "uq_user_story_code",
                UserStory::Table.into_iden(),
                vec![UserStory::ProcurementId.into_iden(), UserStory::Code.into_iden()],
            ),
            (
                "uq_tender_supplier",
                Tender::Table.into_iden(),
                vec![Tender::ProcurementId.into_iden(), Tender::SupplierId.into_iden()],
            ),
            (
                "uq_tender_response",
                TenderResponse::Table.into_iden(),
                vec![TenderResponse::TenderId.into_iden(), TenderResponse::UserStoryId.into_iden()],
            ),
            (
                "uq_score",
                Score::Table.into_iden(),
                vec![Score::TenderResponseId.into_iden(), Score::CriterionId.into_iden()],
            ),
            ("uq_award_user_story", Award::Table.into_iden(), vec![Award::UserStoryId.into_iden()]),
            (
                "uq_agreement_award",
                FrameworkAgreement::Table.into_iden(),
                vec![FrameworkAgreement::AwardId.into_iden()],
            ),
        ];
        for (name, table, columns) in unique {
            let mut index = Index::create().name(name).table(table).unique().if_not_exists().to_owned();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        let lookups = [
            ("idx_procurement_lead", Procurement::Table.into_iden(), Procurement::LeadId.into_iden()),
            ("idx_participant_org", Participant::Table.into_iden(), Participant::OrganizationId.into_iden()),
            (
                "idx_transition_procurement",
                PhaseTransition::Table.into_iden(),
                PhaseTransition::ProcurementId.into_iden(),
            ),
            ("idx_step_procurement", JourneyStep::Table.into_iden(), JourneyStep::ProcurementId.into_iden()),
            ("idx_need_procurement", Need::Table.into_iden(), Need::ProcurementId.into_iden()),
            (
                "idx_activity_procurement",
                DialogueActivity::Table.into_iden(),
                DialogueActivity::ProcurementId.into_iden(),
            ),
            ("idx_attendee_activity", ActivityAttendee::Table.into_iden(), ActivityAttendee::ActivityId.into_iden()),
            ("idx_sketch_procurement", SolutionSketch::Table.into_iden(), SolutionSketch::ProcurementId.into_iden()),
            (
                "idx_criterion_procurement",
                EvaluationCriterion::Table.into_iden(),
                EvaluationCriterion::ProcurementId.into_iden(),
            ),
            ("idx_award_procurement", Award::Table.into_iden(), Award::ProcurementId.into_iden()),
            (
                "idx_agreement_procurement",
                FrameworkAgreement::Table.into_iden(),
                FrameworkAgreement::ProcurementId.into_iden(),
            ),
            ("idx_call_off_agreement", CallOff::Table.into_iden(), CallOff::AgreementId.into_iden()),
            ("idx_call_off_municipality", CallOff::Table.into_iden(), CallOff::MunicipalityId.into_iden()),
        ];
        for (name, table, column) in lookups {
            manager
                .create_index(Index::create().name(name).table(table).col(column).if_not_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            CallOff::Table.into_iden(),
            FrameworkAgreement::Table.into_iden(),
            Award::Table.into_iden(),
            Score::Table.into_iden(),
            EvaluationCriterion::Table.into_iden(),
            TenderResponse::Table.into_iden(),
            Tender::Table.into_iden(),
            UserStory::Table.into_iden(),
            SolutionSketch::Table.into_iden(),
            ActivityAttendee::Table.into_iden(),
            DialogueActivity::Table.into_iden(),
            Need::Table.into_iden(),
            JourneyStep::Table.into_iden(),
            PhaseTransition::Table.into_iden(),
            Participant::Table.into_iden(),
            Procurement::Table.into_iden(),
        ];
        for table in tables {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
