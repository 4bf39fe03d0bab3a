//! The audit log of health data (issue 13, must-show 2 and 5): the hash chain per municipality
//! and its signed anchor, `velferd audit verify` as a process and as a library call, appends
//! from many connections at once, and the privacy officer's queries, which are logged too.
//!
//! Entries are written through `velferd::audit::record` against the test server's own database,
//! as the areas that serve recipient data write them; tampering goes straight to the tables, as
//! someone with database access (but not the audit key) would.

use std::process::Command;

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set, Statement};
use sea_orm::{DbBackend, TransactionTrait};
use serde_json::{Value, json};
use velferd::audit::chain::{self, anchor_message, entry_hash};
use velferd::audit::graphql::recipient_global_id;
use velferd::audit::key::{AuditKey, AuditKeys};
use velferd::audit::model::{audit_anchor, audit_entry};
use velferd::audit::verify::{EntryRef, Problem, verify};
use velferd::audit::{self, Access, Decision, Purpose};
use velferd::auth::Role;
use velferd::db::Database;

use crate::procurement::org_number;
use crate::support::{AUDIT_KEY, TestApp, first_error_code, on_both_backends};

/// Audit entries are no nodes: they are read through the privacy officer's queries only.
pub async fn node_samples(_app: &TestApp) -> Vec<crate::nodes::NodeSample> {
    Vec::new()
}

/// The keys the test servers sign with: the harness's audit key, and the development key in
/// case some test started a server without one (the key is the process's, see
/// `support::AUDIT_KEY`).
fn test_keys() -> AuditKeys {
    AuditKeys { current: AuditKey::new(AUDIT_KEY.as_bytes()).unwrap(), retired: vec![AuditKey::development()] }
}

fn access(municipality: i64, recipient: i64, decision: Decision, purpose: Purpose) -> Access<'static> {
    Access {
        subject: "kari.nordmann",
        organization_id: municipality,
        role: Role::CaseWorker,
        municipality_id: municipality,
        recipient_id: recipient,
        operation: "recipient.read",
        object_type: "ServiceRecipient",
        object_id: recipient,
        purpose,
        decision,
    }
}

/// Records `count` reads of `recipient` in `municipality`, each in its own transaction as an
/// area's resolver would.
async fn append(db: &Database, municipality: i64, recipient: i64, count: usize) {
    for _ in 0..count {
        let txn = db.write().begin().await.unwrap();
        audit::record(&txn, access(municipality, recipient, Decision::Granted, Purpose::Casework)).await.unwrap();
        txn.commit().await.unwrap();
    }
}

/// Appends `count` entries as [`append`] does, then puts the municipality's anchor back as it
/// was: entries stored without their anchor moving (a writer that died between the two).
async fn append_unanchored(db: &Database, municipality: i64, recipient: i64, count: usize) {
    let anchor = audit_anchor::Entity::find()
        .filter(audit_anchor::Column::MunicipalityId.eq(municipality))
        .one(db.write())
        .await
        .unwrap()
        .unwrap();
    append(db, municipality, recipient, count).await;
    let mut back: audit_anchor::ActiveModel = anchor.clone().into();
    back.head_seq = Set(anchor.head_seq);
    back.head_hash = Set(anchor.head_hash.clone());
    back.mac = Set(anchor.mac.clone());
    back.update(db.write()).await.unwrap();
}

async fn entry(db: &Database, municipality: i64, seq: i64) -> audit_entry::Model {
    audit_entry::Entity::find()
        .filter(audit_entry::Column::MunicipalityId.eq(municipality))
        .filter(audit_entry::Column::Seq.eq(seq))
        .one(db.write())
        .await
        .unwrap()
        .unwrap()
}

async fn sql(db: &Database, statement: &str) {
    let conn = db.write();
    conn.execute_raw(Statement::from_string(conn.get_database_backend(), statement)).await.unwrap();
}

/// A file holding the development key, for `VELFERD_AUDIT_RETIRED_KEY_FILES`.
fn development_key_file() -> String {
    static FILE: std::sync::OnceLock<tempfile::NamedTempFile> = std::sync::OnceLock::new();
    let file = FILE.get_or_init(|| {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), velferd::audit::key::DEVELOPMENT_KEY).unwrap();
        file
    });
    file.path().display().to_string()
}

/// `velferd audit verify` run as an operator runs it, on the test server's database, with the
/// key the test servers sign with (and the development key, see [`test_keys`]).
pub async fn verify_cli(app: &TestApp, extra: &[(&str, &str)]) -> (i32, String) {
    run_verify(app, &[], extra).await
}

async fn verify_cli_args(app: &TestApp, args: &[&str]) -> (i32, String) {
    run_verify(app, args, &[]).await
}

async fn run_verify(app: &TestApp, args: &[&str], extra: &[(&str, &str)]) -> (i32, String) {
    let url = app.settings.database_url.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
        command.args(["audit", "verify"]).args(args).env("VELFERD_DATABASE_URL", url);
        for name in ["VELFERD_AUDIT_KEY", "VELFERD_AUDIT_KEY_FILE", "VELFERD_AUDIT_RETIRED_KEY_FILES", "VELFERD_CONFIG"]
        {
            command.env_remove(name);
        }
        command.env("VELFERD_ENV", "development").env("VELFERD_AUDIT_KEY", AUDIT_KEY);
        command.env("VELFERD_AUDIT_RETIRED_KEY_FILES", development_key_file());
        for (k, v) in extra {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code().unwrap_or(-1), text)
    })
    .await
    .unwrap()
}

on_both_backends! {
    /// Must-show 5: verify passes on an intact log and fails, naming the entry, after one row is
    /// edited, after the newest entry is deleted, after an entry in the middle is deleted, and
    /// after a whole chain is recomputed without the key — one chain per case, one run.
    async fn verify_names_every_kind_of_tampering(app) {
        let db = app.db().clone();
        for municipality in 1001..=1005 {
            append(&db, municipality, 7, 5).await;
        }
        let report = verify(db.read(), &test_keys()).await.unwrap();
        assert!(report.intact(), "{:?}", report.findings);
        assert_eq!((report.chains.len(), report.entries()), (5, 25));
        let (code, out) = verify_cli(&app, &[]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("audit log intact: 5 chains, 25 entries"), "{out}");

        // 1001: one row edited.
        let edited = entry(&db, 1001, 2).await;
        sql(&db, "UPDATE audit_entry SET purpose = 'nothing to see' WHERE municipality_id = 1001 AND seq = 2").await;
        // 1002: the newest entry deleted.
        let newest_before = entry(&db, 1002, 4).await;
        sql(&db, "DELETE FROM audit_entry WHERE municipality_id = 1002 AND seq = 5").await;
        // 1003: an entry in the middle deleted.
        let after_gap = entry(&db, 1003, 4).await;
        sql(&db, "DELETE FROM audit_entry WHERE municipality_id = 1003 AND seq = 3").await;
        // 1004: entry 2 edited and the whole chain and its anchor recomputed, with a guessed key.
        let mut prev = chain::GENESIS.to_string();
        let rows = audit_entry::Entity::find()
            .filter(audit_entry::Column::MunicipalityId.eq(1004))
            .order_by_asc(audit_entry::Column::Seq)
            .all(db.write())
            .await
            .unwrap();
        let mut head = None;
        for mut row in rows {
            if row.seq == 2 {
                row.subject = "someone else".into();
            }
            row.prev_hash = prev.clone();
            row.hash = entry_hash(&row);
            prev = row.hash.clone();
            head = Some(EntryRef { seq: row.seq, id: row.id });
            let mut active: audit_entry::ActiveModel = row.into();
            active.subject = Set(active.subject.take().unwrap());
            active.prev_hash = Set(active.prev_hash.take().unwrap());
            active.hash = Set(active.hash.take().unwrap());
            active.update(db.write()).await.unwrap();
        }
        let guessed = AuditKey::new(b"the attacker's best guess at the audit key").unwrap();
        let anchor = audit_anchor::Entity::find()
            .filter(audit_anchor::Column::MunicipalityId.eq(1004))
            .one(db.write())
            .await
            .unwrap()
            .unwrap();
        let mut anchor: audit_anchor::ActiveModel = anchor.into();
        anchor.head_hash = Set(prev.clone());
        anchor.mac = Set(guessed.mac(&anchor_message(1004, 5, &prev)));
        anchor.update(db.write()).await.unwrap();

        let report = verify(db.read(), &test_keys()).await.unwrap();
        let mut findings: Vec<(i64, Problem)> =
            report.findings.iter().map(|f| (f.municipality_id, f.problem.clone())).collect();
        findings.sort_by_key(|(m, _)| *m);
        assert_eq!(
            findings,
            vec![
                (1001, Problem::Altered(EntryRef { seq: 2, id: edited.id })),
                (1002, Problem::Truncated { anchored_seq: 5, last: Some(EntryRef { seq: 4, id: newest_before.id }) }),
                (1003, Problem::Missing { from: 3, to: 3, next: EntryRef { seq: 4, id: after_gap.id } }),
                (1004, Problem::AnchorForged { anchored_seq: 5, entry: head }),
            ]
        );

        let (code, out) = verify_cli(&app, &[]).await;
        assert_eq!(code, 1, "{out}");
        let head = head.unwrap();
        for line in [
            format!("municipality 1001, seq 2, id {}: altered", edited.id),
            format!("municipality 1002, seq 5: removed (the anchor names head seq 5; the chain ends at seq 4, id {})", newest_before.id),
            format!("municipality 1003, seq 3: removed (the chain jumps to seq 4, id {})", after_gap.id),
            format!("municipality 1004, seq 5 (seq 5, id {}): anchor HMAC mismatch", head.id),
            "audit log BROKEN: 4 finding(s) in 5 chains".to_string(),
        ] {
            assert!(out.contains(&line), "missing {line:?} in:\n{out}");
        }
        assert!(!out.contains("municipality 1005,"), "the intact chain is not blamed:\n{out}");

        // With another key than the one that signed, every anchor is refused.
        let (code, out) = verify_cli(
            &app,
            &[("VELFERD_AUDIT_KEY", "a-key-that-never-signed-anything-here"), ("VELFERD_AUDIT_RETIRED_KEY_FILES", "")],
        )
        .await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("municipality 1005: the anchor is signed with key"), "{out}");
    }
}

on_both_backends! {
    /// A chain with entries but no anchor (the anchor row deleted), and entries beyond the
    /// anchored head (appended without moving the signed anchor), are both named.
    async fn verify_names_a_removed_anchor_and_unanchored_entries(app) {
        let db = app.db().clone();
        append(&db, 1101, 7, 3).await;
        append(&db, 1102, 7, 3).await;
        let first = entry(&db, 1101, 1).await;
        sql(&db, "DELETE FROM audit_anchor WHERE municipality_id = 1101").await;
        // An entry appended to 1102 as Velferd would, but with the anchor put back.
        append_unanchored(&db, 1102, 7, 1).await;
        let extra = entry(&db, 1102, 4).await;
        let report = verify(db.read(), &test_keys()).await.unwrap();
        let findings: Vec<(i64, Problem)> = report.findings.iter().map(|f| (f.municipality_id, f.problem.clone())).collect();
        assert_eq!(
            findings,
            vec![
                (1101, Problem::Unanchored { first: EntryRef { seq: 1, id: first.id } }),
                (1102, Problem::Unanchored { first: EntryRef { seq: 4, id: extra.id } }),
            ]
        );
    }
}

on_both_backends! {
    /// An entry stored without its anchor moving (a writer outside a transaction that died
    /// between the two statements) is reported until the next append links to it and covers it.
    async fn an_entry_left_unanchored_is_covered_by_the_next_append(app) {
        let db = app.db().clone();
        append(&db, 1601, 7, 2).await;
        append_unanchored(&db, 1601, 7, 1).await;
        let report = verify(db.read(), &test_keys()).await.unwrap();
        assert!(matches!(report.findings[..], [velferd::audit::verify::Finding { problem: Problem::Unanchored { .. }, .. }]));
        append(&db, 1601, 7, 1).await;
        let report = verify(db.read(), &test_keys()).await.unwrap();
        assert!(report.intact(), "{:?}", report.findings);
        assert_eq!(report.entries(), 4);
    }
}

on_both_backends! {
    /// Rotation: anchors signed with a retired key verify while that key is listed as retired,
    /// and are named (with the key's fingerprint) when it is not; the next append re-signs the
    /// anchor with the current key.
    async fn anchors_of_a_retired_key_verify_while_it_is_configured(app) {
        let db = app.db().clone();
        let old = AuditKey::new(b"the audit key of last year, now retired").unwrap();
        let new = AuditKey::new(b"the audit key of this year, now current").unwrap();
        let pending = || chain::Pending { entry: audit_entry::Model {
            id: 0, municipality_id: 1201, seq: 0, recipient_id: 7, subject: "kari".into(), organization_id: 1201,
            role: "case_worker".into(), operation: "recipient.read".into(), object_type: "ServiceRecipient".into(),
            object_id: 7, purpose_kind: "casework".into(), purpose: String::new(), decision: "granted".into(),
            at: chain::now(), prev_hash: String::new(), hash: String::new(),
        } };
        let txn = db.write().begin().await.unwrap();
        chain::append(&txn, pending(), &old).await.unwrap();
        txn.commit().await.unwrap();
        let rotated = AuditKeys { current: new.clone(), retired: vec![old.clone()] };
        assert!(verify(db.read(), &rotated).await.unwrap().intact());
        let only_new = AuditKeys { current: new.clone(), retired: vec![] };
        let report = verify(db.read(), &only_new).await.unwrap();
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].problem, Problem::UnknownKey { key_id: old.id().to_string() });
        let txn = db.write().begin().await.unwrap();
        chain::append(&txn, pending(), &new).await.unwrap();
        txn.commit().await.unwrap();
        let report = verify(db.read(), &only_new).await.unwrap();
        assert!(report.intact(), "{:?}", report.findings);
        assert_eq!(report.entries(), 2);
    }
}

on_both_backends! {
    /// Must-show (concurrency): 4 server instances' connection pools append 40 entries to one
    /// municipality at once, half in their own transactions and half on the bare pool (as a
    /// read path without a transaction does); the chain stays whole (1..=40, every link) and
    /// its anchor names entry 40.
    async fn concurrent_appends_from_many_connections_keep_one_chain(app) {
        let mut instances = Vec::new();
        for _ in 0..4 {
            instances.push(Database::connect(&app.settings.database_url, 4, std::time::Duration::from_secs(5)).await.unwrap());
        }
        let mut tasks = Vec::new();
        for (i, db) in instances.iter().enumerate() {
            for j in 0..10 {
                let db = db.clone();
                tasks.push(tokio::spawn(async move {
                    let read = access(1301, (i * 10 + j) as i64 + 1, Decision::Granted, Purpose::Casework);
                    if j % 2 == 0 {
                        let txn = db.write().begin().await.unwrap();
                        audit::record(&txn, read).await.unwrap();
                        txn.commit().await.unwrap();
                    } else {
                        // A caller without a transaction: each statement on its own.
                        audit::record(db.write(), read).await.unwrap();
                    }
                }));
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
        let report = verify(app.db().read(), &test_keys()).await.unwrap();
        assert!(report.intact(), "{:?}", report.findings);
        assert_eq!(report.entries(), 40);
        let recipients: std::collections::BTreeSet<i64> = audit_entry::Entity::find()
            .all(app.db().read()).await.unwrap().into_iter().map(|e| e.recipient_id).collect();
        assert_eq!(recipients.len(), 40, "every append is in the chain once");
    }
}

on_both_backends! {
    /// The recorder, which writes live deliveries' entries in batches: 600 accesses recorded
    /// at once across two municipalities, while other connections append one by one to the same
    /// chains, each answered only once committed; every chain stays whole, each access is in it
    /// once, and each municipality's entries are in the order they were handed to it.
    async fn the_recorder_writes_many_accesses_in_batches_into_whole_chains(app) {
        let recorder = audit::Recorder::start(app.db().clone());
        let mut tasks = Vec::new();
        for n in 0..600i64 {
            let recorder = recorder.clone();
            let municipality = if n % 3 == 0 { 1401 } else { 1402 };
            tasks.push(tokio::spawn(async move {
                recorder.record(access(municipality, n + 1, Decision::Granted, Purpose::Alert(n))).await.unwrap();
            }));
        }
        let other = Database::connect(&app.settings.database_url, 4, std::time::Duration::from_secs(5)).await.unwrap();
        for n in 0..20i64 {
            audit::record(other.write(), access(1401 + n % 2, 10_000 + n, Decision::Granted, Purpose::Casework))
                .await
                .unwrap();
        }
        for task in tasks {
            task.await.unwrap();
        }
        let report = verify(app.db().read(), &test_keys()).await.unwrap();
        assert!(report.intact(), "{:?}", report.findings);
        assert_eq!(report.entries(), 620);
        let entries = audit_entry::Entity::find()
            .order_by_asc(audit_entry::Column::MunicipalityId)
            .order_by_asc(audit_entry::Column::Seq)
            .all(app.db().read())
            .await
            .unwrap();
        let recipients: std::collections::BTreeSet<i64> = entries.iter().map(|e| e.recipient_id).collect();
        assert_eq!(recipients.len(), 620, "every access is in a chain once");
        for municipality in [1401, 1402] {
            let seqs: Vec<i64> = entries.iter().filter(|e| e.municipality_id == municipality).map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "municipality {municipality}: 1, 2, 3 …");
        }
    }
}

/// Two municipalities' chains never wait on each other (PostgreSQL, where instances write at
/// once; SQLite has one writer for the whole database): a transaction holding municipality A's
/// chain head does not stop an append to B on another connection, while a second append to A
/// waits for it (seen in `pg_locks`) and then links after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_of_two_municipalities_do_not_wait_on_each_other() {
    let Some(app) = TestApp::spawn_postgres().await else { return };
    let url = app.settings.database_url.clone();
    let connect = || Database::connect(&url, 2, std::time::Duration::from_secs(5));
    let (one, two) = (connect().await.unwrap(), connect().await.unwrap());
    // A hang guard, not a measurement: a wait that never ends fails here instead of hanging.
    let guard = std::time::Duration::from_secs(120);
    let holder = one.write().begin().await.unwrap();
    audit::record(&holder, access(1401, 1, Decision::Granted, Purpose::Casework)).await.unwrap();
    let other = two.write().begin().await.unwrap();
    tokio::time::timeout(guard, audit::record(&other, access(1402, 1, Decision::Granted, Purpose::Casework)))
        .await
        .expect("an append to another municipality does not wait")
        .unwrap();
    other.commit().await.unwrap();
    let same = {
        let two = two.clone();
        tokio::spawn(async move {
            let txn = two.write().begin().await.unwrap();
            audit::record(&txn, access(1401, 2, Decision::Granted, Purpose::Casework)).await.unwrap();
            txn.commit().await.unwrap();
        })
    };
    // Wait until the second append to A is blocked on the lock `holder` holds.
    tokio::time::timeout(guard, async {
        loop {
            let row = app
                .db()
                .write()
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    // A row lock's waiter waits on the holder's transaction id.
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                     AND datname = current_database()",
                ))
                .await
                .unwrap()
                .unwrap();
            if row.try_get::<i64>("", "n").unwrap() > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the second append to the same municipality waits for the first");
    assert!(!same.is_finished());
    holder.commit().await.unwrap();
    tokio::time::timeout(guard, same).await.expect("it goes on once the first commits").unwrap();
    let report = verify(app.db().read(), &test_keys()).await.unwrap();
    assert!(report.intact(), "{:?}", report.findings);
    let a: Vec<i64> = audit_entry::Entity::find()
        .filter(audit_entry::Column::MunicipalityId.eq(1401))
        .order_by_asc(audit_entry::Column::Seq)
        .all(app.db().read())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.recipient_id)
        .collect();
    assert_eq!(a, vec![1, 2], "the waiting append linked after the one it waited for");
}

/// No mutation touches the audit log: append-only is the API's shape, not a rule a resolver
/// could forget.
#[test]
fn no_mutation_changes_or_deletes_audit_entries() {
    let sdl = velferd::graphql::sdl();
    let mutation = sdl.split("type Mutation {").nth(1).expect("a Mutation type").split("\n}").next().unwrap();
    let fields: Vec<&str> = mutation
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('"') && !l.starts_with('#'))
        .filter(|l| l.to_ascii_lowercase().contains("audit"))
        .collect();
    assert!(fields.is_empty(), "mutations of the audit log: {fields:?}");
    assert!(sdl.contains("auditLog(") && sdl.contains("auditEntriesFlagged(") && sdl.contains("auditExport("));
}

const LOG: &str = "query($id: ID!, $filter: AuditLogFilter) { auditLog(recipientId: $id, filter: $filter, first: 10) {
    totalCount edges { node { seq at recipientId subject organizationId organizationName role operation objectType objectId
    purposeKind purposeDetail decision description } } } }";
const FLAGGED: &str = "{ auditEntriesFlagged(first: 10) { totalCount edges { node { recipientId subject decision organizationName } } } }";
const EXPORT: &str = "query($id: ID!) { auditExport(recipientId: $id) { recipientId municipality complete text
    entries { who organization role what why flaggedForReview } } }";

/// Two municipalities with a log each, and a response centre whose operator read a recipient.
struct World {
    larvik: (String, i64),
    bergen: (String, i64),
    centre: i64,
}

/// `GET /audit/recipients/{id}/export` with `token`: the status and the JSON body.
async fn rest_export(app: &TestApp, token: Option<&str>, id: &str) -> (u16, Value) {
    let mut request = app.client.get(app.url(&format!("/audit/recipients/{id}/export")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn world(app: &TestApp) -> World {
    let row = |id: &str| velferd::ids::row_id(id, velferd::ids::NodeType::Organization).unwrap();
    let larvik_number = org_number(1301);
    let larvik = app
        .create_organization(json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": larvik_number,
            "municipalityNumber": "3805", "county": "Vestfold" }))
        .await;
    let bergen_number = org_number(1302);
    let bergen = app
        .create_organization(json!({ "kind": "MUNICIPALITY", "name": "Bergen kommune", "orgNumber": bergen_number,
            "municipalityNumber": "4601", "county": "Vestland" }))
        .await;
    let centre = app
        .create_organization(
            json!({ "kind": "RESPONSE_CENTRE", "name": "Responssenteret", "orgNumber": org_number(1303) }),
        )
        .await;
    let (l, b, c) = (row(&larvik), row(&bergen), row(&centre));
    let db = app.db();
    let write = async |a: Access<'_>| {
        let txn = db.write().begin().await.unwrap();
        audit::record(&txn, a).await.unwrap();
        txn.commit().await.unwrap();
    };
    // Larvik's recipient 7: casework, an operator handling alert 12, and a flagged read.
    write(access(l, 7, Decision::Granted, Purpose::Casework)).await;
    write(Access {
        subject: "ola.operator",
        organization_id: c,
        role: Role::Operator,
        operation: "alert.read",
        object_type: "Alert",
        object_id: 12,
        ..access(l, 7, Decision::Granted, Purpose::Alert(12))
    })
    .await;
    write(access(l, 7, Decision::GrantedFlagged, Purpose::Stated("curious".into()))).await;
    // Larvik's recipient 8: one flagged read. Bergen's recipient 9: one flagged read.
    write(access(l, 8, Decision::GrantedFlagged, Purpose::Casework)).await;
    write(access(b, 9, Decision::GrantedFlagged, Purpose::Casework)).await;
    World { larvik: (larvik_number, l), bergen: (bergen_number, b), centre: c }
}

on_both_backends! {
    /// The privacy officer reads one recipient's log (filtered), the flagged entries and the
    /// export; each read is itself logged, in the chain, which still verifies.
    async fn privacy_officer_reads_flagged_and_exports_and_is_logged(app) {
        let w = world(&app).await;
        let officer = app.token(&w.larvik.0, &[Role::PrivacyOfficer]);
        let r7 = recipient_global_id(7).0;
        let data = app.graphql(Some(&officer), LOG, json!({ "id": r7 })).await;
        let log = &data["auditLog"];
        // Three accesses and this read itself, newest first.
        assert_eq!(log["totalCount"], 4, "{log}");
        let first = &log["edges"][0]["node"];
        assert_eq!(
            (first["purposeKind"].as_str(), first["role"].as_str(), first["operation"].as_str(), first["subject"].as_str()),
            (Some("OVERSIGHT"), Some("privacy_officer"), Some("audit.read"), Some("test-user"))
        );
        let operator = &log["edges"][2]["node"];
        assert_eq!(operator["organizationName"], "Responssenteret");
        assert_eq!(operator["organizationId"], velferd::ids::global_id(velferd::ids::NodeType::Organization, w.centre));
        assert_eq!((operator["purposeKind"].as_str(), operator["purposeDetail"].as_str()), (Some("ALERT"), Some("12")));
        assert_eq!(operator["description"], "looked at an alarm concerning you, to handle alarm 12");
        assert_eq!(operator["recipientId"], r7.as_str());
        let flagged = &log["edges"][1]["node"];
        assert_eq!((flagged["decision"].as_str(), flagged["purposeDetail"].as_str()), (Some("GRANTED_FLAGGED"), Some("curious")));

        let data = app.graphql(Some(&officer), LOG, json!({ "id": r7, "filter": { "flagged": true } })).await;
        assert_eq!(data["auditLog"]["totalCount"], 1);
        let data = app.graphql(Some(&officer), LOG, json!({ "id": r7, "filter": { "operation": "alert.read" } })).await;
        assert_eq!(data["auditLog"]["totalCount"], 1);

        let data = app.graphql(Some(&officer), FLAGGED, json!({})).await;
        let flagged = &data["auditEntriesFlagged"];
        assert_eq!(flagged["totalCount"], 2, "Larvik's two, never Bergen's: {flagged}");
        let recipients: Vec<&str> = flagged["edges"].as_array().unwrap().iter().map(|e| e["node"]["recipientId"].as_str().unwrap()).collect();
        assert_eq!(recipients, vec![recipient_global_id(8).0.as_str(), r7.as_str()]);

        let data = app.graphql(Some(&officer), EXPORT, json!({ "id": r7 })).await;
        let export = &data["auditExport"];
        assert_eq!((export["municipality"].as_str(), export["complete"].as_bool()), (Some("Larvik kommune"), Some(true)));
        let entries = export["entries"].as_array().unwrap();
        // 3 accesses, 3 reads of this log by the officer (two filtered), 1 flagged list, and this export.
        assert_eq!(entries.len(), 8, "{export}");
        assert_eq!(entries[1]["who"], "ola.operator");
        assert_eq!(entries[1]["organization"], "Responssenteret");
        assert_eq!(entries[1]["role"], "response-centre operator");
        assert_eq!(entries[2]["flaggedForReview"], true);
        assert_eq!(entries[7]["what"], "exported the log of who has looked at your data");
        let text = export["text"].as_str().unwrap();
        for phrase in [
            "Who has looked at your data",
            "ola.operator (response-centre operator, Responssenteret) looked at an alarm concerning you, to handle alarm 12.",
            "giving the reason: curious — flagged for review",
        ] {
            assert!(text.contains(phrase), "{phrase:?} not in:\n{text}");
        }

        // The same document over REST, for a portal that downloads it; it is logged too.
        let (status, document) = rest_export(&app, Some(&officer), &r7).await;
        assert_eq!(status, 200, "{document}");
        assert_eq!(document["recipientId"], r7.as_str());
        assert_eq!(document["entries"].as_array().unwrap().len(), 9, "{document}");
        assert_eq!(document["entries"][1]["organization"], "Responssenteret");
        assert_eq!(document["entries"][8]["what"], "exported the log of who has looked at your data");
        assert!(document["text"].as_str().unwrap().contains("Who has looked at your data"));

        let report = verify(app.db().read(), &test_keys()).await.unwrap();
        assert!(report.intact(), "{:?}", report.findings);
        let larvik = report.chains.iter().find(|c| c.municipality_id == w.larvik.1).unwrap();
        let oversight = audit_entry::Entity::find()
            .filter(audit_entry::Column::MunicipalityId.eq(w.larvik.1))
            .filter(audit_entry::Column::PurposeKind.eq("oversight"))
            .all(app.db().read()).await.unwrap();
        assert_eq!(oversight.len(), 7, "3 log reads, the flagged list's 2 recipients, 2 exports");
        assert_eq!(larvik.entries, 4 + 7);
        let bergen = report.chains.iter().find(|c| c.municipality_id == w.bergen.1).unwrap();
        assert_eq!(bergen.entries, 1, "Bergen's chain is untouched by Larvik's officer");
    }
}

on_both_backends! {
    /// Another municipality's privacy officer sees another's recipient exactly like a missing
    /// one (null); other roles, another kind of organisation and anonymous callers are refused.
    /// None of it writes anything, not even an oversight entry.
    async fn the_log_is_the_own_municipality_privacy_officers_alone(app) {
        let w = world(&app).await;
        let bergen_officer = app.token(&w.bergen.0, &[Role::PrivacyOfficer]);
        let r8 = recipient_global_id(8).0;
        let missing = recipient_global_id(999_999).0;
        let before = app.fingerprint().await;
        let foreign = app.graphql_raw(Some(&bergen_officer), LOG, json!({ "id": r8 })).await;
        let none = app.graphql_raw(Some(&bergen_officer), LOG, json!({ "id": missing })).await;
        assert_eq!(foreign.1["data"]["auditLog"], Value::Null, "{}", foreign.1);
        // The cost extension differs (the throttle bucket drains); the answer does not.
        assert_eq!(foreign.0, none.0);
        assert_eq!(
            (&foreign.1["data"], &foreign.1["errors"]),
            (&none.1["data"], &none.1["errors"]),
            "another municipality's recipient answers like a missing one"
        );
        let export = app.graphql_raw(Some(&bergen_officer), EXPORT, json!({ "id": r8 })).await;
        assert_eq!(export.1["data"]["auditExport"], Value::Null, "{}", export.1);
        let not_a_recipient = velferd::ids::global_id(velferd::ids::NodeType::Organization, w.larvik.1);
        let wrong_type = app.graphql_raw(Some(&bergen_officer), LOG, json!({ "id": not_a_recipient })).await;
        assert_eq!(wrong_type.1["data"]["auditLog"], Value::Null);
        let larvik_case_worker = app.token(&w.larvik.0, &[Role::CaseWorker, Role::ProcurementOfficer, Role::MunicipalityAdmin, Role::Integration]);
        let centre_number = crate::procurement::org_number(1303);
        let centre_officer = app.token(&centre_number, &[Role::PrivacyOfficer, Role::Operator]);
        let unregistered = app.token(&org_number(1399), &[Role::PrivacyOfficer]);
        for (token, code) in [
            (Some(larvik_case_worker.as_str()), "FORBIDDEN"),
            (Some(centre_officer.as_str()), "FORBIDDEN"),
            (Some(unregistered.as_str()), "FORBIDDEN"),
            (None, "UNAUTHENTICATED"),
        ] {
            for (query, variables) in [(LOG, json!({ "id": r8 })), (FLAGGED, json!({})), (EXPORT, json!({ "id": r8 }))] {
                let (_, body) = app.graphql_raw(token, query, variables).await;
                assert_eq!(first_error_code(&body), code, "{body}");
            }
        }
        for (token, status) in [
            (Some(bergen_officer.as_str()), 404),
            (Some(larvik_case_worker.as_str()), 403),
            (Some(centre_officer.as_str()), 403),
            (Some(unregistered.as_str()), 403),
            (None, 401),
        ] {
            let (got, body) = rest_export(&app, token, &r8).await;
            assert_eq!(got, status, "{body}");
        }
        let (got, body) = rest_export(&app, Some(&bergen_officer), &missing).await;
        assert_eq!((got, body), rest_export(&app, Some(&bergen_officer), &r8).await, "foreign answers like missing");
        before.assert_unchanged(&app.fingerprint().await);
    }
}

on_both_backends! {
    /// What the database alone cannot show — a chain deleted together with its anchor, or
    /// rolled back to an earlier signed state — `verify --expect` finds against an earlier
    /// run's output kept elsewhere.
    async fn verify_against_an_earlier_run_finds_a_chain_removed_with_its_anchor(app) {
        let db = app.db().clone();
        append(&db, 1501, 7, 3).await;
        append(&db, 1502, 7, 3).await;
        append(&db, 1503, 7, 3).await;
        let (code, earlier) = verify_cli(&app, &[]).await;
        assert_eq!(code, 0, "{earlier}");
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("verify-yesterday.txt");
        std::fs::write(&kept, &earlier).unwrap();
        let kept = kept.display().to_string();

        // 1501 grows (fine); 1502 is removed whole, anchor and all; 1503 is rolled back to its
        // first entry with a genuinely signed anchor (as a restored backup would be).
        append(&db, 1501, 7, 1).await;
        sql(&db, "DELETE FROM audit_entry WHERE municipality_id = 1502").await;
        sql(&db, "DELETE FROM audit_anchor WHERE municipality_id = 1503").await;
        sql(&db, "DELETE FROM audit_entry WHERE municipality_id = 1503").await;
        append(&db, 1503, 8, 3).await;
        sql(&db, "DELETE FROM audit_anchor WHERE municipality_id = 1502").await;
        let rewritten = entry(&db, 1503, 3).await;

        let (code, out) = verify_cli(&app, &[]).await;
        assert_eq!(code, 0, "the database alone cannot tell:\n{out}");
        let (code, out) = verify_cli_args(&app, &["--expect", &kept]).await;
        assert_eq!(code, 1, "{out}");
        for line in [
            "municipality 1502, seq 1: removed (the chain had 3 entries at the checkpoint, now 0".to_string(),
            format!("municipality 1503, seq 3 (seq 3, id {}): rewritten", rewritten.id),
        ] {
            assert!(out.contains(&line), "missing {line:?} in:\n{out}");
        }
        assert!(!out.contains("municipality 1501, seq"), "a chain that grew is fine:\n{out}");
        let garbage = dir.path().join("garbage.txt");
        std::fs::write(&garbage, "chain     municipality x: 3 entries, head 00\n").unwrap();
        let (code, out) = verify_cli_args(&app, &["--expect", &garbage.display().to_string()]).await;
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("not a chain line"), "{out}");
    }
}
