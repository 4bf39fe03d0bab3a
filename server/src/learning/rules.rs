//! The rules of learning across municipalities, independent of GraphQL. Every function runs
//! inside the caller's transaction and returns `Ok(Err(LearningError))` for a rule broken — the
//! transaction is then rolled back, so a refused change writes nothing.

use chrono::{NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};

use super::model::{
    ReusedKind, experience_report, gathering, gathering_attendance, learning_network, lesson, network_member,
    procurement_reuse, reused_item,
};
use crate::graphql::errors::{ApiError, RuleViolation, UserError};
use crate::organizations::{OrganizationKind, model as organization};
use crate::procurement::model::{journey_step, need, participant, procurement, user_story};
use crate::procurement::phase::Phase;
use crate::procurement::rules::{self as procurement_rules, Caller, NewProcurement, NewUserStory, ProcurementError};

/// Business-rule violations, each with the input field it concerns and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LearningError {
    #[error("{2}")]
    Invalid(&'static str, &'static str, String),
    #[error("{0} is not a programme organisation; learning networks are coordinated by a programme")]
    NotAProgramme(String),
    #[error("only advisers of the network's coordinating programme may {0}")]
    NotCoordinator(&'static str),
    #[error("{0} is not a municipality")]
    NotAMunicipality(String),
    #[error("{0} is already a member of this network")]
    AlreadyMember(String),
    #[error("{0} is not a member of this network")]
    NotAMember(String),
    #[error("the network already has gathering number {0}")]
    DuplicateGathering(i32),
    #[error("only municipalities taking part in the procurement may report on it")]
    NotAParticipant,
    #[error("only municipalities that follow or take part in a procurement may reuse it")]
    NotFollowing,
    #[error(transparent)]
    Procurement(#[from] ProcurementError),
}

impl RuleViolation for LearningError {
    fn to_user_error(&self) -> UserError {
        let (field, code): (&str, &str) = match self {
            LearningError::Invalid(field, code, _) => (field, code),
            LearningError::NotAProgramme(_) => ("", "NOT_A_PROGRAMME"),
            LearningError::NotCoordinator(_) => ("networkId", "NOT_COORDINATOR"),
            LearningError::NotAMunicipality(_) => ("organizationId", "NOT_A_MUNICIPALITY"),
            LearningError::AlreadyMember(_) => ("organizationId", "ALREADY_MEMBER"),
            LearningError::NotAMember(_) => ("hostId", "NOT_A_MEMBER"),
            LearningError::DuplicateGathering(_) => ("number", "DUPLICATE_GATHERING"),
            LearningError::NotAParticipant => ("procurementId", "NOT_A_PARTICIPANT"),
            LearningError::NotFollowing => ("sourceProcurementId", "NOT_FOLLOWING"),
            LearningError::Procurement(e) => return e.to_user_error(),
        };
        let path: Vec<&str> = if field.is_empty() { vec!["input"] } else { vec!["input", field] };
        UserError::new(&path, code, self.to_string())
    }
}

pub type RuleResult<T> = Result<Result<T, LearningError>, ApiError>;

pub fn invalid(field: &'static str, code: &'static str, message: impl Into<String>) -> LearningError {
    LearningError::Invalid(field, code, message.into())
}

macro_rules! rule {
    ($check:expr, $error:expr) => {
        if !$check {
            return Ok(Err($error));
        }
    };
}

/// Unwraps an inner rule result, returning a broken rule as this area's error.
macro_rules! check {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(e) => return Ok(Err(e.into())),
        }
    };
}

fn text(field: &'static str, value: &str, max: usize) -> Result<String, LearningError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        Err(invalid(field, "INVALID_TEXT", format!("{field} must be 1 to {max} characters")))
    } else {
        Ok(value.to_string())
    }
}

/// The network, for a change only its coordinating programme's advisers may make.
async fn coordinated_by<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    network_id: i64,
    what: &'static str,
) -> RuleResult<learning_network::Model> {
    let Some(n) = learning_network::Entity::find_by_id(network_id).one(db).await? else {
        return Ok(Err(invalid("networkId", "NOT_FOUND", "no such learning network")));
    };
    rule!(n.coordinator_id == caller.org.id, LearningError::NotCoordinator(what));
    Ok(Ok(n))
}

async fn is_member<C: ConnectionTrait>(db: &C, network_id: i64, organization_id: i64) -> Result<bool, ApiError> {
    Ok(network_member::Entity::find()
        .filter(network_member::Column::NetworkId.eq(network_id))
        .filter(network_member::Column::OrganizationId.eq(organization_id))
        .count(db)
        .await?
        > 0)
}

/// A programme adviser starts a learning network; the adviser's programme coordinates it.
pub async fn create_network<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    name: &str,
    description: Option<String>,
) -> RuleResult<learning_network::Model> {
    rule!(caller.org.kind == OrganizationKind::Programme, LearningError::NotAProgramme(caller.org.name.clone()));
    let name = check!(text("name", name, 300));
    let row = learning_network::ActiveModel {
        name: Set(name),
        description: Set(description.map(|d| d.trim().to_string()).filter(|d| !d.is_empty())),
        coordinator_id: Set(caller.org.id),
        created_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(Ok(row))
}

pub async fn add_member<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    network_id: i64,
    organization_id: i64,
    joined_on: Option<NaiveDate>,
) -> RuleResult<network_member::Model> {
    let n = check!(coordinated_by(db, caller, network_id, "add members").await?);
    let Some(org) = organization::Entity::find_by_id(organization_id).one(db).await? else {
        return Ok(Err(invalid("organizationId", "NOT_FOUND", "no such organisation")));
    };
    rule!(org.kind == OrganizationKind::Municipality, LearningError::NotAMunicipality(org.name.clone()));
    rule!(!is_member(db, n.id, org.id).await?, LearningError::AlreadyMember(org.name.clone()));
    let row = network_member::ActiveModel {
        network_id: Set(n.id),
        organization_id: Set(org.id),
        joined_on: Set(joined_on),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(Ok(row))
}

pub struct NewGathering {
    pub number: i32,
    pub held_on: NaiveDate,
    pub host_id: i64,
    pub venue: Option<String>,
    pub topic: String,
    /// Organisation and how many people came from it.
    pub attendance: Vec<(i64, i32)>,
}

async fn check_attendee<C: ConnectionTrait>(db: &C, organization_id: i64, people: i32) -> RuleResult<()> {
    rule!(people >= 1, invalid("attendance", "INVALID_PEOPLE", "people must be at least 1; leave out organisations that sent no one"));
    let exists = organization::Entity::find_by_id(organization_id).count(db).await? > 0;
    rule!(exists, invalid("attendance", "NOT_FOUND", "an attending organisation does not exist"));
    Ok(Ok(()))
}

pub async fn add_gathering<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    network_id: i64,
    new: NewGathering,
) -> RuleResult<gathering::Model> {
    let n = check!(coordinated_by(db, caller, network_id, "record gatherings").await?);
    rule!(new.number >= 1, invalid("number", "INVALID_NUMBER", "gatherings are numbered from 1"));
    let topic = check!(text("topic", &new.topic, 300));
    let taken = gathering::Entity::find()
        .filter(gathering::Column::NetworkId.eq(n.id))
        .filter(gathering::Column::Number.eq(new.number))
        .count(db)
        .await?;
    rule!(taken == 0, LearningError::DuplicateGathering(new.number));
    let Some(host) = organization::Entity::find_by_id(new.host_id).one(db).await? else {
        return Ok(Err(invalid("hostId", "NOT_FOUND", "no such organisation")));
    };
    rule!(is_member(db, n.id, host.id).await?, LearningError::NotAMember(host.name.clone()));
    let mut seen = std::collections::BTreeSet::new();
    for (org_id, people) in &new.attendance {
        rule!(seen.insert(*org_id), invalid("attendance", "DUPLICATE_ATTENDEE", "an organisation is listed twice"));
        check!(check_attendee(db, *org_id, *people).await?);
    }
    let row = gathering::ActiveModel {
        network_id: Set(n.id),
        number: Set(new.number),
        held_on: Set(new.held_on),
        host_id: Set(host.id),
        venue: Set(new.venue.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())),
        topic: Set(topic),
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
    Ok(Ok(row))
}

/// Records how many people an organisation sent to a gathering; 0 removes the record.
pub async fn set_attendance<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    gathering_id: i64,
    organization_id: i64,
    people: i32,
) -> RuleResult<gathering::Model> {
    let Some(g) = gathering::Entity::find_by_id(gathering_id).one(db).await? else {
        return Ok(Err(invalid("gatheringId", "NOT_FOUND", "no such gathering")));
    };
    check!(coordinated_by(db, caller, g.network_id, "record attendance").await?);
    rule!(people >= 0, invalid("people", "INVALID_PEOPLE", "people must not be negative"));
    gathering_attendance::Entity::delete_many()
        .filter(gathering_attendance::Column::GatheringId.eq(g.id))
        .filter(gathering_attendance::Column::OrganizationId.eq(organization_id))
        .exec(db)
        .await?;
    if people > 0 {
        check!(check_attendee(db, organization_id, people).await?);
        gathering_attendance::ActiveModel {
            gathering_id: Set(g.id),
            organization_id: Set(organization_id),
            people: Set(people),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(Ok(g))
}

pub struct NewReport {
    pub procurement_id: i64,
    pub network_id: Option<i64>,
    pub phase: Option<Phase>,
    pub title: String,
    pub summary: String,
    pub public: bool,
    pub published_on: NaiveDate,
    /// Each lesson with the phase it concerns.
    pub lessons: Vec<(Phase, String)>,
}

/// A municipality taking part in a procurement (as lead, participant or follower) reports its
/// experience of it.
pub async fn publish_report<C: ConnectionTrait>(db: &C, caller: &Caller, new: NewReport) -> RuleResult<experience_report::Model> {
    let Some(p) = procurement::Entity::find_by_id(new.procurement_id).one(db).await? else {
        return Ok(Err(invalid("procurementId", "NOT_FOUND", "no such procurement")));
    };
    let takes_part = participant::Entity::find()
        .filter(participant::Column::ProcurementId.eq(p.id))
        .filter(participant::Column::OrganizationId.eq(caller.org.id))
        .count(db)
        .await?
        > 0;
    rule!(takes_part, LearningError::NotAParticipant);
    if let Some(network_id) = new.network_id {
        let Some(n) = learning_network::Entity::find_by_id(network_id).one(db).await? else {
            return Ok(Err(invalid("networkId", "NOT_FOUND", "no such learning network")));
        };
        rule!(
            n.coordinator_id == caller.org.id || is_member(db, n.id, caller.org.id).await?,
            LearningError::NotAMember(caller.org.name.clone())
        );
    }
    let title = check!(text("title", &new.title, 300));
    let summary = check!(text("summary", &new.summary, 20_000));
    let mut lessons = Vec::with_capacity(new.lessons.len());
    for (phase, lesson) in &new.lessons {
        rule!(*phase != Phase::OnHold, invalid("lessons", "INVALID_PHASE", "a lesson concerns a phase of the process, not ON_HOLD"));
        lessons.push((*phase, check!(text("lessons", lesson, 4000))));
    }
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
    Ok(Ok(report))
}

/// A municipality that follows (or takes part in) a procurement starts its own from it: the
/// service journey, needs and user stories are copied, each with its provenance, and the reuse
/// is recorded so the source shows who reused it.
pub async fn reuse<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    source_id: i64,
    title: &str,
    started_on: NaiveDate,
) -> RuleResult<procurement_reuse::Model> {
    rule!(caller.org.kind == OrganizationKind::Municipality, LearningError::NotAMunicipality(caller.org.name.clone()));
    let Some(source) = procurement::Entity::find_by_id(source_id).one(db).await? else {
        return Ok(Err(invalid("sourceProcurementId", "NOT_FOUND", "no such procurement")));
    };
    let follows = participant::Entity::find()
        .filter(participant::Column::ProcurementId.eq(source.id))
        .filter(participant::Column::OrganizationId.eq(caller.org.id))
        .count(db)
        .await?
        > 0;
    rule!(follows, LearningError::NotFollowing);
    let lead = organization::Entity::find_by_id(source.lead_id).one(db).await?.ok_or_else(|| ApiError::internal("dangling lead"))?;
    let provenance = format!("reused from «{}» led by {}", source.title, lead.name);
    let copy = check!(
        procurement_rules::create(db, caller, NewProcurement { title: title.to_string(), category: source.category, started_on }).await?
    );
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
    let mut step_map = std::collections::HashMap::new();
    for step in steps {
        let copied = check!(procurement_rules::add_journey_step(db, caller, copy.id, &step.title, step.description.clone()).await?);
        step_map.insert(step.id, copied.id);
        record(ReusedKind::JourneyStep, step.id, copied.id, copied.title.clone()).insert(db).await?;
    }
    let needs = need::Entity::find()
        .filter(need::Column::ProcurementId.eq(source.id))
        .order_by_asc(need::Column::Id)
        .all(db)
        .await?;
    for n in needs {
        let step = n.journey_step_id.and_then(|s| step_map.get(&s).copied());
        let copied = check!(procurement_rules::add_need(db, caller, copy.id, &n.description, step).await?);
        record(ReusedKind::Need, n.id, copied.id, copied.description.clone()).insert(db).await?;
    }
    let stories = user_story::Entity::find()
        .filter(user_story::Column::ProcurementId.eq(source.id))
        .order_by_asc(user_story::Column::Id)
        .all(db)
        .await?;
    for s in stories {
        let criteria: Vec<String> = serde_json::from_str(&s.acceptance_criteria).unwrap_or_default();
        let copied = check!(
            procurement_rules::add_user_story(db, caller, copy.id, NewUserStory {
                code: s.code.clone(),
                title: s.title.clone(),
                narrative: s.narrative.clone(),
                acceptance_criteria: criteria,
            })
            .await?
        );
        record(ReusedKind::UserStory, s.id, copied.id, format!("{} {}", copied.code, copied.title)).insert(db).await?;
    }
    Ok(Ok(reuse))
}
