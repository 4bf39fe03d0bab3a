//! The demo's devices: the reference adapters built from this repository's source, uploaded
//! signed by a supplier and activated, and devices delivered under two municipalities' call-offs
//! and registered by them — all through the same rules the API enforces, so the demo feed's
//! messages go the whole way through ingest.
//!
//! Illustrative, and said so in `server/demo/README.md`: both reference adapters (a medication
//! dispenser and a SCAIP social-care alarm) are registered under Dignio AS, the supplier of the
//! demo call-offs; no real product of Dignio's is described by them.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use sha2::{Digest, Sha256};

use super::{DemoError, by_name, caller, hold};
use crate::agreements::model::{CallOffStatus, call_off, framework_agreement};
use crate::auth::Role;
use crate::db::Database;
use crate::devices::adapter_limits::RequestedLimits;
use crate::devices::identifiers::{DeviceSerial, key_registration_message};
use crate::devices::model::{LimitsApproval, device_product};
use crate::devices::rules;
use crate::devices::runtime::AdapterRuntime;

/// The supplier whose products the demo devices are.
pub const SUPPLIER: &str = "Dignio AS";
/// The response centre that serves the demo fleet's municipalities (fictional, and named so).
pub const RESPONSE_CENTRE: &str = "Demo responssenter (fiktivt)";
/// The product slug of the reference medication dispenser.
pub const DISPENSER: &str = "reference-dispenser";
/// The product slug of the reference SCAIP social-care alarm.
pub const ALARM: &str = "reference-alarm";

/// The two municipalities with devices, and their devices' serials: (municipality, dispensers,
/// alarm units). Larvik's are the serials of the adapters' sample messages.
pub const FLEET: [(&str, [&str; 2], [&str; 2]); 2] = [
    ("Larvik kommune", ["RD-100234", "RD-100235"], ["SA-7734001", "SA-7734002"]),
    ("Bergen kommune", ["RD-200101", "RD-200102"], ["SA-8801001", "SA-8801002"]),
];

/// The reference adapters: product slug, guest crate, component file.
const ADAPTERS: [(&str, &str, &str); 2] = [
    (DISPENSER, "velferd-dispenser-json", "velferd_dispenser_json.wasm"),
    (ALARM, "velferd-alarm-scaip", "velferd_alarm_scaip.wasm"),
];

/// The demo supplier's upload key. Derived from a public phrase on purpose: it signs only the
/// demo's own uploads, and anyone may reproduce them.
fn demo_signing_key() -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(b"velferd demo adapter signing key (public, demo only)").into();
    SigningKey::from_bytes(&seed)
}

/// The repository this binary was built from: the guests' sources are there.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Builds the two reference adapters for `wasm32-wasip2` (release) into the same directory the
/// tests use, installing the target with rustup when it is missing; answers their directory.
/// A second start finds them built and cargo returns at once.
pub fn build_reference_adapters() -> Result<PathBuf, DemoError> {
    let root = repo_root();
    let manifest = root.join("plugins/guests/Cargo.toml");
    if !manifest.exists() {
        return Err(DemoError::Adapters(format!(
            "the reference adapters' sources are not at {} (the demo builds them from the repository it was \
             built from); run `velferd serve --demo` from a checkout, or start without --demo",
            manifest.display()
        )));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-guests");
    let build = || {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        // A `cargo run` passes its per-build variables on; they would point the guests' build at
        // the server's target and flags.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("CARGO_") && key != "CARGO_HOME" && !key.starts_with("CARGO_NET_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env_remove("RUSTC_WRAPPER").env_remove("RUSTC_WORKSPACE_WRAPPER");
        cmd.args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target);
        for (_, krate, _) in ADAPTERS {
            cmd.args(["-p", krate]);
        }
        cmd.output()
    };
    let missing_target = |stderr: &str| {
        stderr.contains("wasm32-wasip2")
            && (stderr.contains("target may not be installed")
                || stderr.contains("can't find crate for `core`")
                || stderr.contains("can't find crate for `std`"))
    };
    tracing::info!("building the reference adapters (wasm32-wasip2) for the demo");
    let run = |what: &str, out: std::io::Result<std::process::Output>| {
        out.map_err(|e| DemoError::Adapters(format!("{what} could not run: {e}")))
    };
    let mut output = run("cargo", build())?;
    if !output.status.success() && missing_target(&String::from_utf8_lossy(&output.stderr)) {
        tracing::info!("installing the wasm32-wasip2 target: rustup target add wasm32-wasip2");
        let added = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).output();
        match added {
            Ok(o) if o.status.success() => output = run("cargo", build())?,
            _ => {
                return Err(DemoError::Adapters(
                    "the demo's device adapters need the wasm32-wasip2 target, and `rustup target add \
                     wasm32-wasip2` did not install it; install it, or start with --no-demo-feed"
                        .into(),
                ));
            }
        }
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(DemoError::Adapters(format!(
            "building the reference adapters failed (cargo build --release --target wasm32-wasip2 in \
             plugins/guests):\n{}",
            tail.join("\n")
        )));
    }
    Ok(target.join("wasm32-wasip2/release"))
}

/// What the demo feed needs to know of the loaded devices.
#[derive(Debug, Clone)]
pub struct DemoDevices {
    /// The supplier's row id: the feed's integration token names it by `oid`.
    pub supplier_id: i64,
}

/// Uploads and activates the reference adapters and delivers and registers the demo devices,
/// once: a database where the demo products exist is left as it is. Needs the demo
/// organisations and call-offs (`demo::load`); a database without them (one that had data of
/// its own, so the demo was not loaded into it) gets no demo devices: `None`.
pub async fn load(db: &Database, runtime: &AdapterRuntime) -> Result<Option<DemoDevices>, DemoError> {
    use crate::organizations::model as organization;
    let Some(supplier_row) =
        organization::Entity::find().filter(organization::Column::Name.eq(SUPPLIER)).one(db.read()).await?
    else {
        tracing::warn!("this database has no demo organisations: no demo devices and no demo feed");
        return Ok(None);
    };
    let done = device_product::Entity::find()
        .filter(device_product::Column::Slug.eq(DISPENSER))
        .one(db.read())
        .await?
        .is_some();
    if done {
        return Ok(Some(DemoDevices { supplier_id: supplier_row.id }));
    }
    // Building may take minutes on a fresh machine: off the async workers.
    let dir = tokio::task::spawn_blocking(build_reference_adapters)
        .await
        .map_err(|e| DemoError::Adapters(format!("building the reference adapters: {e}")))??;
    let mut components = Vec::new();
    for (slug, _, file) in ADAPTERS {
        let path = dir.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| DemoError::Adapters(format!("reading the built adapter {}: {e}", path.display())))?;
        let validated = runtime
            .validate(bytes.clone())
            .await
            .map_err(|e| DemoError::Adapters(format!("the reference adapter {slug} was refused: {e}")))?;
        components.push((slug, bytes, validated));
    }

    let txn = db.write().begin().await?;
    let supplier = caller(&supplier_row);
    let key = demo_signing_key();
    let public = STANDARD.encode(key.verifying_key().as_bytes());
    let proof = STANDARD.encode(key.sign(&key_registration_message(&supplier.org_number)).to_bytes());
    hold(
        "signing key",
        rules::register_signing_key(&txn, &supplier, &public, &proof, Some("demo release key".into())).await,
    )?;
    for (slug, bytes, validated) in components {
        let signature = STANDARD.encode(key.sign(&bytes).to_bytes());
        let key = hold("upload", rules::verify_upload(&txn, &supplier, &bytes, &signature).await)?;
        let slug = rules::parse_slug("product", slug).map_err(|e| DemoError::File(e.to_string()))?;
        let (nothing, approval) = (RequestedLimits::default(), LimitsApproval::NotNeeded);
        let adapter = hold(
            "upload",
            rules::record_upload(&txn, &supplier, &slug, &key, &validated, bytes, &nothing, approval).await,
        )?;
        hold("activation", rules::activate(&txn, adapter.id).await)?;
    }
    for (municipality, dispensers, alarms) in FLEET {
        let municipality = by_name(&txn, municipality).await?;
        // The municipality's call-off under an agreement with the supplier, confirmed by it.
        let agreements: Vec<i64> = framework_agreement::Entity::find()
            .filter(framework_agreement::Column::SupplierId.eq(supplier_row.id))
            .all(&txn)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect();
        let call_off = call_off::Entity::find()
            .filter(call_off::Column::MunicipalityId.eq(municipality.id))
            .filter(call_off::Column::AgreementId.is_in(agreements))
            .one(&txn)
            .await?
            .ok_or_else(|| DemoError::File(format!("{} has no call-off with {SUPPLIER}", municipality.name)))?;
        if call_off.status == CallOffStatus::Placed {
            hold(
                "call-off confirmation",
                crate::agreements::rules::change_status(&txn, &supplier, call_off.id, CallOffStatus::Confirmed).await,
            )?;
        }
        let case_worker = crate::auth::Caller { role: Role::CaseWorker, ..caller(&municipality) };
        for (slug, serials) in [(DISPENSER, dispensers), (ALARM, alarms)] {
            let parsed: Vec<DeviceSerial> =
                serials.iter().map(|s| s.parse().expect("demo serials are valid")).collect();
            hold("delivery", rules::record_deliveries(&txn, &supplier, slug, call_off.id, &parsed).await)?;
            for serial in serials {
                hold(
                    "registration",
                    rules::register_device(&txn, &case_worker, slug, serial, Some(call_off.id)).await,
                )?;
            }
        }
    }
    // Recipients, assessments and assignments of these devices: alerts then name a recipient.
    crate::care::demo::assign(&txn).await?;
    // The demo response centre serves both municipalities, so its operators see their alerts.
    let centre = by_name(&txn, RESPONSE_CENTRE).await?;
    for (municipality, _, _) in FLEET {
        let officer =
            crate::auth::Caller { role: Role::ProcurementOfficer, ..caller(&by_name(&txn, municipality).await?) };
        let agreement = crate::alerts::workflow::NewServiceAgreement {
            response_centre_id: centre.id,
            call_off_id: None,
            valid_from: super::day(2020, 1, 1),
            valid_to: super::day(2035, 12, 31),
        };
        hold("service agreement", crate::alerts::workflow::create_service_agreement(&txn, &officer, agreement).await)?;
    }
    txn.commit().await?;
    tracing::info!("demo adapters active and demo devices registered");
    Ok(Some(DemoDevices { supplier_id: supplier_row.id }))
}
