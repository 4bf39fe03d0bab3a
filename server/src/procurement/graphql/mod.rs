//! GraphQL face of procurements, one file per resource: the procurement itself and its list
//! (`lifecycle.rs`), the needs and dialogue phases (`needs.rs`), the competition
//! (`competition.rs`) and the mutations of all three (`mutations.rs`).

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{ExprTrait, Query as SqlQuery};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::access::{Access, Viewer};
use super::model::{
    ActivityKind, Category, ParticipantRole, activity_attendee, award, dialogue_activity, evaluation_criterion,
    journey_step, need, participant, phase_transition, procurement, solution_sketch, tender, tender_response,
    user_story,
};
use super::phase::Phase;
use super::rules::{self, NewActivity, NewNotice, NewProcurement, NewResponse, NewSketch, NewUserStory};
use super::values::{self, CriterionName, Reference, StoryCode, Weight};
use crate::agreements::graphql::FrameworkAgreement;
use crate::agreements::model::framework_agreement;
use crate::auth::Role;
use crate::errors::{ApiError, Invalid, bounded};
use crate::graphql::connection::{Cursor, OrderDirection, Page, PageArgs, SortKey, load_page, page_sorted};
use crate::graphql::context::{caller, load_existing, load_one, mutate, session, state, today};
use crate::graphql::errors::payload;
use crate::graphql::loaders::*;
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, global_id, input_row, row_id};
use crate::money::{Money, MoneyInput, Nok};
use crate::organizations::{Organization, model as organization};
use crate::text::{LongText, Paragraph, Title};
use velferd_macros::{connections, row_fields};

mod competition;
mod lifecycle;
mod mutations;
mod needs;

// `Query`, `Mutation` and `Subscription` name the area's roots for the area table, `crate::areas!`.
pub use competition::*;
pub use lifecycle::{ProcurementQuery as Query, *};
pub use mutations::{ProcurementMutation as Mutation, *};
pub use needs::*;

/// The caller as the procurement rules see it, from the request's session.
pub(crate) async fn viewer(ctx: &Context<'_>) -> Result<Viewer, ApiError> {
    let session = session(ctx);
    Ok(Viewer::new(&session.grant))
}

/// The caller's standing towards `p` (its participants are loaded only for a caller with an
/// organisation, the only one they matter for).
pub(crate) async fn access(ctx: &Context<'_>, p: &procurement::Model) -> Result<Access, ApiError> {
    let viewer = viewer(ctx).await?;
    let participants = match viewer.org_id {
        Some(_) => load_one(ctx, ParticipantsOf(p.id)).await?.unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Access::of(&viewer, p, participants.iter().map(|m| &m.row)))
}

async fn procurement_row(ctx: &Context<'_>, id: i64) -> Result<procurement::Model> {
    Ok(load_existing(ctx, ProcurementById(id), "procurement").await?)
}
