//! Benefits realisation over real HTTP: the measured indicators of a seeded month pair equal
//! figures worked out by hand (the arithmetic beside each), small cells are suppressed so that
//! none can be recovered from the total, the CSV export says the same, and entered indicators
//! are created, measured, read back and refused cleanly.
//!
//! Seeding goes through the real ingest path wherever the message carries its own time (dose
//! and alarm events, offline/online, heartbeats). What cannot be timed through the API is
//! written straight to the database, each place saying why.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{Value, json};
use velferd::auth::Role;
use velferd::ids::{NodeType, global_id};

use crate::devices::{ALARM, DISPENSER, Fleet, REGISTER_KEY, activate, ingest, key_proof, register_device, upload};
use crate::nodes::NodeSample;
use crate::rows::{device as device_row, org_row};
use crate::support::{MUNICIPALITY_ORG, TestApp, first_error_code, on_both_backends};

pub async fn node_samples(_app: &TestApp) -> Vec<NodeSample> {
    Vec::new()
}

/// The second supplier's dispenser product (the reference dispenser's adapter, uploaded by
/// "Other Devices AS" under its own slug).
const OTHER_DISPENSER: &str = "other-dispenser";

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Puts `serial` in service for a new recipient `reference` from 1 August 2026. Written
/// straight to the database: a status change's `at` is the server's clock when the mutation
/// runs, so the API cannot put a device in service in the past, and assignment through the
/// API needs a granted assessment (the care tests cover that path).
async fn in_service(app: &TestApp, serial: &str, reference: &str) {
    let d = device_row(app, serial).await;
    let registered = utc("2026-07-01T00:00:00Z").fixed_offset();
    let started = utc("2026-08-01T00:00:00Z").date_naive();
    let recipient = crate::rows::recipient(app.db().write(), d.municipality_id, reference, started, registered).await;
    put_in_service_for(app, d, recipient.id).await;
}

/// Both suppliers' dispensers and the alarm units, with live adapters, in service for seven
/// recipients: Reference Devices AS's five dispensers and five alarm units for `BEN-1`…`BEN-5`,
/// Other Devices AS's two dispensers for `BEN-6` and `BEN-7`.
async fn world(app: &TestApp) -> Fleet {
    let fleet = Fleet::new(app).await;
    for (product, guest) in [(DISPENSER, "velferd_dispenser_json"), (ALARM, "velferd_alarm_scaip")] {
        let id = crate::devices::upload_signed(app, &fleet, product, guest).await;
        assert_eq!(activate(app, &id).await["adapter"]["status"], "ACTIVE");
    }
    // The second supplier registers its own key and ships the same dispenser adapter.
    let other_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let other = app.token(&fleet.other_supplier, &[Role::Supplier]);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let registered = app
        .graphql(
            Some(&other),
            REGISTER_KEY,
            json!({ "k": b64.encode(other_key.verifying_key().as_bytes()), "p": key_proof(&other_key, &fleet.other_supplier) }),
        )
        .await;
    assert_eq!(registered["signingKeyRegister"]["userErrors"], json!([]));
    let bytes = crate::guests::component("velferd_dispenser_json");
    use ed25519_dalek::Signer;
    let signature = b64.encode(other_key.sign(&bytes).to_bytes());
    let uploaded = upload(app, &other, OTHER_DISPENSER, bytes, &signature).await;
    assert_eq!(uploaded["userErrors"], json!([]), "{uploaded}");
    assert_eq!(activate(app, uploaded["adapter"]["id"].as_str().unwrap()).await["adapter"]["status"], "ACTIVE");

    let case_worker = fleet.case_worker_token(app);
    for n in 1..=5 {
        for (product, serial) in [(DISPENSER, format!("RD-A{n}")), (ALARM, format!("SA-{n}"))] {
            assert_eq!(register_device(app, &case_worker, product, &serial).await["userErrors"], json!([]));
        }
    }
    for n in 1..=2 {
        let serial = format!("RD-B{n}");
        assert_eq!(register_device(app, &case_worker, OTHER_DISPENSER, &serial).await["userErrors"], json!([]));
    }
    for n in 1..=5 {
        in_service(app, &format!("RD-A{n}"), &format!("BEN-{n}")).await;
        // The same recipient holds the alarm unit of the same number.
        let d = device_row(app, &format!("RD-A{n}")).await;
        let alarm = device_row(app, &format!("SA-{n}")).await;
        put_in_service_for(app, alarm, d.recipient_id.unwrap()).await;
    }
    for n in 1..=2 {
        in_service(app, &format!("RD-B{n}"), &format!("BEN-{}", n + 5)).await;
    }
    fleet
}

/// As [`in_service`], for a recipient that exists already.
async fn put_in_service_for(app: &TestApp, d: velferd::devices::model::device::Model, recipient: i64) {
    use velferd::devices::model::device_status_change;
    let db = app.db().write();
    device_status_change::Entity::update_many()
        .col_expr(
            device_status_change::Column::At,
            sea_orm::sea_query::Expr::value(utc("2026-07-01T00:00:00Z").fixed_offset()),
        )
        .filter(device_status_change::Column::DeviceId.eq(d.id))
        .exec(db)
        .await
        .unwrap();
    crate::rows::activate_for(db, d, recipient, utc("2026-08-01T00:00:00Z").fixed_offset()).await;
}

/// One dispenser message; must be stored (or be a duplicate).
async fn dispenser(app: &TestApp, fleet: &Fleet, product: &str, serial: &str, events: Value) -> Value {
    let token = if product == OTHER_DISPENSER {
        app.token(&fleet.other_supplier, &[Role::Integration])
    } else {
        fleet.integration_token(app)
    };
    let body = json!({ "serial": serial, "events": events }).to_string().into_bytes();
    let (status, reply) = ingest(app, &token, product, "application/json", body).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

fn dose(id: &str, kind: &str, at: &str, scheduled: &str, assisted: Option<bool>) -> Value {
    let mut dose = json!({ "id": format!("dose-{id}"), "scheduled": scheduled });
    if let Some(assisted) = assisted {
        dose["assisted"] = json!(assisted);
    }
    json!({ "id": id, "type": kind, "at": at, "dose": dose })
}

/// One SCAIP message from alarm unit `unit` at `at` (`dtm`); must be stored (or a duplicate).
async fn scaip(app: &TestApp, fleet: &Fleet, reference: &str, unit: &str, mty: &str, stc: &str, at: &str) -> Value {
    let dtm = utc(at).format("%Y%m%dT%H%M%SZ");
    let body = format!(
        "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>{unit}</cid><dty>005</dty><mty>{mty}</mty><stc>{stc}</stc><lco>010</lco><dtm>{dtm}</dtm></mrq>"
    );
    let (status, reply) = ingest(app, &fleet.integration_token(app), ALARM, "application/xml", body.into_bytes()).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

/// The alert the event `reference` of `unit` raised.
async fn alert_of(app: &TestApp, unit: &str, reference: &str) -> velferd::alerts::model::alert::Model {
    use velferd::alerts::model::alert;
    use velferd::devices::model::device_event;
    let d = device_row(app, unit).await;
    let event = device_event::Entity::find()
        .filter(device_event::Column::DeviceId.eq(d.id))
        .filter(device_event::Column::SupplierEventId.eq(reference))
        .one(app.db().read())
        .await
        .unwrap()
        .unwrap();
    alert::Entity::find().filter(alert::Column::EventId.eq(event.id)).one(app.db().read()).await.unwrap().unwrap()
}

/// Gives the alert `raised_at` and, `answer_after` later, the response centre's
/// acknowledgement; `resolve` closes it (by phone) so the unit's next alarm raises a new one.
/// Written straight to the database: `raised_at` and a step's `at` are the server's clock when
/// ingest and the workflow mutation run, and the test needs them in October 2026.
async fn answer(
    app: &TestApp,
    alert: &velferd::alerts::model::alert::Model,
    raised_at: &str,
    answer_after: Option<i64>,
    resolve: bool,
) {
    use velferd::alerts::model::{AlertOutcome, AlertStatus, StepKind, alert, alert_step};
    let db = app.db().write();
    let raised = utc(raised_at);
    let mut row: alert::ActiveModel = alert.clone().into();
    row.raised_at = Set(raised.fixed_offset());
    if let Some(seconds) = answer_after {
        let at = raised + Duration::seconds(seconds);
        alert_step::ActiveModel {
            alert_id: Set(alert.id),
            kind: Set(StepKind::Acknowledged),
            vkp_code: Set(Some("1".into())),
            note: Set(None),
            outcome: Set(None),
            subject: Set("operator-1".into()),
            organization_id: Set(None),
            role: Set(Some("operator".into())),
            at: Set(at.fixed_offset()),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        if alert.status == AlertStatus::Raised {
            row.status = Set(AlertStatus::Acknowledged);
        }
    }
    if resolve {
        row.status = Set(AlertStatus::Resolved);
        row.outcome = Set(Some(AlertOutcome::HandledByPhone));
        row.open_key = Set(None);
        row.resolved_at = Set(Some((raised + Duration::seconds(600)).fixed_offset()));
    }
    row.update(db).await.unwrap();
}

/// The event set: duplicates, late, missed, blocked and unconfirmed doses, two suppliers, alarms
/// answered, cancelled before and after an answer, a sensor alarm, a dispenser offline across
/// the September/October boundary and an alarm unit the sweep found silent.
async fn seed(app: &TestApp, fleet: &Fleet) {
    // ---- September 2026, Reference Devices AS ----
    let a1 = json!([dose("a1-1", "dose_taken", "2026-09-10T06:20:00Z", "2026-09-10T06:00:00Z", Some(false))]);
    dispenser(app, fleet, DISPENSER, "RD-A1", a1.clone()).await;
    let again = dispenser(app, fleet, DISPENSER, "RD-A1", a1).await;
    assert_eq!(again["duplicate"], 1, "the same message again stores nothing: {again}");
    // The same dose re-reported under a new event id: still one scheduled dose.
    let rereport = dose("a1-1b", "dose_taken", "2026-09-10T06:25:00Z", "2026-09-10T06:00:00Z", Some(false));
    let not_confirmed = dose("a1-2", "dose_not_confirmed", "2026-09-10T18:10:00Z", "2026-09-10T18:00:00Z", None);
    dispenser(app, fleet, DISPENSER, "RD-A1", json!([rereport, not_confirmed])).await;
    let missed_then_late = json!([
        dose("a2-1", "dose_missed", "2026-09-11T06:30:00Z", "2026-09-11T06:00:00Z", None),
        dose("a2-2", "dose_taken", "2026-09-11T07:01:00Z", "2026-09-11T06:00:00Z", Some(false)),
    ]);
    dispenser(app, fleet, DISPENSER, "RD-A2", missed_then_late).await;
    let missed = json!([dose("a3-1", "dose_missed", "2026-09-12T07:00:00Z", "2026-09-12T06:00:00Z", None)]);
    dispenser(app, fleet, DISPENSER, "RD-A3", missed).await;
    let at_the_edge = json!([dose("a5-1", "dose_taken", "2026-09-14T07:00:00Z", "2026-09-14T06:00:00Z", Some(true))]);
    dispenser(app, fleet, DISPENSER, "RD-A5", at_the_edge).await;
    // RD-A1 goes offline at 22:00 Oslo time on 30 September and is back at 03:00 on 1 October.
    let outage = json!([
        { "id": "a1-off", "type": "offline", "at": "2026-09-30T20:00:00Z" },
        { "id": "a1-on", "type": "online", "at": "2026-10-01T01:00:00Z" },
    ]);
    dispenser(app, fleet, DISPENSER, "RD-A1", outage).await;

    // ---- September 2026, Other Devices AS ----
    let early = json!([dose("b1-1", "dose_taken", "2026-09-10T05:30:00Z", "2026-09-10T06:00:00Z", Some(false))]);
    dispenser(app, fleet, OTHER_DISPENSER, "RD-B1", early).await;
    let on_time = json!([dose("b2-1", "dose_taken", "2026-09-10T06:00:00Z", "2026-09-10T06:00:00Z", Some(false))]);
    dispenser(app, fleet, OTHER_DISPENSER, "RD-B2", on_time).await;

    // ---- October 2026, Reference Devices AS ----
    for (serial, october) in [
        ("RD-A1", dose("a1-3", "dose_taken", "2026-10-01T05:10:00Z", "2026-10-01T05:00:00Z", Some(false))),
        // Scheduled 22:30 UTC on 30 September: 00:30 on 1 October in Oslo, so an October dose.
        ("RD-A2", dose("a2-3", "dose_taken", "2026-09-30T22:40:00Z", "2026-09-30T22:30:00Z", Some(false))),
        // Assistance unknown: on time, but no visit replaced.
        ("RD-A3", dose("a3-2", "dose_taken", "2026-10-05T06:05:00Z", "2026-10-05T06:00:00Z", None)),
        ("RD-A4", dose("a4-2", "dose_taken", "2026-10-06T06:00:00Z", "2026-10-06T06:00:00Z", Some(false))),
        ("RD-A5", dose("a5-2", "dose_missed", "2026-10-07T07:00:00Z", "2026-10-07T06:00:00Z", None)),
    ] {
        dispenser(app, fleet, DISPENSER, serial, json!([october])).await;
    }

    // RD-A4's September dose was blocked because the dispenser was empty. Written straight to
    // the database: no reference adapter reports `dispensing-blocked-empty`; the row is what
    // ingest stores for one (the normalised event as JSON), under RD-A4's receipt and adapter.
    {
        use velferd::devices::model::device_event;
        let a4 = device_row(app, "RD-A4").await;
        let db = app.db().write();
        let template = device_event::Entity::find()
            .filter(device_event::Column::DeviceId.eq(a4.id))
            .one(db)
            .await
            .unwrap()
            .unwrap();
        let data = json!({
            "supplier_event_id": "a4-blocked", "device_serial": "RD-A4", "occurred_at": "2026-09-13T06:00:00Z",
            "kind": { "type": "dispensing-blocked-empty", "dose_id": "dose-a4-1", "scheduled_for": "2026-09-13T06:00:00Z", "assistance": "unknown" },
            "vkp": { "system": "http://ehelse.no/fhir/CodeSystem/vkp-alert-code-v090", "code": "1.2" },
            "severity": "serious", "detail": null,
        });
        device_event::ActiveModel {
            device_id: Set(a4.id),
            receipt_id: Set(template.receipt_id),
            adapter_id: Set(template.adapter_id),
            supplier_event_id: Set("a4-blocked".into()),
            kind: Set("dispensing-blocked-empty".into()),
            vkp_code: Set(Some("1.2".into())),
            severity: Set("serious".into()),
            occurred_at: Set(utc("2026-09-13T06:00:00Z").fixed_offset()),
            received_at: Set(utc("2026-09-13T06:00:01Z").fixed_offset()),
            detail: Set(None),
            data: Set(data.to_string()),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
    }

    // ---- Alarms, October 2026 ----
    // SA-1: heard from at 12:00 UTC on 10 October after the sweep found it silent since 10:00.
    scaip(app, fleet, "hb-1", "SA-1", "PI", "000", "2026-10-10T12:00:00Z").await;
    {
        // The sweep's `device-offline` alert, written straight to the database: the sweep
        // raises it from the server's clock (now), not from a time the test can choose.
        use velferd::alerts::model::{AlertOutcome, AlertStatus, alert};
        let sa1 = device_row(app, "SA-1").await;
        alert::ActiveModel {
            municipality_id: Set(sa1.municipality_id),
            device_id: Set(sa1.id),
            recipient_id: Set(sa1.recipient_id),
            kind: Set("device-offline".into()),
            severity: Set("serious".into()),
            vkp_code: Set(Some("1.20".into())),
            queue_key: Set("2-001791626400000".into()),
            event_id: Set(None),
            open_key: Set(None),
            status: Set(AlertStatus::Resolved),
            outcome: Set(Some(AlertOutcome::ResolvedByDevice)),
            event_count: Set(1),
            first_event_at: Set(utc("2026-10-10T10:00:00Z").fixed_offset()),
            last_event_at: Set(utc("2026-10-10T10:00:00Z").fixed_offset()),
            raised_at: Set(utc("2026-10-10T10:05:00Z").fixed_offset()),
            resolved_at: Set(Some(utc("2026-10-10T12:00:01Z").fixed_offset())),
            responder_id: Set(None),
            escalated_to_id: Set(None),
            escalations: Set(0),
            ..Default::default()
        }
        .insert(app.db().write())
        .await
        .unwrap();
    }
    // al-1, sent twice: one alert, answered in 30 s.
    scaip(app, fleet, "al-1", "SA-1", "ME", "001", "2026-10-15T10:00:00Z").await;
    let twice = scaip(app, fleet, "al-1", "SA-1", "ME", "001", "2026-10-15T10:00:00Z").await;
    assert_eq!(twice["duplicate"], 1, "{twice}");
    answer(app, &alert_of(app, "SA-1", "al-1").await, "2026-10-15T10:00:05Z", Some(30), true).await;
    // al-2…al-4: a button (001), a pull cord (002) and a fall (010), answered in 45, 90 and 200 s.
    for (reference, unit, stc, at, answered_after) in [
        ("al-2", "SA-2", "001", "2026-10-15T11:00:00Z", 45),
        ("al-3", "SA-3", "002", "2026-10-16T09:00:00Z", 90),
        ("al-4", "SA-4", "010", "2026-10-16T10:00:00Z", 200),
    ] {
        scaip(app, fleet, reference, unit, "ME", stc, at).await;
        answer(app, &alert_of(app, unit, reference).await, at, Some(answered_after), true).await;
    }
    // al-5: cancelled at the device 20 s later, before anyone answered: not counted.
    scaip(app, fleet, "al-5", "SA-5", "ME", "001", "2026-10-17T08:00:00Z").await;
    scaip(app, fleet, "al-5r", "SA-5", "RE", "001", "2026-10-17T08:00:20Z").await;
    let cancelled = alert_of(app, "SA-5", "al-5").await;
    assert_eq!(cancelled.outcome, Some(velferd::alerts::model::AlertOutcome::CancelledByDevice));
    answer(app, &cancelled, "2026-10-17T08:00:00Z", None, false).await;
    scaip(app, fleet, "al-6", "SA-5", "ME", "001", "2026-10-18T08:00:00Z").await;
    answer(app, &alert_of(app, "SA-5", "al-6").await, "2026-10-18T08:00:00Z", Some(60), true).await;
    // al-7: answered in 20 s, then cancelled at the device: counted, it was answered.
    scaip(app, fleet, "al-7", "SA-2", "ME", "001", "2026-10-19T08:00:00Z").await;
    answer(app, &alert_of(app, "SA-2", "al-7").await, "2026-10-19T08:00:00Z", Some(20), false).await;
    scaip(app, fleet, "al-7r", "SA-2", "RE", "001", "2026-10-19T08:01:00Z").await;
    assert_eq!(
        alert_of(app, "SA-2", "al-7").await.outcome,
        Some(velferd::alerts::model::AlertOutcome::CancelledByDevice)
    );
    // al-8: an inactivity alarm (a sensor observation, not a call for help), never answered:
    // not counted.
    scaip(app, fleet, "al-8", "SA-3", "ME", "030", "2026-10-20T08:00:00Z").await;
    answer(app, &alert_of(app, "SA-3", "al-8").await, "2026-10-20T08:00:00Z", None, false).await;
}

const FIGURES: &str = "query($m: ID!, $from: String!, $to: String!) { benefitFigures(municipalityId: $m, from: $from, to: $to) {
    from to timeZone minimumRecipients doseWindowMinutes minutesPerVisit
    cells { month indicator total supplier { name } suppressed recipients
      medication { dosesScheduled dosesOnTime adherence homeVisitsReplaced minutesPerVisit minutesFreed doseWindowMinutes }
      alarmAnswer { alarmsCounted alarmsAnswered medianSeconds p90Seconds answeredWithin60s targetWithin60s answeredWithin180s targetWithin180s }
      devicesOnline { devices inServiceSeconds onlineSeconds share } } } }";

/// `month indicator supplier|total` → the cell.
fn cells(figures: &Value) -> std::collections::BTreeMap<String, Value> {
    figures["cells"]
        .as_array()
        .unwrap_or_else(|| panic!("{figures}"))
        .iter()
        .map(|c| {
            let who = if c["total"] == true {
                "total".to_string()
            } else {
                c["supplier"]["name"].as_str().unwrap().to_string()
            };
            (format!("{} {} {who}", c["month"].as_str().unwrap(), c["indicator"].as_str().unwrap()), c.clone())
        })
        .collect()
}

const A: &str = "Reference Devices AS";
const B: &str = "Other Devices AS";

on_both_backends! {
    /// The figures of September and October 2026 equal the hand-worked values, suppressed
    /// cells cannot be recovered, and the CSV export says the same.
    async fn measured_indicators_equal_hand_worked_values(app) {
        let fleet = world(&app).await;
        let larvik = global_id(NodeType::Organization, org_row(&app, MUNICIPALITY_ORG).await);
        let admin = app.token(MUNICIPALITY_ORG, &[Role::MunicipalityAdmin]);
        let set = app
            .graphql(
                Some(&admin),
                "mutation { benefitAssumptionsSet(input: { doseWindowMinutes: 60, minutesPerVisit: 20 }) {
                   benefitAssumptions { doseWindowMinutes minutesPerVisit } userErrors { code } } }",
                json!({}),
            )
            .await;
        assert_eq!(set["benefitAssumptionsSet"]["benefitAssumptions"], json!({ "doseWindowMinutes": 60, "minutesPerVisit": 20 }));
        seed(&app, &fleet).await;

        // Both months are over (a running month is measured up to now), so every device was in
        // service for all of each.
        assert!(Utc::now() > utc("2026-10-31T23:00:00Z"), "the test's months must be in the past");
        let case_worker = fleet.case_worker_token(&app);
        let vars = json!({ "m": larvik, "from": "2026-09", "to": "2026-10" });
        let data = app.graphql(Some(&case_worker), FIGURES, vars.clone()).await;
        let figures = &data["benefitFigures"];
        assert_eq!(
            (&figures["timeZone"], &figures["minimumRecipients"], &figures["doseWindowMinutes"], &figures["minutesPerVisit"]),
            (&json!("Europe/Oslo"), &json!(5), &json!(60), &json!(20))
        );
        let cells = cells(figures);
        let keys: Vec<&str> = cells.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "2026-09 DEVICES_ONLINE Other Devices AS",
                "2026-09 DEVICES_ONLINE Reference Devices AS",
                "2026-09 DEVICES_ONLINE total",
                "2026-09 MEDICATION Other Devices AS",
                "2026-09 MEDICATION Reference Devices AS",
                "2026-09 MEDICATION total",
                "2026-10 ALARM_ANSWER Reference Devices AS",
                "2026-10 ALARM_ANSWER total",
                "2026-10 DEVICES_ONLINE Other Devices AS",
                "2026-10 DEVICES_ONLINE Reference Devices AS",
                "2026-10 DEVICES_ONLINE total",
                "2026-10 MEDICATION Reference Devices AS",
                "2026-10 MEDICATION total",
            ]
        );

        // September, medication. Reference Devices AS (BEN-1…5): RD-A1 06:00 taken at 06:20
        // unassisted (sent twice, and re-reported as a1-1b: one dose) — on time, a visit
        // replaced; RD-A1 18:00 not confirmed — miss; RD-A2 missed, then taken 61 min late —
        // miss; RD-A3 missed — miss; RD-A4 blocked (empty) — miss; RD-A5 taken at exactly
        // +60 min with help — on time, no visit. 6 scheduled, 2 on time, 1 visit, 5 recipients.
        // Other Devices AS (BEN-6, 7): RD-B1 taken 30 min early, RD-B2 on the minute, both
        // unassisted: 2 scheduled, 2 on time, 2 visits, 2 recipients < 5 — suppressed; and since
        // total − Reference would then give it away, Reference is suppressed too.
        // Total: 6 + 2 = 8 scheduled, 2 + 2 = 4 on time, 4 ÷ 8 = 0.5000; 1 + 2 = 3 visits ×
        // 20 min = 60 min freed; 5 + 2 = 7 recipients.
        let b = &cells["2026-09 MEDICATION Other Devices AS"];
        assert_eq!((&b["suppressed"], &b["recipients"], &b["medication"]), (&json!("BELOW_THRESHOLD"), &Value::Null, &Value::Null));
        let a = &cells["2026-09 MEDICATION Reference Devices AS"];
        assert_eq!((&a["suppressed"], &a["recipients"], &a["medication"]), (&json!("COMPLEMENTARY"), &Value::Null, &Value::Null));
        let total = &cells["2026-09 MEDICATION total"];
        assert_eq!((&total["suppressed"], &total["recipients"]), (&Value::Null, &json!(7)));
        assert_eq!(
            total["medication"],
            json!({ "dosesScheduled": 8, "dosesOnTime": 4, "adherence": "0.5000", "homeVisitsReplaced": 3,
                    "minutesPerVisit": 20, "minutesFreed": 60, "doseWindowMinutes": 60 })
        );

        // October, medication, Reference Devices AS only: RD-A1 05:00 taken 05:10 unassisted —
        // on time, visit; RD-A2 scheduled 22:30 UTC on 30 September (00:30 on 1 October in
        // Oslo: an October dose) taken 22:40 unassisted — on time, visit; RD-A3 taken 5 min late,
        // assistance unknown — on time, no visit; RD-A4 on the minute unassisted — on time,
        // visit; RD-A5 missed — miss. 5 scheduled, 4 on time, 4 ÷ 5 = 0.8000, 3 visits × 20 =
        // 60 min, 5 recipients: shown, and the total is the same cell.
        let october = json!({ "dosesScheduled": 5, "dosesOnTime": 4, "adherence": "0.8000", "homeVisitsReplaced": 3,
                              "minutesPerVisit": 20, "minutesFreed": 60, "doseWindowMinutes": 60 });
        for who in [A, "total"] {
            let cell = &cells[&format!("2026-10 MEDICATION {who}")];
            assert_eq!((&cell["suppressed"], &cell["recipients"], &cell["medication"]), (&Value::Null, &json!(5), &october), "{who}");
        }

        // October, alarm answer times (Reference Devices AS's alarm units, BEN-1…5). Counted:
        // al-1 30 s (sent twice: one alert), al-2 45 s, al-3 (pull cord) 90 s, al-4 (fall)
        // 200 s, al-6 60 s, al-7 20 s (answered, then cancelled at the device). Not counted:
        // al-5 (cancelled at the device before an answer), al-8 (inactivity: not a call).
        // Sorted: 20, 30, 45, 60, 90, 200 (n = 6). Median = rank ⌈0.5 × 6⌉ = 3 → 45 s;
        // 90th percentile = rank ⌈0.9 × 6⌉ = ⌈5.4⌉ = 6 → 200 s; within 60 s: 20, 30, 45, 60 =
        // 4 ÷ 6 = 0.6667; within 180 s: 5 ÷ 6 = 0.8333. Recipients BEN-1…5 = 5: shown.
        let answers = json!({ "alarmsCounted": 6, "alarmsAnswered": 6, "medianSeconds": "45", "p90Seconds": "200",
                              "answeredWithin60s": "0.6667", "targetWithin60s": "0.975",
                              "answeredWithin180s": "0.8333", "targetWithin180s": "0.99" });
        for who in [A, "total"] {
            let cell = &cells[&format!("2026-10 ALARM_ANSWER {who}")];
            assert_eq!((&cell["recipients"], &cell["alarmAnswer"]), (&json!(5), &answers), "{who}");
        }

        // Devices online: 12 devices (RD-A1…5, SA-1…5, RD-B1, 2) in service all of both months.
        // Oslo's September: 30 days = 2 592 000 s; October: 31 days + the hour summer time gives
        // back = 2 682 000 s. RD-A1 offline 20:00–01:00 UTC across the boundary (22:00 Oslo on 30
        // September): 7 200 s in September, 10 800 s in October. SA-1 silent 10:00–12:00 UTC on
        // 10 October (the sweep's alert, ended by its heartbeat): 7 200 s.
        // September: 12 × 2 592 000 = 31 104 000 in service, 31 104 000 − 7 200 = 31 096 800
        // online, share 0.999768… → 0.9998. October: 12 × 2 682 000 = 32 184 000, online
        // 32 184 000 − 10 800 − 7 200 = 32 166 000, share 0.999440… → 0.9994. Other Devices AS
        // covers 2 recipients: suppressed, and Reference Devices AS with it.
        for (month, in_service, online, share) in
            [("2026-09", 31_104_000, 31_096_800, "0.9998"), ("2026-10", 32_184_000, 32_166_000, "0.9994")]
        {
            let total = &cells[&format!("{month} DEVICES_ONLINE total")];
            assert_eq!(
                (&total["recipients"], &total["devicesOnline"]),
                (&json!(7), &json!({ "devices": 12, "inServiceSeconds": in_service, "onlineSeconds": online, "share": share })),
                "{month}"
            );
            assert_eq!(cells[&format!("{month} DEVICES_ONLINE {B}")]["suppressed"], "BELOW_THRESHOLD");
            assert_eq!(cells[&format!("{month} DEVICES_ONLINE {A}")]["suppressed"], "COMPLEMENTARY");
        }

        // No suppressed cell can be recovered: in every group with a suppressed supplier cell
        // and a shown total, at least two supplier cells are suppressed, and what the total less
        // the shown cells leaves covers at least the threshold.
        let mut groups: std::collections::BTreeMap<String, Vec<&Value>> = Default::default();
        for cell in figures["cells"].as_array().unwrap() {
            groups.entry(format!("{} {}", cell["month"], cell["indicator"])).or_default().push(cell);
        }
        for (group, members) in &groups {
            let total = members.iter().find(|c| c["total"] == true).unwrap();
            let suppliers: Vec<&&Value> = members.iter().filter(|c| c["total"] == false).collect();
            let hidden = suppliers.iter().filter(|c| !c["suppressed"].is_null()).count();
            if hidden == 0 || !total["suppressed"].is_null() {
                continue;
            }
            assert!(hidden >= 2, "{group}: one suppressed cell would be the total less the others");
            let shown: u64 = suppliers.iter().filter_map(|c| c["recipients"].as_u64()).sum();
            assert!(total["recipients"].as_u64().unwrap() - shown >= 5, "{group}");
            for c in suppliers.iter().filter(|c| !c["suppressed"].is_null()) {
                assert_eq!((&c["recipients"], &c["medication"], &c["alarmAnswer"], &c["devicesOnline"]), (&Value::Null, &Value::Null, &Value::Null, &Value::Null));
            }
        }

        // The programme's adviser reads the same; another municipality, a supplier and the
        // municipality's figures asked by a stranger answer as for no municipality at all.
        let programme_number = crate::procurement::org_number(931);
        let programme = app
            .create_organization(json!({ "kind": "PROGRAMME", "name": "Nasjonalt velferdsteknologiprogram", "orgNumber": programme_number }))
            .await;
        let advisor = app.token(&programme_number, &[Role::Advisor]);
        assert_eq!(app.graphql(Some(&advisor), FIGURES, vars.clone()).await, data);
        let asker = app.token(&fleet.other_municipality, &[Role::MunicipalityAdmin, Role::CaseWorker]);
        let supplier = fleet.supplier_token(&app);
        let nobody = json!({ "m": programme, "from": "2026-09", "to": "2026-10" });
        for token in [&asker, &supplier] {
            assert_eq!(app.graphql(Some(token), FIGURES, vars.clone()).await, json!({ "benefitFigures": null }));
        }
        assert_eq!(app.graphql(Some(&case_worker), FIGURES, nobody).await, json!({ "benefitFigures": null }));
        let (_, anonymous) = app.graphql_raw(None, FIGURES, vars.clone()).await;
        assert_eq!(first_error_code(&anonymous), "UNAUTHENTICATED");
        for (from, to) in [("2026-10", "2026-09"), ("2026-01", "2027-01"), ("2026-9", "2026-10")] {
            let (_, body) = app.graphql_raw(Some(&case_worker), FIGURES, json!({ "m": larvik, "from": from, "to": to })).await;
            assert_eq!(first_error_code(&body), "BAD_USER_INPUT", "{from}..{to}: {body}");
        }

        // The CSV export: the threshold and assumptions first, then the same cells.
        let url = app.url(&format!("/benefits/figures.csv?municipality={larvik}&from=2026-09&to=2026-10"));
        let response = app.client.get(&url).bearer_auth(&case_worker).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let csv = response.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[1].contains("fewer than 5 service recipients is suppressed"), "{csv}");
        assert!(lines[2].contains("within 60 minutes") && lines[2].contains("20 minutes"), "{csv}");
        assert_eq!(lines[3], velferd::benefits::csv::COLUMNS.join(","));
        assert_eq!(lines.len(), 4 + 13, "{csv}");
        let columns = velferd::benefits::csv::COLUMNS;
        let row = |fields: &[(&str, &str)]| {
            let mut row = vec![String::new(); columns.len()];
            for (name, value) in fields {
                row[columns.iter().position(|c| c == name).unwrap()] = value.to_string();
            }
            row.join(",")
        };
        for expected in [
            row(&[("month", "2026-09"), ("indicator", "MEDICATION"), ("supplier", "(total)"), ("recipients", "7"),
                  ("doses_scheduled", "8"), ("doses_on_time", "4"), ("adherence", "0.5000"), ("home_visits_replaced", "3"),
                  ("minutes_per_visit", "20"), ("minutes_freed", "60")]),
            row(&[("month", "2026-09"), ("indicator", "MEDICATION"), ("supplier", B), ("supplier_org_number", &fleet.other_supplier),
                  ("suppressed", "BELOW_THRESHOLD")]),
            row(&[("month", "2026-09"), ("indicator", "MEDICATION"), ("supplier", A), ("supplier_org_number", &fleet.supplier),
                  ("suppressed", "COMPLEMENTARY")]),
            row(&[("month", "2026-10"), ("indicator", "ALARM_ANSWER"), ("supplier", A), ("supplier_org_number", &fleet.supplier),
                  ("recipients", "5"), ("alarms_counted", "6"), ("alarms_answered", "6"), ("median_answer_seconds", "45"),
                  ("p90_answer_seconds", "200"), ("answered_within_60s", "0.6667"), ("target_within_60s", "0.975"),
                  ("answered_within_180s", "0.8333"), ("target_within_180s", "0.99")]),
            row(&[("month", "2026-10"), ("indicator", "DEVICES_ONLINE"), ("supplier", "(total)"), ("recipients", "7"),
                  ("devices", "12"), ("in_service_seconds", "32184000"), ("online_seconds", "32166000"), ("online_share", "0.9994")]),
        ] {
            assert!(lines.contains(&expected.as_str()), "{expected}\n{csv}");
        }
        let response = app.client.get(&url).bearer_auth(&asker).send().await.unwrap();
        assert_eq!(response.status(), 404, "another municipality's figures answer like none");
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 401);
        let bad = app.url(&format!("/benefits/figures.csv?municipality={larvik}&from=2026-13&to=2026-10"));
        let response = app.client.get(&bad).bearer_auth(&case_worker).send().await.unwrap();
        assert_eq!(response.status(), 400);
    }
}

const CREATE: &str = "mutation($input: BenefitIndicatorCreateInput!) { benefitIndicatorCreate(input: $input) {
    benefitIndicator { id name unit baseline { value on } target { value on } municipality { name } procurement { title } measurements { measuredOn value note } }
    userErrors { field code message } } }";
const MEASURE: &str = "mutation($input: BenefitMeasurementAddInput!) { benefitMeasurementAdd(input: $input) {
    benefitIndicator { id measurements { measuredOn value note recordedBy } } userErrors { field code message } } }";
const ONE: &str = "query($id: ID!) { benefitIndicator(id: $id) { id name baseline { value on } target { value on } measurements { measuredOn value note } } }";

on_both_backends! {
    /// Entered indicators: created, measured and read back by the municipality and the
    /// adviser; bad input refused with a code and nothing written; another municipality's
    /// indicator answers like a missing one.
    async fn entered_indicators_are_created_measured_and_kept_to_their_municipality(app) {
        let fleet = Fleet::new(&app).await;
        let larvik_row = org_row(&app, MUNICIPALITY_ORG).await;
        let supplier_row = org_row(&app, &fleet.supplier).await;
        // Larvik leads a procurement in implementation (the shared seed of call-off tests).
        crate::devices::confirmed_call_off(&app, larvik_row, supplier_row).await;
        let procurement = {
            use velferd::procurement::model::procurement;
            let p = procurement::Entity::find()
                .filter(procurement::Column::LeadId.eq(larvik_row))
                .order_by_asc(procurement::Column::Id)
                .one(app.db().read())
                .await
                .unwrap()
                .unwrap();
            global_id(NodeType::Procurement, p.id)
        };
        let officer = app.token(MUNICIPALITY_ORG, &[Role::ProcurementOfficer]);
        let input = |name: &str, baseline: &str, target_on: &str| {
            json!({ "input": { "procurementId": procurement, "name": name, "unit": "visits/week",
                "baseline": { "value": baseline, "on": "2026-01-01" }, "target": { "value": "80", "on": target_on } } })
        };
        let created = app.graphql(Some(&officer), CREATE, input("Home visits for medication", "120.5", "2027-12-31")).await;
        let payload = &created["benefitIndicatorCreate"];
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        let indicator = payload["benefitIndicator"].clone();
        assert_eq!(
            (&indicator["baseline"], &indicator["target"], &indicator["municipality"]["name"], &indicator["procurement"]["title"]),
            (&json!({ "value": "120.5", "on": "2026-01-01" }), &json!({ "value": "80", "on": "2027-12-31" }), &json!("Larvik kommune"), &json!("Trygghetsalarmer"))
        );
        let id = indicator["id"].as_str().unwrap().to_string();
        for (on, value, note) in [("2026-06-30", "101,25", Some("after the first 40 dispensers")), ("2026-03-31", "112", None)] {
            let data = app.graphql(Some(&officer), MEASURE, json!({ "input": { "indicatorId": id, "measuredOn": on, "value": value, "note": note } })).await;
            assert_eq!(data["benefitMeasurementAdd"]["userErrors"], json!([]), "{data}");
        }
        let expected = json!({ "benefitIndicator": { "id": id, "name": "Home visits for medication",
            "baseline": { "value": "120.5", "on": "2026-01-01" }, "target": { "value": "80", "on": "2027-12-31" },
            "measurements": [
                { "measuredOn": "2026-03-31", "value": "112", "note": null },
                { "measuredOn": "2026-06-30", "value": "101.25", "note": "after the first 40 dispensers" } ] } });
        let programme = crate::procurement::org_number(931);
        app.create_organization(json!({ "kind": "PROGRAMME", "name": "Nasjonalt velferdsteknologiprogram", "orgNumber": programme }))
            .await;
        for token in [
            officer.clone(),
            app.token(MUNICIPALITY_ORG, &[Role::CaseWorker]),
            app.token(&programme, &[Role::Advisor]),
        ] {
            assert_eq!(app.graphql(Some(&token), ONE, json!({ "id": id })).await, expected);
        }
        let list = app
            .graphql(
                Some(&officer),
                "query($m: ID!, $p: ID!) { benefitIndicators(municipalityId: $m, procurementId: $p) { id } }",
                json!({ "m": global_id(NodeType::Organization, larvik_row), "p": procurement }),
            )
            .await;
        assert_eq!(list["benefitIndicators"], json!([{ "id": id }]));

        // Bad input: refused with its code, nothing written.
        let asker_officer = app.token(&fleet.other_municipality, &[Role::ProcurementOfficer]);
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            (&officer, input("Visits", "12.34567", "2027-12-31"), "INVALID_DECIMAL", "baseline.value"),
            (&officer, input("Visits", "ten", "2027-12-31"), "INVALID_DECIMAL", "baseline.value"),
            (&officer, input("Visits", "10", "2025-12-31"), "TARGET_BEFORE_BASELINE", "target.on"),
            (&officer, input("Visits for 01017012345", "10", "2027-12-31"), "NATIONAL_ID_REFUSED", "name"),
            (&officer, input("  ", "10", "2027-12-31"), "INVALID_TEXT", "name"),
            (&officer, input("Home visits for medication", "10", "2027-12-31"), "INDICATOR_NAME_TAKEN", "name"),
            (&asker_officer, input("Visits", "10", "2027-12-31"), "NOT_TAKING_PART", "procurementId"),
        ];
        for (token, vars, code, field) in cases {
            let before = app.fingerprint().await;
            let data = app.graphql(Some(token), CREATE, vars).await;
            let errors = &data["benefitIndicatorCreate"]["userErrors"];
            assert_eq!((&errors[0]["code"], &errors[0]["field"]), (&json!(code), &json!(["input", field])), "{data}");
            assert_eq!(data["benefitIndicatorCreate"]["benefitIndicator"], Value::Null);
            before.assert_unchanged(&app.fingerprint().await);
        }
        let missing = velferd::benefits::indicator_id(999_999);
        let measure = |id: &str, on: &str, value: &str| json!({ "input": { "indicatorId": id, "measuredOn": on, "value": value } });
        let tomorrow = (Utc::now() + Duration::days(1)).date_naive().to_string();
        let cases: Vec<(&str, Value, &str)> = vec![
            (&officer, measure(&id, "2026-03-31", "1"), "MEASUREMENT_DATE_TAKEN"),
            (&officer, measure(&id, "2025-12-31", "1"), "MEASURED_BEFORE_BASELINE"),
            (&officer, measure(&id, &tomorrow, "1"), "MEASURED_IN_FUTURE"),
            (&officer, measure(&id, "2026-04-30", "1.00001"), "INVALID_DECIMAL"),
            (&officer, measure(&missing, "2026-04-30", "1"), "NOT_FOUND"),
            (&asker_officer, measure(&id, "2026-04-30", "1"), "NOT_FOUND"),
        ];
        for (token, vars, code) in cases {
            let before = app.fingerprint().await;
            let data = app.graphql(Some(token), MEASURE, vars).await;
            assert_eq!(data["benefitMeasurementAdd"]["userErrors"][0]["code"], code, "{data}");
            before.assert_unchanged(&app.fingerprint().await);
        }
        // Another municipality's indicator answers exactly like one that does not exist.
        let asker = app.token(&fleet.other_municipality, &[Role::ProcurementOfficer, Role::CaseWorker, Role::MunicipalityAdmin]);
        let hidden = app.graphql_raw(Some(&asker), ONE, json!({ "id": id })).await;
        let absent = app.graphql_raw(Some(&asker), ONE, json!({ "id": missing })).await;
        assert_eq!(hidden.1["data"], json!({ "benefitIndicator": null }));
        assert_eq!((hidden.0, &hidden.1["data"]), (absent.0, &absent.1["data"]));
        let their_add = app.graphql(Some(&asker_officer), MEASURE, measure(&id, "2026-04-30", "1")).await;
        let missing_add = app.graphql(Some(&asker_officer), MEASURE, measure(&missing, "2026-04-30", "1")).await;
        assert_eq!(their_add, missing_add);
        // A role that does not enter indicators, and anonymous callers, are refused at the top.
        let (_, body) = app.graphql_raw(Some(&app.token(MUNICIPALITY_ORG, &[Role::CaseWorker])), MEASURE, measure(&id, "2026-04-30", "1")).await;
        assert_eq!(first_error_code(&body), "FORBIDDEN");
        let (_, body) = app.graphql_raw(None, ONE, json!({ "id": id })).await;
        assert_eq!(first_error_code(&body), "UNAUTHENTICATED");
    }
}

const ASSUME: &str = "mutation($input: BenefitAssumptionsSetInput!) { benefitAssumptionsSet(input: $input) {
    benefitAssumptions { doseWindowMinutes minutesPerVisit } userErrors { field code } } }";

on_both_backends! {
    /// The municipality's admin sets its assumptions; out-of-range values and other roles are
    /// refused with nothing written.
    async fn assumptions_are_the_municipality_admins_to_set(app) {
        let _fleet = Fleet::new(&app).await;
        let larvik = global_id(NodeType::Organization, org_row(&app, MUNICIPALITY_ORG).await);
        let admin = app.token(MUNICIPALITY_ORG, &[Role::MunicipalityAdmin]);
        let read = "query($m: ID!) { benefitAssumptions(municipalityId: $m) { doseWindowMinutes minutesPerVisit } }";
        assert_eq!(
            app.graphql(Some(&admin), read, json!({ "m": larvik })).await["benefitAssumptions"],
            json!({ "doseWindowMinutes": 60, "minutesPerVisit": null }),
            "the defaults"
        );
        let data = app.graphql(Some(&admin), ASSUME, json!({ "input": { "doseWindowMinutes": 90, "minutesPerVisit": 25 } })).await;
        assert_eq!(data["benefitAssumptionsSet"]["benefitAssumptions"], json!({ "doseWindowMinutes": 90, "minutesPerVisit": 25 }));
        for (input, code, field) in [
            (json!({ "doseWindowMinutes": 0, "minutesPerVisit": 25 }), "INVALID_DOSE_WINDOW", "doseWindowMinutes"),
            (json!({ "doseWindowMinutes": 721, "minutesPerVisit": 25 }), "INVALID_DOSE_WINDOW", "doseWindowMinutes"),
            (json!({ "doseWindowMinutes": 60, "minutesPerVisit": 481 }), "INVALID_MINUTES_PER_VISIT", "minutesPerVisit"),
        ] {
            let before = app.fingerprint().await;
            let data = app.graphql(Some(&admin), ASSUME, json!({ "input": input })).await;
            assert_eq!(data["benefitAssumptionsSet"]["userErrors"], json!([{ "field": ["input", field], "code": code }]));
            before.assert_unchanged(&app.fingerprint().await);
        }
        let before = app.fingerprint().await;
        let officer = app.token(MUNICIPALITY_ORG, &[Role::ProcurementOfficer]);
        let (_, body) = app.graphql_raw(Some(&officer), ASSUME, json!({ "input": { "doseWindowMinutes": 30 } })).await;
        assert_eq!(first_error_code(&body), "FORBIDDEN");
        before.assert_unchanged(&app.fingerprint().await);
        assert_eq!(
            app.graphql(Some(&officer), read, json!({ "m": larvik })).await["benefitAssumptions"],
            json!({ "doseWindowMinutes": 90, "minutesPerVisit": 25 })
        );
    }
}
