//! Alerts live: what a change announces, and the one function that sends it.
//!
//! Today the notices go out on the in-process [`EventBus`] after the transaction that made them
//! has committed (one instance). [`publish`] is the seam for the outbox across instances: every
//! path that raises or changes an alert (ingest, the workflow mutations, the sweep) hands its
//! notices to it and to nothing else.

use std::sync::Arc;

use super::model::alert;
use crate::app::EventBus;

/// Whether an alert is new or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Raised: goes to `alertRaised` (and `alertChanged`).
    Raised,
    /// Joined by another event, moved along, escalated or closed: goes to `alertChanged`.
    Changed,
}

/// One alert as a change left it.
#[derive(Debug, Clone)]
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

/// Tells subscribers about `notices`, in order. Call it once the transaction that made them has
/// committed: a subscriber must never hear of an alert it cannot then read.
pub fn publish(bus: &EventBus, notices: Notices) {
    for notice in notices {
        bus.alert_notice(Arc::new(notice));
    }
}
