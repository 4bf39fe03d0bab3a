//! Call-offs live: what placing a call-off or changing its status announces (topic
//! `call-off`, read by the webhook fan-out), last in the change's transaction.

use sea_orm::{ActiveEnum, DatabaseTransaction, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};

use super::model::{call_off, framework_agreement};
use crate::live::{Live, Scope, Topic};

/// A call-off as a change left it: ids and its status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallOffNotice {
    pub call_off_id: i64,
    pub agreement_id: i64,
    pub municipality_id: i64,
    /// The status as stored (`placed`, `confirmed` …).
    pub status: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Announces `row` in `txn`, scoped to the municipality that placed it and the agreement's
/// supplier. Call it last in the transaction.
pub async fn publish(txn: &DatabaseTransaction, live: &Live, row: &call_off::Model) -> Result<(), DbErr> {
    let supplier = framework_agreement::Entity::find_by_id(row.agreement_id).one(txn).await?.map(|a| a.supplier_id);
    let notice = CallOffNotice {
        call_off_id: row.id,
        agreement_id: row.agreement_id,
        municipality_id: row.municipality_id,
        status: row.status.to_value(),
        at: chrono::Utc::now(),
    };
    let scope = Scope { municipality_id: Some(row.municipality_id), organization_id: supplier };
    live.publish(txn, Topic::CallOff, scope, &notice).await?;
    Ok(())
}
