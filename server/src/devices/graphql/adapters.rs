//! Device products, their adapter versions and suppliers' signing keys, with `node(id:)`.

use super::*;

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

    /// What the product's ingest may cost the platform, how much of it is used, and the last time
    /// a limit refused its messages. The supplier and admins only; null for others.
    async fn ingest_limits(&self, ctx: &Context<'_>) -> Result<Option<IngestLimitsView>> {
        if !DeviceViewer::of(ctx).await?.manages(&self.0) {
            return Ok(None);
        }
        let state = state(ctx);
        let settings = state.devices.ingest_limits;
        let used =
            crate::devices::ingest::dead_letter_bytes(state.db.read(), self.0.id).await.map_err(ApiError::from)?;
        let last = state.ingest_limits.last_refusal(self.0.id);
        Ok(Some(IngestLimitsView {
            rate_per_second: i64::from(settings.rate_per_second),
            burst: i64::from(settings.burst),
            dead_letter_quota_bytes: i64::try_from(settings.dead_letter_quota_bytes).unwrap_or(i64::MAX),
            dead_letter_bytes: i64::try_from(used).unwrap_or(i64::MAX),
            last_refused_at: last.map(|l| l.at),
            last_refusal_code: last.map(|l| l.refusal.code().to_string()),
        }))
    }
}

/// A product's ingest limits (`VELFERD_INGEST_RATE`, `VELFERD_INGEST_BURST`,
/// `VELFERD_DEAD_LETTER_QUOTA_BYTES`) and their use. A refused message is answered `429` with
/// `Retry-After`; the sender keeps it.
#[derive(SimpleObject)]
#[graphql(name = "IngestLimits")]
pub struct IngestLimitsView {
    /// Messages per second the product may send, on each server instance.
    pub rate_per_second: i64,
    /// Messages it may send at once above that rate.
    pub burst: i64,
    /// Bytes of unresolved dead letters it may keep.
    pub dead_letter_quota_bytes: i64,
    /// Bytes of unresolved dead letters it keeps now.
    pub dead_letter_bytes: i64,
    /// When a limit last refused one of its messages, on the server instance that answers.
    pub last_refused_at: Option<DateTime<Utc>>,
    /// `INGEST_RATE_LIMITED` or `DEAD_LETTER_QUOTA_EXCEEDED`.
    pub last_refusal_code: Option<String>,
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

    /// The limits this version runs under: what it asked for at upload (`requestedLimits`),
    /// the server's defaults for the rest. A request above the defaults applies at ingest only
    /// once an admin approved it by activating the version (`limitsApproval`). The product's
    /// supplier and admins; null for others.
    async fn limits(&self, ctx: &Context<'_>) -> Result<Option<EffectiveLimits>> {
        if !self.managed_by_viewer(ctx).await? {
            return Ok(None);
        }
        Ok(Some(RequestedLimits::of(&self.0).effective(state(ctx).adapters.limits())))
    }

    /// `limits` as the JSON file `velferd adapter check --limits FILE` reads:
    /// `{"componentBytes": n, "memoryBytes": n, "fuel": n or null, "deadlineMs": n}` (fuel null:
    /// not metered). The product's supplier and admins; null for others.
    async fn limits_file(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if !self.managed_by_viewer(ctx).await? {
            return Ok(None);
        }
        Ok(Some(RequestedLimits::of(&self.0).effective(state(ctx).adapters.limits()).file()))
    }

    /// `NOT_NEEDED` when the version asks for nothing above the defaults, else `PENDING` until an
    /// admin activates it with `approveLimits`, then `APPROVED`. The product's supplier and
    /// admins; null for others.
    async fn limits_approval(&self, ctx: &Context<'_>) -> Result<Option<LimitsApproval>> {
        Ok(self.managed_by_viewer(ctx).await?.then_some(self.0.limits_approval))
    }

    /// When an admin approved the limits. The product's supplier and admins; null for others.
    async fn limits_approved_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        Ok(self.managed_by_viewer(ctx).await?.then(|| self.0.limits_approved_at.map(|t| t.to_utc())).flatten())
    }

    /// The token subject of the admin who approved the limits. The product's supplier and
    /// admins; null for others.
    async fn limits_approved_by(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.managed_by_viewer(ctx).await?.then_some(self.0.limits_approved_by.as_deref()).flatten())
    }

    /// Review by replay: runs this version and the product's active version over the `last`
    /// messages the product received (at most 200, newest first; bodies are kept for the most
    /// recent messages only) and shows, message by message, where their events differ. Admins
    /// and the product's supplier.
    ///
    /// It costs two per message (each is decoded by both versions), and one request (or
    /// WebSocket operation) runs at most one review.
    #[graphql(complexity = "2 * usize::try_from(last).unwrap_or(0).max(1) + child_complexity")]
    async fn replay_review(&self, ctx: &Context<'_>, #[graphql(default = 50)] last: i32) -> Result<ReplayReview> {
        let product = load_existing(ctx, ProductById(self.0.product_id), "device product").await?;
        if !DeviceViewer::of(ctx).await?.manages(&product) {
            return Err(
                ApiError::Forbidden("only admins and the product's supplier may review its adapters".into()).into()
            );
        }
        if !(1..=MAX_REVIEW).contains(&last) {
            return Err(ApiError::BadUserInput(format!("`last` must be 1 to {MAX_REVIEW}")).into());
        }
        crate::graphql::operation::claim_replay_review(ctx)?;
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
        // The active version is what `DeviceProduct.activeAdapter` shows everyone who sees the
        // product; `node` must not hide what that edge gives (its private fields stay null).
        Ok((a.status == AdapterStatus::Active || viewer.manages(&product)).then_some(Adapter(a)))
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
