//! The statements every ingest transaction runs read by index, so what a message costs does not
//! grow with the events and receipts already stored (issue 16). Timings would say so only on a
//! quiet machine with a large table; the query plans say it on any machine, on both back ends.
//! Each statement below is the one the named function builds, with its shape kept.

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

use crate::support::on_both_backends;

/// (what runs it, the statement, the index it must use)
const STATEMENTS: [(&str, &str, &str); 4] = [
    (
        "devices::ingest::announce_stored",
        "SELECT id, device_id FROM device_event WHERE receipt_id IN (1, 2, 3) ORDER BY id",
        "idx_device_event_receipt",
    ),
    (
        "alerts::rules::raise_for_events",
        "SELECT id, device_id, kind FROM device_event WHERE receipt_id IN (1, 2, 3)",
        "idx_device_event_receipt",
    ),
    (
        "devices::ingest::prune_bodies (boundary)",
        "SELECT id FROM ingest_receipt WHERE product_id = 1 AND body IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET 200",
        "idx_receipt_body",
    ),
    (
        "devices::ingest::prune_bodies (update)",
        "UPDATE ingest_receipt SET body = NULL WHERE product_id = 1 AND id <= 5 AND body IS NOT NULL",
        "idx_receipt_body",
    ),
];

/// The plan of `sql` as text. PostgreSQL is told not to scan whole tables where an index serves:
/// on the test's empty tables it would rightly prefer a scan, and the question is whether an
/// index exists that the statement can use.
async fn plan(db: &sea_orm::DatabaseConnection, backend: DbBackend, sql: &str) -> String {
    let txn = db.begin().await.unwrap();
    let explain = match backend {
        DbBackend::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
        _ => {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off").await.unwrap();
            format!("EXPLAIN {sql}")
        }
    };
    let rows = txn.query_all_raw(Statement::from_string(backend, explain)).await.unwrap();
    let column = if backend == DbBackend::Sqlite { "detail" } else { "QUERY PLAN" };
    let lines: Vec<String> = rows.iter().map(|row| row.try_get::<String>("", column).unwrap()).collect();
    txn.rollback().await.unwrap();
    lines.join("\n")
}

on_both_backends! {
    /// Announcing, alerting and pruning read `device_event` and `ingest_receipt` through their
    /// indexes, never by scanning every row stored.
    async fn every_statement_of_an_ingest_reads_by_index(app) {
        let db = app.db().write();
        let backend = db.get_database_backend();
        for (runner, sql, index) in STATEMENTS {
            let plan = plan(db, backend, sql).await;
            assert!(plan.contains(index), "{runner} does not use {index}:\n{plan}");
            assert!(!plan.contains("Seq Scan") && !plan.contains("SCAN device_event") && !plan.contains("SCAN ingest_receipt"),
                "{runner} scans a whole table:\n{plan}");
        }
    }
}
