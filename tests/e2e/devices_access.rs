//! Devices: who may see and do what, and what bad input is refused — each refusal proven to
//! write nothing (every table's row count and checksum are equal before and after).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use velferd::auth::Role;
use velferd::graphql::relay::{NodeType, global_id};

use crate::devices::*;
use crate::guests;
use crate::support::{Backend, Options, TestApp, first_error_code, on_both_backends};

/// Runs an operation that must fail as a whole; returns the top-level error code.
async fn top_level_error(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> String {
    let (_, body) = app.graphql_raw(token, query, variables).await;
    assert!(body["errors"].is_array(), "expected a top-level error: {body}");
    first_error_code(&body).to_string()
}

/// The first user error of a mutation's payload, as `(code, field)`.
fn user_error(payload: &Value) -> (String, Value) {
    let error = &payload["userErrors"][0];
    (error["code"].as_str().unwrap_or_else(|| panic!("no user error: {payload}")).to_string(), error["field"].clone())
}

/// A multipart `adapterUpload`, with or without a token; returns the whole response body.
async fn upload_as(app: &TestApp, token: Option<&str>, product: &str, component: Vec<u8>, signature: &str) -> Value {
    let operations = json!({
        "query": "mutation($input: AdapterUploadInput!) { adapterUpload(input: $input) { adapter { id } userErrors { code } } }",
        "variables": { "input": { "product": product, "component": null, "signature": signature } },
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.input.component"] }).to_string())
        .part("0", reqwest::multipart::Part::bytes(component).file_name("adapter.wasm"));
    let mut request = app.client.post(app.url("/graphql")).multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// POSTs a batch to the dispenser's batch endpoint.
async fn ingest_batch(app: &TestApp, token: &str, body: Vec<u8>) -> (u16, Value) {
    ingest(app, token, &format!("{DISPENSER}/batch"), "application/json", body).await
}

/// A dispenser sample padded with trailing whitespace (still the same JSON) to `size` bytes.
fn padded(file: &str, size: usize) -> Vec<u8> {
    let mut body = sample("dispenser-json", file);
    body.resize(size, b' ');
    body
}

/// The adapter input cap of the test server (128 KiB by default).
fn input_cap(app: &TestApp) -> usize {
    let cap = app.settings.devices.adapter_limits.input_bytes;
    assert_eq!(cap, 131_072);
    cap
}

/// The second supplier of the fleet, with an Ed25519 key of its own registered.
struct OtherSupplier {
    token: String,
    key: SigningKey,
    key_id: String,
}

impl OtherSupplier {
    async fn register(app: &TestApp, fleet: &Fleet) -> OtherSupplier {
        let token = app.token(&fleet.other_supplier, &[Role::Supplier]);
        let key = SigningKey::from_bytes(&[9; 32]);
        let data = app
            .graphql(
                Some(&token),
                REGISTER_KEY,
                json!({ "k": STANDARD.encode(key.verifying_key().as_bytes()), "p": key_proof(&key, &fleet.other_supplier) }),
            )
            .await;
        assert_eq!(data["signingKeyRegister"]["userErrors"], json!([]));
        let key_id = data["signingKeyRegister"]["signingKey"]["id"].as_str().unwrap().to_string();
        OtherSupplier { token, key, key_id }
    }

    fn sign(&self, bytes: &[u8]) -> String {
        STANDARD.encode(self.key.sign(bytes).to_bytes())
    }
}

/// The ids of the dispenser's adapters (newest first) and of the supplier's signing key, as the
/// supplier sees them.
async fn dispenser_ids(app: &TestApp, fleet: &Fleet) -> (Vec<String>, String) {
    let data = app
        .graphql(
            Some(&fleet.supplier_token(app)),
            "{ deviceProduct(slug: \"reference-dispenser\") { adapters { id } } signingKeys { id } }",
            json!({}),
        )
        .await;
    let adapters = data["deviceProduct"]["adapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    (adapters, data["signingKeys"][0]["id"].as_str().unwrap().to_string())
}

async fn node_is_null(app: &TestApp, token: &str, id: &str) -> bool {
    app.graphql(Some(token), "query($id: ID!) { node(id: $id) { id } }", json!({ "id": id })).await["node"].is_null()
}

const REVIEW: &str = "query($slug: String!, $last: Int!) { deviceProduct(slug: $slug) { activeAdapter { replayReview(last: $last) { messagesCompared } } } }";
const ACTIVATE: &str =
    "mutation($id: ID!) { adapterActivate(input: { adapterId: $id }) { adapter { id } userErrors { field code } } }";
const RETIRE: &str =
    "mutation($id: ID!) { adapterRetire(input: { adapterId: $id }) { adapter { id } userErrors { field code } } }";
const ROLL_BACK: &str =
    "mutation($p: String!) { adapterRollBack(input: { product: $p }) { adapter { id } userErrors { field code } } }";
const REPLAY: &str = "mutation($p: String!) { deadLettersReplay(input: { product: $p }) { replayed resolved userErrors { field code } } }";
const REGISTER: &str = "mutation($p: String!, $s: String!, $c: ID) { deviceRegister(input: { product: $p, serial: $s, callOffId: $c }) { device { id } userErrors { field code } } }";

on_both_backends! {
    /// A supplier cannot see, upload for, activate or ingest as another supplier: the other
    /// supplier gets nulls and empty lists for the first one's adapters, keys, devices, events
    /// and dead letters, and every change it tries is refused and writes nothing.
    async fn a_supplier_cannot_see_upload_for_activate_or_ingest_as_another_supplier(app) {
        let (fleet, dead_letter) = fleet_with_an_event_and_a_dead_letter(&app).await;
        let (adapters, key_id) = dispenser_ids(&app, &fleet).await;
        let other = OtherSupplier::register(&app, &fleet).await;
        let b = Some(other.token.as_str());

        // Nothing of the first supplier's is visible to the other.
        let data = app
            .graphql(b, "{ deviceProduct(slug: \"reference-dispenser\") { slug adapters { id } } signingKeys { id publicKey } }", json!({}))
            .await;
        assert_eq!(data["deviceProduct"]["slug"], DISPENSER, "products are listed for every signed-in user");
        assert_eq!(data["deviceProduct"]["adapters"], Value::Null);
        assert_eq!(data["signingKeys"], json!([{ "id": other.key_id, "publicKey": STANDARD.encode(other.key.verifying_key().as_bytes()) }]));
        for id in [&key_id, &dead_letter] {
            assert!(node_is_null(&app, &other.token, id).await, "{id} is visible to the other supplier");
        }
        // The active version is public to signed-in users, through `activeAdapter` and `node`
        // alike, without who signed and uploaded it.
        let query = "query($id: ID!) { node(id: $id) { ... on Adapter { status signingKey { id } uploadedBy } } }";
        let data = app.graphql(b, query, json!({ "id": adapters[0] })).await;
        assert_eq!(data["node"], json!({ "status": "ACTIVE", "signingKey": null, "uploadedBy": null }));
        let data = app
            .graphql(
                b,
                "{ devices { totalCount } mine: devices(product: \"reference-dispenser\") { totalCount } deviceEvents { totalCount }
                   deadLetters { totalCount } named: deadLetters(filter: { product: \"reference-dispenser\" }) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(data, json!({ "devices": { "totalCount": 0 }, "mine": { "totalCount": 0 }, "deviceEvents": { "totalCount": 0 },
            "deadLetters": { "totalCount": 0 }, "named": { "totalCount": 0 } }));
        // … while the first supplier sees them.
        let data = app.graphql(Some(&fleet.supplier_token(&app)), "{ devices { totalCount } deviceEvents { totalCount } deadLetters { totalCount } }", json!({})).await;
        assert_eq!(data, json!({ "devices": { "totalCount": 7 }, "deviceEvents": { "totalCount": 2 }, "deadLetters": { "totalCount": 1 } }));

        let before = app.fingerprint().await;
        let events_before = event_count(&app, &fleet.case_worker_token(&app)).await;

        // An upload to the first supplier's product, correctly signed with the other's key.
        let bytes = guests::component("velferd_dispenser_json_next");
        let payload = upload(&app, &other.token, DISPENSER, bytes.clone(), &other.sign(&bytes)).await;
        assert_eq!(user_error(&payload), ("PRODUCT_OF_ANOTHER_SUPPLIER".into(), json!(["input", "product"])), "{payload}");
        assert_eq!(payload["adapter"], Value::Null);

        // Lifecycle: activation and roll-back are for admins; retiring and replay answer like
        // a missing adapter or product.
        assert_eq!(top_level_error(&app, b, ACTIVATE, json!({ "id": adapters[0] })).await, "FORBIDDEN");
        assert_eq!(top_level_error(&app, b, ROLL_BACK, json!({ "p": DISPENSER })).await, "FORBIDDEN");
        let data = app.graphql(b, RETIRE, json!({ "id": adapters[0] })).await;
        assert_eq!(user_error(&data["adapterRetire"]), ("NOT_FOUND".into(), json!(["input", "adapterId"])));
        assert_eq!(data["adapterRetire"]["adapter"], Value::Null);
        let data = app.graphql(b, REPLAY, json!({ "p": DISPENSER })).await;
        assert_eq!(user_error(&data["deadLettersReplay"]), ("NOT_FOUND".into(), json!(["input", "product"])));
        assert_eq!(data["deadLettersReplay"]["replayed"], 0);
        // Nor may it review the first supplier's adapter, reached through the product.
        let code = top_level_error(&app, b, REVIEW, json!({ "slug": DISPENSER, "last": 10 })).await;
        assert_eq!(code, "FORBIDDEN");

        // Ingest with the other supplier's integration token.
        let other_integration = app.token(&fleet.other_supplier, &[Role::Integration]);
        let (status, reply) =
            ingest(&app, &other_integration, DISPENSER, "application/json", sample("dispenser-json", "missed-dose.json")).await;
        assert_eq!((status, first_error_code(&reply)), (403, "FORBIDDEN"), "{reply}");

        before.assert_unchanged(&app.fingerprint().await);
        assert_eq!(event_count(&app, &fleet.case_worker_token(&app)).await, events_before);
        let data = app.graphql(Some(&fleet.supplier_token(&app)), "{ deviceProduct(slug: \"reference-dispenser\") { adapters { status } } }", json!({})).await;
        assert_eq!(data["deviceProduct"]["adapters"], json!([{ "status": "ACTIVE" }]));
    }
}

on_both_backends! {
    /// A municipality sees only its own devices and their events; a serial is registered once
    /// per product; the supplier and an admin of another organisation see devices and events
    /// without the recipient reference, which only the owning municipality sees.
    async fn a_municipality_sees_only_its_own_devices_and_recipient_data_stays_with_it(app) {
        let fleet = Fleet::new(&app).await;
        live_reference_adapters(&app, &fleet).await;
        let integration = fleet.integration_token(&app);
        for file in ["morning-dose.json", "missed-dose.json"] {
            assert_eq!(ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", file)).await.0, 200);
        }
        assert_eq!(ingest(&app, &integration, ALARM, "application/xml", sample("alarm-scaip", "fall.xml")).await.0, 200);
        let owner = fleet.case_worker_token(&app);
        assign_every_device_to_a_recipient(&app, &owner).await;
        let data = app.graphql(Some(&owner), "{ deviceEvents(first: 1) { totalCount nodes { id device { id recipient { reference } } } } }", json!({})).await;
        assert_eq!(data["deviceEvents"]["totalCount"], 5);
        let event = data["deviceEvents"]["nodes"][0]["id"].as_str().unwrap().to_string();
        let device = data["deviceEvents"]["nodes"][0]["device"]["id"].as_str().unwrap().to_string();
        assert_eq!(data["deviceEvents"]["nodes"][0]["device"]["recipient"]["reference"], "case-2026-0042");

        // The other municipality sees none of it.
        let other = app.token(&fleet.other_municipality, &[Role::CaseWorker]);
        let data = app.graphql(Some(&other), "{ devices { totalCount } deviceEvents { totalCount } deadLetters { totalCount } }", json!({})).await;
        assert_eq!(data, json!({ "devices": { "totalCount": 0 }, "deviceEvents": { "totalCount": 0 }, "deadLetters": { "totalCount": 0 } }));
        assert!(node_is_null(&app, &other, &event).await);
        assert!(node_is_null(&app, &other, &device).await);

        // Nor can it take over a registered device: it was not delivered to it.
        let before = app.fingerprint().await;
        let payload = register_delivered(&app, &other, DISPENSER, "RD-100234").await;
        assert_eq!(user_error(&payload), ("NOT_DELIVERED".into(), json!(["input", "serial"])));
        assert_eq!(payload["device"], Value::Null);
        before.assert_unchanged(&app.fingerprint().await);
        let data = app.graphql(Some(&other), "{ devices { totalCount } }", json!({})).await;
        assert_eq!(data["devices"]["totalCount"], 0);

        // The supplier sees its products' devices and events, without the recipient reference.
        let supplier = fleet.supplier_token(&app);
        let query = "query($id: ID!) { devices(product: \"reference-dispenser\") { totalCount nodes { serial recipient { reference } } }
            deviceEvents { totalCount nodes { device { recipient { reference } } } } node(id: $id) { ... on Device { serial recipient { reference } } } }";
        let data = app.graphql(Some(&supplier), query, json!({ "id": device })).await;
        assert_eq!(data["devices"]["totalCount"], 3);
        assert!(data["devices"]["nodes"].as_array().unwrap().iter().all(|d| d["recipient"].is_null()), "{data}");
        assert_eq!(data["deviceEvents"]["totalCount"], 5);
        assert!(data["deviceEvents"]["nodes"].as_array().unwrap().iter().all(|e| e["device"]["recipient"].is_null()), "{data}");
        assert!(data["node"]["serial"].is_string() && data["node"]["recipient"].is_null(), "{data}");

        // The platform operator's admin (whose organisation owns no devices) sees all events,
        // without it too.
        let admin = app.admin_token();
        let data = app.graphql(Some(&admin), query, json!({ "id": device })).await;
        assert_eq!((data["devices"]["totalCount"].as_i64(), data["deviceEvents"]["totalCount"].as_i64()), (Some(3), Some(5)));
        assert!(data["deviceEvents"]["nodes"].as_array().unwrap().iter().all(|e| e["device"]["recipient"].is_null()), "{data}");
        assert!(data["node"]["serial"].is_string() && data["node"]["recipient"].is_null(), "{data}");

        // The owner sees it, on every device.
        let data = app.graphql(Some(&owner), query, json!({ "id": device })).await;
        assert!(data["devices"]["nodes"].as_array().unwrap().iter().all(|d| d["recipient"]["reference"] == "case-2026-0042"), "{data}");
        assert_eq!(data["node"]["recipient"]["reference"], "case-2026-0042");
    }
}

on_both_backends! {
    /// `POST /ingest/{product}` refuses a missing token (401), a token without the integration
    /// role (403), an unknown or malformed product (404) and a message over the adapter's input
    /// cap (413), each with its code, before anything is stored; a message at the cap is taken.
    async fn ingest_refuses_bad_callers_products_and_oversized_messages_storing_nothing(app) {
        let fleet = Fleet::new(&app).await;
        live_reference_adapters(&app, &fleet).await;
        let integration = fleet.integration_token(&app);
        let cap = input_cap(&app);
        let before = app.fingerprint().await;
        let events_before = event_count(&app, &fleet.case_worker_token(&app)).await;
        let message = sample("dispenser-json", "morning-dose.json");

        let response = app
            .client
            .post(app.url(&format!("/ingest/{DISPENSER}")))
            .header("content-type", "application/json")
            .body(message.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let reply: Value = response.json().await.unwrap();
        assert_eq!((status, first_error_code(&reply)), (401, "UNAUTHENTICATED"), "{reply}");

        let cases = [
            (fleet.supplier_token(&app), DISPENSER, message.clone(), 403, "FORBIDDEN"),
            (integration.clone(), "no-such-product", message.clone(), 404, "NOT_FOUND"),
            (integration.clone(), "Not_A_Slug", message.clone(), 404, "NOT_FOUND"),
            (integration.clone(), DISPENSER, padded("morning-dose.json", cap + 1), 413, "PAYLOAD_TOO_LARGE"),
        ];
        for (token, product, body, status, code) in cases {
            let (got, reply) = ingest(&app, &token, product, "application/json", body).await;
            assert_eq!((got, first_error_code(&reply)), (status, code), "{product}: {reply}");
        }

        before.assert_unchanged(&app.fingerprint().await);
        assert_eq!(event_count(&app, &fleet.case_worker_token(&app)).await, events_before);
        let data = app.graphql(Some(&fleet.supplier_token(&app)), "{ deadLetters { totalCount } }", json!({})).await;
        assert_eq!(data["deadLetters"]["totalCount"], 0);

        // Exactly at the cap, the message reaches the adapter and is accepted.
        let (status, reply) = ingest(&app, &integration, DISPENSER, "application/json", padded("morning-dose.json", cap)).await;
        assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");
    }
}

/// The batch form refuses a body that is not a valid batch (400) or holds more messages than
/// `VELFERD_INGEST_MAX_BATCH` (413), storing nothing; a message over the input cap inside a
/// good batch is refused on its own while the others are processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_ingest_refuses_bad_batches_whole_and_oversized_messages_one_by_one() {
    let options = Options { pairs: vec![("VELFERD_INGEST_MAX_BATCH", "3".into())], ..Default::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let fleet = Fleet::new(&app).await;
    live_reference_adapters(&app, &fleet).await;
    let integration = fleet.integration_token(&app);
    let cap = input_cap(&app);
    let text = |file: &str| String::from_utf8(sample("dispenser-json", file)).unwrap();
    let before = app.fingerprint().await;

    let message = json!({ "contentType": "application/json", "body": text("morning-dose.json") });
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not JSON", b"{ not json".to_vec(), 400, "BAD_REQUEST"),
        ("no messages", json!({ "messages": [] }).to_string().into_bytes(), 400, "BAD_REQUEST"),
        (
            "body and bodyBase64",
            json!({ "messages": [{ "contentType": "application/json", "body": "{}", "bodyBase64": STANDARD.encode("{}") }] }).to_string().into_bytes(),
            400,
            "BAD_REQUEST",
        ),
        (
            "bad base64",
            json!({ "messages": [message, { "contentType": "application/json", "bodyBase64": "%%% not base64" }] }).to_string().into_bytes(),
            400,
            "BAD_REQUEST",
        ),
        ("four messages", json!({ "messages": [message, message, message, message] }).to_string().into_bytes(), 413, "BATCH_TOO_LARGE"),
    ];
    for (case, body, status, code) in cases {
        let (got, reply) = ingest_batch(&app, &integration, body).await;
        assert_eq!((got, first_error_code(&reply)), (status, code), "{case}: {reply}");
    }
    before.assert_unchanged(&app.fingerprint().await);

    // Three messages (the maximum), the middle one over the cap.
    let oversized = String::from_utf8(padded("lid-power-offline.json", cap + 1)).unwrap();
    let batch = json!({ "messages": [
        { "contentType": "application/json", "body": text("morning-dose.json") },
        { "contentType": "application/json", "body": oversized },
        { "contentType": "application/json", "bodyBase64": STANDARD.encode(text("missed-dose.json")) },
    ] });
    let (status, reply) = ingest_batch(&app, &integration, batch.to_string().into_bytes()).await;
    assert_eq!(status, 200, "{reply}");
    let statuses: Vec<&str> =
        reply["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["ACCEPTED", "REFUSED", "ACCEPTED"], "{reply}");
    assert_eq!((reply["accepted"].as_u64(), reply["refused"].as_u64()), (Some(2), Some(1)));
    let refused = &reply["results"][1];
    assert_eq!(refused["reason"]["code"], "input-too-large");
    assert_eq!((refused["receiptId"].clone(), refused["deadLetterId"].clone()), (Value::Null, Value::Null));
    assert_eq!(
        (reply["results"][0]["eventsStored"].as_u64(), reply["results"][2]["eventsStored"].as_u64()),
        (Some(2), Some(2))
    );

    let after = app.fingerprint().await;
    assert_eq!(after.rows("ingest_receipt"), 2, "receipts only for the two processed messages");
    assert_eq!(after.rows("device_event"), 4);
    assert_eq!(after.rows("dead_letter"), before.rows("dead_letter"), "the oversized message is not kept");
    assert_eq!(event_count(&app, &fleet.case_worker_token(&app)).await, 4);
}

on_both_backends! {
    /// `deviceRegister` refuses a bad serial, an unknown or malformed product, a caller without
    /// the case-worker role or outside a municipality, and a call-off id that is not one — and
    /// writes nothing; a 64-character serial is fine.
    async fn device_registration_refuses_bad_input_and_wrong_callers_writing_nothing(app) {
        let fleet = Fleet::new(&app).await;
        upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json").await;
        let municipality = fleet.case_worker_token(&app);
        let before = app.fingerprint().await;
        let too_long = "x".repeat(65);
        let adapter_id = global_id(NodeType::Adapter, 1).to_string();
        let cases: Vec<(&str, &str, Option<&str>, &str, &str)> = vec![
            (DISPENSER, "RD 1", None, "INVALID_SERIAL", "serial"),
            (DISPENSER, "", None, "INVALID_SERIAL", "serial"),
            (DISPENSER, &too_long, None, "INVALID_SERIAL", "serial"),
            ("no-such-product", "RD-1", None, "UNKNOWN_PRODUCT", "product"),
            ("Not_A_Slug", "RD-1", None, "INVALID_PRODUCT", "product"),
            (DISPENSER, "RD-1", Some("not-a-global-id"), "NOT_FOUND", "callOffId"),
            (DISPENSER, "RD-1", Some(&adapter_id), "NOT_FOUND", "callOffId"),
        ];
        for (product, serial, call_off, code, field) in cases {
            let data = app.graphql(Some(&municipality), REGISTER, json!({ "p": product, "s": serial, "c": call_off })).await;
            let payload = &data["deviceRegister"];
            assert_eq!(user_error(payload), (code.to_string(), json!(["input", field])), "{product} {serial:?}: {payload}");
            assert_eq!(payload["device"], Value::Null);
        }
        let ok = json!({ "p": DISPENSER, "s": "RD-1", "c": null });
        assert_eq!(top_level_error(&app, None, REGISTER, ok.clone()).await, "UNAUTHENTICATED");
        assert_eq!(top_level_error(&app, Some(&fleet.supplier_token(&app)), REGISTER, ok.clone()).await, "FORBIDDEN");
        // `case_worker` does not count for a supplier: refused before any rule runs.
        let supplier_case_worker = app.token(&fleet.supplier, &[Role::CaseWorker]);
        assert_eq!(top_level_error(&app, Some(&supplier_case_worker), REGISTER, ok).await, "FORBIDDEN");
        before.assert_unchanged(&app.fingerprint().await);

        let payload = register_device(&app, &municipality, DISPENSER, &"x".repeat(64)).await;
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
    }
}

on_both_backends! {
    /// The adapter lifecycle refuses activating an active version, ids that are not adapters,
    /// a malformed product, bytes that are not a component, the same component twice and
    /// callers without a token — and writes nothing.
    async fn adapter_lifecycle_refuses_bad_input_writing_nothing(app) {
        let fleet = Fleet::new(&app).await;
        let v1 = upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json").await;
        assert_eq!(activate(&app, &v1).await["adapter"]["status"], "ACTIVE");
        let supplier = fleet.supplier_token(&app);
        let before = app.fingerprint().await;

        let admin = app.admin_token();
        let product_id = app.graphql(Some(&supplier), "{ deviceProduct(slug: \"reference-dispenser\") { id } }", json!({})).await
            ["deviceProduct"]["id"].as_str().unwrap().to_string();
        let cases = [
            (v1.clone(), "CANNOT_ACTIVATE"),
            (product_id, "NOT_FOUND"),
            ("garbage".to_string(), "NOT_FOUND"),
            (global_id(NodeType::Adapter, 999_999).to_string(), "NOT_FOUND"),
        ];
        for (id, code) in cases {
            let payload = &app.graphql(Some(&admin), ACTIVATE, json!({ "id": id })).await["adapterActivate"];
            assert_eq!(user_error(payload), (code.to_string(), json!(["input", "adapterId"])), "{id}: {payload}");
            assert_eq!(payload["adapter"], Value::Null);
        }

        let bytes = guests::component("velferd_dispenser_json");
        let not_wasm = b"not wasm".to_vec();
        let cases = [
            ("Not_A_Slug", bytes.clone(), "INVALID_PRODUCT", "product"),
            (DISPENSER, not_wasm.clone(), "INVALID_COMPONENT", "component"),
            ("fresh-product", not_wasm, "INVALID_COMPONENT", "component"),
            (DISPENSER, bytes.clone(), "ALREADY_UPLOADED", "component"),
        ];
        for (product, component, code, field) in cases {
            let signature = fleet.sign(&component);
            let payload = upload(&app, &supplier, product, component, &signature).await;
            assert_eq!(user_error(&payload), (code.to_string(), json!(["input", field])), "{product}: {payload}");
            assert_eq!(payload["adapter"], Value::Null);
        }
        let body = upload_as(&app, None, "fresh-product", bytes.clone(), &fleet.sign(&bytes)).await;
        assert_eq!(first_error_code(&body), "UNAUTHENTICATED", "{body}");

        before.assert_unchanged(&app.fingerprint().await);
    }
}

on_both_backends! {
    /// `replayReview(last:)` takes 1 to 200 messages, and only the product's supplier and
    /// admins may run it: another supplier or a municipality reaching the adapter through
    /// `activeAdapter` is refused.
    async fn replay_review_takes_1_to_200_messages_for_the_supplier_and_admins_only(app) {
        let fleet = Fleet::new(&app).await;
        let v1 = active_dispenser(&app, &fleet).await;
        let review = "query($id: ID!, $last: Int!) { node(id: $id) { ... on Adapter { replayReview(last: $last) { messagesCompared } } } }";
        let admin = app.admin_token();
        for last in [0, -1, 201] {
            let code = top_level_error(&app, Some(&admin), review, json!({ "id": v1, "last": last })).await;
            assert_eq!(code, "BAD_USER_INPUT", "last: {last}");
        }
        for last in [1, 200] {
            let data = app.graphql(Some(&admin), review, json!({ "id": v1, "last": last })).await;
            assert_eq!(data["node"]["replayReview"]["messagesCompared"], 0, "last: {last}");
        }
        let data = app.graphql(Some(&fleet.supplier_token(&app)), REVIEW, json!({ "slug": DISPENSER, "last": 200 })).await;
        assert_eq!(data["deviceProduct"]["activeAdapter"]["replayReview"]["messagesCompared"], 0);

        let other_supplier = OtherSupplier::register(&app, &fleet).await.token;
        // The active version is readable by `node` as by `activeAdapter`; its review is not.
        let code = top_level_error(&app, Some(&other_supplier), review, json!({ "id": v1, "last": 10 })).await;
        assert_eq!(code, "FORBIDDEN");
        for token in [other_supplier, fleet.case_worker_token(&app)] {
            let code = top_level_error(&app, Some(&token), REVIEW, json!({ "slug": DISPENSER, "last": 10 })).await;
            assert_eq!(code, "FORBIDDEN");
        }
    }
}

/// Signing keys are "the supplier's own, admin" (docs/authorization.md) and `node(id:)` hides
/// another supplier's key; but `DeviceProduct.activeAdapter`, which every signed-in user may
/// read, hands out `signingKey` unchecked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_supplier_cannot_read_a_signing_key_through_the_active_adapter() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let fleet = Fleet::new(&app).await;
    active_dispenser(&app, &fleet).await;
    let (_, key_id) = dispenser_ids(&app, &fleet).await;
    let other = OtherSupplier::register(&app, &fleet).await;
    assert!(node_is_null(&app, &other.token, &key_id).await);
    let (_, body) = app
        .graphql_raw(
            Some(&other.token),
            "{ deviceProduct(slug: \"reference-dispenser\") { activeAdapter { signingKey { id publicKey } } } }",
            json!({}),
        )
        .await;
    let leaked = &body["data"]["deviceProduct"]["activeAdapter"]["signingKey"];
    assert!(
        leaked["id"] != key_id.as_str() && leaked["publicKey"].is_null(),
        "another supplier's key is readable: {body}"
    );
}

/// Retiring an adapter and replaying dead letters are for admins and the product's `supplier`
/// (docs/authorization.md, writes); the supplier's machine token (`integration` role only, the
/// one deployed for ingest) must not retire the adapter its own messages go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_token_cannot_retire_adapters_or_replay_dead_letters() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let fleet = Fleet::new(&app).await;
    let v1 = active_dispenser(&app, &fleet).await;
    let integration = fleet.integration_token(&app);
    let before = app.fingerprint().await;
    let (_, body) = app.graphql_raw(Some(&integration), RETIRE, json!({ "id": v1 })).await;
    assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");
    let (_, body) = app.graphql_raw(Some(&integration), REPLAY, json!({ "p": DISPENSER })).await;
    assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");
    before.assert_unchanged(&app.fingerprint().await);
}

/// The whole `deviceRegister` answer to `token` for the dispenser `serial`, as sent.
async fn register_bytes(app: &TestApp, token: &str, serial: &str) -> (u16, String) {
    app.graphql_bytes(Some(token), REGISTER, json!({ "p": DISPENSER, "s": serial, "c": null })).await
}

/// The call-off the fleet's supplier delivers under to the municipality with `org_number`.
async fn call_off_of(app: &TestApp, org_number: &str) -> i64 {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use velferd::organizations::model::{Column, Entity};
    let find = async |number: &str| {
        Entity::find().filter(Column::OrgNumber.eq(number)).one(app.db().read()).await.unwrap().unwrap().id
    };
    confirmed_call_off(app, find(org_number).await, find(crate::support::SUPPLIER_ORG).await).await
}

on_both_backends! {
    /// Serial squatting: a serial enters a municipality only when the product's supplier has
    /// delivered it under that municipality's own call-off and the municipality registers it. A
    /// municipality with a call-off of its own with the same supplier cannot claim it; what the
    /// device sent before registration (dead letters with raw bodies) stays hidden from the new
    /// owner; and every refusal answers alike, whether the serial is unknown, delivered elsewhere
    /// or in another municipality's service.
    async fn a_serial_enters_a_municipality_only_through_a_delivery_to_it(app) {
        let fleet = Fleet::new(&app).await;
        active_dispenser(&app, &fleet).await;
        let integration = fleet.integration_token(&app);
        let larvik = fleet.case_worker_token(&app);
        let asker = app.token(&fleet.other_municipality, &[Role::CaseWorker]);
        let supplier = fleet.supplier_token(&app);

        // Before anyone owns it, the device's message is kept as a dead letter, raw body and all.
        let (status, _) = ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json")).await;
        assert_eq!(status, 202);
        // Asker has a confirmed call-off with the same supplier: not enough to claim the serial.
        deliver(&app, &asker, DISPENSER, "RD-777777").await.expect("Asker's own delivery");
        let before = app.fingerprint().await;
        let unknown = register_delivered(&app, &asker, DISPENSER, "RD-100234").await;
        assert_eq!(user_error(&unknown), ("NOT_DELIVERED".into(), json!(["input", "serial"])));
        before.assert_unchanged(&app.fingerprint().await);

        // The supplier delivers it to Larvik; Asker's answer does not change, before or after
        // Larvik registers it.
        let delivered = deliver(&app, &larvik, DISPENSER, "RD-100234").await.unwrap();
        assert_eq!(delivered["userErrors"], json!([]), "{delivered}");
        assert_eq!(delivered["deliveries"], json!([{ "serial": "RD-100234" }]));
        assert_eq!(register_delivered(&app, &asker, DISPENSER, "RD-100234").await, unknown);
        // Byte for byte, message included, like a serial nobody ever delivered.
        let before = app.fingerprint().await;
        let (hidden, missing) = (register_bytes(&app, &asker, "RD-100234").await, register_bytes(&app, &asker, "RD-555555").await);
        crate::support::assert_byte_identical(&hidden, &missing, "RD-100234", "RD-555555");
        before.assert_unchanged(&app.fingerprint().await);
        let registered = register_delivered(&app, &larvik, DISPENSER, "RD-100234").await;
        assert_eq!(registered["userErrors"], json!([]), "{registered}");
        let before = app.fingerprint().await;
        assert_eq!(register_delivered(&app, &asker, DISPENSER, "RD-100234").await, unknown);
        let (hidden, missing) = (register_bytes(&app, &asker, "RD-100234").await, register_bytes(&app, &asker, "RD-555555").await);
        crate::support::assert_byte_identical(&hidden, &missing, "RD-100234", "RD-555555");
        before.assert_unchanged(&app.fingerprint().await);

        // The new owner does not read what the device sent before it was registered; the
        // supplier does.
        let count = "{ deadLetters { totalCount } }";
        assert_eq!(app.graphql(Some(&larvik), count, json!({})).await["deadLetters"]["totalCount"], 0);
        assert_eq!(app.graphql(Some(&supplier), count, json!({})).await["deadLetters"]["totalCount"], 1);

        // Delivering: the product's supplier only, under a confirmed call-off of its own
        // agreements, each serial once, within the call-off's quantity, a bounded list.
        let larvik_call_off = global_id(NodeType::CallOff, call_off_of(&app, &fleet.municipality).await).to_string();
        let missing_call_off = global_id(NodeType::CallOff, 999_999).to_string();
        let other = app.token(&fleet.other_supplier, &[Role::Supplier]);
        let before = app.fingerprint().await;
        let many: Vec<String> = (0..101).map(|i| format!("RD-{i}")).collect();
        let cases: Vec<(&str, &str, Value, &str, &str)> = vec![
            (&supplier, &larvik_call_off, json!(["RD-100234"]), "ALREADY_DELIVERED", "serials"),
            (&supplier, &larvik_call_off, json!(["RD-1", "RD-1"]), "DUPLICATE_SERIAL", "serials"),
            (&supplier, &larvik_call_off, json!(["RD 1"]), "INVALID_SERIAL", "serials"),
            (&supplier, &larvik_call_off, json!(many), "TOO_MANY_ENTRIES", "serials"),
            (&supplier, &missing_call_off, json!(["RD-2"]), "NOT_FOUND", "callOffId"),
            (&other, &larvik_call_off, json!(["RD-2"]), "PRODUCT_OF_ANOTHER_SUPPLIER", "product"),
        ];
        for (token, call_off, serials, code, field) in cases {
            let data = app.graphql(Some(token), DELIVER,
                json!({ "input": { "callOffId": call_off, "product": DISPENSER, "serials": serials } })).await;
            let payload = &data["deviceDeliver"];
            assert_eq!(user_error(payload), (code.to_string(), json!(["input", field])), "{payload}");
            assert_eq!(payload["deliveries"], Value::Null);
        }
        assert_eq!(top_level_error(&app, Some(&larvik), DELIVER,
            json!({ "input": { "callOffId": larvik_call_off, "product": DISPENSER, "serials": ["RD-2"] } })).await, "FORBIDDEN");
        before.assert_unchanged(&app.fingerprint().await);
    }
}

on_both_backends! {
    /// Another supplier's call-off answers like a missing one, and a call-off takes no more
    /// devices than it ordered, and none before the supplier confirmed it.
    async fn deliveries_keep_to_the_suppliers_own_confirmed_call_offs_and_their_quantity(app) {
        use sea_orm::{ActiveModelTrait, EntityTrait, Set};
        use velferd::agreements::model::{CallOffStatus, call_off};
        let fleet = Fleet::new(&app).await;
        upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json").await;
        let other = OtherSupplier::register(&app, &fleet).await;
        let bytes = guests::component("velferd_dispenser_json");
        let payload = upload(&app, &other.token, "other-dispenser", bytes.clone(), &other.sign(&bytes)).await;
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        let larvik = fleet.case_worker_token(&app);
        deliver(&app, &larvik, DISPENSER, "RD-1").await.expect("delivered");
        deliver(&app, &larvik, "other-dispenser", "OD-1").await.expect("delivered");
        let db = app.db().write();
        let calls = call_off::Entity::find().all(db).await.unwrap();
        assert_eq!(calls.len(), 2, "one call-off per supplier");
        let (mine, theirs) = (global_id(NodeType::CallOff, calls[0].id).to_string(), global_id(NodeType::CallOff, calls[1].id).to_string());
        let missing = global_id(NodeType::CallOff, 999_999).to_string();
        let deliver_under = async |call_off: &str, serials: Value| -> Value {
            let data = app.graphql(Some(&fleet.supplier_token(&app)), DELIVER,
                json!({ "input": { "callOffId": call_off, "product": DISPENSER, "serials": serials } })).await;
            data["deviceDeliver"].clone()
        };
        let before = app.fingerprint().await;
        let deliver_bytes = async |call_off: &str| {
            app.graphql_bytes(Some(&fleet.supplier_token(&app)), DELIVER,
                json!({ "input": { "callOffId": call_off, "product": DISPENSER, "serials": ["RD-2"] } })).await
        };
        crate::support::assert_byte_identical(&deliver_bytes(&theirs).await, &deliver_bytes(&missing).await, &theirs, &missing);
        before.assert_unchanged(&app.fingerprint().await);
        assert_eq!(user_error(&deliver_under(&theirs, json!(["RD-2"])).await).0, "NOT_FOUND");

        let mut row: call_off::ActiveModel = calls[0].clone().into();
        row.quantity = Set(2);
        row.update(db).await.unwrap();
        let payload = deliver_under(&mine, json!(["RD-2", "RD-3"])).await;
        assert_eq!(user_error(&payload), ("OVER_QUANTITY".into(), json!(["input", "serials"])), "{payload}");
        assert_eq!(deliver_under(&mine, json!(["RD-2"])).await["userErrors"], json!([]));

        let mut row: call_off::ActiveModel = calls[0].clone().into();
        row.quantity = Set(10);
        row.status = Set(CallOffStatus::Placed);
        row.update(db).await.unwrap();
        let payload = deliver_under(&mine, json!(["RD-4"])).await;
        assert_eq!(user_error(&payload), ("CALL_OFF_NOT_CONFIRMED".into(), json!(["input", "callOffId"])), "{payload}");
    }
}

on_both_backends! {
    /// Only the holder of a key's private half gets past `signingKeyRegister`'s proof, so another
    /// supplier learns nothing of whether, or by whom, a public key is registered: trying the
    /// first supplier's registered key and a key nobody registered answers alike.
    async fn signing_key_registration_tells_nobody_but_the_keys_holder_that_it_is_taken(app) {
        let fleet = Fleet::new(&app).await;
        let other = OtherSupplier::register(&app, &fleet).await;
        let registered = STANDARD.encode(fleet.key.verifying_key().as_bytes());
        let fresh = STANDARD.encode(SigningKey::from_bytes(&[77; 32]).verifying_key().as_bytes());
        // The other supplier's best proof: its own key's signature, for its own organisation.
        let proof = key_proof(&other.key, &fleet.other_supplier);
        let before = app.fingerprint().await;
        let taken = app.graphql_bytes(Some(&other.token), REGISTER_KEY, json!({ "k": registered, "p": proof })).await;
        let free = app.graphql_bytes(Some(&other.token), REGISTER_KEY, json!({ "k": fresh, "p": proof })).await;
        crate::support::assert_byte_identical(&taken, &free, &registered, &fresh);
        assert!(taken.1.contains("\"PROOF_MISMATCH\""), "{taken:?}");
        // A proof the first supplier made for itself does not register its key elsewhere.
        let replayed = key_proof(&fleet.key, &fleet.supplier);
        let data = app.graphql(Some(&other.token), REGISTER_KEY, json!({ "k": registered, "p": replayed })).await;
        assert_eq!(user_error(&data["signingKeyRegister"]), ("PROOF_MISMATCH".into(), json!(["input", "proof"])));
        before.assert_unchanged(&app.fingerprint().await);
    }
}

on_both_backends! {
    /// `replayReview` costs in proportion to what it replays, so 150 aliases of a 200-message
    /// review are refused by cost before anything runs; and one request (a batch included) runs
    /// at most one review, however many aliases ask for it.
    async fn replay_reviews_cost_their_messages_and_run_once_per_request(app) {
        let app = app.respawn_with(&[("VELFERD_METRICS_BIND", "127.0.0.1:0")]).await;
        let fleet = Fleet::new(&app).await;
        let v1 = active_dispenser(&app, &fleet).await;
        let admin = app.admin_token();
        // Three retained messages, so that a review that runs calls the adapter.
        for serial in ["RD-900011", "RD-900012", "RD-900013"] {
            assert_eq!(ingest(&app, &fleet.integration_token(&app), DISPENSER, "application/json", stranger(serial)).await.0, 202);
        }

        let one = "query($id: ID!) { node(id: $id) { ... on Adapter { replayReview(last: 200) { messagesCompared } } } }";
        let (_, body) = app.graphql_raw(Some(&admin), one, json!({ "id": v1 })).await;
        assert!(body["extensions"]["cost"]["requestedQueryCost"].as_u64().unwrap() >= 400, "{body}");

        let aliases: String = (0..150).map(|i| format!("r{i}: replayReview(last: 200) {{ messagesCompared }} ")).collect();
        let bomb = format!("query($id: ID!) {{ node(id: $id) {{ ... on Adapter {{ {aliases} }} }} }}");
        let (before, calls) = (app.fingerprint().await, app.adapter_calls().await);
        let (_, body) = app.graphql_raw(Some(&admin), &bomb, json!({ "id": v1 })).await;
        assert_eq!(first_error_code(&body), "MAX_COST_EXCEEDED", "{body}");
        assert!(body.get("data").is_none_or(Value::is_null), "nothing ran: {body}");
        assert_eq!(app.adapter_calls().await, calls, "no adapter ran");
        before.assert_unchanged(&app.fingerprint().await);

        let two = "query($id: ID!) { node(id: $id) { ... on Adapter {
            a: replayReview(last: 1) { messagesCompared } b: replayReview(last: 1) { messagesCompared } } } }";
        let (_, body) = app.graphql_raw(Some(&admin), two, json!({ "id": v1 })).await;
        let reviewed = ["a", "b"].iter().filter(|k| body["data"]["node"][**k].is_object()).count();
        assert_eq!(reviewed, 1, "{body}");
        assert_eq!(first_error_code(&body), "BAD_USER_INPUT", "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("one replayReview per request"), "{body}");

        // A batch is one request.
        let batch = json!([{ "query": one, "variables": { "id": v1 } }, { "query": one, "variables": { "id": v1 } }]);
        let replies: Value = app.client.post(app.url("/graphql")).bearer_auth(&admin).json(&batch).send().await.unwrap().json().await.unwrap();
        let reviewed = replies.as_array().unwrap().iter().filter(|r| r["data"]["node"]["replayReview"].is_object()).count();
        assert_eq!(reviewed, 1, "{replies}");

        // The next request runs its own, and its adapter calls show in the counter.
        let calls = app.adapter_calls().await;
        let data = app.graphql(Some(&admin), one, json!({ "id": v1 })).await;
        assert_eq!(data["node"]["replayReview"]["messagesCompared"], 3);
        assert!(app.adapter_calls().await >= calls + 3.0, "the counter counts a review's calls");
    }
}

/// A message nobody registered a device for: rejected, kept as a dead letter.
fn stranger(serial: &str) -> Vec<u8> {
    json!({ "serial": serial, "events": [{ "id": "e-1", "type": "lid_open", "at": "2026-11-22T08:05:00Z" }] })
        .to_string()
        .into_bytes()
}

const LIMITS: &str = "{ deviceProduct(slug: \"reference-dispenser\") { ingestLimits { ratePerSecond burst deadLetterQuotaBytes deadLetterBytes lastRefusalCode lastRefusedAt } } }";

/// Finding: a supplier's token grew the database by 31.5 MB in 0.4 s of rejected messages. A
/// product's unresolved dead letters now stop at its quota: a new rejected message beyond it is
/// answered 429 with Retry-After and not kept (the sender keeps it), the same message seen again
/// still counts as seen, and the platform operator sees the tripped quota on the product.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_products_dead_letters_stop_at_its_quota_with_429_and_the_operator_sees_it() {
    let first = stranger("RD-900001");
    let quota = first.len() + 10;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let options =
            Options { pairs: vec![("VELFERD_DEAD_LETTER_QUOTA_BYTES", quota.to_string())], ..Default::default() };
        let Some(app) = TestApp::spawn_with(backend, options).await else { continue };
        let fleet = Fleet::new(&app).await;
        active_dispenser(&app, &fleet).await;
        let integration = fleet.integration_token(&app);
        let (status, _) = ingest(&app, &integration, DISPENSER, "application/json", first.clone()).await;
        assert_eq!(status, 202, "{backend:?}");

        let before = app.fingerprint().await;
        let response = app
            .client
            .post(app.url("/ingest/reference-dispenser"))
            .bearer_auth(&integration)
            .header("content-type", "application/json")
            .body(stranger("RD-900002"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "{backend:?}");
        assert_eq!(response.headers()["retry-after"], "60");
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["results"][0]["status"], "RETRY", "{reply}");
        assert_eq!(reply["results"][0]["reason"]["code"], "dead-letter-quota", "{reply}");
        before.assert_unchanged(&app.fingerprint().await);
        // The message already kept is counted again, not refused.
        assert_eq!(ingest(&app, &integration, DISPENSER, "application/json", first.clone()).await.0, 202);

        let data = app.graphql(Some(&app.admin_token()), LIMITS, json!({})).await;
        let limits = &data["deviceProduct"]["ingestLimits"];
        assert_eq!(limits["deadLetterQuotaBytes"], quota);
        assert_eq!(limits["deadLetterBytes"], first.len());
        assert_eq!(limits["lastRefusalCode"], "DEAD_LETTER_QUOTA_EXCEEDED");
        assert!(limits["lastRefusedAt"].is_string());
        // Not for a municipality.
        let data = app.graphql(Some(&fleet.case_worker_token(&app)), LIMITS, json!({})).await;
        assert_eq!(data["deviceProduct"]["ingestLimits"], Value::Null);
    }
}

/// The quota counts a product's unresolved dead-letter bytes in a counter kept by the
/// transactions that store, reopen and resolve dead letters (`device_product.dead_letter_bytes`),
/// not by summing them again for every rejected message. Rejections arriving at two server
/// instances at once (on PostgreSQL; SQLite has one writer), a replay running beside new
/// rejections, and a resolved message rejected again each leave it equal to the sum, and the
/// quota admits exactly what fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dead_letter_counter_stays_the_sum_through_concurrent_rejections_and_replays() {
    use sea_orm::ConnectionTrait;
    let size = stranger("RD-910000").len();
    let fits = 12;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let pairs = vec![
            ("VELFERD_DEAD_LETTER_QUOTA_BYTES", (size * fits).to_string()),
            ("VELFERD_INGEST_RATE", "100000".to_string()),
            ("VELFERD_INGEST_BURST", "100000".to_string()),
        ];
        let Some(app) = TestApp::spawn_with(backend, Options { pairs, ..Default::default() }).await else { continue };
        let fleet = Fleet::new(&app).await;
        let v1 = active_dispenser(&app, &fleet).await;
        let integration = fleet.integration_token(&app);
        let second = match backend {
            Backend::Postgres => Some(velferd::start(&app.settings, false, 1).await.expect("a second instance")),
            Backend::Sqlite => None,
        };
        let instances: Vec<String> = [Some(app.addr), second.as_ref().map(|s| s.addr)]
            .into_iter()
            .flatten()
            .map(|a| format!("http://{a}/ingest/{DISPENSER}"))
            .collect();
        let send_all = |serials: std::ops::Range<usize>| {
            futures_util::future::join_all(serials.map(|i| {
                let request = app
                    .client
                    .post(&instances[i % instances.len()])
                    .bearer_auth(&integration)
                    .header("content-type", "application/json")
                    .body(stranger(&format!("RD-{}", 910_000 + i)));
                async move { request.send().await.unwrap().status().as_u16() }
            }))
        };
        let counter = async || {
            let (counter, counted) = dead_letter_counter(&app).await;
            assert_eq!(counter, counted, "{backend:?}: the counter is the sum");
            counter
        };

        // 30 messages at once: exactly those that fit are kept, the rest answered 429.
        let statuses = send_all(0..30).await;
        let kept = statuses.iter().filter(|s| **s == 202).count();
        assert_eq!(
            (kept, statuses.iter().filter(|s| **s == 429).count()),
            (fits, 30 - fits),
            "{backend:?}: {statuses:?}"
        );
        assert_eq!(counter().await, (size * fits) as i64);

        // Five become events by a replay, while ten new messages arrive.
        let db = app.db().write();
        let kept_serials: Vec<String> = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT device_serial FROM dead_letter WHERE resolved_at IS NULL ORDER BY id".to_string(),
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("", "device_serial").unwrap())
            .collect();
        for serial in &kept_serials[..5] {
            assert_eq!(
                register_device(&app, &fleet.case_worker_token(&app), DISPENSER, serial).await["userErrors"],
                json!([])
            );
        }
        let supplier = fleet.supplier_token(&app);
        let (replay, statuses) =
            tokio::join!(app.graphql(Some(&supplier), REPLAY, json!({ "p": DISPENSER })), send_all(30..40));
        assert_eq!(replay["deadLettersReplay"]["resolved"], 5, "{backend:?}: {replay}");
        let late = statuses.iter().filter(|s| **s == 202).count();
        assert!(late <= 5 && statuses.iter().all(|s| *s == 202 || *s == 429), "{backend:?}: {statuses:?}");
        assert_eq!(counter().await, (size * (fits - 5 + late)) as i64);

        // A resolved message rejected again (its adapter retired) counts again.
        let data = app.graphql(Some(&supplier), RETIRE, json!({ "id": v1 })).await;
        assert_eq!(data["adapterRetire"]["userErrors"], json!([]), "{data}");
        let resolved_again = stranger(&kept_serials[0]);
        assert_eq!(ingest(&app, &integration, DISPENSER, "application/json", resolved_again).await.0, 202);
        let used = counter().await;
        assert_eq!(used, (size * (fits - 4 + late)) as i64);
        let data = app.graphql(Some(&supplier), LIMITS, json!({})).await;
        assert_eq!(data["deviceProduct"]["ingestLimits"]["deadLetterBytes"], used, "{backend:?}");
        if let Some(second) = second {
            second.stop().await;
        }
    }
}

/// Each product's traffic has a rate limit (per server instance): over it, a message or a whole
/// batch is answered 429 with Retry-After before anything is read into an adapter or stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_over_its_rate_gets_429_with_retry_after_and_nothing_is_stored() {
    let options = Options {
        pairs: vec![
            ("VELFERD_INGEST_RATE", "1".into()),
            ("VELFERD_INGEST_BURST", "2".into()),
            ("VELFERD_METRICS_BIND", "127.0.0.1:0".into()),
        ],
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let fleet = Fleet::new(&app).await;
    live_reference_adapters(&app, &fleet).await;
    let integration = fleet.integration_token(&app);
    for file in ["morning-dose.json", "missed-dose.json"] {
        assert_eq!(
            ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", file)).await.0,
            200
        );
    }
    let (before, calls) = (app.fingerprint().await, app.adapter_calls().await);
    let response = app
        .client
        .post(app.url("/ingest/reference-dispenser"))
        .bearer_auth(&integration)
        .header("content-type", "application/json")
        .body(stranger("RD-900003"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(first_error_code(&body), "INGEST_RATE_LIMITED", "{body}");
    // A batch larger than the burst can never pass: it is told to split.
    let batch = json!({ "messages": [
        { "contentType": "application/json", "body": "{}" }, { "contentType": "application/json", "body": "{}" },
        { "contentType": "application/json", "body": "{}" } ] });
    let (status, body) = ingest_batch(&app, &integration, batch.to_string().into_bytes()).await;
    assert_eq!((status, first_error_code(&body)), (429, "INGEST_RATE_LIMITED"), "{body}");
    assert_eq!(app.adapter_calls().await, calls, "refused before any adapter ran");
    before.assert_unchanged(&app.fingerprint().await);
    // Another product has a bucket of its own.
    assert_eq!(ingest(&app, &integration, ALARM, "application/xml", sample("alarm-scaip", "fall.xml")).await.0, 200);
    let data = app.graphql(Some(&fleet.supplier_token(&app)), LIMITS, json!({})).await;
    assert_eq!(data["deviceProduct"]["ingestLimits"]["lastRefusalCode"], "INGEST_RATE_LIMITED");
    assert_eq!(data["deviceProduct"]["ingestLimits"]["ratePerSecond"], 1);
}

on_both_backends! {
    /// A rejected message's body is stored once, on its dead letter, not again on its receipt;
    /// replay review still reads it from there.
    async fn a_rejected_body_is_stored_once_and_still_reviewed(app) {
        use sea_orm::{ConnectionTrait, Statement};
        let fleet = Fleet::new(&app).await;
        let v1 = active_dispenser(&app, &fleet).await;
        let integration = fleet.integration_token(&app);
        let body = stranger("RD-900009");
        assert_eq!(ingest(&app, &integration, DISPENSER, "application/json", body.clone()).await.0, 202);
        let db = app.db().read();
        let count = async |sql: &str| -> i64 {
            let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap().unwrap();
            row.try_get::<i64>("", "n").unwrap()
        };
        assert_eq!(count("SELECT COUNT(*) AS n FROM ingest_receipt WHERE outcome = 'rejected' AND body IS NOT NULL").await, 0);
        assert_eq!(count("SELECT COUNT(*) AS n FROM dead_letter WHERE body IS NOT NULL").await, 1);
        let review = "query($id: ID!) { node(id: $id) { ... on Adapter { replayReview(last: 10) { messagesCompared messages { bodySha256 } } } } }";
        let data = app.graphql(Some(&app.admin_token()), review, json!({ "id": v1 })).await;
        let review = &data["node"]["replayReview"];
        assert_eq!(review["messagesCompared"], 1, "{data}");
        let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&body));
        assert_eq!(review["messages"][0]["bodySha256"], sha.as_str());
    }
}

on_both_backends! {
    /// `node(id:)` answers for an adapter exactly as `DeviceProduct.activeAdapter` does: the
    /// active version to every registered caller, the other versions to the supplier and admins
    /// only (like a missing id to anyone else).
    async fn node_shows_the_active_adapter_as_active_adapter_does_and_no_other_version(app) {
        let fleet = Fleet::new(&app).await;
        let v1 = active_dispenser(&app, &fleet).await;
        let v2 = upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json_next").await;
        let case_worker = fleet.case_worker_token(&app);
        let data = app.graphql(Some(&case_worker), "{ deviceProduct(slug: \"reference-dispenser\") { activeAdapter { id } } }", json!({})).await;
        assert_eq!(data["deviceProduct"]["activeAdapter"]["id"], v1.as_str());
        assert!(!node_is_null(&app, &case_worker, &v1).await);
        assert!(node_is_null(&app, &case_worker, &v2).await, "a pending version is the supplier's");
        assert!(!node_is_null(&app, &fleet.supplier_token(&app), &v2).await);
    }
}

/// Registers the recipient `case-2026-0042` and links every device of the token's municipality
/// to it, in the database: what these tests look at is who sees the link, not how it was made
/// (`care.rs` tests assigning).
async fn assign_every_device_to_a_recipient(app: &TestApp, case_worker: &str) {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use velferd::devices::model::{DeviceStatus, device};
    let payload = crate::care::register(app, case_worker, json!({ "reference": "case-2026-0042" })).await;
    let id = payload["serviceRecipient"]["id"].as_str().unwrap_or_else(|| panic!("{payload}"));
    let row = velferd::ids::row_id(id, velferd::ids::NodeType::ServiceRecipient).unwrap();
    let recipient =
        velferd::care::model::service_recipient::Entity::find_by_id(row).one(app.db().read()).await.unwrap().unwrap();
    device::Entity::update_many()
        .col_expr(device::Column::RecipientId, Expr::value(row))
        .col_expr(device::Column::Status, Expr::value(DeviceStatus::Assigned))
        .filter(device::Column::MunicipalityId.eq(recipient.municipality_id))
        .exec(app.db().write())
        .await
        .unwrap();
}
