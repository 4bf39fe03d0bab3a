//! DataLoader keys of procurement's tables (see `graphql::loaders`).

use super::model::{
    activity_attendee, award, dialogue_activity, evaluation_criterion, journey_step, need, participant,
    phase_transition, procurement, score, solution_sketch, tender, tender_response, user_story,
};
use std::collections::HashMap;

use sea_orm::{ColumnTrait, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder, QuerySelect};

use crate::graphql::loaders::{DbLoader, by_id, children};
use crate::organizations::model as organization;

by_id!(ProcurementById, procurement);
by_id!(UserStoryById, user_story);
by_id!(TenderById, tender);
by_id!(TenderResponseById, tender_response);
by_id!(AwardById, award);
by_id!(CriterionById, evaluation_criterion);
by_id!(JourneyStepById, journey_step);
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

/// `ParticipantsOf(procurement)`: its participants in id order, each with its organisation, in
/// one statement. A page of procurements names organisations on three levels (each lead, each
/// participant, each awarded supplier): loaded by id they were three batches a request; joined
/// here and in [`SupplierOfResponse`] they are none, since the lead is a participant too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParticipantsOf(pub i64);

/// A participant with the organisation it names.
#[derive(Clone, Debug)]
pub struct Member {
    pub row: participant::Model,
    pub organization: organization::Model,
}

impl async_graphql::dataloader::Loader<ParticipantsOf> for DbLoader {
    type Value = Vec<Member>;
    type Error = std::sync::Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[ParticipantsOf]) -> Result<HashMap<ParticipantsOf, Vec<Member>>, Self::Error> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let organization_of_participant = participant::Entity::belongs_to(organization::Entity)
            .from(participant::Column::OrganizationId)
            .to(organization::Column::Id)
            .into();
        let rows = participant::Entity::find()
            .join(JoinType::InnerJoin, organization_of_participant)
            .select_also(organization::Entity)
            .filter(participant::Column::ProcurementId.is_in(ids))
            .order_by_asc(participant::Column::Id)
            .all(&self.db)
            .await
            .map_err(std::sync::Arc::new)?;
        let mut grouped: HashMap<ParticipantsOf, Vec<Member>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        // The inner join gives every row its organisation (a foreign key besides).
        for (row, organization) in rows {
            if let Some(organization) = organization {
                grouped.entry(ParticipantsOf(row.procurement_id)).or_default().push(Member { row, organization });
            }
        }
        Ok(grouped)
    }
}

/// `SupplierOfResponse(response)`: the organisation whose tender holds the response, read in
/// one statement. An award names its supplier through the winning response's tender; following
/// that as loads by id (the response, the tender, the organisation) cost a list of awards three
/// batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SupplierOfResponse(pub i64);

#[derive(FromQueryResult)]
struct ResponseId {
    id: i64,
}

impl async_graphql::dataloader::Loader<SupplierOfResponse> for DbLoader {
    type Value = organization::Model;
    type Error = std::sync::Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[SupplierOfResponse],
    ) -> Result<HashMap<SupplierOfResponse, organization::Model>, Self::Error> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let tender_of_response = tender_response::Entity::belongs_to(tender::Entity)
            .from(tender_response::Column::TenderId)
            .to(tender::Column::Id)
            .into();
        let supplier_of_tender = tender::Entity::belongs_to(organization::Entity)
            .from(tender::Column::SupplierId)
            .to(organization::Column::Id)
            .into();
        let rows = tender_response::Entity::find()
            .select_only()
            .column(tender_response::Column::Id)
            .join(JoinType::InnerJoin, tender_of_response)
            .join(JoinType::InnerJoin, supplier_of_tender)
            .select_also(organization::Entity)
            .filter(tender_response::Column::Id.is_in(ids))
            .into_model::<ResponseId, organization::Model>()
            .all(&self.db)
            .await
            .map_err(std::sync::Arc::new)?;
        Ok(rows
            .into_iter()
            .filter_map(|(response, supplier)| Some((SupplierOfResponse(response.id), supplier?)))
            .collect())
    }
}
