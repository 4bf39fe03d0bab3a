//! Revoked tokens. The platform operator revokes every token of one subject of one organisation
//! issued up to now, or one token by its id (`jti`) (`tokenRevoke`), for a token that leaked
//! before it expires. The rows are kept in the database, so every instance refuses them; each
//! instance keeps them in memory, refreshed every [`REFRESH`], so checking a token costs no
//! query.
//!
//! A token names its organisation by number (`org`) or by Velferd id (`oid`), and the check
//! runs before the organisation is looked up: a subject's revocation is therefore kept under
//! both names — `token_revocation` by number, `organization_token_revocation` by row — so a
//! token is refused whichever one it carries.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, Set};

use crate::auth::{OrgRef, Principal};
use crate::db::Database;
use crate::organizations::OrgNumber;

pub mod token_revocation {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "token_revocation")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub org_number: String,
            pub subject: String,
            /// Tokens issued (`iat`) at or before this second are refused.
            pub issued_up_to: i64,
            pub reason: Option<String>,
            pub revoked_by: String,
            pub revoked_at: DateTimeWithTimeZone,
        }
    }
}

/// A subject's revocation keyed by the organisation's row: for tokens naming it by `oid`.
pub mod organization_token_revocation {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "organization_token_revocation")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub organization_id: i64,
            pub subject: String,
            pub issued_up_to: i64,
            pub reason: Option<String>,
            pub revoked_by: String,
            pub revoked_at: DateTimeWithTimeZone,
        }
    }
}

/// One token revoked by its id (`jti`).
pub mod token_id_revocation {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "token_id_revocation")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub token_id: String,
            pub reason: Option<String>,
            pub revoked_by: String,
            pub revoked_at: DateTimeWithTimeZone,
        }
    }
}

/// How often each instance reads revocations made elsewhere.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The revocations in force.
#[derive(Debug, Default)]
pub struct Revocations {
    in_force: RwLock<InForce>,
}

#[derive(Debug, Default)]
struct InForce {
    /// By (organisation as tokens name it, subject): the last second of issue covered.
    by_subject: HashMap<(OrgRef, String), i64>,
    /// Token ids (`jti`).
    by_token_id: HashSet<String>,
}

impl InForce {
    fn subject(&mut self, org: OrgRef, subject: &str, up_to: i64) {
        self.by_subject.insert((org, subject.to_string()), up_to);
    }

    fn by_number(&mut self, row: &token_revocation::Model) {
        // A row whose number does not parse could match no token: tokens' numbers are checked.
        if let Ok(number) = row.org_number.parse::<OrgNumber>() {
            self.subject(OrgRef::Number(number), &row.subject, row.issued_up_to);
        }
    }
}

impl Revocations {
    /// Whether the token `principal` was read from is revoked: by its subject (issued at or
    /// before the revocation) or by its id.
    pub fn revokes(&self, principal: &Principal) -> bool {
        let in_force = self.in_force.read().expect("not poisoned");
        let issued_at = i64::try_from(principal.issued_at).unwrap_or(i64::MAX);
        in_force.by_subject.get(&(principal.org, principal.subject.clone())).is_some_and(|up_to| issued_at <= *up_to)
            || principal.token_id.as_ref().is_some_and(|id| in_force.by_token_id.contains(id))
    }

    /// Reads every revocation now.
    pub async fn load(&self, db: &Database) -> Result<(), DbErr> {
        let mut fresh = InForce::default();
        for row in token_revocation::Entity::find().all(db.background()).await? {
            fresh.by_number(&row);
        }
        for row in organization_token_revocation::Entity::find().all(db.background()).await? {
            fresh.subject(OrgRef::Id(row.organization_id), &row.subject, row.issued_up_to);
        }
        fresh.by_token_id =
            token_id_revocation::Entity::find().all(db.background()).await?.into_iter().map(|r| r.token_id).collect();
        *self.in_force.write().expect("not poisoned") = fresh;
        Ok(())
    }

    /// Loads the revocations, then keeps them fresh on the current Tokio runtime.
    pub async fn start(db: Database) -> Result<Arc<Revocations>, DbErr> {
        let revocations = Arc::new(Revocations::default());
        revocations.load(&db).await?;
        let weak = Arc::downgrade(&revocations);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tick.tick().await;
                let Some(revocations) = weak.upgrade() else { return };
                if let Err(e) = revocations.load(&db).await {
                    tracing::warn!("token revocations could not be refreshed: {e}");
                }
            }
        });
        Ok(revocations)
    }
}

/// A revocation as `tokenRevoke` answers it: of a subject (with the organisation's number and/or
/// id it is kept under, and the last second of issue it covers) or of one token id.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub org_number: Option<String>,
    pub organization_id: Option<i64>,
    pub subject: Option<String>,
    pub issued_up_to: Option<i64>,
    pub token_id: Option<String>,
    pub reason: Option<String>,
    pub revoked_at: chrono::DateTime<Utc>,
}

/// Who revokes, and why: kept on every revocation row.
#[derive(Debug, Clone)]
pub struct RevocationNote {
    pub reason: Option<String>,
    pub revoked_by: String,
}

/// Revokes every token of `subject` of an organisation issued up to now — under its number
/// (when it has one, or when it is not registered) and its Velferd id (when registered) — and
/// applies it on this instance at once (the others within [`REFRESH`]).
pub async fn revoke_subject<C: ConnectionTrait>(
    db: &C,
    revocations: &Revocations,
    org_number: Option<OrgNumber>,
    organization_id: Option<i64>,
    subject: &str,
    note: RevocationNote,
) -> Result<Revoked, DbErr> {
    let now = Utc::now();
    let revoked_by: String = note.revoked_by.chars().take(200).collect();
    // The two tables differ only in the organisation's column: one upsert, keyed by it and the
    // subject, for either.
    macro_rules! upsert {
        ($table:ident, $org:ident = $value:expr, $org_column:ident) => {
            $table::Entity::insert($table::ActiveModel {
                $org: Set($value),
                subject: Set(subject.to_string()),
                issued_up_to: Set(now.timestamp()),
                reason: Set(note.reason.clone()),
                revoked_by: Set(revoked_by.clone()),
                revoked_at: Set(now.fixed_offset()),
                ..Default::default()
            })
            .on_conflict(
                OnConflict::columns([$table::Column::$org_column, $table::Column::Subject])
                    .update_columns([
                        $table::Column::IssuedUpTo,
                        $table::Column::Reason,
                        $table::Column::RevokedBy,
                        $table::Column::RevokedAt,
                    ])
                    .to_owned(),
            )
            .exec(db)
            .await?
        };
    }
    if let Some(number) = org_number {
        upsert!(token_revocation, org_number = number.to_string(), OrgNumber);
        let row = token_revocation::Entity::find()
            .filter(token_revocation::Column::OrgNumber.eq(number.to_string()))
            .filter(token_revocation::Column::Subject.eq(subject))
            .one(db)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the revocation just written".into()))?;
        revocations.in_force.write().expect("not poisoned").by_number(&row);
    }
    if let Some(organization_id) = organization_id {
        upsert!(organization_token_revocation, organization_id = organization_id, OrganizationId);
        revocations.in_force.write().expect("not poisoned").subject(
            OrgRef::Id(organization_id),
            subject,
            now.timestamp(),
        );
    }
    Ok(Revoked {
        org_number: org_number.map(|n| n.to_string()),
        organization_id,
        subject: Some(subject.to_string()),
        issued_up_to: Some(now.timestamp()),
        token_id: None,
        reason: note.reason,
        revoked_at: now,
    })
}

/// Revokes the one token whose `jti` is `token_id`, on this instance at once (the others within
/// [`REFRESH`]). Revoking it again keeps the first row.
pub async fn revoke_token_id<C: ConnectionTrait>(
    db: &C,
    revocations: &Revocations,
    token_id: &str,
    note: RevocationNote,
) -> Result<Revoked, DbErr> {
    let row = token_id_revocation::ActiveModel {
        token_id: Set(token_id.to_string()),
        reason: Set(note.reason),
        revoked_by: Set(note.revoked_by.chars().take(200).collect()),
        revoked_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    };
    token_id_revocation::Entity::insert(row)
        .on_conflict_do_nothing_on([token_id_revocation::Column::TokenId])
        .exec(db)
        .await?;
    let row = token_id_revocation::Entity::find()
        .filter(token_id_revocation::Column::TokenId.eq(token_id))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the revocation just written".into()))?;
    revocations.in_force.write().expect("not poisoned").by_token_id.insert(row.token_id.clone());
    Ok(Revoked {
        org_number: None,
        organization_id: None,
        subject: None,
        issued_up_to: None,
        token_id: Some(row.token_id),
        reason: row.reason,
        revoked_at: row.revoked_at.with_timezone(&Utc),
    })
}
