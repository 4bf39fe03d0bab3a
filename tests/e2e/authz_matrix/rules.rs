//! Who may read each node type: one entry per type, after `docs/authorization.md`, with the
//! rows that say who owns one object. A node type without an entry fails the matrix.

use std::collections::BTreeSet;

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use velferd::agreements::model::{call_off, framework_agreement};
use velferd::alerts::model::{alert, service_agreement};
use velferd::auth::Role;
use velferd::care::model::{assessment, service_recipient};
use velferd::devices::model::{AdapterStatus, adapter, dead_letter, device, device_event, device_product, signing_key};
use velferd::learning::model::{experience_report, network_member};
use velferd::procurement::model::{
    award, evaluation_criterion, participant, procurement, tender, tender_response, user_story,
};
use velferd::webhooks::model::{webhook_delivery, webhook_endpoint};

/// The read rule of a node type (the owner is found from the object's rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Facts from public registers and names: everyone, anonymous too.
    Public,
    /// A procurement or a part of its notice (lots, criteria, awards, agreements): everyone once
    /// the notice is published; before, any registered organisation.
    WithProcurement,
    /// Any registered organisation, whatever its role; never anonymous.
    Registered,
    /// Public reports: everyone. Members-only: the procurement's municipalities (followers
    /// too), members of the network it is shared in, the author, `advisor`, `admin`.
    ExperienceReport,
    /// Sealed bids: the submitting supplier; the lead's `procurement_officer` after the
    /// deadline; nobody else, ever (not `admin`).
    SealedBid,
    /// The municipality that placed it, the agreement's supplier, the lead's
    /// `procurement_officer`, `admin`.
    CallOff,
    /// The product's active version: any registered organisation, like the product ("device
    /// products (slug, supplier, active version)"). Every version: the product's supplier's
    /// `supplier` staff (not its machine tokens), `admin`.
    Adapter,
    /// The supplier that registered it, `admin`.
    SigningKey,
    /// The owning municipality, the product's supplier, `admin`.
    Device,
    /// The product's supplier, `admin`, and a municipality when the letter names one of its
    /// devices and was first received after it registered the device.
    DeadLetter,
    /// Recipient data (a service recipient, an assessment): the `case_worker` of the
    /// recipient's municipality; nobody else (not its other roles, not `admin`).
    Recipient,
    /// The municipality's `case_worker`, the `operator` of a response centre with a service
    /// agreement with the municipality in force today, the `responder` of the organisation it
    /// is handed to. Never `admin`.
    Alert,
    /// Its two parties (any role), `admin`.
    ServiceAgreement,
    /// A webhook endpoint or delivery: the owning organisation's `municipality_admin` and
    /// `integration` token; nobody else, not `admin`.
    Webhook,
}

/// One entry per node type. Adding a node type to the schema without a line here fails the
/// matrix; so does a line for a type that is gone.
pub const RULES: &[(&str, Rule)] = &[
    ("Organization", Rule::Public),
    ("LearningNetwork", Rule::Public),
    ("Procurement", Rule::WithProcurement),
    ("UserStory", Rule::WithProcurement),
    ("EvaluationCriterion", Rule::WithProcurement),
    ("Award", Rule::WithProcurement),
    ("FrameworkAgreement", Rule::WithProcurement),
    ("Gathering", Rule::Registered),
    ("ProcurementReuse", Rule::Registered),
    ("DeviceProduct", Rule::Registered),
    ("ExperienceReport", Rule::ExperienceReport),
    ("Tender", Rule::SealedBid),
    ("TenderResponse", Rule::SealedBid),
    ("CallOff", Rule::CallOff),
    ("Adapter", Rule::Adapter),
    ("SigningKey", Rule::SigningKey),
    ("Device", Rule::Device),
    ("DeviceEvent", Rule::Device),
    ("DeadLetter", Rule::DeadLetter),
    ("ServiceRecipient", Rule::Recipient),
    ("Assessment", Rule::Recipient),
    ("Alert", Rule::Alert),
    ("ServiceAgreement", Rule::ServiceAgreement),
    ("WebhookEndpoint", Rule::Webhook),
    ("WebhookDelivery", Rule::Webhook),
];

pub fn rule_of(typename: &str) -> Option<Rule> {
    RULES.iter().find(|(t, _)| *t == typename).map(|(_, r)| *r)
}

/// Who may read one object.
#[derive(Debug, Default, Clone)]
pub struct Readers {
    /// Everyone, anonymous callers and unregistered organisations too.
    pub anyone: bool,
    /// Every registered organisation, whatever its role.
    pub registered: bool,
    /// These organisations (row ids), whatever their role.
    pub orgs: BTreeSet<i64>,
    /// These organisations with this role.
    pub org_roles: BTreeSet<(i64, Role)>,
    /// Any registered organisation with this role.
    pub roles: BTreeSet<Role>,
}

async fn one<E: EntityTrait>(db: &DatabaseConnection, id: i64) -> E::Model
where
    E::PrimaryKey: sea_orm::PrimaryKeyTrait<ValueType = i64>,
{
    E::find_by_id(id).one(db).await.unwrap().unwrap_or_else(|| panic!("row {id} exists"))
}

/// Who may read the object `typename` `row`, from its rows.
pub async fn readers(db: &DatabaseConnection, typename: &str, row: i64) -> Readers {
    let rule = rule_of(typename).unwrap_or_else(|| panic!("no rule for {typename}"));
    let mut r = Readers::default();
    match rule {
        Rule::Public => r.anyone = true,
        Rule::Registered => r.registered = true,
        Rule::WithProcurement => {
            let procurement_id = match typename {
                "Procurement" => row,
                "UserStory" => one::<user_story::Entity>(db, row).await.procurement_id,
                "EvaluationCriterion" => one::<evaluation_criterion::Entity>(db, row).await.procurement_id,
                "Award" => one::<award::Entity>(db, row).await.procurement_id,
                "FrameworkAgreement" => one::<framework_agreement::Entity>(db, row).await.procurement_id,
                other => panic!("{other}: which procurement it belongs to is not written here"),
            };
            let p = one::<procurement::Entity>(db, procurement_id).await;
            r.anyone = p.notice_published_on.is_some();
            r.registered = true;
        }
        Rule::ExperienceReport => {
            let report = one::<experience_report::Entity>(db, row).await;
            if report.public {
                r.anyone = true;
            } else {
                r.orgs.insert(report.author_id);
                r.orgs.extend(taking_part(db, report.procurement_id).await);
                if let Some(network) = report.network_id {
                    let members = network_member::Entity::find()
                        .filter(network_member::Column::NetworkId.eq(network))
                        .all(db)
                        .await
                        .unwrap();
                    r.orgs.extend(members.iter().map(|m| m.organization_id));
                }
                r.roles.extend([Role::Advisor, Role::Admin]);
            }
        }
        Rule::SealedBid => {
            let tender_id = match typename {
                "Tender" => row,
                "TenderResponse" => one::<tender_response::Entity>(db, row).await.tender_id,
                other => panic!("{other}: which tender it belongs to is not written here"),
            };
            let t = one::<tender::Entity>(db, tender_id).await;
            r.orgs.insert(t.supplier_id);
            let p = one::<procurement::Entity>(db, t.procurement_id).await;
            if p.tender_deadline.is_some_and(|d| d.with_timezone(&Utc) <= Utc::now()) {
                r.org_roles.insert((p.lead_id, Role::ProcurementOfficer));
            }
        }
        Rule::CallOff => {
            let c = one::<call_off::Entity>(db, row).await;
            let agreement = one::<framework_agreement::Entity>(db, c.agreement_id).await;
            let p = one::<procurement::Entity>(db, agreement.procurement_id).await;
            r.orgs.extend([c.municipality_id, agreement.supplier_id]);
            r.org_roles.insert((p.lead_id, Role::ProcurementOfficer));
            r.roles.insert(Role::Admin);
        }
        Rule::Adapter => {
            let a = one::<adapter::Entity>(db, row).await;
            r.registered = a.status == AdapterStatus::Active;
            let product = one::<device_product::Entity>(db, a.product_id).await;
            r.org_roles.insert((product.supplier_id, Role::Supplier));
            r.roles.insert(Role::Admin);
        }
        Rule::SigningKey => {
            r.orgs.insert(one::<signing_key::Entity>(db, row).await.supplier_id);
            r.roles.insert(Role::Admin);
        }
        Rule::Device => {
            let device_id = match typename {
                "Device" => row,
                "DeviceEvent" => one::<device_event::Entity>(db, row).await.device_id,
                other => panic!("{other}: which device it belongs to is not written here"),
            };
            let d = one::<device::Entity>(db, device_id).await;
            let product = one::<device_product::Entity>(db, d.product_id).await;
            r.orgs.extend([d.municipality_id, product.supplier_id]);
            r.roles.insert(Role::Admin);
        }
        Rule::DeadLetter => {
            let letter = one::<dead_letter::Entity>(db, row).await;
            let product = one::<device_product::Entity>(db, letter.product_id).await;
            r.orgs.insert(product.supplier_id);
            if let Some(serial) = &letter.device_serial {
                let devices = device::Entity::find()
                    .filter(device::Column::ProductId.eq(letter.product_id))
                    .filter(device::Column::Serial.eq(serial.as_str()))
                    .all(db)
                    .await
                    .unwrap();
                r.orgs.extend(
                    devices.iter().filter(|d| d.registered_at <= letter.first_received_at).map(|d| d.municipality_id),
                );
            }
            r.roles.insert(Role::Admin);
        }
        Rule::Recipient => {
            let municipality = match typename {
                "ServiceRecipient" => one::<service_recipient::Entity>(db, row).await.municipality_id,
                "Assessment" => one::<assessment::Entity>(db, row).await.municipality_id,
                other => panic!("{other}: whose recipient it is is not written here"),
            };
            r.org_roles.insert((municipality, Role::CaseWorker));
        }
        Rule::Alert => {
            let a = one::<alert::Entity>(db, row).await;
            r.org_roles.insert((a.municipality_id, Role::CaseWorker));
            let today = Utc::now().date_naive();
            let serving = service_agreement::Entity::find()
                .filter(service_agreement::Column::MunicipalityId.eq(a.municipality_id))
                .filter(service_agreement::Column::ValidFrom.lte(today))
                .filter(service_agreement::Column::ValidTo.gte(today))
                .all(db)
                .await
                .unwrap();
            r.org_roles.extend(serving.iter().map(|s| (s.response_centre_id, Role::Operator)));
            if let Some(responder) = a.responder_id {
                r.org_roles.insert((responder, Role::Responder));
            }
        }
        Rule::ServiceAgreement => {
            let s = one::<service_agreement::Entity>(db, row).await;
            r.orgs.extend([s.municipality_id, s.response_centre_id]);
            r.roles.insert(Role::Admin);
        }
        Rule::Webhook => {
            let endpoint_id = match typename {
                "WebhookEndpoint" => row,
                "WebhookDelivery" => one::<webhook_delivery::Entity>(db, row).await.endpoint_id,
                other => panic!("{other}: which endpoint it belongs to is not written here"),
            };
            let e = one::<webhook_endpoint::Entity>(db, endpoint_id).await;
            r.org_roles.extend([(e.organization_id, Role::MunicipalityAdmin), (e.organization_id, Role::Integration)]);
        }
    }
    r
}

/// The organisations taking part in a procurement: lead, participants and followers.
async fn taking_part(db: &DatabaseConnection, procurement_id: i64) -> Vec<i64> {
    participant::Entity::find()
        .filter(participant::Column::ProcurementId.eq(procurement_id))
        .all(db)
        .await
        .unwrap()
        .iter()
        .map(|p| p.organization_id)
        .collect()
}
