//! Relay `node(id:)` across every node type: each type in `NodeType::ALL` round-trips, and ids
//! this API did not issue (an unknown type, garbage, a missing row) answer null.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use velferd::auth::Role;
use velferd::graphql::relay::{NodeType, global_id};

use crate::devices::*;
use crate::support::{Backend, Options, TestApp};

/// Larvik kommune in the demo data: lead of the medication-support procurement.
const LARVIK: &str = "918082956";

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id } }";

fn ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

/// One id of each kind the Larvik procurement officer may see, from the demo data (in small
/// queries: the cost limit applies).
async fn procurement_side(app: &TestApp, token: &str) -> Vec<(&'static str, String)> {
    let data = app
        .graphql(
            Some(token),
            "{ viewer { organization { id } }
            procurements(first: 20) { nodes { id lead { id } awards(first: 1) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    let larvik_org = data["viewer"]["organization"]["id"].as_str().unwrap().to_string();
    let mut found = vec![("Organization", larvik_org.clone())];
    let led = data["procurements"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["lead"]["id"] == larvik_org.as_str() && !p["awards"]["nodes"].as_array().unwrap().is_empty())
        .unwrap_or_else(|| panic!("the demo has Larvik's awarded procurement: {data}"));
    let procurement = led["id"].as_str().unwrap().to_string();
    found.push(("Procurement", procurement.clone()));
    found.push(("Award", ids(&led["awards"]["nodes"])[0].clone()));

    let data = app
        .graphql(
            Some(token),
            "query($id: ID!) { node(id: $id) { ... on Procurement {
            userStories(first: 1) { nodes { id } } evaluationCriteria(first: 1) { nodes { id } }
            tenders(first: 1) { nodes { id responses { id } } } } } }",
            json!({ "id": procurement }),
        )
        .await;
    let led = &data["node"];
    found.push(("UserStory", ids(&led["userStories"]["nodes"])[0].clone()));
    found.push(("EvaluationCriterion", ids(&led["evaluationCriteria"]["nodes"])[0].clone()));
    let tender = &led["tenders"]["nodes"][0];
    found.push(("Tender", tender["id"].as_str().unwrap().to_string()));
    found.push(("TenderResponse", ids(&tender["responses"])[0].clone()));

    let data = app
        .graphql(
            Some(token),
            "query($id: ID!) { node(id: $id) { ... on Procurement {
            frameworkAgreements(first: 10) { nodes { id callOffs(first: 1) { nodes { id } } } } } } }",
            json!({ "id": procurement }),
        )
        .await;
    let agreement = data["node"]["frameworkAgreements"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| !a["callOffs"]["nodes"].as_array().unwrap().is_empty())
        .unwrap_or_else(|| panic!("the demo has a call-off: {data}"));
    found.push(("FrameworkAgreement", agreement["id"].as_str().unwrap().to_string()));
    found.push(("CallOff", ids(&agreement["callOffs"]["nodes"])[0].clone()));

    let data = app
        .graphql(
            Some(token),
            "{ learningNetworks(first: 1) { nodes { id gatherings(first: 1) { nodes { id } } } }
            experienceReports(first: 1) { nodes { id } } procurementReuses(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    let network = &data["learningNetworks"]["nodes"][0];
    found.push(("LearningNetwork", network["id"].as_str().unwrap().to_string()));
    found.push(("Gathering", ids(&network["gatherings"]["nodes"])[0].clone()));
    found.push(("ExperienceReport", ids(&data["experienceReports"]["nodes"])[0].clone()));
    found.push(("ProcurementReuse", ids(&data["procurementReuses"]["nodes"])[0].clone()));
    found
}

/// A live dispenser adapter with a registered device, one stored event and one dead letter
/// (a message from an unregistered device); one id of each kind the supplier may see.
async fn device_side(app: &TestApp, fleet: &Fleet) -> Vec<(&'static str, String)> {
    let adapter = upload_signed(app, fleet, DISPENSER, "velferd_dispenser_json").await;
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

    let data = app
        .graphql(
            Some(&fleet.supplier_token(app)),
            "{
            signingKeys { id }
            deviceProducts(first: 1) { nodes { id adapters { id } } }
            devices(first: 1) { nodes { id } }
            deviceEvents(first: 1) { nodes { id } }
            deadLetters(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    let product = &data["deviceProducts"]["nodes"][0];
    vec![
        ("SigningKey", ids(&data["signingKeys"])[0].clone()),
        ("DeviceProduct", product["id"].as_str().unwrap().to_string()),
        ("Adapter", ids(&product["adapters"])[0].clone()),
        ("Device", ids(&data["devices"]["nodes"])[0].clone()),
        ("DeviceEvent", ids(&data["deviceEvents"]["nodes"])[0].clone()),
        ("DeadLetter", ids(&data["deadLetters"]["nodes"])[0].clone()),
    ]
}

async fn every_node_type_round_trips_through_node_and_foreign_ids_answer_null(app: TestApp) {
    let larvik = app.token(LARVIK, &[Role::ProcurementOfficer]);
    let fleet = Fleet::new(&app).await;
    let supplier = fleet.supplier_token(&app);
    let mut checked = BTreeSet::new();
    let cases = procurement_side(&app, &larvik).await.into_iter().map(|(t, id)| (t, id, larvik.clone()));
    let cases = cases.chain(device_side(&app, &fleet).await.into_iter().map(|(t, id)| (t, id, supplier.clone())));
    for (typename, id, token) in cases {
        let data = app.graphql(Some(&token), NODE, json!({ "id": id })).await;
        assert_eq!(data["node"], json!({ "__typename": typename, "id": id }), "node({id}) as a {typename}");
        checked.insert(typename.to_string());
    }
    let all: BTreeSet<String> = NodeType::ALL.iter().map(|t| format!("{t:?}")).collect();
    assert_eq!(checked, all, "every node type is fetched through node(id:)");

    // Ids this API did not issue, and a row that does not exist, answer null — alone and in
    // `nodes`, in order.
    let unknown_type = URL_SAFE_NO_PAD.encode("Unicorn:1");
    let missing = global_id(NodeType::Procurement, 987_654_321).to_string();
    for id in [unknown_type.as_str(), "not an id!", "", missing.as_str()] {
        let data = app.graphql(Some(&larvik), NODE, json!({ "id": id })).await;
        assert_eq!(data["node"], Value::Null, "node({id:?})");
    }
    let data = app
        .graphql(
            Some(&larvik),
            "query($ids: [ID!]!) { nodes(ids: $ids) { __typename } }",
            json!({ "ids": [unknown_type, "not an id!", missing] }),
        )
        .await;
    assert_eq!(data["nodes"], json!([null, null, null]));
}

/// On both back ends, like `on_both_backends!`, but on a server started with the demo data.
mod every_node_type_round_trips_through_node_and_foreign_ids_answer_null {
    use super::*;

    fn demo() -> Options {
        Options { demo: true, ..Options::default() }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::every_node_type_round_trips_through_node_and_foreign_ids_answer_null(
            TestApp::spawn_with(Backend::Sqlite, demo()).await.unwrap(),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = TestApp::spawn_with(Backend::Postgres, demo()).await {
            super::every_node_type_round_trips_through_node_and_foreign_ids_answer_null(app).await;
        }
    }
}
