//! Devices, their events (listed and live) and dead letters, with `node(id:)`.

use super::*;
pub use velferd_plugins::Severity;

/// A device registered to a municipality.
#[derive(Clone)]
pub struct Device(pub device::Model);

#[connections]
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

    /// Where the device stands in service.
    async fn status(&self) -> DeviceStatus {
        self.0.status
    }

    /// When its newest stored event occurred.
    async fn last_seen_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_seen_at.map(|t| t.to_utc())
    }

    /// The service recipient it is assigned to. Recipient data: the owning municipality's case
    /// workers see it (and the read is written to the audit log); anyone else gets null.
    async fn recipient(&self, ctx: &Context<'_>) -> Result<Option<ServiceRecipient>> {
        let Some(id) = self.0.recipient_id else { return Ok(None) };
        if case_worker_municipality(ctx) != Some(self.0.municipality_id) {
            return Ok(None);
        }
        Ok(read_recipient_by_id(ctx, id).await?)
    }

    /// Every status it has had, oldest first, with who changed it and when. The owning
    /// municipality only; anyone else gets an empty list.
    async fn status_history(&self, ctx: &Context<'_>) -> Result<Vec<DeviceStatusChange>> {
        if DeviceViewer::of(ctx).await?.municipality() != Some(self.0.municipality_id) {
            return Ok(vec![]);
        }
        let rows = load_one(ctx, DeviceHistory(self.0.id)).await?.unwrap_or_default();
        Ok(rows.into_iter().map(|row| DeviceStatusChange { row, municipality_id: self.0.municipality_id }).collect())
    }

    async fn registered_at(&self) -> DateTime<Utc> {
        self.0.registered_at.to_utc()
    }

    /// The device's events, newest first.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeviceEventFilter>,
        page: PageArgs,
    ) -> Result<Page<DeviceEvent>> {
        let events = device_event::Entity::find().filter(device_event::Column::DeviceId.eq(self.0.id));
        page_events(ctx, events, filter, page).await
    }
}

/// One step of a device's lifecycle.
#[derive(Clone)]
pub struct DeviceStatusChange {
    row: device_status_change::Model,
    municipality_id: i64,
}

#[Object]
impl DeviceStatusChange {
    /// None for its first status, when it was taken into service.
    async fn from(&self) -> Option<DeviceStatus> {
        self.row.from_status
    }

    async fn to(&self) -> DeviceStatus {
        self.row.to_status
    }

    /// The recipient it was assigned to or taken back from. Recipient data: the owning
    /// municipality's case workers (audited); anyone else gets null.
    async fn recipient(&self, ctx: &Context<'_>) -> Result<Option<ServiceRecipient>> {
        let Some(id) = self.row.recipient_id else { return Ok(None) };
        if case_worker_municipality(ctx) != Some(self.municipality_id) {
            return Ok(None);
        }
        Ok(read_recipient_by_id(ctx, id).await?)
    }

    /// The subject of the token that changed it.
    async fn subject(&self) -> &str {
        &self.row.subject
    }

    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.row.organization_id).await
    }

    /// The role it was changed under.
    async fn role(&self) -> &str {
        &self.row.role
    }

    async fn at(&self) -> DateTime<Utc> {
        self.row.at.to_utc()
    }
}

/// One page of `events` narrowed by `filter`, newest first.
pub(super) async fn page_events(
    ctx: &Context<'_>,
    events: sea_orm::Select<device_event::Entity>,
    filter: Option<DeviceEventFilter>,
    page: PageArgs,
) -> Result<Page<DeviceEvent>> {
    let page = page.parse()?;
    let select = filter.unwrap_or_default().apply(events);
    page_by_id(ctx, OrderDirection::Desc, select, device_event::Column::Id, &page, |e| e.id, DeviceEvent).await
}

/// An event's severity by its stored name; unknown names read as not reported.
fn severity_of(name: &str) -> Severity {
    Severity::ALL.into_iter().find(|s| s.name() == name).unwrap_or(Severity::NotReported)
}

/// `min` and every higher severity, by stored name.
fn at_least(min: Severity) -> Vec<&'static str> {
    Severity::ALL.into_iter().filter(|s| *s >= min).map(Severity::name).collect()
}

/// Narrows a list of device events.
#[derive(InputObject, Default)]
pub struct DeviceEventFilter {
    /// Only events of these kinds, named as in the WIT (`dose-missed`, `fall` …); at most 100.
    // Bounded where the input is read, for every field and subscription that takes the filter:
    // each kind becomes an SQL parameter.
    #[graphql(validator(max_items = 100))]
    pub kinds: Option<Vec<String>>,
    /// Only events at least this severe.
    pub min_severity: Option<Severity>,
}

impl DeviceEventFilter {
    /// The same narrowing as [`DeviceEventFilter::apply`], for one event in memory.
    fn matches(&self, event: &device_event::Model) -> bool {
        self.kinds.as_ref().is_none_or(|kinds| kinds.contains(&event.kind))
            && self.min_severity.is_none_or(|min| severity_of(&event.severity) >= min)
    }

    fn apply(self, mut select: sea_orm::Select<device_event::Entity>) -> sea_orm::Select<device_event::Entity> {
        if let Some(kinds) = self.kinds {
            select = select.filter(device_event::Column::Kind.is_in(kinds));
        }
        if let Some(min) = self.min_severity {
            select = select.filter(device_event::Column::Severity.is_in(at_least(min)));
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
        Some(VkpCoding {
            system: vkp.get("system")?.as_str()?.to_string(),
            code: vkp.get("code")?.as_str()?.to_string(),
        })
    }

    async fn severity(&self) -> Severity {
        severity_of(&self.0.severity)
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
        Ok(load_one(ctx, AdaptersOf(product.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.id == self.0.adapter_id)
            .map(Adapter))
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

/// A device event as a subscription delivers it, with its place in the outbox.
#[derive(SimpleObject)]
pub struct DeviceEventDelivery {
    /// Where this delivery stands in the outbox: subscribe again with `afterSequence` set to the
    /// last one you received to get what followed, exactly once.
    pub sequence: crate::live::graphql::Sequence,
    pub event: DeviceEvent,
}

#[derive(Default)]
pub struct DeviceSubscription;

#[Subscription]
impl DeviceSubscription {
    /// Device events as they are stored, on any server instance, for the devices you may see: a
    /// municipality its own, a supplier its products', admins all. `filter` narrows as in
    /// `deviceEvents`; a response centre listens with `minSeverity: CRITICAL`.
    ///
    /// Each delivery carries its `sequence`. After a disconnection, subscribe with
    /// `afterSequence` set to the last one received: the events stored meanwhile come first, in
    /// order and each once, then live ones. A sequence older than the outbox keeps
    /// (`VELFERD_LIVE_RETENTION_SECONDS`) is refused with `SEQUENCE_EXPIRED`: read `deviceEvents`
    /// and subscribe afresh. A subscriber that falls too far behind gets a last error,
    /// `SUBSCRIBER_TOO_SLOW` with `extensions.lastSequence`, and the subscription completes:
    /// resume after that sequence.
    async fn device_event_received(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeviceEventFilter>,
        #[graphql(desc = "resume after this sequence, the last one received")] after_sequence: Option<
            crate::live::graphql::Sequence,
        >,
    ) -> Result<impl Stream<Item = Result<crate::live::graphql::Shared<DeviceEventDelivery>>> + use<>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let filter = filter.unwrap_or_default();
        let heard = crate::live::Filter::new(&[crate::live::Topic::DeviceEvent], viewer.interest())
            .and(move |item| item.decoded::<ingest::LiveDeviceEvent>().is_some_and(|live| filter.matches(&live.event)));
        crate::live::graphql::subscribe(ctx, heard, after_sequence, |item| {
            let delivery = item.decoded::<ingest::LiveDeviceEvent>().map(|live| DeviceEventDelivery {
                sequence: crate::live::graphql::Sequence(item.sequence),
                event: DeviceEvent(live.event.clone()),
            });
            std::future::ready(delivery)
        })
        .await
    }
}
