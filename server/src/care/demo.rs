//! Demo care data for two municipalities of the Larvik procurement, Larvik and Bergen, played
//! through the same rules the API enforces: Dignio confirms their call-offs under the agreement
//! for user story BH1 and delivers dispensers, case workers take them into stock, register
//! recipients (invented pseudonymous references), assess them and assign devices.
//!
//! The devices are of the product `dignio-dispenser` (Dignio's; created here when missing): a
//! demo feed reaches them once the reference dispenser adapter is uploaded for that product.

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use super::model::{AssessmentDecision, RecipientStatus};
use super::rules::{self, NewAssessment, NewRecipient};
use crate::agreements::model::{CallOffStatus, call_off, framework_agreement};
use crate::auth::{Caller, Role};
use crate::demo::{DemoError, by_name, caller, day, hold};
use crate::devices::identifiers::DeviceSerial;
use crate::devices::model::{DeviceStatus, device_product};
use crate::text::{CareLine, CareNote};

/// The product the demo's devices are of.
pub const DEMO_PRODUCT: &str = "dignio-dispenser";

/// One municipality's demo: its name, serial prefix, recipients (reference, zone) and what
/// happens to each: `Some(true)` granted and a device assigned and active, `Some(false)`
/// declined, `None` granted with a device assigned (not yet installed).
struct Plan {
    municipality: &'static str,
    prefix: &'static str,
    recipients: &'static [(&'static str, &'static str, Option<bool>)],
}

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

/// Devices delivered to each municipality: one per recipient and two more left in stock.
const SPARE: usize = 2;

fn line(value: &str) -> CareLine {
    CareLine::parse("demo", value).expect("demo reference without a national identity number")
}

/// A case worker of `org`, as the demo loader.
fn case_worker(org: &crate::organizations::model::Model) -> Caller {
    Caller { role: Role::CaseWorker, subject: "demo-case-worker".into(), ..caller(org) }
}

/// Loads the care demo on top of the demo procurements (in the demo's transaction).
pub async fn load(txn: &DatabaseTransaction) -> Result<(), DemoError> {
    let dignio_org = by_name(txn, "Dignio AS").await?;
    let dignio = caller(&dignio_org);
    let product =
        match device_product::Entity::find().filter(device_product::Column::Slug.eq(DEMO_PRODUCT)).one(txn).await? {
            Some(p) => p,
            None => {
                use sea_orm::{ActiveModelTrait, Set};
                device_product::ActiveModel {
                    supplier_id: Set(dignio_org.id),
                    slug: Set(DEMO_PRODUCT.to_string()),
                    created_at: Set(chrono::Utc::now().fixed_offset()),
                    dead_letter_bytes: Set(0),
                    ..Default::default()
                }
                .insert(txn)
                .await?
            }
        };
    for plan in PLANS {
        let org = by_name(txn, plan.municipality).await?;
        let worker = case_worker(&org);
        // The municipality's call-off under one of Dignio's agreements, confirmed by Dignio.
        let agreements: Vec<framework_agreement::Model> = framework_agreement::Entity::find()
            .filter(framework_agreement::Column::SupplierId.eq(dignio_org.id))
            .all(txn)
            .await?;
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
        let count = plan.recipients.len() + SPARE;
        let serials: Vec<DeviceSerial> =
            (1..=count).map(|n| format!("{}{n:04}", plan.prefix).parse().expect("a valid demo serial")).collect();
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
        for (i, (reference, zone, plan_for)) in plan.recipients.iter().enumerate() {
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
                let device = &devices[i];
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
    let paused = super::model::service_recipient::Entity::find()
        .filter(super::model::service_recipient::Column::MunicipalityId.eq(larvik.id))
        .filter(super::model::service_recipient::Column::Reference.eq("LRV-MED-0003"))
        .one(txn)
        .await?
        .ok_or_else(|| DemoError::File("demo recipient missing".into()))?;
    hold(
        "pause",
        rules::change_status(txn, &case_worker(&larvik), paused.id, RecipientStatus::Paused, day(2019, 6, 1)).await,
    )?;
    Ok(())
}
