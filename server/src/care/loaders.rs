//! DataLoader keys of care operations (see `graphql::loaders`).

use super::model::{assessment, recipient_status_change, service_recipient};
use crate::graphql::loaders::{by_id, children};

by_id!(RecipientById, service_recipient);
by_id!(AssessmentById, assessment);
children!(AssessmentsOf, assessment, RecipientId, recipient_id);
children!(RecipientHistory, recipient_status_change, RecipientId, recipient_id);
