//! One DataLoader for every relation: each key type below is one batched query, so a request's
//! SQL statement count depends on the shape of the query, not on how many rows it returns.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::agreements::model::{call_off, framework_agreement};
use crate::devices::model::{adapter, device, device_product, signing_key};
use crate::learning::model::{
    experience_report, gathering, gathering_attendance, learning_network, lesson, network_member, procurement_reuse,
    reused_item,
};
use crate::organizations::model as organization;
use crate::procurement::model::{
    activity_attendee, award, dialogue_activity, evaluation_criterion, journey_step, need, participant,
    phase_transition, procurement, score, solution_sketch, tender, tender_response, user_story,
};

pub struct DbLoader {
    db: DatabaseConnection,
}

impl DbLoader {
    pub fn new(db: DatabaseConnection) -> DbLoader {
        DbLoader { db }
    }
}

/// `$key(id)` loads the row of `$entity` with that id.
macro_rules! by_id {
    ($key:ident, $entity:ident) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for DbLoader {
            type Value = $entity::Model;
            type Error = Arc<DbErr>;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, Self::Value>, Self::Error> {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                let rows = $entity::Entity::find()
                    .filter($entity::Column::Id.is_in(ids))
                    .all(&self.db)
                    .await
                    .map_err(Arc::new)?;
                Ok(rows.into_iter().map(|row| ($key(row.id), row)).collect())
            }
        }
    };
}

/// `$key(parent)` loads the rows of `$entity` whose `$column` is `parent`, in id order.
macro_rules! children {
    ($key:ident, $entity:ident, $column:ident, $field:ident) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $key(pub i64);

        impl Loader<$key> for DbLoader {
            type Value = Vec<$entity::Model>;
            type Error = Arc<DbErr>;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, Self::Value>, Self::Error> {
                let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
                let rows = $entity::Entity::find()
                    .filter($entity::Column::$column.is_in(ids))
                    .order_by_asc($entity::Column::Id)
                    .all(&self.db)
                    .await
                    .map_err(Arc::new)?;
                let mut grouped: HashMap<$key, Vec<$entity::Model>> = keys.iter().map(|k| (*k, Vec::new())).collect();
                for row in rows {
                    grouped.entry($key(row.$field)).or_default().push(row);
                }
                Ok(grouped)
            }
        }
    };
}

by_id!(OrganizationById, organization);
by_id!(ProcurementById, procurement);
by_id!(UserStoryById, user_story);
by_id!(TenderById, tender);
by_id!(TenderResponseById, tender_response);
by_id!(AwardById, award);
by_id!(AgreementById, framework_agreement);
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
children!(AgreementsOf, framework_agreement, ProcurementId, procurement_id);
children!(CallOffsUnder, call_off, AgreementId, agreement_id);
children!(ParticipationsOf, participant, OrganizationId, organization_id);

by_id!(NetworkById, learning_network);
by_id!(GatheringById, gathering);
by_id!(ReportById, experience_report);
by_id!(ReuseById, procurement_reuse);
children!(MembersOfNetwork, network_member, NetworkId, network_id);
children!(NetworkMembershipsOf, network_member, OrganizationId, organization_id);
children!(GatheringsOf, gathering, NetworkId, network_id);
children!(AttendanceAt, gathering_attendance, GatheringId, gathering_id);
children!(LessonsOf, lesson, ReportId, report_id);
children!(ReusedItemsOf, reused_item, ReuseId, reuse_id);

by_id!(ProductById, device_product);
by_id!(DeviceById, device);
by_id!(SigningKeyById, signing_key);

/// `AdapterById(id)` loads an adapter without its component's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdapterById(pub i64);

impl Loader<AdapterById> for DbLoader {
    type Value = adapter::Summary;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[AdapterById]) -> Result<HashMap<AdapterById, Self::Value>, Self::Error> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows: Vec<adapter::Summary> = adapter::Entity::find()
            .filter(adapter::Column::Id.is_in(ids))
            .into_partial_model()
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows.into_iter().map(|row| (AdapterById(row.id), row)).collect())
    }
}

/// `AdaptersOf(product)` loads a product's adapter versions, oldest first, without their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdaptersOf(pub i64);

impl Loader<AdaptersOf> for DbLoader {
    type Value = Vec<adapter::Summary>;
    type Error = Arc<DbErr>;

    async fn load(&self, keys: &[AdaptersOf]) -> Result<HashMap<AdaptersOf, Self::Value>, Self::Error> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let rows: Vec<adapter::Summary> = adapter::Entity::find()
            .filter(adapter::Column::ProductId.is_in(ids))
            .order_by_asc(adapter::Column::Id)
            .into_partial_model()
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        let mut grouped: HashMap<AdaptersOf, Vec<adapter::Summary>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            grouped.entry(AdaptersOf(row.product_id)).or_default().push(row);
        }
        Ok(grouped)
    }
}
by_id!(CallOffById, call_off);
