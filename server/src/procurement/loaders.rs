//! DataLoader keys of procurement's tables (see `graphql::loaders`).

use super::model::{
    activity_attendee, award, dialogue_activity, evaluation_criterion, journey_step, need, participant,
    phase_transition, procurement, score, solution_sketch, tender, tender_response, user_story,
};
use crate::graphql::loaders::{by_id, children};

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
