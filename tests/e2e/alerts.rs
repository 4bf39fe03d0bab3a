//! Alerts over real HTTP: raised from what the reference adapters ingest, joined, cancelled and
//! closed by the device; the response centre's workflow with who and when; service agreements
//! deciding which centre sees what; escalation and offline detection by the background sweep,
//! exactly once across a restart and a second instance; live alerts over WebSocket.

use std::time::Duration;

use chrono::{Days, Utc};
use serde_json::{Value, json};
use velferd::auth::Role;
use velferd::ids::{NodeType, global_id};

use crate::devices::{ALARM, DISPENSER, Fleet, ingest, live_reference_adapters, sample};
use crate::nodes::NodeSample;
use crate::procurement::org_number;
use crate::rows::org_row;
use crate::support::{
    Backend, MUNICIPALITY_ORG, Options, SUPPLIER_ORG, TestApp, first_error_code, graphql_socket, next_text,
    on_both_backends, subscribe,
};

/// The alarm unit the recipient `tm-0042` has.
const UNIT: &str = "SA-7734001";
const RECIPIENT: &str = "tm-0042";

/// A device fleet with live reference adapters (the municipality's devices), a response centre
/// serving the municipality since yesterday, another serving nobody, and the recipient
/// `tm-0042` holding the alarm unit `SA-7734001`.
pub struct Centre {
    pub fleet: Fleet,
    pub centre: String,
    pub centre_id: String,
    pub other_centre: String,
    pub other_centre_id: String,
    pub municipality_id: String,
}

impl Centre {
    pub async fn new(app: &TestApp) -> Centre {
        let fleet = Fleet::new(app).await;
        live_reference_adapters(app, &fleet).await;
        let (centre, other_centre) = (org_number(911), org_number(912));
        let mut ids = Vec::new();
        for (name, number) in [("Responssenter Vest", &centre), ("Responssenter Nord", &other_centre)] {
            ids.push(
                app.create_organization(json!({ "kind": "RESPONSE_CENTRE", "name": name, "orgNumber": number })).await,
            );
        }
        let [centre_id, other_centre_id] = ids.try_into().unwrap();
        let municipality_id = global_id(NodeType::Organization, org_row(app, MUNICIPALITY_ORG).await);
        let world = Centre { fleet, centre, centre_id, other_centre, other_centre_id, municipality_id };
        let data = agree(app, &world.officer(app), &world.centre_id, days(-1), days(365), None).await;
        assert_eq!(data["userErrors"], json!([]), "{data}");
        assign_recipient(app, UNIT, RECIPIENT).await;
        world
    }

    pub fn operator(&self, app: &TestApp) -> String {
        app.token(&self.centre, &[Role::Operator])
    }

    pub fn other_operator(&self, app: &TestApp) -> String {
        app.token(&self.other_centre, &[Role::Operator])
    }

    pub fn case_worker(&self, app: &TestApp) -> String {
        app.token(MUNICIPALITY_ORG, &[Role::CaseWorker])
    }

    pub fn responder(&self, app: &TestApp) -> String {
        app.token(MUNICIPALITY_ORG, &[Role::Responder])
    }

    pub fn officer(&self, app: &TestApp) -> String {
        app.token(MUNICIPALITY_ORG, &[Role::ProcurementOfficer])
    }

    pub fn municipality_admin(&self, app: &TestApp) -> String {
        app.token(MUNICIPALITY_ORG, &[Role::MunicipalityAdmin])
    }
}

/// Today plus `n` days.
fn days(n: i64) -> String {
    let today = Utc::now().date_naive();
    let day = if n >= 0 { today + Days::new(n as u64) } else { today - Days::new((-n) as u64) };
    day.to_string()
}

const AGREE: &str = "mutation($input: ServiceAgreementCreateInput!) { serviceAgreementCreate(input: $input) {
    serviceAgreement { id inForce validFrom validTo responseCentre { name } municipality { name } }
    userErrors { field code message } } }";

/// `serviceAgreementCreate` as `token`; its payload.
pub async fn agree(
    app: &TestApp,
    token: &str,
    centre: &str,
    from: String,
    to: String,
    call_off: Option<&str>,
) -> Value {
    let input = json!({ "responseCentreId": centre, "validFrom": from, "validTo": to, "callOffId": call_off });
    app.graphql(Some(token), AGREE, json!({ "input": input })).await["serviceAgreementCreate"].clone()
}

/// Registers the recipient `reference` of the device's municipality and assigns the device to
/// it, straight in the database (the care area's mutations do this over the API).
pub async fn assign_recipient(app: &TestApp, serial: &str, reference: &str) {
    use sea_orm::{ActiveModelTrait, Set};
    use velferd::devices::model::device;
    let d = crate::rows::device(app, serial).await;
    let db = app.db().write();
    let recipient =
        crate::rows::recipient(db, d.municipality_id, reference, Utc::now().date_naive(), Utc::now().fixed_offset())
            .await;
    let mut d: device::ActiveModel = d.into();
    d.recipient_id = Set(Some(recipient.id));
    d.update(db).await.unwrap();
}

/// A SCAIP `<mrq>` from alarm unit `unit`.
fn scaip(reference: &str, unit: &str, mty: &str, stc: &str) -> Vec<u8> {
    format!(
        "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>{unit}</cid><dty>005</dty><mty>{mty}</mty><stc>{stc}</stc><lco>010</lco></mrq>"
    )
    .into_bytes()
}

/// The alarm unit `unit` sends one message; it must be accepted (or a duplicate).
async fn alarm(app: &TestApp, world: &Centre, reference: &str, unit: &str, mty: &str, stc: &str) -> Value {
    let token = world.fleet.integration_token(app);
    let (status, reply) = ingest(app, &token, ALARM, "application/xml", scaip(reference, unit, mty, stc)).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

const QUEUE: &str = "query($filter: AlertFilter) { alerts(first: 50, filter: $filter) { totalCount nodes {
    id kind severity status outcome eventCount deviceSerial recipientReference vkp { system code }
    escalations escalatedTo { name } responder { name } device { serial }
    steps { kind vkp { code } note outcome subject role organization { name } at } } } }";

/// The alerts `token` sees, in queue order.
async fn queue(app: &TestApp, token: &str, open: Option<bool>) -> Vec<Value> {
    let data = app.graphql(Some(token), QUEUE, json!({ "filter": { "open": open } })).await;
    data["alerts"]["nodes"].as_array().unwrap_or_else(|| panic!("{data}")).clone()
}

/// The alerts `token` sees, few fields, cheap enough to poll.
async fn glance(app: &TestApp, token: &str, open: Option<bool>) -> Vec<Value> {
    let query =
        "query($filter: AlertFilter) { alerts(first: 10, filter: $filter) { nodes { id kind status escalations } } }";
    let data = app.graphql(Some(token), query, json!({ "filter": { "open": open } })).await;
    data["alerts"]["nodes"].as_array().unwrap_or_else(|| panic!("{data}")).clone()
}

/// `kind serial status count`, one line per alert `token` sees.
async fn lines(app: &TestApp, token: &str) -> Vec<String> {
    queue(app, token, None)
        .await
        .iter()
        .map(|a| format!("{} {} {} {}", a["kind"].as_str().unwrap(), a["deviceSerial"], a["status"], a["eventCount"]))
        .collect()
}

const ACK: &str = "mutation($id: ID!) { alertAcknowledge(input: { alertId: $id }) { alert { id status } userErrors { field code message } } }";
const HAND: &str = "mutation($input: AlertHandOverInput!) { alertHandOver(input: $input) { alert { id status responder { name } } userErrors { field code message } } }";
const ACCEPT: &str = "mutation($id: ID!) { alertAccept(input: { alertId: $id }) { alert { id status } userErrors { field code message } } }";
const RESOLVE: &str = "mutation($input: AlertResolveInput!) { alertResolve(input: $input) { alert { id status outcome } userErrors { field code message } } }";
const NOTE: &str = "mutation($input: AlertNoteAddInput!) { alertNoteAdd(input: $input) { alert { id } userErrors { field code message } } }";
const ESCALATE: &str = "mutation($input: AlertEscalationSetInput!) { alertEscalationSet(input: $input) { escalation { severity acknowledgeWithinSeconds acceptWithinSeconds nextLine { name } } userErrors { field code message } } }";
const MONITOR: &str = "mutation($input: DeviceProductMonitoringSetInput!) { deviceProductMonitoringSet(input: $input) { monitoring { product { slug } heartbeatIntervalSeconds testIntervalSeconds } userErrors { field code message } } }";

/// The one payload of a mutation's answer (its only root field).
fn payload(data: &Value) -> &Value {
    data.as_object().and_then(|o| o.values().next()).unwrap_or_else(|| panic!("a payload: {data}"))
}

/// Runs `query` as `token`, which must be refused; the database must be unchanged. Answers the
/// code: the first user error's, or the top-level error's.
async fn refused(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> String {
    let before = app.fingerprint().await;
    let (status, body) = app.graphql_raw(token, query, variables).await;
    let after = app.fingerprint().await;
    before.assert_unchanged(&after);
    assert_eq!(status, 200, "{body}");
    if body.get("errors").is_some() {
        return first_error_code(&body).to_string();
    }
    let errors = &payload(&body["data"])["userErrors"];
    errors[0]["code"].as_str().unwrap_or_else(|| panic!("refused: {body}")).to_string()
}

/// Runs a mutation that must succeed; its payload.
async fn done(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let data = app.graphql(Some(token), query, variables).await;
    let payload = payload(&data).clone();
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    payload
}

/// The one open alert of `kind` `token` sees.
async fn open_alert(app: &TestApp, token: &str, kind: &str) -> Value {
    let open: Vec<Value> = queue(app, token, Some(true)).await.into_iter().filter(|a| a["kind"] == kind).collect();
    assert_eq!(open.len(), 1, "{open:?}");
    open[0].clone()
}

on_both_backends! {
    /// One event raises at most one alert; a duplicate raises nothing, repeated presses join the
    /// open alert, a cancel at the device closes it, and information never raises. The queue is
    /// ordered by severity, then age.
    async fn events_raise_join_and_close_alerts_by_the_rule_table(app) {
        let world = Centre::new(&app).await;
        let operator = world.operator(&app);
        alarm(&app, &world, "A-1", UNIT, "ME", "001").await;
        let first = open_alert(&app, &operator, "alarm-button").await;
        assert_eq!(
            (&first["severity"], &first["status"], &first["eventCount"], &first["recipientReference"]),
            (&json!("CRITICAL"), &json!("RAISED"), &json!(1), &json!(RECIPIENT))
        );
        assert_eq!(first["vkp"], json!({ "system": "http://ehelse.no/fhir/CodeSystem/vkp-alert-code-v090", "code": "4.13" }));
        assert_eq!(first["steps"][0]["kind"], "RAISED");
        assert_eq!(first["steps"][0]["vkp"]["code"], "0");
        assert_eq!(first["steps"][0]["subject"], "velferd");
        assert_eq!(first["device"], Value::Null, "the device is the municipality's to see");

        // The same message again: a duplicate event, no new alert and no join.
        let reply = alarm(&app, &world, "A-1", UNIT, "ME", "001").await;
        assert_eq!(reply["duplicate"], 1, "{reply}");
        assert_eq!(lines(&app, &operator).await, ["alarm-button \"SA-7734001\" \"RAISED\" 1"]);
        // Two more presses join it.
        alarm(&app, &world, "A-2", UNIT, "ME", "001").await;
        alarm(&app, &world, "A-3", UNIT, "ME", "001").await;
        assert_eq!(lines(&app, &operator).await, ["alarm-button \"SA-7734001\" \"RAISED\" 3"]);
        // Information raises nothing: a heartbeat, a test transmission, low battery (moderate).
        alarm(&app, &world, "A-4", UNIT, "PI", "000").await;
        alarm(&app, &world, "A-5", UNIT, "IN", "100").await;
        alarm(&app, &world, "A-6", UNIT, "IN", "110").await;
        assert_eq!(lines(&app, &operator).await.len(), 1);

        // Cancelled at the device: closed as such, with Velferd's step.
        alarm(&app, &world, "A-7", UNIT, "RE", "000").await;
        let closed = &queue(&app, &operator, Some(false)).await[0];
        assert_eq!((&closed["status"], &closed["outcome"]), (&json!("RESOLVED"), &json!("CANCELLED_BY_DEVICE")));
        let last = closed["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((&last["kind"], &last["vkp"]["code"], &last["subject"]), (&json!("RESOLVED"), &json!("3"), &json!("velferd")));

        // A new press after the cancel is a new alert; a missed dose (serious) sorts after it,
        // a fall (critical, newer) between them.
        alarm(&app, &world, "A-8", UNIT, "ME", "001").await;
        let (status, _) = ingest(
            &app,
            &world.fleet.integration_token(&app),
            DISPENSER,
            "application/json",
            sample("dispenser-json", "missed-dose.json"),
        )
        .await;
        assert_eq!(status, 200);
        alarm(&app, &world, "A-9", "SA-7734002", "ME", "010").await;
        let open: Vec<String> = queue(&app, &operator, Some(true))
            .await
            .iter()
            .map(|a| format!("{} {}", a["severity"].as_str().unwrap(), a["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(open, ["CRITICAL alarm-button", "CRITICAL fall", "SERIOUS dose-missed"]);
    }
}

/// The audit entries about the recipient of `alert` (a global id), as `(operation, role)`.
async fn audited(app: &TestApp, alert: &str) -> Vec<(String, String)> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    use velferd::audit::model::audit_entry;
    let row = velferd::ids::row_id(alert, NodeType::Alert).unwrap();
    audit_entry::Entity::find()
        .filter(audit_entry::Column::ObjectType.eq("Alert"))
        .filter(audit_entry::Column::ObjectId.eq(row))
        .order_by_asc(audit_entry::Column::Id)
        .all(app.db().read())
        .await
        .unwrap()
        .into_iter()
        .inspect(|e| assert_eq!((e.purpose_kind.as_str(), e.purpose.as_str()), ("alert", row.to_string().as_str())))
        .map(|e| (e.operation, e.role))
        .collect()
}

on_both_backends! {
    /// The response centre acknowledges, hands over to the municipality's home care, whose
    /// responder accepts and resolves; every step keeps its VKP code, time, subject,
    /// organisation and role, and every step that touched the recipient is audited.
    async fn the_workflow_keeps_every_step_with_who_and_when(app) {
        let world = Centre::new(&app).await;
        let (operator, responder) = (world.operator(&app), world.responder(&app));
        alarm(&app, &world, "W-1", UNIT, "ME", "010").await;
        let id = open_alert(&app, &operator, "fall").await["id"].as_str().unwrap().to_string();
        assert_eq!(queue(&app, &responder, None).await, Vec::<Value>::new(), "not handed over yet");

        let acked = done(&app, &operator, ACK, json!({ "id": id })).await;
        assert_eq!(acked["alert"]["status"], "ACKNOWLEDGED");
        let note = json!({ "alertId": id, "kind": "CONVERSATION", "text": "Ringte bruker, svarer ikke" });
        done(&app, &operator, NOTE, json!({ "input": note })).await;
        let hand = json!({ "alertId": id, "responderId": world.municipality_id, "note": "Nøkkel i nøkkelboks" });
        let handed = done(&app, &operator, HAND, json!({ "input": hand })).await;
        assert_eq!(handed["alert"]["responder"]["name"], "Larvik kommune");
        // Now the municipality's responder sees it, and accepts it.
        assert_eq!(queue(&app, &responder, Some(true)).await.len(), 1);
        done(&app, &responder, ACCEPT, json!({ "id": id })).await;
        let cause = json!({ "alertId": id, "kind": "CAUSE", "text": "Falt i gangen, ikke skadet" });
        done(&app, &responder, NOTE, json!({ "input": cause })).await;
        let resolve = json!({ "alertId": id, "outcome": "VISIT", "note": "Hjulpet opp, tilsyn i kveld" });
        let resolved = done(&app, &responder, RESOLVE, json!({ "input": resolve })).await;
        assert_eq!((&resolved["alert"]["status"], &resolved["alert"]["outcome"]), (&json!("RESOLVED"), &json!("VISIT")));

        let alert = queue(&app, &world.case_worker(&app), Some(false)).await.remove(0);
        let steps: Vec<String> = alert["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{} {} {} {} {}",
                    s["kind"].as_str().unwrap(),
                    s["vkp"]["code"].as_str().unwrap(),
                    s["subject"].as_str().unwrap(),
                    s["organization"]["name"].as_str().unwrap_or("-"),
                    s["role"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                "RAISED 0 velferd - -",
                "ACKNOWLEDGED 1 test-user Responssenter Vest OPERATOR",
                "NOTE_CONVERSATION 8 test-user Responssenter Vest OPERATOR",
                "HANDED_TO_RESPONDER 4 test-user Responssenter Vest OPERATOR",
                "RESPONDER_ACCEPTED 5 test-user Larvik kommune RESPONDER",
                "NOTE_CAUSE 6 test-user Larvik kommune RESPONDER",
                "RESOLVED 3 test-user Larvik kommune RESPONDER",
            ]
        );
        let notes: Vec<&str> = alert["steps"].as_array().unwrap().iter().filter_map(|s| s["note"].as_str()).collect();
        assert_eq!(
            notes,
            [
                "Ringte bruker, svarer ikke",
                "to Larvik kommune: Nøkkel i nøkkelboks",
                "Falt i gangen, ikke skadet",
                "Hjulpet opp, tilsyn i kveld",
            ]
        );
        let times: Vec<&str> = alert["steps"].as_array().unwrap().iter().map(|s| s["at"].as_str().unwrap()).collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "steps are kept in the order they were taken");

        // Every change, and every read, of the alert naming the recipient is in the audit log
        // with the alert as its purpose.
        let operations: Vec<String> = audited(&app, &id).await.into_iter().map(|(op, role)| format!("{op} {role}")).collect();
        for expected in [
            "alert.acknowledge operator",
            "alert.note operator",
            "alert.hand_over operator",
            "alert.accept responder",
            "alert.note responder",
            "alert.resolve responder",
            "alert.read case_worker",
        ] {
            assert!(operations.iter().any(|o| o == expected), "{expected} not in {operations:?}");
        }
    }
}

on_both_backends! {
    /// Every refused step changes nothing: an illegal transition, the wrong role, a hand-over to
    /// an organisation not serving the municipality, an outcome only Velferd sets, a national
    /// identity number in any free text, and every caller who may not see the alert (answered
    /// like a missing one).
    async fn every_refused_step_changes_nothing(app) {
        let world = Centre::new(&app).await;
        let (operator, responder, case_worker) = (world.operator(&app), world.responder(&app), world.case_worker(&app));
        alarm(&app, &world, "R-1", UNIT, "ME", "001").await;
        let id = open_alert(&app, &operator, "alarm-button").await["id"].as_str().unwrap().to_string();
        let resolve = |outcome: &str, note: &str| json!({ "input": { "alertId": id, "outcome": outcome, "note": note } });
        let hand = |to: &str, note: &str| json!({ "input": { "alertId": id, "responderId": to, "note": note } });
        let note = |text: &str| json!({ "input": { "alertId": id, "kind": "MEASURE", "text": text } });
        let national_ids = ["12345678901", "Bruker 010203 12345 ringte", "fnr:010203-12345"];

        // Raised: not yet handed over, resolved or noted.
        assert_eq!(refused(&app, Some(&operator), HAND, hand(&world.municipality_id, "x")).await, "ILLEGAL_ALERT_TRANSITION");
        assert_eq!(refused(&app, Some(&operator), RESOLVE, resolve("VISIT", "x")).await, "ILLEGAL_ALERT_TRANSITION");
        assert_eq!(refused(&app, Some(&operator), NOTE, note("x")).await, "ILLEGAL_ALERT_TRANSITION");
        // Who may not see it: answered like a missing alert, or refused for the role.
        let missing = global_id(NodeType::Alert, 987_654);
        assert_eq!(refused(&app, Some(&operator), ACK, json!({ "id": missing })).await, "NOT_FOUND");
        assert_eq!(refused(&app, Some(&operator), ACK, json!({ "id": "garbage" })).await, "NOT_FOUND");
        assert_eq!(refused(&app, Some(&world.other_operator(&app)), ACK, json!({ "id": id })).await, "NOT_FOUND");
        let other_case_worker = app.token(&world.fleet.other_municipality, &[Role::CaseWorker]);
        assert_eq!(refused(&app, Some(&other_case_worker), ACK, json!({ "id": id })).await, "NOT_FOUND");
        assert_eq!(refused(&app, Some(&responder), ACCEPT, json!({ "id": id })).await, "NOT_FOUND");
        for token in [
            app.token(SUPPLIER_ORG, &[Role::Supplier]),
            app.token(MUNICIPALITY_ORG, &[Role::PrivacyOfficer]),
            app.token(&org_number(913), &[Role::Operator]),
            app.admin_token(),
        ] {
            assert_eq!(refused(&app, Some(&token), ACK, json!({ "id": id })).await, "FORBIDDEN");
        }
        assert_eq!(refused(&app, None, ACK, json!({ "id": id })).await, "UNAUTHENTICATED");
        assert_eq!(refused(&app, Some(&operator), ACCEPT, json!({ "id": id })).await, "FORBIDDEN");

        done(&app, &operator, ACK, json!({ "id": id })).await;
        assert_eq!(refused(&app, Some(&case_worker), ACK, json!({ "id": id })).await, "ILLEGAL_ALERT_TRANSITION");
        // Hand-overs only to the municipality or a centre serving it today.
        assert_eq!(
            refused(&app, Some(&operator), HAND, hand(&world.other_centre_id, "x")).await,
            "RESPONDER_NOT_SERVING"
        );
        let supplier_id = global_id(NodeType::Organization, org_row(&app, SUPPLIER_ORG).await);
        assert_eq!(refused(&app, Some(&operator), HAND, hand(&supplier_id, "x")).await, "RESPONDER_NOT_SERVING");
        assert_eq!(refused(&app, Some(&operator), HAND, hand(&missing, "x")).await, "NOT_FOUND");
        assert_eq!(refused(&app, Some(&operator), RESOLVE, resolve("CANCELLED_BY_DEVICE", "x")).await, "OUTCOME_RESERVED");
        assert_eq!(refused(&app, Some(&operator), RESOLVE, resolve("RESOLVED_BY_DEVICE", "x")).await, "OUTCOME_RESERVED");
        // No national identity number in any free text.
        for national_id in national_ids {
            assert_eq!(refused(&app, Some(&operator), HAND, hand(&world.municipality_id, national_id)).await, "NATIONAL_ID_REFUSED");
            assert_eq!(refused(&app, Some(&operator), RESOLVE, resolve("HANDLED_BY_PHONE", national_id)).await, "NATIONAL_ID_REFUSED");
            assert_eq!(refused(&app, Some(&operator), NOTE, note(national_id)).await, "NATIONAL_ID_REFUSED");
        }
        assert_eq!(refused(&app, Some(&operator), NOTE, note("  ")).await, "INVALID_TEXT");

        done(&app, &operator, HAND, hand(&world.municipality_id, "Til hjemmetjenesten")).await;
        assert_eq!(refused(&app, Some(&operator), ACCEPT, json!({ "id": id })).await, "FORBIDDEN");
        // The responder signs off only what it has accepted; the case worker may not accept.
        assert_eq!(refused(&app, Some(&responder), RESOLVE, resolve("VISIT", "x")).await, "ALERT_ROLE_REFUSED");
        let both = app.token(MUNICIPALITY_ORG, &[Role::CaseWorker, Role::Responder]);
        done(&app, &both, ACCEPT, json!({ "id": id })).await;
        assert_eq!(refused(&app, Some(&responder), ACCEPT, json!({ "id": id })).await, "ILLEGAL_ALERT_TRANSITION");
        done(&app, &responder, RESOLVE, resolve("FALSE_ALARM", "Utløst ved et uhell")).await;
        assert_eq!(refused(&app, Some(&operator), RESOLVE, resolve("VISIT", "x")).await, "ILLEGAL_ALERT_TRANSITION");
        assert_eq!(refused(&app, Some(&operator), ACK, json!({ "id": id })).await, "ILLEGAL_ALERT_TRANSITION");
    }
}

const AGREEMENTS: &str =
    "{ serviceAgreements(first: 10) { nodes { id responseCentre { name } municipality { name } inForce } } }";
const NODE: &str = "query($id: ID!) { node(id: $id) { id } }";

on_both_backends! {
    /// Service agreements decide which response centre sees a municipality's alerts: the centre
    /// in force sees them; one without an agreement, one whose agreement is over or not yet
    /// begun, and one serving another municipality see none — no more than a supplier, an
    /// adviser, an unregistered organisation or anonymous callers. The municipality's case
    /// workers see their own. Agreements themselves are the parties' (and admin's).
    async fn service_agreements_decide_which_centre_sees_which_alerts(app) {
        let world = Centre::new(&app).await;
        let officer = world.officer(&app);
        let (past, future, elsewhere) = (org_number(914), org_number(915), org_number(916));
        let mut ids = Vec::new();
        for (number, name) in [(&past, "Senter Fortid"), (&future, "Senter Fremtid"), (&elsewhere, "Senter Asker")] {
            ids.push(app.create_organization(json!({ "kind": "RESPONSE_CENTRE", "name": name, "orgNumber": number })).await);
        }
        assert_eq!(agree(&app, &officer, &ids[0], days(-30), days(-1), None).await["userErrors"], json!([]));
        assert_eq!(agree(&app, &officer, &ids[1], days(1), days(30), None).await["userErrors"], json!([]));
        let asker = app.token(&world.fleet.other_municipality, &[Role::MunicipalityAdmin]);
        assert_eq!(agree(&app, &asker, &ids[2], days(-1), days(30), None).await["userErrors"], json!([]));
        let programme = app.create_organization(json!({ "kind": "PROGRAMME", "name": "Velferdsprogrammet", "orgNumber": org_number(917) })).await;
        let _ = programme;

        alarm(&app, &world, "S-1", UNIT, "ME", "002").await;
        let operator = world.operator(&app);
        let alert = open_alert(&app, &operator, "pull-cord").await["id"].as_str().unwrap().to_string();
        assert_eq!(queue(&app, &world.case_worker(&app), None).await.len(), 1);
        assert_eq!(app.graphql(Some(&operator), NODE, json!({ "id": alert })).await["node"]["id"], json!(alert));
        let missing = global_id(NodeType::Alert, 987_654);
        for (who, token) in [
            ("centre without agreement", world.other_operator(&app)),
            ("centre whose agreement is over", app.token(&past, &[Role::Operator])),
            ("centre whose agreement has not begun", app.token(&future, &[Role::Operator])),
            ("centre serving another municipality", app.token(&elsewhere, &[Role::Operator])),
            ("case worker of another municipality", app.token(&world.fleet.other_municipality, &[Role::CaseWorker])),
            ("responder it is not handed to", world.responder(&app)),
            ("supplier", app.token(SUPPLIER_ORG, &[Role::Supplier, Role::Integration])),
            ("adviser", app.token(&org_number(917), &[Role::Advisor])),
            ("privacy officer", app.token(MUNICIPALITY_ORG, &[Role::PrivacyOfficer])),
            ("admin", app.admin_token()),
        ] {
            assert_eq!(queue(&app, &token, None).await, Vec::<Value>::new(), "{who}");
            let hidden = app.graphql_bytes(Some(&token), NODE, json!({ "id": alert })).await;
            let absent = app.graphql_bytes(Some(&token), NODE, json!({ "id": missing })).await;
            crate::support::assert_byte_identical(&hidden, &absent, &alert, &missing);
        }
        let unregistered = app.token(&org_number(918), &[Role::Operator]);
        let (_, body) = app.graphql_raw(Some(&unregistered), QUEUE, json!({})).await;
        assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");
        assert_eq!(app.graphql(Some(&unregistered), NODE, json!({ "id": alert })).await["node"], Value::Null);
        let (_, body) = app.graphql_raw(None, QUEUE, json!({})).await;
        assert_eq!(first_error_code(&body), "UNAUTHENTICATED", "{body}");
        assert_eq!(app.graphql(None, NODE, json!({ "id": alert })).await["node"], Value::Null);

        // Agreements: each party sees its own.
        let names = |data: Value| -> Vec<String> {
            data["serviceAgreements"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| format!("{} {} {}", a["responseCentre"]["name"].as_str().unwrap(), a["municipality"]["name"].as_str().unwrap(), a["inForce"]))
                .collect()
        };
        assert_eq!(
            names(app.graphql(Some(&world.case_worker(&app)), AGREEMENTS, json!({})).await),
            ["Responssenter Vest Larvik kommune true", "Senter Fortid Larvik kommune false", "Senter Fremtid Larvik kommune false"]
        );
        assert_eq!(names(app.graphql(Some(&operator), AGREEMENTS, json!({})).await), ["Responssenter Vest Larvik kommune true"]);
        assert_eq!(names(app.graphql(Some(&world.other_operator(&app)), AGREEMENTS, json!({})).await), Vec::<String>::new());
        assert_eq!(names(app.graphql(Some(&app.admin_token()), AGREEMENTS, json!({})).await).len(), 4);
    }
}

on_both_backends! {
    /// A service agreement is the municipality's to make, with a response centre, over a period
    /// that does not overlap another with the same centre, under one of its own call-offs.
    async fn service_agreements_are_checked_and_refused_whole(app) {
        let world = Centre::new(&app).await;
        let officer = world.officer(&app);
        let input = |centre: &str, from: String, to: String, call_off: Option<&str>| {
            json!({ "input": { "responseCentreId": centre, "validFrom": from, "validTo": to, "callOffId": call_off } })
        };
        let supplier_id = global_id(NodeType::Organization, org_row(&app, SUPPLIER_ORG).await);
        assert_eq!(refused(&app, Some(&officer), AGREE, input(&supplier_id, days(0), days(9), None)).await, "NOT_A_RESPONSE_CENTRE");
        assert_eq!(refused(&app, Some(&officer), AGREE, input(&world.other_centre_id, days(9), days(0), None)).await, "INVALID_PERIOD");
        assert_eq!(refused(&app, Some(&officer), AGREE, input(&world.centre_id, days(100), days(400), None)).await, "SERVICE_AGREEMENT_OVERLAPS");
        assert_eq!(refused(&app, Some(&officer), AGREE, input("garbage", days(0), days(9), None)).await, "NOT_FOUND");
        // Another municipality's call-off answers like a missing one.
        let asker = org_row(&app, &world.fleet.other_municipality).await;
        let supplier = org_row(&app, SUPPLIER_ORG).await;
        let theirs = crate::devices::confirmed_call_off(&app, asker, supplier).await;
        let theirs = global_id(NodeType::CallOff, theirs);
        assert_eq!(refused(&app, Some(&officer), AGREE, input(&world.other_centre_id, days(0), days(9), Some(&theirs))).await, "NOT_FOUND");
        for token in [world.case_worker(&app), world.operator(&app), app.token(SUPPLIER_ORG, &[Role::Supplier])] {
            assert_eq!(refused(&app, Some(&token), AGREE, input(&world.other_centre_id, days(0), days(9), None)).await, "FORBIDDEN");
        }
        assert_eq!(refused(&app, None, AGREE, input(&world.other_centre_id, days(0), days(9), None)).await, "UNAUTHENTICATED");
        // Under its own call-off, adjacent to nothing: made.
        let ours = crate::devices::confirmed_call_off(&app, org_row(&app, MUNICIPALITY_ORG).await, supplier).await;
        let ours = global_id(NodeType::CallOff, ours);
        let made = agree(&app, &world.municipality_admin(&app), &world.other_centre_id, days(0), days(9), Some(&ours)).await;
        assert_eq!(made["userErrors"], json!([]), "{made}");
        let id = made["serviceAgreement"]["id"].as_str().unwrap();
        let call_off = "query($id: ID!) { node(id: $id) { ... on ServiceAgreement { callOff { id } } } }";
        let seen = app.graphql(Some(&officer), call_off, json!({ "id": id })).await;
        assert_eq!(seen["node"]["callOff"]["id"], json!(ours));
        let seen = app.graphql(Some(&world.other_operator(&app)), call_off, json!({ "id": id })).await;
        assert_eq!(seen["node"]["callOff"], Value::Null, "the call-off is the municipality's");

        // Escalation lines: the municipality admin's, to a centre serving it or itself.
        let admin = world.municipality_admin(&app);
        let line = |ack: i32, next: Option<&str>| json!({ "input": { "severity": "CRITICAL", "acknowledgeWithinSeconds": ack, "acceptWithinSeconds": 60, "nextLineId": next } });
        assert_eq!(refused(&app, Some(&admin), ESCALATE, line(0, None)).await, "INVALID_DURATION");
        assert_eq!(refused(&app, Some(&admin), ESCALATE, line(700_000, None)).await, "INVALID_DURATION");
        assert_eq!(refused(&app, Some(&admin), ESCALATE, line(30, Some(&supplier_id))).await, "NEXT_LINE_NOT_SERVING");
        assert_eq!(refused(&app, Some(&officer), ESCALATE, line(30, None)).await, "FORBIDDEN");
        let set = done(&app, &admin, ESCALATE, line(30, Some(&world.centre_id))).await;
        assert_eq!(set["escalation"]["nextLine"]["name"], "Responssenter Vest");
        let lines = app.graphql(Some(&officer), "{ alertEscalations { severity acknowledgeWithinSeconds nextLine { name } } }", json!({})).await;
        assert_eq!(lines["alertEscalations"][0], json!({ "severity": "CRITICAL", "acknowledgeWithinSeconds": 30, "nextLine": { "name": "Responssenter Vest" } }));
        assert_eq!(lines["alertEscalations"][1], json!({ "severity": "SERIOUS", "acknowledgeWithinSeconds": 60, "nextLine": { "name": "Larvik kommune" } }));

        // Monitoring intervals: the platform operator's, per product.
        let monitor = |product: &str, heartbeat: Option<i32>| json!({ "input": { "product": product, "heartbeatIntervalSeconds": heartbeat, "testIntervalSeconds": null } });
        assert_eq!(refused(&app, Some(&app.admin_token()), MONITOR, monitor("no-such-product", Some(60))).await, "NOT_FOUND");
        assert_eq!(refused(&app, Some(&app.admin_token()), MONITOR, monitor(ALARM, Some(0))).await, "INVALID_DURATION");
        assert_eq!(refused(&app, Some(&world.fleet.supplier_token(&app)), MONITOR, monitor(ALARM, Some(60))).await, "FORBIDDEN");
        let set = done(&app, &app.admin_token(), MONITOR, monitor(ALARM, Some(60))).await;
        assert_eq!(set["monitoring"], json!({ "product": { "slug": ALARM }, "heartbeatIntervalSeconds": 60, "testIntervalSeconds": null }));
    }
}

fn sweeping(interval_ms: u32) -> Options {
    Options { pairs: vec![("VELFERD_ALERT_SWEEP_INTERVAL_MS", interval_ms.to_string())], ..Options::default() }
}

/// Runs the test `$name`, an `async fn(TestApp)`, on SQLite and on PostgreSQL (when configured),
/// on a server whose sweep waits an hour: nothing is swept until the test restarts it.
macro_rules! on_both_backends_unswept {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::spawn_with(Backend::Sqlite, sweeping(3_600_000)).await.unwrap();
                super::$name(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = TestApp::spawn_with(Backend::Postgres, sweeping(3_600_000)).await {
                    super::$name(app).await;
                }
            }
        }
    };
}

/// Polls `check` every 200 ms until it gives a value, for at most 30 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A second server on `app`'s database (another instance behind the load balancer).
async fn twin(app: &TestApp) -> velferd::http::RunningServer {
    let mut settings = app.settings.clone();
    settings.bind = "127.0.0.1:0".parse().unwrap();
    velferd::start(&settings, false, 1).await.expect("a second instance starts")
}

fn count_steps(alert: &Value, kind: &str) -> usize {
    alert["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == kind).count()
}

/// Raises an alarm on a server that does not sweep, restarts it with a fast sweep and a second
/// instance on the same database; the alert escalates to the next line exactly once, and so
/// does its hand-over when not accepted in time.
async fn escalates_exactly_once_across_a_restart(app: TestApp) {
    let world = Centre::new(&app).await;
    let second = app
        .create_organization(
            json!({ "kind": "RESPONSE_CENTRE", "name": "Reservesenteret", "orgNumber": org_number(919) }),
        )
        .await;
    assert_eq!(agree(&app, &world.officer(&app), &second, days(0), days(30), None).await["userErrors"], json!([]));
    let line = json!({ "input": { "severity": "CRITICAL", "acknowledgeWithinSeconds": 1, "acceptWithinSeconds": 1, "nextLineId": second } });
    done(&app, &world.municipality_admin(&app), ESCALATE, line).await;
    alarm(&app, &world, "E-1", UNIT, "ME", "001").await;

    let app = app.respawn_with(&[("VELFERD_ALERT_SWEEP_INTERVAL_MS", "50")]).await;
    let other = twin(&app).await;
    let operator = world.operator(&app);
    eventually("the escalation", async || {
        glance(&app, &operator, Some(true)).await.into_iter().find(|a| a["escalations"] == 1)
    })
    .await;
    let escalated = open_alert(&app, &operator, "alarm-button").await;
    assert_eq!(escalated["escalatedTo"]["name"], "Reservesenteret");
    assert_eq!(count_steps(&escalated, "ESCALATED"), 1);
    let step = escalated["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "ESCALATED").unwrap().clone();
    assert_eq!(step["note"], "not acknowledged within 1 s: escalated to Reservesenteret");
    assert_eq!(step["vkp"]["code"], "9");
    // The next line's operators take it over and hand it to the municipality, which does not
    // accept in time: one more escalation, and the first one did not fire again meanwhile.
    let backup = app.token(&org_number(919), &[Role::Operator]);
    let id = escalated["id"].as_str().unwrap();
    done(&app, &backup, ACK, json!({ "id": id })).await;
    done(&app, &backup, HAND, json!({ "input": { "alertId": id, "responderId": world.municipality_id } })).await;
    eventually("the hand-over's escalation", async || {
        glance(&app, &operator, Some(true)).await.into_iter().find(|a| a["escalations"] == 2)
    })
    .await;
    let twice = open_alert(&app, &operator, "alarm-button").await;
    assert_eq!(count_steps(&twice, "ESCALATED"), 2);
    assert!(
        twice["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["note"] == "the hand-over was not accepted within 1 s: escalated to Reservesenteret")
    );
    other.stop().await;
}

on_both_backends_unswept!(escalates_exactly_once_across_a_restart);

/// A device whose product has a heartbeat interval falls silent across a restart: one
/// `device-offline` alert, closed by its next event; a missed test transmission the same way.
async fn a_silent_device_raises_one_offline_alert_that_its_next_event_closes(app: TestApp) {
    let world = Centre::new(&app).await;
    let admin = app.admin_token();
    let monitor = json!({ "input": { "product": ALARM, "heartbeatIntervalSeconds": 1, "testIntervalSeconds": null } });
    done(&app, &admin, MONITOR, monitor).await;
    alarm(&app, &world, "O-1", "SA-7734002", "PI", "000").await;

    let app = app.respawn_with(&[("VELFERD_ALERT_SWEEP_INTERVAL_MS", "50")]).await;
    let operator = world.operator(&app);
    eventually("the offline alert", async || {
        glance(&app, &operator, Some(true)).await.into_iter().find(|a| a["kind"] == "device-offline")
    })
    .await;
    let offline = open_alert(&app, &operator, "device-offline").await;
    assert_eq!(
        (&offline["deviceSerial"], &offline["severity"], &offline["vkp"]["code"], &offline["eventCount"]),
        (&json!("SA-7734002"), &json!("SERIOUS"), &json!("1.20"), &json!(1))
    );
    // Only the device heard from and then silent: the others never sent anything.
    assert_eq!(lines(&app, &operator).await, ["device-offline \"SA-7734002\" \"RAISED\" 1"]);

    // Heartbeats no longer watched, test transmissions every second: the device's next event
    // closes the offline alert and starts its test watch.
    let monitor = json!({ "input": { "product": ALARM, "heartbeatIntervalSeconds": null, "testIntervalSeconds": 1 } });
    done(&app, &admin, MONITOR, monitor).await;
    alarm(&app, &world, "O-2", "SA-7734002", "PI", "000").await;
    let closed = queue(&app, &operator, Some(false)).await.remove(0);
    assert_eq!((&closed["kind"], &closed["outcome"]), (&json!("device-offline"), &json!("RESOLVED_BY_DEVICE")));
    eventually("the missed test alert", async || {
        glance(&app, &operator, Some(true)).await.into_iter().find(|a| a["kind"] == "test-transmission-missed")
    })
    .await;
    let missed = open_alert(&app, &operator, "test-transmission-missed").await;
    assert_eq!((&missed["deviceSerial"], &missed["severity"]), (&json!("SA-7734002"), &json!("SERIOUS")));
    assert_eq!(
        lines(&app, &operator).await.iter().filter(|l| l.contains("RAISED")).count(),
        1,
        "one alert per silence"
    );
    // A test transmission closes it.
    alarm(&app, &world, "O-3", "SA-7734002", "IN", "100").await;
    let resolved = queue(&app, &operator, Some(false)).await;
    assert!(
        resolved.iter().any(|a| a["kind"] == "test-transmission-missed" && a["outcome"] == "RESOLVED_BY_DEVICE"),
        "{resolved:?}"
    );
}

on_both_backends_unswept!(a_silent_device_raises_one_offline_alert_that_its_next_event_closes);

const RAISED: &str =
    "subscription { alertRaised { sequence alert { id kind severity deviceSerial recipientReference status } } }";
const CHANGED: &str = "subscription { alertChanged { sequence alert { id kind status escalations } } }";

on_both_backends! {
    /// The serving centre's operator hears of a raised alert and of its escalation live; an
    /// operator of a centre without an agreement hears of neither.
    async fn operators_hear_of_alerts_live_as_the_queue_decides(app) {
        let world = Centre::new(&app).await;
        let line = json!({ "input": { "severity": "CRITICAL", "acknowledgeWithinSeconds": 1, "acceptWithinSeconds": 60 } });
        done(&app, &world.municipality_admin(&app), ESCALATE, line).await;
        let mut serving = graphql_socket(&app, Some(&world.operator(&app))).await;
        subscribe(&mut serving, "raised", RAISED, json!({})).await;
        subscribe(&mut serving, "changed", CHANGED, json!({})).await;
        let mut stranger = graphql_socket(&app, Some(&world.other_operator(&app))).await;
        subscribe(&mut stranger, "raised", RAISED, json!({})).await;
        subscribe(&mut stranger, "changed", CHANGED, json!({})).await;
        subscribe(&mut stranger, "orgs", "subscription { organizationCreated { name } }", json!({})).await;

        alarm(&app, &world, "L-1", UNIT, "ME", "001").await;
        let mut raised = None;
        let mut escalated = false;
        while raised.is_none() || !escalated {
            let message = next_text(&mut serving).await;
            assert_eq!(message["type"], "next", "{message}");
            match message["id"].as_str().unwrap() {
                "raised" => raised = Some(message["payload"]["data"]["alertRaised"]["alert"].clone()),
                _ => escalated |= message["payload"]["data"]["alertChanged"]["alert"]["escalations"] == 1,
            }
        }
        let raised = raised.unwrap();
        assert_eq!(
            (&raised["kind"], &raised["severity"], &raised["deviceSerial"], &raised["recipientReference"], &raised["status"]),
            (&json!("alarm-button"), &json!("CRITICAL"), &json!(UNIT), &json!(RECIPIENT), &json!("RAISED"))
        );
        // The stranger's next message is the organisation created after the escalation.
        app.create_organization(json!({ "kind": "SUPPLIER", "name": "Etter AS", "orgNumber": org_number(920) })).await;
        let message = next_text(&mut stranger).await;
        assert_eq!((&message["id"], &message["payload"]["data"]["organizationCreated"]["name"]), (&json!("orgs"), &json!("Etter AS")), "{message}");
        // The serving operator's live reads of the alert are audited like its queries.
        let audited = audited(&app, raised["id"].as_str().unwrap()).await;
        assert!(audited.contains(&("alert.live".to_string(), "operator".to_string())), "{audited:?}");
    }
}

/// For `nodes.rs`: the devices area's samples made a dispenser with a missed dose in the
/// municipality; a response centre serving it sees the alert.
pub async fn node_samples(app: &TestApp) -> Vec<NodeSample> {
    let centre = org_number(921);
    let centre_id = app
        .create_organization(json!({ "kind": "RESPONSE_CENTRE", "name": "Samples responssenter", "orgNumber": centre }))
        .await;
    let officer = app.token(MUNICIPALITY_ORG, &[Role::ProcurementOfficer]);
    assert_eq!(agree(app, &officer, &centre_id, days(0), days(1), None).await["userErrors"], json!([]));
    let token = app.token(&centre, &[Role::Operator]);
    let data = app
        .graphql(
            Some(&token),
            "{ alerts(first: 1) { nodes { id } } serviceAgreements(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    vec![
        NodeSample::new("Alert", &data["alerts"]["nodes"][0]["id"], &token),
        NodeSample::new("ServiceAgreement", &data["serviceAgreements"]["nodes"][0]["id"], &token),
    ]
}
