//! GraphQL face of devices and their adapters: signing keys, adapter upload and lifecycle,
//! replay review, device registration, events and dead letters.
//!
//! One file per resource: products, adapters and signing keys (`adapters.rs`); devices, events
//! and dead letters (`events.rs`); the lists (`query.rs`); the mutations (`mutations.rs`).
//!
//! Who sees what: a municipality sees its own devices, their events and the dead letters that
//! name them, received since it took the device into service; a supplier sees its products, their adapters and dead letters, and the devices
//! and events of its products without recipient data; admins see everything but recipient
//! data.

use std::io::Read;

use async_graphql::{
    Context, ID, InputObject, Json, MaybeUndefined, Object, Result, SimpleObject, Subscription, Upload,
};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use sea_orm::sea_query::ExprTrait;
use sea_orm::sea_query::Query as SqlQuery;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};

use super::adapter_limits::{EffectiveLimits, RequestedLimits};
use super::identifiers::{DeviceSerial, ProductSlug};
use super::ingest::{self, MessageResult, MessageStatus};
use super::model::{
    AdapterStatus, DeviceStatus, LimitsApproval, adapter, dead_letter, device, device_delivery, device_event,
    device_product, device_status_change, signing_key,
};
use super::review::{self, ReplayReview};
use super::rules::{self, DevicesError, RuleResult};
use crate::agreements::graphql::CallOff;
use crate::auth::Role;
use crate::care::graphql::{ServiceRecipient, case_worker_municipality, read_recipient_by_id};
use crate::errors::{ApiError, Invalid, Refusal, ensure, refuse};
use crate::graphql::connection::{OrderDirection, Page, PageArgs, page_by_id};
use crate::graphql::context::{caller, in_transaction, load_existing, load_one, require_role, session, state};
use crate::graphql::errors::{UserError, payload};
use crate::graphql::loaders::*;
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, global_id, input_row, row_id};
use crate::organizations::{Organization, OrganizationKind};
use velferd_macros::connections;

mod adapters;
mod events;
mod mutations;
mod query;

// `Query`, `Mutation` and `Subscription` name the area's roots for the area table, `crate::areas!`.
pub use adapters::*;
pub use events::{DeviceSubscription as Subscription, *};
pub use mutations::{DeviceMutation as Mutation, *};
pub use query::{DeviceQuery as Query, *};

/// Most dead letters one `deadLettersReplay` handles; call it again for more.
const MAX_REPLAY: u64 = 100;
/// Most messages one replay review decodes (twice each).
const MAX_REVIEW: i32 = 200;

/// The viewer's standing towards devices.
#[derive(Clone, Copy)]
struct DeviceViewer {
    org_id: Option<i64>,
    kind: Option<OrganizationKind>,
    admin: bool,
    /// Holds the `supplier` role: its staff, not its machine (`integration`) tokens, manage
    /// its adapters.
    supplier_staff: bool,
}

impl DeviceViewer {
    async fn of(ctx: &Context<'_>) -> Result<DeviceViewer, ApiError> {
        let session = session(ctx);
        let org = session.grant.require_registered("devices")?;
        Ok(DeviceViewer {
            org_id: Some(org.id),
            kind: Some(org.kind),
            admin: session.has_role(Role::Admin),
            supplier_staff: session.has_role(Role::Supplier),
        })
    }

    fn supplier(&self) -> Option<i64> {
        self.org_id.filter(|_| self.kind == Some(OrganizationKind::Supplier))
    }

    fn municipality(&self) -> Option<i64> {
        self.org_id.filter(|_| self.kind == Some(OrganizationKind::Municipality))
    }

    /// Admins and the staff of the supplier that owns the product.
    fn manages(&self, product: &device_product::Model) -> bool {
        self.admin || (self.supplier_staff && self.supplier() == Some(product.supplier_id))
    }

    fn sees_device(&self, d: &device::Model, product: &device_product::Model) -> bool {
        self.sees(d.municipality_id, product.supplier_id)
    }

    /// Admins see every device, a municipality its own, a supplier those of its products.
    fn sees(&self, municipality_id: i64, supplier_id: i64) -> bool {
        let scope = crate::live::Scope { municipality_id: Some(municipality_id), organization_id: Some(supplier_id) };
        self.interest().admits(&scope)
    }

    /// The same rule as [`DeviceViewer::sees`], over the scope a device's changes are
    /// announced with (its municipality, its product's supplier).
    fn interest(&self) -> crate::live::Interest {
        if self.admin {
            return crate::live::Interest::Everything;
        }
        crate::live::Interest::Scoped { municipality: self.municipality(), organization: self.supplier() }
    }

    /// The devices the viewer may see, as a filter on `device`.
    fn device_condition(&self) -> Condition {
        if self.admin {
            return Condition::all();
        }
        let mut any = Condition::any();
        if let Some(m) = self.municipality() {
            any = any.add(device::Column::MunicipalityId.eq(m));
        }
        if let Some(s) = self.supplier() {
            any = any.add(device::Column::ProductId.in_subquery(products_of(s)));
        }
        // No branch: nothing (an empty `any` is false).
        any
    }

    /// The dead letters the viewer may see: its products' (suppliers) or those naming one of
    /// its devices (municipalities).
    fn dead_letter_condition(&self) -> Condition {
        if self.admin {
            return Condition::all();
        }
        let mut any = Condition::any();
        if let Some(s) = self.supplier() {
            any = any.add(dead_letter::Column::ProductId.in_subquery(products_of(s)));
        }
        if let Some(m) = self.municipality() {
            // Only what the device sent since the municipality took it into service: what came
            // before (at the supplier, or at another owner) is not the new owner's to read.
            let named = SqlQuery::select()
                .column(device::Column::Serial)
                .from(device::Entity)
                .and_where(device::Column::MunicipalityId.eq(m))
                .and_where(
                    sea_orm::sea_query::Expr::col((device::Entity, device::Column::ProductId))
                        .equals((dead_letter::Entity, dead_letter::Column::ProductId)),
                )
                .and_where(
                    sea_orm::sea_query::Expr::col((dead_letter::Entity, dead_letter::Column::FirstReceivedAt))
                        .gte(sea_orm::sea_query::Expr::col((device::Entity, device::Column::RegisteredAt))),
                )
                .to_owned();
            any = any.add(dead_letter::Column::DeviceSerial.in_subquery(named));
        }
        any
    }
}

fn products_of(supplier_id: i64) -> sea_orm::sea_query::SelectStatement {
    SqlQuery::select()
        .column(device_product::Column::Id)
        .from(device_product::Entity)
        .and_where(device_product::Column::SupplierId.eq(supplier_id))
        .to_owned()
}

fn slug_argument(slug: &str) -> Result<ProductSlug, ApiError> {
    slug.parse().map_err(ApiError::BadUserInput)
}

async fn product_by_slug(ctx: &Context<'_>, slug: &ProductSlug) -> Result<Option<device_product::Model>, ApiError> {
    Ok(device_product::Entity::find()
        .filter(device_product::Column::Slug.eq(slug.as_str()))
        .one(state(ctx).db.read())
        .await?)
}

/// The signed-in viewer's standing towards devices; `None` for anonymous callers.
async fn device_viewer(ctx: &Context<'_>) -> Result<Option<DeviceViewer>, ApiError> {
    if session(ctx).organization().is_none() {
        return Ok(None);
    }
    Ok(Some(DeviceViewer::of(ctx).await?))
}
