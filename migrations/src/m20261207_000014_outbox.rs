//! The outbox of live updates: one row per change announced to subscribers, written in the
//! change's own transaction. A row's `id` is its sequence, taken from `outbox_counter` (row
//! `sequence`) inside that transaction rather than from the table's own auto-increment: the
//! counter row stays locked until commit, so sequences follow commit order and have no gaps.
//! Row `pruned_through` is the highest sequence pruning may have deleted: a subscriber that
//! resumes after an older one has missed rows that are gone.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ddl;

ddl::migration! {
    then: seed_counters;
    #[index(idx_outbox_created_at: CreatedAt)]
    Outbox {
        // What the row announces, e.g. `device-event`.
        Topic: string_len(64),
        // Who may hear it: the municipality it concerns and another organisation (a supplier,
        // a response centre), by id, without foreign keys: rows outlive nothing, they are
        // pruned.
        MunicipalityId: big_integer_null,
        OrganizationId: big_integer_null,
        // JSON.
        Payload: text,
        CreatedAt: timestamp_with_time_zone,
    }
    #[unique(uq_outbox_counter_name: Name)]
    OutboxCounter {
        Name: string_len(40),
        Value: big_integer,
    }
}

/// Both counters start at 0: no sequence handed out, nothing pruned.
async fn seed_counters(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let counters = Query::insert()
        .into_table(OutboxCounter::Table)
        .columns([OutboxCounter::Name, OutboxCounter::Value])
        .values_panic(["sequence".into(), 0i64.into()])
        .values_panic(["pruned_through".into(), 0i64.into()])
        .to_owned();
    manager.exec_stmt(counters).await
}
