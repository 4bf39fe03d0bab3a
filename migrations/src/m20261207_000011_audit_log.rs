//! The audit log of health data: one append-only row per read or change of a service
//! recipient's data, in one hash chain per municipality, and each chain's anchor.
//!
//! No foreign keys: the log outlives the recipient's erasure and even its municipality's
//! organisation row (a cascade would delete the log with them). Each entry carries its place in
//! its municipality's chain (`seq`, 1, 2, …, unique per municipality so two writers can never
//! take the same place), the hash of the entry before it and its own hash. The anchor holds each
//! chain's head (sequence and hash) with an HMAC under a key kept outside the database.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl;

ddl::migration! {
    #[unique(uq_audit_entry_seq: MunicipalityId, Seq)]
    #[index(idx_audit_entry_recipient: MunicipalityId, RecipientId, Id)]
    #[index(idx_audit_entry_decision: MunicipalityId, Decision, Id)]
    AuditEntry {
        // The municipality whose recipient it is: the chain the entry belongs to.
        MunicipalityId: big_integer,
        Seq: big_integer,
        RecipientId: big_integer,
        Subject: string_len(200),
        // The caller's organisation and the role it acted under.
        OrganizationId: big_integer,
        Role: string_len(40),
        Operation: string_len(80),
        ObjectType: string_len(40),
        ObjectId: big_integer,
        PurposeKind: string_len(40),
        Purpose: string_len(600),
        Decision: string_len(20),
        // Whole microseconds, so the hash reads back the same on both back ends.
        At: timestamp_with_time_zone,
        // Lower-case hex SHA-256.
        PrevHash: string_len(64),
        Hash: string_len(64),
    }

    #[unique(uq_audit_anchor_municipality: MunicipalityId)]
    AuditAnchor {
        MunicipalityId: big_integer,
        HeadSeq: big_integer,
        HeadHash: string_len(64),
        // Which key signed it (a fingerprint, never the key), so a rotated key's anchors verify.
        KeyId: string_len(16),
        // Lower-case hex HMAC-SHA-256 over the municipality, head sequence and head hash.
        Mac: string_len(64),
        UpdatedAt: timestamp_with_time_zone,
    }
}
