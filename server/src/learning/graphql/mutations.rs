//! The mutations of learning networks, gatherings, experience reports and reuse.

use super::*;
use crate::errors::bounded;
use crate::learning::rules::NewNetwork;
use crate::text::{LongText, Paragraph, Title};

payload!(LearningNetworkCreatePayload, learning_network: LearningNetwork, "Result of `learningNetworkCreate`.");
payload!(LearningNetworkMemberAddPayload, member: NetworkMember, "Result of `learningNetworkMemberAdd`.");
payload!(GatheringAddPayload, gathering: Gathering, "Result of `gatheringAdd`.");
payload!(GatheringAttendanceSetPayload, gathering: Gathering, "Result of `gatheringAttendanceSet`.");
payload!(ExperienceReportPublishPayload, experience_report: ExperienceReport, "Result of `experienceReportPublish`.");
payload!(ProcurementReusePayload, procurement_reuse: ProcurementReuse, "Result of `procurementReuse`.");

#[derive(InputObject)]
pub struct LearningNetworkCreateInput {
    pub name: String,
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct LearningNetworkMemberAddInput {
    pub network_id: ID,
    /// A municipality's global id.
    pub organization_id: ID,
    pub joined_on: Option<NaiveDate>,
}

#[derive(InputObject)]
pub struct GatheringAttendanceInput {
    pub organization_id: ID,
    /// At least 1; leave out organisations that sent no one.
    pub people: i32,
}

#[derive(InputObject)]
pub struct GatheringAddInput {
    pub network_id: ID,
    pub number: i32,
    pub held_on: NaiveDate,
    /// A member municipality's global id.
    pub host_id: ID,
    pub venue: Option<String>,
    pub topic: String,
    #[graphql(default)]
    pub attendance: Vec<GatheringAttendanceInput>,
}

#[derive(InputObject)]
pub struct GatheringAttendanceSetInput {
    pub gathering_id: ID,
    pub organization_id: ID,
    /// 0 removes the organisation from the gathering.
    pub people: i32,
}

#[derive(InputObject)]
pub struct LessonInput {
    /// The phase the lesson concerns.
    pub phase: Phase,
    pub text: String,
}

#[derive(InputObject)]
pub struct ExperienceReportPublishInput {
    pub procurement_id: ID,
    /// Share with a learning network's members as well.
    pub network_id: Option<ID>,
    /// The phase the report covers; omit for the whole process.
    pub phase: Option<Phase>,
    pub title: String,
    pub summary: String,
    /// False: for members only.
    pub public: bool,
    pub published_on: Option<NaiveDate>,
    #[graphql(default)]
    pub lessons: Vec<LessonInput>,
}

#[derive(InputObject)]
pub struct ProcurementReuseInput {
    /// The procurement your municipality follows (or takes part in).
    pub source_procurement_id: ID,
    /// Title of your new procurement.
    pub title: String,
    /// When it starts (defaults to today).
    pub started_on: Option<NaiveDate>,
}

// Each input is parsed into its rule's domain struct before any rule (or caller check) runs: texts
// trimmed and bounded, ids decoded, lists bounded at `MAX_ENTRIES`.

impl LearningNetworkCreateInput {
    fn parse(self) -> Result<NewNetwork, Invalid> {
        Ok(NewNetwork {
            name: Title::parse("name", &self.name)?,
            description: Paragraph::parse_optional("description", self.description.as_deref())?,
        })
    }
}

impl LearningNetworkMemberAddInput {
    fn parse(self) -> Result<(i64, i64, Option<NaiveDate>), Invalid> {
        let network_id = input_row(&self.network_id, NodeType::LearningNetwork, "networkId")?;
        let org = input_row(&self.organization_id, NodeType::Organization, "organizationId")?;
        Ok((network_id, org, self.joined_on))
    }
}

impl GatheringAddInput {
    fn parse(self) -> Result<(i64, NewGathering), Invalid> {
        let network_id = input_row(&self.network_id, NodeType::LearningNetwork, "networkId")?;
        let host_id = input_row(&self.host_id, NodeType::Organization, "hostId")?;
        bounded("attendance", &self.attendance)?;
        if self.number < 1 {
            return Err(Invalid::new("number", "INVALID_NUMBER", "gatherings are numbered from 1"));
        }
        let topic = Title::parse("topic", &self.topic)?;
        let attendance = self
            .attendance
            .iter()
            .map(|a| {
                let org = input_row(&a.organization_id, NodeType::Organization, "attendance")?;
                Ok((org, rules::attendees(a.people)?))
            })
            .collect::<std::result::Result<Vec<_>, Invalid>>()?;
        let venue = Title::parse_optional("venue", self.venue.as_deref())?;
        let new = NewGathering { number: self.number, held_on: self.held_on, host_id, venue, topic, attendance };
        Ok((network_id, new))
    }
}

impl GatheringAttendanceSetInput {
    /// The gathering, the organisation and how many people it sent.
    fn parse(self) -> Result<(i64, i64, u32), Invalid> {
        let g = input_row(&self.gathering_id, NodeType::Gathering, "gatheringId")?;
        let org = input_row(&self.organization_id, NodeType::Organization, "organizationId")?;
        let people = u32::try_from(self.people)
            .map_err(|_| Invalid::new("people", "INVALID_PEOPLE", "people must not be negative"))?;
        Ok((g, org, people))
    }
}

impl ExperienceReportPublishInput {
    fn parse(self) -> Result<NewReport, Invalid> {
        let procurement_id = input_row(&self.procurement_id, NodeType::Procurement, "procurementId")?;
        let network_id =
            self.network_id.as_ref().map(|n| input_row(n, NodeType::LearningNetwork, "networkId")).transpose()?;
        let title = Title::parse("title", &self.title)?;
        let summary = LongText::parse("summary", &self.summary)?;
        bounded("lessons", &self.lessons)?;
        let lessons = self
            .lessons
            .into_iter()
            .map(|l| {
                if l.phase == Phase::OnHold {
                    let message = "a lesson concerns a phase of the process, not ON_HOLD";
                    return Err(Invalid::new("lessons", "INVALID_PHASE", message));
                }
                Ok((l.phase, Paragraph::parse("lessons", &l.text)?))
            })
            .collect::<std::result::Result<Vec<_>, Invalid>>()?;
        Ok(NewReport {
            procurement_id,
            network_id,
            phase: self.phase,
            title,
            summary,
            public: self.public,
            published_on: self.published_on.unwrap_or_else(today),
            lessons,
        })
    }
}

impl ProcurementReuseInput {
    /// The source procurement, the new one's title and its start.
    fn parse(self) -> Result<(i64, Title, NaiveDate), Invalid> {
        let source = input_row(&self.source_procurement_id, NodeType::Procurement, "sourceProcurementId")?;
        let title = Title::parse("title", &self.title)?;
        Ok((source, title, self.started_on.unwrap_or_else(today)))
    }
}

#[derive(Default)]
pub struct LearningMutation;

#[Object]
impl LearningMutation {
    /// A programme adviser starts a learning network coordinated by the adviser's programme.
    async fn learning_network_create(
        &self,
        ctx: &Context<'_>,
        input: LearningNetworkCreateInput,
    ) -> Result<LearningNetworkCreatePayload> {
        let caller = caller(ctx, Role::Advisor, "start learning networks").await?;
        mutate(ctx, input.parse(), LearningNetwork, async |txn, new| rules::create_network(txn, &caller, new).await)
            .await
    }

    async fn learning_network_member_add(
        &self,
        ctx: &Context<'_>,
        input: LearningNetworkMemberAddInput,
    ) -> Result<LearningNetworkMemberAddPayload> {
        let caller = caller(ctx, Role::Advisor, "manage learning networks").await?;
        mutate(ctx, input.parse(), NetworkMember, async |txn, (n, org, joined_on)| {
            rules::add_member(txn, &caller, n, org, joined_on).await
        })
        .await
    }

    async fn gathering_add(&self, ctx: &Context<'_>, input: GatheringAddInput) -> Result<GatheringAddPayload> {
        let caller = caller(ctx, Role::Advisor, "record gatherings").await?;
        mutate(ctx, input.parse(), Gathering, async |txn, (n, new)| rules::add_gathering(txn, &caller, n, new).await)
            .await
    }

    async fn gathering_attendance_set(
        &self,
        ctx: &Context<'_>,
        input: GatheringAttendanceSetInput,
    ) -> Result<GatheringAttendanceSetPayload> {
        let caller = caller(ctx, Role::Advisor, "record attendance").await?;
        mutate(ctx, input.parse(), Gathering, async |txn, (g, org, people)| {
            rules::set_attendance(txn, &caller, g, org, people).await
        })
        .await
    }

    /// A municipality taking part in a procurement publishes its experience of it.
    async fn experience_report_publish(
        &self,
        ctx: &Context<'_>,
        input: ExperienceReportPublishInput,
    ) -> Result<ExperienceReportPublishPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "publish experience reports").await?;
        mutate(ctx, input.parse(), ExperienceReport, async |txn, new| rules::publish_report(txn, &caller, new).await)
            .await
    }

    /// A municipality that follows a procurement starts its own from it: service journey,
    /// needs and user stories are copied with provenance, and the source records the reuse.
    async fn procurement_reuse(
        &self,
        ctx: &Context<'_>,
        input: ProcurementReuseInput,
    ) -> Result<ProcurementReusePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "start procurements").await?;
        mutate(ctx, input.parse(), ProcurementReuse, async |txn, (source, title, started_on)| {
            rules::reuse(txn, &caller, source, title, started_on).await
        })
        .await
    }
}
