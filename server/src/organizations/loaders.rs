//! DataLoader keys of organisations (see `graphql::loaders`).

use super::model as organization;
use crate::graphql::loaders::by_id;

by_id!(OrganizationById, organization);
