//! Webhooks over real HTTPS (docs/webhooks.md): an alert raised by ingest reaches a receiver on
//! 127.0.0.1 with a generated certificate, signed `v1` (checked by the independent
//! `standardwebhooks` crate) and `v1a` (checked with ed25519-dalek over the spec's signed
//! content); retries on the schedule while the receiver is down, `Retry-After`, redirects not
//! followed, 410 disabling the endpoint; a delivery pending when the server is killed is sent
//! after restart with the same `webhook-id`; registration refuses every SSRF shape; fan-out
//! from the outbox, rotation, replay and authorization.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use velferd::auth::Role;
use velferd::ids::{NodeType, global_id};

use crate::alerts::Centre;
use crate::devices::{ALARM, ingest};
use crate::nodes::NodeSample;
use crate::receiver::{Receiver, Recorded, Scripted};
use crate::serve::Server;
use crate::support::{Backend, MUNICIPALITY_ORG, Options, TestApp, assert_byte_identical, on_each_backend as on_both};

/// A short schedule: immediately, then every half second, ten attempts in all.
pub(crate) const FAST: &str = "0s,500ms,500ms,500ms,500ms,500ms,500ms,500ms,500ms,500ms";

/// The settings a server needs to send to `receiver` on loopback, trusting its certificate.
pub(crate) fn pairs(receiver: &Receiver, schedule: &str) -> Vec<(&'static str, String)> {
    vec![
        ("VELFERD_OUTBOUND_ALLOW_LOOPBACK", "true".into()),
        ("VELFERD_OUTBOUND_TRUST_ROOTS_FILE", receiver.ca_file().display().to_string()),
        ("VELFERD_WEBHOOK_RETRY_SCHEDULE", schedule.into()),
        ("VELFERD_WEBHOOK_POLL_MS", "100".into()),
        ("VELFERD_LIVE_POLL_MS", "200".into()),
        // The tests poll the delivery log.
        ("VELFERD_THROTTLE_CAPACITY", "10000000".into()),
        ("VELFERD_THROTTLE_RESTORE_RATE", "10000000".into()),
    ]
}

/// A server on `backend` sending to `receiver`; `None` when PostgreSQL is not configured.
async fn spawn(backend: Backend, receiver: &Receiver, schedule: &str) -> Option<TestApp> {
    TestApp::spawn_with(backend, Options { pairs: pairs(receiver, schedule), demo: false }).await
}

/// A receiver; a server on `backend` sending to it on the [`FAST`] schedule, with the response
/// centre's world; the municipality admin's token. `None` when PostgreSQL is not configured.
async fn centre_sending_to_a_receiver(backend: Backend) -> Option<(Receiver, TestApp, Centre, String)> {
    let receiver = Receiver::start().await;
    let app = spawn(backend, &receiver, FAST).await?;
    let world = Centre::new(&app).await;
    let admin = world.municipality_admin(&app);
    Some((receiver, app, world, admin))
}

/// The unit the recipient `tm-0042` holds (`Centre`), and two more of the municipality's.
const UNIT: &str = "SA-7734001";
const OTHER_UNITS: [&str; 2] = ["SA-7734002", "SA-7734003"];

/// Alarm unit `unit` sends an alarm-button press (SCAIP `ME`) with reference `reference`.
async fn press(app: &TestApp, world: &Centre, unit: &str, reference: &str) {
    let body = format!(
        "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>{unit}</cid><dty>005</dty><mty>ME</mty><stc>001</stc><lco>010</lco></mrq>"
    );
    let token = world.fleet.integration_token(app);
    let (status, reply) = ingest(app, &token, ALARM, "application/xml", body.into_bytes()).await;
    assert_eq!(status, 200, "{reply}");
}

const CREATE: &str = "mutation($input: WebhookEndpointCreateInput!) { webhookEndpointCreate(input: $input) {
    endpoint { id url eventTypes enabled publicKey } secret publicKey userErrors { field code message } } }";

/// `webhookEndpointCreate` as `token`; its payload.
async fn register(app: &TestApp, token: &str, url: &str, types: &[&str]) -> Value {
    let input = json!({ "url": url, "eventTypes": types, "description": "EPJ-integrasjon" });
    app.graphql(Some(token), CREATE, json!({ "input": input })).await["webhookEndpointCreate"].clone()
}

/// An endpoint made: (id, secret, public key).
pub(crate) async fn registered(app: &TestApp, token: &str, url: &str, types: &[&str]) -> (String, String, String) {
    let payload = register(app, token, url, types).await;
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    let text = |v: &Value| v.as_str().unwrap_or_else(|| panic!("{payload}")).to_string();
    assert_eq!(payload["publicKey"], payload["endpoint"]["publicKey"]);
    (text(&payload["endpoint"]["id"]), text(&payload["secret"]), text(&payload["publicKey"]))
}

const LOG: &str = "query($id: ID!) { node(id: $id) { ... on WebhookEndpoint { enabled disabledReason disabledBy
    deliveries(first: 20) { nodes { id webhookId sequence eventType status attemptCount payload
      attempts(first: 20) { nodes { number at statusCode failure latencyMs responseExcerpt } } } } } } }";

/// The endpoint as its owner reads it, with its delivery log (newest first).
async fn endpoint(app: &TestApp, token: &str, id: &str) -> Value {
    let data = app.graphql(Some(token), LOG, json!({ "id": id })).await;
    assert!(data["node"].is_object(), "{data}");
    data["node"].clone()
}

/// The endpoint's deliveries, newest first.
async fn deliveries(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    endpoint(app, token, id).await["deliveries"]["nodes"].as_array().unwrap().clone()
}

/// Polls `probe` until it answers `Some`, for at most `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The requests once at least `n` arrived, within `seconds`.
async fn arrived(receiver: &Receiver, n: usize, seconds: u64) -> Vec<Recorded> {
    let requests = receiver.wait_for_requests(n, Duration::from_secs(seconds)).await;
    assert!(requests.len() >= n, "{} requests arrived within {seconds} s, not {n}", requests.len());
    requests
}

/// A request's header, which must be there.
fn header(request: &Recorded, name: &str) -> String {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// Checks every `v1` signature of `request` with the independent Standard Webhooks library
/// under `secret`: at least one must verify.
fn verify_v1(secret: &str, request: &Recorded) -> Result<(), standardwebhooks::WebhookError> {
    let mut headers = reqwest::header::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, header(request, name).parse().unwrap());
    }
    standardwebhooks::Webhook::new(secret)?.verify(&request.body, &headers)
}

/// Checks the `v1a` signature of `request`: Ed25519 over `id.timestamp.body` under the
/// `whpk_` key (base64 of the 32-byte public key), as docs/webhooks.md documents.
fn verify_v1a(public_key: &str, request: &Recorded) {
    use ed25519_dalek::{Signature, VerifyingKey};
    let raw: [u8; 32] =
        STANDARD.decode(public_key.strip_prefix("whpk_").expect("whpk_ prefix")).unwrap().try_into().unwrap();
    let key = VerifyingKey::from_bytes(&raw).unwrap();
    let signatures = header(request, "webhook-signature");
    let v1a: Vec<&str> = signatures.split(' ').filter_map(|s| s.strip_prefix("v1a,")).collect();
    assert_eq!(v1a.len(), 1, "{signatures}");
    let sig: [u8; 64] = STANDARD.decode(v1a[0]).unwrap().try_into().unwrap();
    let mut content =
        format!("{}.{}.", header(request, "webhook-id"), header(request, "webhook-timestamp")).into_bytes();
    content.extend_from_slice(&request.body);
    key.verify_strict(&content, &Signature::from_bytes(&sig)).expect("v1a verifies");
}

on_both! {
    /// Must show 1: an alert raised by ingest reaches the receiver over HTTPS, signed `v1` as
    /// the standardwebhooks crate verifies and `v1a` as Ed25519 verifies; the body is thin (ids,
    /// kind, time, link — no recipient reference) and the delivery log says it succeeded.
    async fn an_alert_reaches_the_receiver_signed_v1_and_v1a(backend) {
        let Some((receiver, app, world, admin)) = centre_sending_to_a_receiver(backend).await else { return };
        let url = receiver.url("/hooks/velferd");
        let (id, secret, public_key) = registered(&app, &admin, &url, &["ALERT_RAISED"]).await;
        assert!(secret.starts_with("whsec_") && public_key.starts_with("whpk_"), "{secret} {public_key}");

        press(&app, &world, UNIT, "W-1").await;
        arrived(&receiver, 1, 20).await;
        let request = receiver.requests().remove(0);
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks/velferd"));
        verify_v1(&secret, &request).expect("v1 verifies with the standardwebhooks crate");
        verify_v1a(&public_key, &request);
        // Tampering is caught by both.
        let mut tampered = receiver.requests().remove(0);
        tampered.body = [&tampered.body[..], b" "].concat().into();
        assert!(verify_v1(&secret, &tampered).is_err());
        assert!(verify_v1(&format!("whsec_{}", STANDARD.encode([7u8; 32])), &request).is_err());

        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let alert = world.operator(&app);
        let queue = app.graphql(Some(&alert), "{ alerts(first: 5) { nodes { id kind } } }", json!({})).await;
        let alert_id = queue["alerts"]["nodes"][0]["id"].clone();
        assert_eq!(body["type"], "alert.raised");
        assert_eq!(body["data"]["alertId"], alert_id);
        assert_eq!(body["data"]["kind"], "alarm-button");
        assert_eq!(body["data"]["link"], format!("http://{}/graphql", app.addr));
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        let text = String::from_utf8(request.body.to_vec()).unwrap();
        assert!(!text.contains("tm-0042"), "no recipient reference leaves: {text}");
        assert_eq!(header(&request, "content-type"), "application/json");
        assert_eq!(header(&request, "webhook-sequence"), "1");

        let log = deliveries(&app, &admin, &id).await;
        assert_eq!(log.len(), 1, "{log:?}");
        let delivery = &log[0];
        assert_eq!(delivery["webhookId"], header(&request, "webhook-id"));
        assert!(delivery["webhookId"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(delivery["payload"], text, "the log keeps the body byte for byte");
        let delivery = eventually("the success recorded", Duration::from_secs(10), || async {
            let log = deliveries(&app, &admin, &id).await;
            (log[0]["status"] == "SUCCEEDED").then(|| log[0].clone())
        })
        .await;
        assert_eq!(delivery["attemptCount"], 1);
        let attempt = &delivery["attempts"]["nodes"][0];
        assert_eq!((&attempt["number"], &attempt["statusCode"], &attempt["failure"]), (&json!(1), &json!(200), &Value::Null));
    }
}

/// The times of a delivery's attempts.
fn attempt_times(delivery: &Value) -> Vec<chrono::DateTime<chrono::Utc>> {
    delivery["attempts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["at"].as_str().unwrap().parse().unwrap())
        .collect()
}

const TEST: &str = "mutation($id: ID!) { webhookEndpointTest(input: { endpointId: $id }) {
    delivery { id webhookId eventType status } userErrors { field code message } } }";

/// Sends a test event to endpoint `id`; its delivery.
async fn test_event(app: &TestApp, token: &str, id: &str) -> Value {
    let data = app.graphql(Some(token), TEST, json!({ "id": id })).await;
    assert_eq!(data["webhookEndpointTest"]["userErrors"], json!([]), "{data}");
    data["webhookEndpointTest"]["delivery"].clone()
}

/// The delivery `webhook_id` of endpoint `id` once `done` holds of it.
async fn delivery_when(app: &TestApp, token: &str, id: &str, webhook_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("delivery {webhook_id}"), Duration::from_secs(20), || async {
        let log = deliveries(app, token, id).await;
        log.into_iter().find(|d| d["webhookId"] == webhook_id && done(d))
    })
    .await
}

on_both! {
    /// Must show 2: with the receiver down, attempts follow the schedule; once it is back the
    /// delivery arrives and is recorded once as a success, with the same `webhook-id`. A 503
    /// with `Retry-After` waits as asked; a 302 is a failure and is not followed; a 410
    /// disables the endpoint (reason GONE) and nothing more is sent to it.
    async fn retries_follow_the_schedule_and_answers_are_honoured(backend) {
        let Some((receiver, app, world, admin)) = centre_sending_to_a_receiver(backend).await else { return };
        let (id, secret, _) = registered(&app, &admin, &receiver.url("/hook"), &["ALERT_RAISED"]).await;

        receiver.stop().await;
        press(&app, &world, UNIT, "R-1").await;
        let failing = eventually("three failed attempts", Duration::from_secs(20), || async {
            let log = deliveries(&app, &admin, &id).await;
            log.first().filter(|d| d["attemptCount"].as_i64().unwrap() >= 3).cloned()
        })
        .await;
        let times = attempt_times(&failing);
        for pair in times.windows(2) {
            let gap = (pair[1] - pair[0]).num_milliseconds();
            // 500 ms, less a fifth of jitter.
            assert!(gap >= 390, "attempts {gap} ms apart: {times:?}");
        }
        for attempt in failing["attempts"]["nodes"].as_array().unwrap() {
            assert_eq!(attempt["statusCode"], Value::Null, "{attempt}");
            assert!(attempt["failure"].is_string(), "{attempt}");
        }
        receiver.restart().await;
        let webhook_id = failing["webhookId"].as_str().unwrap().to_string();
        let done = delivery_when(&app, &admin, &id, &webhook_id, |d| d["status"] == "SUCCEEDED").await;
        let succeeded: Vec<&Value> =
            done["attempts"]["nodes"].as_array().unwrap().iter().filter(|a| a["statusCode"] == 200).collect();
        assert_eq!(succeeded.len(), 1, "recorded once as a success: {done}");
        assert_eq!(done["attempts"]["nodes"].as_array().unwrap().last().unwrap()["statusCode"], 200);
        let requests = receiver.requests();
        assert_eq!(requests.len(), 1, "only the last attempt reached it");
        assert_eq!(header(&requests[0], "webhook-id"), webhook_id);
        verify_v1(&secret, &requests[0]).unwrap();

        // 503 with Retry-After: 2 — the next attempt waits two seconds, not the schedule's 500 ms.
        receiver
            .respond_with(vec![Scripted {
                status: 503,
                headers: vec![("retry-after".into(), "2".into())],
                body: "busy".into(),
                delay: None,
            }]);
        let before = receiver.requests().len();
        let busy = test_event(&app, &admin, &id).await;
        let busy_id = busy["webhookId"].as_str().unwrap().to_string();
        arrived(&receiver, before + 2, 20).await;
        let requests = receiver.requests();
        let (first, second) = (&requests[before], &requests[before + 1]);
        assert_eq!((header(first, "webhook-id"), header(second, "webhook-id")), (busy_id.clone(), busy_id.clone()));
        let waited = second.received_at.duration_since(first.received_at).unwrap();
        assert!(waited >= Duration::from_millis(1900), "Retry-After: 2 honoured, waited {waited:?}");
        let done = delivery_when(&app, &admin, &id, &busy_id, |d| d["status"] == "SUCCEEDED").await;
        let attempts = done["attempts"]["nodes"].as_array().unwrap();
        assert_eq!((&attempts[0]["statusCode"], &attempts[0]["responseExcerpt"]), (&json!(503), &json!("busy")));
        assert_eq!(attempts[1]["statusCode"], 200);

        // A redirect is a failure: retried on the schedule, never followed.
        let elsewhere = receiver.url("/elsewhere");
        receiver
            .respond_with(vec![Scripted {
                status: 302,
                headers: vec![("location".into(), elsewhere)],
                body: String::new(),
                delay: None,
            }]);
        let before = receiver.requests().len();
        let moved = test_event(&app, &admin, &id).await;
        let moved_id = moved["webhookId"].as_str().unwrap().to_string();
        let done = delivery_when(&app, &admin, &id, &moved_id, |d| d["status"] == "SUCCEEDED").await;
        let attempts = done["attempts"]["nodes"].as_array().unwrap();
        assert_eq!((&attempts[0]["statusCode"], &attempts[1]["statusCode"]), (&json!(302), &json!(200)));
        let after: Vec<String> = receiver.requests()[before..].iter().map(|r| r.path.clone()).collect();
        assert_eq!(after, ["/hook", "/hook"], "the Location was not followed");

        // 410 Gone disables the endpoint; later events are not sent to it.
        receiver
            .respond_with(vec![Scripted { status: 410, headers: vec![], body: String::new(), delay: None }]);
        let gone = test_event(&app, &admin, &id).await;
        let gone_id = gone["webhookId"].as_str().unwrap().to_string();
        let done = delivery_when(&app, &admin, &id, &gone_id, |d| d["status"] == "FAILED").await;
        assert_eq!(done["attemptCount"], 1);
        let state = endpoint(&app, &admin, &id).await;
        assert_eq!((&state["enabled"], &state["disabledReason"], &state["disabledBy"]), (&json!(false), &json!("GONE"), &json!("velferd")));
        let count = receiver.requests().len();
        press(&app, &world, OTHER_UNITS[0], "R-2").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(receiver.requests().len(), count, "nothing is sent to a disabled endpoint");
        let log = deliveries(&app, &admin, &id).await;
        assert!(log.iter().all(|d| d["eventType"] != "alert.raised" || d["webhookId"] == webhook_id.as_str()), "{log:?}");
    }
}

on_both! {
    /// A device's status change is announced once in the outbox, by the mutation that makes it,
    /// and reaches an endpoint that asked for `device.status` — thin: the device's id and its
    /// new status.
    async fn a_device_status_change_reaches_the_endpoint(backend) {
        let Some((receiver, app, world, admin)) = centre_sending_to_a_receiver(backend).await else { return };
        let (_, secret, public_key) = registered(&app, &admin, &receiver.url("/status"), &["DEVICE_STATUS"]).await;
        let device = global_id(NodeType::Device, crate::rows::device(&app, OTHER_UNITS[0]).await.id).to_string();
        let change = "mutation($input: DeviceStatusChangeInput!) { deviceStatusChange(input: $input) {
            device { id status } userErrors { code } } }";
        let input = json!({ "deviceId": device, "status": "FAULTY" });
        let data = app.graphql(Some(&world.case_worker(&app)), change, json!({ "input": input })).await;
        assert_eq!(data["deviceStatusChange"]["userErrors"], json!([]), "{data}");
        arrived(&receiver, 1, 20).await;
        let request = receiver.requests().remove(0);
        verify_v1(&secret, &request).unwrap();
        verify_v1a(&public_key, &request);
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["type"], "device.status");
        assert_eq!((&body["data"]["deviceId"], &body["data"]["status"]), (&json!(device), &json!("FAULTY")));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(receiver.requests().len(), 1, "one change, one request");
    }
}

/// The delivery rows in the database, oldest first: (webhook-id, status, attempts, lease).
async fn stored(app: &TestApp) -> Vec<(String, String, i32, Option<i64>)> {
    use sea_orm::{ActiveEnum, EntityTrait, QueryOrder};
    use velferd::webhooks::model::webhook_delivery;
    webhook_delivery::Entity::find()
        .order_by_asc(webhook_delivery::Column::Id)
        .all(app.db().write())
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.message_id, d.status.to_value(), d.attempts, d.lease_until_ms))
        .collect()
}

on_both! {
    /// Must show 2: a delivery pending when the server process is killed with SIGKILL — once
    /// while it waits for its next attempt, once in the middle of an attempt (its lease
    /// held) — is delivered by the restarted process, with the same `webhook-id`.
    async fn a_delivery_pending_at_sigkill_is_sent_after_restart_with_the_same_id(backend) {
        let receiver = Receiver::start().await;
        // This in-process server only sets up and ingests: it sends no webhooks itself.
        let mut options = pairs(&receiver, FAST);
        options.push(("VELFERD_WEBHOOK_CONCURRENCY", "0".into()));
        let Some(app) = TestApp::spawn_with(backend, Options { pairs: options, demo: false }).await else { return };
        let world = Centre::new(&app).await;
        let admin = world.municipality_admin(&app);
        let (id, secret, _) = registered(&app, &admin, &receiver.url("/hook"), &["ALERT_RAISED"]).await;
        let mut process = pairs(&receiver, "0s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s");
        process.push(("VELFERD_WEBHOOK_LEASE", "3s".into()));
        process.push(("VELFERD_OUTBOUND_TIMEOUT", "2s".into()));
        let database_url = app.settings.database_url.clone();

        // Waiting for its next attempt: the receiver is down.
        receiver.stop().await;
        let first = Server::start(&database_url, &process);
        press(&app, &world, UNIT, "K-1").await;
        let pending = eventually("an attempt by the first process", Duration::from_secs(20), || async {
            let rows = stored(&app).await;
            rows.first().filter(|d| d.2 >= 1).cloned()
        })
        .await;
        assert_eq!(pending.1, "pending");
        first.kill();
        receiver.restart().await;
        let second = Server::start(&database_url, &process);
        arrived(&receiver, 1, 20).await;
        assert_eq!(header(&receiver.requests()[0], "webhook-id"), pending.0);
        verify_v1(&secret, &receiver.requests()[0]).unwrap();
        eventually("recorded as sent", Duration::from_secs(10), || async {
            let rows = stored(&app).await;
            (rows[0].1 == "succeeded").then_some(())
        })
        .await;

        // In the middle of an attempt: the receiver holds the request 30 s; the process dies
        // holding the lease, which expires, and the next process sends it again.
        receiver
            .respond_with(vec![Scripted {
                status: 200,
                headers: vec![],
                body: String::new(),
                delay: Some(Duration::from_secs(30)),
            }]);
        press(&app, &world, OTHER_UNITS[0], "K-2").await;
        arrived(&receiver, 2, 20).await;
        let leased = stored(&app).await.pop().unwrap();
        assert!(leased.3.is_some(), "the attempt holds a lease: {leased:?}");
        second.kill();
        let _third = Server::start(&database_url, &process);
        arrived(&receiver, 3, 30).await;
        let requests = receiver.requests();
        assert_eq!(header(&requests[1], "webhook-id"), leased.0);
        assert_eq!(header(&requests[2], "webhook-id"), leased.0, "sent again with the same id");
        eventually("recorded as sent", Duration::from_secs(10), || async {
            let rows = stored(&app).await;
            (rows.last().unwrap().1 == "succeeded").then_some(())
        })
        .await;
        let log = deliveries(&app, &admin, &id).await;
        assert_eq!(log.len(), 2, "{log:?}");
    }
}

on_both! {
    /// Must show 2: registration refuses every SSRF shape — loopback by name and address,
    /// private and link-local ranges, IPv4-mapped IPv6, 0.0.0.0, plain http — when loopback is
    /// not allowed, with the reason's code on `url`, and writes nothing.
    async fn registration_refuses_ssrf_urls_and_changes_nothing(backend) {
        let Some(app) = TestApp::spawn_with(backend, Options::default()).await else { return };
        app.create_organization(json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": MUNICIPALITY_ORG,
            "municipalityNumber": "3805", "county": "Vestfold" }))
            .await;
        let admin = app.token(MUNICIPALITY_ORG, &[Role::MunicipalityAdmin]);
        for url in [
            "https://localhost/hook",
            "https://127.0.0.1/hook",
            "https://127.1.2.3:8443/hook",
            "https://[::1]/hook",
            "https://10.0.0.5/hook",
            "https://172.16.1.1/hook",
            "https://192.168.1.10/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:127.0.0.1]/hook",
            "https://[::ffff:10.0.0.1]/hook",
            "https://[fd00::1]/hook",
            "https://0.0.0.0/hook",
            "https://0/hook",
            "http://example.org/hook",
            "ftp://example.org/hook",
            "not a url",
        ] {
            let before = app.fingerprint().await;
            let payload = register(&app, &admin, url, &["ALERT_RAISED"]).await;
            before.assert_unchanged(&app.fingerprint().await);
            assert_eq!(payload["endpoint"], Value::Null, "{url}: {payload}");
            assert_eq!(payload["secret"], Value::Null, "{url}: {payload}");
            let error = &payload["userErrors"][0];
            assert_eq!(error["field"], json!(["input", "url"]), "{url}: {payload}");
            let code = error["code"].as_str().unwrap();
            assert!(!code.is_empty() && code != "NOT_FOUND", "{url}: {code}");
        }
    }
}

const ROTATE: &str = "mutation($id: ID!) { webhookEndpointRotateSecret(input: { endpointId: $id }) {
    endpoint { id previousSecretValidUntil } secret userErrors { field code message } } }";
const REPLAY: &str = "mutation($input: WebhookDeliveriesReplayInput!) { webhookDeliveriesReplay(input: $input) {
    deliveries { id webhookId status } userErrors { field code message } } }";
const DISABLE: &str = "mutation($id: ID!) { webhookEndpointDisable(input: { endpointId: $id }) {
    endpoint { id enabled disabledReason } userErrors { field code message } } }";

/// The outbox's row count.
async fn outbox_rows(app: &TestApp) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    velferd::live::model::outbox::Entity::find().count(app.db().write()).await.unwrap()
}

on_both! {
    /// Fan-out comes from the outbox: three endpoints add no outbox rows and each gets the
    /// event with the same `webhook-id`. A rotation signs with both secrets; a replay re-sends
    /// with the same id; another organisation's endpoint answers like a missing one.
    async fn fan_out_rotation_replay_and_authorization(backend) {
        let Some((receiver, app, world, admin)) = centre_sending_to_a_receiver(backend).await else { return };

        // One alert with no endpoint: how many outbox rows an alarm press writes.
        let before = outbox_rows(&app).await;
        press(&app, &world, OTHER_UNITS[1], "F-0").await;
        let per_press = outbox_rows(&app).await - before;
        assert!(per_press >= 1);

        let mut endpoints = Vec::new();
        for path in ["/a", "/b", "/c"] {
            endpoints.push(registered(&app, &admin, &receiver.url(path), &["ALERT_RAISED", "DEVICE_EVENT"]).await);
        }
        let before = outbox_rows(&app).await;
        press(&app, &world, UNIT, "F-1").await;
        assert_eq!(outbox_rows(&app).await - before, per_press, "endpoints add no outbox rows");
        // Each endpoint: the device event and the alert — not those of `F-0`, announced before
        // the endpoints were registered.
        arrived(&receiver, 6, 20).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let requests = receiver.requests();
        for kind in ["alert.raised", "device.event"] {
            let of_kind: Vec<&Recorded> = requests
                .iter()
                .filter(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"] == kind)
                .collect();
            assert_eq!(of_kind.len(), 3, "{kind}");
            let mut paths: Vec<&str> = of_kind.iter().map(|r| r.path.as_str()).collect();
            paths.sort();
            assert_eq!(paths, ["/a", "/b", "/c"]);
            let ids: std::collections::BTreeSet<String> = of_kind.iter().map(|r| header(r, "webhook-id")).collect();
            assert_eq!(ids.len(), 1, "one webhook-id per event, for every endpoint: {ids:?}");
            let bodies: std::collections::BTreeSet<&[u8]> = of_kind.iter().map(|r| &r.body[..]).collect();
            assert_eq!(bodies.len(), 1, "one body per event");
        }
        for (i, (_, secret, public_key)) in endpoints.iter().enumerate() {
            let path = ["/a", "/b", "/c"][i];
            for r in requests.iter().filter(|r| r.path == path) {
                verify_v1(secret, r).unwrap();
                verify_v1a(public_key, r);
            }
        }

        // Rotation: the next attempt carries two v1 signatures, one per secret.
        let (id, old_secret, _) = &endpoints[0];
        let data = app.graphql(Some(&admin), ROTATE, json!({ "id": id })).await;
        let rotated = &data["webhookEndpointRotateSecret"];
        assert_eq!(rotated["userErrors"], json!([]), "{data}");
        let new_secret = rotated["secret"].as_str().unwrap().to_string();
        assert_ne!(&new_secret, old_secret);
        assert!(rotated["endpoint"]["previousSecretValidUntil"].is_string(), "{data}");
        let count = receiver.requests().len();
        test_event(&app, &admin, id).await;
        arrived(&receiver, count + 1, 20).await;
        let request = receiver.requests().remove(count);
        let signatures = header(&request, "webhook-signature");
        assert_eq!(signatures.split(' ').filter(|s| s.starts_with("v1,")).count(), 2, "{signatures}");
        verify_v1(&new_secret, &request).expect("the new secret verifies");
        verify_v1(old_secret, &request).expect("the old secret verifies during the grace");
        assert_eq!(serde_json::from_slice::<Value>(&request.body).unwrap()["type"], "webhook.test");

        // Replay by id and by time range: sent again with the same webhook-id.
        let log = deliveries(&app, &admin, id).await;
        let alert = log.iter().find(|d| d["eventType"] == "alert.raised").unwrap().clone();
        let webhook_id = alert["webhookId"].as_str().unwrap().to_string();
        delivery_when(&app, &admin, id, &webhook_id, |d| d["status"] == "SUCCEEDED").await;
        let count = receiver.requests().len();
        let input = json!({ "endpointId": id, "deliveryIds": [alert["id"]] });
        let data = app.graphql(Some(&admin), REPLAY, json!({ "input": input })).await;
        assert_eq!(data["webhookDeliveriesReplay"]["userErrors"], json!([]), "{data}");
        assert_eq!(data["webhookDeliveriesReplay"]["deliveries"][0]["status"], "PENDING");
        arrived(&receiver, count + 1, 20).await;
        assert_eq!(header(&receiver.requests()[count], "webhook-id"), webhook_id);
        let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        let until = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
        let replayed = delivery_when(&app, &admin, id, &webhook_id, |d| d["status"] == "SUCCEEDED").await;
        assert!(replayed["attemptCount"].as_i64().unwrap() >= 2);
        let count = receiver.requests().len();
        let input = json!({ "endpointId": id, "since": since, "until": until });
        let data = app.graphql(Some(&admin), REPLAY, json!({ "input": input })).await;
        let again = data["webhookDeliveriesReplay"]["deliveries"].as_array().unwrap_or_else(|| panic!("{data}")).len();
        assert_eq!(again, log.len(), "every delivery of the last hour");
        arrived(&receiver, count + again, 20).await;
        let ids: std::collections::BTreeSet<String> =
            receiver.requests()[count..].iter().map(|r| header(r, "webhook-id")).collect();
        let logged: std::collections::BTreeSet<String> =
            log.iter().map(|d| d["webhookId"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids, logged, "replayed with their own ids");

        // Every delivery settled, so the fingerprints below see no worker writing.
        eventually("every delivery sent", Duration::from_secs(20), || async {
            stored(&app).await.iter().all(|d| d.1 == "succeeded").then_some(())
        })
        .await;

        // Another municipality's admin: the endpoint answers like a missing one, and nothing
        // changes. A case worker of the owner may not manage webhooks at all.
        let other = app.token(&world.fleet.other_municipality, &[Role::MunicipalityAdmin]);
        let missing = global_id(NodeType::WebhookEndpoint, 987_654).to_string();
        let before = app.fingerprint().await;
        let hidden = app.graphql_bytes(Some(&other), DISABLE, json!({ "id": id })).await;
        let absent = app.graphql_bytes(Some(&other), DISABLE, json!({ "id": missing })).await;
        assert_byte_identical(&hidden, &absent, id, &missing);
        let node = app.graphql(Some(&other), "query($id: ID!) { node(id: $id) { id } }", json!({ "id": id })).await;
        assert_eq!(node["node"], Value::Null);
        let listed = app.graphql(Some(&other), "{ webhookEndpoints(first: 10) { totalCount } }", json!({})).await;
        assert_eq!(listed["webhookEndpoints"]["totalCount"], 0);
        let (_, forbidden) = app.graphql_raw(Some(&world.case_worker(&app)), DISABLE, json!({ "id": id })).await;
        assert_eq!(crate::support::first_error_code(&forbidden), "FORBIDDEN", "{forbidden}");
        before.assert_unchanged(&app.fingerprint().await);
        let mine = app.graphql(Some(&admin), "{ webhookEndpoints(first: 10) { totalCount } }", json!({})).await;
        assert_eq!(mine["webhookEndpoints"]["totalCount"], 3);
    }
}

/// An enabled-or-not endpoint of organisation `organization` (a row id) with one delivery,
/// written straight to the database (the API would check the URL); (endpoint, delivery) ids.
pub async fn seed(app: &TestApp, organization: i64, enabled: bool) -> (String, String) {
    use sea_orm::{ActiveModelTrait, Set};
    use velferd::webhooks::model::{DeliveryStatus, webhook_delivery, webhook_endpoint};
    use velferd::webhooks::signing;
    let now = chrono::Utc::now().fixed_offset();
    let db = app.db().write();
    let endpoint = webhook_endpoint::ActiveModel {
        organization_id: Set(organization),
        url: Set("https://hooks.example.org/velferd".into()),
        description: Set(None),
        event_types: Set("alert.raised".into()),
        enabled: Set(enabled),
        disabled_reason: Set((!enabled).then(|| "MANUAL".into())),
        disabled_by: Set((!enabled).then(|| "seed".into())),
        disabled_at: Set((!enabled).then_some(now)),
        next_sequence: Set(2),
        secret: Set(signing::new_secret()),
        previous_secret: Set(None),
        previous_secret_expires_at: Set(None),
        signing_key: Set(signing::new_signing_key()),
        created_by: Set("seed".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    let delivery = webhook_delivery::ActiveModel {
        endpoint_id: Set(endpoint.id),
        message_id: Set("msg_seed".into()),
        sequence: Set(1),
        event_type: Set("webhook.test".into()),
        payload: Set("{}".into()),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        queued_after_attempts: Set(0),
        next_attempt_at_ms: Set(Some(now.timestamp_millis())),
        lease_until_ms: Set(None),
        lease_owner: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    (
        global_id(NodeType::WebhookEndpoint, endpoint.id).to_string(),
        global_id(NodeType::WebhookDelivery, delivery.id).to_string(),
    )
}

/// For `nodes.rs`: a disabled endpoint of the municipality (nothing is sent) with a delivery,
/// seen by its `municipality_admin`.
pub async fn node_samples(app: &TestApp) -> Vec<NodeSample> {
    let org = crate::rows::org_row(app, MUNICIPALITY_ORG).await;
    let (endpoint, delivery) = seed(app, org, false).await;
    let token = app.token(MUNICIPALITY_ORG, &[Role::MunicipalityAdmin]);
    vec![
        NodeSample::new("WebhookEndpoint", &json!(endpoint), &token),
        NodeSample::new("WebhookDelivery", &json!(delivery), &token),
    ]
}

on_both! {
    /// A call-off placed by a municipality and confirmed by its supplier is announced once per
    /// change and reaches both parties' `call_off.changed` endpoints — the municipality's admin's
    /// and the supplier's integration's — but not a third organisation's, thin and signed.
    async fn call_off_changes_reach_the_municipality_and_the_supplier(backend) {
        use crate::procurement::{CALL_OFF, evaluate_award_and_contract, larvik_to_competition, org_number, submit_tenders, wait_for_deadline};
        let receiver = Receiver::start().await;
        let Some(app) = spawn(backend, &receiver, FAST).await else { return };
        let story = larvik_to_competition(&app, 2).await;
        submit_tenders(&app, &story).await;
        wait_for_deadline(&story).await;
        let agreements = evaluate_award_and_contract(&app, &story).await;

        // Municipality 2 places the call-off; US1's agreement went to Dignio (org 100).
        let buyer = app.token(&org_number(2), &[Role::MunicipalityAdmin]);
        let (_, buyer_secret, _) = registered(&app, &buyer, &receiver.url("/buyer"), &["CALL_OFF_CHANGED"]).await;
        let dignio = app.token(&org_number(100), &[Role::Integration]);
        let (_, _, dignio_key) = registered(&app, &dignio, &receiver.url("/dignio"), &["CALL_OFF_CHANGED"]).await;
        let bystander = app.token(&org_number(3), &[Role::MunicipalityAdmin]);
        registered(&app, &bystander, &receiver.url("/bystander"), &["CALL_OFF_CHANGED"]).await;

        let created = app
            .graphql(Some(&story.participant_po[1]), CALL_OFF,
                json!({ "input": { "agreementId": agreements[0], "acquisition": "BUY", "scope": "PILOT_ZONE", "quantity": 3, "status": "PLACED" } }))
            .await;
        assert_eq!(created["callOffCreate"]["userErrors"], json!([]), "{created}");
        let call_off = created["callOffCreate"]["callOff"]["id"].as_str().unwrap().to_string();
        let confirm = "mutation($input: CallOffStatusChangeInput!) { callOffStatusChange(input: $input) { callOff { status } userErrors { code } } }";
        let data = app.graphql(Some(&story.dignio), confirm, json!({ "input": { "callOffId": call_off, "status": "CONFIRMED" } })).await;
        assert_eq!(data["callOffStatusChange"]["callOff"]["status"], "CONFIRMED", "{data}");

        // Two changes × two parties.
        arrived(&receiver, 4, 20).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let requests = receiver.requests();
        assert!(requests.iter().all(|r| r.path != "/bystander"), "a third municipality hears nothing");
        for (path, statuses) in [("/buyer", ["PLACED", "CONFIRMED"]), ("/dignio", ["PLACED", "CONFIRMED"])] {
            let mut got: Vec<&Recorded> = requests.iter().filter(|r| r.path == path).collect();
            got.sort_by_key(|r| header(r, "webhook-sequence").parse::<u64>().unwrap());
            assert_eq!(got.len(), 2, "{path}: one request per change");
            for (request, status) in got.iter().zip(statuses) {
                if path == "/buyer" {
                    verify_v1(&buyer_secret, request).unwrap();
                } else {
                    verify_v1a(&dignio_key, request);
                }
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                assert_eq!(body["type"], "call_off.changed");
                assert_eq!((&body["data"]["callOffId"], &body["data"]["status"]), (&json!(call_off), &json!(status)), "{body}");
                assert_eq!(body["data"]["agreementId"], json!(agreements[0]));
            }
        }
        // The same event reaches both parties under one webhook-id.
        let ids = |path: &str| {
            let mut ids: Vec<String> = requests.iter().filter(|r| r.path == path).map(|r| header(r, "webhook-id")).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids("/buyer"), ids("/dignio"));
    }
}
