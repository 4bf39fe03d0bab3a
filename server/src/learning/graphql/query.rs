//! The learning lists: networks, experience reports (with search), reuses and arenas.

use super::*;

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

#[connections]
#[Object]
impl LearningQuery {
    /// Learning networks; their names are public.
    async fn learning_networks(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<LearningNetwork>> {
        let page = page.parse()?;
        page_by_id(
            ctx,
            OrderDirection::Asc,
            learning_network::Entity::find(),
            learning_network::Column::Id,
            &page,
            |n| n.id,
            LearningNetwork,
        )
        .await
    }

    /// Experience reports you may read: public ones for everyone; members-only ones for the
    /// procurement's municipalities (followers too), the network's members, the author,
    /// programme advisers and admins. `search` matches every word of it in the title, summary
    /// or lessons (full-text, ignoring case).
    async fn experience_reports(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        filter: Option<ExperienceReportFilter>,
        page: PageArgs,
    ) -> Result<Page<ExperienceReport>> {
        let page = page.parse()?;
        let filter = filter.unwrap_or_default();
        let reader = Reader::of(ctx).await?;
        use experience_report::Column;
        let mut select = experience_report::Entity::find()
            .filter(reader.condition())
            .filter_id(Column::ProcurementId, &filter.procurement, NodeType::Procurement, "procurement")?
            .filter_id(Column::AuthorId, &filter.author, NodeType::Organization, "author")?
            .apply_if(filter.phase, |select, phase| select.filter(Column::Phase.eq(phase)));
        if let Some(query) = search.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            if query.chars().count() > 200 {
                return Err(ApiError::BadUserInput("`search` is at most 200 characters".into()).into());
            }
            select = select.filter(search::matches(state(ctx).db.backend(), query));
        }
        page_by_id(ctx, OrderDirection::Asc, select, experience_report::Column::Id, &page, |r| r.id, ExperienceReport)
            .await
    }

    /// Procurements started from another by reuse: pass `source` to see who reused a
    /// procurement, `procurement` to see where one came from. Signed-in users only.
    async fn procurement_reuses(
        &self,
        ctx: &Context<'_>,
        source: Option<ID>,
        procurement: Option<ID>,
        page: PageArgs,
    ) -> Result<Page<ProcurementReuse>> {
        require_signed_in(ctx, "reuse between procurements")?;
        let page = page.parse()?;
        let select = procurement_reuse::Entity::find()
            .filter_id(procurement_reuse::Column::SourceId, &source, NodeType::Procurement, "source")?
            .filter_id(procurement_reuse::Column::CopyId, &procurement, NodeType::Procurement, "procurement")?;
        page_by_id(ctx, OrderDirection::Asc, select, procurement_reuse::Column::Id, &page, |r| r.id, ProcurementReuse)
            .await
    }

    /// Learning arenas of all procurements (or one), with their attendance. Signed-in users
    /// only, like the dialogue activities they are.
    async fn learning_arenas(
        &self,
        ctx: &Context<'_>,
        procurement: Option<ID>,
        page: PageArgs,
    ) -> Result<Page<LearningArena>> {
        require_signed_in(ctx, "learning arenas")?;
        let page = page.parse()?;
        use dialogue_activity::Column;
        let select = dialogue_activity::Entity::find().filter(Column::Kind.eq(ActivityKind::LearningArena)).filter_id(
            Column::ProcurementId,
            &procurement,
            NodeType::Procurement,
            "procurement",
        )?;
        page_by_id(ctx, OrderDirection::Asc, select, dialogue_activity::Column::Id, &page, |a| a.id, LearningArena)
            .await
    }
}
