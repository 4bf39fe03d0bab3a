//! Demo care data for two municipalities of the Larvik procurement, Larvik and Bergen, played
//! through the same rules the API enforces ([`load`], with the demo data): Dignio confirms their
//! call-offs and delivers dispensers of the care demo's own product, case workers take them
//! into stock, register recipients (invented pseudonymous references), assess them against the
//! call-off's user story and assign the devices. Once the demo feed's devices are registered
//! (`crate::demo::devices`), [`assign`] gives those to the active granted recipients too, so the
//! feed's messages raise alerts that name a recipient.

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder};

use super::model::{AssessmentDecision, RecipientStatus, service_recipient};
use super::rules::{self, NewAssessment, NewRecipient};
use crate::agreements::model::{CallOffStatus, call_off, framework_agreement};
use crate::auth::{Caller, Role};
use crate::demo::{DemoError, by_name, caller, day, hold};
use crate::devices::identifiers::DeviceSerial;
use crate::devices::model::{DeviceStatus, device, device_product};
use crate::text::{CareLine, CareNote};

/// One municipality's demo: its name, its own devices' serial prefix, recipients (reference,
/// zone) and what happens to each: `Some(true)` granted and a device assigned and active, `Some(false)`
/// declined, `None` granted with a device assigned (not yet installed).
struct Plan {
    municipality: &'static str,
    /// The serial prefix of the care demo's own dispensers.
    prefix: &'static str,
    recipients: &'static [(&'static str, &'static str, Option<bool>)],
}

/// The product of the care demo's own dispensers.
pub const DEMO_PRODUCT: &str = "dignio-dispenser";

/// Own dispensers delivered to each municipality beyond one per recipient: left in stock.
const SPARE: usize = 2;

const PLANS: &[Plan] = &[
    Plan {
        municipality: "Larvik kommune",
        prefix: "DG-LRV-",
        recipients: &[
            ("LRV-MED-0001", "Stavern", Some(true)),
            ("LRV-MED-0002", "Larvik sentrum", Some(true)),
            ("LRV-MED-0003", "Kvelde", None),
            ("LRV-MED-0004", "Stavern", Some(false)),
        ],
    },
    Plan {
        municipality: "Bergen kommune",
        prefix: "DG-BGO-",
        recipients: &[
            ("BGO-MED-0001", "Årstad", Some(true)),
            ("BGO-MED-0002", "Fana", None),
            ("BGO-MED-0003", "Laksevåg", Some(false)),
        ],
    },
];

fn line(value: &str) -> CareLine {
    CareLine::parse("demo", value).expect("demo reference without a national identity number")
}

/// A case worker of `org`, as the demo loader.
fn case_worker(org: &crate::organizations::model::Model) -> Caller {
    Caller { role: Role::CaseWorker, subject: "demo-case-worker".into(), ..caller(org) }
}

/// Loads the care demo on top of the demo procurements (in the demo's transaction): Dignio
/// confirms the municipality's call-off, and its case worker registers the recipients and
/// assesses them against the call-off's user story. Devices come with [`assign`].
pub async fn load(txn: &DatabaseTransaction) -> Result<(), DemoError> {
    let dignio_org = by_name(txn, "Dignio AS").await?;
    let dignio = caller(&dignio_org);
    let product = own_product(txn, dignio_org.id).await?;
    let agreements: Vec<framework_agreement::Model> = framework_agreement::Entity::find()
        .filter(framework_agreement::Column::SupplierId.eq(dignio_org.id))
        .all(txn)
        .await?;
    for plan in PLANS {
        let org = by_name(txn, plan.municipality).await?;
        let worker = case_worker(&org);
        let order = call_off::Entity::find()
            .filter(call_off::Column::MunicipalityId.eq(org.id))
            .filter(call_off::Column::AgreementId.is_in(agreements.iter().map(|a| a.id)))
            .one(txn)
            .await?
            .ok_or_else(|| DemoError::File(format!("{} has no call-off with Dignio", plan.municipality)))?;
        let story = agreements
            .iter()
            .find(|a| a.id == order.agreement_id)
            .map(|a| a.user_story_id)
            .ok_or_else(|| DemoError::File("call-off without agreement".into()))?;
        if order.status == CallOffStatus::Placed {
            hold(
                "confirm call-off",
                crate::agreements::rules::change_status(txn, &dignio, order.id, CallOffStatus::Confirmed).await,
            )?;
        }
        // Dispensers of the care demo's own: one per recipient and two spare, delivered by Dignio.
        let serials: Vec<DeviceSerial> = (1..=plan.recipients.len() + SPARE)
            .map(|n| format!("{}{n:04}", plan.prefix).parse().expect("a valid demo serial"))
            .collect();
        hold(
            "delivery",
            crate::devices::rules::record_deliveries(txn, &dignio, &product.slug, order.id, &serials).await,
        )?;
        let mut devices = Vec::new();
        for serial in &serials {
            devices.push(hold(
                "device",
                crate::devices::rules::register_device(txn, &worker, &product.slug, serial.as_str(), Some(order.id))
                    .await,
            )?);
        }
        let mut devices = devices.into_iter();
        for (reference, zone, plan_for) in plan.recipients {
            let recipient = hold(
                "recipient",
                rules::register_recipient(
                    txn,
                    &worker,
                    NewRecipient {
                        reference: line(reference),
                        care_zone: Some(line(zone)),
                        started_on: day(2019, 4, 1),
                    },
                )
                .await,
            )?;
            let granted = *plan_for != Some(false);
            let reason = if granted {
                "Glemmer doser og bor alene; dispenser med påminnelse vurderes som egnet."
            } else {
                "Får multidose gitt av hjemmetjenesten; dispenser gir ingen gevinst nå."
            };
            hold(
                "assessment",
                rules::assess(
                    txn,
                    &worker,
                    NewAssessment {
                        recipient_id: recipient.id,
                        user_story_id: story,
                        decision: if granted { AssessmentDecision::Granted } else { AssessmentDecision::Declined },
                        reason: CareNote::parse("demo", reason).expect("demo reason"),
                        decided_on: day(2019, 4, 10),
                    },
                )
                .await,
            )?;
            if granted {
                let device = devices.next().expect("one per recipient");
                hold("assign", crate::devices::rules::assign_device(txn, &worker, device.id, recipient.id).await)?;
                if *plan_for == Some(true) {
                    hold(
                        "activate",
                        crate::devices::rules::change_device_status(txn, &worker, device.id, DeviceStatus::Active)
                            .await,
                    )?;
                }
            }
        }
    }
    // One recipient on a pause (a stay in hospital, say): the demo shows the status history.
    let larvik = by_name(txn, "Larvik kommune").await?;
    let paused = service_recipient::Entity::find()
        .filter(service_recipient::Column::MunicipalityId.eq(larvik.id))
        .filter(service_recipient::Column::Reference.eq("LRV-MED-0003"))
        .one(txn)
        .await?
        .ok_or_else(|| DemoError::File("demo recipient missing".into()))?;
    hold(
        "pause",
        rules::change_status(txn, &case_worker(&larvik), paused.id, RecipientStatus::Paused, day(2019, 6, 1)).await,
    )?;
    Ok(())
}

/// The care demo's own dispenser product, Dignio's: its devices show recipients and their
/// devices in any demo; the demo feed's devices come with [`assign`].
async fn own_product(txn: &DatabaseTransaction, dignio: i64) -> Result<device_product::Model, DemoError> {
    use sea_orm::{ActiveModelTrait, Set};
    if let Some(product) =
        device_product::Entity::find().filter(device_product::Column::Slug.eq(DEMO_PRODUCT)).one(txn).await?
    {
        return Ok(product);
    }
    Ok(device_product::ActiveModel {
        supplier_id: Set(dignio),
        slug: Set(DEMO_PRODUCT.to_string()),
        created_at: Set(chrono::Utc::now().fixed_offset()),
        dead_letter_bytes: Set(0),
        ..Default::default()
    }
    .insert(txn)
    .await?)
}

/// Gives the demo feed's devices (`crate::demo::devices`, in the transaction that registered
/// them) to the recipients [`load`] granted, in turn, so the feed's alarms and missed doses raise
/// alerts that name a recipient. A paused or declined recipient gets none.
pub async fn assign(txn: &DatabaseTransaction) -> Result<(), DemoError> {
    for plan in PLANS {
        let org = by_name(txn, plan.municipality).await?;
        let worker = case_worker(&org);
        let mut granted = Vec::new();
        for (reference, _, _) in plan.recipients.iter().filter(|(_, _, p)| *p != Some(false)) {
            let recipient = service_recipient::Entity::find()
                .filter(service_recipient::Column::MunicipalityId.eq(org.id))
                .filter(service_recipient::Column::Reference.eq(*reference))
                .one(txn)
                .await?
                .ok_or_else(|| DemoError::File(format!("demo recipient {reference} missing")))?;
            if recipient.status == RecipientStatus::Active {
                granted.push(recipient);
            }
        }
        let own = device_product::Entity::find().filter(device_product::Column::Slug.eq(DEMO_PRODUCT)).one(txn).await?;
        let devices = device::Entity::find()
            .filter(device::Column::MunicipalityId.eq(org.id))
            .filter(device::Column::Status.eq(DeviceStatus::InStock))
            .filter(device::Column::ProductId.ne(own.map_or(0, |p| p.id)))
            .order_by_asc(device::Column::Serial)
            .all(txn)
            .await?;
        for (device, recipient) in devices.iter().zip(granted.iter().cycle()) {
            hold("assign", crate::devices::rules::assign_device(txn, &worker, device.id, recipient.id).await)?;
            hold(
                "activate",
                crate::devices::rules::change_device_status(txn, &worker, device.id, DeviceStatus::Active).await,
            )?;
        }
    }
    Ok(())
}
