//! The rules of learning across municipalities, independent of GraphQL. Every function runs
//! inside the caller's transaction and refuses a broken rule with `Refusal::Rule(LearningError)`
//! — the transaction is then rolled back, so a refused change writes nothing.

use chrono::{NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use super::model::{
    ReusedKind, experience_report, gathering, gathering_attendance, learning_network, lesson, network_member,
    procurement_reuse, reused_item,
};
use crate::auth::Caller;
use crate::errors::{ApiError, Invalid, Refusal, RuleViolation, ensure, refuse};
use crate::organizations::{OrganizationKind, model as organization};
use crate::procurement::model::{journey_step, need, participant, procurement, user_story};
use crate::procurement::phase::Phase;
use crate::procurement::rules::{self as procurement_rules, NewProcurement, NewUserStory, ProcurementError};
use crate::procurement::values::StoryCode;
use crate::text::{LongText, Paragraph, Title};

/// Business-rule violations, each with the input field it concerns and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, RuleViolation)]
pub enum LearningError {
    #[error(transparent)]
    #[violation(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0} is not a programme organisation; learning networks are coordinated by a programme")]
    #[violation(field = "", code = "NOT_A_PROGRAMME")]
    NotAProgramme(String),
    #[error("only advisers of the network's coordinating programme may {0}")]
    #[violation(field = "networkId", code = "NOT_COORDINATOR")]
    NotCoordinator(&'static str),
    #[error("{0} is not a municipality")]
    #[violation(field = "organizationId", code = "NOT_A_MUNICIPALITY")]
    NotAMunicipality(String),
    #[error("{0} is already a member of this network")]
    #[violation(field = "organizationId", code = "ALREADY_MEMBER")]
    AlreadyMember(String),
    #[error("{0} is not a member of this network")]
    #[violation(field = "hostId", code = "NOT_A_MEMBER")]
    NotAMember(String),
    #[error("the network already has gathering number {0}")]
    #[violation(field = "number", code = "DUPLICATE_GATHERING")]
    DuplicateGathering(i32),
    #[error("only municipalities taking part in the procurement may report on it")]
    #[violation(field = "procurementId", code = "NOT_A_PARTICIPANT")]
    NotAParticipant,
    #[error("only municipalities that follow or take part in a procurement may reuse it")]
    #[violation(field = "sourceProcurementId", code = "NOT_FOLLOWING")]
    NotFollowing,
    #[error(transparent)]
    #[violation(transparent)]
    Procurement(#[from] ProcurementError),
}

/// What a learning rule returns: its value, or why not.
pub type RuleResult<T> = crate::errors::RuleResult<T, LearningError>;

/// The network, for a change only its coordinating programme's advisers may make.
async fn coordinated_by<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    network_id: i64,
    what: &'static str,
) -> RuleResult<learning_network::Model> {
    let Some(n) = learning_network::Entity::find_by_id(network_id).one(db).await? else {
        return refuse(Invalid::new("networkId", "NOT_FOUND", "no such learning network"));
    };
    ensure(n.coordinator_id == caller.org.id, LearningError::NotCoordinator(what))?;
    Ok(n)
}

async fn is_member<C: ConnectionTrait>(db: &C, network_id: i64, organization_id: i64) -> Result<bool, ApiError> {
    Ok(network_member::Entity::find()
        .filter(network_member::Column::NetworkId.eq(network_id))
        .filter(network_member::Column::OrganizationId.eq(organization_id))
        .count(db)
        .await?
        > 0)
}

pub struct NewNetwork {
    pub name: Title,
    pub description: Option<Paragraph>,
}

/// A programme adviser starts a learning network; the adviser's programme coordinates it.
pub async fn create_network<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    new: NewNetwork,
) -> RuleResult<learning_network::Model> {
    ensure(caller.org.kind == OrganizationKind::Programme, LearningError::NotAProgramme(caller.org.name.clone()))?;
    let row = learning_network::ActiveModel {
        name: Set(new.name.into_string()),
        description: Set(new.description.map(Paragraph::into_string)),
        coordinator_id: Set(caller.org.id),
        created_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

pub async fn add_member<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    network_id: i64,
    organization_id: i64,
    joined_on: Option<NaiveDate>,
) -> RuleResult<network_member::Model> {
    let n = coordinated_by(db, caller, network_id, "add members").await?;
    let Some(org) = organization::Entity::find_by_id(organization_id).one(db).await? else {
        return refuse(Invalid::new("organizationId", "NOT_FOUND", "no such organisation"));
    };
    ensure(org.kind == OrganizationKind::Municipality, LearningError::NotAMunicipality(org.name.clone()))?;
    ensure(!is_member(db, n.id, org.id).await?, LearningError::AlreadyMember(org.name.clone()))?;
    let row = network_member::ActiveModel {
        network_id: Set(n.id),
        organization_id: Set(org.id),
        joined_on: Set(joined_on),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// A gathering as parsed at the edge: numbered from 1, at most `MAX_ENTRIES` attendees.
pub struct NewGathering {
    pub number: i32,
    pub held_on: NaiveDate,
    pub host_id: i64,
    pub venue: Option<Title>,
    pub topic: Title,
    /// Organisation and how many people (at least 1) came from it.
    pub attendance: Vec<(i64, i32)>,
}

/// At least 1: an organisation that sent no one is left out of a gathering's attendance.
pub fn attendees(people: i32) -> Result<i32, Invalid> {
    if people >= 1 {
        Ok(people)
    } else {
        Err(Invalid::new(
            "attendance",
            "INVALID_PEOPLE",
            "people must be at least 1; leave out organisations that sent no one",
        ))
    }
}

async fn check_attendee<C: ConnectionTrait>(db: &C, organization_id: i64) -> RuleResult<()> {
    let exists = organization::Entity::find_by_id(organization_id).count(db).await? > 0;
    ensure(exists, Invalid::new("attendance", "NOT_FOUND", "an attending organisation does not exist"))?;
    Ok(())
}

pub async fn add_gathering<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    network_id: i64,
    new: NewGathering,
) -> RuleResult<gathering::Model> {
    let n = coordinated_by(db, caller, network_id, "record gatherings").await?;
    let taken = gathering::Entity::find()
        .filter(gathering::Column::NetworkId.eq(n.id))
        .filter(gathering::Column::Number.eq(new.number))
        .count(db)
        .await?;
    ensure(taken == 0, LearningError::DuplicateGathering(new.number))?;
    let Some(host) = organization::Entity::find_by_id(new.host_id).one(db).await? else {
        return refuse(Invalid::new("hostId", "NOT_FOUND", "no such organisation"));
    };
    ensure(is_member(db, n.id, host.id).await?, LearningError::NotAMember(host.name.clone()))?;
    let mut seen = std::collections::BTreeSet::new();
    for (org_id, _) in &new.attendance {
        ensure(
            seen.insert(*org_id),
            Invalid::new("attendance", "DUPLICATE_ATTENDEE", "an organisation is listed twice"),
        )?;
        check_attendee(db, *org_id).await?;
    }
    let row = gathering::ActiveModel {
        network_id: Set(n.id),
        number: Set(new.number),
        held_on: Set(new.held_on),
        host_id: Set(host.id),
        venue: Set(new.venue.map(Title::into_string)),
        topic: Set(new.topic.into_string()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    for (org_id, people) in new.attendance {
        gathering_attendance::ActiveModel {
            gathering_id: Set(row.id),
            organization_id: Set(org_id),
            people: Set(people),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(row)
}

/// Records how many people (checked at the edge to be at least 0) an organisation sent to a
/// gathering; 0 removes the record.
pub async fn set_attendance<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    gathering_id: i64,
    organization_id: i64,
    people: u32,
) -> RuleResult<gathering::Model> {
    let Some(g) = gathering::Entity::find_by_id(gathering_id).one(db).await? else {
        return refuse(Invalid::new("gatheringId", "NOT_FOUND", "no such gathering"));
    };
    coordinated_by(db, caller, g.network_id, "record attendance").await?;
    let people = i32::try_from(people).map_err(ApiError::internal)?;
    gathering_attendance::Entity::delete_many()
        .filter(gathering_attendance::Column::GatheringId.eq(g.id))
        .filter(gathering_attendance::Column::OrganizationId.eq(organization_id))
        .exec(db)
        .await?;
    if people > 0 {
        check_attendee(db, organization_id).await?;
        gathering_attendance::ActiveModel {
            gathering_id: Set(g.id),
            organization_id: Set(organization_id),
            people: Set(people),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(g)
}

pub struct NewReport {
    pub procurement_id: i64,
    pub network_id: Option<i64>,
    pub phase: Option<Phase>,
    pub title: Title,
    pub summary: LongText,
    pub public: bool,
    pub published_on: NaiveDate,
    /// Each lesson with the phase it concerns (never `OnHold`); at most `MAX_ENTRIES`.
    pub lessons: Vec<(Phase, Paragraph)>,
}

/// A municipality taking part in a procurement (as lead, participant or follower) reports its
/// experience of it.
pub async fn publish_report<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    new: NewReport,
) -> RuleResult<experience_report::Model> {
    let Some(p) = procurement::Entity::find_by_id(new.procurement_id).one(db).await? else {
        return refuse(Invalid::new("procurementId", "NOT_FOUND", "no such procurement"));
    };
    let takes_part = participant::Entity::find()
        .filter(participant::Column::ProcurementId.eq(p.id))
        .filter(participant::Column::OrganizationId.eq(caller.org.id))
        .count(db)
        .await?
        > 0;
    ensure(takes_part, LearningError::NotAParticipant)?;
    if let Some(network_id) = new.network_id {
        let Some(n) = learning_network::Entity::find_by_id(network_id).one(db).await? else {
            return refuse(Invalid::new("networkId", "NOT_FOUND", "no such learning network"));
        };
        ensure(
            n.coordinator_id == caller.org.id || is_member(db, n.id, caller.org.id).await?,
            LearningError::NotAMember(caller.org.name.clone()),
        )?;
    }
    let (title, summary) = (new.title.into_string(), new.summary.into_string());
    let lessons: Vec<(Phase, String)> = new.lessons.into_iter().map(|(p, l)| (p, l.into_string())).collect();
    let mut search_text = format!("{title}\n{summary}");
    for (_, lesson) in &lessons {
        search_text.push('\n');
        search_text.push_str(lesson);
    }
    let report = experience_report::ActiveModel {
        author_id: Set(caller.org.id),
        procurement_id: Set(p.id),
        network_id: Set(new.network_id),
        phase: Set(new.phase),
        title: Set(title),
        summary: Set(summary),
        public: Set(new.public),
        published_on: Set(new.published_on),
        // Lowercased here, with Unicode rules, so search ignores case whatever the database's
        // locale (PostgreSQL in the C locale lowercases ASCII only).
        search_text: Set(search_text.to_lowercase()),
        created_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    for (phase, text) in lessons {
        lesson::ActiveModel { report_id: Set(report.id), phase: Set(phase), text: Set(text), ..Default::default() }
            .insert(db)
            .await?;
    }
    Ok(report)
}

/// A municipality that follows (or takes part in) a procurement starts its own from it: the
/// service journey, needs and user stories are copied, each with its provenance, and the reuse
/// is recorded so the source shows who reused it.
pub async fn reuse<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    source_id: i64,
    title: Title,
    started_on: NaiveDate,
) -> RuleResult<procurement_reuse::Model> {
    ensure(
        caller.org.kind == OrganizationKind::Municipality,
        LearningError::NotAMunicipality(caller.org.name.clone()),
    )?;
    let Some(source) = procurement::Entity::find_by_id(source_id).one(db).await? else {
        return refuse(Invalid::new("sourceProcurementId", "NOT_FOUND", "no such procurement"));
    };
    let follows = participant::Entity::find()
        .filter(participant::Column::ProcurementId.eq(source.id))
        .filter(participant::Column::OrganizationId.eq(caller.org.id))
        .count(db)
        .await?
        > 0;
    ensure(follows, LearningError::NotFollowing)?;
    let lead = organization::Entity::find_by_id(source.lead_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("dangling lead"))?;
    let provenance = format!("reused from «{}» led by {}", source.title, lead.name);
    let copy = procurement_rules::create(db, caller, NewProcurement { title, category: source.category, started_on })
        .await
        .map_err(Refusal::widen)?;
    let reuse = procurement_reuse::ActiveModel {
        source_id: Set(source.id),
        copy_id: Set(copy.id),
        organization_id: Set(caller.org.id),
        reused_on: Set(started_on),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let record = |kind: ReusedKind, source_item_id: i64, copy_item_id: i64, text: String| reused_item::ActiveModel {
        reuse_id: Set(reuse.id),
        kind: Set(kind),
        source_item_id: Set(source_item_id),
        copy_item_id: Set(copy_item_id),
        text: Set(text),
        provenance: Set(provenance.clone()),
        ..Default::default()
    };

    let steps = journey_step::Entity::find()
        .filter(journey_step::Column::ProcurementId.eq(source.id))
        .order_by_asc(journey_step::Column::Position)
        .all(db)
        .await?;
    // Source step id → the copied step's position, which is how a need names its step.
    let mut step_map = std::collections::HashMap::new();
    // Copies pass the same parsing as new input: the rules take only parsed text.
    for step in steps {
        let title = Title::parse("title", &step.title)?;
        let description = Paragraph::parse_optional("description", step.description.as_deref())?;
        let copied = procurement_rules::add_journey_step(db, caller, copy.id, title, description)
            .await
            .map_err(Refusal::widen)?;
        step_map.insert(step.id, copied.position);
        record(ReusedKind::JourneyStep, step.id, copied.id, copied.title.clone()).insert(db).await?;
    }
    let needs = need::Entity::find()
        .filter(need::Column::ProcurementId.eq(source.id))
        .order_by_asc(need::Column::Id)
        .all(db)
        .await?;
    for n in needs {
        let step = n.journey_step_id.and_then(|s| step_map.get(&s).copied());
        let description = Paragraph::parse("description", &n.description)?;
        let copied =
            procurement_rules::add_need(db, caller, copy.id, description, step).await.map_err(Refusal::widen)?;
        record(ReusedKind::Need, n.id, copied.id, copied.description.clone()).insert(db).await?;
    }
    let stories = user_story::Entity::find()
        .filter(user_story::Column::ProcurementId.eq(source.id))
        .order_by_asc(user_story::Column::Id)
        .all(db)
        .await?;
    for s in stories {
        let criteria: Vec<String> = serde_json::from_str(&s.acceptance_criteria).unwrap_or_default();
        let new = NewUserStory {
            code: StoryCode::parse(&s.code)?,
            title: Title::parse("title", &s.title)?,
            narrative: LongText::parse("narrative", &s.narrative)?,
            acceptance_criteria: criteria
                .iter()
                .map(|c| Paragraph::parse("acceptanceCriteria", c))
                .collect::<Result<_, _>>()?,
        };
        let copied = procurement_rules::add_user_story(db, caller, copy.id, new).await.map_err(Refusal::widen)?;
        record(ReusedKind::UserStory, s.id, copied.id, format!("{} {}", copied.code, copied.title)).insert(db).await?;
    }
    Ok(reuse)
}
