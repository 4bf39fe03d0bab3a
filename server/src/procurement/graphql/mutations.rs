//! The mutations of the needs, dialogue and competition phases.

use super::*;

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

/// An input parsed into the values the rules take, or the first field that is not one.
type Parsed<T> = std::result::Result<T, Invalid>;

fn parse_money(input: Option<MoneyInput>) -> Parsed<Option<Nok>> {
    input.map(|m| m.parse().map_err(|e| Invalid::new("responses", "INVALID_MONEY", e.to_string()))).transpose()
}

/// The procurement an input names.
fn procurement_id(id: &ID) -> Parsed<i64> {
    input_row(id, NodeType::Procurement, "procurementId")
}

impl ProcurementCreateInput {
    fn parse(self) -> Parsed<NewProcurement> {
        let title = Title::parse("title", &self.title)?;
        Ok(NewProcurement { title, category: self.category, started_on: self.started_on.unwrap_or_else(today) })
    }
}

impl ProcurementParticipantAddInput {
    fn parse(self) -> Parsed<(i64, i64, ParticipantRole, NaiveDate)> {
        let p = procurement_id(&self.procurement_id)?;
        let org = input_row(&self.organization_id, NodeType::Organization, "organizationId")?;
        Ok((p, org, self.role, self.joined_on.unwrap_or_else(today)))
    }
}

impl ProcurementPhaseChangeInput {
    fn parse(self) -> Parsed<(i64, Phase, Option<Paragraph>, NaiveDate)> {
        let p = procurement_id(&self.procurement_id)?;
        let reason = Paragraph::parse_optional("reason", self.reason.as_deref())?;
        Ok((p, self.phase, reason, self.effective_on.unwrap_or_else(today)))
    }
}

impl ProcurementNoticePublishInput {
    fn parse(self) -> Parsed<(i64, NewNotice)> {
        let p = procurement_id(&self.procurement_id)?;
        let reference = Reference::parse("reference", &self.reference)?;
        Ok((p, NewNotice::new(reference, self.published_on, self.tender_deadline)?))
    }
}

impl JourneyStepAddInput {
    fn parse(self) -> Parsed<(i64, Title, Option<Paragraph>)> {
        let p = procurement_id(&self.procurement_id)?;
        let title = Title::parse("title", &self.title)?;
        Ok((p, title, Paragraph::parse_optional("description", self.description.as_deref())?))
    }
}

impl NeedAddInput {
    fn parse(self) -> Parsed<(i64, Paragraph, Option<i32>)> {
        let p = procurement_id(&self.procurement_id)?;
        Ok((p, Paragraph::parse("description", &self.description)?, self.journey_step_position))
    }
}

impl DialogueActivityAddInput {
    fn parse(self) -> Parsed<(i64, NewActivity)> {
        bounded("attendees", &self.attendees)?;
        let p = procurement_id(&self.procurement_id)?;
        let attendees = self
            .attendees
            .iter()
            .map(|a| {
                let org = input_row(&a.organization_id, NodeType::Organization, "attendees")?;
                match a.people {
                    Some(n) if n < 1 => Err(Invalid::new("attendees", "INVALID_PEOPLE", "people must be at least 1")),
                    people => Ok((org, people)),
                }
            })
            .collect::<Parsed<Vec<_>>>()?;
        let new = NewActivity {
            kind: self.kind,
            title: Title::parse("title", &self.title)?,
            held_on: self.held_on,
            questions_sent_in_advance: self.questions_sent_in_advance,
            attendees,
        };
        Ok((p, new))
    }
}

impl SolutionSketchSubmitInput {
    fn parse(self) -> Parsed<(i64, NewSketch)> {
        let p = procurement_id(&self.procurement_id)?;
        let title = Title::parse("title", &self.title)?;
        let summary = LongText::parse("summary", &self.summary)?;
        Ok((p, NewSketch { title, summary, submitted_on: self.submitted_on.unwrap_or_else(today) }))
    }
}

impl UserStoryAddInput {
    fn parse(self) -> Parsed<(i64, NewUserStory)> {
        bounded("acceptanceCriteria", &self.acceptance_criteria)?;
        let p = procurement_id(&self.procurement_id)?;
        let code = StoryCode::parse(&self.code)?;
        let title = Title::parse("title", &self.title)?;
        let narrative = LongText::parse("narrative", &self.narrative)?;
        // A blank criterion is none, as the API has always read it.
        let acceptance_criteria = self
            .acceptance_criteria
            .iter()
            .filter_map(|c| Paragraph::parse_optional("acceptanceCriteria", Some(c)).transpose())
            .collect::<Parsed<Vec<_>>>()?;
        Ok((p, NewUserStory { code, title, narrative, acceptance_criteria }))
    }
}

impl EvaluationCriterionAddInput {
    fn parse(self) -> Parsed<(i64, CriterionName, Weight)> {
        let p = procurement_id(&self.procurement_id)?;
        Ok((p, CriterionName::parse("name", &self.name)?, Weight::parse(self.weight)?))
    }
}

impl TenderSubmitInput {
    fn parse(self) -> Parsed<(i64, Vec<NewResponse>)> {
        bounded("responses", &self.responses)?;
        let p = procurement_id(&self.procurement_id)?;
        let responses = self
            .responses
            .into_iter()
            .map(|r| {
                NewResponse::new(
                    input_row(&r.user_story_id, NodeType::UserStory, "responses")?,
                    LongText::parse("solution", &r.solution)?,
                    parse_money(r.purchase_price)?,
                    parse_money(r.lease_price_per_month)?,
                )
            })
            .collect::<Parsed<Vec<_>>>()?;
        Ok((p, responses))
    }
}

impl TenderResponseScoreInput {
    fn parse(self) -> Parsed<(i64, Vec<(i64, values::Score)>)> {
        bounded("scores", &self.scores)?;
        let r = input_row(&self.tender_response_id, NodeType::TenderResponse, "tenderResponseId")?;
        let scores = self
            .scores
            .iter()
            .map(|s| {
                Ok((
                    input_row(&s.criterion_id, NodeType::EvaluationCriterion, "scores")?,
                    values::Score::parse(s.score)?,
                ))
            })
            .collect::<Parsed<Vec<_>>>()?;
        Ok((r, scores))
    }
}

impl AwardCreateInput {
    fn parse(self) -> Parsed<(i64, NaiveDate)> {
        let r = input_row(&self.tender_response_id, NodeType::TenderResponse, "tenderResponseId")?;
        Ok((r, self.awarded_on.unwrap_or_else(today)))
    }
}

#[derive(Default)]
pub struct ProcurementMutation;

#[Object]
impl ProcurementMutation {
    /// Starts a procurement led by your municipality. Role: `procurement_officer`.
    async fn procurement_create(
        &self,
        ctx: &Context<'_>,
        input: ProcurementCreateInput,
    ) -> Result<ProcurementCreatePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "start procurements").await?;
        mutate(ctx, input.parse(), Procurement, async |txn, new| rules::create(txn, &caller, new).await).await
    }

    /// Adds a municipality as participant or follower. Role: the lead's `procurement_officer`.
    async fn procurement_participant_add(
        &self,
        ctx: &Context<'_>,
        input: ProcurementParticipantAddInput,
    ) -> Result<ProcurementParticipantAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "add participants").await?;
        mutate(ctx, input.parse(), Participant::from, async |txn, (p, org, role, joined_on)| {
            rules::add_participant(txn, &caller, p, org, role, joined_on).await
        })
        .await
    }

    /// Moves a procurement to its next phase, puts it on hold, or resumes it. Role: the lead's
    /// `procurement_officer`.
    async fn procurement_phase_change(
        &self,
        ctx: &Context<'_>,
        input: ProcurementPhaseChangeInput,
    ) -> Result<ProcurementPhaseChangePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "change procurement phases").await?;
        mutate(ctx, input.parse(), Procurement, async |txn, (p, to, reason, effective_on)| {
            rules::change_phase(txn, &caller, p, to, reason, effective_on).await
        })
        .await
    }

    /// Publishes the competition notice with its Doffin reference and tender deadline. Role: the
    /// lead's `procurement_officer`, in COMPETITION.
    async fn procurement_notice_publish(
        &self,
        ctx: &Context<'_>,
        input: ProcurementNoticePublishInput,
    ) -> Result<ProcurementNoticePublishPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "publish notices").await?;
        mutate(ctx, input.parse(), Procurement, async |txn, (p, notice)| {
            rules::publish_notice(txn, &caller, p, notice).await
        })
        .await
    }

    /// Adds a step to the service journey. Role: the lead's `procurement_officer`.
    async fn journey_step_add(&self, ctx: &Context<'_>, input: JourneyStepAddInput) -> Result<JourneyStepAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "edit service journeys").await?;
        mutate(ctx, input.parse(), JourneyStep, async |txn, (p, title, description)| {
            rules::add_journey_step(txn, &caller, p, title, description).await
        })
        .await
    }

    /// Records a need from the needs mapping. Role: the lead's `procurement_officer`.
    async fn need_add(&self, ctx: &Context<'_>, input: NeedAddInput) -> Result<NeedAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "record needs").await?;
        mutate(ctx, input.parse(), Need, async |txn, (p, description, position)| {
            rules::add_need(txn, &caller, p, description, position).await
        })
        .await
    }

    /// Records a workshop, dialogue conference, one-to-one meeting or learning arena with its
    /// attendees. Role: the lead's `procurement_officer`.
    async fn dialogue_activity_add(
        &self,
        ctx: &Context<'_>,
        input: DialogueActivityAddInput,
    ) -> Result<DialogueActivityAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "record dialogue activities").await?;
        mutate(ctx, input.parse(), DialogueActivity, async |txn, (p, new)| {
            rules::add_activity(txn, &caller, p, new).await
        })
        .await
    }

    /// A supplier submits a written solution sketch in the dialogue phase. Role: `supplier`.
    async fn solution_sketch_submit(
        &self,
        ctx: &Context<'_>,
        input: SolutionSketchSubmitInput,
    ) -> Result<SolutionSketchSubmitPayload> {
        let caller = caller(ctx, Role::Supplier, "submit solution sketches").await?;
        mutate(ctx, input.parse(), SolutionSketch, async |txn, (p, sketch)| {
            rules::submit_sketch(txn, &caller, p, sketch).await
        })
        .await
    }

    /// Adds a user story (a lot) before the notice is published. Role: the lead's
    /// `procurement_officer`.
    async fn user_story_add(&self, ctx: &Context<'_>, input: UserStoryAddInput) -> Result<UserStoryAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "write user stories").await?;
        mutate(ctx, input.parse(), UserStory, async |txn, (p, new)| rules::add_user_story(txn, &caller, p, new).await)
            .await
    }

    /// Adds an evaluation criterion before the notice is published. Role: the lead's
    /// `procurement_officer`.
    async fn evaluation_criterion_add(
        &self,
        ctx: &Context<'_>,
        input: EvaluationCriterionAddInput,
    ) -> Result<EvaluationCriterionAddPayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "set evaluation criteria").await?;
        mutate(ctx, input.parse(), EvaluationCriterion, async |txn, (p, name, weight)| {
            rules::add_criterion(txn, &caller, p, name, weight).await
        })
        .await
    }

    /// Submits your sealed tender: one response per user story you answer, before the deadline.
    /// Role: `supplier`.
    async fn tender_submit(&self, ctx: &Context<'_>, input: TenderSubmitInput) -> Result<TenderSubmitPayload> {
        let caller = caller(ctx, Role::Supplier, "submit tenders").await?;
        mutate(ctx, input.parse(), Tender, async |txn, (p, responses)| {
            rules::submit_tender(txn, &caller, p, responses, Utc::now()).await
        })
        .await
    }

    /// Scores a tender response against the criteria, after the deadline. Role: the lead's
    /// `procurement_officer`.
    async fn tender_response_score(
        &self,
        ctx: &Context<'_>,
        input: TenderResponseScoreInput,
    ) -> Result<TenderResponseScorePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "score tenders").await?;
        mutate(ctx, input.parse(), TenderResponse, async |txn, (r, scores)| {
            rules::score_response(txn, &caller, r, scores, Utc::now()).await
        })
        .await
    }

    /// Awards a user story to a tender response, after the deadline. Role: the lead's
    /// `procurement_officer`.
    async fn award_create(&self, ctx: &Context<'_>, input: AwardCreateInput) -> Result<AwardCreatePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "award").await?;
        mutate(ctx, input.parse(), Award, async |txn, (r, awarded_on)| {
            rules::award(txn, &caller, r, awarded_on, Utc::now()).await
        })
        .await
    }
}
