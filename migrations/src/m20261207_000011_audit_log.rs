//! The audit log of health data: one append-only row per read or change of a service
//! recipient's data. The recipient is named by its id without a foreign key: the log outlives
//! the recipient's erasure.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl::{self, references};
use crate::m20261122_000001_organizations::Organization;

ddl::migration! {
    #[index(idx_audit_entry_recipient: MunicipalityId, RecipientId, At)]
    AuditEntry {
        // The municipality whose recipient it is: the chain the entry belongs to.
        MunicipalityId: references(Organization::Table),
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
        At: timestamp_with_time_zone,
    }
}
