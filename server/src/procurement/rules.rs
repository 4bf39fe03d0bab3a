//! The business rules of a procurement, independent of GraphQL. Every function runs inside the
//! caller's transaction and refuses a broken rule with `Refusal::Rule(ProcurementError)` — the
//! transaction is then rolled back, so a refused change writes nothing.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};

use super::model::{
    ActivityKind, Category, ParticipantRole, activity_attendee, award, dialogue_activity, evaluation_criterion,
    journey_step, need, participant, phase_transition, procurement, score, solution_sketch, tender, tender_response,
    user_story,
};
use super::phase::{Phase, PhaseError, PhaseState, transition};
use super::values::{CriterionName, Reference, Score, StoryCode, Weight};
use crate::auth::Caller;
use crate::errors::{ApiError, Invalid, Refusal, RuleViolation, ensure, refuse};
use crate::money::Nok;
use crate::organizations::{OrganizationKind, model as organization};
use crate::text::{LongText, Paragraph, Title};

/// Business-rule violations, each with the input field it concerns and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, RuleViolation)]
pub enum ProcurementError {
    #[error(transparent)]
    #[violation(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    #[violation(transparent)]
    Phase(#[from] PhaseError),
    #[error("only the lead municipality's procurement officers may {0}")]
    #[violation(field = "procurementId", code = "NOT_LEAD")]
    NotLead(&'static str),
    #[error("{0} is not a municipality")]
    #[violation(field = "organizationId", code = "NOT_A_MUNICIPALITY")]
    NotAMunicipality(String),
    #[error("{0} is not a supplier")]
    #[violation(field = "", code = "NOT_A_SUPPLIER")]
    NotASupplier(String),
    #[error("{0} already takes part in this procurement")]
    #[violation(field = "organizationId", code = "ALREADY_PARTICIPANT")]
    AlreadyParticipant(String),
    #[error("this can only be done in the {expected:?} phase; the procurement is in {actual:?}")]
    #[violation(field = "procurementId", code = "WRONG_PHASE")]
    WrongPhase { expected: Phase, actual: Phase },
    #[error("entering competition needs at least one user story")]
    #[violation(field = "phase", code = "NO_USER_STORIES")]
    NoUserStories,
    #[error("entering implementation needs at least one award")]
    #[violation(field = "phase", code = "NO_AWARDS")]
    NoAwards,
    #[error("user story code {0} is already used in this procurement")]
    #[violation(field = "code", code = "DUPLICATE_USER_STORY")]
    DuplicateUserStory(String),
    #[error("the notice is published; user stories and criteria are fixed")]
    #[violation(field = "procurementId", code = "NOTICE_PUBLISHED")]
    NoticeAlreadyPublished,
    #[error("the notice is not published yet")]
    #[violation(field = "procurementId", code = "NOTICE_NOT_PUBLISHED")]
    NoticeNotPublished,
    #[error("the tender deadline {0} has passed")]
    #[violation(field = "procurementId", code = "DEADLINE_PASSED")]
    DeadlinePassed(DateTime<Utc>),
    #[error("your organisation has already submitted a tender")]
    #[violation(field = "procurementId", code = "TENDER_EXISTS")]
    TenderExists,
    #[error("evaluation weights would add up to {0}%; they may not exceed 100%")]
    #[violation(field = "weight", code = "WEIGHTS_OVER_100")]
    WeightsOverHundred(i32),
    #[error("user story {0} is already awarded")]
    #[violation(field = "userStoryId", code = "ALREADY_AWARDED")]
    AlreadyAwarded(String),
    #[error("an award already has its framework agreement")]
    #[violation(field = "awardId", code = "AGREEMENT_EXISTS")]
    AgreementExists,
}

/// What a procurement rule returns: its value, or why not.
pub type RuleResult<T> = crate::errors::RuleResult<T, ProcurementError>;

pub fn state_of(p: &procurement::Model) -> PhaseState {
    match (p.phase, p.resume_phase) {
        (Phase::OnHold, Some(resume_to)) => {
            PhaseState::OnHold { resume_to, reason: p.hold_reason.clone().unwrap_or_default() }
        }
        (phase, _) => PhaseState::Active(phase),
    }
}

/// The procurement, for a change only its lead may make.
async fn led_by<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    what: &'static str,
) -> RuleResult<procurement::Model> {
    let Some(p) = procurement::Entity::find_by_id(procurement_id).one(db).await? else {
        return refuse(Invalid::new("procurementId", "NOT_FOUND", "no such procurement"));
    };
    ensure(p.lead_id == caller.org.id, ProcurementError::NotLead(what))?;
    Ok(p)
}

fn require_phase(p: &procurement::Model, expected: Phase) -> RuleResult<()> {
    ensure(p.phase == expected, ProcurementError::WrongPhase { expected, actual: p.phase })
}

async fn record_transition<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    from: Option<Phase>,
    to: Phase,
    reason: Option<String>,
    effective_on: NaiveDate,
) -> Result<(), ApiError> {
    phase_transition::ActiveModel {
        procurement_id: Set(procurement_id),
        from_phase: Set(from),
        to_phase: Set(to),
        reason: Set(reason),
        effective_on: Set(effective_on),
        actor_subject: Set(caller.subject.clone()),
        actor_org_number: Set(Some(caller.org_number.clone())),
        recorded_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

pub struct NewProcurement {
    pub title: Title,
    pub category: Category,
    pub started_on: NaiveDate,
}

/// A municipality's procurement officer starts a procurement; the municipality leads it.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    new: NewProcurement,
) -> RuleResult<procurement::Model> {
    ensure(
        caller.org.kind == OrganizationKind::Municipality,
        ProcurementError::NotAMunicipality(caller.org.name.clone()),
    )?;
    let p = procurement::ActiveModel {
        title: Set(new.title.into_string()),
        category: Set(new.category),
        lead_id: Set(caller.org.id),
        phase: Set(Phase::Needs),
        created_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    participant::ActiveModel {
        procurement_id: Set(p.id),
        organization_id: Set(caller.org.id),
        role: Set(ParticipantRole::Lead),
        joined_on: Set(new.started_on),
        ..Default::default()
    }
    .insert(db)
    .await?;
    record_transition(db, caller, p.id, None, Phase::Needs, None, new.started_on).await?;
    Ok(p)
}

pub async fn add_participant<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    organization_id: i64,
    role: ParticipantRole,
    joined_on: NaiveDate,
) -> RuleResult<participant::Model> {
    let p = led_by(db, caller, procurement_id, "add participants").await?;
    ensure(p.phase != Phase::Closed, ProcurementError::Phase(PhaseError::Closed))?;
    ensure(role != ParticipantRole::Lead, Invalid::new("role", "ONE_LEAD", "a procurement has exactly one lead"))?;
    let Some(org) = organization::Entity::find_by_id(organization_id).one(db).await? else {
        return refuse(Invalid::new("organizationId", "NOT_FOUND", "no such organisation"));
    };
    ensure(org.kind == OrganizationKind::Municipality, ProcurementError::NotAMunicipality(org.name.clone()))?;
    let existing = participant::Entity::find()
        .filter(participant::Column::ProcurementId.eq(p.id))
        .filter(participant::Column::OrganizationId.eq(org.id))
        .count(db)
        .await?;
    ensure(existing == 0, ProcurementError::AlreadyParticipant(org.name.clone()))?;
    let row = participant::ActiveModel {
        procurement_id: Set(p.id),
        organization_id: Set(org.id),
        role: Set(role),
        joined_on: Set(joined_on),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

pub async fn change_phase<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    to: Phase,
    reason: Option<Paragraph>,
    effective_on: NaiveDate,
) -> RuleResult<procurement::Model> {
    let p = led_by(db, caller, procurement_id, "change the phase").await?;
    let next = transition(&state_of(&p), to, reason.as_ref()).map_err(|e| Refusal::Rule(e.into()))?;
    if to == Phase::Competition && p.phase == Phase::Dialogue {
        let stories = user_story::Entity::find().filter(user_story::Column::ProcurementId.eq(p.id)).count(db).await?;
        ensure(stories > 0, ProcurementError::NoUserStories)?;
    }
    if to == Phase::Implementation && p.phase == Phase::Competition {
        let awards = award::Entity::find().filter(award::Column::ProcurementId.eq(p.id)).count(db).await?;
        ensure(awards > 0, ProcurementError::NoAwards)?;
    }
    let from = p.phase;
    let mut active: procurement::ActiveModel = p.into();
    match &next {
        PhaseState::Active(phase) => {
            active.phase = Set(*phase);
            active.resume_phase = Set(None);
            active.hold_reason = Set(None);
        }
        PhaseState::OnHold { resume_to, reason } => {
            active.phase = Set(Phase::OnHold);
            active.resume_phase = Set(Some(*resume_to));
            active.hold_reason = Set(Some(reason.clone()));
        }
    }
    let updated = active.update(db).await?;
    let reason = match next {
        PhaseState::OnHold { reason, .. } => Some(reason),
        PhaseState::Active(_) => reason.map(Paragraph::into_string),
    };
    record_transition(db, caller, updated.id, Some(from), to, reason, effective_on).await?;
    Ok(updated)
}

/// A competition notice whose tender deadline falls on a day after its publication.
pub struct NewNotice {
    reference: Reference,
    published_on: NaiveDate,
    tender_deadline: DateTime<Utc>,
}

impl NewNotice {
    pub fn new(
        reference: Reference,
        published_on: NaiveDate,
        tender_deadline: DateTime<Utc>,
    ) -> Result<NewNotice, Invalid> {
        if tender_deadline.date_naive() > published_on {
            Ok(NewNotice { reference, published_on, tender_deadline })
        } else {
            let message = "the tender deadline must be after the notice is published";
            Err(Invalid::new("tenderDeadline", "DEADLINE_BEFORE_NOTICE", message))
        }
    }
}

pub async fn publish_notice<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    notice: NewNotice,
) -> RuleResult<procurement::Model> {
    let p = led_by(db, caller, procurement_id, "publish the notice").await?;
    require_phase(&p, Phase::Competition)?;
    ensure(p.notice_reference.is_none(), ProcurementError::NoticeAlreadyPublished)?;
    let mut active: procurement::ActiveModel = p.into();
    active.notice_reference = Set(Some(notice.reference.into_string()));
    active.notice_published_on = Set(Some(notice.published_on));
    active.tender_deadline = Set(Some(notice.tender_deadline.fixed_offset()));
    Ok(active.update(db).await?)
}

pub async fn add_journey_step<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    title: Title,
    description: Option<Paragraph>,
) -> RuleResult<journey_step::Model> {
    let p = led_by(db, caller, procurement_id, "edit the service journey").await?;
    let count = journey_step::Entity::find().filter(journey_step::Column::ProcurementId.eq(p.id)).count(db).await?;
    let row = journey_step::ActiveModel {
        procurement_id: Set(p.id),
        position: Set(count as i32 + 1),
        title: Set(title.into_string()),
        description: Set(description.map(Paragraph::into_string)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// Records a need, optionally on the step of the service journey at `journey_step_position`.
pub async fn add_need<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    description: Paragraph,
    journey_step_position: Option<i32>,
) -> RuleResult<need::Model> {
    let p = led_by(db, caller, procurement_id, "record needs").await?;
    let journey_step_id = match journey_step_position {
        None => None,
        Some(position) => {
            let step = journey_step::Entity::find()
                .filter(journey_step::Column::ProcurementId.eq(p.id))
                .filter(journey_step::Column::Position.eq(position))
                .one(db)
                .await?;
            let Some(step) = step else {
                return refuse(Invalid::not_found(
                    "journeyStepPosition",
                    format!("this procurement's service journey has no step at position {position}"),
                ));
            };
            Some(step.id)
        }
    };
    let row = need::ActiveModel {
        procurement_id: Set(p.id),
        journey_step_id: Set(journey_step_id),
        description: Set(description.into_string()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// A dialogue activity as parsed at the edge: attendees sent at least one person when a number
/// is given.
pub struct NewActivity {
    pub kind: ActivityKind,
    pub title: Title,
    pub held_on: NaiveDate,
    pub questions_sent_in_advance: Option<bool>,
    pub attendees: Vec<(i64, Option<i32>)>,
}

pub async fn add_activity<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    new: NewActivity,
) -> RuleResult<dialogue_activity::Model> {
    let p = led_by(db, caller, procurement_id, "record dialogue activities").await?;
    let mut seen = std::collections::BTreeSet::new();
    for (org_id, _) in &new.attendees {
        ensure(
            seen.insert(*org_id),
            Invalid::new("attendees", "DUPLICATE_ATTENDEE", "an organisation is listed twice"),
        )?;
        let exists = organization::Entity::find_by_id(*org_id).count(db).await? > 0;
        ensure(exists, Invalid::new("attendees", "NOT_FOUND", "an attending organisation does not exist"))?;
    }
    let activity = dialogue_activity::ActiveModel {
        procurement_id: Set(p.id),
        kind: Set(new.kind),
        title: Set(new.title.into_string()),
        held_on: Set(new.held_on),
        questions_sent_in_advance: Set(new.questions_sent_in_advance),
        ..Default::default()
    }
    .insert(db)
    .await?;
    for (org_id, people) in new.attendees {
        activity_attendee::ActiveModel {
            activity_id: Set(activity.id),
            organization_id: Set(org_id),
            people: Set(people),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(activity)
}

pub struct NewSketch {
    pub title: Title,
    pub summary: LongText,
    pub submitted_on: NaiveDate,
}

pub async fn submit_sketch<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    sketch: NewSketch,
) -> RuleResult<solution_sketch::Model> {
    ensure(caller.org.kind == OrganizationKind::Supplier, ProcurementError::NotASupplier(caller.org.name.clone()))?;
    let Some(p) = procurement::Entity::find_by_id(procurement_id).one(db).await? else {
        return refuse(Invalid::new("procurementId", "NOT_FOUND", "no such procurement"));
    };
    require_phase(&p, Phase::Dialogue)?;
    let row = solution_sketch::ActiveModel {
        procurement_id: Set(p.id),
        supplier_id: Set(caller.org.id),
        title: Set(sketch.title.into_string()),
        summary: Set(sketch.summary.into_string()),
        submitted_on: Set(sketch.submitted_on),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

pub struct NewUserStory {
    pub code: StoryCode,
    pub title: Title,
    pub narrative: LongText,
    pub acceptance_criteria: Vec<Paragraph>,
}

pub async fn add_user_story<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    new: NewUserStory,
) -> RuleResult<user_story::Model> {
    let p = led_by(db, caller, procurement_id, "write user stories").await?;
    ensure(p.notice_reference.is_none(), ProcurementError::NoticeAlreadyPublished)?;
    ensure(
        matches!(p.phase, Phase::Needs | Phase::Dialogue | Phase::Competition),
        ProcurementError::WrongPhase { expected: Phase::Competition, actual: p.phase },
    )?;
    let code = new.code.as_str();
    let taken = user_story::Entity::find()
        .filter(user_story::Column::ProcurementId.eq(p.id))
        .filter(user_story::Column::Code.eq(code))
        .count(db)
        .await?;
    ensure(taken == 0, ProcurementError::DuplicateUserStory(code.to_string()))?;
    let criteria: Vec<&str> = new.acceptance_criteria.iter().map(Paragraph::as_str).collect();
    let row = user_story::ActiveModel {
        procurement_id: Set(p.id),
        code: Set(code.to_string()),
        title: Set(new.title.into_string()),
        narrative: Set(new.narrative.into_string()),
        acceptance_criteria: Set(serde_json::to_string(&criteria).expect("strings serialise")),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

pub async fn add_criterion<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    name: CriterionName,
    weight: Weight,
) -> RuleResult<evaluation_criterion::Model> {
    let p = led_by(db, caller, procurement_id, "set evaluation criteria").await?;
    ensure(p.notice_reference.is_none(), ProcurementError::NoticeAlreadyPublished)?;
    let weight = weight.percent();
    let existing: i32 = evaluation_criterion::Entity::find()
        .filter(evaluation_criterion::Column::ProcurementId.eq(p.id))
        .all(db)
        .await?
        .iter()
        .map(|c| c.weight)
        .sum();
    ensure(existing + weight <= 100, ProcurementError::WeightsOverHundred(existing + weight))?;
    let row = evaluation_criterion::ActiveModel {
        procurement_id: Set(p.id),
        name: Set(name.into_string()),
        weight: Set(weight),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// A tender's answer to one user story, with a purchase price, a monthly lease price or both.
pub struct NewResponse {
    user_story_id: i64,
    solution: LongText,
    purchase_price: Option<Nok>,
    lease_price_per_month: Option<Nok>,
}

impl NewResponse {
    pub fn new(
        user_story_id: i64,
        solution: LongText,
        purchase_price: Option<Nok>,
        lease_price_per_month: Option<Nok>,
    ) -> Result<NewResponse, Invalid> {
        if purchase_price.is_none() && lease_price_per_month.is_none() {
            let message = "each response needs a purchase price, a monthly lease price or both";
            return Err(Invalid::new("responses", "NO_PRICE", message));
        }
        Ok(NewResponse { user_story_id, solution, purchase_price, lease_price_per_month })
    }
}

/// A supplier's sealed tender: one response per user story it answers, before the deadline.
pub async fn submit_tender<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    procurement_id: i64,
    responses: Vec<NewResponse>,
    now: DateTime<Utc>,
) -> RuleResult<tender::Model> {
    ensure(caller.org.kind == OrganizationKind::Supplier, ProcurementError::NotASupplier(caller.org.name.clone()))?;
    let Some(p) = procurement::Entity::find_by_id(procurement_id).one(db).await? else {
        return refuse(Invalid::new("procurementId", "NOT_FOUND", "no such procurement"));
    };
    require_phase(&p, Phase::Competition)?;
    let Some(deadline) = p.tender_deadline else { return refuse(ProcurementError::NoticeNotPublished) };
    let deadline = deadline.with_timezone(&Utc);
    ensure(now < deadline, ProcurementError::DeadlinePassed(deadline))?;
    ensure(
        !responses.is_empty(),
        Invalid::new("responses", "NO_RESPONSES", "a tender answers at least one user story"),
    )?;
    let stories: Vec<i64> = user_story::Entity::find()
        .filter(user_story::Column::ProcurementId.eq(p.id))
        .all(db)
        .await?
        .iter()
        .map(|s| s.id)
        .collect();
    let mut answered = std::collections::BTreeSet::new();
    for r in &responses {
        ensure(
            stories.contains(&r.user_story_id),
            Invalid::new("responses", "NOT_FOUND", "a response names a user story of another procurement"),
        )?;
        ensure(
            answered.insert(r.user_story_id),
            Invalid::new("responses", "DUPLICATE_RESPONSE", "a user story is answered twice"),
        )?;
    }
    let existing = tender::Entity::find()
        .filter(tender::Column::ProcurementId.eq(p.id))
        .filter(tender::Column::SupplierId.eq(caller.org.id))
        .count(db)
        .await?;
    ensure(existing == 0, ProcurementError::TenderExists)?;
    let t = tender::ActiveModel {
        procurement_id: Set(p.id),
        supplier_id: Set(caller.org.id),
        submitted_at: Set(now.fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    for r in responses {
        tender_response::ActiveModel {
            tender_id: Set(t.id),
            user_story_id: Set(r.user_story_id),
            solution: Set(r.solution.into_string()),
            purchase_price_ore: Set(r.purchase_price.map(Nok::ore)),
            lease_price_ore_per_month: Set(r.lease_price_per_month.map(Nok::ore)),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(t)
}

/// The procurement a tender response belongs to, for a change only its lead may make after the
/// deadline. Until then the response is sealed, and to anyone but the lead it is never visible:
/// either way it answers exactly like a missing one, so ids cannot be probed for how many sealed
/// tenders exist or whose they are.
async fn response_after_deadline<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    response_id: i64,
    field: &'static str,
    now: DateTime<Utc>,
) -> RuleResult<(procurement::Model, tender_response::Model)> {
    let not_found = || refuse(Invalid::new(field, "NOT_FOUND", "no such tender response"));
    let Some(response) = tender_response::Entity::find_by_id(response_id).one(db).await? else {
        return not_found();
    };
    let t = tender::Entity::find_by_id(response.tender_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("response without tender"))?;
    let p = procurement::Entity::find_by_id(t.procurement_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("tender without procurement"))?;
    let opened = p.tender_deadline.is_some_and(|deadline| now >= deadline.with_timezone(&Utc));
    if p.lead_id != caller.org.id || !opened {
        return not_found();
    }
    Ok((p, response))
}

/// Scores one tender response against the procurement's criteria (0–10, two decimals).
pub async fn score_response<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    response_id: i64,
    scores: Vec<(i64, Score)>,
    now: DateTime<Utc>,
) -> RuleResult<tender_response::Model> {
    let (p, response) = response_after_deadline(db, caller, response_id, "tenderResponseId", now).await?;
    let criteria: Vec<i64> = evaluation_criterion::Entity::find()
        .filter(evaluation_criterion::Column::ProcurementId.eq(p.id))
        .all(db)
        .await?
        .iter()
        .map(|c| c.id)
        .collect();
    for (criterion_id, _) in &scores {
        ensure(
            criteria.contains(criterion_id),
            Invalid::new("scores", "NOT_FOUND", "a score names a criterion of another procurement"),
        )?;
    }
    for (criterion_id, value) in scores {
        score::Entity::delete_many()
            .filter(score::Column::TenderResponseId.eq(response.id))
            .filter(score::Column::CriterionId.eq(criterion_id))
            .exec(db)
            .await?;
        score::ActiveModel {
            tender_response_id: Set(response.id),
            criterion_id: Set(criterion_id),
            hundredths: Set(value.hundredths()),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(response)
}

pub async fn award<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    response_id: i64,
    awarded_on: NaiveDate,
    now: DateTime<Utc>,
) -> RuleResult<award::Model> {
    let (p, response) = response_after_deadline(db, caller, response_id, "tenderResponseId", now).await?;
    require_phase(&p, Phase::Competition)?;
    let story = user_story::Entity::find_by_id(response.user_story_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("response without story"))?;
    let taken = award::Entity::find().filter(award::Column::UserStoryId.eq(story.id)).count(db).await?;
    ensure(taken == 0, ProcurementError::AlreadyAwarded(story.code.clone()))?;
    let row = award::ActiveModel {
        procurement_id: Set(p.id),
        user_story_id: Set(story.id),
        tender_response_id: Set(response.id),
        awarded_on: Set(awarded_on),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// A tender response's standing on one user story.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub response: tender_response::Model,
    /// Weighted score 0–10: Σ(weight × score) / Σ(weights of all criteria).
    pub weighted_score: f64,
    pub rank: usize,
}

/// Ranks responses by weighted score, highest first; equal scores share a rank. Criteria a
/// response has no score for count as zero, so an unscored response cannot win by omission.
pub fn rank(
    responses: &[tender_response::Model],
    criteria: &[evaluation_criterion::Model],
    scores: &[score::Model],
) -> Vec<Ranked> {
    let total_weight: i64 = criteria.iter().map(|c| i64::from(c.weight)).sum();
    let mut ranked: Vec<(tender_response::Model, i64)> = responses
        .iter()
        .map(|r| {
            let points: i64 = criteria
                .iter()
                .map(|c| {
                    let hundredths = scores
                        .iter()
                        .find(|s| s.tender_response_id == r.id && s.criterion_id == c.id)
                        .map_or(0, |s| i64::from(s.hundredths));
                    i64::from(c.weight) * hundredths
                })
                .sum();
            (r.clone(), points)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.id.cmp(&b.0.id)));
    let mut out = Vec::with_capacity(ranked.len());
    for (i, (response, points)) in ranked.iter().enumerate() {
        let rank = match out.last() {
            Some(Ranked { rank, .. }) if ranked[i - 1].1 == *points => *rank,
            _ => i + 1,
        };
        let weighted_score = if total_weight == 0 { 0.0 } else { *points as f64 / total_weight as f64 / 100.0 };
        out.push(Ranked { response: response.clone(), weighted_score, rank });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(id: i64) -> tender_response::Model {
        tender_response::Model {
            id,
            tender_id: id,
            user_story_id: 1,
            solution: String::new(),
            purchase_price_ore: Some(1),
            lease_price_ore_per_month: None,
        }
    }

    fn criterion(id: i64, weight: i32) -> evaluation_criterion::Model {
        evaluation_criterion::Model { id, procurement_id: 1, name: String::new(), weight }
    }

    fn score(response: i64, criterion: i64, hundredths: i32) -> score::Model {
        score::Model { id: 0, tender_response_id: response, criterion_id: criterion, hundredths }
    }

    #[test]
    fn ranking_weighs_scores_and_shares_ranks_on_ties() {
        let criteria = [criterion(1, 60), criterion(2, 40)];
        let responses = [response(1), response(2), response(3)];
        let scores = [
            score(1, 1, 800),
            score(1, 2, 500), // 6.8
            score(2, 1, 600),
            score(2, 2, 900), // 7.2
            score(3, 1, 800),
            score(3, 2, 500), // 6.8
        ];
        let ranked = rank(&responses, &criteria, &scores);
        let order: Vec<(i64, usize)> = ranked.iter().map(|r| (r.response.id, r.rank)).collect();
        assert_eq!(order, [(2, 1), (1, 2), (3, 2)]);
        assert!((ranked[0].weighted_score - 7.2).abs() < 1e-9);
    }

    #[test]
    fn a_missing_score_counts_as_zero() {
        let criteria = [criterion(1, 50), criterion(2, 50)];
        let ranked =
            rank(&[response(1), response(2)], &criteria, &[score(1, 1, 1000), score(2, 1, 600), score(2, 2, 600)]);
        assert_eq!(ranked[0].response.id, 2);
    }
}
