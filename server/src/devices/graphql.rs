//! GraphQL face of devices and their adapters: signing keys, adapter upload and lifecycle,
//! replay review, device registration, events and dead letters.
//!
//! Who sees what: a municipality sees its own devices, their events and the dead letters that
//! name them; a supplier sees its products, their adapters and dead letters, and the devices
//! and events of its products without recipient data; admins see everything but recipient
//! data.

use std::io::Read;

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, InputObject, Json, Object, Result, SimpleObject, Subscription, Upload, ID};
use futures_util::{Stream, StreamExt};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Query;
use sea_orm::sea_query::ExprTrait;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};

use super::identifiers::ProductSlug;
use super::ingest::{self, MessageResult, MessageStatus};
use super::model::{AdapterStatus, adapter, dead_letter, device, device_event, device_product, signing_key};
use super::review::{self, ReplayReview};
use super::rules::{self, DevicesError, RuleResult};
use crate::agreements::graphql::CallOff;
use crate::auth::Role;
use crate::errors::{ApiError, Invalid, Refusal, ensure, refuse};
use crate::graphql::connection::{OrderDirection, PageRequest, TotalCount, page_by_id, page_complexity};
use crate::graphql::context::{caller, in_transaction, load_existing, load_one, require_role, session, state};
use crate::graphql::errors::{UserError, payload};
use crate::graphql::loaders::*;
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, global_id, input_row, row_id};
use crate::organizations::{Organization, OrganizationKind};

type Page<T> = Connection<String, T, TotalCount>;

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
        if session.actor.principal().is_none() {
            return Err(ApiError::Unauthenticated("sign in to see devices".into()));
        }
        let org = session.organization().await?;
        Ok(DeviceViewer {
            org_id: org.map(|o| o.id),
            kind: org.map(|o| o.kind),
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
        self.admin || self.municipality() == Some(municipality_id) || self.supplier() == Some(supplier_id)
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
            let named = Query::select()
                .column(device::Column::Serial)
                .from(device::Entity)
                .and_where(device::Column::MunicipalityId.eq(m))
                .and_where(sea_orm::sea_query::Expr::col((device::Entity, device::Column::ProductId)).equals((dead_letter::Entity, dead_letter::Column::ProductId)))
                .to_owned();
            any = any.add(dead_letter::Column::DeviceSerial.in_subquery(named));
        }
        any
    }
}

fn products_of(supplier_id: i64) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(device_product::Column::Id)
        .from(device_product::Entity)
        .and_where(device_product::Column::SupplierId.eq(supplier_id))
        .to_owned()
}

fn slug_argument(slug: &str) -> Result<ProductSlug, ApiError> {
    slug.parse().map_err(ApiError::BadUserInput)
}

async fn product_by_slug(ctx: &Context<'_>, slug: &ProductSlug) -> Result<Option<device_product::Model>, ApiError> {
    Ok(device_product::Entity::find().filter(device_product::Column::Slug.eq(slug.as_str())).one(state(ctx).db.read()).await?)
}

// ---------------------------------------------------------------------------------------------
// Products and adapters

/// A supplier's device product: the unit adapters are uploaded for and messages are posted to
/// (`POST /ingest/{slug}`).
#[derive(Clone)]
pub struct DeviceProduct(pub device_product::Model);

#[Object]
impl DeviceProduct {
    pub async fn id(&self) -> ID {
        global_id(NodeType::DeviceProduct, self.0.id)
    }

    /// The product's slug, e.g. `reference-dispenser`.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    async fn supplier(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.supplier_id).await
    }

    /// The version that decodes the product's messages now.
    async fn active_adapter(&self, ctx: &Context<'_>) -> Result<Option<Adapter>> {
        let rows = load_one(ctx, AdaptersOf(self.0.id)).await?.unwrap_or_default();
        Ok(rows.into_iter().find(|a| a.status == AdapterStatus::Active).map(Adapter))
    }

    /// Every uploaded version, newest first. The supplier and admins only; null for others.
    async fn adapters(&self, ctx: &Context<'_>) -> Result<Option<Vec<Adapter>>> {
        if !DeviceViewer::of(ctx).await?.manages(&self.0) {
            return Ok(None);
        }
        let mut rows = load_one(ctx, AdaptersOf(self.0.id)).await?.unwrap_or_default();
        rows.reverse();
        Ok(Some(rows.into_iter().map(Adapter).collect()))
    }
}

/// One uploaded version of a product's adapter.
#[derive(Clone)]
pub struct Adapter(pub adapter::Summary);

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "snake_case")]
struct Description {
    supplier: String,
    product: String,
    device_classes: Vec<String>,
    content_types: Vec<String>,
}

impl Adapter {
    fn description(&self) -> Description {
        serde_json::from_str(&self.0.description).unwrap_or_default()
    }

    async fn managed_by_viewer(&self, ctx: &Context<'_>) -> Result<bool, ApiError> {
        let product = load_existing(ctx, ProductById(self.0.product_id), "device product").await?;
        Ok(DeviceViewer::of(ctx).await?.manages(&product))
    }
}

#[Object]
impl Adapter {
    pub async fn id(&self) -> ID {
        global_id(NodeType::Adapter, self.0.id)
    }

    async fn product(&self, ctx: &Context<'_>) -> Result<DeviceProduct> {
        Ok(DeviceProduct(load_existing(ctx, ProductById(self.0.product_id), "device product").await?))
    }

    async fn status(&self) -> AdapterStatus {
        self.0.status
    }

    /// The version the adapter reports in `describe`.
    async fn adapter_version(&self) -> &str {
        &self.0.adapter_version
    }

    /// The `velferd:device` contract version it was built against, e.g. `1.0.0`.
    async fn interface_version(&self) -> &str {
        &self.0.interface_version
    }

    /// Lower-case hex sha-256 of the component.
    async fn sha256(&self) -> &str {
        &self.0.sha256
    }

    async fn size_bytes(&self) -> i64 {
        self.0.size_bytes
    }

    /// The supplier name the adapter reports in `describe`.
    async fn described_supplier(&self) -> String {
        self.description().supplier
    }

    /// The product name the adapter reports in `describe`.
    async fn described_product(&self) -> String {
        self.description().product
    }

    /// Device classes, as in the WIT (`medication-dispenser` …).
    async fn device_classes(&self) -> Vec<String> {
        self.description().device_classes
    }

    async fn content_types(&self) -> Vec<String> {
        self.description().content_types
    }

    /// The signing key the upload's signature verified with. The product's supplier and
    /// admins; null for others.
    async fn signing_key(&self, ctx: &Context<'_>) -> Result<Option<SigningKey>> {
        if !self.managed_by_viewer(ctx).await? {
            return Ok(None);
        }
        Ok(Some(SigningKey(load_existing(ctx, SigningKeyById(self.0.signing_key_id), "signing key").await?)))
    }

    /// The token subject that uploaded it. The product's supplier and admins; null for others.
    async fn uploaded_by(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.managed_by_viewer(ctx).await?.then_some(self.0.uploaded_by.as_str()))
    }

    async fn uploaded_at(&self) -> DateTime<Utc> {
        self.0.uploaded_at.to_utc()
    }

    /// When it was first activated.
    async fn activated_at(&self) -> Option<DateTime<Utc>> {
        self.0.activated_at.map(|t| t.to_utc())
    }

    async fn retired_at(&self) -> Option<DateTime<Utc>> {
        self.0.retired_at.map(|t| t.to_utc())
    }

    /// Review by replay: runs this version and the product's active version over the `last`
    /// messages the product received (at most 200, newest first; bodies are kept for the most
    /// recent messages only) and shows, message by message, where their events differ. Admins
    /// and the product's supplier.
    async fn replay_review(&self, ctx: &Context<'_>, #[graphql(default = 50)] last: i32) -> Result<ReplayReview> {
        let product = load_existing(ctx, ProductById(self.0.product_id), "device product").await?;
        if !DeviceViewer::of(ctx).await?.manages(&product) {
            return Err(ApiError::Forbidden("only admins and the product's supplier may review its adapters".into()).into());
        }
        if !(1..=MAX_REVIEW).contains(&last) {
            return Err(ApiError::BadUserInput(format!("`last` must be 1 to {MAX_REVIEW}")).into());
        }
        let state = state(ctx);
        Ok(review::review(&state.db, &state.adapters, &product, self.0.id, last as u64).await?)
    }
}

/// A supplier's Ed25519 key for signing uploads.
#[derive(Clone)]
pub struct SigningKey(pub signing_key::Model);

#[Object]
impl SigningKey {
    pub async fn id(&self) -> ID {
        global_id(NodeType::SigningKey, self.0.id)
    }

    /// The raw 32-byte public key, base64.
    async fn public_key(&self) -> &str {
        &self.0.public_key
    }

    async fn label(&self) -> Option<&str> {
        self.0.label.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_utc()
    }

    /// Set once revoked; uploads signed with it are refused from then on.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at.map(|t| t.to_utc())
    }
}

// ---------------------------------------------------------------------------------------------
// Devices, events, dead letters

/// A device registered to a municipality.
#[derive(Clone)]
pub struct Device(pub device::Model);

#[Object]
impl Device {
    pub async fn id(&self) -> ID {
        global_id(NodeType::Device, self.0.id)
    }

    async fn serial(&self) -> &str {
        &self.0.serial
    }

    async fn product(&self, ctx: &Context<'_>) -> Result<DeviceProduct> {
        Ok(DeviceProduct(load_existing(ctx, ProductById(self.0.product_id), "device product").await?))
    }

    async fn municipality(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.municipality_id).await
    }

    /// The call-off it was bought or leased under. The owning municipality only.
    async fn call_off(&self, ctx: &Context<'_>) -> Result<Option<CallOff>> {
        let Some(id) = self.0.call_off_id else { return Ok(None) };
        if DeviceViewer::of(ctx).await?.municipality() != Some(self.0.municipality_id) {
            return Ok(None);
        }
        Ok(load_one(ctx, CallOffById(id)).await?.map(CallOff))
    }

    /// The municipality's reference to the service recipient. Recipient data: the owning
    /// municipality sees it; suppliers and admins get null.
    async fn recipient_ref(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        let owner = DeviceViewer::of(ctx).await?.municipality() == Some(self.0.municipality_id);
        Ok(if owner { self.0.recipient_ref.as_deref() } else { None })
    }

    async fn registered_at(&self) -> DateTime<Utc> {
        self.0.registered_at.to_utc()
    }

    /// The device's events, newest first.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeviceEventFilter>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<DeviceEvent>> {
        let page = PageRequest::parse(after, before, first, last)?;
        let select = filter.unwrap_or_default().apply(device_event::Entity::find().filter(device_event::Column::DeviceId.eq(self.0.id)));
        page_by_id(ctx, OrderDirection::Desc, select, device_event::Column::Id, &page, |e| e.id, DeviceEvent).await
    }
}

/// Severity on the VKP scale.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Not reported by the device (VKP 0).
    NotReported,
    /// VKP 10.
    Normal,
    /// VKP 20.
    Moderate,
    /// VKP 30.
    Serious,
    /// VKP 40.
    Critical,
}

impl Severity {
    const NAMES: [(Severity, &'static str); 5] = [
        (Severity::NotReported, "not-reported"),
        (Severity::Normal, "normal"),
        (Severity::Moderate, "moderate"),
        (Severity::Serious, "serious"),
        (Severity::Critical, "critical"),
    ];

    fn of(name: &str) -> Severity {
        Severity::NAMES.iter().find(|(_, n)| *n == name).map_or(Severity::NotReported, |(s, _)| *s)
    }

    /// This severity and every higher one, by stored name.
    fn at_least(self) -> Vec<&'static str> {
        Severity::NAMES.iter().filter(|(s, _)| *s >= self).map(|(_, n)| *n).collect()
    }
}

/// Narrows a list of device events.
#[derive(InputObject, Default)]
pub struct DeviceEventFilter {
    /// Only events of these kinds, named as in the WIT (`dose-missed`, `fall` …).
    pub kinds: Option<Vec<String>>,
    /// Only events at least this severe.
    pub min_severity: Option<Severity>,
}

impl DeviceEventFilter {
    /// The same narrowing as [`DeviceEventFilter::apply`], for one event in memory.
    fn matches(&self, event: &device_event::Model) -> bool {
        self.kinds.as_ref().is_none_or(|kinds| kinds.contains(&event.kind))
            && self.min_severity.is_none_or(|min| Severity::of(&event.severity) >= min)
    }

    fn apply(self, mut select: sea_orm::Select<device_event::Entity>) -> sea_orm::Select<device_event::Entity> {
        if let Some(kinds) = self.kinds {
            select = select.filter(device_event::Column::Kind.is_in(kinds));
        }
        if let Some(min) = self.min_severity {
            select = select.filter(device_event::Column::Severity.is_in(min.at_least()));
        }
        select
    }
}

/// A VKP code an event maps to.
#[derive(SimpleObject)]
pub struct VkpCoding {
    /// The code system's canonical URL.
    pub system: String,
    pub code: String,
}

/// A normalised device event, stored once per device and supplier event id.
#[derive(Clone)]
pub struct DeviceEvent(pub device_event::Model);

#[Object]
impl DeviceEvent {
    pub async fn id(&self) -> ID {
        global_id(NodeType::DeviceEvent, self.0.id)
    }

    async fn device(&self, ctx: &Context<'_>) -> Result<Device> {
        Ok(Device(load_existing(ctx, DeviceById(self.0.device_id), "device").await?))
    }

    /// The supplier's id of the event.
    async fn supplier_event_id(&self) -> &str {
        &self.0.supplier_event_id
    }

    /// The kind, named as in the WIT, e.g. `dose-missed`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }

    /// The hub, gateway or alarm base station that relayed the event, when the adapter names
    /// one (adapters built against `velferd:device@2` or later); `device` is the device that
    /// saw it.
    async fn gateway_serial(&self) -> Option<String> {
        let data: serde_json::Value = serde_json::from_str(&self.0.data).ok()?;
        Some(data.get("gateway_serial")?.as_str()?.to_string())
    }

    /// The VKP code the kind maps to, where one exists.
    async fn vkp(&self) -> Option<VkpCoding> {
        let data: serde_json::Value = serde_json::from_str(&self.0.data).ok()?;
        let vkp = data.get("vkp")?;
        Some(VkpCoding { system: vkp.get("system")?.as_str()?.to_string(), code: vkp.get("code")?.as_str()?.to_string() })
    }

    async fn severity(&self) -> Severity {
        Severity::of(&self.0.severity)
    }

    /// When it happened at the device.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at.to_utc()
    }

    /// When Velferd received it.
    async fn received_at(&self) -> DateTime<Utc> {
        self.0.received_at.to_utc()
    }

    async fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// The whole normalised event as the adapter produced it, including the kind's fields.
    async fn data(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(&self.0.data).unwrap_or(serde_json::Value::Null))
    }

    /// The adapter version that decoded it.
    async fn adapter(&self, ctx: &Context<'_>) -> Result<Option<Adapter>> {
        let device = load_existing(ctx, DeviceById(self.0.device_id), "device").await?;
        let product = load_existing(ctx, ProductById(device.product_id), "device product").await?;
        if !DeviceViewer::of(ctx).await?.manages(&product) {
            return Ok(None);
        }
        Ok(load_one(ctx, AdaptersOf(product.id)).await?.unwrap_or_default().into_iter().find(|a| a.id == self.0.adapter_id).map(Adapter))
    }
}

/// A message that could not be stored as events, kept with its original bytes.
#[derive(Clone)]
pub struct DeadLetter(pub dead_letter::Model);

#[Object]
impl DeadLetter {
    pub async fn id(&self) -> ID {
        global_id(NodeType::DeadLetter, self.0.id)
    }

    async fn product(&self, ctx: &Context<'_>) -> Result<DeviceProduct> {
        Ok(DeviceProduct(load_existing(ctx, ProductById(self.0.product_id), "device product").await?))
    }

    async fn content_type(&self) -> &str {
        &self.0.content_type
    }

    /// The original bytes, base64.
    async fn body_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.0.body)
    }

    /// The original bytes as text, when they are UTF-8.
    async fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.0.body).ok()
    }

    async fn size_bytes(&self) -> i64 {
        self.0.body.len() as i64
    }

    /// A stable code: an adapter error (`malformed`, `unsupported`, `deadline-exceeded`,
    /// `fuel-exhausted`, `memory-exceeded`, `trap` …), `unknown-device` or `no-active-adapter`.
    async fn reason_code(&self) -> &str {
        &self.0.reason_code
    }

    async fn reason(&self) -> &str {
        &self.0.reason
    }

    /// The unregistered serial, for `unknown-device`.
    async fn device_serial(&self) -> Option<&str> {
        self.0.device_serial.as_deref()
    }

    /// How many times it was received or replayed.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }

    async fn first_received_at(&self) -> DateTime<Utc> {
        self.0.first_received_at.to_utc()
    }

    async fn last_received_at(&self) -> DateTime<Utc> {
        self.0.last_received_at.to_utc()
    }

    /// When a replay turned it into events; null while it is unresolved.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at.map(|t| t.to_utc())
    }
}

/// Narrows a list of dead letters.
#[derive(InputObject, Default)]
pub struct DeadLetterFilter {
    /// Only this product's, by slug.
    pub product: Option<String>,
    /// Only unresolved ones (the default) or only resolved ones.
    pub resolved: Option<bool>,
}

// `node(id:)`: device-side objects are for signed-in users, each with its list's visibility.

/// The signed-in viewer's standing towards devices; `None` for anonymous callers.
async fn device_viewer(ctx: &Context<'_>) -> Result<Option<DeviceViewer>, ApiError> {
    if session(ctx).actor.principal().is_none() {
        return Ok(None);
    }
    Ok(Some(DeviceViewer::of(ctx).await?))
}

impl NodeObject for DeviceProduct {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<DeviceProduct>, ApiError> {
        if device_viewer(ctx).await?.is_none() {
            return Ok(None);
        }
        Ok(load_one(ctx, ProductById(id)).await?.map(DeviceProduct))
    }
}

impl NodeObject for Adapter {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Adapter>, ApiError> {
        let Some(viewer) = device_viewer(ctx).await? else { return Ok(None) };
        let Some(a) = load_one(ctx, AdapterById(id)).await? else { return Ok(None) };
        let product = load_existing(ctx, ProductById(a.product_id), "device product").await?;
        Ok(viewer.manages(&product).then_some(Adapter(a)))
    }
}

impl NodeObject for SigningKey {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<SigningKey>, ApiError> {
        let Some(viewer) = device_viewer(ctx).await? else { return Ok(None) };
        Ok(load_one(ctx, SigningKeyById(id))
            .await?
            .filter(|k| viewer.admin || viewer.supplier() == Some(k.supplier_id))
            .map(SigningKey))
    }
}

impl NodeObject for Device {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Device>, ApiError> {
        let Some(viewer) = device_viewer(ctx).await? else { return Ok(None) };
        let Some(d) = load_one(ctx, DeviceById(id)).await? else { return Ok(None) };
        let product = load_existing(ctx, ProductById(d.product_id), "device product").await?;
        Ok(viewer.sees_device(&d, &product).then_some(Device(d)))
    }
}

impl NodeObject for DeviceEvent {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<DeviceEvent>, ApiError> {
        let Some(viewer) = device_viewer(ctx).await? else { return Ok(None) };
        let Some(e) = device_event::Entity::find_by_id(id).one(state(ctx).db.read()).await? else { return Ok(None) };
        let d = load_existing(ctx, DeviceById(e.device_id), "device").await?;
        let product = load_existing(ctx, ProductById(d.product_id), "device product").await?;
        Ok(viewer.sees_device(&d, &product).then_some(DeviceEvent(e)))
    }
}

impl NodeObject for DeadLetter {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<DeadLetter>, ApiError> {
        let Some(viewer) = device_viewer(ctx).await? else { return Ok(None) };
        Ok(dead_letter::Entity::find_by_id(id)
            .filter(viewer.dead_letter_condition())
            .one(state(ctx).db.read())
            .await?
            .map(DeadLetter))
    }
}

#[derive(Default)]
pub struct DeviceQuery;

#[Object]
impl DeviceQuery {
    /// Device products, by slug. Every signed-in user may list them (municipalities register
    /// devices by product).
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn device_products(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<DeviceProduct>> {
        DeviceViewer::of(ctx).await?;
        let page = PageRequest::parse(after, before, first, last)?;
        let select = device_product::Entity::find().order_by_asc(device_product::Column::Slug);
        page_by_id(ctx, OrderDirection::Asc, select, device_product::Column::Id, &page, |p| p.id, DeviceProduct).await
    }

    /// One device product by its slug.
    async fn device_product(&self, ctx: &Context<'_>, slug: String) -> Result<Option<DeviceProduct>> {
        DeviceViewer::of(ctx).await?;
        Ok(product_by_slug(ctx, &slug_argument(&slug)?).await?.map(DeviceProduct))
    }

    /// Devices you may see: a municipality its own, a supplier those of its products, admins
    /// all. `product` narrows to one product's, by slug.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn devices(
        &self,
        ctx: &Context<'_>,
        product: Option<String>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<Device>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let page = PageRequest::parse(after, before, first, last)?;
        let mut select = device::Entity::find().filter(viewer.device_condition());
        if let Some(slug) = product {
            let slug = slug_argument(&slug)?;
            let id = product_by_slug(ctx, &slug).await?.map_or(0, |p| p.id);
            select = select.filter(device::Column::ProductId.eq(id));
        }
        page_by_id(ctx, OrderDirection::Asc, select, device::Column::Id, &page, |d| d.id, Device).await
    }

    /// Events of the devices you may see, newest first.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn device_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeviceEventFilter>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<DeviceEvent>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let page = PageRequest::parse(after, before, first, last)?;
        let visible = Query::select().column(device::Column::Id).from(device::Entity).cond_where(viewer.device_condition()).to_owned();
        let select = filter.unwrap_or_default().apply(device_event::Entity::find().filter(device_event::Column::DeviceId.in_subquery(visible)));
        page_by_id(ctx, OrderDirection::Desc, select, device_event::Column::Id, &page, |e| e.id, DeviceEvent).await
    }

    /// Dead letters you may see: a supplier its products', a municipality those naming one of
    /// its devices, admins all. Unresolved ones unless `filter.resolved` says otherwise.
    #[graphql(complexity = "page_complexity(first, last, child_complexity)")]
    async fn dead_letters(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeadLetterFilter>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> Result<Page<DeadLetter>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let page = PageRequest::parse(after, before, first, last)?;
        let filter = filter.unwrap_or_default();
        let mut select = dead_letter::Entity::find().filter(viewer.dead_letter_condition());
        select = if filter.resolved.unwrap_or(false) {
            select.filter(dead_letter::Column::ResolvedAt.is_not_null())
        } else {
            select.filter(dead_letter::Column::ResolvedAt.is_null())
        };
        if let Some(slug) = filter.product {
            let id = product_by_slug(ctx, &slug_argument(&slug)?).await?.map_or(0, |p| p.id);
            select = select.filter(dead_letter::Column::ProductId.eq(id));
        }
        page_by_id(ctx, OrderDirection::Asc, select, dead_letter::Column::Id, &page, |l| l.id, DeadLetter).await
    }

    /// Your organisation's signing keys (suppliers).
    async fn signing_keys(&self, ctx: &Context<'_>) -> Result<Vec<SigningKey>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let Some(supplier) = viewer.supplier() else { return Ok(vec![]) };
        let rows = signing_key::Entity::find()
            .filter(signing_key::Column::SupplierId.eq(supplier))
            .order_by_asc(signing_key::Column::Id)
            .all(state(ctx).db.read())
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(SigningKey).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations

payload!(SigningKeyRegisterPayload, signing_key: SigningKey, "Result of `signingKeyRegister`.");
payload!(SigningKeyRevokePayload, signing_key: SigningKey, "Result of `signingKeyRevoke`.");
payload!(AdapterUploadPayload, adapter: Adapter, "Result of `adapterUpload`.");
payload!(AdapterActivatePayload, adapter: Adapter, "Result of `adapterActivate`.");
payload!(AdapterRollBackPayload, adapter: Adapter, "Result of `adapterRollBack`: the version active now.");
payload!(AdapterRetirePayload, adapter: Adapter, "Result of `adapterRetire`.");
payload!(DeviceRegisterPayload, device: Device, "Result of `deviceRegister`.");

#[derive(InputObject)]
pub struct SigningKeyRegisterInput {
    /// An Ed25519 public key: PEM (`openssl pkey -pubout`) or the raw 32 bytes in base64.
    pub public_key: String,
    pub label: Option<String>,
}

#[derive(InputObject)]
pub struct SigningKeyRevokeInput {
    pub id: ID,
}

#[derive(InputObject)]
pub struct AdapterUploadInput {
    /// The product's slug (created on its first upload), e.g. `reference-dispenser`.
    pub product: String,
    /// The component (`.wasm`), as a multipart upload (GraphQL multipart request spec).
    pub component: Upload,
    /// Detached Ed25519 signature over the component's bytes, base64 (64 bytes).
    pub signature: String,
}

#[derive(InputObject)]
pub struct AdapterInput {
    pub adapter_id: ID,
}

#[derive(InputObject)]
pub struct AdapterRollBackInput {
    /// The product's slug.
    pub product: String,
}

#[derive(InputObject)]
pub struct DeviceRegisterInput {
    /// The product's slug.
    pub product: String,
    pub serial: String,
    /// The call-off the device was bought or leased under.
    pub call_off_id: Option<ID>,
    /// Your reference to the service recipient; only your municipality sees it.
    pub recipient_ref: Option<String>,
}

#[derive(InputObject)]
pub struct DeadLettersReplayInput {
    /// The product's slug.
    pub product: String,
    /// Only these dead letters; all unresolved ones (up to 100) when absent.
    pub ids: Option<Vec<ID>>,
}

/// What replaying one dead letter came to.
#[derive(SimpleObject)]
pub struct DeadLetterReplay {
    pub dead_letter: DeadLetter,
    /// True when it became events.
    pub resolved: bool,
    pub events_stored: i32,
    pub events_duplicate: i32,
}

/// Result of `deadLettersReplay`.
#[derive(SimpleObject)]
pub struct DeadLettersReplayPayload {
    pub replayed: i32,
    pub resolved: i32,
    pub results: Vec<DeadLetterReplay>,
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct DeviceMutation;

/// Admins and supplier staff manage adapters; anyone else is refused before any lookup.
fn require_adapter_manager(ctx: &Context<'_>, what: &str) -> Result<(), ApiError> {
    let session = session(ctx);
    match session.actor.principal() {
        None => Err(ApiError::Unauthenticated(format!("sign in with a token to {what}"))),
        Some(_) if session.has_role(Role::Admin) || session.has_role(Role::Supplier) => Ok(()),
        Some(_) => Err(ApiError::Forbidden(format!("your roles do not allow you to {what} (needs `supplier` or `admin`)"))),
    }
}

/// The product named by `slug` when the caller manages it (its supplier, or an admin).
async fn managed_product(ctx: &Context<'_>, slug: &str) -> RuleResult<device_product::Model> {
    let slug = rules::parse_slug("product", slug)?;
    let viewer = DeviceViewer::of(ctx).await?;
    match product_by_slug(ctx, &slug).await? {
        Some(p) if viewer.manages(&p) => Ok(p),
        // Another supplier's product answers like a missing one.
        _ => refuse(Invalid::not_found("product", format!("no device product {slug} of yours"))),
    }
}

#[Object]
impl DeviceMutation {
    /// Registers an Ed25519 public key that your adapter uploads will be signed with.
    async fn signing_key_register(&self, ctx: &Context<'_>, input: SigningKeyRegisterInput) -> Result<SigningKeyRegisterPayload> {
        let caller = caller(ctx, Role::Supplier, "register signing keys").await?;
        let result =
            in_transaction(ctx, async |txn| rules::register_signing_key(txn, &caller, &input.public_key, input.label).await).await;
        Ok(SigningKeyRegisterPayload::from_rule(result, SigningKey)?)
    }

    /// Revokes one of your signing keys.
    async fn signing_key_revoke(&self, ctx: &Context<'_>, input: SigningKeyRevokeInput) -> Result<SigningKeyRevokePayload> {
        let caller = caller(ctx, Role::Supplier, "revoke signing keys").await?;
        let result: RuleResult<_> = async {
            let id = input_row(&input.id, NodeType::SigningKey, "id")?;
            in_transaction(ctx, async |txn| rules::revoke_signing_key(txn, &caller, id).await).await
        }
        .await;
        Ok(SigningKeyRevokePayload::from_rule(result, SigningKey)?)
    }

    /// Uploads a signed adapter version for one of your products. It is validated (it
    /// compiles, exports a served `velferd:device` version, imports nothing the sandbox does
    /// not grant, `describe` answers) and waits for review (`PENDING_REVIEW`).
    async fn adapter_upload(&self, ctx: &Context<'_>, input: AdapterUploadInput) -> Result<AdapterUploadPayload> {
        let caller = caller(ctx, Role::Supplier, "upload adapters").await?;
        let slug = match rules::parse_slug("product", &input.product) {
            Ok(slug) => slug,
            Err(e) => {
                let refused: RuleResult<adapter::Summary> = Err(Refusal::Rule(e.into()));
                return Ok(AdapterUploadPayload::from_rule(refused, Adapter)?);
            }
        };
        let runtime = &state(ctx).adapters;
        let limit = runtime.limits().component_bytes;
        let upload = input.component.value(ctx).map_err(|e| ApiError::BadUserInput(format!("component: {}", e)))?;
        let mut component = Vec::new();
        upload
            .into_read()
            .take(limit as u64 + 1)
            .read_to_end(&mut component)
            .map_err(|e| ApiError::BadUserInput(format!("component could not be read: {e}")))?;
        let result: RuleResult<_> = async {
            ensure(
                component.len() <= limit,
                DevicesError::InvalidComponent("too-large", format!("the component is larger than {limit} bytes")),
            )?;
            // The signature is checked before the component is compiled: unsigned code never
            // reaches the compiler.
            let key =
                in_transaction(ctx, async |txn| rules::verify_upload(txn, &caller, &component, &input.signature).await).await?;
            let validated = match runtime.validate(component.clone()).await {
                Ok(v) => v,
                Err(e) => {
                    let code =
                        serde_json::to_value(&e).ok().and_then(|v| v["error"].as_str().map(str::to_owned)).unwrap_or_default();
                    return refuse(DevicesError::InvalidComponent("invalid", format!("{code}: {e}")));
                }
            };
            in_transaction(ctx, async |txn| rules::record_upload(txn, &caller, &slug, &key, &validated, component).await).await
        }
        .await;
        Ok(AdapterUploadPayload::from_rule(result.map(adapter::Summary::from), Adapter)?)
    }

    /// Activates a reviewed version (admins). The product's active version becomes
    /// `INACTIVE` and can be rolled back to.
    async fn adapter_activate(&self, ctx: &Context<'_>, input: AdapterInput) -> Result<AdapterActivatePayload> {
        require_role(ctx, Role::Admin, "activate adapters")?;
        let result: RuleResult<_> = async {
            let id = input_row(&input.adapter_id, NodeType::Adapter, "adapterId")?;
            in_transaction(ctx, async |txn| rules::activate(txn, id).await).await
        }
        .await;
        Ok(AdapterActivatePayload::from_rule(result.map(adapter::Summary::from), Adapter)?)
    }

    /// Rolls a product back to the version active before the current one (admins).
    async fn adapter_roll_back(&self, ctx: &Context<'_>, input: AdapterRollBackInput) -> Result<AdapterRollBackPayload> {
        require_role(ctx, Role::Admin, "roll adapters back")?;
        let result: RuleResult<_> = async {
            let product = managed_product(ctx, &input.product).await?;
            in_transaction(ctx, async |txn| rules::roll_back(txn, &product).await).await
        }
        .await;
        Ok(AdapterRollBackPayload::from_rule(result.map(adapter::Summary::from), Adapter)?)
    }

    /// Retires a version for good (admins, or the product's supplier). Retiring the active
    /// version leaves the product without one: its messages are kept as dead letters.
    async fn adapter_retire(&self, ctx: &Context<'_>, input: AdapterInput) -> Result<AdapterRetirePayload> {
        require_adapter_manager(ctx, "retire adapters")?;
        let viewer = DeviceViewer::of(ctx).await?;
        let result: RuleResult<_> = async {
            let target = match row_id(&input.adapter_id, NodeType::Adapter) {
                Some(id) => load_one(ctx, AdapterById(id)).await?,
                None => None,
            };
            let product = match &target {
                Some(a) => load_one(ctx, ProductById(a.product_id)).await?,
                None => None,
            };
            let Some((target, _)) = target.zip(product).filter(|(_, p)| viewer.manages(p)) else {
                return refuse(Invalid::not_found("adapterId", "no such adapter of yours"));
            };
            let retired = in_transaction(ctx, async |txn| rules::retire(txn, target.id).await).await?;
            state(ctx).adapters.forget(target.id);
            Ok(retired)
        }
        .await;
        Ok(AdapterRetirePayload::from_rule(result.map(adapter::Summary::from), Adapter)?)
    }

    /// Registers one of your municipality's devices (case workers).
    async fn device_register(&self, ctx: &Context<'_>, input: DeviceRegisterInput) -> Result<DeviceRegisterPayload> {
        let caller = caller(ctx, Role::CaseWorker, "register devices").await?;
        let result: RuleResult<_> = async {
            let call_off = input.call_off_id.as_ref().map(|id| input_row(id, NodeType::CallOff, "callOffId")).transpose()?;
            in_transaction(ctx, async |txn| {
                rules::register_device(txn, &caller, &input.product, &input.serial, call_off, input.recipient_ref).await
            })
            .await
        }
        .await;
        Ok(DeviceRegisterPayload::from_rule(result, Device)?)
    }

    /// Replays a product's unresolved dead letters through its active adapter (the product's
    /// supplier, or admins). Those that now decode and name registered devices become events;
    /// the others keep their new reason.
    async fn dead_letters_replay(&self, ctx: &Context<'_>, input: DeadLettersReplayInput) -> Result<DeadLettersReplayPayload> {
        require_adapter_manager(ctx, "replay dead letters")?;
        let chosen: RuleResult<_> = async {
            let product = managed_product(ctx, &input.product).await?;
            let ids = match &input.ids {
                None => None,
                Some(ids) => Some(
                    ids.iter()
                        .map(|id| input_row(id, NodeType::DeadLetter, "ids"))
                        .collect::<std::result::Result<Vec<_>, Invalid>>()?,
                ),
            };
            Ok((product, ids))
        }
        .await;
        let (product, ids) = match chosen {
            Ok(chosen) => chosen,
            Err(Refusal::Rule(e)) => {
                return Ok(DeadLettersReplayPayload {
                    replayed: 0,
                    resolved: 0,
                    results: vec![],
                    user_errors: vec![UserError::from_violation(&e)],
                });
            }
            Err(Refusal::Fault(fault)) => return Err(fault.into()),
        };
        let state = state(ctx);
        let outcomes = ingest::replay_dead_letters(&state.db, &state.adapters, &product, ids, MAX_REPLAY).await?;
        let ids: Vec<i64> = outcomes.iter().map(|o| o.dead_letter_id).collect();
        let letters = dead_letter::Entity::find().filter(dead_letter::Column::Id.is_in(ids)).all(state.db.write()).await.map_err(ApiError::from)?;
        let mut results = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let Some(letter) = letters.iter().find(|l| l.id == outcome.dead_letter_id) else { continue };
            let MessageResult { status, events_stored, events_duplicate, .. } = outcome.result;
            results.push(DeadLetterReplay {
                dead_letter: DeadLetter(letter.clone()),
                resolved: matches!(status, MessageStatus::Accepted | MessageStatus::Duplicate),
                events_stored: events_stored as i32,
                events_duplicate: events_duplicate as i32,
            });
        }
        Ok(DeadLettersReplayPayload {
            replayed: results.len() as i32,
            resolved: results.iter().filter(|r| r.resolved).count() as i32,
            results,
            user_errors: vec![],
        })
    }
}

#[derive(Default)]
pub struct DeviceSubscription;

#[Subscription]
impl DeviceSubscription {
    /// Device events as they are stored, live (on this server instance), for the devices you
    /// may see: a municipality its own, a supplier its products', admins all. `filter` narrows
    /// as in `deviceEvents`; a response centre listens with `minSeverity: CRITICAL`. Events
    /// stored while a slow subscriber lags are skipped for it; `deviceEvents` has them all.
    async fn device_event_received(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeviceEventFilter>,
    ) -> Result<impl Stream<Item = DeviceEvent> + use<>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let filter = filter.unwrap_or_default();
        let live = crate::app::stream_of(state(ctx).events.subscribe_device_events());
        Ok(live.filter_map(move |live| {
            let wanted = viewer.sees(live.municipality_id, live.supplier_id) && filter.matches(&live.event);
            std::future::ready(wanted.then(|| DeviceEvent(live.event.clone())))
        }))
    }
}
