//! The procurement: its object, the `procurements` connection and `node(id:)` for it.

use super::*;

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

#[row_fields]
#[connections]
#[Object]
impl Procurement {
    pub async fn id(&self) -> ID;

    async fn title(&self) -> &str;

    async fn category(&self) -> Category;

    async fn phase(&self) -> Phase;

    /// Set while the procurement is ON_HOLD.
    async fn on_hold(&self) -> Option<OnHold> {
        match (self.0.phase, &self.0.hold_reason, self.0.resume_phase) {
            (Phase::OnHold, Some(reason), Some(resume_to)) => Some(OnHold { reason: reason.clone(), resume_to }),
            _ => None,
        }
    }

    /// The lead municipality.
    async fn lead(&self, ctx: &Context<'_>) -> Result<Organization> {
        // The lead is also the participant with the role LEAD: read through the participants,
        // it shares their statement (a page of procurements asks for both).
        let members = load_one(ctx, ParticipantsOf(self.0.id)).await?.unwrap_or_default();
        match members
            .into_iter()
            .find(|m| m.row.role == ParticipantRole::Lead && m.row.organization_id == self.0.lead_id)
        {
            Some(lead) => Ok(Organization(lead.organization)),
            None => Organization::by_id(ctx, self.0.lead_id).await,
        }
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

    async fn created_at(&self) -> DateTime<Utc>;

    /// Municipalities taking part, with their role and join date. Signed-in users only.
    async fn participants(
        &self,
        ctx: &Context<'_>,
        role: Option<ParticipantRole>,
        page: PageArgs,
    ) -> Result<Option<Page<Participant>>> {
        viewer(ctx).await?.require_signed_in()?;
        load_page(
            ctx,
            ParticipantsOf(self.0.id),
            page,
            |m| role.is_none_or(|r| m.row.role == r),
            Participant::from,
            |p| p.row.id,
        )
        .await
        .map(Some)
    }

    /// Municipalities, counties and inhabitants covered. Signed-in users only.
    async fn totals(&self, ctx: &Context<'_>) -> Result<Option<ProcurementTotals>> {
        viewer(ctx).await?.require_signed_in()?;
        let members = load_one(ctx, ParticipantsOf(self.0.id)).await?.unwrap_or_default();
        // An organisation counts once, whatever its rows (the map is by id).
        let buyers: std::collections::BTreeMap<i64, &organization::Model> = members
            .iter()
            .filter(|m| m.row.role != ParticipantRole::Follower)
            .map(|m| (m.organization.id, &m.organization))
            .collect();
        let counties: std::collections::BTreeSet<&str> = buyers.values().filter_map(|o| o.county.as_deref()).collect();
        Ok(Some(ProcurementTotals {
            municipalities: buyers.len() as u64,
            counties: counties.len() as u64,
            inhabitants: buyers.values().filter_map(|o| o.population).map(|p| p as u64).sum(),
            municipalities_with_unknown_population: buyers.values().filter(|o| o.population.is_none()).count() as u64,
            followers: members.iter().filter(|m| m.row.role == ParticipantRole::Follower).count() as u64,
        }))
    }

    /// Every phase change, oldest first, with who made it and when. Signed-in users only.
    async fn phase_history(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Option<Page<PhaseChange>>> {
        viewer(ctx).await?.require_signed_in()?;
        load_page(ctx, TransitionsOf(self.0.id), page, |_| true, PhaseChange, |p| p.0.id).await.map(Some)
    }

    /// The common service journey (tjenestereise) from the needs phase, in order.
    async fn journey_steps(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Option<Page<JourneyStep>>> {
        viewer(ctx).await?.require_signed_in()?;
        load_page(ctx, JourneyStepsOf(self.0.id), page, |_| true, JourneyStep, |s| s.0.id).await.map(Some)
    }

    /// Needs mapped in the needs phase.
    async fn needs(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Option<Page<Need>>> {
        viewer(ctx).await?.require_signed_in()?;
        load_page(ctx, NeedsOf(self.0.id), page, |_| true, Need, |s| s.0.id).await.map(Some)
    }

    /// Workshops, the dialogue conference, one-to-one meetings and learning arenas.
    async fn dialogue_activities(
        &self,
        ctx: &Context<'_>,
        kind: Option<ActivityKind>,
        page: PageArgs,
    ) -> Result<Option<Page<DialogueActivity>>> {
        viewer(ctx).await?.require_signed_in()?;
        load_page(
            ctx,
            ActivitiesOf(self.0.id),
            page,
            |a| kind.is_none_or(|k| a.kind == k),
            DialogueActivity,
            |s| s.0.id,
        )
        .await
        .map(Some)
    }

    /// Suppliers' written solution sketches. The procurement's municipalities and advisers see
    /// all; a supplier sees only its own.
    async fn solution_sketches(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Option<Page<SolutionSketch>>> {
        let access = access(ctx, &self.0).await?;
        access.require_signed_in()?;
        load_page(
            ctx,
            SketchesOf(self.0.id),
            page,
            |s| access.can_see_sketch_of(s.supplier_id),
            SolutionSketch,
            |s| s.0.id,
        )
        .await
        .map(Some)
    }

    /// The user stories tenders answer: the lots of the competition. Public with the notice.
    async fn user_stories(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<UserStory>> {
        load_page(ctx, UserStoriesOf(self.0.id), page, |_| true, UserStory, |s| s.0.id).await
    }

    /// Evaluation criteria with their weights (percent). Public with the notice.
    async fn evaluation_criteria(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<EvaluationCriterion>> {
        load_page(ctx, CriteriaOf(self.0.id), page, |_| true, EvaluationCriterion, |s| s.0.id).await
    }

    /// Tenders you may see: your own as a supplier; all of them, after the deadline, as the lead's
    /// procurement officer. A competitor's tender is never listed.
    async fn tenders(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<Tender>> {
        let access = access(ctx, &self.0).await?;
        load_page(ctx, TendersOf(self.0.id), page, |t| access.can_see_tender(t), Tender, |s| s.0.id).await
    }

    /// Awards, one per user story: published results, public.
    async fn awards(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<Award>> {
        load_page(ctx, AwardsOf(self.0.id), page, |_| true, Award, |s| s.0.id).await
    }

    /// Framework agreements that followed the awards.
    async fn framework_agreements(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<FrameworkAgreement>> {
        load_page(ctx, AgreementsOf(self.0.id), page, |_| true, FrameworkAgreement, |s| s.0.id).await
    }

    /// This procurement as an OCDS 1.1 release package (the same document as
    /// `GET /ocds/procurements/{id}`).
    // It reads the procurement's parties, lots, tenders, awards and contracts and writes tens of
    // kilobytes, about what a page of a hundred objects costs: 4,900 aliases of it at cost 1
    // answered 97 MB.
    #[graphql(complexity = 100)]
    async fn ocds(&self, ctx: &Context<'_>) -> Result<Json<serde_json::Value>> {
        let options = crate::procurement::ocds::public_options();
        let viewer = viewer(ctx).await?;
        let package = crate::procurement::ocds::release_package(state(ctx).db.read(), self.0.id, &viewer, &options)
            .await?
            .ok_or_else(|| ApiError::internal("procurement vanished"))?;
        Ok(Json(package))
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

#[connections]
#[Object]
impl ProcurementQuery {
    /// Procurements: all for signed-in users; those with a published notice for anonymous ones.
    async fn procurements(
        &self,
        ctx: &Context<'_>,
        page: PageArgs,
        filter: Option<ProcurementFilter>,
        order_by: Option<ProcurementOrder>,
    ) -> Result<Page<Procurement>> {
        let page = page.parse()?;
        let filter = filter.unwrap_or_default();
        let order = order_by.unwrap_or_default();
        let viewer = viewer(ctx).await?;
        let mut select = procurement::Entity::find().filter(viewer.visible_procurements());
        if let Some(phase) = filter.phase {
            select = select.filter(procurement::Column::Phase.eq(phase));
        }
        if let Some(category) = filter.category {
            select = select.filter(procurement::Column::Category.eq(category));
        }
        if let Some(county) = filter.county {
            let in_county = SqlQuery::select()
                .column((participant::Entity, participant::Column::ProcurementId))
                .from(participant::Entity)
                .inner_join(
                    organization::Entity,
                    sea_orm::sea_query::Expr::col((organization::Entity, organization::Column::Id))
                        .equals((participant::Entity, participant::Column::OrganizationId)),
                )
                .and_where(organization::Column::County.eq(county.trim()))
                .cond_where(viewer.visible_memberships())
                .to_owned();
            select = select.filter(procurement::Column::Id.in_subquery(in_county));
        }
        if let Some(municipality) = filter.municipality {
            let org = row_id(&municipality, NodeType::Organization)
                .ok_or_else(|| ApiError::BadUserInput("`municipality` is not an organisation id".into()))?;
            let taking_part = SqlQuery::select()
                .column(participant::Column::ProcurementId)
                .from(participant::Entity)
                .and_where(participant::Column::OrganizationId.eq(org))
                .cond_where(viewer.visible_memberships())
                .to_owned();
            select = select.filter(procurement::Column::Id.in_subquery(taking_part));
        }
        if let Some(supplier) = filter.supplier {
            let org = row_id(&supplier, NodeType::Organization)
                .ok_or_else(|| ApiError::BadUserInput("`supplier` is not an organisation id".into()))?;
            let won = SqlQuery::select()
                .column(framework_agreement::Column::ProcurementId)
                .from(framework_agreement::Entity)
                .and_where(framework_agreement::Column::SupplierId.eq(org))
                .to_owned();
            let awarded = SqlQuery::select()
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
        let sort = match order.field {
            ProcurementOrderField::Title => SortKey::text(procurement::Column::Title),
            ProcurementOrderField::CreatedAt => SortKey::integer(procurement::Column::Id),
        };
        page_sorted(ctx, select, sort, procurement::Column::Id, order.direction, &page, |row| {
            let key = match order.field {
                ProcurementOrderField::Title => serde_json::json!(row.title),
                ProcurementOrderField::CreatedAt => serde_json::json!(row.id),
            };
            (Cursor { key, id: row.id }, Procurement(row))
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// `node(id:)`, with the same visibility as the connections: an object the viewer may not see is
// `None`, exactly like a missing one.

impl NodeObject for Procurement {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Procurement>, ApiError> {
        match load_one(ctx, ProcurementById(id)).await? {
            Some(p) if access(ctx, &p).await?.can_see(&p) => Ok(Some(Procurement(p))),
            _ => Ok(None),
        }
    }
}
