//! Demo care data for two municipalities of the Larvik procurement, Larvik and Bergen, played
//! through the same rules the API enforces: case workers register recipients (invented
//! pseudonymous references) and assess them against the user story of their call-off with
//! Dignio ([`load`], with the demo data); once the demo's devices are registered
//! (`crate::demo::devices`), they assign them ([`assign`]), so the demo feed's messages raise
//! alerts that name a recipient.

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder};

use super::model::{AssessmentDecision, RecipientStatus, service_recipient};
use super::rules::{self, NewAssessment, NewRecipient};
use crate::agreements::model::{CallOffStatus, call_off, framework_agreement};
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

/// Loads the care demo on top of the demo procurements (in the demo's transaction): Dignio
/// confirms the municipality's call-off, and its case worker registers the recipients and
/// assesses them against the call-off's user story. Devices come with [`assign`].
pub async fn load(txn: &DatabaseTransaction) -> Result<(), DemoError> {
    let dignio_org = by_name(txn, "Dignio AS").await?;
    let dignio = caller(&dignio_org);
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
        }
    }
    Ok(())
}

/// Gives the demo's devices to the recipients [`load`] granted them (in the transaction that
/// registered the devices): each municipality's devices in stock go, in serial order, to its
/// granted recipients, so the demo feed's messages raise alerts that name a recipient. Then one
/// recipient goes on a pause (a stay in hospital, say), to show the status history.
pub async fn assign(txn: &DatabaseTransaction) -> Result<(), DemoError> {
    for plan in PLANS {
        let org = by_name(txn, plan.municipality).await?;
        let worker = case_worker(&org);
        let mut devices = device::Entity::find()
            .filter(device::Column::MunicipalityId.eq(org.id))
            .filter(device::Column::Status.eq(DeviceStatus::InStock))
            .order_by_asc(device::Column::Serial)
            .all(txn)
            .await?
            .into_iter();
        for (reference, _, plan_for) in plan.recipients.iter().filter(|(_, _, p)| *p != Some(false)) {
            let Some(device) = devices.next() else {
                return Err(DemoError::File(format!("{} has too few demo devices in stock", plan.municipality)));
            };
            let recipient = service_recipient::Entity::find()
                .filter(service_recipient::Column::MunicipalityId.eq(org.id))
                .filter(service_recipient::Column::Reference.eq(*reference))
                .one(txn)
                .await?
                .ok_or_else(|| DemoError::File(format!("demo recipient {reference} missing")))?;
            hold("assign", crate::devices::rules::assign_device(txn, &worker, device.id, recipient.id).await)?;
            if *plan_for == Some(true) {
                hold(
                    "activate",
                    crate::devices::rules::change_device_status(txn, &worker, device.id, DeviceStatus::Active).await,
                )?;
            }
        }
    }
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
