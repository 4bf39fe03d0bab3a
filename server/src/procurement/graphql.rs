//! GraphQL face of procurements: the objects, the `procurements` connection and the mutations
//! of the needs, dialogue and competition phases.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{ExprTrait, Query};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Value};

use super::access::Access;
use super::model::{
    ActivityKind, Category, ParticipantRole, activity_attendee, award, dialogue_activity, evaluation_criterion,
    journey_step, need, participant, phase_transition, procurement, solution_sketch, tender, tender_response,
    user_story,
};
use super::phase::Phase;
use super::rules::{self, NewActivity, NewProcurement, NewResponse, NewUserStory, RuleResult};
use crate::agreements::graphql::FrameworkAgreement;
use crate::agreements::model::framework_agreement;
use crate::auth::Role;
use crate::errors::{ApiError, Invalid, bounded};
use crate::graphql::connection::{
    Cursor, OrderDirection, PageRequest, TotalCount, fetch_page, page_complexity, page_in_memory,
};
use crate::graphql::context::{caller, in_transaction, load_existing, load_one, session, state, today};
use crate::graphql::errors::payload;
use crate::graphql::loaders::*;
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, global_id, input_row, row_id};
use crate::money::{Money, MoneyInput, Nok};
use crate::organizations::{Organization, model as organization};

type Page<T> = Connection<String, T, TotalCount>;


async fn procurement_row(ctx: &Context<'_>, id: i64) -> Result<procurement::Model> {
    Ok(load_existing(ctx, ProcurementById(id), "procurement").await?)
}

/// A joint procurement, from needs to call-offs.
#[derive(Clone)]
pub struct Procurement(pub procurement::Model);

/// Why and from where a procurement was put on hold.
#[derive(SimpleObject)]
pub struct OnHold {
    pub reason: String,
    /// The phase it resumes to.
    pub resume_to: Phase,
}

/// The competition notice (Doffin).
#[derive(SimpleObject)]
pub struct Notice {
    /// Doffin reference.
    pub reference: String,
    pub published_on: NaiveDate,
    /// Tenders are sealed until this moment and refused after it.
    pub tender_deadline: DateTime<Utc>,
}

/// Derived from the participating municipalities (lead and participants; followers do not buy
/// and are not counted).
#[derive(SimpleObject)]
pub struct ProcurementTotals {
    pub municipalities: u64,
    pub counties: u64,
    /// Sum of the known populations.
    pub inhabitants: u64,
    /// Municipalities whose population is unknown (not in the sum).
    pub municipalities_with_unknown_population: u64,
    pub followers: u64,
}

#[Object]
impl Procurement {
    pub async fn id(&self) -> ID {
        global_id(NodeType::Procurement, self.0.id)
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn category(&self) -> Category {
        self.0.category
    }

    async fn phase(&self) -> Phase {
        self.0.phase
    }

    /// Set while the procurement is ON_HOLD.
    async fn on_hold(&self) -> Option<OnHold> {
        match (self.0.phase, &self.0.hold_reason, self.0.resume_phase) {
            (Phase::OnHold, Some(reason), Some(resume_to)) => Some(OnHold { reason: reason.clone(), resume_to }),
            _ => None,
        }
    }

    /// The lead municipality.
    async fn lead(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.lead_id).await
    }

    async fn notice(&self) -> Option<Notice> {
        match (&self.0.notice_reference, self.0.notice_published_on, self.0.tender_deadline) {
            (Some(reference), Some(published_on), Some(deadline)) => Some(Notice {
                reference: reference.clone(),
                published_on,
                tender_deadline: deadline.with_timezone(&Utc),
            }),
            _ => None,
        }
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.with_timezone(&Utc)
    }

    /// Municipalities taking part, with their role and join date. Signed-in users only.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn participants(
        &self,
        ctx: &Context<'_>,
        role: Option<ParticipantRole>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Option<Page<Participant>>> {
        Access::of(ctx, &self.0).await?.require_signed_in()?;
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<Participant> = load_one(ctx, ParticipantsOf(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|p| role.is_none_or(|r| p.role == r))
            .map(Participant)
            .collect();
        Ok(Some(page_in_memory(&rows, |p| p.0.id, &page)))
    }

    /// Municipalities, counties and inhabitants covered. Signed-in users only.
    async fn totals(&self, ctx: &Context<'_>) -> Result<Option<ProcurementTotals>> {
        Access::of(ctx, &self.0).await?.require_signed_in()?;
        let members = load_one(ctx, ParticipantsOf(self.0.id)).await?.unwrap_or_default();
        let session = session(ctx);
        let buyers: Vec<i64> =
            members.iter().filter(|m| m.role != ParticipantRole::Follower).map(|m| m.organization_id).collect();
        let orgs = session.loader.load_many(buyers.iter().map(|id| OrganizationById(*id))).await.map_err(ApiError::internal)?;
        let counties: std::collections::BTreeSet<&str> = orgs.values().filter_map(|o| o.county.as_deref()).collect();
        Ok(Some(ProcurementTotals {
            municipalities: orgs.len() as u64,
            counties: counties.len() as u64,
            inhabitants: orgs.values().filter_map(|o| o.population).map(|p| p as u64).sum(),
            municipalities_with_unknown_population: orgs.values().filter(|o| o.population.is_none()).count() as u64,
            followers: members.iter().filter(|m| m.role == ParticipantRole::Follower).count() as u64,
        }))
    }

    /// Every phase change, oldest first, with who made it and when. Signed-in users only.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn phase_history(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Option<Page<PhaseChange>>> {
        Access::of(ctx, &self.0).await?.require_signed_in()?;
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<PhaseChange> =
            load_one(ctx, TransitionsOf(self.0.id)).await?.unwrap_or_default().into_iter().map(PhaseChange).collect();
        Ok(Some(page_in_memory(&rows, |p| p.0.id, &page)))
    }

    /// The common service journey (tjenestereise) from the needs phase, in order.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn journey_steps(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Option<Page<JourneyStep>>> {
        Access::of(ctx, &self.0).await?.require_signed_in()?;
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<JourneyStep> =
            load_one(ctx, JourneyStepsOf(self.0.id)).await?.unwrap_or_default().into_iter().map(JourneyStep).collect();
        Ok(Some(page_in_memory(&rows, |s| s.0.id, &page)))
    }

    /// Needs mapped in the needs phase.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn needs(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Option<Page<Need>>> {
        Access::of(ctx, &self.0).await?.require_signed_in()?;
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<Need> = load_one(ctx, NeedsOf(self.0.id)).await?.unwrap_or_default().into_iter().map(Need).collect();
        Ok(Some(page_in_memory(&rows, |s| s.0.id, &page)))
    }

    /// Workshops, the dialogue conference, one-to-one meetings and learning arenas.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn dialogue_activities(
        &self,
        ctx: &Context<'_>,
        kind: Option<ActivityKind>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Option<Page<DialogueActivity>>> {
        Access::of(ctx, &self.0).await?.require_signed_in()?;
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<DialogueActivity> = load_one(ctx, ActivitiesOf(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|a| kind.is_none_or(|k| a.kind == k))
            .map(DialogueActivity)
            .collect();
        Ok(Some(page_in_memory(&rows, |s| s.0.id, &page)))
    }

    /// Suppliers' written solution sketches. The procurement's municipalities and advisers see
    /// all; a supplier sees only its own.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn solution_sketches(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Option<Page<SolutionSketch>>> {
        let access = Access::of(ctx, &self.0).await?;
        access.require_signed_in()?;
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<SolutionSketch> = load_one(ctx, SketchesOf(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|s| access.can_see_sketch_of(s.supplier_id))
            .map(SolutionSketch)
            .collect();
        Ok(Some(page_in_memory(&rows, |s| s.0.id, &page)))
    }

    /// The user stories tenders answer: the lots of the competition. Public with the notice.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn user_stories(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<UserStory>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<UserStory> =
            load_one(ctx, UserStoriesOf(self.0.id)).await?.unwrap_or_default().into_iter().map(UserStory).collect();
        Ok(page_in_memory(&rows, |s| s.0.id, &page))
    }

    /// Evaluation criteria with their weights (percent). Public with the notice.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn evaluation_criteria(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<EvaluationCriterion>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<EvaluationCriterion> = load_one(ctx, CriteriaOf(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(EvaluationCriterion)
            .collect();
        Ok(page_in_memory(&rows, |s| s.0.id, &page))
    }

    /// Tenders you may see: your own as a supplier; all of them, after the deadline, as the lead's
    /// procurement officer. A competitor's tender is never listed.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn tenders(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<Tender>> {
        let access = Access::of(ctx, &self.0).await?;
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<Tender> = load_one(ctx, TendersOf(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|t| access.can_see_tender(t))
            .map(Tender)
            .collect();
        Ok(page_in_memory(&rows, |s| s.0.id, &page))
    }

    /// Awards, one per user story: published results, public.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn awards(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<Award>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<Award> = load_one(ctx, AwardsOf(self.0.id)).await?.unwrap_or_default().into_iter().map(Award).collect();
        Ok(page_in_memory(&rows, |s| s.0.id, &page))
    }

    /// Framework agreements that followed the awards.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn framework_agreements(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<FrameworkAgreement>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let rows: Vec<FrameworkAgreement> = load_one(ctx, AgreementsOf(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(FrameworkAgreement)
            .collect();
        Ok(page_in_memory(&rows, |s| s.0.id, &page))
    }

    /// This procurement as an OCDS 1.1 release package (the same document as
    /// `GET /ocds/procurements/{id}`).
    async fn ocds(&self, ctx: &Context<'_>) -> Result<Json<serde_json::Value>> {
        let options = super::ocds::public_options();
        let package = super::ocds::release_package(state(ctx).db.read(), self.0.id, &options)
            .await?
            .ok_or_else(|| ApiError::internal("procurement vanished"))?;
        Ok(Json(package))
    }
}

/// A municipality's part in a procurement.
#[derive(Clone)]
pub struct Participant(pub participant::Model);

#[Object]
impl Participant {
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.organization_id).await
    }

    async fn role(&self) -> ParticipantRole {
        self.0.role
    }

    async fn joined_on(&self) -> NaiveDate {
        self.0.joined_on
    }
}

/// One recorded phase change.
#[derive(Clone)]
pub struct PhaseChange(pub phase_transition::Model);

#[Object]
impl PhaseChange {
    /// Null for the procurement's start.
    async fn from(&self) -> Option<Phase> {
        self.0.from_phase
    }

    async fn to(&self) -> Phase {
        self.0.to_phase
    }

    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// When the change took effect in the real process.
    async fn effective_on(&self) -> NaiveDate {
        self.0.effective_on
    }

    /// The token subject that made the change.
    async fn changed_by(&self) -> &str {
        &self.0.actor_subject
    }

    /// Organisation number the change was made for.
    async fn changed_by_org_number(&self) -> Option<&str> {
        self.0.actor_org_number.as_deref()
    }

    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at.with_timezone(&Utc)
    }
}

#[derive(Clone)]
pub struct JourneyStep(pub journey_step::Model);

#[Object]
impl JourneyStep {
    async fn position(&self) -> i32 {
        self.0.position
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
}

#[derive(Clone)]
pub struct Need(pub need::Model);

#[Object]
impl Need {
    async fn description(&self) -> &str {
        &self.0.description
    }

    /// The step of the service journey this need belongs to, if any.
    async fn journey_step(&self, ctx: &Context<'_>) -> Result<Option<JourneyStep>> {
        let Some(id) = self.0.journey_step_id else { return Ok(None) };
        Ok(Some(JourneyStep(load_existing(ctx, JourneyStepById(id), "journey step").await?)))
    }

    /// The journey step's database row id, if any: not a global id, and no use to a client.
    #[graphql(deprecation = "use journeyStep")]
    async fn journey_step_id(&self) -> Option<i64> {
        self.0.journey_step_id
    }
}

#[derive(Clone)]
pub struct DialogueActivity(pub dialogue_activity::Model);

/// An organisation at a dialogue activity, with how many people it sent when known.
#[derive(Clone)]
pub struct Attendee(pub activity_attendee::Model);

#[Object]
impl Attendee {
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.organization_id).await
    }

    async fn people(&self) -> Option<i32> {
        self.0.people
    }
}

#[Object]
impl DialogueActivity {
    async fn kind(&self) -> ActivityKind {
        self.0.kind
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn held_on(&self) -> NaiveDate {
        self.0.held_on
    }

    /// For one-to-one meetings: whether questions were sent to suppliers in advance.
    async fn questions_sent_in_advance(&self) -> Option<bool> {
        self.0.questions_sent_in_advance
    }

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
        Ok(page_in_memory(&rows, |s| s.0.id, &page))
    }
}

#[derive(Clone)]
pub struct SolutionSketch(pub solution_sketch::Model);

#[Object]
impl SolutionSketch {
    async fn supplier(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.supplier_id).await
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn summary(&self) -> &str {
        &self.0.summary
    }

    async fn submitted_on(&self) -> NaiveDate {
        self.0.submitted_on
    }
}

/// A user story (brukerhistorie): the lot a tender answers.
#[derive(Clone)]
pub struct UserStory(pub user_story::Model);

/// A tender response's standing on a user story.
pub struct RankedResponse {
    pub rank: usize,
    pub weighted_score: f64,
    pub response: tender_response::Model,
}

#[Object]
impl RankedResponse {
    /// 1 is best; equal scores share a rank.
    async fn rank(&self) -> usize {
        self.rank
    }

    /// Σ(weight × score) / Σ(weights), on the 0–10 scale.
    async fn weighted_score(&self) -> f64 {
        (self.weighted_score * 100.0).round() / 100.0
    }

    async fn response(&self) -> TenderResponse {
        TenderResponse(self.response.clone())
    }
}

#[Object]
impl UserStory {
    pub async fn id(&self) -> ID {
        global_id(NodeType::UserStory, self.0.id)
    }

    async fn code(&self) -> &str {
        &self.0.code
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn narrative(&self) -> &str {
        &self.0.narrative
    }

    async fn acceptance_criteria(&self) -> Vec<String> {
        serde_json::from_str(&self.0.acceptance_criteria).unwrap_or_default()
    }

    async fn procurement(&self, ctx: &Context<'_>) -> Result<Procurement> {
        Ok(Procurement(procurement_row(ctx, self.0.procurement_id).await?))
    }

    /// The award for this user story, once made.
    async fn award(&self, ctx: &Context<'_>) -> Result<Option<Award>> {
        Ok(load_one(ctx, AwardsForStory(self.0.id)).await?.unwrap_or_default().into_iter().next().map(Award))
    }

    /// Responses ranked by weighted score, computed from the criteria and scores. Only the lead's
    /// procurement officers see it, after the tender deadline; null for everyone else.
    async fn ranking(&self, ctx: &Context<'_>) -> Result<Option<Vec<RankedResponse>>> {
        let p = procurement_row(ctx, self.0.procurement_id).await?;
        if !Access::of(ctx, &p).await?.can_see_evaluation() {
            return Ok(None);
        }
        let responses = load_one(ctx, ResponsesToStory(self.0.id)).await?.unwrap_or_default();
        let criteria = load_one(ctx, CriteriaOf(p.id)).await?.unwrap_or_default();
        let scores = session(ctx)
            .loader
            .load_many(responses.iter().map(|r| ScoresOf(r.id)))
            .await
            .map_err(ApiError::internal)?
            .into_values()
            .flatten()
            .collect::<Vec<_>>();
        Ok(Some(
            rules::rank(&responses, &criteria, &scores)
                .into_iter()
                .map(|r| RankedResponse { rank: r.rank, weighted_score: r.weighted_score, response: r.response })
                .collect(),
        ))
    }
}

#[derive(Clone)]
pub struct EvaluationCriterion(pub evaluation_criterion::Model);

#[Object]
impl EvaluationCriterion {
    pub async fn id(&self) -> ID {
        global_id(NodeType::EvaluationCriterion, self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Percent.
    async fn weight(&self) -> i32 {
        self.0.weight
    }
}

/// A supplier's sealed tender.
#[derive(Clone)]
pub struct Tender(pub tender::Model);

#[Object]
impl Tender {
    pub async fn id(&self) -> ID {
        global_id(NodeType::Tender, self.0.id)
    }

    async fn supplier(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.supplier_id).await
    }

    async fn submitted_at(&self) -> DateTime<Utc> {
        self.0.submitted_at.with_timezone(&Utc)
    }

    async fn responses(&self, ctx: &Context<'_>) -> Result<Vec<TenderResponse>> {
        Ok(load_one(ctx, ResponsesOf(self.0.id)).await?.unwrap_or_default().into_iter().map(TenderResponse).collect())
    }
}

/// A tender's answer to one user story.
#[derive(Clone)]
pub struct TenderResponse(pub tender_response::Model);

/// One criterion's score for a response.
#[derive(SimpleObject)]
pub struct Score {
    pub criterion_id: ID,
    /// 0–10.
    pub score: f64,
}

#[Object]
impl TenderResponse {
    pub async fn id(&self) -> ID {
        global_id(NodeType::TenderResponse, self.0.id)
    }

    async fn user_story(&self, ctx: &Context<'_>) -> Result<UserStory> {
        let story = load_existing(ctx, UserStoryById(self.0.user_story_id), "story").await?;
        Ok(UserStory(story))
    }

    async fn tender(&self, ctx: &Context<'_>) -> Result<Tender> {
        let t = load_existing(ctx, TenderById(self.0.tender_id), "tender").await?;
        Ok(Tender(t))
    }

    async fn solution(&self) -> &str {
        &self.0.solution
    }

    async fn purchase_price(&self) -> Option<Money> {
        self.0.purchase_price_ore.map(|o| Nok::from_ore(o).into())
    }

    async fn lease_price_per_month(&self) -> Option<Money> {
        self.0.lease_price_ore_per_month.map(|o| Nok::from_ore(o).into())
    }

    /// Scores per criterion; only the lead's procurement officers see them.
    async fn scores(&self, ctx: &Context<'_>) -> Result<Option<Vec<Score>>> {
        let t = load_existing(ctx, TenderById(self.0.tender_id), "tender").await?;
        let p = procurement_row(ctx, t.procurement_id).await?;
        if !Access::of(ctx, &p).await?.can_see_evaluation() {
            return Ok(None);
        }
        Ok(Some(
            load_one(ctx, ScoresOf(self.0.id))
                .await?
                .unwrap_or_default()
                .into_iter()
                .map(|s| Score {
                    criterion_id: global_id(NodeType::EvaluationCriterion, s.criterion_id),
                    score: f64::from(s.hundredths) / 100.0,
                })
                .collect(),
        ))
    }
}

/// The award of one user story to one supplier's response: a published result.
#[derive(Clone)]
pub struct Award(pub award::Model);

#[Object]
impl Award {
    pub async fn id(&self) -> ID {
        global_id(NodeType::Award, self.0.id)
    }

    async fn user_story(&self, ctx: &Context<'_>) -> Result<UserStory> {
        let story = load_existing(ctx, UserStoryById(self.0.user_story_id), "story").await?;
        Ok(UserStory(story))
    }

    async fn supplier(&self, ctx: &Context<'_>) -> Result<Organization> {
        let response = load_existing(ctx, TenderResponseById(self.0.tender_response_id), "response").await?;
        let t = load_existing(ctx, TenderById(response.tender_id), "tender").await?;
        Organization::by_id(ctx, t.supplier_id).await
    }

    async fn awarded_on(&self) -> NaiveDate {
        self.0.awarded_on
    }

    /// The framework agreement that followed, once made.
    async fn framework_agreement(&self, ctx: &Context<'_>) -> Result<Option<FrameworkAgreement>> {
        Ok(load_one(ctx, AgreementsOf(self.0.procurement_id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.award_id == self.0.id)
            .map(FrameworkAgreement))
    }
}

#[derive(InputObject, Default)]
pub struct ProcurementFilter {
    pub phase: Option<Phase>,
    pub category: Option<Category>,
    /// Procurements with a participating municipality in this county.
    pub county: Option<String>,
    /// Procurements this municipality (global id) takes part in.
    pub municipality: Option<ID>,
    /// Procurements where this supplier (global id) won an award.
    pub supplier: Option<ID>,
}

#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ProcurementOrderField {
    Title,
    #[default]
    CreatedAt,
}

#[derive(InputObject, Default)]
pub struct ProcurementOrder {
    #[graphql(default)]
    pub field: ProcurementOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(Default)]
pub struct ProcurementQuery;

#[Object]
impl ProcurementQuery {
    /// Procurements: all for signed-in users; those with a published notice for anonymous ones.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn procurements(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
        filter: Option<ProcurementFilter>,
        order_by: Option<ProcurementOrder>,
    ) -> Result<Page<Procurement>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let filter = filter.unwrap_or_default();
        let order = order_by.unwrap_or_default();
        let mut select = procurement::Entity::find();
        if session(ctx).actor.principal().is_none() {
            select = select.filter(procurement::Column::NoticePublishedOn.is_not_null());
        }
        if let Some(phase) = filter.phase {
            select = select.filter(procurement::Column::Phase.eq(phase));
        }
        if let Some(category) = filter.category {
            select = select.filter(procurement::Column::Category.eq(category));
        }
        if let Some(county) = filter.county {
            let in_county = Query::select()
                .column((participant::Entity, participant::Column::ProcurementId))
                .from(participant::Entity)
                .inner_join(
                    organization::Entity,
                    sea_orm::sea_query::Expr::col((organization::Entity, organization::Column::Id))
                        .equals((participant::Entity, participant::Column::OrganizationId)),
                )
                .and_where(organization::Column::County.eq(county.trim()))
                .to_owned();
            select = select.filter(procurement::Column::Id.in_subquery(in_county));
        }
        if let Some(municipality) = filter.municipality {
            let org = row_id(&municipality, NodeType::Organization)
                .ok_or_else(|| ApiError::BadUserInput("`municipality` is not an organisation id".into()))?;
            let taking_part = Query::select()
                .column(participant::Column::ProcurementId)
                .from(participant::Entity)
                .and_where(participant::Column::OrganizationId.eq(org))
                .to_owned();
            select = select.filter(procurement::Column::Id.in_subquery(taking_part));
        }
        if let Some(supplier) = filter.supplier {
            let org = row_id(&supplier, NodeType::Organization)
                .ok_or_else(|| ApiError::BadUserInput("`supplier` is not an organisation id".into()))?;
            let won = Query::select()
                .column(framework_agreement::Column::ProcurementId)
                .from(framework_agreement::Entity)
                .and_where(framework_agreement::Column::SupplierId.eq(org))
                .to_owned();
            let awarded = Query::select()
                .column((award::Entity, award::Column::ProcurementId))
                .from(award::Entity)
                .inner_join(
                    tender_response::Entity,
                    sea_orm::sea_query::Expr::col((tender_response::Entity, tender_response::Column::Id))
                        .equals((award::Entity, award::Column::TenderResponseId)),
                )
                .inner_join(
                    tender::Entity,
                    sea_orm::sea_query::Expr::col((tender::Entity, tender::Column::Id))
                        .equals((tender_response::Entity, tender_response::Column::TenderId)),
                )
                .and_where(tender::Column::SupplierId.eq(org))
                .to_owned();
            select = select.filter(
                sea_orm::Condition::any()
                    .add(procurement::Column::Id.in_subquery(won))
                    .add(procurement::Column::Id.in_subquery(awarded)),
            );
        }
        let db = state(ctx).db.read().clone();
        let counted = select.clone();
        let total = TotalCount::new(move || {
            let (select, db) = (counted.clone(), db.clone());
            async move { Ok(select.count(&db).await?) }
        });
        let (sort, key_of): (_, fn(&serde_json::Value) -> Option<Value>) = match order.field {
            ProcurementOrderField::Title => (procurement::Column::Title, |k| k.as_str().map(|s| Value::from(s.to_string()))),
            ProcurementOrderField::CreatedAt => (procurement::Column::Id, |k| k.as_i64().map(Value::from)),
        };
        let rows = fetch_page(state(ctx).db.read(), select, sort, procurement::Column::Id, order.direction, &page, key_of).await?;
        let mut connection = Connection::with_additional_fields(rows.has_previous_page, rows.has_next_page, total);
        connection.edges = rows
            .rows
            .into_iter()
            .map(|row| {
                let key = match order.field {
                    ProcurementOrderField::Title => serde_json::json!(row.title),
                    ProcurementOrderField::CreatedAt => serde_json::json!(row.id),
                };
                Edge::new(Cursor { key, id: row.id }.encode(), Procurement(row))
            })
            .collect();
        Ok(connection)
    }
}

// ---------------------------------------------------------------------------------------------
// `node(id:)`, with the same visibility as the connections: an object the viewer may not see is
// `None`, exactly like a missing one.

impl NodeObject for Procurement {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Procurement>, ApiError> {
        match load_one(ctx, ProcurementById(id)).await? {
            Some(p) if Access::of(ctx, &p).await?.can_see(&p) => Ok(Some(Procurement(p))),
            _ => Ok(None),
        }
    }
}

/// Whether the viewer may see the procurement a part of it belongs to.
async fn sees_procurement(ctx: &Context<'_>, procurement_id: i64) -> Result<bool, ApiError> {
    let p = load_existing(ctx, ProcurementById(procurement_id), "procurement").await?;
    Ok(Access::of(ctx, &p).await?.can_see(&p))
}

impl NodeObject for UserStory {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<UserStory>, ApiError> {
        let Some(s) = load_one(ctx, UserStoryById(id)).await? else { return Ok(None) };
        Ok(sees_procurement(ctx, s.procurement_id).await?.then_some(UserStory(s)))
    }
}

/// Criteria are public with their procurement, as its `evaluationCriteria` connection is.
impl NodeObject for EvaluationCriterion {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<EvaluationCriterion>, ApiError> {
        let Some(c) = load_one(ctx, CriterionById(id)).await? else { return Ok(None) };
        Ok(sees_procurement(ctx, c.procurement_id).await?.then_some(EvaluationCriterion(c)))
    }
}

impl NodeObject for Tender {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Tender>, ApiError> {
        let Some(t) = load_one(ctx, TenderById(id)).await? else { return Ok(None) };
        let p = load_existing(ctx, ProcurementById(t.procurement_id), "procurement").await?;
        Ok(Access::of(ctx, &p).await?.can_see_tender(&t).then_some(Tender(t)))
    }
}

impl NodeObject for TenderResponse {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<TenderResponse>, ApiError> {
        let Some(r) = load_one(ctx, TenderResponseById(id)).await? else { return Ok(None) };
        let t = load_existing(ctx, TenderById(r.tender_id), "tender").await?;
        let p = load_existing(ctx, ProcurementById(t.procurement_id), "procurement").await?;
        Ok(Access::of(ctx, &p).await?.can_see_tender(&t).then_some(TenderResponse(r)))
    }
}

impl NodeObject for Award {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Award>, ApiError> {
        let Some(a) = load_one(ctx, AwardById(id)).await? else { return Ok(None) };
        Ok(sees_procurement(ctx, a.procurement_id).await?.then_some(Award(a)))
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations

payload!(ProcurementCreatePayload, procurement: Procurement, "Result of `procurementCreate`.");
payload!(ProcurementParticipantAddPayload, participant: Participant, "Result of `procurementParticipantAdd`.");
payload!(ProcurementPhaseChangePayload, procurement: Procurement, "Result of `procurementPhaseChange`.");
payload!(ProcurementNoticePublishPayload, procurement: Procurement, "Result of `procurementNoticePublish`.");
payload!(JourneyStepAddPayload, journey_step: JourneyStep, "Result of `journeyStepAdd`.");
payload!(NeedAddPayload, need: Need, "Result of `needAdd`.");
payload!(DialogueActivityAddPayload, dialogue_activity: DialogueActivity, "Result of `dialogueActivityAdd`.");
payload!(SolutionSketchSubmitPayload, solution_sketch: SolutionSketch, "Result of `solutionSketchSubmit`.");
payload!(UserStoryAddPayload, user_story: UserStory, "Result of `userStoryAdd`.");
payload!(EvaluationCriterionAddPayload, evaluation_criterion: EvaluationCriterion, "Result of `evaluationCriterionAdd`.");
payload!(TenderSubmitPayload, tender: Tender, "Result of `tenderSubmit`.");
payload!(TenderResponseScorePayload, tender_response: TenderResponse, "Result of `tenderResponseScore`.");
payload!(AwardCreatePayload, award: Award, "Result of `awardCreate`.");

#[derive(InputObject)]
pub struct ProcurementCreateInput {
    pub title: String,
    pub category: Category,
    /// When the procurement started (defaults to today).
    pub started_on: Option<NaiveDate>,
}

#[derive(InputObject)]
pub struct ProcurementParticipantAddInput {
    pub procurement_id: ID,
    /// A municipality's global id.
    pub organization_id: ID,
    /// PARTICIPANT (buys) or FOLLOWER (learns, does not buy).
    pub role: ParticipantRole,
    pub joined_on: Option<NaiveDate>,
}

#[derive(InputObject)]
pub struct ProcurementPhaseChangeInput {
    pub procurement_id: ID,
    /// The next phase, ON_HOLD (with a reason), or — from ON_HOLD — the phase it left.
    pub phase: Phase,
    pub reason: Option<String>,
    /// When the change took effect in the real process (defaults to today).
    pub effective_on: Option<NaiveDate>,
}

#[derive(InputObject)]
pub struct ProcurementNoticePublishInput {
    pub procurement_id: ID,
    /// The Doffin reference.
    pub reference: String,
    pub published_on: NaiveDate,
    pub tender_deadline: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct JourneyStepAddInput {
    pub procurement_id: ID,
    pub title: String,
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct NeedAddInput {
    pub procurement_id: ID,
    pub description: String,
    /// Position of the journey step it belongs to.
    pub journey_step_position: Option<i32>,
}

#[derive(InputObject)]
pub struct AttendeeInput {
    pub organization_id: ID,
    /// How many people came, when known.
    pub people: Option<i32>,
}

#[derive(InputObject)]
pub struct DialogueActivityAddInput {
    pub procurement_id: ID,
    pub kind: ActivityKind,
    pub title: String,
    pub held_on: NaiveDate,
    pub questions_sent_in_advance: Option<bool>,
    #[graphql(default)]
    pub attendees: Vec<AttendeeInput>,
}

#[derive(InputObject)]
pub struct SolutionSketchSubmitInput {
    pub procurement_id: ID,
    pub title: String,
    pub summary: String,
    pub submitted_on: Option<NaiveDate>,
}

#[derive(InputObject)]
pub struct UserStoryAddInput {
    pub procurement_id: ID,
    /// Short code, e.g. "US1".
    pub code: String,
    pub title: String,
    pub narrative: String,
    #[graphql(default)]
    pub acceptance_criteria: Vec<String>,
}

#[derive(InputObject)]
pub struct EvaluationCriterionAddInput {
    pub procurement_id: ID,
    pub name: String,
    /// Percent; a procurement's weights add up to at most 100.
    pub weight: i32,
}

#[derive(InputObject)]
pub struct TenderResponseInput {
    pub user_story_id: ID,
    pub solution: String,
    pub purchase_price: Option<MoneyInput>,
    pub lease_price_per_month: Option<MoneyInput>,
}

#[derive(InputObject)]
pub struct TenderSubmitInput {
    pub procurement_id: ID,
    pub responses: Vec<TenderResponseInput>,
}

#[derive(InputObject)]
pub struct ScoreInput {
    pub criterion_id: ID,
    /// 0–10, at most two decimals count.
    pub score: f64,
}

#[derive(InputObject)]
pub struct TenderResponseScoreInput {
    pub tender_response_id: ID,
    pub scores: Vec<ScoreInput>,
}

#[derive(InputObject)]
pub struct AwardCreateInput {
    /// The winning response; its user story is the one awarded.
    pub tender_response_id: ID,
    pub awarded_on: Option<NaiveDate>,
}

fn parse_money(field: &'static str, input: &Option<MoneyInput>) -> std::result::Result<Option<Nok>, Invalid> {
    input.as_ref().map(|m| m.parse().map_err(|e| Invalid::new(field, "INVALID_MONEY", e.to_string()))).transpose()
}

#[derive(Default)]
pub struct ProcurementMutation;

#[Object]
impl ProcurementMutation {
    /// Starts a procurement led by your municipality. Role: `procurement_officer`.
    async fn procurement_create(&self, ctx: &Context<'_>, input: ProcurementCreateInput) -> Result<ProcurementCreatePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "start procurements").await?;
        let new = NewProcurement { title: input.title, category: input.category, started_on: input.started_on.unwrap_or_else(today) };
        let result = in_transaction(ctx, async |txn| rules::create(txn, &caller, new).await).await;
        Ok(ProcurementCreatePayload::from_rule(result, Procurement)?)
    }

    /// Adds a municipality as participant or follower. Role: the lead's `procurement_officer`.
    async fn procurement_participant_add(
        &self,
        ctx: &Context<'_>,
        input: ProcurementParticipantAddInput,
    ) -> Result<ProcurementParticipantAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "add participants").await?;
        let result: RuleResult<_> = async {
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            let org = input_row(&input.organization_id, NodeType::Organization, "organizationId")?;
            let joined_on = input.joined_on.unwrap_or_else(today);
            in_transaction(ctx, async |txn| rules::add_participant(txn, &caller, p, org, input.role, joined_on).await).await
        }
        .await;
        Ok(ProcurementParticipantAddPayload::from_rule(result, Participant)?)
    }

    /// Moves a procurement to its next phase, puts it on hold, or resumes it. Role: the lead's
    /// `procurement_officer`.
    async fn procurement_phase_change(
        &self,
        ctx: &Context<'_>,
        input: ProcurementPhaseChangeInput,
    ) -> Result<ProcurementPhaseChangePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "change procurement phases").await?;
        let result: RuleResult<_> = async {
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            let effective_on = input.effective_on.unwrap_or_else(today);
            in_transaction(ctx, async |txn| rules::change_phase(txn, &caller, p, input.phase, input.reason, effective_on).await)
                .await
        }
        .await;
        Ok(ProcurementPhaseChangePayload::from_rule(result, Procurement)?)
    }

    /// Publishes the competition notice with its Doffin reference and tender deadline. Role: the
    /// lead's `procurement_officer`, in COMPETITION.
    async fn procurement_notice_publish(
        &self,
        ctx: &Context<'_>,
        input: ProcurementNoticePublishInput,
    ) -> Result<ProcurementNoticePublishPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "publish notices").await?;
        let result: RuleResult<_> = async {
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            in_transaction(ctx, async |txn| {
                rules::publish_notice(txn, &caller, p, &input.reference, input.published_on, input.tender_deadline).await
            })
            .await
        }
        .await;
        Ok(ProcurementNoticePublishPayload::from_rule(result, Procurement)?)
    }

    /// Adds a step to the service journey. Role: the lead's `procurement_officer`.
    async fn journey_step_add(&self, ctx: &Context<'_>, input: JourneyStepAddInput) -> Result<JourneyStepAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "edit service journeys").await?;
        let result: RuleResult<_> = async {
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            in_transaction(ctx, async |txn| rules::add_journey_step(txn, &caller, p, &input.title, input.description).await)
                .await
        }
        .await;
        Ok(JourneyStepAddPayload::from_rule(result, JourneyStep)?)
    }

    /// Records a need from the needs mapping. Role: the lead's `procurement_officer`.
    async fn need_add(&self, ctx: &Context<'_>, input: NeedAddInput) -> Result<NeedAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "record needs").await?;
        let result: RuleResult<_> = async {
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            in_transaction(ctx, async |txn| {
                rules::add_need(txn, &caller, p, &input.description, input.journey_step_position).await
            })
            .await
        }
        .await;
        Ok(NeedAddPayload::from_rule(result, Need)?)
    }

    /// Records a workshop, dialogue conference, one-to-one meeting or learning arena with its
    /// attendees. Role: the lead's `procurement_officer`.
    async fn dialogue_activity_add(&self, ctx: &Context<'_>, input: DialogueActivityAddInput) -> Result<DialogueActivityAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "record dialogue activities").await?;
        let result: RuleResult<_> = async {
            bounded("attendees", &input.attendees)?;
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            let attendees = input
                .attendees
                .iter()
                .map(|a| Ok((input_row(&a.organization_id, NodeType::Organization, "attendees")?, a.people)))
                .collect::<std::result::Result<Vec<_>, Invalid>>()?;
            let new = NewActivity {
                kind: input.kind,
                title: input.title,
                held_on: input.held_on,
                questions_sent_in_advance: input.questions_sent_in_advance,
                attendees,
            };
            in_transaction(ctx, async |txn| rules::add_activity(txn, &caller, p, new).await).await
        }
        .await;
        Ok(DialogueActivityAddPayload::from_rule(result, DialogueActivity)?)
    }

    /// A supplier submits a written solution sketch in the dialogue phase. Role: `supplier`.
    async fn solution_sketch_submit(&self, ctx: &Context<'_>, input: SolutionSketchSubmitInput) -> Result<SolutionSketchSubmitPayload> {
        let caller = caller(ctx, Role::Supplier, "submit solution sketches").await?;
        let result: RuleResult<_> = async {
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            let submitted_on = input.submitted_on.unwrap_or_else(today);
            in_transaction(ctx, async |txn| {
                rules::submit_sketch(txn, &caller, p, &input.title, &input.summary, submitted_on).await
            })
            .await
        }
        .await;
        Ok(SolutionSketchSubmitPayload::from_rule(result, SolutionSketch)?)
    }

    /// Adds a user story (a lot) before the notice is published. Role: the lead's
    /// `procurement_officer`.
    async fn user_story_add(&self, ctx: &Context<'_>, input: UserStoryAddInput) -> Result<UserStoryAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "write user stories").await?;
        let result: RuleResult<_> = async {
            bounded("acceptanceCriteria", &input.acceptance_criteria)?;
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            let new = NewUserStory {
                code: input.code,
                title: input.title,
                narrative: input.narrative,
                acceptance_criteria: input.acceptance_criteria,
            };
            in_transaction(ctx, async |txn| rules::add_user_story(txn, &caller, p, new).await).await
        }
        .await;
        Ok(UserStoryAddPayload::from_rule(result, UserStory)?)
    }

    /// Adds an evaluation criterion before the notice is published. Role: the lead's
    /// `procurement_officer`.
    async fn evaluation_criterion_add(&self, ctx: &Context<'_>, input: EvaluationCriterionAddInput) -> Result<EvaluationCriterionAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "set evaluation criteria").await?;
        let result: RuleResult<_> = async {
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            in_transaction(ctx, async |txn| rules::add_criterion(txn, &caller, p, &input.name, input.weight).await).await
        }
        .await;
        Ok(EvaluationCriterionAddPayload::from_rule(result, EvaluationCriterion)?)
    }

    /// Submits your sealed tender: one response per user story you answer, before the deadline.
    /// Role: `supplier`.
    async fn tender_submit(&self, ctx: &Context<'_>, input: TenderSubmitInput) -> Result<TenderSubmitPayload> {
        let caller = caller(ctx, Role::Supplier, "submit tenders").await?;
        let result: RuleResult<_> = async {
            bounded("responses", &input.responses)?;
            let p = input_row(&input.procurement_id, NodeType::Procurement, "procurementId")?;
            let responses = input
                .responses
                .iter()
                .map(|r| {
                    Ok(NewResponse {
                        user_story_id: input_row(&r.user_story_id, NodeType::UserStory, "responses")?,
                        solution: r.solution.clone(),
                        purchase_price: parse_money("responses", &r.purchase_price)?,
                        lease_price_per_month: parse_money("responses", &r.lease_price_per_month)?,
                    })
                })
                .collect::<std::result::Result<Vec<_>, Invalid>>()?;
            in_transaction(ctx, async |txn| rules::submit_tender(txn, &caller, p, responses, Utc::now()).await).await
        }
        .await;
        Ok(TenderSubmitPayload::from_rule(result, Tender)?)
    }

    /// Scores a tender response against the criteria, after the deadline. Role: the lead's
    /// `procurement_officer`.
    async fn tender_response_score(&self, ctx: &Context<'_>, input: TenderResponseScoreInput) -> Result<TenderResponseScorePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "score tenders").await?;
        let result: RuleResult<_> = async {
            bounded("scores", &input.scores)?;
            let r = input_row(&input.tender_response_id, NodeType::TenderResponse, "tenderResponseId")?;
            let scores = input
                .scores
                .iter()
                .map(|s| Ok((input_row(&s.criterion_id, NodeType::EvaluationCriterion, "scores")?, s.score)))
                .collect::<std::result::Result<Vec<_>, Invalid>>()?;
            in_transaction(ctx, async |txn| rules::score_response(txn, &caller, r, scores, Utc::now()).await).await
        }
        .await;
        Ok(TenderResponseScorePayload::from_rule(result, TenderResponse)?)
    }

    /// Awards a user story to a tender response, after the deadline. Role: the lead's
    /// `procurement_officer`.
    async fn award_create(&self, ctx: &Context<'_>, input: AwardCreateInput) -> Result<AwardCreatePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "award").await?;
        let result: RuleResult<_> = async {
            let r = input_row(&input.tender_response_id, NodeType::TenderResponse, "tenderResponseId")?;
            let awarded_on = input.awarded_on.unwrap_or_else(today);
            in_transaction(ctx, async |txn| rules::award(txn, &caller, r, awarded_on, Utc::now()).await).await
        }
        .await;
        Ok(AwardCreatePayload::from_rule(result, Award)?)
    }
}
