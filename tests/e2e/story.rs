//! The whole operating half in one story, over real HTTP and a real WebSocket (issue 13,
//! must-show 1): a case worker registers a recipient, assesses, assigns a delivered device; the
//! adapter ingests a missed dose; the response centre's operator, subscribed, receives the
//! alert, acknowledges it, hands it to a responder who accepts, and resolves it; the privacy
//! officer's audit log shows every step that touched the recipient, with its purpose; the
//! municipality's journal system reads it all as FHIR (valid, on VKP's codes, audited); and
//! `velferd audit verify` finds the chain intact.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use velferd::auth::Role;

use crate::alerts::agree;
use crate::care::{ASSIGN, DEVICE_STATUS, world};
use crate::devices::{DISPENSER, ingest, sample};
use crate::procurement::org_number;
use crate::support::{TestApp, graphql_socket, next_text, on_both_backends, subscribe};

const RAISED: &str =
    "subscription { alertRaised { sequence alert { id kind severity status recipientReference deviceSerial } } }";

/// A mutation's payload, which must carry no user errors.
async fn done(app: &TestApp, token: &str, query: &str, name: &str, input: Value) -> Value {
    let payload = app.graphql(Some(token), query, json!({ "input": input })).await[name].clone();
    assert_eq!(payload["userErrors"], json!([]), "{name}: {payload}");
    payload
}

fn days_from_today(n: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(n)).to_string()
}

on_both_backends! {
    async fn a_missed_dose_reaches_the_serving_operator_live_and_every_step_on_the_recipient_is_audited(app) {
        // The municipality's case worker: a recipient, two devices in stock, a live adapter.
        let w = world(&app).await;
        let municipality = w.fleet.municipality.clone();
        let grant = crate::care::grant(&app, &w, &w.recipient).await;
        assert_eq!(grant["userErrors"], json!([]), "{grant}");
        let dispenser = &w.devices[0];
        done(&app, &w.case_worker, ASSIGN, "deviceAssign", json!({ "deviceId": dispenser, "recipientId": w.recipient })).await;
        done(&app, &w.case_worker, DEVICE_STATUS, "deviceStatusChange", json!({ "deviceId": dispenser, "status": "ACTIVE" })).await;

        // A response centre that serves the municipality from yesterday, by the municipality's own agreement.
        let centre = org_number(931);
        let centre_id = app
            .create_organization(json!({ "kind": "RESPONSE_CENTRE", "name": "Responssenter Sør", "orgNumber": centre }))
            .await;
        let officer = app.token(&municipality, &[Role::ProcurementOfficer]);
        let agreement = agree(&app, &officer, &centre_id, days_from_today(-1), days_from_today(365), None).await;
        assert_eq!(agreement["userErrors"], json!([]), "{agreement}");
        let operator = app.token(&centre, &[Role::Operator]);

        // The operator listens; the dispenser reports a missed dose through ingest.
        let mut socket = graphql_socket(&app, Some(&operator)).await;
        subscribe(&mut socket, "raised", RAISED, json!({})).await;
        let (status, reply) =
            ingest(&app, &w.fleet.integration_token(&app), DISPENSER, "application/json", sample("dispenser-json", "missed-dose.json")).await;
        assert_eq!(status, 200, "{reply}");
        let message = next_text(&mut socket).await;
        assert_eq!((&message["type"], &message["id"]), (&json!("next"), &json!("raised")), "{message}");
        let delivered = &message["payload"]["data"]["alertRaised"];
        assert!(delivered["sequence"].as_str().is_some_and(|s| s.parse::<i64>().is_ok()), "{delivered}");
        let alert = &delivered["alert"];
        assert_eq!(
            (&alert["kind"], &alert["severity"], &alert["status"], &alert["recipientReference"], &alert["deviceSerial"]),
            (&json!("dose-missed"), &json!("SERIOUS"), &json!("RAISED"), &json!("LRV-0001"), &json!("RD-100234")),
            "{alert}"
        );
        let alert_id = alert["id"].as_str().unwrap().to_string();

        // The workflow: acknowledged, handed to the municipality's responders, accepted, resolved.
        let ack = "mutation($input: AlertInput!) { alertAcknowledge(input: $input) { alert { status } userErrors { field code message } } }";
        let hand = "mutation($input: AlertHandOverInput!) { alertHandOver(input: $input) { alert { status } userErrors { field code message } } }";
        let accept = "mutation($input: AlertInput!) { alertAccept(input: $input) { alert { status } userErrors { field code message } } }";
        let note = "mutation($input: AlertNoteAddInput!) { alertNoteAdd(input: $input) { alert { status } userErrors { field code message } } }";
        let resolve = "mutation($input: AlertResolveInput!) { alertResolve(input: $input) { alert { status outcome steps { kind vkp { code } } } userErrors { field code message } } }";
        let municipality_id = app
            .graphql(Some(&officer), "{ viewer { organization { id } } }", json!({}))
            .await["viewer"]["organization"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let responder = app.token(&municipality, &[Role::Responder]);
        assert_eq!(done(&app, &operator, ack, "alertAcknowledge", json!({ "alertId": alert_id })).await["alert"]["status"], "ACKNOWLEDGED");
        done(&app, &operator, note, "alertNoteAdd", json!({ "alertId": alert_id, "kind": "CONVERSATION", "text": "Ringte; ingen svar." })).await;
        let handed = done(&app, &operator, hand, "alertHandOver", json!({ "alertId": alert_id, "responderId": municipality_id })).await;
        assert_eq!(handed["alert"]["status"], "HANDED_TO_RESPONDER");
        assert_eq!(done(&app, &responder, accept, "alertAccept", json!({ "alertId": alert_id })).await["alert"]["status"], "RESPONDER_ACCEPTED");
        let resolved =
            done(&app, &responder, resolve, "alertResolve", json!({ "alertId": alert_id, "outcome": "VISIT", "note": "Dosen tatt ved besøk." })).await;
        assert_eq!((&resolved["alert"]["status"], &resolved["alert"]["outcome"]), (&json!("RESOLVED"), &json!("VISIT")));
        let codes: Vec<&str> = resolved["alert"]["steps"].as_array().unwrap().iter().filter_map(|s| s["vkp"]["code"].as_str()).collect();
        for code in ["0", "1", "8", "4", "5", "3"] {
            assert!(codes.contains(&code), "VKP follow-up code {code} among the steps {codes:?}");
        }

        // The privacy officer's log of the recipient: every step that touched it, with its purpose.
        let privacy = app.token(&municipality, &[Role::PrivacyOfficer]);
        let log = app
            .graphql(
                Some(&privacy),
                "query($r: ID!) { auditLog(recipientId: $r, first: 100) { nodes { operation purposeKind role organizationName } } }",
                json!({ "r": w.recipient }),
            )
            .await;
        let entries: BTreeSet<(String, String, String)> = log["auditLog"]["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{log}"))
            .iter()
            .map(|e| (e["operation"].as_str().unwrap().into(), e["purposeKind"].as_str().unwrap().into(), e["role"].as_str().unwrap().into()))
            .collect();
        let expected = [
            ("recipient.create", "CASEWORK", "case_worker"),
            ("assessment.create", "CASEWORK", "case_worker"),
            ("device.assign", "CASEWORK", "case_worker"),
            ("alert.live", "ALERT", "operator"),
            ("alert.acknowledge", "ALERT", "operator"),
            ("alert.note", "ALERT", "operator"),
            ("alert.hand_over", "ALERT", "operator"),
            ("alert.accept", "ALERT", "responder"),
            ("alert.resolve", "ALERT", "responder"),
        ];
        for (operation, purpose, role) in expected {
            assert!(
                entries.contains(&(operation.to_string(), purpose.to_string(), role.to_string())),
                "no {operation} ({purpose}, {role}) in the recipient's log: {entries:#?}"
            );
        }
        // Looking at the alert once it is resolved has no open alert to justify it: flagged for review.
        let flagged_before = app
            .graphql(Some(&privacy), "{ auditEntriesFlagged(first: 50) { totalCount } }", json!({}))
            .await["auditEntriesFlagged"]["totalCount"]
            .as_u64()
            .unwrap();
        let seen = app.graphql(Some(&operator), "query($id: ID!) { node(id: $id) { id } }", json!({ "id": alert_id })).await;
        assert_eq!(seen["node"]["id"], json!(alert_id), "{seen}");
        let flagged = app
            .graphql(Some(&privacy), "{ auditEntriesFlagged(first: 50) { totalCount nodes { operation role } } }", json!({}))
            .await;
        assert_eq!(flagged["auditEntriesFlagged"]["totalCount"], json!(flagged_before + 1), "{flagged}");
        assert!(
            flagged["auditEntriesFlagged"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["operation"] == "alert.read" && e["role"] == "operator"),
            "{flagged}"
        );
        // The municipality's journal system reads the story as FHIR (issue 14): the dose taken the
        // next morning and the missed dose's alert, valid FHIR R4 on VKP's codes and Velferd's
        // derived profiles, under the recipient's reference; each read lands in the log.
        let (status, reply) =
            ingest(&app, &w.fleet.integration_token(&app), DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json")).await;
        assert_eq!(status, 200, "{reply}");
        let journal = app.token(&municipality, &[Role::Integration]);
        let window = "_lastUpdated=lt2100-01-01T00:00:00Z";
        let doses = crate::fhir::pages(&app, &journal, &format!("/fhir/MedicationDispense?{window}")).await;
        let issues = crate::fhir::pages(&app, &journal, &format!("/fhir/DetectedIssue?{window}")).await;
        let dose = &doses[0]["entry"][0]["resource"];
        let issue = &issues[0]["entry"][0]["resource"];
        assert_eq!((&dose["category"]["coding"][0]["code"], &dose["subject"]["identifier"]["value"]), (&json!("1.1"), &json!("LRV-0001")), "{dose}");
        assert_eq!((&issue["code"]["coding"][0]["code"], &issue["status"], &issue["patient"]["identifier"]["value"]), (&json!("1.1"), &json!("final"), &json!("LRV-0001")), "{issue}");
        let log = app
            .graphql(Some(&privacy), "query($r: ID!) { auditLog(recipientId: $r, first: 100) { nodes { operation role } } }", json!({ "r": w.recipient }))
            .await;
        let reads = log["auditLog"]["nodes"].as_array().unwrap().iter().filter(|e| e["operation"] == "fhir.read" && e["role"] == "integration").count();
        assert_eq!(reads, 2, "the dose and the alert: {log}");

        // And the log the story wrote is an intact chain under its signed anchor.
        let (code, output) = crate::audit::verify_cli(&app, &[]).await;
        assert_eq!(code, 0, "velferd audit verify: {output}");
    }
}
