//! Adapters in service, over real HTTP: signed upload, review by replay, activation, devices,
//! ingest with idempotency and dead letters, and who may see and do what.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use velferd::auth::Role;
use velferd::ids::{NodeType, global_id};

use crate::guests;
use crate::nodes::NodeSample;
use crate::procurement::org_number;
use crate::support::{
    Backend, MUNICIPALITY_ORG, Options, SUPPLIER_ORG, TestApp, graphql_socket, next_text, on_both_backends, subscribe,
};

pub const DISPENSER: &str = "reference-dispenser";
pub const ALARM: &str = "reference-alarm";
/// A home-sensor hub whose adapter is built against `velferd:device@2.0.0`.
pub const HUB: &str = "reference-hub";

/// The organisations of a device fleet: a supplier with a signing key, a second supplier, and
/// two municipalities.
pub struct Fleet {
    pub supplier: String,
    pub other_supplier: String,
    pub municipality: String,
    #[allow(dead_code)] // for the access tests
    pub other_municipality: String,
    pub key: SigningKey,
}

impl Fleet {
    pub async fn new(app: &TestApp) -> Fleet {
        let other_supplier = org_number(901);
        let other_municipality = org_number(902);
        app.create_organization(
            json!({ "kind": "SUPPLIER", "name": "Reference Devices AS", "orgNumber": SUPPLIER_ORG }),
        )
        .await;
        app.create_organization(json!({ "kind": "SUPPLIER", "name": "Other Devices AS", "orgNumber": other_supplier }))
            .await;
        app.create_organization(
            json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": MUNICIPALITY_ORG,
            "municipalityNumber": "3805", "county": "Vestfold" }),
        )
        .await;
        app.create_organization(
            json!({ "kind": "MUNICIPALITY", "name": "Asker kommune", "orgNumber": other_municipality,
            "municipalityNumber": "3203", "county": "Akershus" }),
        )
        .await;
        let fleet = Fleet {
            supplier: SUPPLIER_ORG.to_string(),
            other_supplier,
            municipality: MUNICIPALITY_ORG.to_string(),
            other_municipality,
            key: SigningKey::from_bytes(&[42; 32]),
        };
        let data = app
            .graphql(
                Some(&fleet.supplier_token(app)),
                "mutation($k: String!, $p: String!) { signingKeyRegister(input: { publicKey: $k, proof: $p, label: \"release key\" }) { signingKey { id } userErrors { code } } }",
                json!({ "k": STANDARD.encode(fleet.key.verifying_key().as_bytes()), "p": key_proof(&fleet.key, &fleet.supplier) }),
            )
            .await;
        assert_eq!(data["signingKeyRegister"]["userErrors"], json!([]));
        fleet
    }

    pub fn supplier_token(&self, app: &TestApp) -> String {
        app.token(&self.supplier, &[Role::Supplier])
    }

    pub fn integration_token(&self, app: &TestApp) -> String {
        app.token(&self.supplier, &[Role::Integration])
    }

    pub fn case_worker_token(&self, app: &TestApp) -> String {
        app.token(&self.municipality, &[Role::CaseWorker])
    }

    pub fn sign(&self, bytes: &[u8]) -> String {
        STANDARD.encode(self.key.sign(bytes).to_bytes())
    }
}

/// The proof that the holder of `key` registers it for the organisation `org_number`.
pub fn key_proof(key: &SigningKey, org_number: &str) -> String {
    STANDARD.encode(key.sign(&velferd::devices::identifiers::key_registration_message(org_number)).to_bytes())
}

pub const REGISTER_KEY: &str = "mutation($k: String!, $p: String!) { signingKeyRegister(input: { publicKey: $k, proof: $p }) { signingKey { id } userErrors { field code message } } }";

/// Uploads a component as a GraphQL multipart request; returns the `adapterUpload` payload.
pub async fn upload(app: &TestApp, token: &str, product: &str, component: Vec<u8>, signature: &str) -> Value {
    let query = "mutation($input: AdapterUploadInput!) { adapterUpload(input: $input) { adapter { id status adapterVersion interfaceVersion sha256 deviceClasses } userErrors { field code message } } }";
    let input = json!({ "product": product, "component": null, "signature": signature });
    upload_as(app, token, query, input, component).await
}

/// Runs `query` (an `adapterUpload` taking `$input`) with `component` as the input's file, as
/// a GraphQL multipart request; returns the `adapterUpload` payload.
pub async fn upload_as(app: &TestApp, token: &str, query: &str, input: Value, component: Vec<u8>) -> Value {
    let operations = json!({ "query": query, "variables": { "input": input } });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.input.component"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(component).file_name("adapter.wasm").mime_str("application/wasm").unwrap(),
        );
    // The server compiles the component before it answers: an 18 MB Python one takes more than
    // the client's usual 30 s on a busy two-core machine with an unoptimised build.
    let request = app.client.post(app.url("/graphql")).bearer_auth(token).multipart(form);
    let response = request.timeout(std::time::Duration::from_secs(180)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["adapterUpload"].clone()
}

/// Uploads a guest component signed with the fleet's key; returns the new adapter's id.
pub async fn upload_signed(app: &TestApp, fleet: &Fleet, product: &str, guest: &str) -> String {
    let bytes = guests::component(guest);
    let signature = fleet.sign(&bytes);
    let payload = upload(app, &fleet.supplier_token(app), product, bytes, &signature).await;
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    assert_eq!(payload["adapter"]["status"], "PENDING_REVIEW");
    payload["adapter"]["id"].as_str().unwrap().to_string()
}

pub async fn activate(app: &TestApp, adapter_id: &str) -> Value {
    app.graphql(
        Some(&app.admin_token()),
        "mutation($id: ID!) { adapterActivate(input: { adapterId: $id }) { adapter { id status adapterVersion } userErrors { code message } } }",
        json!({ "id": adapter_id }),
    )
    .await["adapterActivate"]
        .clone()
}

/// A confirmed call-off of `municipality` with `supplier` (row ids): see
/// `velferd::agreements::seed`.
pub async fn confirmed_call_off(app: &TestApp, municipality: i64, supplier: i64) -> i64 {
    velferd::agreements::seed::confirmed_call_off(app.db().write(), municipality, supplier).await.unwrap()
}

pub const DELIVER: &str = "mutation($input: DeviceDeliverInput!) { deviceDeliver(input: $input) { deliveries { serial } userErrors { field code message } } }";

/// The product's supplier delivers `serial` to the municipality `token` acts for, under a
/// confirmed call-off of theirs, when both exist; returns the `deviceDeliver` payload, or `None`
/// when there is nobody to deliver to (the registration under test then answers for it).
pub async fn deliver(app: &TestApp, token: &str, product: &str, serial: &str) -> Option<Value> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use velferd::devices::model::device_product;
    use velferd::organizations::model as organization;
    let db = app.db().read();
    let org = token_claims(token)["org"].as_str()?.to_string();
    let municipality =
        organization::Entity::find().filter(organization::Column::OrgNumber.eq(org)).one(db).await.unwrap()?;
    if municipality.kind != velferd::organizations::OrganizationKind::Municipality {
        return None;
    }
    let product =
        device_product::Entity::find().filter(device_product::Column::Slug.eq(product)).one(db).await.unwrap()?;
    let supplier = organization::Entity::find_by_id(product.supplier_id).one(db).await.unwrap()?;
    let call_off = confirmed_call_off(app, municipality.id, supplier.id).await;
    let supplier_token = app.token(supplier.org_number.as_deref()?, &[Role::Supplier]);
    let input =
        json!({ "callOffId": global_id(NodeType::CallOff, call_off), "product": product.slug, "serials": [serial] });
    Some(app.graphql(Some(&supplier_token), DELIVER, json!({ "input": input })).await["deviceDeliver"].clone())
}

/// The claims of a token minted by `TestApp::token`.
fn token_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Delivers `serial` to the token's municipality (see [`deliver`]) and registers it with the
/// token; returns the `deviceRegister` payload.
pub async fn register_device(app: &TestApp, token: &str, product: &str, serial: &str) -> Value {
    deliver(app, token, product, serial).await;
    register_delivered(app, token, product, serial).await
}

/// Registers `serial` with the token, with no delivery made first.
pub async fn register_delivered(app: &TestApp, token: &str, product: &str, serial: &str) -> Value {
    app.graphql(
        Some(token),
        "mutation($p: String!, $s: String!) { deviceRegister(input: { product: $p, serial: $s }) { device { id serial } userErrors { field code message } } }",
        json!({ "p": product, "s": serial }),
    )
    .await["deviceRegister"]
        .clone()
}

/// POSTs one message; returns the HTTP status and the reply.
pub async fn ingest(app: &TestApp, token: &str, product: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(&format!("/ingest/{product}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

pub fn sample(adapter_dir: &str, file: &str) -> Vec<u8> {
    std::fs::read(guests::sample(adapter_dir, file)).unwrap()
}

/// The reference dispenser adapter uploaded and activated; its id.
pub async fn active_dispenser(app: &TestApp, fleet: &Fleet) -> String {
    let adapter = upload_signed(app, fleet, DISPENSER, "velferd_dispenser_json").await;
    activate(app, &adapter).await;
    adapter
}

/// A fleet with live reference adapters that has ingested one decodable message and one from a
/// serial nobody registered; returns the fleet and the id of that message's dead letter.
pub async fn fleet_with_an_event_and_a_dead_letter(app: &TestApp) -> (Fleet, String) {
    let fleet = Fleet::new(app).await;
    live_reference_adapters(app, &fleet).await;
    let integration = fleet.integration_token(app);
    let (status, _) =
        ingest(app, &integration, DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json")).await;
    assert_eq!(status, 200);
    let stranger =
        json!({ "serial": "RD-999999", "events": [{ "id": "e-1", "type": "lid_open", "at": "2026-11-22T08:05:00Z" }] });
    let (status, reply) =
        ingest(app, &integration, DISPENSER, "application/json", stranger.to_string().into_bytes()).await;
    assert_eq!(status, 202, "a dead letter: {reply}");
    (fleet, reply["results"][0]["deadLetterId"].as_str().expect("a dead letter id").to_string())
}

/// Both reference adapters uploaded, activated, with the samples' devices registered to the
/// fleet's municipality.
pub async fn live_reference_adapters(app: &TestApp, fleet: &Fleet) {
    let dispenser = upload_signed(app, fleet, DISPENSER, "velferd_dispenser_json").await;
    let alarm = upload_signed(app, fleet, ALARM, "velferd_alarm_scaip").await;
    for id in [&dispenser, &alarm] {
        assert_eq!(activate(app, id).await["adapter"]["status"], "ACTIVE");
    }
    let token = fleet.case_worker_token(app);
    for serial in ["RD-100234", "RD-100235", "RD-100236"] {
        assert_eq!(register_device(app, &token, DISPENSER, serial).await["userErrors"], json!([]));
    }
    for serial in ["SA-7734001", "SA-7734002", "SA-7734003", "SA-7734004"] {
        assert_eq!(register_device(app, &token, ALARM, serial).await["userErrors"], json!([]));
    }
}

/// The events of `kinds` the token's holder sees, one line each, sorted:
/// `kind supplier-event-id device-serial [via gateway-serial]`.
async fn events_seen(app: &TestApp, token: &str, kinds: &[&str]) -> Vec<String> {
    let data = app
        .graphql(
            Some(token),
            "query($kinds: [String!]) { deviceEvents(first: 100, filter: { kinds: $kinds }) {
               nodes { kind supplierEventId gatewaySerial device { serial } } } }",
            json!({ "kinds": kinds }),
        )
        .await;
    let mut seen: Vec<String> = data["deviceEvents"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{data}"))
        .iter()
        .map(|n| {
            let via = n["gatewaySerial"].as_str().map(|g| format!(" via {g}")).unwrap_or_default();
            format!(
                "{} {} {}{via}",
                n["kind"].as_str().unwrap(),
                n["supplierEventId"].as_str().unwrap(),
                n["device"]["serial"].as_str().unwrap()
            )
        })
        .collect();
    seen.sort();
    seen
}

pub async fn event_count(app: &TestApp, token: &str) -> i64 {
    app.graphql(Some(token), "{ deviceEvents(first: 1) { totalCount } }", json!({})).await["deviceEvents"]["totalCount"]
        .as_i64()
        .unwrap()
}

const DISPENSER_SAMPLES: [(&str, u32); 4] =
    [("morning-dose.json", 2), ("missed-dose.json", 2), ("refill-jam-fault.json", 3), ("lid-power-offline.json", 7)];
const ALARM_SAMPLES: [&str; 10] = [
    "alarm-button.xml",
    "pull-cord.xml",
    "fall.xml",
    "smoke.xml",
    "inactivity.xml",
    "cancel.xml",
    "test-transmission.xml",
    "battery-low.xml",
    "heartbeat.xml",
    "unclassified-alarm.xml",
];

on_both_backends! {
    /// Interface versions side by side: a version-2 adapter (the sensor hub) goes live beside
    /// the version-1 reference adapters; each decodes its own traffic, and the events of the
    /// version-2 adapter name the gateway that relayed them.
    async fn adapters_of_interface_versions_1_and_2_serve_side_by_side(app) {
        let fleet = Fleet::new(&app).await;
        live_reference_adapters(&app, &fleet).await;
        let hub = upload_signed(&app, &fleet, HUB, "velferd_sensor_hub_json").await;
        let activated = activate(&app, &hub).await;
        assert_eq!(activated["adapter"]["status"], "ACTIVE", "{activated}");
        let case_worker = fleet.case_worker_token(&app);
        for serial in ["HUB-5521007", "BS-0311", "DS-0042", "SM-0007"] {
            assert_eq!(register_device(&app, &case_worker, HUB, serial).await["userErrors"], json!([]));
        }

        let integration = fleet.integration_token(&app);
        let messages = [
            (HUB, "application/json", sample("sensor-hub-json", "night-round.json"), 5),
            (DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json"), 2),
            (ALARM, "application/xml", sample("alarm-scaip", "fall.xml"), 1),
        ];
        for (product, content_type, body, stored) in messages {
            let (status, reply) = ingest(&app, &integration, product, content_type, body).await;
            assert_eq!(status, 200, "{product}: {reply}");
            assert_eq!(reply["results"][0]["eventsStored"], stored, "{product}: {reply}");
        }

        let seen = events_seen(&app, &case_worker, &["door-opened", "heartbeat", "dose-dispensed", "fall"]).await;
        assert_eq!(seen, [
            "door-opened h-7002 DS-0042 via HUB-5521007",
            "dose-dispensed e-1002 RD-100234",
            "fall A-000125 SA-7734002",
            "heartbeat h-7004 HUB-5521007",
        ]);
        // The municipality does not manage adapters, so `adapter` is hidden from it; the
        // supplier sees which interface version decoded each event.
        let data = app
            .graphql(
                Some(&fleet.supplier_token(&app)),
                "{ deviceProducts { nodes { slug adapters { interfaceVersion status } } } }",
                json!({}),
            )
            .await;
        let mut versions: Vec<(String, String)> = data["deviceProducts"]["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{data}"))
            .iter()
            .map(|p| (p["slug"].as_str().unwrap().to_owned(), p["adapters"][0]["interfaceVersion"].as_str().unwrap().to_owned()))
            .collect();
        versions.sort();
        assert_eq!(versions, [
            (ALARM.to_owned(), "1.0.0".to_owned()),
            (DISPENSER.to_owned(), "1.0.0".to_owned()),
            (HUB.to_owned(), "2.0.0".to_owned()),
        ]);
    }
}

on_both_backends! {
    /// A product crosses interface versions: its 1.0.0 adapter is active when the supplier
    /// uploads release 2.0.0, built against `velferd:device@2.0.0`. Review by replay shows the
    /// accessory's alarm moving from the unit to the accessory; once active, 2.0.0 files such
    /// alarms under the accessory with the unit as gateway; rolling back brings 1.0.0 back
    /// into service, unchanged.
    async fn a_product_moves_from_interface_1_to_2_and_back(app) {
        let fleet = Fleet::new(&app).await;
        live_reference_adapters(&app, &fleet).await;
        let integration = fleet.integration_token(&app);
        let case_worker = fleet.case_worker_token(&app);
        let accessory = |reference: &str| {
            format!("<mrq><ref>{reference}</ref><cid>SA-7734001</cid><did>PC-0007</did><mty>ME</mty><stc>002</stc><lco>031</lco></mrq>")
                .into_bytes()
        };
        let (status, reply) = ingest(&app, &integration, ALARM, "application/xml", accessory("A-000140")).await;
        assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");

        let upload = upload(&app, &fleet.supplier_token(&app), ALARM, guests::component("velferd_alarm_scaip_v2"),
            &fleet.sign(&guests::component("velferd_alarm_scaip_v2"))).await;
        assert_eq!(upload["userErrors"], json!([]), "{upload}");
        assert_eq!((upload["adapter"]["interfaceVersion"].as_str(), upload["adapter"]["adapterVersion"].as_str()), (Some("2.0.0"), Some("2.0.0")));
        let v2 = upload["adapter"]["id"].as_str().unwrap().to_string();
        let review = app
            .graphql(
                Some(&app.admin_token()),
                "query($id: ID!) { node(id: $id) { ... on Adapter { replayReview(last: 1) {
                    baseline { interfaceVersion } candidate { interfaceVersion } messagesCompared differing
                    messages { differences { change deviceSerial supplierEventId candidate } } } } } }",
                json!({ "id": v2 }),
            )
            .await;
        let review = &review["node"]["replayReview"];
        assert_eq!((review["baseline"]["interfaceVersion"].as_str(), review["candidate"]["interfaceVersion"].as_str()), (Some("1.0.0"), Some("2.0.0")));
        assert_eq!((review["messagesCompared"].as_i64(), review["differing"].as_i64()), (Some(1), Some(1)), "{review}");
        let changes: Vec<(&str, &str)> = review["messages"][0]["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["change"].as_str().unwrap(), d["deviceSerial"].as_str().unwrap()))
            .collect();
        assert_eq!(changes, [("REMOVED", "SA-7734001"), ("ADDED", "PC-0007")], "{review}");

        // 2.0.0 in service: the accessory, registered like any device, gets its alarms.
        assert_eq!(register_device(&app, &case_worker, ALARM, "PC-0007").await["userErrors"], json!([]));
        assert_eq!(activate(&app, &v2).await["adapter"]["status"], "ACTIVE");
        let (status, reply) = ingest(&app, &integration, ALARM, "application/xml", accessory("A-000141")).await;
        assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");
        let (status, _) = ingest(&app, &integration, ALARM, "application/xml", sample("alarm-scaip", "fall.xml")).await;
        assert_eq!(status, 200);

        // Back to 1.0.0: the accessory's next alarm is the unit's again.
        let data = app
            .graphql(Some(&app.admin_token()), "mutation { adapterRollBack(input: { product: \"reference-alarm\" }) { adapter { interfaceVersion } userErrors { code } } }", json!({}))
            .await;
        assert_eq!(data["adapterRollBack"]["adapter"]["interfaceVersion"], "1.0.0", "{data}");
        let (status, reply) = ingest(&app, &integration, ALARM, "application/xml", accessory("A-000142")).await;
        assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");

        let seen = events_seen(&app, &case_worker, &["pull-cord", "fall"]).await;
        assert_eq!(seen, [
            "fall A-000125 SA-7734002",
            "pull-cord A-000140 SA-7734001",
            "pull-cord A-000141 PC-0007 via SA-7734001",
            "pull-cord A-000142 SA-7734001",
        ]);
    }
}

const LIVE_EVENTS: &str = "subscription($filter: DeviceEventFilter) { deviceEventReceived(filter: $filter) {
    sequence event { kind severity supplierEventId device { serial } } } }";

on_both_backends! {
    /// Live device events: each subscriber hears, as they are stored, the events of the devices
    /// it may see and that pass its filter — a municipality its own, a supplier its products' —
    /// and nothing else; an anonymous subscriber gets an error, not a stream.
    async fn subscribers_hear_the_device_events_they_may_see_as_they_are_stored(app) {
        let fleet = Fleet::new(&app).await;
        live_reference_adapters(&app, &fleet).await;
        let asker = app.token(&fleet.other_municipality, &[Role::CaseWorker]);
        assert_eq!(register_device(&app, &asker, ALARM, "SA-9000001").await["userErrors"], json!([]));

        let mut larvik_critical = graphql_socket(&app, Some(&fleet.case_worker_token(&app))).await;
        subscribe(&mut larvik_critical, "live", LIVE_EVENTS, json!({ "filter": { "minSeverity": "CRITICAL" } })).await;
        let mut asker_all = graphql_socket(&app, Some(&asker)).await;
        subscribe(&mut asker_all, "live", LIVE_EVENTS, json!({})).await;
        let mut supplier_falls = graphql_socket(&app, Some(&fleet.supplier_token(&app))).await;
        subscribe(&mut supplier_falls, "live", LIVE_EVENTS, json!({ "filter": { "kinds": ["fall"] } })).await;

        let integration = fleet.integration_token(&app);
        // Larvik's heartbeat (normal), then its fall (critical).
        for file in ["heartbeat.xml", "fall.xml"] {
            let (status, reply) = ingest(&app, &integration, ALARM, "application/xml", sample("alarm-scaip", file)).await;
            assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");
        }
        // Asker's alarm button.
        let asker_alarm = "<mrq><ver>01.00</ver><ref>A-900001</ref><cid>SA-9000001</cid><dty>005</dty><mty>ME</mty><stc>001</stc><lco>010</lco></mrq>";
        let (status, reply) = ingest(&app, &integration, ALARM, "application/xml", asker_alarm.as_bytes().to_vec()).await;
        assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");

        // Each subscriber's first message is the first event meant for it: Larvik's critical
        // subscription skipped the heartbeat, Asker heard nothing of Larvik's devices.
        let heard = live_event(&mut larvik_critical).await;
        assert_eq!((heard["kind"].as_str(), heard["device"]["serial"].as_str()), (Some("fall"), Some("SA-7734002")), "{heard}");
        assert_eq!(heard["severity"], "CRITICAL");
        let heard = live_event(&mut asker_all).await;
        assert_eq!((heard["kind"].as_str(), heard["supplierEventId"].as_str()), (Some("alarm-button"), Some("A-900001")), "{heard}");
        let heard = live_event(&mut supplier_falls).await;
        assert_eq!(heard["supplierEventId"], "A-000125", "{heard}");
        // Larvik hears Asker's alarm neither: its next critical event is its own smoke alarm.
        let (status, _) = ingest(&app, &integration, ALARM, "application/xml", sample("alarm-scaip", "smoke.xml")).await;
        assert_eq!(status, 200);
        assert_eq!(live_event(&mut larvik_critical).await["kind"], "fire");

        // Signed out: an error with its code, then the subscription completes.
        let mut anonymous = graphql_socket(&app, None).await;
        subscribe(&mut anonymous, "1", LIVE_EVENTS, json!({})).await;
        let answer = next_text(&mut anonymous).await;
        assert_eq!(answer["payload"]["data"], Value::Null, "{answer}");
        assert_eq!(answer["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{answer}");
        assert_eq!(next_text(&mut anonymous).await["type"], "complete");
    }
}

async fn live_event(ws: &mut crate::support::Socket) -> Value {
    let message = next_text(ws).await;
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["deviceEventReceived"]["event"].clone()
}

on_both_backends! {
    /// Must show 1: both reference adapters uploaded signed over HTTP and activated; every
    /// sample ingested over HTTP becomes its normalised events, found over GraphQL; the same
    /// message twice is stored once.
    async fn reference_adapters_go_live_and_every_sample_becomes_events_once(app) {
        let fleet = Fleet::new(&app).await;
        live_reference_adapters(&app, &fleet).await;
        let integration = fleet.integration_token(&app);

        for (file, events) in DISPENSER_SAMPLES {
            let (status, reply) = ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", file)).await;
            assert_eq!(status, 200, "{file}: {reply}");
            assert_eq!(reply["accepted"], 1, "{file}: {reply}");
            assert_eq!(reply["results"][0]["eventsStored"], events, "{file}: {reply}");
        }
        for file in ALARM_SAMPLES {
            let (status, reply) = ingest(&app, &integration, ALARM, "application/xml", sample("alarm-scaip", file)).await;
            assert_eq!(status, 200, "{file}: {reply}");
            assert_eq!(reply["results"][0]["eventsStored"], 1, "{file}: {reply}");
        }
        let municipality = fleet.case_worker_token(&app);
        assert_eq!(event_count(&app, &municipality).await, 14 + 10);

        // The fall, as the municipality sees it.
        let data = app
            .graphql(
                Some(&municipality),
                "{ deviceEvents(first: 5, filter: { kinds: [\"fall\"] }) { nodes { kind severity supplierEventId occurredAt vkp { system code }
                   device { serial status product { slug } municipality { name } } data } } }",
                json!({}),
            )
            .await;
        let fall = &data["deviceEvents"]["nodes"][0];
        assert_eq!(fall["kind"], "fall");
        assert_eq!(fall["severity"], "CRITICAL");
        assert_eq!(fall["supplierEventId"], "A-000125");
        assert_eq!(fall["occurredAt"], "2026-11-22T03:15:03+00:00");
        assert_eq!(fall["vkp"], json!({ "system": "http://ehelse.no/fhir/CodeSystem/vkp-alert-code-v090", "code": "4.1" }));
        assert_eq!(fall["device"]["serial"], "SA-7734002");
        assert_eq!(fall["device"]["status"], "IN_STOCK");
        assert_eq!(fall["device"]["product"]["slug"], ALARM);
        assert_eq!(fall["data"]["kind"]["type"], "fall");

        // Severity filter: the missed dose, the jam, the fault, the offline and the alarms.
        let data = app
            .graphql(Some(&municipality), "{ deviceEvents(filter: { minSeverity: CRITICAL }) { totalCount } }", json!({}))
            .await;
        assert_eq!(data["deviceEvents"]["totalCount"], 5);

        // The same message again: acknowledged as a duplicate, stored once.
        let (status, reply) =
            ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json")).await;
        assert_eq!(status, 200);
        assert_eq!(reply["duplicate"], 1, "{reply}");
        assert_eq!(reply["results"][0]["status"], "DUPLICATE");
        assert_eq!(reply["results"][0]["eventsDuplicate"], 2);
        assert_eq!(event_count(&app, &municipality).await, 24);

        // The batch form answers each message on its own.
        let new_message = json!({ "serial": "RD-100234", "events": [
            { "id": "e-7001", "type": "dose_taken", "at": "2026-11-22T18:01:00Z", "dose": { "id": "d-9" } },
            { "id": "e-1001", "type": "dose_available", "at": "2026-11-22T07:00:00Z", "dose": {} } ] });
        let batch = json!({ "messages": [
            { "contentType": "application/json", "body": String::from_utf8(sample("dispenser-json", "missed-dose.json")).unwrap() },
            { "contentType": "application/json", "bodyBase64": STANDARD.encode(new_message.to_string()) },
            { "contentType": "application/json", "body": "{ not json" },
        ] });
        let response = app
            .client
            .post(app.url(&format!("/ingest/{DISPENSER}/batch")))
            .bearer_auth(&integration)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let reply: Value = response.json().await.unwrap();
        assert_eq!((reply["accepted"].as_u64(), reply["duplicate"].as_u64(), reply["rejected"].as_u64()), (Some(1), Some(1), Some(1)), "{reply}");
        let statuses: Vec<&str> = reply["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["DUPLICATE", "ACCEPTED", "REJECTED"]);
        assert_eq!(reply["results"][1]["eventsStored"], 1, "only e-7001 is new: {reply}");
        assert_eq!(reply["results"][1]["eventsDuplicate"], 1);
        assert_eq!(reply["results"][2]["reason"]["code"], "malformed");
        assert_eq!(event_count(&app, &municipality).await, 25);
    }
}

on_both_backends! {
    /// Must show 3: a decode that fails becomes a dead letter, and an unknown device's
    /// message is kept; after a fixed version is activated and the device registered, replay
    /// turns both into events. Must show 4 (second half): the replay review of the changed
    /// version shows the differing events, message by message.
    async fn dead_letters_become_events_after_a_fix_and_review_shows_the_differences(app) {
        let fleet = Fleet::new(&app).await;
        let v1 = upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json").await;
        let integration = fleet.integration_token(&app);
        let municipality = fleet.case_worker_token(&app);

        // Before any version is active, a message is kept, not dropped.
        let early = sample("dispenser-json", "morning-dose.json");
        let (status, reply) = ingest(&app, &integration, DISPENSER, "application/json", early.clone()).await;
        assert_eq!(status, 202, "{reply}");
        assert_eq!(reply["results"][0]["reason"]["code"], "no-active-adapter");

        activate(&app, &v1).await;
        register_device(&app, &municipality, DISPENSER, "RD-100234").await;
        assert_eq!(ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "missed-dose.json")).await.0, 200);

        let tray = json!({ "serial": "RD-100234", "events": [
            { "id": "e-8001", "type": "tray_misplaced", "at": "2026-11-22T08:00:00Z" } ] })
        .to_string();
        let (status, reply) = ingest(&app, &integration, DISPENSER, "application/json", tray.clone().into_bytes()).await;
        assert_eq!(status, 202, "{reply}");
        assert_eq!(reply["rejected"], 1);
        assert_eq!(reply["results"][0]["reason"]["code"], "unsupported");
        let tray_letter = reply["results"][0]["deadLetterId"].as_str().unwrap().to_string();

        let stranger = json!({ "serial": "RD-999999", "events": [
            { "id": "e-8101", "type": "lid_open", "at": "2026-11-22T08:05:00Z" } ] })
        .to_string();
        let (status, reply) = ingest(&app, &integration, DISPENSER, "application/json", stranger.clone().into_bytes()).await;
        assert_eq!(status, 202);
        assert_eq!(reply["results"][0]["reason"]["code"], "unknown-device");

        // The supplier sees the three dead letters with their reasons and original bytes.
        let letters = app
            .graphql(
                Some(&fleet.supplier_token(&app)),
                "{ deadLetters(filter: { product: \"reference-dispenser\" }) { totalCount nodes { id reasonCode deviceSerial bodyText attempts } } }",
                json!({}),
            )
            .await;
        let nodes = letters["deadLetters"]["nodes"].as_array().unwrap().clone();
        let codes: Vec<&str> = nodes.iter().map(|n| n["reasonCode"].as_str().unwrap()).collect();
        assert_eq!(codes, ["no-active-adapter", "unsupported", "unknown-device"]);
        assert_eq!(nodes[1]["bodyText"], tray.as_str());
        assert_eq!(nodes[2]["deviceSerial"], "RD-999999");

        // The same undecodable message again updates its dead letter rather than adding one.
        let (_, reply) = ingest(&app, &integration, DISPENSER, "application/json", tray.clone().into_bytes()).await;
        assert_eq!(reply["results"][0]["deadLetterId"], tray_letter.as_str());

        // Review by replay: 1.1.0 against the active 1.0.0 over the recent messages.
        let v2 = upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json_next").await;
        let review = app
            .graphql(
                Some(&app.admin_token()),
                "query($id: ID!) { node(id: $id) { ... on Adapter { adapterVersion replayReview(last: 10) {
                    baseline { adapterVersion } candidate { adapterVersion } messagesCompared identical differing
                    messages { identical baseline { errorCode } candidate { errorCode events }
                      differences { change deviceSerial supplierEventId fields baseline candidate } } } } } }",
                json!({ "id": v2 }),
            )
            .await;
        let review = &review["node"]["replayReview"];
        assert_eq!(review["baseline"]["adapterVersion"], "1.0.0");
        assert_eq!(review["candidate"]["adapterVersion"], "1.1.0");
        // Retained, newest first: tray again, stranger, tray, missed-dose (the message before
        // activation was decoded by no version, so it is not retained for review).
        assert_eq!(review["messagesCompared"], 4, "{review}");
        assert_eq!(review["differing"], 3, "{review}");
        let messages = review["messages"].as_array().unwrap();
        // Newest first: the tray message sent again.
        assert_eq!(messages[0]["baseline"]["errorCode"], "unsupported");
        assert_eq!(messages[0]["candidate"]["errorCode"], Value::Null);
        assert_eq!(messages[0]["differences"][0]["change"], "ADDED");
        assert_eq!(messages[0]["differences"][0]["candidate"]["kind"]["type"], "tray-misplaced");
        assert_eq!(messages[1]["identical"], true, "the lid message decodes the same: {review}");
        let missed = &messages[3];
        assert_eq!(missed["identical"], false);
        assert_eq!(missed["differences"].as_array().unwrap().len(), 1, "{missed}");
        let change = &missed["differences"][0];
        assert_eq!((change["change"].as_str(), change["supplierEventId"].as_str()), (Some("CHANGED"), Some("e-1004")));
        assert_eq!(change["fields"], json!(["severity"]));
        assert_eq!((change["baseline"]["severity"].as_str(), change["candidate"]["severity"].as_str()), (Some("serious"), Some("critical")));

        // The fix goes live; replay turns the tray message into events. The stranger's stays
        // a dead letter until its device is registered.
        assert_eq!(activate(&app, &v2).await["adapter"]["status"], "ACTIVE");
        let replay = "mutation { deadLettersReplay(input: { product: \"reference-dispenser\" }) {
            replayed resolved results { resolved eventsStored deadLetter { reasonCode resolvedAt } } userErrors { code } } }";
        let data = app.graphql(Some(&fleet.supplier_token(&app)), replay, json!({})).await;
        let outcome = &data["deadLettersReplay"];
        assert_eq!((outcome["replayed"].as_i64(), outcome["resolved"].as_i64()), (Some(3), Some(2)), "{outcome}");
        assert_eq!(outcome["results"][2]["deadLetter"]["reasonCode"], "unknown-device");
        assert_eq!(outcome["results"][1]["eventsStored"], 1);

        register_device(&app, &municipality, DISPENSER, "RD-999999").await;
        let data = app.graphql(Some(&app.admin_token()), replay, json!({})).await;
        assert_eq!(data["deadLettersReplay"]["resolved"], 1, "{data}");
        let data = app
            .graphql(Some(&municipality), "{ deviceEvents(filter: { kinds: [\"tray-misplaced\", \"lid-opened\"] }) { nodes { kind device { serial } } } }", json!({}))
            .await;
        assert_eq!(data["deviceEvents"]["nodes"].as_array().unwrap().len(), 2, "{data}");
        let open = app.graphql(Some(&fleet.supplier_token(&app)), "{ deadLetters { totalCount } }", json!({})).await;
        assert_eq!(open["deadLetters"]["totalCount"], 0);
        // 2 (missed-dose) + 2 (the early morning dose) + 1 (tray) + 1 (lid).
        assert_eq!(event_count(&app, &municipality).await, 6);

        // Roll back to 1.0.0, then retire it: the product has no active version.
        let data = app
            .graphql(Some(&app.admin_token()), "mutation { adapterRollBack(input: { product: \"reference-dispenser\" }) { adapter { id adapterVersion status } userErrors { code } } }", json!({}))
            .await;
        assert_eq!(data["adapterRollBack"]["adapter"]["adapterVersion"], "1.0.0");
        let data = app
            .graphql(Some(&app.admin_token()), "mutation { adapterRollBack(input: { product: \"reference-dispenser\" }) { adapter { id } userErrors { code } } }", json!({}))
            .await;
        assert_eq!(data["adapterRollBack"]["userErrors"][0]["code"], "NOTHING_TO_ROLL_BACK_TO");
        let retire = "mutation($id: ID!) { adapterRetire(input: { adapterId: $id }) { adapter { status retiredAt } userErrors { code } } }";
        let data = app.graphql(Some(&fleet.supplier_token(&app)), retire, json!({ "id": v1 })).await;
        assert_eq!(data["adapterRetire"]["adapter"]["status"], "RETIRED");
        let data = app.graphql(Some(&fleet.supplier_token(&app)), retire, json!({ "id": v1 })).await;
        assert_eq!(data["adapterRetire"]["userErrors"][0]["code"], "ALREADY_RETIRED");
        let (status, reply) = ingest(&app, &integration, DISPENSER, "application/json", early).await;
        assert_eq!((status, reply["results"][0]["reason"]["code"].as_str()), (202, Some("no-active-adapter")));
        let data = app.graphql(Some(&app.admin_token()), "mutation($id: ID!) { adapterActivate(input: { adapterId: $id }) { userErrors { code } } }", json!({ "id": v1 })).await;
        assert_eq!(data["adapterActivate"]["userErrors"][0]["code"], "CANNOT_ACTIVATE");
    }
}

on_both_backends! {
    /// Must show 4 (first half): an unsigned or wrongly signed upload is refused and writes
    /// nothing.
    async fn unsigned_and_wrongly_signed_uploads_are_refused(app) {
        let fleet = Fleet::new(&app).await;
        let bytes = guests::component("velferd_dispenser_json");
        let token = fleet.supplier_token(&app);
        let stranger = SigningKey::from_bytes(&[7; 32]);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "INVALID_SIGNATURE"),
            ("not base64 at all!".into(), "INVALID_SIGNATURE"),
            (STANDARD.encode([0u8; 64]), "SIGNATURE_MISMATCH"),
            (STANDARD.encode(stranger.sign(&bytes).to_bytes()), "SIGNATURE_MISMATCH"),
            (fleet.sign(b"some other component"), "SIGNATURE_MISMATCH"),
        ];
        for (signature, code) in cases {
            let payload = upload(&app, &token, DISPENSER, bytes.clone(), &signature).await;
            assert_eq!(payload["userErrors"][0]["code"], code, "{signature}: {payload}");
            assert_eq!(payload["userErrors"][0]["field"], json!(["input", "signature"]));
            assert_eq!(payload["adapter"], Value::Null);
        }
        // A supplier without a key cannot upload at all.
        let other = app.token(&fleet.other_supplier, &[Role::Supplier]);
        let payload = upload(&app, &other, "other-dispenser", bytes.clone(), &fleet.sign(&bytes)).await;
        assert_eq!(payload["userErrors"][0]["code"], "NO_SIGNING_KEY");
        // A revoked key no longer signs.
        let keys = app.graphql(Some(&token), "{ signingKeys { id revokedAt } }", json!({})).await;
        let key_id = keys["signingKeys"][0]["id"].as_str().unwrap().to_string();
        let data = app
            .graphql(Some(&token), "mutation($id: ID!) { signingKeyRevoke(input: { id: $id }) { signingKey { revokedAt } userErrors { code } } }", json!({ "id": key_id }))
            .await;
        assert!(data["signingKeyRevoke"]["signingKey"]["revokedAt"].is_string());
        let payload = upload(&app, &token, DISPENSER, bytes.clone(), &fleet.sign(&bytes)).await;
        assert_eq!(payload["userErrors"][0]["code"], "NO_SIGNING_KEY");
        // Nothing was written: no product, no adapter.
        let data = app.graphql(Some(&token), "{ deviceProducts { totalCount } }", json!({})).await;
        assert_eq!(data["deviceProducts"]["totalCount"], 0);
        // Bad keys are refused with a clear error.
        let proof = key_proof(&fleet.key, &fleet.supplier);
        for bad in ["", "AAAA", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"] {
            let data = app.graphql(Some(&token), REGISTER_KEY, json!({ "k": bad, "p": proof })).await;
            assert_eq!(data["signingKeyRegister"]["userErrors"][0]["code"], "INVALID_PUBLIC_KEY", "{bad}");
        }
        let public = STANDARD.encode(fleet.key.verifying_key().as_bytes());
        let data = app.graphql(Some(&token), REGISTER_KEY, json!({ "k": public, "p": "AAAA" })).await;
        assert_eq!(data["signingKeyRegister"]["userErrors"][0]["code"], "INVALID_SIGNATURE");
        let data = app.graphql(Some(&token), REGISTER_KEY, json!({ "k": public, "p": proof })).await;
        assert_eq!(data["signingKeyRegister"]["userErrors"][0]["code"], "KEY_ALREADY_REGISTERED");
    }
}

/// Percentiles of a set of durations, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99), at(1.0))
}

/// Must show 2: hostile adapters uploaded to a running server are refused at upload or
/// contained per message, while concurrent GraphQL requests keep being answered. The latency
/// of those requests during the attack is printed (run with `--nocapture`); docs/ingest.md
/// reports it from the benchmark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_adapters_are_refused_or_contained_while_graphql_keeps_answering() {
    // The reader queries as fast as it can: the throttle, tested in throttle.rs, is raised.
    let pairs = vec![("VELFERD_THROTTLE_RESTORE_RATE", "100000000".to_string())];
    let app = TestApp::spawn_with(Backend::Sqlite, Options { pairs, ..Options::default() }).await.unwrap();
    let fleet = Fleet::new(&app).await;
    let supplier = fleet.supplier_token(&app);
    let refused = [
        ("hostile_wrong_world", "wrong-world"),
        ("hostile_other_version", "unsupported-interface-version"),
        ("hostile_open_file", "forbidden-import"),
        ("hostile_open_socket", "forbidden-import"),
    ];
    for (guest, code) in refused {
        let bytes = guests::component(guest);
        let payload = upload(&app, &supplier, "hostile-product", bytes.clone(), &fleet.sign(&bytes)).await;
        assert_eq!(payload["userErrors"][0]["code"], "INVALID_COMPONENT", "{guest}: {payload}");
        assert!(payload["userErrors"][0]["message"].as_str().unwrap().contains(code), "{guest}: {payload}");
    }
    let contained = [
        ("hostile_infinite_loop", &["fuel-exhausted"][..]),
        ("hostile_memory_bomb", &["memory-exceeded"]),
        ("hostile_deep_recursion", &["stack-overflow", "trap"]),
        ("hostile_panic", &["trap"]),
        ("hostile_gigantic_output", &["output-too-large"]),
        ("hostile_read_env", &["capability-denied"]),
    ];
    let integration = fleet.integration_token(&app);
    let viewer = fleet.case_worker_token(&app);
    for (i, (guest, code)) in contained.iter().enumerate() {
        let product = format!("hostile-{i}");
        let id = upload_signed(&app, &fleet, &product, guest).await;
        assert_eq!(activate(&app, &id).await["adapter"]["status"], "ACTIVE", "{guest}");

        // The attack: 4 senders post messages to the hostile adapter while a reader keeps
        // querying GraphQL.
        let attack_until = Instant::now() + Duration::from_millis(600);
        let mut senders = Vec::new();
        for _ in 0..4 {
            let (client, base, product, token) =
                (app.client.clone(), app.url(""), product.clone(), integration.clone());
            senders.push(tokio::spawn(async move {
                let mut codes = Vec::new();
                // At least one message each, however slow the machine.
                while codes.is_empty() || Instant::now() < attack_until {
                    let message = format!("{{\"n\": {}}}", codes.len());
                    let reply: Value =
                        crate::wire::ingest(&client, &base, &token, &product, "application/json", message)
                            .await
                            .json()
                            .await
                            .unwrap();
                    codes.push(reply["results"][0]["reason"]["code"].as_str().unwrap_or("none").to_string());
                }
                codes
            }));
        }
        let mut latencies = Vec::new();
        while latencies.is_empty() || Instant::now() < attack_until {
            let started = Instant::now();
            let data = app
                .graphql(Some(&viewer), "{ viewer { authenticated } deviceProducts { totalCount } }", json!({}))
                .await;
            latencies.push(started.elapsed());
            assert_eq!(data["viewer"]["authenticated"], true);
        }
        for sender in senders {
            let codes = sender.await.unwrap();
            assert!(!codes.is_empty());
            // Contained one by one, until the circuit breaker pauses the adapter: then at once.
            assert!(code.contains(&codes[0].as_str()), "{guest}: contained as {code:?}: {codes:?}");
            assert!(
                codes.iter().all(|c| code.contains(&c.as_str()) || c == "adapter-quarantined"),
                "{guest}: every message is contained as {code:?}: {codes:?}"
            );
        }
        if *guest == "hostile_infinite_loop" {
            // The circuit breaker: after 20 calls in a row that hit a limit, the adapter is
            // paused and its messages are kept at once, without a call.
            let mut last = String::new();
            for n in 0..21 {
                let (status, reply) = ingest(
                    &app,
                    &integration,
                    &product,
                    "application/json",
                    format!("{{\"after\": {n}}}").into_bytes(),
                )
                .await;
                assert_eq!(status, 202);
                last = reply["results"][0]["reason"]["code"].as_str().unwrap().to_string();
            }
            assert_eq!(last, "adapter-quarantined");
        }
        let (p50, p99, max) = percentiles(latencies.clone());
        println!(
            "{guest}: {} GraphQL requests during the attack, p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
            latencies.len()
        );
    }
    // The host still serves a well-behaved adapter afterwards.
    live_reference_adapters(&app, &fleet).await;
    let (status, reply) =
        ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json")).await;
    assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");
}

/// The product's dead letters (unresolved ones, or resolved ones), one line each in id order:
/// `content-type reason-code attempts`.
async fn dead_letter_lines(app: &TestApp, token: &str, product: &str, resolved: bool) -> Vec<String> {
    let data = app
        .graphql(
            Some(token),
            "query($p: String!, $r: Boolean!) { deadLetters(filter: { product: $p, resolved: $r }) {
               nodes { contentType reasonCode attempts } } }",
            json!({ "p": product, "r": resolved }),
        )
        .await;
    data["deadLetters"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{data}"))
        .iter()
        .map(|n| {
            format!("{} {} {}", n["contentType"].as_str().unwrap(), n["reasonCode"].as_str().unwrap(), n["attempts"])
        })
        .collect()
}

const REPLAY_DISPENSER: &str = "mutation { deadLettersReplay(input: { product: \"reference-dispenser\" }) {
    replayed resolved results { resolved eventsStored deadLetter { contentType reasonCode } } userErrors { code } } }";

on_both_backends! {
    /// Bug 9(c): a message's identity is its product, normalised content type and bytes. The
    /// same bytes sent as text/plain and as JSON are two dead letters; the JSON one sent again,
    /// spelt differently, is the same dead letter; replay decodes each with its own type, so
    /// the JSON one becomes events.
    async fn the_same_bytes_as_text_and_as_json_are_two_dead_letters_each_replayed_with_its_type(app) {
        let fleet = Fleet::new(&app).await;
        let v1 = upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json").await;
        let integration = fleet.integration_token(&app);
        let body = sample("dispenser-json", "morning-dose.json");

        let (status, as_text) = ingest(&app, &integration, DISPENSER, "text/plain", body.clone()).await;
        assert_eq!(status, 202, "{as_text}");
        let (status, as_json) = ingest(&app, &integration, DISPENSER, "Application/JSON; Charset=\"UTF-8\"", body.clone()).await;
        assert_eq!(status, 202, "{as_json}");
        let json_letter = as_json["results"][0]["deadLetterId"].as_str().unwrap().to_string();
        assert_ne!(as_text["results"][0]["deadLetterId"].as_str().unwrap(), json_letter, "two messages, two dead letters");
        let (_, again) = ingest(&app, &integration, DISPENSER, "application/json;charset=utf-8", body.clone()).await;
        assert_eq!(again["results"][0]["deadLetterId"], json_letter.as_str(), "the same message is the same dead letter");
        let supplier = fleet.supplier_token(&app);
        assert_eq!(dead_letter_lines(&app, &supplier, DISPENSER, false).await, [
            "text/plain no-active-adapter 1",
            "application/json;charset=utf-8 no-active-adapter 2",
        ]);

        activate(&app, &v1).await;
        register_device(&app, &fleet.case_worker_token(&app), DISPENSER, "RD-100234").await;
        let data = app.graphql(Some(&supplier), REPLAY_DISPENSER, json!({})).await;
        let outcome = &data["deadLettersReplay"];
        assert_eq!((outcome["replayed"].as_i64(), outcome["resolved"].as_i64()), (Some(2), Some(1)), "{outcome}");
        assert_eq!(outcome["results"][0]["deadLetter"], json!({ "contentType": "text/plain", "reasonCode": "unsupported" }));
        assert_eq!((outcome["results"][1]["resolved"].as_bool(), outcome["results"][1]["eventsStored"].as_i64()), (Some(true), Some(2)));
        assert_eq!(dead_letter_lines(&app, &supplier, DISPENSER, false).await, ["text/plain unsupported 2"]);
        assert_eq!(event_count(&app, &fleet.case_worker_token(&app)).await, 2);
    }
}

on_both_backends! {
    /// Bug 9(c): a resolved dead letter stays resolved when its bytes arrive under another
    /// content type; that is another message, kept as a dead letter of its own.
    async fn the_same_bytes_under_another_content_type_do_not_reopen_a_resolved_dead_letter(app) {
        let fleet = Fleet::new(&app).await;
        let v1 = upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json").await;
        let integration = fleet.integration_token(&app);
        let supplier = fleet.supplier_token(&app);
        let body = sample("dispenser-json", "missed-dose.json");
        let (status, first) = ingest(&app, &integration, DISPENSER, "application/json", body.clone()).await;
        assert_eq!(status, 202, "{first}");
        activate(&app, &v1).await;
        register_device(&app, &fleet.case_worker_token(&app), DISPENSER, "RD-100234").await;
        let data = app.graphql(Some(&supplier), REPLAY_DISPENSER, json!({})).await;
        assert_eq!(data["deadLettersReplay"]["resolved"], 1, "{data}");

        let (status, other) = ingest(&app, &integration, DISPENSER, "text/plain", body.clone()).await;
        assert_eq!(status, 202, "{other}");
        assert_eq!(other["results"][0]["reason"]["code"], "unsupported");
        assert_ne!(other["results"][0]["deadLetterId"], first["results"][0]["deadLetterId"]);
        assert_eq!(dead_letter_lines(&app, &supplier, DISPENSER, true).await, ["application/json no-active-adapter 2"]);
        assert_eq!(dead_letter_lines(&app, &supplier, DISPENSER, false).await, ["text/plain unsupported 1"]);
    }
}

/// The dispenser's dead-letter byte counter (`device_product.dead_letter_bytes`) and the sum it
/// keeps, counted from the dead letters themselves.
pub async fn dead_letter_counter(app: &TestApp) -> (i64, i64) {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.db().write();
    let sql = format!(
        "SELECT p.dead_letter_bytes AS counter, (SELECT COALESCE(SUM(LENGTH(d.body)), 0) FROM dead_letter d \
         WHERE d.product_id = p.id AND d.resolved_at IS NULL) AS counted FROM device_product p WHERE p.slug = '{DISPENSER}'"
    );
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    (row.try_get("", "counter").unwrap(), row.try_get("", "counted").unwrap())
}

/// Rows of a table, counted in the database.
pub async fn row_count(app: &TestApp, table: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.db().read();
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap()
}

on_both_backends! {
    /// Bug 9(c): a content type that does not parse, or is over 200 bytes, is refused at the
    /// edge with 400 INVALID_CONTENT_TYPE — in a batch, that message alone is REFUSED — and
    /// nothing is stored for it.
    async fn a_malformed_or_over_long_content_type_is_refused_and_stores_nothing(app) {
        let fleet = Fleet::new(&app).await;
        live_reference_adapters(&app, &fleet).await;
        let integration = fleet.integration_token(&app);
        let body = sample("dispenser-json", "morning-dose.json");
        let long = format!("application/json; x={}", "a".repeat(200));
        let before = app.fingerprint().await;
        for content_type in ["json", "application/json; charset", "text/plain; a=1; A=2", "application/json; charset=\"utf-8", long.as_str()] {
            let (status, reply) = ingest(&app, &integration, DISPENSER, content_type, body.clone()).await;
            assert_eq!((status, reply["errors"][0]["extensions"]["code"].as_str()), (400, Some("INVALID_CONTENT_TYPE")), "{content_type}: {reply}");
            assert!(reply["errors"][0]["message"].as_str().unwrap().starts_with("the content type"), "{reply}");
        }
        before.assert_unchanged(&app.fingerprint().await);
        let batch = json!({ "messages": [
            { "contentType": "json", "body": String::from_utf8(body.clone()).unwrap() },
            { "contentType": "application/json", "body": String::from_utf8(body.clone()).unwrap() },
            { "contentType": long, "body": "{}" },
        ] });
        let response =
            app.client.post(app.url(&format!("/ingest/{DISPENSER}/batch"))).bearer_auth(&integration).json(&batch).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let reply: Value = response.json().await.unwrap();
        let answers: Vec<(&str, &str)> = reply["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["status"].as_str().unwrap(), r["reason"]["code"].as_str().unwrap_or("-")))
            .collect();
        assert_eq!(answers, [("REFUSED", "invalid-content-type"), ("ACCEPTED", "-"), ("REFUSED", "invalid-content-type")], "{reply}");
        assert_eq!((reply["refused"].as_u64(), reply["accepted"].as_u64()), (Some(2), Some(1)));
        // Only the valid message left a trace: its receipt.
        assert_eq!((row_count(&app, "dead_letter").await, row_count(&app, "ingest_receipt").await), (0, 1));
        let data = app.graphql(Some(&fleet.supplier_token(&app)), "{ deadLetters { totalCount } }", json!({})).await;
        assert_eq!(data["deadLetters"]["totalCount"], 0);
    }
}

on_both_backends! {
    /// Bug 9(c), migration 000005: dead letters stored under 000004 (keyed on their bytes, the
    /// content type as sent) get their message key, so the same message sent after the upgrade
    /// is still their dead letter; the same bytes under another type become a dead letter of
    /// their own; a type stored before types were checked stays replayable. Down refuses, and
    /// deletes nothing, while two dead letters share their bytes.
    async fn dead_letters_stored_before_the_identity_migration_keep_working(app) {
        use sea_orm::sea_query::{Alias, Query};
        use sea_orm::{ConnectionTrait, Statement};
        use velferd_migration::{Migrator, MigratorTrait, message_key};

        let fleet = Fleet::new(&app).await;
        let v1 = upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json").await;
        let integration = fleet.integration_token(&app);
        let supplier = fleet.supplier_token(&app);
        let db = app.db().write();
        let backend = db.get_database_backend();
        down_to(db, "m20261122_000004_devices").await.expect("down to 000004");
        let product: i64 = db
            .query_one_raw(Statement::from_string(backend, format!("SELECT id FROM device_product WHERE slug = '{DISPENSER}'")))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "id")
            .unwrap();
        let json_body = sample("dispenser-json", "morning-dose.json");
        let legacy_body = b"{\"serial\": \"RD-100234\"}".to_vec();
        let now = chrono::Utc::now().fixed_offset();
        for (content_type, body) in [("Application/JSON; Charset=UTF-8", &json_body), ("not a type", &legacy_body)] {
            let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(body));
            let insert = Query::insert()
                .into_table(Alias::new("dead_letter"))
                .columns(["product_id", "content_type", "body", "body_sha256", "reason_code", "reason", "attempts",
                    "first_received_at", "last_received_at"].map(Alias::new))
                .values_panic([product.into(), content_type.into(), body.clone().into(), sha.into(), "no-active-adapter".into(),
                    "kept".into(), 1.into(), now.into(), now.into()])
                .to_owned();
            db.execute_raw(backend.build(&insert)).await.unwrap();
        }
        Migrator::up(db, None).await.expect("up to the latest");
        // Migration 000008 counted them for the quota.
        assert_eq!(dead_letter_counter(&app).await, ((json_body.len() + legacy_body.len()) as i64, (json_body.len() + legacy_body.len()) as i64));

        let keys: Vec<String> = db
            .query_all_raw(Statement::from_string(backend, "SELECT message_key FROM dead_letter ORDER BY id".to_string()))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("", "message_key").unwrap())
            .collect();
        assert_eq!(keys, [
            message_key(product, "application/json;charset=utf-8", &json_body),
            message_key(product, "not a type", &legacy_body),
        ]);
        // The key is unique per product.
        let copy = Query::insert()
            .into_table(Alias::new("dead_letter"))
            .columns(["product_id", "content_type", "body", "body_sha256", "message_key", "reason_code", "reason", "attempts",
                "first_received_at", "last_received_at"].map(Alias::new))
            .values_panic([product.into(), "x/y".into(), vec![1u8].into(), "0".into(), keys[0].clone().into(), "x".into(), "x".into(),
                1.into(), now.into(), now.into()])
            .to_owned();
        assert!(db.execute_raw(backend.build(&copy)).await.is_err(), "two dead letters with one key");

        // The same message after the upgrade is its old dead letter; under another type it is
        // another one.
        let (status, _) = ingest(&app, &integration, DISPENSER, "application/json; charset=utf-8", json_body.clone()).await;
        assert_eq!(status, 202);
        let (status, _) = ingest(&app, &integration, DISPENSER, "text/plain", json_body.clone()).await;
        assert_eq!(status, 202);
        assert_eq!(dead_letter_lines(&app, &supplier, DISPENSER, false).await, [
            "Application/JSON; Charset=UTF-8 no-active-adapter 2",
            "not a type no-active-adapter 1",
            "text/plain no-active-adapter 1",
        ]);

        // Two dead letters share their bytes now: down would have to drop one, so it refuses.
        down_to(db, "m20261205_000005_dead_letter_identity").await.expect("down to 000005");
        let refused = Migrator::down(db, Some(1)).await.expect_err("down must refuse");
        assert!(refused.to_string().contains("share their bytes"), "{refused}");
        assert_eq!(row_count(&app, "dead_letter").await, 3);
        Migrator::up(db, None).await.expect("up to the latest");

        // Replay decodes each as its own type: the JSON message becomes events.
        activate(&app, &v1).await;
        register_device(&app, &fleet.case_worker_token(&app), DISPENSER, "RD-100234").await;
        let data = app.graphql(Some(&supplier), REPLAY_DISPENSER, json!({})).await;
        assert_eq!(data["deadLettersReplay"]["resolved"], 1, "{data}");
        assert_eq!(dead_letter_lines(&app, &supplier, DISPENSER, false).await, [
            "not a type unsupported 2",
            "text/plain unsupported 2",
        ]);

        // Without shared bytes, down restores the old index and up keys the rows again.
        db.execute_raw(Statement::from_string(backend, "DELETE FROM dead_letter WHERE content_type = 'text/plain'".to_string()))
            .await
            .unwrap();
        down_to(db, "m20261122_000004_devices").await.expect("down to 000004");
        Migrator::up(db, None).await.expect("up again");
        assert_eq!(row_count(&app, "dead_letter").await, 2);
        let (counter, counted) = dead_letter_counter(&app).await;
        assert_eq!((counter, counted), (legacy_body.len() as i64, legacy_body.len() as i64), "recounted after a deletion");
    }
}

/// Rolls migrations back one at a time until `name` is the last one applied, so the test keeps
/// meaning the same as later migrations are added.
pub async fn down_to(db: &sea_orm::DatabaseConnection, name: &str) -> Result<(), sea_orm::DbErr> {
    use velferd_migration::{Migrator, MigratorTrait};
    loop {
        let applied = Migrator::get_applied_migrations(db).await?;
        if applied.last().map(|m| m.name()) == Some(name) {
            return Ok(());
        }
        Migrator::down(db, Some(1)).await?;
    }
}

on_both_backends! {
    /// `deadLettersReplay.ids` is bounded at 100: a longer list is refused before any replay,
    /// so the dead letter that would have become events stays unresolved.
    async fn replaying_more_than_100_dead_letter_ids_is_refused_and_replays_nothing(app) {
        let app = app.respawn_with(&[("VELFERD_METRICS_BIND", "127.0.0.1:0")]).await;
        let fleet = Fleet::new(&app).await;
        let v1 = upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json").await;
        let integration = fleet.integration_token(&app);
        let supplier = fleet.supplier_token(&app);
        let (status, first) = ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "missed-dose.json")).await;
        assert_eq!(status, 202, "{first}");
        activate(&app, &v1).await;
        register_device(&app, &fleet.case_worker_token(&app), DISPENSER, "RD-100234").await;
        let letter = first["results"][0]["deadLetterId"].as_str().unwrap().to_string();
        let ids: Vec<String> = (0..101).map(|_| letter.clone()).collect();
        let replay = "mutation($ids: [ID!]) { deadLettersReplay(input: { product: \"reference-dispenser\", ids: $ids }) {
            replayed userErrors { field code } } }";
        let (before, calls) = (app.fingerprint().await, app.adapter_calls().await);
        let data = app.graphql(Some(&supplier), replay, json!({ "ids": ids })).await;
        assert_eq!(app.adapter_calls().await, calls, "no adapter ran");
        before.assert_unchanged(&app.fingerprint().await);
        let outcome = &data["deadLettersReplay"];
        assert_eq!(outcome["replayed"], 0, "{data}");
        assert_eq!(outcome["userErrors"][0]["code"], "TOO_MANY_ENTRIES", "{data}");
        assert_eq!(dead_letter_lines(&app, &supplier, DISPENSER, false).await, ["application/json no-active-adapter 1"]);
        assert_eq!(event_count(&app, &fleet.case_worker_token(&app)).await, 0);
    }
}

/// For `nodes.rs`: a live dispenser adapter with a registered device, one stored event and one
/// dead letter (a message from an unregistered device), as the supplier sees them.
pub async fn node_samples(app: &TestApp) -> Vec<NodeSample> {
    let fleet = Fleet::new(app).await;
    let adapter = upload_signed(app, &fleet, DISPENSER, "velferd_dispenser_json").await;
    assert_eq!(activate(app, &adapter).await["adapter"]["status"], "ACTIVE");
    assert_eq!(
        register_device(app, &fleet.case_worker_token(app), DISPENSER, "RD-100234").await["userErrors"],
        json!([])
    );
    let integration = fleet.integration_token(app);
    let (status, reply) =
        ingest(app, &integration, DISPENSER, "application/json", sample("dispenser-json", "missed-dose.json")).await;
    assert_eq!(status, 200, "{reply}");
    let stranger = json!({ "serial": "RD-999999", "events": [{ "id": "e-8101", "type": "lid_open", "at": "2026-11-22T08:05:00Z" }] });
    let (status, reply) =
        ingest(app, &integration, DISPENSER, "application/json", stranger.to_string().into_bytes()).await;
    assert_eq!(status, 202, "{reply}");

    let token = fleet.supplier_token(app);
    let data = app
        .graphql(
            Some(&token),
            "{
            signingKeys { id }
            deviceProduct(slug: \"reference-dispenser\") { id adapters { id } }
            devices(first: 1) { nodes { id } }
            deviceEvents(first: 1) { nodes { id } }
            deadLetters(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    // By slug: the demo data has products of its own.
    let product = &data["deviceProduct"];
    vec![
        NodeSample::new("SigningKey", &data["signingKeys"][0]["id"], &token),
        NodeSample::new("DeviceProduct", &product["id"], &token),
        NodeSample::new("Adapter", &product["adapters"][0]["id"], &token),
        NodeSample::new("Device", &data["devices"]["nodes"][0]["id"], &token),
        NodeSample::new("DeviceEvent", &data["deviceEvents"]["nodes"][0]["id"], &token),
        NodeSample::new("DeadLetter", &data["deadLetters"]["nodes"][0]["id"], &token),
    ]
}
