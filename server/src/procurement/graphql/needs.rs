//! The needs and dialogue phases: participants, phase history, the service journey, needs,
//! dialogue activities and solution sketches.

use super::*;

/// A municipality's part in a procurement.
#[derive(Clone)]
pub struct Participant {
    pub(super) row: participant::Model,
    /// Its organisation, when the row was loaded with it (`ParticipantsOf`).
    organization: Option<organization::Model>,
}

impl From<participant::Model> for Participant {
    fn from(row: participant::Model) -> Participant {
        Participant { row, organization: None }
    }
}

impl From<Member> for Participant {
    fn from(member: Member) -> Participant {
        Participant { row: member.row, organization: Some(member.organization) }
    }
}

#[Object]
impl Participant {
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        match &self.organization {
            Some(organization) => Ok(Organization(organization.clone())),
            None => Organization::by_id(ctx, self.row.organization_id).await,
        }
    }

    async fn role(&self) -> ParticipantRole {
        self.row.role
    }

    async fn joined_on(&self) -> NaiveDate {
        self.row.joined_on
    }
}

/// One recorded phase change.
#[derive(Clone)]
pub struct PhaseChange(pub phase_transition::Model);

#[row_fields]
#[Object]
impl PhaseChange {
    /// Null for the procurement's start.
    async fn from(&self) -> Option<Phase> {
        self.0.from_phase
    }

    async fn to(&self) -> Phase {
        self.0.to_phase
    }

    async fn reason(&self) -> Option<&str>;

    /// When the change took effect in the real process.
    async fn effective_on(&self) -> NaiveDate;

    /// The token subject that made the change.
    async fn changed_by(&self) -> &str {
        &self.0.actor_subject
    }

    /// Organisation number the change was made for.
    async fn changed_by_org_number(&self) -> Option<&str> {
        self.0.actor_org_number.as_deref()
    }

    async fn recorded_at(&self) -> DateTime<Utc>;
}

#[derive(Clone)]
pub struct JourneyStep(pub journey_step::Model);

#[row_fields]
#[Object]
impl JourneyStep {
    async fn position(&self) -> i32;

    async fn title(&self) -> &str;

    async fn description(&self) -> Option<&str>;
}

#[derive(Clone)]
pub struct Need(pub need::Model);

#[row_fields]
#[Object]
impl Need {
    async fn description(&self) -> &str;

    /// The step of the service journey this need belongs to, if any.
    async fn journey_step(&self, ctx: &Context<'_>) -> Result<Option<JourneyStep>> {
        let Some(id) = self.0.journey_step_id else { return Ok(None) };
        Ok(Some(JourneyStep(load_existing(ctx, JourneyStepById(id), "journey step").await?)))
    }

    /// The journey step's database row id, if any: not a global id, and no use to a client.
    #[graphql(deprecation = "use journeyStep")]
    async fn journey_step_id(&self) -> Option<i64>;
}

#[derive(Clone)]
pub struct DialogueActivity(pub dialogue_activity::Model);

/// An organisation at a dialogue activity, with how many people it sent when known.
#[derive(Clone)]
pub struct Attendee(pub activity_attendee::Model);

#[row_fields]
#[Object]
impl Attendee {
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.organization_id).await
    }

    async fn people(&self) -> Option<i32>;
}

#[row_fields]
#[connections]
#[Object]
impl DialogueActivity {
    async fn kind(&self) -> ActivityKind;

    async fn title(&self) -> &str;

    async fn held_on(&self) -> NaiveDate;

    /// For one-to-one meetings: whether questions were sent to suppliers in advance.
    async fn questions_sent_in_advance(&self) -> Option<bool>;

    async fn attendees(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<Attendee>> {
        load_page(ctx, AttendeesOf(self.0.id), page, |_| true, Attendee, |s| s.0.id).await
    }
}

#[derive(Clone)]
pub struct SolutionSketch(pub solution_sketch::Model);

#[row_fields]
#[Object]
impl SolutionSketch {
    async fn supplier(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.supplier_id).await
    }

    async fn title(&self) -> &str;

    async fn summary(&self) -> &str;

    async fn submitted_on(&self) -> NaiveDate;
}
