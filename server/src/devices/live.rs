//! Device status live: what a change of a device's lifecycle status announces (topic
//! `device-status`, read by the webhook fan-out). Every path that registers a device or moves
//! it along its lifecycle hands the resulting rows to [`publish`], last in its transaction.

use sea_orm::{ActiveEnum, DatabaseTransaction, DbErr};
use serde::{Deserialize, Serialize};

use super::model::device;
use crate::live::{Announcement, Live, Scope, Topic};

/// A device as a status change left it: ids and the status, nothing about its recipient.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusNotice {
    pub device_id: i64,
    pub municipality_id: i64,
    /// The status as stored (`in_stock`, `active` …).
    pub status: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Announces the status of each of `devices` in `txn`, scoped to the device's municipality.
/// Call it last in the transaction: publishing holds the outbox counter until the commit.
pub async fn publish(txn: &DatabaseTransaction, live: &Live, devices: &[device::Model]) -> Result<(), DbErr> {
    let at = chrono::Utc::now();
    let announcements = devices
        .iter()
        .map(|d| {
            let notice =
                StatusNotice { device_id: d.id, municipality_id: d.municipality_id, status: d.status.to_value(), at };
            let scope = Scope { municipality_id: Some(d.municipality_id), organization_id: None };
            Announcement::new(Topic::DeviceStatus, scope, &notice)
        })
        .collect();
    live.publish_all(txn, announcements).await?;
    Ok(())
}
