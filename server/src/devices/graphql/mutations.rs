//! The mutations of adapters, signing keys, devices and dead letters.

use super::*;
use crate::graphql::errors::Payload;

payload!(SigningKeyRegisterPayload, signing_key: SigningKey, "Result of `signingKeyRegister`.");
payload!(SigningKeyRevokePayload, signing_key: SigningKey, "Result of `signingKeyRevoke`.");
/// Result of `adapterUpload`.
#[derive(SimpleObject)]
pub struct AdapterUploadPayload {
    /// Null when `userErrors` is not empty.
    pub adapter: Option<Adapter>,
    /// How this server made the component ready to run: compiled now, or loaded from its compile
    /// cache (a component with the same bytes compiled before). Null when `userErrors` is not
    /// empty.
    pub compilation: Option<AdapterCompilation>,
    pub user_errors: Vec<UserError>,
}

/// How an uploaded component was made ready to run on the server that took the upload.
#[derive(SimpleObject, Clone, Copy)]
pub struct AdapterCompilation {
    /// Milliseconds it took to compile the component to native code, or to load it from the
    /// compile cache.
    pub millis: f64,
    /// Whether the compiled code came from the server's compile cache instead of a compile.
    pub cache_hit: bool,
}

/// An upload recorded, with how its component was compiled.
pub struct Uploaded {
    summary: adapter::Summary,
    compilation: AdapterCompilation,
}

impl Payload for AdapterUploadPayload {
    type Object = Uploaded;

    fn new(uploaded: Option<Uploaded>, user_errors: Vec<UserError>) -> AdapterUploadPayload {
        let (adapter, compilation) = uploaded.map(|u| (Adapter(u.summary), u.compilation)).unzip();
        AdapterUploadPayload { adapter, compilation, user_errors }
    }
}
payload!(AdapterActivatePayload, adapter: Adapter, "Result of `adapterActivate`.");
payload!(AdapterRollBackPayload, adapter: Adapter, "Result of `adapterRollBack`: the version active now.");
payload!(AdapterRetirePayload, adapter: Adapter, "Result of `adapterRetire`.");
payload!(DeviceRegisterPayload, device: Device, "Result of `deviceRegister`.");
payload!(DeviceDeliverPayload, deliveries: Vec<DeviceDelivery>, "Result of `deviceDeliver`.");
payload!(DeviceAssignPayload, device: Device, "Result of `deviceAssign`.");
payload!(DeviceStatusChangePayload, device: Device, "Result of `deviceStatusChange`.");

/// A device its supplier delivered under a municipality's call-off.
#[derive(SimpleObject)]
pub struct DeviceDelivery {
    pub serial: String,
    pub delivered_at: DateTime<Utc>,
}

impl From<device_delivery::Model> for DeviceDelivery {
    fn from(row: device_delivery::Model) -> Self {
        DeviceDelivery { serial: row.serial, delivered_at: row.delivered_at.with_timezone(&Utc) }
    }
}

#[derive(InputObject)]
pub struct DeviceDeliverInput {
    /// The municipality's call-off, under one of your framework agreements, confirmed by you.
    pub call_off_id: ID,
    /// The product's slug; the product must be yours.
    pub product: String,
    /// The serials delivered, up to 100 at a time and the call-off's quantity in all.
    pub serials: Vec<String>,
}

#[derive(InputObject)]
pub struct SigningKeyRegisterInput {
    /// An Ed25519 public key: PEM (`openssl pkey -pubout`) or the raw 32 bytes in base64.
    pub public_key: String,
    /// Proof that you hold the private key: its detached signature (base64, 64 bytes) over the
    /// text `velferd signing key for <your organisation number>` (an organisation without one:
    /// its id, `Organization.id`).
    pub proof: String,
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
    /// Limits this version asks for beyond (or below) the defaults, within the platform's
    /// ceilings; omitted fields take the default. More than the defaults waits for an admin's
    /// approval at activation (`Adapter.limitsApproval`).
    pub requested_limits: Option<AdapterLimitsInput>,
}

/// Limits an adapter version asks for. Each omitted field takes the server's default.
#[derive(InputObject)]
pub struct AdapterLimitsInput {
    /// Largest component, in bytes (default 524288; a larger upload must ask for it).
    pub component_bytes: Option<i64>,
    /// Linear memory of one instance, in bytes.
    pub memory_bytes: Option<i64>,
    /// Instruction budget of one call; `null` asks for no metering (the deadline alone stops a
    /// call), which the platform allows only when `VELFERD_ADAPTER_MAX_FUEL` is 0.
    pub fuel: MaybeUndefined<i64>,
    /// Wall-clock deadline of one call, in milliseconds.
    pub deadline_ms: Option<i64>,
}

#[derive(InputObject)]
pub struct AdapterActivateInput {
    pub adapter_id: ID,
    /// Approves the limits the version asked for above the defaults (see its replay review's
    /// `candidateLimits`); required for such a version, ignored for others.
    #[graphql(default)]
    pub approve_limits: bool,
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
    /// The call-off the device was delivered under; when given, it must be the delivery's.
    pub call_off_id: Option<ID>,
}

#[derive(InputObject)]
pub struct DeviceAssignInput {
    /// A device of your municipality, in stock.
    pub device_id: ID,
    /// An active recipient of your municipality with a granted assessment for the user story
    /// the device was called off under.
    pub recipient_id: ID,
}

#[derive(InputObject)]
pub struct DeviceStatusChangeInput {
    pub device_id: ID,
    /// ACTIVE, FAULTY, RETURNED, RETIRED or IN_STOCK (unassigned, repaired); ASSIGNED is
    /// `deviceAssign`'s.
    pub status: DeviceStatus,
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
    session(ctx).grant.require_any(&[Role::Supplier, Role::Admin], what).map(drop)
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
    async fn signing_key_register(
        &self,
        ctx: &Context<'_>,
        input: SigningKeyRegisterInput,
    ) -> Result<SigningKeyRegisterPayload> {
        let caller = caller(ctx, Role::Supplier, "register signing keys").await?;
        let result = in_transaction(ctx, async |txn| {
            rules::register_signing_key(txn, &caller, &input.public_key, &input.proof, input.label).await
        })
        .await;
        Ok(SigningKeyRegisterPayload::from_rule(result, SigningKey)?)
    }

    /// Revokes one of your signing keys.
    async fn signing_key_revoke(
        &self,
        ctx: &Context<'_>,
        input: SigningKeyRevokeInput,
    ) -> Result<SigningKeyRevokePayload> {
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
                let refused: RuleResult<Uploaded> = Err(Refusal::Rule(e.into()));
                return Ok(AdapterUploadPayload::from_rule(refused, |uploaded| uploaded)?);
            }
        };
        let runtime = &state(ctx).adapters;
        let requested = match &input.requested_limits {
            None => Ok(RequestedLimits::default()),
            Some(l) => RequestedLimits::parse(
                l.component_bytes,
                l.memory_bytes,
                &l.fuel,
                l.deadline_ms,
                &state(ctx).devices.adapter_ceilings,
            ),
        };
        let requested = match requested {
            Ok(requested) => requested,
            Err(e) => {
                let refused: RuleResult<Uploaded> = Err(Refusal::Rule(e.into()));
                return Ok(AdapterUploadPayload::from_rule(refused, |uploaded| uploaded)?);
            }
        };
        let limits = requested.effective(runtime.limits());
        let limit = usize::try_from(limits.component_bytes).unwrap_or(usize::MAX);
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
                DevicesError::InvalidComponent(
                    "too-large",
                    if limit == runtime.limits().component_bytes {
                        format!(
                            "the component is larger than the default limit of {limit} bytes; ask for more with \
                             requestedLimits.componentBytes"
                        )
                    } else {
                        format!("the component is larger than its requested limit of {limit} bytes (componentBytes)")
                    },
                ),
            )?;
            // The signature is checked before the component is compiled: unsigned code never
            // reaches the compiler.
            let key =
                in_transaction(ctx, async |txn| rules::verify_upload(txn, &caller, &component, &input.signature).await)
                    .await?;
            let validated = match runtime.validate_for(component.clone(), &limits).await {
                Ok(v) => v.adapter,
                Err(e) => {
                    let code = serde_json::to_value(&e)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    return refuse(DevicesError::InvalidComponent("invalid", format!("{code}: {e}")));
                }
            };
            let compiled = validated.compilation();
            let compilation = AdapterCompilation { millis: compiled.millis(), cache_hit: compiled.cache_hit };
            let row = in_transaction(ctx, async |txn| {
                let approval = requested.initial_approval(runtime.limits());
                rules::record_upload(txn, &caller, &slug, &key, &validated, component, &requested, approval).await
            })
            .await?;
            Ok(Uploaded { summary: adapter::Summary::from(row), compilation })
        }
        .await;
        Ok(AdapterUploadPayload::from_rule(result, |uploaded| uploaded)?)
    }

    /// Activates a reviewed version (admins). The product's active version becomes
    /// `INACTIVE` and can be rolled back to. A version that asks for more than the default
    /// limits needs `approveLimits: true`, which approves them.
    async fn adapter_activate(&self, ctx: &Context<'_>, input: AdapterActivateInput) -> Result<AdapterActivatePayload> {
        let admin = require_role(ctx, Role::Admin, "activate adapters")?.subject.clone();
        let result: RuleResult<_> = async {
            let id = input_row(&input.adapter_id, NodeType::Adapter, "adapterId")?;
            let approver = input.approve_limits.then_some(admin.as_str());
            let activated = in_transaction(ctx, async |txn| rules::activate_approving(txn, id, approver).await).await?;
            state(ctx).ingest_products.changed();
            Ok(activated)
        }
        .await;
        Ok(AdapterActivatePayload::from_rule(result.map(adapter::Summary::from), Adapter)?)
    }

    /// Rolls a product back to the version active before the current one (admins).
    async fn adapter_roll_back(
        &self,
        ctx: &Context<'_>,
        input: AdapterRollBackInput,
    ) -> Result<AdapterRollBackPayload> {
        require_role(ctx, Role::Admin, "roll adapters back")?;
        let result: RuleResult<_> = async {
            let product = managed_product(ctx, &input.product).await?;
            let active = in_transaction(ctx, async |txn| rules::roll_back(txn, &product).await).await?;
            state(ctx).ingest_products.changed();
            Ok(active)
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
            state(ctx).ingest_products.changed();
            Ok(retired)
        }
        .await;
        Ok(AdapterRetirePayload::from_rule(result.map(adapter::Summary::from), Adapter)?)
    }

    /// Registers one of your municipality's devices (case workers).
    /// Records devices you delivered under a municipality's call-off. Only that municipality can
    /// then take them into service (`deviceRegister`); the supplier of the product only.
    async fn device_deliver(&self, ctx: &Context<'_>, input: DeviceDeliverInput) -> Result<DeviceDeliverPayload> {
        let caller = caller(ctx, Role::Supplier, "deliver devices").await?;
        let result: RuleResult<_> = async {
            // A stranger's list is bounded and parsed before anything is looked up.
            crate::errors::bounded("serials", &input.serials)?;
            let serials = input
                .serials
                .iter()
                .map(|s| s.parse::<DeviceSerial>().map_err(|e| Invalid::new("serials", "INVALID_SERIAL", e)))
                .collect::<Result<Vec<_>, _>>()?;
            let call_off = input_row(&input.call_off_id, NodeType::CallOff, "callOffId")?;
            in_transaction(ctx, async |txn| {
                rules::record_deliveries(txn, &caller, &input.product, call_off, &serials).await
            })
            .await
        }
        .await;
        Ok(DeviceDeliverPayload::from_rule(result, |rows| rows.into_iter().map(DeviceDelivery::from).collect())?)
    }

    /// Takes a device delivered to your municipality into service, in stock (a case worker).
    /// The supplier records the delivery first (`deviceDeliver`).
    async fn device_register(&self, ctx: &Context<'_>, input: DeviceRegisterInput) -> Result<DeviceRegisterPayload> {
        let caller = caller(ctx, Role::CaseWorker, "register devices").await?;
        let result: RuleResult<_> = async {
            let call_off =
                input.call_off_id.as_ref().map(|id| input_row(id, NodeType::CallOff, "callOffId")).transpose()?;
            let live = state(ctx).live.clone();
            in_transaction(ctx, async |txn| {
                let device = rules::register_device(txn, &caller, &input.product, &input.serial, call_off).await?;
                crate::devices::live::publish(txn, &live, std::slice::from_ref(&device)).await?;
                Ok(device)
            })
            .await
        }
        .await;
        Ok(DeviceRegisterPayload::from_rule(result, Device)?)
    }

    /// Assigns a device in stock to an active recipient of your municipality with a granted
    /// assessment for the device's user story. Role: `case_worker`.
    async fn device_assign(&self, ctx: &Context<'_>, input: DeviceAssignInput) -> Result<DeviceAssignPayload> {
        let caller = caller(ctx, Role::CaseWorker, "assign devices").await?;
        let result: RuleResult<_> = async {
            let device = input_row(&input.device_id, NodeType::Device, "deviceId")?;
            let recipient = input_row(&input.recipient_id, NodeType::ServiceRecipient, "recipientId")?;
            let live = state(ctx).live.clone();
            in_transaction(ctx, async |txn| {
                let device = rules::assign_device(txn, &caller, device, recipient).await?;
                crate::devices::live::publish(txn, &live, std::slice::from_ref(&device)).await?;
                Ok(device)
            })
            .await
        }
        .await;
        Ok(DeviceAssignPayload::from_rule(result, Device)?)
    }

    /// Moves a device of your municipality along its lifecycle: ACTIVE (installed), FAULTY,
    /// RETURNED (to the supplier), RETIRED, or IN_STOCK (unassigned, repaired). Role:
    /// `case_worker`.
    async fn device_status_change(
        &self,
        ctx: &Context<'_>,
        input: DeviceStatusChangeInput,
    ) -> Result<DeviceStatusChangePayload> {
        let caller = caller(ctx, Role::CaseWorker, "change devices' status").await?;
        let result: RuleResult<_> = async {
            let device = input_row(&input.device_id, NodeType::Device, "deviceId")?;
            let live = state(ctx).live.clone();
            in_transaction(ctx, async |txn| {
                let device = rules::change_device_status(txn, &caller, device, input.status).await?;
                crate::devices::live::publish(txn, &live, std::slice::from_ref(&device)).await?;
                Ok(device)
            })
            .await
        }
        .await;
        Ok(DeviceStatusChangePayload::from_rule(result, Device)?)
    }

    /// Replays a product's unresolved dead letters through its active adapter (the product's
    /// supplier, or admins). Those that now decode and name registered devices become events;
    /// the others keep their new reason.
    async fn dead_letters_replay(
        &self,
        ctx: &Context<'_>,
        input: DeadLettersReplayInput,
    ) -> Result<DeadLettersReplayPayload> {
        require_adapter_manager(ctx, "replay dead letters")?;
        let chosen: RuleResult<_> = async {
            // A stranger's list is bounded before anything is looked up or replayed.
            if let Some(ids) = &input.ids {
                crate::errors::bounded("ids", ids)?;
            }
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
        let outcomes =
            ingest::replay_dead_letters(&state.db, &state.live, &state.adapters, &product, ids, MAX_REPLAY).await?;
        let ids: Vec<i64> = outcomes.iter().map(|o| o.dead_letter_id).collect();
        let letters = dead_letter::Entity::find()
            .filter(dead_letter::Column::Id.is_in(ids))
            .all(state.db.write())
            .await
            .map_err(ApiError::from)?;
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
