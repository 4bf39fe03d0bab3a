//! Joint procurements from needs to call-offs: participants, the phase history, the needs and
//! dialogue phases, the competition (user stories as lots, sealed tenders, evaluation) and the
//! framework agreements with their call-offs.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references, references_null};
use crate::m20261122_000001_organizations::Organization;

ddl::migration! {
    #[index(idx_procurement_lead: LeadId)]
    Procurement {
        Title: string_len(300),
        Category: string_len(40),
        LeadId: references(Organization::Table),
        Phase: string_len(20),
        ResumePhase: string_len_null(20),
        HoldReason: text_null,
        NoticeReference: string_len_null(100),
        NoticePublishedOn: date_null,
        TenderDeadline: timestamp_with_time_zone_null,
        CreatedAt: timestamp_with_time_zone,
    }
    #[unique(uq_participant: ProcurementId, OrganizationId)]
    #[index(idx_participant_org: OrganizationId)]
    Participant {
        ProcurementId: references(Procurement::Table),
        OrganizationId: references(Organization::Table),
        Role: string_len(20),
        JoinedOn: date,
    }
    #[index(idx_transition_procurement: ProcurementId)]
    PhaseTransition {
        ProcurementId: references(Procurement::Table),
        FromPhase: string_len_null(20),
        ToPhase: string_len(20),
        Reason: text_null,
        EffectiveOn: date,
        ActorSubject: string_len(200),
        ActorOrgNumber: string_len_null(9),
        RecordedAt: timestamp_with_time_zone,
    }
    #[index(idx_step_procurement: ProcurementId)]
    JourneyStep {
        ProcurementId: references(Procurement::Table),
        Position: integer,
        Title: string_len(300),
        Description: text_null,
    }
    #[index(idx_need_procurement: ProcurementId)]
    Need {
        ProcurementId: references(Procurement::Table),
        JourneyStepId: references_null(JourneyStep::Table),
        Description: text,
    }
    #[index(idx_activity_procurement: ProcurementId)]
    DialogueActivity {
        ProcurementId: references(Procurement::Table),
        Kind: string_len(30),
        Title: string_len(300),
        HeldOn: date,
        QuestionsSentInAdvance: boolean_null,
    }
    #[index(idx_attendee_activity: ActivityId)]
    ActivityAttendee {
        ActivityId: references(DialogueActivity::Table),
        OrganizationId: references(Organization::Table),
        People: integer_null,
    }
    #[index(idx_sketch_procurement: ProcurementId)]
    SolutionSketch {
        ProcurementId: references(Procurement::Table),
        SupplierId: references(Organization::Table),
        Title: string_len(300),
        Summary: text,
        SubmittedOn: date,
    }
    #[unique(uq_user_story_code: ProcurementId, Code)]
    UserStory {
        ProcurementId: references(Procurement::Table),
        Code: string_len(20),
        Title: string_len(300),
        Narrative: text,
        AcceptanceCriteria: text,
    }
    #[unique(uq_tender_supplier: ProcurementId, SupplierId)]
    Tender {
        ProcurementId: references(Procurement::Table),
        SupplierId: references(Organization::Table),
        SubmittedAt: timestamp_with_time_zone,
    }
    #[unique(uq_tender_response: TenderId, UserStoryId)]
    TenderResponse {
        TenderId: references(Tender::Table),
        UserStoryId: references(UserStory::Table),
        Solution: text,
        PurchasePriceOre: big_integer_null,
        LeasePriceOrePerMonth: big_integer_null,
    }
    #[index(idx_criterion_procurement: ProcurementId)]
    EvaluationCriterion {
        ProcurementId: references(Procurement::Table),
        Name: string_len(200),
        Weight: integer,
    }
    #[unique(uq_score: TenderResponseId, CriterionId)]
    Score {
        TenderResponseId: references(TenderResponse::Table),
        CriterionId: references(EvaluationCriterion::Table),
        Hundredths: integer,
    }
    #[unique(uq_award_user_story: UserStoryId)]
    #[index(idx_award_procurement: ProcurementId)]
    Award {
        ProcurementId: references(Procurement::Table),
        UserStoryId: references(UserStory::Table),
        TenderResponseId: references(TenderResponse::Table),
        AwardedOn: date,
    }
    #[unique(uq_agreement_award: AwardId)]
    #[index(idx_agreement_procurement: ProcurementId)]
    FrameworkAgreement {
        AwardId: references(Award::Table),
        ProcurementId: references(Procurement::Table),
        SupplierId: references(Organization::Table),
        UserStoryId: big_integer,
        StartsOn: date,
        EndsOn: date,
        PurchasePriceOre: big_integer_null,
        LeasePriceOrePerMonth: big_integer_null,
        VolumeCap: integer,
    }
    #[index(idx_call_off_agreement: AgreementId)]
    #[index(idx_call_off_municipality: MunicipalityId)]
    CallOff {
        AgreementId: references(FrameworkAgreement::Table),
        MunicipalityId: references(Organization::Table),
        Acquisition: string_len(10),
        Scope: string_len(20),
        Quantity: integer,
        Status: string_len(20),
        PlacedOn: date,
        CreatedAt: timestamp_with_time_zone,
    }
}
