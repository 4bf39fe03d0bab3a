//! GraphQL face of learning across municipalities: networks and their gatherings with attendance
//! per organisation, experience reports with lessons and full-text search, learning arenas, and
//! follower reuse of a procurement with provenance.

use std::collections::HashSet;

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, InputObject, Object, Result, ID};
use chrono::NaiveDate;
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

use super::model::{
    ReusedKind, experience_report, gathering, gathering_attendance, learning_network, lesson, network_member,
    procurement_reuse, reused_item,
};
use super::rules::{self, NewGathering, NewReport, RuleResult};
use super::search;
use crate::auth::Role;
use crate::errors::{ApiError, Invalid};
use crate::graphql::connection::{
    OrderDirection, PageRequest, TotalCount, page_by_id, page_complexity, page_in_memory,
};
use crate::graphql::context::{caller, in_transaction, load_existing, load_one, session, state, today};
use crate::graphql::errors::payload;
use crate::graphql::loaders::*;
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, argument_row, global_id, input_row};
use crate::organizations::Organization;
use crate::procurement::access::Access;
use crate::procurement::graphql::{Attendee, Procurement};
use crate::procurement::model::{ActivityKind, dialogue_activity, participant};
use crate::procurement::phase::Phase;

type Page<T> = Connection<String, T, TotalCount>;


fn require_signed_in(ctx: &Context<'_>, what: &str) -> Result<(), ApiError> {
    if session(ctx).actor.principal().is_some() {
        Ok(())
    } else {
        Err(ApiError::Unauthenticated(format!("sign in to see {what}")))
    }
}

/// A procurement, when the viewer may see it (anonymous viewers: with a published notice).
async fn visible_procurement(ctx: &Context<'_>, id: i64) -> Result<Option<Procurement>> {
    let Some(p) = load_one(ctx, ProcurementById(id)).await? else { return Ok(None) };
    Ok(Access::of(ctx, &p).await?.can_see(&p).then_some(Procurement(p)))
}

/// The viewer's standing towards learning material: members-only reports are for the
/// procurement's municipalities (lead, participants, followers), members of the network the
/// report is shared in, the author, programme advisers and admins.
struct Reader {
    org_id: Option<i64>,
    sees_all: bool,
    procurements: HashSet<i64>,
    networks: HashSet<i64>,
}

impl Reader {
    async fn of(ctx: &Context<'_>) -> Result<Reader, ApiError> {
        let session = session(ctx);
        let org_id = session.organization_id().await?;
        let signed_in = session.actor.principal().is_some();
        let (mut procurements, mut networks) = (HashSet::new(), HashSet::new());
        if let Some(org) = org_id {
            procurements = load_one(ctx, ParticipationsOf(org)).await?.unwrap_or_default().iter().map(|p| p.procurement_id).collect();
            networks = load_one(ctx, NetworkMembershipsOf(org)).await?.unwrap_or_default().iter().map(|m| m.network_id).collect();
        }
        Ok(Reader {
            org_id,
            sees_all: signed_in && (session.has_role(Role::Advisor) || session.has_role(Role::Admin)),
            procurements,
            networks,
        })
    }

    fn can_read(&self, r: &experience_report::Model) -> bool {
        r.public
            || self.sees_all
            || self.org_id == Some(r.author_id)
            || self.procurements.contains(&r.procurement_id)
            || r.network_id.is_some_and(|n| self.networks.contains(&n))
    }

    /// The same rule as [`Reader::can_read`], as a filter on `experience_report`.
    fn condition(&self) -> Condition {
        if self.sees_all {
            return Condition::all();
        }
        let mut any = Condition::any().add(experience_report::Column::Public.eq(true));
        if let Some(org) = self.org_id {
            let taking_part = Query::select()
                .column(participant::Column::ProcurementId)
                .from(participant::Entity)
                .and_where(participant::Column::OrganizationId.eq(org))
                .to_owned();
            let member_of = Query::select()
                .column(network_member::Column::NetworkId)
                .from(network_member::Entity)
                .and_where(network_member::Column::OrganizationId.eq(org))
                .to_owned();
            any = any
                .add(experience_report::Column::AuthorId.eq(org))
                .add(experience_report::Column::ProcurementId.in_subquery(taking_part))
                .add(experience_report::Column::NetworkId.in_subquery(member_of));
        }
        any
    }
}

// ---------------------------------------------------------------------------------------------
// Networks and gatherings

/// A learning network (læringsnettverk): municipalities that learn together in gatherings,
/// coordinated by a programme.
#[derive(Clone)]
pub struct LearningNetwork(pub learning_network::Model);

#[Object]
impl LearningNetwork {
    pub async fn id(&self) -> ID {
        global_id(NodeType::LearningNetwork, self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The programme organisation that coordinates the network.
    async fn coordinator(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.coordinator_id).await
    }

    /// Member organisations. Signed-in users only.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Option<Page<NetworkMember>>> {
        require_signed_in(ctx, "a network's members")?;
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<NetworkMember> =
            load_one(ctx, MembersOfNetwork(self.0.id)).await?.unwrap_or_default().into_iter().map(NetworkMember).collect();
        Ok(Some(page_in_memory(&rows, |m| m.0.id, &page)))
    }

    /// Gatherings (samlinger), in the order recorded. Signed-in users only.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn gatherings(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Option<Page<Gathering>>> {
        require_signed_in(ctx, "a network's gatherings")?;
        let page = PageRequest::parse(after, before, first, last)?;
        let mut rows: Vec<Gathering> =
            load_one(ctx, GatheringsOf(self.0.id)).await?.unwrap_or_default().into_iter().map(Gathering).collect();
        rows.sort_by_key(|g| g.0.id);
        Ok(Some(page_in_memory(&rows, |g| g.0.id, &page)))
    }
}

/// An organisation's membership of a learning network.
#[derive(Clone)]
pub struct NetworkMember(pub network_member::Model);

#[Object]
impl NetworkMember {
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.organization_id).await
    }

    async fn joined_on(&self) -> Option<NaiveDate> {
        self.0.joined_on
    }
}

/// How many people a member sent to a gathering, in three bands: "one person from a
/// municipality is too thin".
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AttendanceLevel {
    /// Nobody came.
    None,
    /// One person came.
    OnePerson,
    /// Two or more came.
    Several,
}

impl AttendanceLevel {
    fn of(people: i32) -> AttendanceLevel {
        match people {
            ..=0 => AttendanceLevel::None,
            1 => AttendanceLevel::OnePerson,
            _ => AttendanceLevel::Several,
        }
    }
}

/// A gathering (samling) of a learning network, hosted by a member municipality.
#[derive(Clone)]
pub struct Gathering(pub gathering::Model);

/// An organisation at a gathering, with how many people it sent.
#[derive(Clone)]
pub struct GatheringAttendee(pub gathering_attendance::Model);

#[Object]
impl GatheringAttendee {
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.organization_id).await
    }

    async fn people(&self) -> i32 {
        self.0.people
    }
}

/// A member of the network and how many people it sent to one gathering (0 when none).
#[derive(Clone)]
pub struct MemberAttendance {
    member: network_member::Model,
    people: i32,
}

#[Object]
impl MemberAttendance {
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.member.organization_id).await
    }

    /// People who came; 0 when the member sent no one.
    async fn people(&self) -> i32 {
        self.people
    }

    async fn level(&self) -> AttendanceLevel {
        AttendanceLevel::of(self.people)
    }
}

#[Object]
impl Gathering {
    pub async fn id(&self) -> ID {
        global_id(NodeType::Gathering, self.0.id)
    }

    /// 1 for the network's first gathering, 4 for its fourth …
    async fn number(&self) -> i32 {
        self.0.number
    }

    async fn held_on(&self) -> NaiveDate {
        self.0.held_on
    }

    /// The hosting municipality.
    async fn host(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.host_id).await
    }

    /// Where, e.g. the host's town hall.
    async fn venue(&self) -> Option<&str> {
        self.0.venue.as_deref()
    }

    async fn topic(&self) -> &str {
        &self.0.topic
    }

    async fn network(&self, ctx: &Context<'_>) -> Result<LearningNetwork> {
        let n = load_existing(ctx, NetworkById(self.0.network_id), "network").await?;
        Ok(LearningNetwork(n))
    }

    /// Every organisation that came (members and others, e.g. the programme), with how many
    /// people.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn attendees(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<GatheringAttendee>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<GatheringAttendee> =
            load_one(ctx, AttendanceAt(self.0.id)).await?.unwrap_or_default().into_iter().map(GatheringAttendee).collect();
        Ok(page_in_memory(&rows, |a| a.0.id, &page))
    }

    /// People at the gathering, all organisations together.
    async fn total_people(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(load_one(ctx, AttendanceAt(self.0.id)).await?.unwrap_or_default().iter().map(|a| i64::from(a.people)).sum())
    }

    /// Every member of the network with how many people it sent (0 for none); `levels` keeps
    /// only those bands, e.g. `[NONE, ONE_PERSON]` for the members that sent one or none.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn member_attendance(
        &self,
        ctx: &Context<'_>,
        levels: Option<Vec<AttendanceLevel>>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<MemberAttendance>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let members = load_one(ctx, MembersOfNetwork(self.0.network_id)).await?.unwrap_or_default();
        let attendance = load_one(ctx, AttendanceAt(self.0.id)).await?.unwrap_or_default();
        let rows: Vec<MemberAttendance> = members
            .into_iter()
            .map(|member| {
                let people = attendance.iter().find(|a| a.organization_id == member.organization_id).map_or(0, |a| a.people);
                MemberAttendance { member, people }
            })
            .filter(|m| levels.as_ref().is_none_or(|l| l.contains(&AttendanceLevel::of(m.people))))
            .collect();
        Ok(page_in_memory(&rows, |m| m.member.id, &page))
    }
}

// ---------------------------------------------------------------------------------------------
// Experience reports

/// An experience report (erfaringsrapport) on a procurement, e.g. Larvik's report on the whole
/// process: public, or for members only.
#[derive(Clone)]
pub struct ExperienceReport(pub experience_report::Model);

/// One lesson learned, tagged with the phase it concerns.
#[derive(Clone)]
pub struct Lesson(pub lesson::Model);

#[Object]
impl Lesson {
    async fn phase(&self) -> Phase {
        self.0.phase
    }

    async fn text(&self) -> &str {
        &self.0.text
    }
}

#[Object]
impl ExperienceReport {
    pub async fn id(&self) -> ID {
        global_id(NodeType::ExperienceReport, self.0.id)
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn summary(&self) -> &str {
        &self.0.summary
    }

    /// The phase the report covers; null for the whole process.
    async fn phase(&self) -> Option<Phase> {
        self.0.phase
    }

    /// False for members-only reports.
    async fn public(&self) -> bool {
        self.0.public
    }

    async fn published_on(&self) -> NaiveDate {
        self.0.published_on
    }

    /// The reporting organisation.
    async fn author(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.author_id).await
    }

    /// The procurement reported on; null when you may not see it.
    async fn procurement(&self, ctx: &Context<'_>) -> Result<Option<Procurement>> {
        visible_procurement(ctx, self.0.procurement_id).await
    }

    /// The learning network the report is shared in.
    async fn network(&self, ctx: &Context<'_>) -> Result<Option<LearningNetwork>> {
        let Some(id) = self.0.network_id else { return Ok(None) };
        Ok(load_one(ctx, NetworkById(id)).await?.map(LearningNetwork))
    }

    /// Lessons learned, optionally only those about one phase.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn lessons(
        &self,
        ctx: &Context<'_>,
        phase: Option<Phase>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<Lesson>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<Lesson> = load_one(ctx, LessonsOf(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|l| phase.is_none_or(|p| l.phase == p))
            .map(Lesson)
            .collect();
        Ok(page_in_memory(&rows, |l| l.0.id, &page))
    }
}

// ---------------------------------------------------------------------------------------------
// Follower reuse

/// A procurement started from another one by a municipality that followed it: the service
/// journey, needs and user stories were copied, each with its provenance.
#[derive(Clone)]
pub struct ProcurementReuse(pub procurement_reuse::Model);

/// One copied item and where it came from.
#[derive(Clone)]
pub struct ReusedItem(pub reused_item::Model);

#[Object]
impl ReusedItem {
    async fn kind(&self) -> ReusedKind {
        self.0.kind
    }

    /// The copied text: a step's title, a need's description, a user story's code and title.
    async fn text(&self) -> &str {
        &self.0.text
    }

    /// "reused from «source title» led by …".
    async fn provenance(&self) -> &str {
        &self.0.provenance
    }
}

#[Object]
impl ProcurementReuse {
    pub async fn id(&self) -> ID {
        global_id(NodeType::ProcurementReuse, self.0.id)
    }

    /// The procurement that was followed and reused.
    async fn source(&self, ctx: &Context<'_>) -> Result<Option<Procurement>> {
        visible_procurement(ctx, self.0.source_id).await
    }

    /// The procurement started from it.
    async fn procurement(&self, ctx: &Context<'_>) -> Result<Option<Procurement>> {
        visible_procurement(ctx, self.0.copy_id).await
    }

    /// The municipality that reused it.
    async fn reused_by(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.organization_id).await
    }

    async fn reused_on(&self) -> NaiveDate {
        self.0.reused_on
    }

    /// What was copied, with provenance.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn items(
        &self,
        ctx: &Context<'_>,
        kind: Option<ReusedKind>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<ReusedItem>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<ReusedItem> = load_one(ctx, ReusedItemsOf(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|i| kind.is_none_or(|k| i.kind == k))
            .map(ReusedItem)
            .collect();
        Ok(page_in_memory(&rows, |i| i.0.id, &page))
    }
}

// ---------------------------------------------------------------------------------------------
// Learning arenas

/// A learning arena (læringsarena): a dialogue activity of a procurement opened to other
/// municipalities, where the lead presents its procurement to many.
#[derive(Clone)]
pub struct LearningArena(pub dialogue_activity::Model);

#[Object]
impl LearningArena {
    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn held_on(&self) -> NaiveDate {
        self.0.held_on
    }

    async fn procurement(&self, ctx: &Context<'_>) -> Result<Option<Procurement>> {
        visible_procurement(ctx, self.0.procurement_id).await
    }

    /// The presenting municipality: the procurement's lead.
    async fn presented_by(&self, ctx: &Context<'_>) -> Result<Organization> {
        let p = load_existing(ctx, ProcurementById(self.0.procurement_id), "procurement").await?;
        Organization::by_id(ctx, p.lead_id).await
    }

    /// The attending organisations, with people counts where known.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn attendees(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<Attendee>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<Attendee> =
            load_one(ctx, AttendeesOf(self.0.id)).await?.unwrap_or_default().into_iter().map(Attendee).collect();
        Ok(page_in_memory(&rows, |a| a.0.id, &page))
    }

    /// How many organisations attended.
    async fn organizations(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(load_one(ctx, AttendeesOf(self.0.id)).await?.unwrap_or_default().len() as i64)
    }

    /// People from the organisations whose count is known.
    async fn people(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(load_one(ctx, AttendeesOf(self.0.id)).await?.unwrap_or_default().iter().filter_map(|a| a.people).map(i64::from).sum())
    }

    /// Attending organisations whose people count is unknown (not in `people`).
    async fn organizations_with_unknown_people(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(load_one(ctx, AttendeesOf(self.0.id)).await?.unwrap_or_default().iter().filter(|a| a.people.is_none()).count() as i64)
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

#[derive(InputObject, Default)]
pub struct ExperienceReportFilter {
    /// Reports on this procurement (global id).
    pub procurement: Option<ID>,
    /// Reports by this organisation (global id).
    pub author: Option<ID>,
    /// Reports covering this phase.
    pub phase: Option<Phase>,
}


#[derive(Default)]
pub struct LearningQuery;

#[Object]
impl LearningQuery {
    /// Learning networks; their names are public.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn learning_networks(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<LearningNetwork>> {
        let page = PageRequest::parse(after, before, first, last)?;
        page_by_id(ctx, OrderDirection::Asc, learning_network::Entity::find(), learning_network::Column::Id, &page, |n| n.id, LearningNetwork).await
    }

    /// Experience reports you may read: public ones for everyone; members-only ones for the
    /// procurement's municipalities (followers too), the network's members, the author,
    /// programme advisers and admins. `search` matches every word of it in the title, summary
    /// or lessons (full-text, ignoring case).
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn experience_reports(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        filter: Option<ExperienceReportFilter>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<ExperienceReport>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let filter = filter.unwrap_or_default();
        let reader = Reader::of(ctx).await?;
        let mut select = experience_report::Entity::find().filter(reader.condition());
        if let Some(procurement) = &filter.procurement {
            select = select.filter(experience_report::Column::ProcurementId.eq(argument_row(procurement, NodeType::Procurement, "procurement")?));
        }
        if let Some(author) = &filter.author {
            select = select.filter(experience_report::Column::AuthorId.eq(argument_row(author, NodeType::Organization, "author")?));
        }
        if let Some(phase) = filter.phase {
            select = select.filter(experience_report::Column::Phase.eq(phase));
        }
        if let Some(query) = search.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            if query.chars().count() > 200 {
                return Err(ApiError::BadUserInput("`search` is at most 200 characters".into()).into());
            }
            select = select.filter(search::matches(state(ctx).db.backend(), query));
        }
        page_by_id(ctx, OrderDirection::Asc, select, experience_report::Column::Id, &page, |r| r.id, ExperienceReport).await
    }

    /// Procurements started from another by reuse: pass `source` to see who reused a
    /// procurement, `procurement` to see where one came from. Signed-in users only.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn procurement_reuses(
        &self,
        ctx: &Context<'_>,
        source: Option<ID>,
        procurement: Option<ID>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<ProcurementReuse>> {
        require_signed_in(ctx, "reuse between procurements")?;
        let page = PageRequest::parse(after, before, first, last)?;
        let mut select = procurement_reuse::Entity::find();
        if let Some(source) = &source {
            select = select.filter(procurement_reuse::Column::SourceId.eq(argument_row(source, NodeType::Procurement, "source")?));
        }
        if let Some(copy) = &procurement {
            select = select.filter(procurement_reuse::Column::CopyId.eq(argument_row(copy, NodeType::Procurement, "procurement")?));
        }
        page_by_id(ctx, OrderDirection::Asc, select, procurement_reuse::Column::Id, &page, |r| r.id, ProcurementReuse).await
    }

    /// Learning arenas of all procurements (or one), with their attendance. Signed-in users
    /// only, like the dialogue activities they are.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn learning_arenas(
        &self,
        ctx: &Context<'_>,
        procurement: Option<ID>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<LearningArena>> {
        require_signed_in(ctx, "learning arenas")?;
        let page = PageRequest::parse(after, before, first, last)?;
        let mut select = dialogue_activity::Entity::find().filter(dialogue_activity::Column::Kind.eq(ActivityKind::LearningArena));
        if let Some(p) = &procurement {
            select = select.filter(dialogue_activity::Column::ProcurementId.eq(argument_row(p, NodeType::Procurement, "procurement")?));
        }
        page_by_id(ctx, OrderDirection::Asc, select, dialogue_activity::Column::Id, &page, |a| a.id, LearningArena).await
    }
}

// `node(id:)`, with the same visibility as the lists.

/// Networks are public.
impl NodeObject for LearningNetwork {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<LearningNetwork>, ApiError> {
        Ok(load_one(ctx, NetworkById(id)).await?.map(LearningNetwork))
    }
}

/// Gatherings are for signed-in users.
impl NodeObject for Gathering {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Gathering>, ApiError> {
        if session(ctx).actor.principal().is_none() {
            return Ok(None);
        }
        Ok(load_one(ctx, GatheringById(id)).await?.map(Gathering))
    }
}

impl NodeObject for ExperienceReport {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<ExperienceReport>, ApiError> {
        match load_one(ctx, ReportById(id)).await? {
            Some(r) if Reader::of(ctx).await?.can_read(&r) => Ok(Some(ExperienceReport(r))),
            _ => Ok(None),
        }
    }
}

/// Reuses are for signed-in users.
impl NodeObject for ProcurementReuse {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<ProcurementReuse>, ApiError> {
        if session(ctx).actor.principal().is_none() {
            return Ok(None);
        }
        Ok(load_one(ctx, ReuseById(id)).await?.map(ProcurementReuse))
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations

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
    async fn learning_network_create(&self, ctx: &Context<'_>, input: LearningNetworkCreateInput) -> Result<LearningNetworkCreatePayload> {
        let caller = caller(ctx, Role::Advisor, "start learning networks").await?;
        let result =
            in_transaction(ctx, async |txn| rules::create_network(txn, &caller, &input.name, input.description).await).await;
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

    async fn gathering_attendance_set(&self, ctx: &Context<'_>, input: GatheringAttendanceSetInput) -> Result<GatheringAttendanceSetPayload> {
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
                network_id: input.network_id.as_ref().map(|n| input_row(n, NodeType::LearningNetwork, "networkId")).transpose()?,
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
    async fn procurement_reuse(&self, ctx: &Context<'_>, input: ProcurementReuseInput) -> Result<ProcurementReusePayload> {
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
