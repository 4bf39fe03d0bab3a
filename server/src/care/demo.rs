//! Demo care data for two municipalities of the Larvik procurement, Larvik and Bergen, played
//! through the same rules the API enforces: case workers register recipients (invented
//! pseudonymous references), assess them against the user story of the call-off their demo
//! devices came under (`crate::demo::devices`), and assign those devices, so the demo feed's
//! messages raise alerts that name a recipient.

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder};

use super::model::{AssessmentDecision, RecipientStatus};
use super::rules::{self, NewAssessment, NewRecipient};
use crate::agreements::model::{call_off, framework_agreement};
use crate::auth::{Caller, Role};
use crate::demo::{DemoError, by_name, caller, day, hold};
use crate::devices::model::{DeviceStatus, device};
use crate::text::{CareLine, CareNote};

/// One municipality's demo: its name, recipients (reference, zone) and what
/// happens to each: `Some(true)` granted and a device assigned and active, `Some(false)`
/// declined, `None` granted with a device assigned (not yet installed).
struct Plan {
    municipality: &'static str,
    recipients: &'static [(&'static str, &'static str, Option<bool>)],
}

const PLANS: &[Plan] = &[
    Plan {
        municipality: "Larvik kommune",
        recipients: &[
            ("LRV-MED-0001", "Stavern", Some(true)),
            ("LRV-MED-0002", "Larvik sentrum", Some(true)),
            ("LRV-MED-0003", "Kvelde", None),
            ("LRV-MED-0004", "Stavern", Some(false)),
        ],
    },
    Plan {
        municipality: "Bergen kommune",
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

/// Loads the care demo on top of the demo's devices (in the transaction that registered them):
/// the municipality's devices in stock go, in serial order, to its granted recipients, so the
/// demo feed's messages raise alerts that name a recipient.
pub async fn load(txn: &DatabaseTransaction) -> Result<(), DemoError> {
    let dignio_org = by_name(txn, "Dignio AS").await?;
    for plan in PLANS {
        let org = by_name(txn, plan.municipality).await?;
        let worker = case_worker(&org);
        let devices: Vec<device::Model> = device::Entity::find()
            .filter(device::Column::MunicipalityId.eq(org.id))
            .filter(device::Column::Status.eq(DeviceStatus::InStock))
            .order_by_asc(device::Column::Serial)
            .all(txn)
            .await?;
        let granted = plan.recipients.iter().filter(|(_, _, p)| *p != Some(false)).count();
        if devices.len() < granted {
            return Err(DemoError::File(format!(
                "{} has {} demo devices in stock for {granted} granted recipients",
                plan.municipality,
                devices.len()
            )));
        }
        // The user story of the call-off the devices came under: what the assessments grant.
        let order = devices[0].call_off_id.ok_or_else(|| DemoError::File("demo device without a call-off".into()))?;
        let order = call_off::Entity::find_by_id(order)
            .one(txn)
            .await?
            .ok_or_else(|| DemoError::File("demo call-off missing".into()))?;
        let story = framework_agreement::Entity::find_by_id(order.agreement_id)
            .filter(framework_agreement::Column::SupplierId.eq(dignio_org.id))
            .one(txn)
            .await?
            .map(|a| a.user_story_id)
            .ok_or_else(|| DemoError::File("demo call-off is not under a Dignio agreement".into()))?;
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
                let device = devices.next().expect("counted above");
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
