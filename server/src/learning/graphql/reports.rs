//! Experience reports with their lessons, follower reuse of a procurement, and learning arenas,
//! with `node(id:)`.

use super::*;

/// An experience report (erfaringsrapport) on a procurement, e.g. Larvik's report on the whole
/// process: public, or for members only.
#[derive(Clone)]
pub struct ExperienceReport(pub experience_report::Model);

/// One lesson learned, tagged with the phase it concerns.
#[derive(Clone)]
pub struct Lesson(pub lesson::Model);

#[row_fields]
#[Object]
impl Lesson {
    async fn phase(&self) -> Phase;

    async fn text(&self) -> &str;
}

#[row_fields]
#[connections]
#[Object]
impl ExperienceReport {
    pub async fn id(&self) -> ID;

    async fn title(&self) -> &str;

    async fn summary(&self) -> &str;

    /// The phase the report covers; null for the whole process.
    async fn phase(&self) -> Option<Phase>;

    /// False for members-only reports.
    async fn public(&self) -> bool;

    async fn published_on(&self) -> NaiveDate;

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
    async fn lessons(&self, ctx: &Context<'_>, phase: Option<Phase>, page: PageArgs) -> Result<Page<Lesson>> {
        load_page(ctx, LessonsOf(self.0.id), page, |l| phase.is_none_or(|p| l.phase == p), Lesson, |l| l.0.id).await
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

#[row_fields]
#[Object]
impl ReusedItem {
    async fn kind(&self) -> ReusedKind;

    /// The copied text: a step's title, a need's description, a user story's code and title.
    async fn text(&self) -> &str;

    /// "reused from «source title» led by …".
    async fn provenance(&self) -> &str;
}

#[row_fields]
#[connections]
#[Object]
impl ProcurementReuse {
    pub async fn id(&self) -> ID;

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

    async fn reused_on(&self) -> NaiveDate;

    /// What was copied, with provenance.
    async fn items(&self, ctx: &Context<'_>, kind: Option<ReusedKind>, page: PageArgs) -> Result<Page<ReusedItem>> {
        load_page(ctx, ReusedItemsOf(self.0.id), page, |i| kind.is_none_or(|k| i.kind == k), ReusedItem, |i| i.0.id)
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Learning arenas

/// A learning arena (læringsarena): a dialogue activity of a procurement opened to other
/// municipalities, where the lead presents its procurement to many.
#[derive(Clone)]
pub struct LearningArena(pub dialogue_activity::Model);

#[row_fields]
#[connections]
#[Object]
impl LearningArena {
    async fn title(&self) -> &str;

    async fn held_on(&self) -> NaiveDate;

    async fn procurement(&self, ctx: &Context<'_>) -> Result<Option<Procurement>> {
        visible_procurement(ctx, self.0.procurement_id).await
    }

    /// The presenting municipality: the procurement's lead.
    async fn presented_by(&self, ctx: &Context<'_>) -> Result<Organization> {
        let p = load_existing(ctx, ProcurementById(self.0.procurement_id), "procurement").await?;
        Organization::by_id(ctx, p.lead_id).await
    }

    /// The attending organisations, with people counts where known.
    async fn attendees(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<Attendee>> {
        load_page(ctx, AttendeesOf(self.0.id), page, |_| true, Attendee, |a| a.0.id).await
    }

    /// How many organisations attended.
    async fn organizations(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(load_one(ctx, AttendeesOf(self.0.id)).await?.unwrap_or_default().len() as i64)
    }

    /// People from the organisations whose count is known.
    async fn people(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(load_one(ctx, AttendeesOf(self.0.id))
            .await?
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.people)
            .map(i64::from)
            .sum())
    }

    /// Attending organisations whose people count is unknown (not in `people`).
    async fn organizations_with_unknown_people(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(load_one(ctx, AttendeesOf(self.0.id))
            .await?
            .unwrap_or_default()
            .iter()
            .filter(|a| a.people.is_none())
            .count() as i64)
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
        if session(ctx).organization().is_none() {
            return Ok(None);
        }
        Ok(load_one(ctx, ReuseById(id)).await?.map(ProcurementReuse))
    }
}
