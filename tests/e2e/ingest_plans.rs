//! The statements every ingest transaction runs read by index, so what a message costs does not
//! grow with the events and receipts already stored (issue 16). Timings would say so only on a
//! quiet machine with a large table; the query plans say it on any machine, on both back ends.
//! Each statement below is the one the named function builds, with its shape kept.

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::json;

use crate::devices::{DISPENSER, Fleet, active_dispenser, register_device};
use crate::support::{TestApp, on_both_backends};

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

/// The SQL statements one batch of messages (one per device of `serials`, two new events each)
/// costs, every statement of the request counted: authentication, lookups, the group's write.
async fn statements_for_batch(app: &TestApp, token: &str, serials: &[String], tag: &str) -> u64 {
    let messages: Vec<_> = serials
        .iter()
        .map(|serial| {
            let body = json!({ "serial": serial, "events": [
                { "id": format!("{tag}-{serial}-a"), "type": "dose_available", "at": "2026-11-22T07:00:00Z",
                  "dose": { "id": format!("d-{tag}-{serial}"), "scheduled": "2026-11-22T07:00:00Z" } },
                { "id": format!("{tag}-{serial}-t"), "type": "dose_taken", "at": "2026-11-22T07:04:12Z",
                  "dose": { "id": format!("d-{tag}-{serial}"), "scheduled": "2026-11-22T07:00:00Z", "assisted": false } },
            ] });
            json!({ "contentType": "application/json", "body": body.to_string() })
        })
        .collect();
    let before = app.db().statement_count();
    let response = app
        .client
        .post(app.url(&format!("/ingest/{DISPENSER}/batch")))
        .bearer_auth(token)
        .json(&json!({ "messages": messages }))
        .send()
        .await
        .unwrap();
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reply["accepted"], serials.len(), "{reply}");
    app.db().statement_count() - before
}

on_both_backends! {
    /// A message from one more device costs one more statement (its receipt) and nothing else:
    /// the devices' last-seen times, the events, the duplicate check, alerts and the outbox are
    /// written for the whole group at once. (Before, every device's last-seen time was its own
    /// UPDATE.)
    async fn one_more_message_costs_one_more_statement(app) {
        let fleet = Fleet::new(&app).await;
        active_dispenser(&app, &fleet).await;
        let case_worker = fleet.case_worker_token(&app);
        let serials: Vec<String> = (0..41).map(|i| format!("RD-3000{i:02}")).collect();
        for serial in &serials {
            assert_eq!(register_device(&app, &case_worker, DISPENSER, serial).await["userErrors"], json!([]));
        }
        let integration = fleet.integration_token(&app);
        // The first message compiles the adapter (two more statements, once).
        statements_for_batch(&app, &integration, &serials[..1], "warm").await;
        // 41 receipts in all: no request reaches the 64th, where replay bodies are pruned.
        let ten = statements_for_batch(&app, &integration, &serials[1..11], "first").await;
        let thirty = statements_for_batch(&app, &integration, &serials[11..], "second").await;
        assert_eq!(thirty - ten, 20, "ten messages took {ten} statements, thirty took {thirty}");
    }
}
