//! Retention and backup (issue 16, "data that grows by millions of rows a day"): the sweep
//! deletes what is older than its retention and keeps what is recent or still needed, on both
//! back ends; the audit log still verifies after its oldest entries went, from the cut, and
//! the cut never hides tampering; a second sweep changes nothing; and `velferd backup` copies
//! a running SQLite server's database with every event it acknowledged.
//!
//! Tests call `velferd::retention::sweep` with a `now` of their choosing (the cutoff falls
//! between the rows made before and after a moment they note) rather than wait for the timer.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set, Statement, TransactionTrait};
use serde_json::json;
use velferd::audit::key::{AuditKey, AuditKeys};
use velferd::audit::verify::{Problem, verify};
use velferd::audit::{self, Access, Decision, Purpose};
use velferd::auth::Role;
use velferd::retention::{RetentionSettings, Swept, sweep};

use crate::alerts::Centre;
use crate::devices::{ALARM, DISPENSER, Fleet, ingest, live_reference_adapters, sample};
use crate::rows::org_row;
use crate::support::{AUDIT_KEY, Backend, MUNICIPALITY_ORG, Options, TestApp, on_each_backend};

/// Every retention at 30 days, two rows a statement (so each table takes several).
fn thirty_days() -> RetentionSettings {
    RetentionSettings {
        events_days: Some(30),
        dead_letters_days: Some(30),
        webhook_deliveries_days: Some(30),
        refusals_days: Some(30),
        audit_days: Some(30),
        interval: Duration::from_secs(3600),
        batch: 2,
    }
}

/// The `now` at which a 30-day retention's cutoff is `moment`.
fn thirty_days_after(moment: DateTime<Utc>) -> DateTime<Utc> {
    moment + chrono::Duration::days(30)
}

/// The first column of what a query answers.
async fn column<T: sea_orm::TryGetable>(app: &TestApp, sql: &str) -> Vec<T> {
    let db = app.db().read();
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_string()))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<T>(0).unwrap())
        .collect()
}

/// The ids a query answers (its first column), as a set.
async fn ids(app: &TestApp, sql: &str) -> BTreeSet<i64> {
    column(app, sql).await.into_iter().collect()
}

/// The ids of every table the sweep deletes from.
async fn swept_tables(app: &TestApp) -> Vec<BTreeSet<i64>> {
    let mut all = Vec::new();
    for table in velferd::retention::TABLES {
        all.push(ids(app, &format!("SELECT id FROM {table}")).await);
    }
    all
}

async fn execute(app: &TestApp, sql: &str) {
    let db = app.db().write();
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap();
}

/// A SCAIP alarm-button press of unit `unit`: raises an alert.
fn press(reference: &str, unit: &str) -> Vec<u8> {
    format!(
        "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>{unit}</cid><dty>005</dty><mty>ME</mty><stc>001</stc><lco>010</lco></mrq>"
    )
    .into_bytes()
}

/// A dispenser message from a serial nobody registered: a dead letter; its id (a row id).
async fn dead_letter(app: &TestApp, fleet: &Fleet, event: &str) -> i64 {
    let body =
        json!({ "serial": "RD-999999", "events": [{ "id": event, "type": "lid_open", "at": "2026-11-22T08:05:00Z" }] });
    let (status, reply) =
        ingest(app, &fleet.integration_token(app), DISPENSER, "application/json", body.to_string().into_bytes()).await;
    assert_eq!(status, 202, "{reply}");
    let id = reply["results"][0]["deadLetterId"].as_str().unwrap();
    velferd::ids::row_id(id, velferd::ids::NodeType::DeadLetter).unwrap()
}

/// A delivery of `endpoint` in `status`, finished now unless pending.
async fn delivery(app: &TestApp, endpoint: i64, message: &str, status: &str) -> i64 {
    use velferd::webhooks::model::{DeliveryStatus, webhook_delivery};
    let now = Utc::now().fixed_offset();
    let status = match status {
        "succeeded" => DeliveryStatus::Succeeded,
        "failed" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Pending,
    };
    let finished = (status != DeliveryStatus::Pending).then_some(now);
    webhook_delivery::ActiveModel {
        endpoint_id: Set(endpoint),
        message_id: Set(message.into()),
        sequence: Set(1),
        event_type: Set("webhook.test".into()),
        payload: Set("{}".into()),
        status: Set(status),
        attempts: Set(1),
        queued_after_attempts: Set(0),
        next_attempt_at_ms: Set(None),
        lease_until_ms: Set(None),
        lease_owner: Set(None),
        created_at: Set(now),
        finished_at: Set(finished),
        ..Default::default()
    }
    .insert(app.db().write())
    .await
    .unwrap()
    .id
}

/// A count of the refusal log for `minute` (seconds since the epoch).
async fn refusal_count(app: &TestApp, minute: i64, caller: &str) -> i64 {
    use velferd::refusals::model::refused_attempt;
    refused_attempt::ActiveModel {
        minute: Set(minute),
        caller: Set(caller.into()),
        code: Set("FORBIDDEN".into()),
        attempts: Set(3),
        ..Default::default()
    }
    .insert(app.db().write())
    .await
    .unwrap()
    .id
}

on_each_backend! {
    /// Events, receipts, resolved dead letters, finished deliveries and refusal counts older
    /// than the retention go; recent rows stay, and so do old ones something still needs: the
    /// event of an open alert and its receipt, an unresolved dead letter and its receipt, a
    /// pending delivery. Once the alert is resolved its event goes too. A second sweep deletes
    /// nothing.
    async fn old_rows_go_while_recent_and_still_needed_rows_stay(backend) {
        let Some(app) = TestApp::spawn_with(backend, Options::default()).await else { return };
        let world = Centre::new(&app).await;
        let integration = world.fleet.integration_token(&app);
        let endpoint = {
            let municipality = org_row(&app, MUNICIPALITY_ORG).await;
            let (endpoint, _) = crate::webhooks::seed(&app, municipality, false).await;
            velferd::ids::row_id(&endpoint, velferd::ids::NodeType::WebhookEndpoint).unwrap()
        };

        // Before the cutoff: an alarm (its alert stays open), a dispenser message, two dead
        // letters of which one is resolved, finished and pending deliveries, a refusal count.
        let (status, reply) = ingest(&app, &integration, ALARM, "application/xml", press("R-1", "SA-7734001")).await;
        assert_eq!(status, 200, "{reply}");
        let (status, _) =
            ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json")).await;
        assert_eq!(status, 200);
        let resolved = dead_letter(&app, &world.fleet, "e-old-1").await;
        let unresolved = dead_letter(&app, &world.fleet, "e-old-2").await;
        execute(&app, &format!("UPDATE dead_letter SET resolved_at = last_received_at WHERE id = {resolved}")).await;
        let old_succeeded = delivery(&app, endpoint, "msg_old_ok", "succeeded").await;
        let old_failed = delivery(&app, endpoint, "msg_old_failed", "failed").await;
        let old_pending = delivery(&app, endpoint, "msg_old_pending", "pending").await;
        // The minute before this one: the sweep compares whole seconds, and a count of this
        // minute made in the minute's first second, with the cut in that same second, is not
        // older than the cut (seen once in CI).
        let old_refusals = refusal_count(&app, Utc::now().timestamp() / 60 * 60 - 60, "old").await;
        let alarm_event = ids(&app, "SELECT event_id FROM alert WHERE event_id IS NOT NULL").await;
        assert_eq!(alarm_event.len(), 1, "the press raised one alert");
        let alarm_receipt = ids(
            &app,
            &format!("SELECT receipt_id FROM device_event WHERE id = {}", alarm_event.first().unwrap()),
        )
        .await;
        let unresolved_receipt =
            ids(&app, &format!("SELECT id FROM ingest_receipt WHERE dead_letter_id = {unresolved}")).await;
        let old_events = ids(&app, "SELECT id FROM device_event").await;
        let old_receipts = ids(&app, "SELECT id FROM ingest_receipt").await;
        assert!(old_events.len() >= 3 && old_receipts.len() >= 4, "{old_events:?} {old_receipts:?}");

        let cut = Utc::now();
        tokio::time::sleep(Duration::from_millis(20)).await;

        // After it: the same kinds again.
        let (status, _) =
            ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "missed-dose.json")).await;
        assert_eq!(status, 200);
        let recent_resolved = dead_letter(&app, &world.fleet, "e-new-1").await;
        execute(&app, &format!("UPDATE dead_letter SET resolved_at = last_received_at WHERE id = {recent_resolved}")).await;
        let recent_succeeded = delivery(&app, endpoint, "msg_new_ok", "succeeded").await;
        let recent_refusals = refusal_count(&app, (cut.timestamp() / 60 + 1) * 60, "new").await;
        let all_events = ids(&app, "SELECT id FROM device_event").await;
        let recent_events: BTreeSet<i64> = all_events.difference(&old_events).copied().collect();
        let recent_receipts: BTreeSet<i64> =
            ids(&app, "SELECT id FROM ingest_receipt").await.difference(&old_receipts).copied().collect();
        assert!(!recent_events.is_empty());

        let swept = sweep(app.db(), &thirty_days(), thirty_days_after(cut)).await.unwrap();

        let events = ids(&app, "SELECT id FROM device_event").await;
        let kept_old: BTreeSet<i64> = events.intersection(&old_events).copied().collect();
        assert_eq!(kept_old, alarm_event, "of the old events only the open alert's stays");
        assert!(recent_events.is_subset(&events), "recent events stay");
        assert_eq!(swept.from("device_event"), (old_events.len() - 1) as u64, "{swept:?}");
        let receipts = ids(&app, "SELECT id FROM ingest_receipt").await;
        let kept_old: BTreeSet<i64> = receipts.intersection(&old_receipts).copied().collect();
        let needed: BTreeSet<i64> = alarm_receipt.union(&unresolved_receipt).copied().collect();
        assert_eq!(kept_old, needed, "the open alert's receipt and the unresolved dead letter's stay");
        assert!(recent_receipts.is_subset(&receipts));
        let letters = ids(&app, "SELECT id FROM dead_letter").await;
        assert!(!letters.contains(&resolved), "an old resolved dead letter goes");
        assert!(letters.contains(&unresolved) && letters.contains(&recent_resolved), "{letters:?}");
        let deliveries = ids(&app, "SELECT id FROM webhook_delivery").await;
        assert!(!deliveries.contains(&old_succeeded) && !deliveries.contains(&old_failed), "{deliveries:?}");
        assert!(deliveries.contains(&old_pending) && deliveries.contains(&recent_succeeded), "{deliveries:?}");
        let refusals = ids(&app, "SELECT id FROM refused_attempt").await;
        assert!(!refusals.contains(&old_refusals) && refusals.contains(&recent_refusals), "{refusals:?}");

        // Twice is harmless: nothing more goes.
        let before = swept_tables(&app).await;
        let again = sweep(app.db(), &thirty_days(), thirty_days_after(cut)).await.unwrap();
        assert_eq!(again.total(), 0, "{again:?}");
        assert_eq!(swept_tables(&app).await, before);

        // The alert resolved, its event and receipt may go.
        execute(&app, "UPDATE alert SET status = 'resolved', open_key = NULL").await;
        let last = sweep(app.db(), &thirty_days(), thirty_days_after(cut)).await.unwrap();
        assert_eq!((last.from("device_event"), last.from("ingest_receipt")), (1, 1), "{last:?}");
        assert!(ids(&app, "SELECT id FROM device_event").await.is_disjoint(&old_events));
    }
}

/// The keys the test servers sign with (see `support::AUDIT_KEY`).
fn keys() -> AuditKeys {
    AuditKeys { current: AuditKey::new(AUDIT_KEY.as_bytes()).unwrap(), retired: vec![AuditKey::development()] }
}

/// Records `count` reads in `municipality`'s chain, each in its own transaction.
async fn record(app: &TestApp, municipality: i64, count: usize) {
    for _ in 0..count {
        let txn = app.db().write().begin().await.unwrap();
        let access = Access {
            subject: "kari.nordmann",
            organization_id: municipality,
            role: Role::CaseWorker,
            municipality_id: municipality,
            recipient_id: 7,
            operation: "recipient.read",
            object_type: "ServiceRecipient",
            object_id: 7,
            purpose: Purpose::Casework,
            decision: Decision::Granted,
        };
        audit::record(&txn, access).await.unwrap();
        txn.commit().await.unwrap();
    }
}

/// The sequences left in `municipality`'s chain.
async fn seqs(app: &TestApp, municipality: i64) -> Vec<i64> {
    let sql = format!("SELECT seq FROM audit_entry WHERE municipality_id = {municipality} ORDER BY seq");
    ids(app, &sql).await.into_iter().collect()
}

/// The audit sweep alone, as at `now`.
async fn sweep_audit(app: &TestApp, now: DateTime<Utc>) -> Swept {
    let settings = RetentionSettings {
        events_days: None,
        dead_letters_days: None,
        webhook_deliveries_days: None,
        refusals_days: None,
        ..thirty_days()
    };
    sweep(app.db(), &settings, now).await.unwrap()
}

on_each_backend! {
    /// The audit log's entries older than the retention go, oldest first, and the chain still
    /// verifies — from the signed cut, which `velferd audit verify` names — and goes on growing.
    /// A chain's newest entry stays however old. Without the cut the deletion is named; a cut
    /// never passes an altered entry, which stays for `verify` to name.
    async fn the_audit_log_verifies_from_its_cut_after_its_oldest_entries_went(backend) {
        let Some(app) = TestApp::spawn_with(backend, Options::default()).await else { return };
        let (kept, old_only, tampered) = (7001, 7002, 7003);
        record(&app, kept, 5).await;
        record(&app, old_only, 3).await;
        record(&app, tampered, 4).await;
        // Entry 3 of the third chain edited through the database (its hash no longer holds).
        execute(&app, &format!("UPDATE audit_entry SET purpose = 'edited' WHERE municipality_id = {tampered} AND seq = 3")).await;
        let cut = Utc::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        record(&app, kept, 3).await;

        let swept = sweep_audit(&app, thirty_days_after(cut)).await;
        assert_eq!(seqs(&app, kept).await, vec![6, 7, 8], "entries after the cutoff stay");
        assert_eq!(seqs(&app, old_only).await, vec![3], "the newest entry stays, whatever its age");
        assert_eq!(seqs(&app, tampered).await, vec![3, 4], "the cut stops before the altered entry");
        assert_eq!(swept.from("audit_entry"), 5 + 2 + 2, "{swept:?}");

        let report = verify(app.db().read(), &keys()).await.unwrap();
        let findings: Vec<String> = report.findings.iter().map(|f| f.to_string()).collect();
        assert!(
            matches!(&report.findings[..], [velferd::audit::verify::Finding { municipality_id: 7003, problem: Problem::Altered(e) }] if e.seq == 3),
            "only the tampering is found: {findings:?}"
        );
        let through: Vec<(i64, Option<i64>)> =
            report.chains.iter().map(|c| (c.municipality_id, c.cut.as_ref().map(|cut| cut.through_seq))).collect();
        assert_eq!(through, vec![(kept, Some(5)), (old_only, Some(2)), (tampered, Some(2))]);

        // The chain goes on from its head, and the operator's check says from where it verified.
        execute(&app, &format!("DELETE FROM audit_entry WHERE municipality_id = {tampered}")).await;
        execute(&app, &format!("DELETE FROM audit_anchor WHERE municipality_id = {tampered}")).await;
        execute(&app, &format!("DELETE FROM audit_cut WHERE municipality_id = {tampered}")).await;
        record(&app, kept, 1).await;
        let (code, output) = crate::audit::verify_cli(&app, &[]).await;
        assert_eq!(code, 0, "{output}");
        assert!(output.contains(&format!("chain     municipality {kept}: 9 entries")), "{output}");
        assert!(output.contains(&format!("municipality {kept}: seq 1 to 5 deleted by retention")), "{output}");
        assert!(output.contains("verified from seq 6"), "{output}");

        // A second sweep at the same moment deletes nothing.
        assert_eq!(sweep_audit(&app, thirty_days_after(cut)).await.total(), 0);

        // Entries deleted from the start without the key are named: here the cut row removed.
        execute(&app, &format!("DELETE FROM audit_cut WHERE municipality_id = {kept}")).await;
        let report = verify(app.db().read(), &keys()).await.unwrap();
        assert!(
            matches!(&report.findings[..], [velferd::audit::verify::Finding { municipality_id: 7001, problem: Problem::Missing { from: 1, to: 5, .. } }]),
            "{:?}",
            report.findings
        );
    }
}

/// `velferd backup --to FILE` against the database `url`, as an operator runs it.
async fn backup_cli(url: &str, to: &std::path::Path) -> (i32, String) {
    let url = url.to_string();
    let to = to.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_velferd"))
            .arg("backup")
            .arg("--to")
            .arg(&to)
            .env_remove("VELFERD_CONFIG")
            .env("VELFERD_DATABASE_URL", url)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code().unwrap_or(-1), text)
    })
    .await
    .unwrap()
}

/// A dispenser message with one new event `id`.
fn dose(id: &str) -> Vec<u8> {
    json!({ "serial": "RD-100234", "events": [{ "id": id, "type": "dose_available", "at": "2026-11-22T07:00:00Z",
        "dose": { "id": format!("d-{id}"), "scheduled": "2026-11-22T07:00:00Z" } }] })
    .to_string()
    .into_bytes()
}

/// `velferd backup` copies the database of a server that is ingesting, and a server started on
/// the copy has every event acknowledged before the backup began; the copy refuses to be
/// written over, and PostgreSQL is pointed to its own tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_ingesting_restores_every_acknowledged_event() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let fleet = Fleet::new(&app).await;
    live_reference_adapters(&app, &fleet).await;
    let token = fleet.integration_token(&app);
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (client, url, acknowledged, stop) =
            (app.client.clone(), app.url(&format!("/ingest/{DISPENSER}")), acknowledged.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let id = format!("backup-{n}");
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(dose(&id))
                    .send()
                    .await
                    .unwrap();
                let reply: serde_json::Value = response.json().await.unwrap();
                assert_eq!(reply["accepted"], 1, "{reply}");
                acknowledged.lock().unwrap().push(id);
            }
        })
    };
    // Let ingest run, then back up while it goes on.
    while acknowledged.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_backup: Vec<String> = acknowledged.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("velferd-copy.db");
    let (code, output) = backup_cli(&app.settings.database_url, &copy).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("backed up") && output.contains("device events"), "{output}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.await.unwrap();

    // The copy is not written over.
    let (code, output) = backup_cli(&app.settings.database_url, &copy).await;
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("already exists"), "{output}");

    // Restore: a server on the copy.
    let options = Options {
        pairs: vec![("VELFERD_DATABASE_URL", format!("sqlite://{}?mode=rwc", copy.display()))],
        ..Options::default()
    };
    let restored = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let sql = "SELECT supplier_event_id FROM device_event WHERE supplier_event_id LIKE 'backup-%'";
    let stored: BTreeSet<String> = column(&restored, sql).await.into_iter().collect();
    let missing: Vec<&String> = before_backup.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged before the backup but not in it: {missing:?}");
    let (code, output) = crate::audit::verify_cli(&restored, &[]).await;
    assert_eq!(code, 0, "the restored audit log verifies: {output}");

    // PostgreSQL has its own tools: refused before connecting.
    let (code, output) = backup_cli("postgres://nobody@127.0.0.1:1/none", &dir.path().join("pg.db")).await;
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("pg_basebackup"), "{output}");
}
