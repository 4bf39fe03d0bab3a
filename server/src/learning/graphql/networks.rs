//! Learning networks, their members and gatherings, with `node(id:)`.

use super::*;

/// A learning network (læringsnettverk): municipalities that learn together in gatherings,
/// coordinated by a programme.
#[derive(Clone)]
pub struct LearningNetwork(pub learning_network::Model);

#[row_fields]
#[connections]
#[Object]
impl LearningNetwork {
    pub async fn id(&self) -> ID;

    async fn name(&self) -> &str;

    async fn description(&self) -> Option<&str>;

    /// The programme organisation that coordinates the network.
    async fn coordinator(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.coordinator_id).await
    }

    /// Member organisations. Signed-in users only.
    async fn members(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Option<Page<NetworkMember>>> {
        require_signed_in(ctx, "a network's members")?;
        load_page(ctx, MembersOfNetwork(self.0.id), page, |_| true, NetworkMember, |m| m.0.id).await.map(Some)
    }

    /// Gatherings (samlinger), in the order recorded. Signed-in users only.
    async fn gatherings(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Option<Page<Gathering>>> {
        require_signed_in(ctx, "a network's gatherings")?;
        let page = page.parse()?;
        let mut rows: Vec<Gathering> =
            load_one(ctx, GatheringsOf(self.0.id)).await?.unwrap_or_default().into_iter().map(Gathering).collect();
        rows.sort_by_key(|g| g.0.id);
        Ok(Some(page_in_memory(rows, |g| g.0.id, &page)))
    }
}

/// An organisation's membership of a learning network.
#[derive(Clone)]
pub struct NetworkMember(pub network_member::Model);

#[row_fields]
#[Object]
impl NetworkMember {
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.organization_id).await
    }

    async fn joined_on(&self) -> Option<NaiveDate>;
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

#[row_fields]
#[Object]
impl GatheringAttendee {
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.organization_id).await
    }

    async fn people(&self) -> i32;
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

#[row_fields]
#[connections]
#[Object]
impl Gathering {
    pub async fn id(&self) -> ID;

    /// 1 for the network's first gathering, 4 for its fourth …
    async fn number(&self) -> i32;

    async fn held_on(&self) -> NaiveDate;

    /// The hosting municipality.
    async fn host(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.host_id).await
    }

    /// Where, e.g. the host's town hall.
    async fn venue(&self) -> Option<&str>;

    async fn topic(&self) -> &str;

    async fn network(&self, ctx: &Context<'_>) -> Result<LearningNetwork> {
        Ok(LearningNetwork(load_existing(ctx, NetworkById(self.0.network_id), "network").await?))
    }

    /// Every organisation that came (members and others, e.g. the programme), with how many
    /// people.
    async fn attendees(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<GatheringAttendee>> {
        load_page(ctx, AttendanceAt(self.0.id), page, |_| true, GatheringAttendee, |a| a.0.id).await
    }

    /// People at the gathering, all organisations together.
    async fn total_people(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(load_one(ctx, AttendanceAt(self.0.id)).await?.unwrap_or_default().iter().map(|a| i64::from(a.people)).sum())
    }

    /// Every member of the network with how many people it sent (0 for none); `levels` keeps
    /// only those bands, e.g. `[NONE, ONE_PERSON]` for the members that sent one or none.
    async fn member_attendance(
        &self,
        ctx: &Context<'_>,
        #[graphql(validator(max_items = 100))] levels: Option<Vec<AttendanceLevel>>,
        page: PageArgs,
    ) -> Result<Page<MemberAttendance>> {
        let page = page.parse()?;
        let members = load_one(ctx, MembersOfNetwork(self.0.network_id)).await?.unwrap_or_default();
        let attendance = load_one(ctx, AttendanceAt(self.0.id)).await?.unwrap_or_default();
        let rows: Vec<MemberAttendance> = members
            .into_iter()
            .map(|member| {
                let people =
                    attendance.iter().find(|a| a.organization_id == member.organization_id).map_or(0, |a| a.people);
                MemberAttendance { member, people }
            })
            .filter(|m| levels.as_ref().is_none_or(|l| l.contains(&AttendanceLevel::of(m.people))))
            .collect();
        Ok(page_in_memory(rows, |m| m.member.id, &page))
    }
}

/// Networks are public.
impl NodeObject for LearningNetwork {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<LearningNetwork>, ApiError> {
        Ok(load_one(ctx, NetworkById(id)).await?.map(LearningNetwork))
    }
}

/// Gatherings are for signed-in users.
impl NodeObject for Gathering {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Gathering>, ApiError> {
        if session(ctx).organization().is_none() {
            return Ok(None);
        }
        Ok(load_one(ctx, GatheringById(id)).await?.map(Gathering))
    }
}
