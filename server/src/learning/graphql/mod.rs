//! GraphQL face of learning across municipalities: networks and their gatherings with attendance
//! per organisation, experience reports with lessons and full-text search, learning arenas, and
//! follower reuse of a procurement with provenance.
//!
//! One file per resource: networks and gatherings (`networks.rs`); experience reports, reuse
//! and learning arenas (`reports.rs`); the lists (`query.rs`); the mutations (`mutations.rs`).

use std::collections::HashSet;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::NaiveDate;
use sea_orm::sea_query::Query as SqlQuery;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryTrait};

use super::model::{
    ReusedKind, experience_report, gathering, gathering_attendance, learning_network, lesson, network_member,
    procurement_reuse, reused_item,
};
use super::rules::{self, NewGathering, NewReport};
use super::search;
use crate::auth::Role;
use crate::errors::{ApiError, Invalid};
use crate::graphql::connection::{OrderDirection, Page, PageArgs, load_page, page_by_id, page_in_memory};
use crate::graphql::context::{caller, load_existing, load_one, mutate, session, state, today};
use crate::graphql::errors::payload;
use crate::graphql::loaders::*;
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{FilterById, NodeType, input_row};
use crate::organizations::Organization;
use crate::procurement::graphql::access;
use crate::procurement::graphql::{Attendee, Procurement};
use crate::procurement::model::{ActivityKind, dialogue_activity, participant};
use crate::procurement::phase::Phase;
use velferd_macros::{connections, row_fields};

mod mutations;
mod networks;
mod query;
mod reports;

// `Query`, `Mutation` and `Subscription` name the area's roots for the area table, `crate::areas!`.
pub use mutations::{LearningMutation as Mutation, *};
pub use networks::*;
pub use query::{LearningQuery as Query, *};
pub use reports::*;

fn require_signed_in(ctx: &Context<'_>, what: &str) -> Result<(), ApiError> {
    session(ctx).grant.require_registered(what).map(drop)
}

/// A procurement, when the viewer may see it (anonymous viewers: with a published notice).
async fn visible_procurement(ctx: &Context<'_>, id: i64) -> Result<Option<Procurement>> {
    let Some(p) = load_one(ctx, ProcurementById(id)).await? else { return Ok(None) };
    Ok(access(ctx, &p).await?.can_see(&p).then_some(Procurement(p)))
}

/// The viewer's standing towards learning material: members-only reports are for the
/// procurement's municipalities (lead, participants, followers), members of the network the
/// report is shared in, the author, programme advisers and admins.
struct Reader {
    org_id: Option<i64>,
    sees_all: bool,
    procurements: HashSet<i64>,
    networks: HashSet<i64>,
}

impl Reader {
    async fn of(ctx: &Context<'_>) -> Result<Reader, ApiError> {
        let session = session(ctx);
        let org_id = session.organization_id();
        // A token of an unregistered organisation reads as anonymous callers do.
        let signed_in = session.organization().is_some();
        let (mut procurements, mut networks) = (HashSet::new(), HashSet::new());
        if let Some(org) = org_id {
            procurements = load_one(ctx, ParticipationsOf(org))
                .await?
                .unwrap_or_default()
                .iter()
                .map(|p| p.procurement_id)
                .collect();
            networks = load_one(ctx, NetworkMembershipsOf(org))
                .await?
                .unwrap_or_default()
                .iter()
                .map(|m| m.network_id)
                .collect();
        }
        Ok(Reader {
            org_id,
            sees_all: signed_in && (session.has_role(Role::Advisor) || session.has_role(Role::Admin)),
            procurements,
            networks,
        })
    }

    fn can_read(&self, r: &experience_report::Model) -> bool {
        r.public
            || self.sees_all
            || self.org_id == Some(r.author_id)
            || self.procurements.contains(&r.procurement_id)
            || r.network_id.is_some_and(|n| self.networks.contains(&n))
    }

    /// The same rule as [`Reader::can_read`], as a filter on `experience_report`.
    fn condition(&self) -> Condition {
        if self.sees_all {
            return Condition::all();
        }
        let mut any = Condition::any().add(experience_report::Column::Public.eq(true));
        if let Some(org) = self.org_id {
            let taking_part = SqlQuery::select()
                .column(participant::Column::ProcurementId)
                .from(participant::Entity)
                .and_where(participant::Column::OrganizationId.eq(org))
                .to_owned();
            let member_of = SqlQuery::select()
                .column(network_member::Column::NetworkId)
                .from(network_member::Entity)
                .and_where(network_member::Column::OrganizationId.eq(org))
                .to_owned();
            any = any
                .add(experience_report::Column::AuthorId.eq(org))
                .add(experience_report::Column::ProcurementId.in_subquery(taking_part))
                .add(experience_report::Column::NetworkId.in_subquery(member_of));
        }
        any
    }
}
