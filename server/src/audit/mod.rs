//! The audit log of health data (Normen factsheet 15, "logging og innsyn i logg"): every read or
//! change of a service recipient's data writes one entry — who (subject, organisation, role),
//! which recipient, what (operation and object), why (the purpose), when, and the access
//! decision. Areas call [`record`] in the same transaction as the read or change it describes;
//! nothing changes an entry, and only retention ([`retention`]) deletes one — a chain's oldest,
//! leaving a signed cut: no API updates or deletes one, and `velferd audit verify` ([`verify`])
//! finds an entry altered or removed through the database itself, by the hash chain each
//! municipality's entries form ([`chain`]) and its anchor signed with a key kept outside the
//! database ([`key`]). The municipality's privacy officer reads the log ([`graphql`]);
//! those reads are logged too. `docs/audit.md` tells the whole of it.

pub mod chain;
pub mod graphql;
pub mod key;
pub mod loaders;
pub mod model;
mod recorder;
pub mod retention;
pub mod verify;

use sea_orm::{ConnectionTrait, DbErr};

use crate::auth::{Caller, Role};
use model::audit_entry;
pub use recorder::Recorder;

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
    pub fn kind(&self) -> &'static str {
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
    pub fn as_str(self) -> &'static str {
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

impl<'a> Access<'a> {
    /// What `caller` was let do, acting for its organisation under its role: `operation` on
    /// `object` (type and id), which concerns `recipient_id` of `municipality_id`, for `purpose`.
    pub fn granted(
        caller: &'a Caller,
        municipality_id: i64,
        recipient_id: i64,
        operation: &'static str,
        (object_type, object_id): (&'static str, i64),
        purpose: Purpose,
    ) -> Access<'a> {
        Access {
            subject: &caller.subject,
            organization_id: caller.org.id,
            role: caller.role,
            municipality_id,
            recipient_id,
            operation,
            object_type,
            object_id,
            purpose,
            decision: Decision::Granted,
        }
    }
}

/// Most characters of the subject an entry keeps (the column's width).
const MAX_SUBJECT_CHARS: usize = 200;

/// Appends `access` to its municipality's chain, on `db`: **the transaction** of the read or
/// change it describes, so the entry commits with it or not at all.
///
/// It locks the municipality's chain head until that transaction ends; call it as the
/// transaction's last statements, after the area's own reads and writes, so the lock is held
/// briefly and is always the last one taken (no lock-order cycle with other transactions, hence
/// no deadlock). A transaction that records for several municipalities records them in
/// ascending municipality order. Outside a transaction (a bare connection) it still never breaks
/// the chain: a place taken twice is refused by the unique key and taken again, and an entry a
/// crash left without its anchor moving is linked to and covered by the next append.
pub async fn record<C: ConnectionTrait>(db: &C, access: Access<'_>) -> Result<(), DbErr> {
    mark_recorded();
    chain::append(db, access.pending(), &key::current().current).await?;
    Ok(())
}

tokio::task_local! {
    /// Set when an access is recorded inside [`noting_records`].
    static RECORDED: std::cell::Cell<bool>;
}

fn mark_recorded() {
    let _ = RECORDED.try_with(|recorded| recorded.set(true));
}

/// Runs `work` and tells whether it recorded an access to the audit log. What a caller was
/// served while its access was recorded is that caller's alone: it may not be handed to another
/// caller, who must make (and so record) it for itself.
pub async fn noting_records<F: std::future::Future>(work: F) -> (F::Output, bool) {
    RECORDED
        .scope(std::cell::Cell::new(false), async move {
            let output = work.await;
            (output, RECORDED.with(std::cell::Cell::get))
        })
        .await
}

impl Access<'_> {
    /// The entry this access makes, before it has its place in the chain.
    fn pending(&self) -> chain::Pending {
        let entry = audit_entry::Model {
            id: 0,
            municipality_id: self.municipality_id,
            seq: 0,
            recipient_id: self.recipient_id,
            subject: self.subject.chars().take(MAX_SUBJECT_CHARS).collect(),
            organization_id: self.organization_id,
            role: self.role.as_str().to_string(),
            operation: self.operation.to_string(),
            object_type: self.object_type.to_string(),
            object_id: self.object_id,
            purpose_kind: self.purpose.kind().to_string(),
            purpose: self.purpose.detail(),
            decision: self.decision.as_str().to_string(),
            at: chain::now(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        chain::Pending { entry }
    }
}
