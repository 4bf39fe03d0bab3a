//! The rules of adapters and devices, independent of GraphQL. Every function runs inside the
//! caller's transaction and refuses a broken rule with `Refusal::Rule(DevicesError)` — the
//! transaction is then rolled back, so a refused change writes nothing.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use velferd_plugins::ValidatedAdapter;

use super::adapter_limits::RequestedLimits;
use super::identifiers::{DetachedSignature, DeviceSerial, ProductSlug, SigningPublicKey, key_registration_message};
use super::model::{
    AdapterStatus, DeviceStatus, LimitsApproval, adapter, device, device_delivery, device_product,
    device_status_change, signing_key,
};
use crate::agreements::model::{CallOffStatus, call_off, framework_agreement};
use crate::audit::{self, Access, Purpose};
use crate::auth::Caller;
use crate::care::model::{AssessmentDecision, RecipientStatus, assessment, service_recipient};
use crate::errors::{ApiError, Invalid, Refusal, RuleViolation, ensure, refuse};
use crate::organizations::OrganizationKind;

/// Rule violations of the devices area, each with the input field it concerns and a stable
/// code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, RuleViolation)]
pub enum DevicesError {
    #[error(transparent)]
    #[violation(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0} is not a supplier; only suppliers {1}")]
    #[violation(field = "", code = "NOT_A_SUPPLIER")]
    NotASupplier(String, &'static str),
    #[error("{0} is not a municipality; only municipalities register devices")]
    #[violation(field = "", code = "NOT_A_MUNICIPALITY")]
    NotAMunicipality(String),
    #[error("this public key is registered already")]
    #[violation(field = "publicKey", code = "KEY_ALREADY_REGISTERED")]
    KeyAlreadyRegistered,
    #[error("the proof is not this key's signature over \"velferd signing key for {0}\"")]
    #[violation(field = "proof", code = "PROOF_MISMATCH")]
    ProofMismatch(String),
    #[error("register an Ed25519 signing key (signingKeyRegister) before uploading adapters")]
    #[violation(field = "signature", code = "NO_SIGNING_KEY")]
    NoSigningKey,
    #[error("the signature does not verify with any of your registered signing keys")]
    #[violation(field = "signature", code = "SIGNATURE_MISMATCH")]
    SignatureMismatch,
    #[error("the component was refused: {1}")]
    #[violation(field = "component", code = "INVALID_COMPONENT")]
    InvalidComponent(&'static str, String),
    #[error("the product {0} belongs to another supplier")]
    #[violation(field = "product", code = "PRODUCT_OF_ANOTHER_SUPPLIER")]
    ProductOfAnotherSupplier(String),
    #[error("this component was uploaded for {0} already")]
    #[violation(field = "component", code = "ALREADY_UPLOADED")]
    AlreadyUploaded(String),
    #[error("the adapter is {0:?}; only a pending or inactive version can be activated")]
    #[violation(field = "adapterId", code = "CANNOT_ACTIVATE")]
    CannotActivate(AdapterStatus),
    #[error("the adapter is retired already")]
    #[violation(field = "adapterId", code = "ALREADY_RETIRED")]
    AlreadyRetired,
    #[error("{0} has no earlier active version to roll back to")]
    #[violation(field = "product", code = "NOTHING_TO_ROLL_BACK_TO")]
    NothingToRollBackTo(String),
    #[error("device {0} of this product is registered already")]
    #[violation(field = "serial", code = "DEVICE_ALREADY_REGISTERED")]
    DeviceAlreadyRegistered(String),
    #[error("the call-off is not one of your municipality's call-offs with this product's supplier")]
    #[violation(field = "callOffId", code = "CALL_OFF_MISMATCH")]
    CallOffMismatch,
    #[error(
        "no device {0} of this product has been delivered to your municipality; the supplier records \
         each delivery under your call-off (deviceDeliver) before you register it"
    )]
    #[violation(field = "serial", code = "NOT_DELIVERED")]
    NotDelivered(String),
    #[error("no such call-off")]
    #[violation(field = "callOffId", code = "NOT_FOUND")]
    UnknownCallOff,
    #[error("the call-off is {0:?}; deliver under it once you have confirmed it")]
    #[violation(field = "callOffId", code = "CALL_OFF_NOT_CONFIRMED")]
    CallOffNotConfirmed(CallOffStatus),
    #[error("the call-off is for {quantity} devices; {delivered} are delivered already and {more} more were given")]
    #[violation(field = "serials", code = "OVER_QUANTITY")]
    OverQuantity { quantity: i32, delivered: u64, more: usize },
    #[error("device {0} of this product is delivered already")]
    #[violation(field = "serials", code = "ALREADY_DELIVERED")]
    AlreadyDelivered(String),
    #[error("serial {0} is given twice")]
    #[violation(field = "serials", code = "DUPLICATE_SERIAL")]
    DuplicateSerial(String),
    #[error("no such device of your municipality")]
    #[violation(field = "deviceId", code = "NOT_FOUND")]
    UnknownDevice,
    #[error("no such service recipient of your municipality")]
    #[violation(field = "recipientId", code = "NOT_FOUND")]
    UnknownRecipient,
    #[error("a device goes from {from:?} to {to:?} only by another step: {allowed}")]
    #[violation(field = "status", code = "ILLEGAL_TRANSITION")]
    IllegalTransition { from: DeviceStatus, to: DeviceStatus, allowed: String },
    #[error("assign a device with deviceAssign, which names the recipient")]
    #[violation(field = "status", code = "ASSIGN_NAMES_A_RECIPIENT")]
    AssignNamesARecipient,
    #[error("the recipient's service is {0:?}; devices are assigned to active recipients only")]
    #[violation(field = "recipientId", code = "RECIPIENT_NOT_ACTIVE")]
    RecipientNotActive(RecipientStatus),
    #[error(
        "the recipient has no granted assessment for {0}; record one (assessmentCreate) before assigning the device"
    )]
    #[violation(field = "recipientId", code = "NO_GRANTED_ASSESSMENT")]
    NoGrantedAssessment(String),
}

/// What a devices rule returns: its value, or why not.
pub type RuleResult<T> = crate::errors::RuleResult<T, DevicesError>;

fn require_supplier(caller: &Caller, what: &'static str) -> RuleResult<()> {
    ensure(caller.org.kind == OrganizationKind::Supplier, DevicesError::NotASupplier(caller.org.name.clone(), what))
}

pub fn parse_slug(field: &'static str, slug: &str) -> Result<ProductSlug, Invalid> {
    slug.parse().map_err(|e| Invalid::new(field, "INVALID_PRODUCT", e))
}

/// A supplier registers a public key its uploads will be signed with, proving it holds the
/// private half (a signature over [`key_registration_message`]). Only the key's holder can get
/// past the proof, so `KEY_ALREADY_REGISTERED` tells nobody else whether, or by whom, a key is
/// registered; and a key stays bound to one supplier, so nobody can claim another's signed
/// components as its own.
pub async fn register_signing_key<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    public_key: &str,
    proof: &str,
    label: Option<String>,
) -> RuleResult<signing_key::Model> {
    require_supplier(caller, "register signing keys")?;
    let key: SigningPublicKey = public_key.parse().map_err(|e| Invalid::new("publicKey", "INVALID_PUBLIC_KEY", e))?;
    let proof: DetachedSignature = proof.parse().map_err(|e| Invalid::new("proof", "INVALID_SIGNATURE", e))?;
    ensure(
        key.verifies(&key_registration_message(&caller.org_number), &proof),
        DevicesError::ProofMismatch(caller.org_number.clone()),
    )?;
    let encoded = key.to_base64();
    let taken = signing_key::Entity::find().filter(signing_key::Column::PublicKey.eq(&encoded)).one(db).await?;
    ensure(taken.is_none(), DevicesError::KeyAlreadyRegistered)?;
    let label = label.map(|l| l.trim().chars().take(200).collect::<String>()).filter(|l| !l.is_empty());
    let row = signing_key::ActiveModel {
        supplier_id: Set(caller.org.id),
        public_key: Set(encoded),
        label: Set(label),
        created_at: Set(Utc::now().fixed_offset()),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// A supplier revokes one of its keys: uploads signed with it are refused from now on.
pub async fn revoke_signing_key<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    key_id: i64,
) -> RuleResult<signing_key::Model> {
    let key = signing_key::Entity::find_by_id(key_id).one(db).await?;
    let Some(key) = key.filter(|k| k.supplier_id == caller.org.id) else {
        return refuse(Invalid::new("id", "NOT_FOUND", "no such signing key of yours"));
    };
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let mut key: signing_key::ActiveModel = key.into();
    key.revoked_at = Set(Some(Utc::now().fixed_offset()));
    Ok(key.update(db).await?)
}

/// The signing key whose signature over `component` verifies, among the supplier's live keys.
pub async fn verify_upload<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    component: &[u8],
    signature: &str,
) -> RuleResult<signing_key::Model> {
    require_supplier(caller, "upload adapters")?;
    let signature: DetachedSignature =
        signature.parse().map_err(|e| Invalid::new("signature", "INVALID_SIGNATURE", e))?;
    let keys = signing_key::Entity::find()
        .filter(signing_key::Column::SupplierId.eq(caller.org.id))
        .filter(signing_key::Column::RevokedAt.is_null())
        .all(db)
        .await?;
    ensure(!keys.is_empty(), DevicesError::NoSigningKey)?;
    let verified = keys
        .into_iter()
        .find(|k| k.public_key.parse::<SigningPublicKey>().is_ok_and(|public| public.verifies(component, &signature)));
    match verified {
        Some(key) => Ok(key),
        None => refuse(DevicesError::SignatureMismatch),
    }
}

/// Records a signed, validated upload as a pending version of the supplier's product (created
/// on its first upload), with the limits it asked for (`RequestedLimits::default()`: none);
/// `approval` says whether an admin must approve them (more than the defaults) at activation.
#[allow(clippy::too_many_arguments)]
pub async fn record_upload<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    slug: &ProductSlug,
    key: &signing_key::Model,
    validated: &ValidatedAdapter,
    component: Vec<u8>,
    requested: &RequestedLimits,
    approval: LimitsApproval,
) -> RuleResult<adapter::Model> {
    let now = Utc::now().fixed_offset();
    let product =
        match device_product::Entity::find().filter(device_product::Column::Slug.eq(slug.as_str())).one(db).await? {
            Some(p) => {
                ensure(p.supplier_id == caller.org.id, DevicesError::ProductOfAnotherSupplier(slug.to_string()))?;
                p
            }
            None => {
                device_product::ActiveModel {
                    supplier_id: Set(caller.org.id),
                    slug: Set(slug.to_string()),
                    created_at: Set(now),
                    dead_letter_bytes: Set(0),
                    ..Default::default()
                }
                .insert(db)
                .await?
            }
        };
    let again = adapter::Entity::find()
        .filter(adapter::Column::ProductId.eq(product.id))
        .filter(adapter::Column::Sha256.eq(&validated.sha256))
        .one(db)
        .await?;
    ensure(again.is_none(), DevicesError::AlreadyUploaded(slug.to_string()))?;
    let limits = requested.columns();
    let row = adapter::ActiveModel {
        product_id: Set(product.id),
        status: Set(AdapterStatus::PendingReview),
        adapter_version: Set(validated.info.adapter_version.clone()),
        interface_version: Set(validated.interface_version.clone()),
        sha256: Set(validated.sha256.clone()),
        size_bytes: Set(validated.size_bytes as i64),
        component: Set(component),
        description: Set(serde_json::to_string(&validated.info).expect("adapter info serialises")),
        signing_key_id: Set(key.id),
        uploaded_by: Set(caller.subject.chars().take(200).collect()),
        uploaded_at: Set(now),
        activated_at: Set(None),
        retired_at: Set(None),
        limits_component_bytes: Set(limits[0]),
        limits_memory_bytes: Set(limits[1]),
        limits_fuel: Set(limits[2]),
        limits_deadline_ms: Set(limits[3]),
        limits_approval: Set(approval),
        limits_approved_by: Set(None),
        limits_approved_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

async fn adapter_row<C: ConnectionTrait>(db: &C, id: i64) -> RuleResult<adapter::Model> {
    match adapter::Entity::find_by_id(id).one(db).await? {
        Some(a) => Ok(a),
        None => refuse(Invalid::not_found("adapterId", "no such adapter")),
    }
}

async fn set_status<C: ConnectionTrait>(db: &C, id: i64, status: AdapterStatus) -> Result<(), ApiError> {
    adapter::Entity::update_many()
        .col_expr(adapter::Column::Status, Expr::value(status))
        .filter(adapter::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

async fn active_of<C: ConnectionTrait>(db: &C, product_id: i64) -> Result<Option<adapter::Model>, ApiError> {
    Ok(adapter::Entity::find()
        .filter(adapter::Column::ProductId.eq(product_id))
        .filter(adapter::Column::Status.eq(AdapterStatus::Active))
        .one(db)
        .await?)
}

/// An admin activates a pending (or earlier) version; the product's active version becomes
/// inactive and stays available for roll-back.
pub async fn activate<C: ConnectionTrait>(db: &C, adapter_id: i64) -> RuleResult<adapter::Model> {
    activate_approving(db, adapter_id, None).await
}

/// [`activate`], approving the limits the version asked for when `approver` (the admin's token
/// subject) is given. A version that asks for more than the defaults is refused without it
/// (`LIMITS_NOT_APPROVED`), and nothing changes.
pub async fn activate_approving<C: ConnectionTrait>(
    db: &C,
    adapter_id: i64,
    approver: Option<&str>,
) -> RuleResult<adapter::Model> {
    let a = adapter_row(db, adapter_id).await?;
    ensure(
        matches!(a.status, AdapterStatus::PendingReview | AdapterStatus::Inactive),
        DevicesError::CannotActivate(a.status),
    )?;
    let approve = a.limits_approval == LimitsApproval::Pending;
    if approve && approver.is_none() {
        let asked = RequestedLimits::of(&adapter::Summary::from(a.clone()));
        return refuse(Invalid::new(
            "approveLimits",
            "LIMITS_NOT_APPROVED",
            format!(
                "this version asks for more than the default limits ({}); review its replay and activate it \
                 with approveLimits: true to approve them",
                asked.describe()
            ),
        ));
    }
    if let Some(current) = active_of(db, a.product_id).await? {
        set_status(db, current.id, AdapterStatus::Inactive).await?;
    }
    let mut row: adapter::ActiveModel = a.into();
    row.status = Set(AdapterStatus::Active);
    row.activated_at = Set(Some(Utc::now().fixed_offset()));
    if let (true, Some(approver)) = (approve, approver) {
        row.limits_approval = Set(LimitsApproval::Approved);
        row.limits_approved_by = Set(Some(approver.chars().take(200).collect()));
        row.limits_approved_at = Set(Some(Utc::now().fixed_offset()));
    }
    Ok(row.update(db).await?)
}

/// An admin rolls a product back to the version that was active before the current one.
pub async fn roll_back<C: ConnectionTrait>(db: &C, product: &device_product::Model) -> RuleResult<adapter::Model> {
    let current = active_of(db, product.id).await?;
    let mut earlier = adapter::Entity::find()
        .filter(adapter::Column::ProductId.eq(product.id))
        .filter(adapter::Column::Status.eq(AdapterStatus::Inactive))
        .filter(adapter::Column::ActivatedAt.is_not_null());
    if let Some(at) = current.as_ref().and_then(|c| c.activated_at) {
        earlier = earlier.filter(adapter::Column::ActivatedAt.lt(at));
    }
    let Some(previous) =
        earlier.order_by_desc(adapter::Column::ActivatedAt).order_by_desc(adapter::Column::Id).one(db).await?
    else {
        return refuse(DevicesError::NothingToRollBackTo(product.slug.clone()));
    };
    if let Some(current) = current {
        set_status(db, current.id, AdapterStatus::Inactive).await?;
    }
    // The activation time stays the first one, so that rolling back again goes further back.
    set_status(db, previous.id, AdapterStatus::Active).await?;
    Ok(adapter::Model { status: AdapterStatus::Active, ..previous })
}

/// Retires a version for good. Retiring the active version leaves the product without one:
/// its messages are kept as dead letters until another version is activated.
pub async fn retire<C: ConnectionTrait>(db: &C, adapter_id: i64) -> RuleResult<adapter::Model> {
    let a = adapter_row(db, adapter_id).await?;
    ensure(a.status != AdapterStatus::Retired, DevicesError::AlreadyRetired)?;
    let mut row: adapter::ActiveModel = a.into();
    row.status = Set(AdapterStatus::Retired);
    row.retired_at = Set(Some(Utc::now().fixed_offset()));
    Ok(row.update(db).await?)
}

/// The product's supplier records devices it has delivered under a municipality's call-off (one
/// it has confirmed, under one of its own agreements), so that the municipality can take them
/// into service. A serial is delivered once per product, and never while a device with it is in
/// service; a call-off takes at most its quantity.
pub async fn record_deliveries<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    product_slug: &str,
    call_off_id: i64,
    serials: &[DeviceSerial],
) -> RuleResult<Vec<device_delivery::Model>> {
    require_supplier(caller, "deliver devices")?;
    let slug = parse_slug("product", product_slug)?;
    let Some(product) =
        device_product::Entity::find().filter(device_product::Column::Slug.eq(slug.as_str())).one(db).await?
    else {
        return refuse(Invalid::new("product", "UNKNOWN_PRODUCT", format!("no device product {slug}")));
    };
    ensure(product.supplier_id == caller.org.id, DevicesError::ProductOfAnotherSupplier(slug.to_string()))?;
    // A call-off under another supplier's agreement answers like a missing one.
    let Some(call_off) = call_off::Entity::find_by_id(call_off_id).one(db).await? else {
        return refuse(DevicesError::UnknownCallOff);
    };
    let agreement = framework_agreement::Entity::find_by_id(call_off.agreement_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("call-off without agreement"))?;
    ensure(agreement.supplier_id == caller.org.id, DevicesError::UnknownCallOff)?;
    ensure(
        matches!(call_off.status, CallOffStatus::Confirmed | CallOffStatus::Delivered),
        DevicesError::CallOffNotConfirmed(call_off.status),
    )?;
    let mut seen = std::collections::BTreeSet::new();
    for serial in serials {
        ensure(seen.insert(serial.as_str()), DevicesError::DuplicateSerial(serial.to_string()))?;
    }
    let delivered =
        device_delivery::Entity::find().filter(device_delivery::Column::CallOffId.eq(call_off.id)).count(db).await?;
    ensure(
        delivered + serials.len() as u64 <= u64::try_from(call_off.quantity).unwrap_or(0),
        DevicesError::OverQuantity { quantity: call_off.quantity, delivered, more: serials.len() },
    )?;
    let names: Vec<&str> = serials.iter().map(DeviceSerial::as_str).collect();
    let known = device_delivery::Entity::find()
        .filter(device_delivery::Column::ProductId.eq(product.id))
        .filter(device_delivery::Column::Serial.is_in(names.clone()))
        .one(db)
        .await?
        .map(|d| d.serial);
    let in_service = device::Entity::find()
        .filter(device::Column::ProductId.eq(product.id))
        .filter(device::Column::Serial.is_in(names))
        .one(db)
        .await?
        .map(|d| d.serial);
    if let Some(serial) = known.or(in_service) {
        return refuse(DevicesError::AlreadyDelivered(serial));
    }
    let now = Utc::now().fixed_offset();
    let mut rows = Vec::with_capacity(serials.len());
    for serial in serials {
        let row = device_delivery::ActiveModel {
            product_id: Set(product.id),
            serial: Set(serial.to_string()),
            call_off_id: Set(call_off.id),
            municipality_id: Set(call_off.municipality_id),
            delivered_by: Set(caller.subject.chars().take(200).collect()),
            delivered_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
        rows.push(row);
    }
    Ok(rows)
}

/// Whether a device in `status` is with a recipient: assigned, in use, or reported faulty at
/// the recipient's home. Any other status clears the link.
pub fn holds_recipient(status: DeviceStatus) -> bool {
    matches!(status, DeviceStatus::Assigned | DeviceStatus::Active | DeviceStatus::Faulty)
}

/// The device lifecycle, the one place its steps are decided: in stock → assigned → active →
/// faulty / returned / retired, and back to stock when unassigned, repaired or when the
/// recipient's service ends. Returned (to the supplier) and retired are final.
pub fn transition(from: DeviceStatus, to: DeviceStatus) -> Result<DeviceStatus, DevicesError> {
    use DeviceStatus::*;
    let allowed: &[DeviceStatus] = match from {
        InStock => &[Assigned, Faulty, Returned, Retired],
        Assigned => &[Active, InStock, Faulty, Returned],
        Active => &[Faulty, InStock, Returned, Retired],
        Faulty => &[InStock, Returned, Retired],
        Returned | Retired => &[],
    };
    if allowed.contains(&to) {
        Ok(to)
    } else {
        let names: Vec<String> = allowed.iter().map(|s| format!("{s:?}")).collect();
        let allowed = if names.is_empty() { "none, it is final".to_string() } else { names.join(", ") };
        Err(DevicesError::IllegalTransition { from, to, allowed })
    }
}

/// A municipality's case worker takes a delivered device into service, in stock: it must have
/// been delivered to this municipality. A serial delivered elsewhere, never delivered, or
/// unknown answers the same `NOT_DELIVERED`, so other municipalities' devices cannot be probed.
pub async fn register_device<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    product_slug: &str,
    serial: &str,
    call_off_id: Option<i64>,
) -> RuleResult<device::Model> {
    ensure(caller.org.kind == OrganizationKind::Municipality, DevicesError::NotAMunicipality(caller.org.name.clone()))?;
    let slug = parse_slug("product", product_slug)?;
    let serial: DeviceSerial = serial.parse().map_err(|e| Invalid::new("serial", "INVALID_SERIAL", e))?;
    let Some(product) =
        device_product::Entity::find().filter(device_product::Column::Slug.eq(slug.as_str())).one(db).await?
    else {
        return refuse(Invalid::new("product", "UNKNOWN_PRODUCT", format!("no device product {slug}")));
    };
    let Some(delivery) = device_delivery::Entity::find()
        .filter(device_delivery::Column::ProductId.eq(product.id))
        .filter(device_delivery::Column::Serial.eq(serial.as_str()))
        .filter(device_delivery::Column::MunicipalityId.eq(caller.org.id))
        .one(db)
        .await?
    else {
        return refuse(DevicesError::NotDelivered(serial.to_string()));
    };
    if let Some(call_off_id) = call_off_id {
        ensure(call_off_id == delivery.call_off_id, DevicesError::CallOffMismatch)?;
    }
    // Delivered to this municipality, and deliveries refuse serials in service: a device with
    // this serial can only be this municipality's own.
    let taken = device::Entity::find()
        .filter(device::Column::ProductId.eq(product.id))
        .filter(device::Column::Serial.eq(serial.as_str()))
        .one(db)
        .await?;
    ensure(taken.is_none(), DevicesError::DeviceAlreadyRegistered(serial.to_string()))?;
    let now = Utc::now().fixed_offset();
    let row = device::ActiveModel {
        product_id: Set(product.id),
        municipality_id: Set(caller.org.id),
        serial: Set(serial.to_string()),
        call_off_id: Set(Some(delivery.call_off_id)),
        registered_at: Set(now),
        status: Set(DeviceStatus::InStock),
        recipient_id: Set(None),
        last_seen_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    record_status_change(db, caller, &row, None, None).await?;
    Ok(row)
}

/// Keeps one step of the device's history: `device` as it is now, coming from `from`, with the
/// recipient it concerned.
async fn record_status_change<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    device: &device::Model,
    from: Option<DeviceStatus>,
    recipient_id: Option<i64>,
) -> Result<(), ApiError> {
    device_status_change::ActiveModel {
        device_id: Set(device.id),
        from_status: Set(from),
        to_status: Set(device.status),
        recipient_id: Set(recipient_id),
        ..crate::changed_by!(device_status_change, caller)
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The caller's municipality's device `id`; another's answers like a missing one.
async fn own_device<C: ConnectionTrait>(db: &C, caller: &Caller, id: i64) -> RuleResult<device::Model> {
    match device::Entity::find_by_id(id).one(db).await? {
        Some(d) if d.municipality_id == caller.org.id => Ok(d),
        _ => refuse(DevicesError::UnknownDevice),
    }
}

/// Moves `device` to `to` through [`transition`], clearing the recipient when the new status
/// holds none; keeps the step and, when it concerned a recipient, writes the audit entry.
async fn apply_transition<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    device: device::Model,
    to: DeviceStatus,
    recipient_id: Option<i64>,
    purpose: Purpose,
) -> RuleResult<device::Model> {
    let from = device.status;
    let to = transition(from, to).map_err(Refusal::Rule)?;
    let recipient_after = if holds_recipient(to) { recipient_id.or(device.recipient_id) } else { None };
    let concerned = recipient_after.or(device.recipient_id);
    let mut row: device::ActiveModel = device.into();
    row.status = Set(to);
    row.recipient_id = Set(recipient_after);
    let row = row.update(db).await?;
    record_status_change(db, caller, &row, Some(from), concerned).await?;
    if let Some(recipient) = concerned {
        let operation = if to == DeviceStatus::Assigned { "device.assign" } else { "device.status_change" };
        audit::record(
            db,
            Access::granted(caller, row.municipality_id, recipient, operation, ("Device", row.id), purpose),
        )
        .await?;
    }
    Ok(row)
}

/// A case worker assigns a device in stock to an active recipient of the municipality. The
/// recipient needs a granted assessment (its latest decision on that user story) for the user
/// story of the framework agreement the device was called off under; a device registered
/// without a call-off (before deliveries were recorded) needs any granted assessment.
pub async fn assign_device<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    device_id: i64,
    recipient_id: i64,
) -> RuleResult<device::Model> {
    let device = own_device(db, caller, device_id).await?;
    let recipient = match service_recipient::Entity::find_by_id(recipient_id).one(db).await? {
        Some(r) if r.municipality_id == caller.org.id => r,
        _ => return refuse(DevicesError::UnknownRecipient),
    };
    // The step itself first: a device that cannot be assigned says so whoever it is for.
    transition(device.status, DeviceStatus::Assigned).map_err(Refusal::Rule)?;
    ensure(recipient.status == RecipientStatus::Active, DevicesError::RecipientNotActive(recipient.status))?;
    let story = match device.call_off_id {
        Some(call_off_id) => {
            let call_off = call_off::Entity::find_by_id(call_off_id)
                .one(db)
                .await?
                .ok_or_else(|| ApiError::internal("device with a dangling call-off"))?;
            let agreement = framework_agreement::Entity::find_by_id(call_off.agreement_id)
                .one(db)
                .await?
                .ok_or_else(|| ApiError::internal("call-off without agreement"))?;
            Some(agreement.user_story_id)
        }
        None => None,
    };
    let decisions = assessment::Entity::find()
        .filter(assessment::Column::RecipientId.eq(recipient.id))
        .order_by_desc(assessment::Column::DecidedOn)
        .order_by_desc(assessment::Column::Id)
        .all(db)
        .await?;
    // The latest decision on each user story is the one that stands.
    let mut latest: std::collections::BTreeMap<i64, AssessmentDecision> = std::collections::BTreeMap::new();
    for a in &decisions {
        latest.entry(a.user_story_id).or_insert(a.decision);
    }
    let granted = match story {
        Some(story) => latest.get(&story) == Some(&AssessmentDecision::Granted),
        None => latest.values().any(|d| *d == AssessmentDecision::Granted),
    };
    let what = match story {
        Some(story) => {
            let code = crate::procurement::model::user_story::Entity::find_by_id(story)
                .one(db)
                .await?
                .map_or_else(|| "its user story".to_string(), |s| format!("user story {}", s.code));
            format!("{code}, under which the device was called off")
        }
        None => "any user story".to_string(),
    };
    ensure(granted, DevicesError::NoGrantedAssessment(what))?;
    apply_transition(db, caller, device, DeviceStatus::Assigned, Some(recipient.id), Purpose::Casework).await
}

/// A case worker moves a device of the municipality along its lifecycle (not to `ASSIGNED`,
/// which names a recipient: [`assign_device`]).
pub async fn change_device_status<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    device_id: i64,
    to: DeviceStatus,
) -> RuleResult<device::Model> {
    let device = own_device(db, caller, device_id).await?;
    ensure(to != DeviceStatus::Assigned, DevicesError::AssignNamesARecipient)?;
    let purpose = match device.recipient_id {
        Some(_) => Purpose::Assignment(device.id),
        None => Purpose::Casework,
    };
    apply_transition(db, caller, device, to, None, purpose).await
}

/// When a recipient's service ends, each device still with the recipient goes back to stock,
/// each step kept.
pub async fn return_devices_of<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    recipient_id: i64,
) -> RuleResult<Vec<device::Model>> {
    let devices = device::Entity::find()
        .filter(device::Column::RecipientId.eq(recipient_id))
        .order_by_asc(device::Column::Id)
        .all(db)
        .await?;
    let mut returned = Vec::with_capacity(devices.len());
    for d in devices {
        returned.push(apply_transition(db, caller, d, DeviceStatus::InStock, None, Purpose::Casework).await?);
    }
    Ok(returned)
}

/// Ingest: each device's `last_seen_at` becomes the newest `occurred_at` of the events being
/// stored, in the same transaction; it never moves back for an event that occurred earlier.
pub async fn record_last_seen<C: ConnectionTrait>(
    db: &C,
    stored: &[super::model::device_event::ActiveModel],
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ActiveValue;
    use sea_orm::sea_query::ExprTrait;
    let mut newest: std::collections::BTreeMap<i64, sea_orm::prelude::DateTimeWithTimeZone> =
        std::collections::BTreeMap::new();
    for event in stored {
        let (ActiveValue::Set(device), ActiveValue::Set(at)) = (&event.device_id, &event.occurred_at) else {
            continue;
        };
        let at = at.with_timezone(&Utc).fixed_offset();
        newest.entry(*device).and_modify(|t| *t = std::cmp::max(*t, at)).or_insert(at);
    }
    // One statement per 200 devices, not one per device: a group of single messages from
    // different devices would otherwise pay an extra statement for every message.
    let newest: Vec<_> = newest.into_iter().collect();
    for chunk in newest.chunks(200) {
        let newest_of = || {
            let mut arms = chunk.iter().map(|(device, at)| (device::Column::Id.eq(*device), Expr::value(*at)));
            let (when, then) = arms.next().expect("chunks are not empty");
            arms.fold(Expr::case(when, then), |case, (when, then)| case.case(when, then))
        };
        device::Entity::update_many()
            .col_expr(device::Column::LastSeenAt, newest_of().into())
            .filter(device::Column::Id.is_in(chunk.iter().map(|(device, _)| *device)))
            .filter(
                sea_orm::Condition::any()
                    .add(device::Column::LastSeenAt.is_null())
                    .add(Expr::col(device::Column::LastSeenAt).lt(newest_of())),
            )
            .exec(db)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceStatus::*;

    #[test]
    fn the_lifecycle_allows_exactly_its_steps() {
        let all = [InStock, Assigned, Active, Faulty, Returned, Retired];
        let allowed = [
            (InStock, Assigned),
            (InStock, Faulty),
            (InStock, Returned),
            (InStock, Retired),
            (Assigned, Active),
            (Assigned, InStock),
            (Assigned, Faulty),
            (Assigned, Returned),
            (Active, Faulty),
            (Active, InStock),
            (Active, Returned),
            (Active, Retired),
            (Faulty, InStock),
            (Faulty, Returned),
            (Faulty, Retired),
        ];
        for from in all {
            for to in all {
                assert_eq!(transition(from, to).is_ok(), allowed.contains(&(from, to)), "{from:?} → {to:?}");
            }
        }
        // Only the statuses that keep a device at a recipient's home hold the link.
        assert_eq!(all.iter().filter(|s| holds_recipient(**s)).count(), 3);
    }
}
