//! The mutations of learning networks, gatherings, experience reports and reuse.

use super::*;

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
        let result =
            in_transaction(ctx, async |txn| rules::create_network(txn, &caller, &input.name, input.description).await)
                .await;
        Ok(LearningNetworkCreatePayload::from_rule(result, LearningNetwork)?)
    }

    async fn learning_network_member_add(
        &self,
        ctx: &Context<'_>,
        input: LearningNetworkMemberAddInput,
    ) -> Result<LearningNetworkMemberAddPayload> {
        let caller = caller(ctx, Role::Advisor, "manage learning networks").await?;
        let result: RuleResult<_> = async {
            let n = input_row(&input.network_id, NodeType::LearningNetwork, "networkId")?;
            let org = input_row(&input.organization_id, NodeType::Organization, "organizationId")?;
            in_transaction(ctx, async |txn| rules::add_member(txn, &caller, n, org, input.joined_on).await).await
        }
        .await;
        Ok(LearningNetworkMemberAddPayload::from_rule(result, NetworkMember)?)
    }

    async fn gathering_add(&self, ctx: &Context<'_>, input: GatheringAddInput) -> Result<GatheringAddPayload> {
        let caller = caller(ctx, Role::Advisor, "record gatherings").await?;
        let result: RuleResult<_> = async {
            let n = input_row(&input.network_id, NodeType::LearningNetwork, "networkId")?;
            let host_id = input_row(&input.host_id, NodeType::Organization, "hostId")?;
            let attendance = input
                .attendance
                .iter()
                .map(|a| Ok((input_row(&a.organization_id, NodeType::Organization, "attendance")?, a.people)))
                .collect::<std::result::Result<Vec<_>, Invalid>>()?;
            let new = NewGathering {
                number: input.number,
                held_on: input.held_on,
                host_id,
                venue: input.venue,
                topic: input.topic,
                attendance,
            };
            in_transaction(ctx, async |txn| rules::add_gathering(txn, &caller, n, new).await).await
        }
        .await;
        Ok(GatheringAddPayload::from_rule(result, Gathering)?)
    }

    async fn gathering_attendance_set(
        &self,
        ctx: &Context<'_>,
        input: GatheringAttendanceSetInput,
    ) -> Result<GatheringAttendanceSetPayload> {
        let caller = caller(ctx, Role::Advisor, "record attendance").await?;
        let result: RuleResult<_> = async {
            let g = input_row(&input.gathering_id, NodeType::Gathering, "gatheringId")?;
            let org = input_row(&input.organization_id, NodeType::Organization, "organizationId")?;
            in_transaction(ctx, async |txn| rules::set_attendance(txn, &caller, g, org, input.people).await).await
        }
        .await;
        Ok(GatheringAttendanceSetPayload::from_rule(result, Gathering)?)
    }

    /// A municipality taking part in a procurement publishes its experience of it.
    async fn experience_report_publish(
        &self,
        ctx: &Context<'_>,
        input: ExperienceReportPublishInput,
    ) -> Result<ExperienceReportPublishPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "publish experience reports").await?;
        let result: RuleResult<_> = async {
            let new = NewReport {
                procurement_id: input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?,
                network_id: input
                    .network_id
                    .as_ref()
                    .map(|n| input_row(n, NodeType::LearningNetwork, "networkId"))
                    .transpose()?,
                phase: input.phase,
                title: input.title,
                summary: input.summary,
                public: input.public,
                published_on: input.published_on.unwrap_or_else(today),
                lessons: input.lessons.into_iter().map(|l| (l.phase, l.text)).collect(),
            };
            in_transaction(ctx, async |txn| rules::publish_report(txn, &caller, new).await).await
        }
        .await;
        Ok(ExperienceReportPublishPayload::from_rule(result, ExperienceReport)?)
    }

    /// A municipality that follows a procurement starts its own from it: service journey,
    /// needs and user stories are copied with provenance, and the source records the reuse.
    async fn procurement_reuse(
        &self,
        ctx: &Context<'_>,
        input: ProcurementReuseInput,
    ) -> Result<ProcurementReusePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "start procurements").await?;
        let result: RuleResult<_> = async {
            let source = input_row(&input.source_procurement_id, NodeType::Procurement, "sourceProcurementId")?;
            let started_on = input.started_on.unwrap_or_else(today);
            in_transaction(ctx, async |txn| rules::reuse(txn, &caller, source, &input.title, started_on).await).await
        }
        .await;
        Ok(ProcurementReusePayload::from_rule(result, ProcurementReuse)?)
    }
}
