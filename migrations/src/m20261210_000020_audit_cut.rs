//! Retention of the audit log (issue 16): where each municipality's chain was cut. Retention
//! deletes a chain's oldest entries only; the cut keeps the sequence and hash of the last entry
//! it deleted, signed under the audit key like the anchor, so the entries that remain still
//! verify — from the cut, which `velferd audit verify` names — and a cut nobody signed (entries
//! deleted through the database) is still found.
//!
//! The other sweeps need no index of their own: they walk each table by its primary key and
//! look up what still needs a row by indexes that exist (`uq_alert_event`,
//! `idx_device_event_receipt`, `idx_webhook_attempt_delivery`, `idx_outbox_created_at`).

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl;

ddl::migration! {
    #[unique(uq_audit_cut_municipality: MunicipalityId)]
    AuditCut {
        MunicipalityId: big_integer,
        // The last entry deleted: the chain now starts after it and links to its hash.
        ThroughSeq: big_integer,
        ThroughHash: string_len(64),
        // Which key signed it (a fingerprint), and the HMAC over municipality, sequence and hash.
        KeyId: string_len(16),
        Mac: string_len(64),
        CutAt: timestamp_with_time_zone,
    }
}
