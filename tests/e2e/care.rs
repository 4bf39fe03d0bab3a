//! Care operations over real HTTP (issue 13): service recipients, assessments, devices in
//! service and the audit entries every read or change of recipient data writes; who may do and
//! see what; and the migration that turned the free-text `recipientRef` into recipients.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use velferd::audit::model::audit_entry;
use velferd::auth::Role;
use velferd::ids::{NodeType, global_id};

use crate::care_text::{FREE_TEXT_FIELDS, texts_with_a_national_id};
use crate::devices::{DISPENSER, Fleet, active_dispenser, confirmed_call_off, ingest, register_device, sample};
use crate::nodes::NodeSample;
use crate::procurement::org_number;
use crate::rows::org_row;
use crate::support::{LARVIK, TestApp, on_both_backends};

pub const REGISTER: &str =
    "mutation($input: ServiceRecipientRegisterInput!) { serviceRecipientRegister(input: $input) {
    serviceRecipient { id reference careZone status startedOn statusHistory { status effectiveOn subject role } }
    userErrors { field code message } } }";
pub const UPDATE: &str = "mutation($input: ServiceRecipientUpdateInput!) { serviceRecipientUpdate(input: $input) {
    serviceRecipient { id careZone } userErrors { field code message } } }";
pub const RECIPIENT_STATUS: &str = "mutation($input: ServiceRecipientStatusChangeInput!) { serviceRecipientStatusChange(input: $input) {
    serviceRecipient { id status pausedOn endedOn statusHistory { status effectiveOn role } } userErrors { field code message } } }";
pub const ASSESS: &str = "mutation($input: AssessmentCreateInput!) { assessmentCreate(input: $input) {
    assessment { id decision reason decidedOn recordedBy userStory { id code } } userErrors { field code message } } }";
pub const ASSIGN: &str = "mutation($input: DeviceAssignInput!) { deviceAssign(input: $input) {
    device { id status } userErrors { field code message } } }";
pub const DEVICE_STATUS: &str = "mutation($input: DeviceStatusChangeInput!) { deviceStatusChange(input: $input) {
    device { id status } userErrors { field code message } } }";

/// A municipality with a confirmed call-off, a live dispenser adapter, two devices in stock and
/// one recipient; another municipality with a recipient of its own.
pub struct World {
    pub fleet: Fleet,
    pub case_worker: String,
    pub other_case_worker: String,
    pub recipient: String,
    pub other_recipient: String,
    pub user_story: String,
    pub devices: Vec<String>,
}

impl World {
    /// The world's ids for [`crate::care_text::FreeTextField::input`].
    pub fn ids(&self) -> Value {
        json!({ "recipientId": self.recipient, "userStoryId": self.user_story })
    }
}

/// The user story of the framework agreement `call_off` is under.
async fn story_of(app: &TestApp, call_off: i64) -> String {
    use velferd::agreements::model::{call_off, framework_agreement};
    let c = call_off::Entity::find_by_id(call_off).one(app.db().read()).await.unwrap().unwrap();
    let a = framework_agreement::Entity::find_by_id(c.agreement_id).one(app.db().read()).await.unwrap().unwrap();
    global_id(NodeType::UserStory, a.user_story_id)
}

pub async fn register(app: &TestApp, token: &str, input: Value) -> Value {
    app.graphql(Some(token), REGISTER, json!({ "input": input })).await["serviceRecipientRegister"].clone()
}

pub async fn mutate(app: &TestApp, token: &str, query: &str, name: &str, input: Value) -> Value {
    app.graphql(Some(token), query, json!({ "input": input })).await[name].clone()
}

pub async fn world(app: &TestApp) -> World {
    let fleet = Fleet::new(app).await;
    active_dispenser(app, &fleet).await;
    let case_worker = fleet.case_worker_token(app);
    let other_case_worker = app.token(&fleet.other_municipality, &[Role::CaseWorker]);
    let municipality = org_row(app, &fleet.municipality).await;
    let supplier = org_row(app, &fleet.supplier).await;
    let call_off = confirmed_call_off(app, municipality, supplier).await;
    let user_story = story_of(app, call_off).await;
    let mut devices = Vec::new();
    for serial in ["RD-100234", "RD-100235"] {
        let payload = register_device(app, &case_worker, DISPENSER, serial).await;
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        devices.push(payload["device"]["id"].as_str().unwrap().to_string());
    }
    let payload = register(
        app,
        &case_worker,
        json!({ "reference": "LRV-0001", "careZone": "Stavern", "startedOn": "2026-11-01" }),
    )
    .await;
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    let recipient = payload["serviceRecipient"]["id"].as_str().unwrap().to_string();
    let payload = register(app, &other_case_worker, json!({ "reference": "ASK-0001" })).await;
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    let other_recipient = payload["serviceRecipient"]["id"].as_str().unwrap().to_string();
    World { fleet, case_worker, other_case_worker, recipient, other_recipient, user_story, devices }
}

pub async fn grant(app: &TestApp, w: &World, recipient: &str) -> Value {
    mutate(
        app,
        &w.case_worker,
        ASSESS,
        "assessmentCreate",
        json!({ "recipientId": recipient, "userStoryId": w.user_story, "decision": "GRANTED",
            "reason": "Glemmer kveldsdosen; dispenser passer.", "decidedOn": "2026-11-20" }),
    )
    .await
}

/// The [`world`] with its recipient granted the user story and its first device assigned to it.
pub async fn world_with_assigned_device(app: &TestApp) -> World {
    let w = world(app).await;
    assert_eq!(grant(app, &w, &w.recipient).await["userErrors"], json!([]));
    let assigned = mutate(
        app,
        &w.case_worker,
        ASSIGN,
        "deviceAssign",
        json!({ "deviceId": w.devices[0], "recipientId": w.recipient }),
    )
    .await;
    assert_eq!(assigned["userErrors"], json!([]), "{assigned}");
    w
}

/// Audit entries with `operation`, all of them when `None`.
pub async fn audit_count(app: &TestApp, operation: Option<&str>) -> u64 {
    let mut select = audit_entry::Entity::find();
    if let Some(op) = operation {
        select = select.filter(audit_entry::Column::Operation.eq(op));
    }
    select.count(app.db().read()).await.unwrap()
}

fn codes(payload: &Value) -> Vec<String> {
    crate::support::strings(&payload["userErrors"], "/code")
}

on_both_backends! {
    /// Must-show 1 (the recipient's half): a case worker registers a recipient, assesses it
    /// against the user story the municipality called off, takes a delivered device from stock,
    /// assigns and activates it; a missed dose is ingested and the device's `lastSeenAt` is its
    /// newest event; every step is in the device's history and in the audit log, with its
    /// purpose.
    async fn a_case_worker_registers_assesses_and_assigns_a_delivered_device(app) {
        let w = world(&app).await;
        let registered = audit_count(&app, Some("recipient.create")).await;
        assert_eq!(registered, 2, "one entry per registration");
        let data = app
            .graphql(Some(&w.case_worker), "query($id: ID!) { node(id: $id) { ... on Device { status lastSeenAt recipient { id } } } }",
                json!({ "id": w.devices[0] }))
            .await;
        assert_eq!(data["node"], json!({ "status": "IN_STOCK", "lastSeenAt": null, "recipient": null }));

        let assessed = grant(&app, &w, &w.recipient).await;
        assert_eq!(assessed["userErrors"], json!([]), "{assessed}");
        assert_eq!(assessed["assessment"]["decision"], "GRANTED");
        assert_eq!(assessed["assessment"]["userStory"]["id"], w.user_story.as_str());
        let assigned = mutate(&app, &w.case_worker, ASSIGN, "deviceAssign", json!({ "deviceId": w.devices[0], "recipientId": w.recipient })).await;
        assert_eq!(assigned["userErrors"], json!([]), "{assigned}");
        assert_eq!(assigned["device"]["status"], "ASSIGNED");
        let active = mutate(&app, &w.case_worker, DEVICE_STATUS, "deviceStatusChange", json!({ "deviceId": w.devices[0], "status": "ACTIVE" })).await;
        assert_eq!(active["device"]["status"], "ACTIVE", "{active}");

        let (status, reply) = ingest(&app, &w.fleet.integration_token(&app), DISPENSER, "application/json", sample("dispenser-json", "missed-dose.json")).await;
        assert_eq!(status, 200, "{reply}");
        // An older event later does not move it back.
        let older = json!({ "serial": "RD-100234", "events": [{ "id": "e-old", "type": "lid_open", "at": "2026-11-01T08:00:00Z" }] });
        let (status, reply) = ingest(&app, &w.fleet.integration_token(&app), DISPENSER, "application/json", older.to_string().into_bytes()).await;
        assert_eq!(status, 200, "{reply}");

        let before = audit_count(&app, Some("recipient.read")).await;
        let data = app
            .graphql(Some(&w.case_worker), "query($id: ID!) { node(id: $id) { ... on Device { status lastSeenAt
                recipient { reference careZone assessments { nodes { decision reason } } }
                statusHistory { from to role subject } } } }", json!({ "id": w.devices[0] }))
            .await;
        let device = &data["node"];
        assert_eq!(device["lastSeenAt"], "2026-11-22T13:00:00+00:00", "{data}");
        assert_eq!(device["status"], "ACTIVE");
        assert_eq!(device["recipient"]["reference"], "LRV-0001");
        assert_eq!(device["recipient"]["assessments"]["nodes"], json!([{ "decision": "GRANTED", "reason": "Glemmer kveldsdosen; dispenser passer." }]));
        let steps: Vec<(Value, Value)> = device["statusHistory"].as_array().unwrap().iter().map(|s| (s["from"].clone(), s["to"].clone())).collect();
        assert_eq!(steps, [(json!(null), json!("IN_STOCK")), (json!("IN_STOCK"), json!("ASSIGNED")), (json!("ASSIGNED"), json!("ACTIVE"))]);
        assert!(device["statusHistory"].as_array().unwrap().iter().all(|s| s["role"] == "case_worker"), "{data}");
        assert_eq!(audit_count(&app, Some("recipient.read")).await, before + 1, "Device.recipient: one entry");

        // Every change that touched the recipient, with its purpose.
        let entries = audit_entry::Entity::find().all(app.db().read()).await.unwrap();
        let recipient_row = velferd::ids::row_id(&w.recipient, NodeType::ServiceRecipient).unwrap();
        let ops: Vec<(&str, &str)> = entries
            .iter()
            .filter(|e| e.recipient_id == recipient_row && e.operation != "recipient.read" && e.operation != "assessment.read")
            .map(|e| (e.operation.as_str(), e.purpose_kind.as_str()))
            .collect();
        assert_eq!(ops, [("recipient.create", "casework"), ("assessment.create", "casework"), ("device.assign", "casework"), ("device.status_change", "assignment")]);
        assert!(entries.iter().all(|e| e.role == "case_worker" && e.decision == "granted"));
    }
}

on_both_backends! {
    /// Ending a recipient's service returns its devices to stock, each step recorded; the
    /// ended service changes no more, and the device can serve someone else.
    async fn ending_a_service_returns_its_devices_to_stock(app) {
        let w = world(&app).await;
        assert_eq!(grant(&app, &w, &w.recipient).await["userErrors"], json!([]));
        for device in &w.devices {
            let assigned = mutate(&app, &w.case_worker, ASSIGN, "deviceAssign", json!({ "deviceId": device, "recipientId": w.recipient })).await;
            assert_eq!(assigned["userErrors"], json!([]), "{assigned}");
        }
        let paused = mutate(&app, &w.case_worker, RECIPIENT_STATUS, "serviceRecipientStatusChange",
            json!({ "recipientId": w.recipient, "status": "PAUSED", "effectiveOn": "2026-12-01" })).await;
        assert_eq!(paused["serviceRecipient"]["pausedOn"], "2026-12-01", "{paused}");
        let ended = mutate(&app, &w.case_worker, RECIPIENT_STATUS, "serviceRecipientStatusChange",
            json!({ "recipientId": w.recipient, "status": "ENDED", "effectiveOn": "2026-12-05" })).await;
        assert_eq!(ended["userErrors"], json!([]), "{ended}");
        let history: Vec<&str> = ended["serviceRecipient"]["statusHistory"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap()).collect();
        assert_eq!(history, ["ACTIVE", "PAUSED", "ENDED"]);
        assert_eq!(ended["serviceRecipient"]["endedOn"], "2026-12-05");
        for device in &w.devices {
            let data = app.graphql(Some(&w.case_worker), "query($id: ID!) { node(id: $id) { ... on Device { status recipient { id } statusHistory { to } } } }", json!({ "id": device })).await;
            assert_eq!(data["node"]["status"], "IN_STOCK", "{data}");
            assert_eq!(data["node"]["recipient"], Value::Null);
            assert_eq!(data["node"]["statusHistory"].as_array().unwrap().last().unwrap()["to"], "IN_STOCK");
        }
        let active = app.graphql(Some(&w.case_worker), "{ serviceRecipients(status: ACTIVE) { totalCount } ended: serviceRecipients(status: ENDED) { nodes { id } } }", json!({})).await;
        assert_eq!(active["serviceRecipients"]["totalCount"], 0);
        assert_eq!(active["ended"]["nodes"], json!([{ "id": w.recipient }]));
        // The device serves another recipient.
        let second = register(&app, &w.case_worker, json!({ "reference": "LRV-0002" })).await;
        let second = second["serviceRecipient"]["id"].as_str().unwrap().to_string();
        assert_eq!(grant(&app, &w, &second).await["userErrors"], json!([]));
        let assigned = mutate(&app, &w.case_worker, ASSIGN, "deviceAssign", json!({ "deviceId": w.devices[0], "recipientId": second })).await;
        assert_eq!(assigned["device"]["status"], "ASSIGNED", "{assigned}");
    }
}

on_both_backends! {
    /// Every refusal of the care mutations answers a typed error and changes nothing: another
    /// municipality's recipient or device answers like a missing one, a wrong role is refused
    /// before anything is looked up, an undelivered device cannot be taken into service, a
    /// device cannot be assigned without a granted assessment for its user story, the lifecycles
    /// refuse illegal steps, and a national identity number in any free-text field is refused.
    async fn every_care_refusal_changes_nothing(app) {
        let w = world(&app).await;
        let declined = mutate(&app, &w.case_worker, ASSESS, "assessmentCreate",
            json!({ "recipientId": w.recipient, "userStoryId": w.user_story, "decision": "DECLINED", "reason": "Ikke egnet nå." })).await;
        assert_eq!(declined["userErrors"], json!([]), "{declined}");
        let procurement_officer = app.token(&w.fleet.municipality, &[Role::ProcurementOfficer]);
        let supplier = w.fleet.supplier_token(&app);
        let other_story = {
            // A user story only the other municipality has called off.
            let asker = org_row(&app, &w.fleet.other_municipality).await;
            let other_supplier = org_row(&app, &w.fleet.other_supplier).await;
            let call_off = confirmed_call_off(&app, asker, other_supplier).await;
            story_of(&app, call_off).await
        };
        let before_story = app.fingerprint().await;

        let cases: Vec<(&str, &str, &str, Value, &str)> = vec![
            // Another municipality's recipient answers like a missing one.
            ("other municipality: update", UPDATE, "serviceRecipientUpdate", json!({ "recipientId": w.other_recipient, "careZone": "x" }), "NOT_FOUND"),
            ("other municipality: status", RECIPIENT_STATUS, "serviceRecipientStatusChange", json!({ "recipientId": w.other_recipient, "status": "ENDED" }), "NOT_FOUND"),
            ("other municipality: assess", ASSESS, "assessmentCreate", json!({ "recipientId": w.other_recipient, "userStoryId": w.user_story, "decision": "GRANTED", "reason": "r" }), "NOT_FOUND"),
            ("other municipality: assign", ASSIGN, "deviceAssign", json!({ "deviceId": w.devices[0], "recipientId": w.other_recipient }), "NOT_FOUND"),
            ("a story not called off", ASSESS, "assessmentCreate", json!({ "recipientId": w.recipient, "userStoryId": other_story, "decision": "GRANTED", "reason": "r" }), "STORY_NOT_CALLED_OFF"),
            ("assign after a declined assessment", ASSIGN, "deviceAssign", json!({ "deviceId": w.devices[0], "recipientId": w.recipient }), "NO_GRANTED_ASSESSMENT"),
            ("in stock to active", DEVICE_STATUS, "deviceStatusChange", json!({ "deviceId": w.devices[0], "status": "ACTIVE" }), "ILLEGAL_TRANSITION"),
            ("assigned by status change", DEVICE_STATUS, "deviceStatusChange", json!({ "deviceId": w.devices[0], "status": "ASSIGNED" }), "ASSIGN_NAMES_A_RECIPIENT"),
            ("resume an active service", RECIPIENT_STATUS, "serviceRecipientStatusChange", json!({ "recipientId": w.recipient, "status": "ACTIVE" }), "ILLEGAL_TRANSITION"),
            ("a date before the start", RECIPIENT_STATUS, "serviceRecipientStatusChange", json!({ "recipientId": w.recipient, "status": "PAUSED", "effectiveOn": "2000-01-01" }), "BEFORE_START"),
            ("a taken reference", REGISTER, "serviceRecipientRegister", json!({ "reference": "LRV-0001" }), "REFERENCE_TAKEN"),
            ("a recipient id of another type", ASSESS, "assessmentCreate", json!({ "recipientId": w.devices[0], "userStoryId": w.user_story, "decision": "GRANTED", "reason": "r" }), "NOT_FOUND"),
        ];
        for (what, query, name, input, code) in cases {
            let payload = mutate(&app, &w.case_worker, query, name, input).await;
            assert_eq!(codes(&payload), [code], "{what}: {payload}");
            before_story.assert_unchanged(&app.fingerprint().await);
        }
        // The other way round: the other municipality's case worker on this one's device.
        let payload = mutate(&app, &w.other_case_worker, DEVICE_STATUS, "deviceStatusChange", json!({ "deviceId": w.devices[0], "status": "RETIRED" })).await;
        assert_eq!(codes(&payload), ["NOT_FOUND"], "{payload}");
        before_story.assert_unchanged(&app.fingerprint().await);
        // Free text: a national identity number in each field.
        for field in FREE_TEXT_FIELDS {
            let payload = mutate(&app, &w.case_worker, &field.operation(), field.mutation, (field.input)(&w.ids(), "født 010190-12345")).await;
            assert_eq!(codes(&payload), ["NATIONAL_ID_REFUSED"], "{} {}: {payload}", field.mutation, field.field);
            before_story.assert_unchanged(&app.fingerprint().await);
        }
        // An undelivered device is not taken into service.
        let payload = app.graphql(Some(&w.case_worker), "mutation { deviceRegister(input: { product: \"reference-dispenser\", serial: \"RD-404404\" }) { userErrors { code } } }", json!({})).await;
        assert_eq!(payload["deviceRegister"]["userErrors"][0]["code"], "NOT_DELIVERED");
        before_story.assert_unchanged(&app.fingerprint().await);
        // The wrong role, and the wrong kind of organisation: refused before any lookup.
        for token in [&procurement_officer, &supplier] {
            for (query, input) in [
                (REGISTER, json!({ "reference": "x" })),
                (ASSESS, json!({ "recipientId": w.recipient, "userStoryId": w.user_story, "decision": "GRANTED", "reason": "r" })),
                (ASSIGN, json!({ "deviceId": w.devices[0], "recipientId": w.recipient })),
                (DEVICE_STATUS, json!({ "deviceId": w.devices[0], "status": "RETIRED" })),
                (RECIPIENT_STATUS, json!({ "recipientId": w.recipient, "status": "ENDED" })),
                (UPDATE, json!({ "recipientId": w.recipient })),
            ] {
                let (status, body) = app.graphql_raw(Some(token), query, json!({ "input": input })).await;
                assert_eq!((status, crate::support::first_error_code(&body)), (200, "FORBIDDEN"), "{body}");
            }
        }
        before_story.assert_unchanged(&app.fingerprint().await);
        // A retired device is final.
        let retired = mutate(&app, &w.case_worker, DEVICE_STATUS, "deviceStatusChange", json!({ "deviceId": w.devices[1], "status": "RETIRED" })).await;
        assert_eq!(retired["device"]["status"], "RETIRED", "{retired}");
        let after_retire = app.fingerprint().await;
        let payload = mutate(&app, &w.case_worker, DEVICE_STATUS, "deviceStatusChange", json!({ "deviceId": w.devices[1], "status": "IN_STOCK" })).await;
        assert_eq!(codes(&payload), ["ILLEGAL_TRANSITION"], "{payload}");
        after_retire.assert_unchanged(&app.fingerprint().await);
    }
}

on_both_backends! {
    /// Audit (must-show 2's counting half): a list of N recipients writes N entries, one per
    /// recipient; `node` one; a caller who may not read them (another municipality, the
    /// municipality's other roles, a supplier, an admin, an unregistered organisation,
    /// anonymous) gets nothing and writes none.
    async fn each_recipient_served_writes_one_audit_entry_and_a_refused_read_none(app) {
        let w = world(&app).await;
        for n in 2..=4 {
            let payload = register(&app, &w.case_worker, json!({ "reference": format!("LRV-000{n}") })).await;
            assert_eq!(payload["userErrors"], json!([]));
        }
        let before = audit_count(&app, Some("recipient.read")).await;
        let data = app.graphql(Some(&w.case_worker), "{ serviceRecipients(first: 10) { totalCount nodes { reference } } }", json!({})).await;
        assert_eq!(data["serviceRecipients"]["totalCount"], 4);
        assert_eq!(audit_count(&app, Some("recipient.read")).await, before + 4, "N recipients, N entries");
        let data = app.graphql(Some(&w.case_worker), "query($id: ID!) { node(id: $id) { ... on ServiceRecipient { reference } } }", json!({ "id": w.recipient })).await;
        assert_eq!(data["node"]["reference"], "LRV-0001");
        assert_eq!(audit_count(&app, Some("recipient.read")).await, before + 5);

        let unregistered = app.token(&org_number(998), &[Role::CaseWorker]);
        let strangers = [
            w.other_case_worker.clone(),
            app.token(&w.fleet.municipality, &[Role::ProcurementOfficer, Role::PrivacyOfficer, Role::Integration, Role::MunicipalityAdmin]),
            w.fleet.supplier_token(&app),
            app.admin_token(),
            unregistered,
        ];
        let fingerprint = app.fingerprint().await;
        for token in strangers.iter().map(Some).chain([None]) {
            let data = app
                .graphql(token.map(String::as_str), "query($id: ID!, $d: ID!) { serviceRecipients(first: 10) { totalCount nodes { id } }
                    node(id: $id) { id } device: node(id: $d) { ... on Device { recipient { id } statusHistory { recipient { id } } } } }",
                    json!({ "id": w.recipient, "d": w.devices[0] }))
                .await;
            let own = token.is_some_and(|t| *t == strangers[0]);
            assert_eq!(data["serviceRecipients"]["totalCount"], if own { 1 } else { 0 }, "{data}");
            assert_eq!(data["node"], Value::Null, "{data}");
            assert!(data["device"].is_null() || data["device"]["recipient"].is_null(), "{data}");
        }
        // The other municipality's case worker read its own recipient: one entry (and its chain's
        // anchor moved on); nobody else any.
        let after = app.fingerprint().await;
        let changes = fingerprint.changes(&after);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes[0].starts_with("audit_anchor: ") && changes[1].starts_with("audit_entry: "), "{changes:?}");
        assert_eq!(audit_count(&app, Some("recipient.read")).await, before + 6);
    }
}

/// Must-show 5 over HTTP: generated valid fødselsnummer, D- and H-numbers, in every separator
/// style, alone and inside text, in every free-text field of the care mutations: each refused
/// with `NATIONAL_ID_REFUSED`, nothing written.
#[test]
fn a_national_id_in_any_care_free_text_field_is_refused_over_http() {
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let app = runtime.block_on(TestApp::spawn(crate::support::Backend::Sqlite));
    let w = runtime.block_on(world(&app));
    let mut runner = TestRunner::new(Config { cases: 16, failure_persistence: None, ..Config::default() });
    let strategy =
        (texts_with_a_national_id(), proptest::sample::select((0..FREE_TEXT_FIELDS.len()).collect::<Vec<_>>()));
    runner
        .run(&strategy, |((id, text), f)| {
            let field = &FREE_TEXT_FIELDS[f];
            runtime.block_on(async {
                let before = app.fingerprint().await;
                let payload =
                    mutate(&app, &w.case_worker, &field.operation(), field.mutation, (field.input)(&w.ids(), &text))
                        .await;
                let errors = payload["userErrors"].as_array().cloned().unwrap_or_default();
                assert_eq!(errors.len(), 1, "{} {} with {text:?}: {payload}", field.mutation, field.field);
                assert_eq!(errors[0]["code"], "NATIONAL_ID_REFUSED", "{text:?}: {payload}");
                assert_eq!(errors[0]["field"], json!(["input", field.field]));
                assert!(!errors[0]["message"].as_str().unwrap().contains(&id[6..]), "the message repeats the number");
                before.assert_unchanged(&app.fingerprint().await);
            });
            Ok(())
        })
        .unwrap();
    // And every field, once each, whatever the sampling chose.
    for field in FREE_TEXT_FIELDS {
        let payload = runtime.block_on(mutate(
            &app,
            &w.case_worker,
            &field.operation(),
            field.mutation,
            (field.input)(&w.ids(), "D-nummer 41019012345"),
        ));
        assert_eq!(codes(&payload), ["NATIONAL_ID_REFUSED"], "{}.{}", field.mutation, field.field);
    }
    // The server's tasks run on `runtime`: stop it there.
    let _inside = runtime.enter();
    drop(app);
}

on_both_backends! {
    /// Migration 000012: `device.recipient_ref` values stored before it become recipients of the
    /// device's municipality (one per distinct reference), the devices assigned to them; a value
    /// shaped like a national identity number is quarantined, never copied into a recipient, and
    /// reported to the municipality's privacy officer (where, not what); the column is gone. Down
    /// puts every reference back.
    async fn recipient_refs_stored_before_the_care_migration_become_recipients_or_quarantine(app) {
        use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
        use sea_orm::{ConnectionTrait, Statement};
        use velferd_migration::{Migrator, MigratorTrait};

        let fleet = Fleet::new(&app).await;
        active_dispenser(&app, &fleet).await;
        let case_worker = fleet.case_worker_token(&app);
        let serials = ["RD-100234", "RD-100235", "RD-100236", "RD-100237"];
        for serial in serials {
            assert_eq!(register_device(&app, &case_worker, DISPENSER, serial).await["userErrors"], json!([]));
        }
        let db = app.db().write();
        let backend = db.get_database_backend();
        crate::devices::down_to(db, "m20261207_000011_audit_log").await.expect("down to 000011");
        let refs = ["case-2026-0042", " case-2026-0042 ", "fnr 010190 12345", ""];
        for (serial, value) in serials.iter().zip(refs) {
            let update = Query::update()
                .table(Alias::new("device"))
                .value(Alias::new("recipient_ref"), value)
                .and_where(Expr::col(Alias::new("serial")).eq(*serial))
                .to_owned();
            db.execute_raw(backend.build(&update)).await.unwrap();
        }
        Migrator::up(db, None).await.expect("up to the latest");

        let columns = match backend {
            sea_orm::DbBackend::Sqlite => "SELECT name AS c FROM pragma_table_info('device')",
            _ => "SELECT CAST(column_name AS TEXT) AS c FROM information_schema.columns WHERE table_name = 'device' AND table_schema = current_schema()",
        };
        let columns: Vec<String> = db.query_all_raw(Statement::from_string(backend, columns)).await.unwrap().iter().map(|r| r.try_get("", "c").unwrap()).collect();
        assert!(!columns.contains(&"recipient_ref".to_string()) && columns.contains(&"recipient_id".to_string()), "{columns:?}");

        let data = app.graphql(Some(&case_worker), "{ serviceRecipients { nodes { reference status } }
            devices(first: 10) { nodes { serial status recipient { reference } } } }", json!({})).await;
        assert_eq!(data["serviceRecipients"]["nodes"], json!([{ "reference": "case-2026-0042", "status": "ACTIVE" }]), "{data}");
        let devices: Vec<(String, Value, Value)> = data["devices"]["nodes"].as_array().unwrap().iter()
            .map(|d| (d["serial"].as_str().unwrap().to_string(), d["status"].clone(), d["recipient"]["reference"].clone())).collect();
        assert_eq!(devices, [
            ("RD-100234".to_string(), json!("ASSIGNED"), json!("case-2026-0042")),
            ("RD-100235".to_string(), json!("ASSIGNED"), json!("case-2026-0042")),
            ("RD-100236".to_string(), json!("IN_STOCK"), Value::Null),
            ("RD-100237".to_string(), json!("IN_STOCK"), Value::Null),
        ]);
        let recipients: Vec<String> = velferd::care::model::service_recipient::Entity::find().all(db).await.unwrap().into_iter().map(|r| r.reference).collect();
        assert!(recipients.iter().all(|r| !r.contains("12345")), "a national id copied into a recipient: {recipients:?}");

        let quarantine = "{ quarantinedValues { source deviceSerial foundAt } }";
        let privacy = app.token(&fleet.municipality, &[Role::PrivacyOfficer]);
        let data = app.graphql(Some(&privacy), quarantine, json!({})).await;
        let found = data["quarantinedValues"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{data}");
        assert_eq!((found[0]["source"].as_str(), found[0]["deviceSerial"].as_str()), (Some("device.recipient_ref"), Some("RD-100236")));
        assert!(!data.to_string().contains("12345"), "the value itself is never served: {data}");
        for stranger in [case_worker.clone(), app.token(&fleet.other_municipality, &[Role::PrivacyOfficer]), app.admin_token()] {
            let data = app.graphql(Some(&stranger), quarantine, json!({})).await;
            assert_eq!(data["quarantinedValues"], json!([]), "{data}");
        }

        // Down restores every reference, the quarantined one too; up again is the same.
        crate::devices::down_to(db, "m20261207_000011_audit_log").await.expect("down to 000011");
        let rows = db.query_all_raw(Statement::from_string(backend, "SELECT serial, recipient_ref FROM device ORDER BY serial")).await.unwrap();
        let restored: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.try_get("", "serial").unwrap(), r.try_get("", "recipient_ref").unwrap())).collect();
        assert_eq!(restored, [
            ("RD-100234".to_string(), Some("case-2026-0042".to_string())),
            ("RD-100235".to_string(), Some("case-2026-0042".to_string())),
            ("RD-100236".to_string(), Some("fnr 010190 12345".to_string())),
            ("RD-100237".to_string(), None),
        ]);
        Migrator::up(db, None).await.expect("up again");
    }
}

on_both_backends! {
    /// Retention (docs/care.md): an ended recipient's data is kept for
    /// `VELFERD_CARE_RETENTION_DAYS` after the end date, then the sweep erases the recipient, its
    /// status history and its assessments; the audit log and the device's history stay, naming
    /// the recipient by its row id only. Recipients still in service are untouched.
    async fn an_ended_recipients_data_is_erased_after_its_retention_and_the_audit_log_stays(app) {
        use velferd::care::model::{assessment, recipient_status_change, service_recipient};
        use velferd::devices::model::device_status_change;
        let w = world_with_assigned_device(&app).await;
        let ended = mutate(&app, &w.case_worker, RECIPIENT_STATUS, "serviceRecipientStatusChange",
            json!({ "recipientId": w.recipient, "status": "ENDED", "effectiveOn": "2026-11-15" })).await;
        assert_eq!(ended["userErrors"], json!([]), "{ended}");
        let row = velferd::ids::row_id(&w.recipient, NodeType::ServiceRecipient).unwrap();
        let entries = audit_entry::Entity::find().filter(audit_entry::Column::RecipientId.eq(row)).count(app.db().read()).await.unwrap();
        assert!(entries >= 5, "create, assess, assign, end, return: {entries}");

        // Within the retention period nothing is erased.
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(velferd::care::rules::erase_ended(app.db().write(), day(14)).await.unwrap(), 0);

        // The server's sweep, with no days of retention, erases it when it starts.
        let app = app.respawn_with(&[("VELFERD_CARE_RETENTION_DAYS", "0")]).await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while service_recipient::Entity::find_by_id(row).one(app.db().read()).await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "the sweep never erased the ended recipient");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let db = app.db().read();
        assert_eq!(assessment::Entity::find().filter(assessment::Column::RecipientId.eq(row)).count(db).await.unwrap(), 0);
        assert_eq!(recipient_status_change::Entity::find().filter(recipient_status_change::Column::RecipientId.eq(row)).count(db).await.unwrap(), 0);
        assert_eq!(audit_entry::Entity::find().filter(audit_entry::Column::RecipientId.eq(row)).count(db).await.unwrap(), entries, "the audit log stays whole");
        let history = device_status_change::Entity::find().filter(device_status_change::Column::RecipientId.eq(row)).count(db).await.unwrap();
        assert_eq!(history, 2, "assigned, then back in stock");
        let data = app.graphql(Some(&w.case_worker), "query($id: ID!, $d: ID!) { node(id: $id) { id } device: node(id: $d) { ... on Device { status statusHistory { to recipient { id } } } } }",
            json!({ "id": w.recipient, "d": w.devices[0] })).await;
        assert_eq!(data["node"], Value::Null);
        assert_eq!(data["device"]["status"], "IN_STOCK");
        assert!(data["device"]["statusHistory"].as_array().unwrap().iter().all(|s| s["recipient"].is_null()), "{data}");
        // The other municipality's recipient, still in service, stays.
        let data = app.graphql(Some(&w.other_case_worker), "{ serviceRecipients { totalCount } }", json!({})).await;
        assert_eq!(data["serviceRecipients"]["totalCount"], 1);
    }
}

/// For `nodes.rs`: a recipient and an assessment of the demo's Larvik, as its case worker sees
/// them.
pub async fn node_samples(app: &TestApp) -> Vec<NodeSample> {
    let token = app.token(LARVIK, &[Role::CaseWorker]);
    let data = app
        .graphql(
            Some(&token),
            "{ serviceRecipients(first: 1) { nodes { id assessments(first: 1) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    let recipient = &data["serviceRecipients"]["nodes"][0];
    vec![
        NodeSample::new("ServiceRecipient", &recipient["id"], &token),
        NodeSample::new("Assessment", &recipient["assessments"]["nodes"][0]["id"], &token),
    ]
}

/// What a console asks of each live event, with the recipient of the device it came from.
const LIVE_WITH_RECIPIENT: &str = "subscription { deviceEventReceived {
    sequence event { supplierEventId device { serial recipient { reference } } } } }";

on_both_backends! {
    /// Subscribers that ask the same of a live event share its resolution, never what one
    /// caller must make for itself: two case workers of the municipality, with the same
    /// subscription, each get the device's recipient and each read is in the audit log under
    /// their own subject, once per event; the supplier, asking the same, gets the event without
    /// the recipient; a case worker who does not ask for the recipient records nothing.
    async fn live_subscribers_share_deliveries_but_every_recipient_read_is_audited_for_its_reader(app) {
        use crate::support::{graphql_socket, next_text, subscribe};
        let w = world_with_assigned_device(&app).await;

        let readers = ["case-worker-a", "case-worker-b"];
        let mut sockets = Vec::new();
        for subject in readers {
            let mut ws = graphql_socket(&app, Some(&app.token_as(subject, &w.fleet.municipality, &[Role::CaseWorker]))).await;
            subscribe(&mut ws, "live", LIVE_WITH_RECIPIENT, json!({})).await;
            sockets.push(ws);
        }
        let mut supplier = graphql_socket(&app, Some(&w.fleet.supplier_token(&app))).await;
        subscribe(&mut supplier, "live", LIVE_WITH_RECIPIENT, json!({})).await;
        let without = "subscription { deviceEventReceived { sequence event { supplierEventId device { serial } } } }";
        let mut unasked = graphql_socket(&app, Some(&app.token_as("case-worker-c", &w.fleet.municipality, &[Role::CaseWorker]))).await;
        subscribe(&mut unasked, "live", without, json!({})).await;

        let before = audit_count(&app, Some("recipient.read")).await;
        let (status, reply) = ingest(&app, &w.fleet.integration_token(&app), DISPENSER, "application/json", sample("dispenser-json", "missed-dose.json")).await;
        assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");

        let event = |message: Value| {
            assert_eq!(message["type"], "next", "{message}");
            assert_eq!(message["payload"].get("errors"), None, "{message}");
            message["payload"]["data"]["deviceEventReceived"]["event"].clone()
        };
        for _ in 0..2 {
            for ws in &mut sockets {
                let seen = event(next_text(ws).await);
                assert_eq!(seen["device"], json!({ "serial": "RD-100234", "recipient": { "reference": "LRV-0001" } }), "{seen}");
            }
            let seen = event(next_text(&mut supplier).await);
            assert_eq!(seen["device"], json!({ "serial": "RD-100234", "recipient": null }), "{seen}");
            let seen = event(next_text(&mut unasked).await);
            assert_eq!(seen["device"], json!({ "serial": "RD-100234" }), "{seen}");
        }

        // Each reader's reads are its own entries: two events each.
        let reads = audit_entry::Entity::find()
            .filter(audit_entry::Column::Operation.eq("recipient.read"))
            .all(app.db().read())
            .await
            .unwrap();
        assert_eq!(reads.len() as u64, before + 4, "two readers, two events");
        for subject in readers {
            assert_eq!(reads.iter().filter(|e| e.subject == subject).count(), 2, "{subject}: {reads:?}");
        }
        assert!(reads.iter().all(|e| e.subject != "case-worker-c"), "{reads:?}");
    }
}
