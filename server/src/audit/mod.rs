//! The audit log of health data (Normen factsheet 15, "logging og innsyn i logg"): every read or
//! change of a service recipient's data writes one entry — who (subject, organisation, role),
//! which recipient, what (operation and object), why (the purpose), when, and the access
//! decision. Areas call [`record`] in the same transaction as the read or change it describes;
//! nothing changes or deletes an entry.

pub mod model;

use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

use crate::auth::Role;
use model::audit_entry;

/// Why the caller touched the recipient's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Handling an open alert (its id) that names the recipient.
    Alert(i64),
    /// The device assignment (the device's id) that links the caller to the recipient.
    Assignment(i64),
    /// Casework on the recipient: registering, assessing, assigning, ending the service.
    Casework,
    /// A reason the caller gave.
    Stated(String),
    /// The privacy officer reading the log itself.
    Oversight,
}

impl Purpose {
    fn kind(&self) -> &'static str {
        match self {
            Purpose::Alert(_) => "alert",
            Purpose::Assignment(_) => "assignment",
            Purpose::Casework => "casework",
            Purpose::Stated(_) => "stated",
            Purpose::Oversight => "oversight",
        }
    }

    fn detail(&self) -> String {
        match self {
            Purpose::Alert(id) | Purpose::Assignment(id) => id.to_string(),
            Purpose::Stated(reason) => reason.chars().take(500).collect(),
            Purpose::Casework | Purpose::Oversight => String::new(),
        }
    }
}

/// Whether the access was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Granted,
    /// Allowed, but by someone with no open alert or assignment for the recipient: a privacy
    /// officer should look at it.
    GrantedFlagged,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Granted => "granted",
            Decision::GrantedFlagged => "granted_flagged",
        }
    }
}

/// One access to a recipient's data, as the area that served it describes it.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    pub subject: &'a str,
    pub organization_id: i64,
    pub role: Role,
    pub municipality_id: i64,
    pub recipient_id: i64,
    /// What was done, e.g. `recipient.read`, `assessment.create`, `device.assign`.
    pub operation: &'static str,
    /// The object read or changed, e.g. `ServiceRecipient` and its id.
    pub object_type: &'static str,
    pub object_id: i64,
    pub purpose: Purpose,
    pub decision: Decision,
}

/// Appends `access` to the log, on `db` — the transaction of the change, or the read's own
/// connection.
pub async fn record<C: ConnectionTrait>(db: &C, access: Access<'_>) -> Result<(), DbErr> {
    audit_entry::ActiveModel {
        municipality_id: Set(access.municipality_id),
        recipient_id: Set(access.recipient_id),
        subject: Set(access.subject.chars().take(200).collect()),
        organization_id: Set(access.organization_id),
        role: Set(access.role.as_str().to_string()),
        operation: Set(access.operation.to_string()),
        object_type: Set(access.object_type.to_string()),
        object_id: Set(access.object_id),
        purpose_kind: Set(access.purpose.kind().to_string()),
        purpose: Set(access.purpose.detail()),
        decision: Set(access.decision.as_str().to_string()),
        at: Set(chrono::Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
