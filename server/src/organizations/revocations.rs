//! Revoked tokens. The platform operator revokes every token of one subject of one organisation
//! issued up to now (`tokenRevoke`), for a token that leaked before it expires. The rows are
//! kept in the database, so every instance refuses them; each instance keeps them in memory,
//! refreshed every [`REFRESH`], so checking a token costs no query.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, Set};

use crate::db::Database;

pub mod token_revocation {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
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

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How often each instance reads revocations made elsewhere.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The revocations in force, by (organisation number, subject): the last second of issue they
/// cover.
#[derive(Debug, Default)]
pub struct Revocations {
    by_subject: RwLock<HashMap<(String, String), i64>>,
}

impl Revocations {
    /// Whether a token of `org`'s `subject` issued at `issued_at` (seconds) is revoked.
    pub fn revokes(&self, org: &str, subject: &str, issued_at: u64) -> bool {
        let map = self.by_subject.read().expect("not poisoned");
        map.get(&(org.to_string(), subject.to_string()))
            .is_some_and(|up_to| i64::try_from(issued_at).unwrap_or(i64::MAX) <= *up_to)
    }

    fn set(&self, rows: impl IntoIterator<Item = token_revocation::Model>) {
        let fresh = rows.into_iter().map(|r| ((r.org_number, r.subject), r.issued_up_to)).collect();
        *self.by_subject.write().expect("not poisoned") = fresh;
    }

    fn insert(&self, row: &token_revocation::Model) {
        let key = (row.org_number.clone(), row.subject.clone());
        self.by_subject.write().expect("not poisoned").insert(key, row.issued_up_to);
    }

    /// Reads every revocation now.
    pub async fn load(&self, db: &Database) -> Result<(), DbErr> {
        self.set(token_revocation::Entity::find().all(db.read()).await?);
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

/// Revokes every token of `subject` of the organisation `org_number` issued up to now, and
/// applies it on this instance at once (the others within [`REFRESH`]).
pub async fn revoke<C: ConnectionTrait>(
    db: &C,
    revocations: &Revocations,
    org_number: &str,
    subject: &str,
    reason: Option<String>,
    revoked_by: &str,
) -> Result<token_revocation::Model, DbErr> {
    let now = Utc::now();
    let row = token_revocation::ActiveModel {
        org_number: Set(org_number.to_string()),
        subject: Set(subject.to_string()),
        issued_up_to: Set(now.timestamp()),
        reason: Set(reason),
        revoked_by: Set(revoked_by.chars().take(200).collect()),
        revoked_at: Set(now.fixed_offset()),
        ..Default::default()
    };
    token_revocation::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([token_revocation::Column::OrgNumber, token_revocation::Column::Subject])
                .update_columns([
                    token_revocation::Column::IssuedUpTo,
                    token_revocation::Column::Reason,
                    token_revocation::Column::RevokedBy,
                    token_revocation::Column::RevokedAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await?;
    let row = token_revocation::Entity::find()
        .filter(token_revocation::Column::OrgNumber.eq(org_number))
        .filter(token_revocation::Column::Subject.eq(subject))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the revocation just written".into()))?;
    revocations.insert(&row);
    Ok(row)
}
