//! DataLoader keys of procurement's tables (see `graphql::loaders`).

use super::model::{
    activity_attendee, award, dialogue_activity, evaluation_criterion, journey_step, need, participant,
    phase_transition, procurement, score, solution_sketch, tender, tender_response, user_story,
};
use crate::graphql::loaders::{DbLoader, by_id, children};

by_id!(ProcurementById, procurement);
by_id!(UserStoryById, user_story);
by_id!(TenderById, tender);
by_id!(TenderResponseById, tender_response);
by_id!(AwardById, award);
by_id!(CriterionById, evaluation_criterion);
by_id!(JourneyStepById, journey_step);
children!(ParticipantsOf, participant, ProcurementId, procurement_id);
children!(TransitionsOf, phase_transition, ProcurementId, procurement_id);
children!(JourneyStepsOf, journey_step, ProcurementId, procurement_id);
children!(NeedsOf, need, ProcurementId, procurement_id);
children!(ActivitiesOf, dialogue_activity, ProcurementId, procurement_id);
children!(AttendeesOf, activity_attendee, ActivityId, activity_id);
children!(SketchesOf, solution_sketch, ProcurementId, procurement_id);
children!(UserStoriesOf, user_story, ProcurementId, procurement_id);
children!(TendersOf, tender, ProcurementId, procurement_id);
children!(ResponsesOf, tender_response, TenderId, tender_id);
children!(ResponsesToStory, tender_response, UserStoryId, user_story_id);
children!(CriteriaOf, evaluation_criterion, ProcurementId, procurement_id);
children!(ScoresOf, score, TenderResponseId, tender_response_id);
children!(AwardsOf, award, ProcurementId, procurement_id);
children!(AwardsForStory, award, UserStoryId, user_story_id);
children!(ParticipationsOf, participant, OrganizationId, organization_id);

/// `SupplierOfResponse(response)`: the supplier whose tender holds the response, read in one
/// statement. An award names its supplier through the winning response's tender; following
/// that as two loads (the response, then the tender) cost a list of awards two more batches and
/// both rows of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SupplierOfResponse(pub i64);

impl async_graphql::dataloader::Loader<SupplierOfResponse> for DbLoader {
    type Value = i64;
    type Error = std::sync::Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[SupplierOfResponse],
    ) -> Result<std::collections::HashMap<SupplierOfResponse, i64>, Self::Error> {
        use sea_orm::{ColumnTrait, EntityTrait, JoinType, QueryFilter, QuerySelect};
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let tender_of_response = tender_response::Entity::belongs_to(tender::Entity)
            .from(tender_response::Column::TenderId)
            .to(tender::Column::Id)
            .into();
        let pairs: Vec<(i64, i64)> = tender_response::Entity::find()
            .select_only()
            .column(tender_response::Column::Id)
            .column(tender::Column::SupplierId)
            .join(JoinType::InnerJoin, tender_of_response)
            .filter(tender_response::Column::Id.is_in(ids))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(std::sync::Arc::new)?;
        Ok(pairs.into_iter().map(|(response, supplier)| (SupplierOfResponse(response), supplier)).collect())
    }
}
