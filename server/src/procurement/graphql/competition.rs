//! The competition: user stories, criteria, tenders and their responses, awards, and
//! `node(id:)` for them.

use super::*;

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

#[row_fields]
#[Object]
impl UserStory {
    pub async fn id(&self) -> ID;

    async fn code(&self) -> &str;

    async fn title(&self) -> &str;

    async fn narrative(&self) -> &str;

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
        if !access(ctx, &p).await?.can_see_evaluation() {
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

#[row_fields]
#[Object]
impl EvaluationCriterion {
    pub async fn id(&self) -> ID;

    async fn name(&self) -> &str;

    /// Percent.
    async fn weight(&self) -> i32;
}

/// A supplier's sealed tender.
#[derive(Clone)]
pub struct Tender(pub tender::Model);

#[row_fields]
#[Object]
impl Tender {
    pub async fn id(&self) -> ID;

    async fn supplier(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.supplier_id).await
    }

    async fn submitted_at(&self) -> DateTime<Utc>;

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

#[row_fields]
#[Object]
impl TenderResponse {
    pub async fn id(&self) -> ID;

    async fn user_story(&self, ctx: &Context<'_>) -> Result<UserStory> {
        Ok(UserStory(load_existing(ctx, UserStoryById(self.0.user_story_id), "story").await?))
    }

    async fn tender(&self, ctx: &Context<'_>) -> Result<Tender> {
        Ok(Tender(load_existing(ctx, TenderById(self.0.tender_id), "tender").await?))
    }

    async fn solution(&self) -> &str;

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
        if !access(ctx, &p).await?.can_see_evaluation() {
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

#[row_fields]
#[Object]
impl Award {
    pub async fn id(&self) -> ID;

    async fn user_story(&self, ctx: &Context<'_>) -> Result<UserStory> {
        Ok(UserStory(load_existing(ctx, UserStoryById(self.0.user_story_id), "story").await?))
    }

    async fn supplier(&self, ctx: &Context<'_>) -> Result<Organization> {
        Ok(Organization(load_existing(ctx, SupplierOfResponse(self.0.tender_response_id), "response").await?))
    }

    async fn awarded_on(&self) -> NaiveDate;

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

/// Whether the viewer may see the procurement a part of it belongs to.
async fn sees_procurement(ctx: &Context<'_>, procurement_id: i64) -> Result<bool, ApiError> {
    let p = load_existing(ctx, ProcurementById(procurement_id), "procurement").await?;
    Ok(access(ctx, &p).await?.can_see(&p))
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
        Ok(access(ctx, &p).await?.can_see_tender(&t).then_some(Tender(t)))
    }
}

impl NodeObject for TenderResponse {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<TenderResponse>, ApiError> {
        let Some(r) = load_one(ctx, TenderResponseById(id)).await? else { return Ok(None) };
        let t = load_existing(ctx, TenderById(r.tender_id), "tender").await?;
        let p = load_existing(ctx, ProcurementById(t.procurement_id), "procurement").await?;
        Ok(access(ctx, &p).await?.can_see_tender(&t).then_some(TenderResponse(r)))
    }
}

impl NodeObject for Award {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Award>, ApiError> {
        let Some(a) = load_one(ctx, AwardById(id)).await? else { return Ok(None) };
        Ok(sees_procurement(ctx, a.procurement_id).await?.then_some(Award(a)))
    }
}
