//! Alerts live: what a change announces, and the one function that announces it.
//!
//! Every path that raises or changes an alert (ingest, replay, the workflow mutations, the
//! sweep) hands its notices to [`publish`] inside its own transaction: they go into the outbox
//! (`crate::live`) with the change, so a subscriber on any instance hears of the alert once the
//! transaction commits, never before and never not at all.

use sea_orm::{DatabaseTransaction, DbErr};
use serde::{Deserialize, Serialize};

use super::model::alert;
use crate::live::{Announcement, Live, Scope, Topic};

/// Whether an alert is new or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    /// Raised: goes to `alertRaised` (and `alertChanged`).
    Raised,
    /// Joined by another event, moved along, escalated or closed: goes to `alertChanged`.
    Changed,
}

/// One alert as a change left it: the outbox payload of topic `alert`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertNotice {
    pub kind: NoticeKind,
    pub alert: alert::Model,
}

impl AlertNotice {
    pub fn raised(alert: alert::Model) -> AlertNotice {
        AlertNotice { kind: NoticeKind::Raised, alert }
    }

    pub fn changed(alert: alert::Model) -> AlertNotice {
        AlertNotice { kind: NoticeKind::Changed, alert }
    }
}

/// The notices of one transaction, in the order its changes were made.
pub type Notices = Vec<AlertNotice>;

/// Writes `notices` to the outbox in `txn`, in order, scoped to the alert's municipality and the
/// organisation it is handed to. Call it last in the transaction: publishing holds the outbox
/// counter until the commit.
pub async fn publish(txn: &DatabaseTransaction, live: &Live, notices: Notices) -> Result<(), DbErr> {
    if notices.is_empty() {
        return Ok(());
    }
    let announcements = notices
        .iter()
        .map(|notice| {
            let scope = Scope {
                municipality_id: Some(notice.alert.municipality_id),
                organization_id: notice.alert.responder_id,
            };
            Announcement::new(Topic::Alert, scope, notice)
        })
        .collect();
    live.publish_all(txn, announcements).await?;
    Ok(())
}
