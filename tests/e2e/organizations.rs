use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use velferd::auth::Role;

use crate::nodes::NodeSample;
use crate::support::*;

const LIST: &str = "query($first: Int, $after: String, $last: Int, $before: String, $filter: OrganizationFilter, $orderBy: OrganizationOrder) {
  organizations(first: $first, after: $after, last: $last, before: $before, filter: $filter, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name kind county } }
  }
}";

fn municipality(name: &str, org_number: &str, number: &str, county: &str) -> Value {
    json!({ "kind": "MUNICIPALITY", "name": name, "orgNumber": org_number,
            "municipalityNumber": number, "county": county, "population": 1000, "populationYear": 2018 })
}

/// Five organisations with valid numbers: (name, org number, municipality number, county).
const FIVE: [(&str, &str, &str, &str); 5] = [
    ("Sandefjord kommune", "811111112", "0710", "Vestfold"),
    ("Bergen kommune", "974760673", "1201", "Hordaland"),
    ("Røyrvik kommune", "923609016", "5043", "Trøndelag"),
    ("Asker kommune", "811111120", "0220", "Akershus"),
    ("Bærum kommune", "811111139", "0219", "Akershus"),
];

async fn create_five(app: &TestApp) {
    for (name, org, number, county) in FIVE {
        app.create_organization(municipality(name, org, number, county)).await;
    }
}

fn names(data: &Value) -> Vec<String> {
    crate::support::strings(&data["organizations"]["edges"], "/node/name")
}

on_both_backends! {
    /// An admin registers a municipality; it is found by connection, `node`, `nodes` and
    /// organisation number.
    async fn a_registered_municipality_is_found_every_way(app) {
        let id = app.create_organization(municipality("Larvik kommune", "974760673", "0712", "Vestfold")).await;
        let data = app.graphql(None, "query($id: ID!) {
            node(id: $id) { id ... on Organization { name orgNumber municipalityNumber county population populationYear kind } }
            nodes(ids: [$id, \"bm9wZQ\"]) { id }
            organization(orgNumber: \"974 760 673\") { id }
        }", json!({ "id": id })).await;
        assert_eq!(data["node"], json!({ "id": id, "name": "Larvik kommune", "orgNumber": "974760673",
            "municipalityNumber": "0712", "county": "Vestfold", "population": 1000, "populationYear": 2018, "kind": "MUNICIPALITY" }));
        assert_eq!(data["nodes"], json!([{ "id": id }, null]));
        assert_eq!(data["organization"]["id"], id.as_str());
    }
}

on_both_backends! {
    /// Bad input gets userErrors naming each field, and nothing is written.
    async fn invalid_organisations_are_refused_and_nothing_is_written(app) {
        let token = app.admin_token();
        let mutation = "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { organization { id } userErrors { field code } } }";
        let cases = [
            (json!({ "kind": "SUPPLIER", "name": "Dignio AS", "orgNumber": "974760674" }), vec![("orgNumber", "INVALID_ORG_NUMBER")]),
            (json!({ "kind": "SUPPLIER", "name": "  ", "orgNumber": "12" }), vec![("name", "INVALID_NAME"), ("orgNumber", "INVALID_ORG_NUMBER")]),
            (json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": "974760673" }), vec![("municipalityNumber", "MUNICIPALITY_FACTS_MISSING")]),
            (json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": "974760673", "municipalityNumber": "712", "county": "Vestfold" }), vec![("municipalityNumber", "INVALID_MUNICIPALITY_NUMBER")]),
            (json!({ "kind": "SUPPLIER", "name": "Dignio AS", "orgNumber": "974760673", "county": "Vestfold" }), vec![("kind", "NOT_A_MUNICIPALITY")]),
            (json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": "974760673", "municipalityNumber": "0712", "county": "Vestfold", "population": 46000 }), vec![("population", "INVALID_POPULATION")]),
        ];
        for (input, expected) in cases {
            let data = app.graphql(Some(&token), mutation, json!({ "input": input })).await;
            let payload = &data["organizationCreate"];
            assert_eq!(payload["organization"], Value::Null, "{input}");
            let got: Vec<(String, String)> = payload["userErrors"].as_array().unwrap().iter()
                .map(|e| (e["field"][1].as_str().unwrap().to_string(), e["code"].as_str().unwrap().to_string()))
                .collect();
            let expected: Vec<(String, String)> = expected.into_iter().map(|(f, c)| (f.to_string(), c.to_string())).collect();
            assert_eq!(got, expected, "{input}");
        }
        // A wrongly typed argument is a client fault with a code, not a userError.
        let (_, body) = app.graphql_raw(Some(&token), mutation, json!({ "input": { "kind": "CASTLE", "name": "x", "orgNumber": "1" } })).await;
        assert_eq!(first_error_code(&body), "BAD_USER_INPUT", "{body}");
        // Only the platform operator, there from the start.
        let data = app.graphql(None, "{ organizations { totalCount } }", json!({})).await;
        assert_eq!(data["organizations"]["totalCount"], 1);
    }
}

on_both_backends! {
    /// An organisation number is registered once; the second attempt changes nothing.
    async fn a_duplicate_org_number_is_refused(app) {
        app.create_organization(json!({ "kind": "SUPPLIER", "name": "Dignio AS", "orgNumber": SUPPLIER_ORG })).await;
        let data = app.graphql(Some(&app.admin_token()),
            "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { organization { id } userErrors { code message } } }",
            json!({ "input": { "kind": "SUPPLIER", "name": "Other AS", "orgNumber": SUPPLIER_ORG } })).await;
        assert_eq!(data["organizationCreate"]["userErrors"][0]["code"], "ORG_NUMBER_TAKEN");
        let data = app.graphql(None, "{ organizations(filter: { kind: SUPPLIER }) { totalCount nodes { name } } }", json!({})).await;
        assert_eq!(data["organizations"]["totalCount"], 1);
        assert_eq!(data["organizations"]["nodes"][0]["name"], "Dignio AS");
    }
}

on_both_backends! {
    /// Cursor pagination walks forward and backward through a stable order, with filters (the
    /// walks through the municipalities alone, leaving out the platform operator).
    async fn pages_walk_forward_and_backward(app) {
        let municipalities = json!({ "kind": "MUNICIPALITY" });
        create_five(&app).await;
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = app.graphql(None, LIST, json!({ "first": 2, "after": after, "filter": municipalities })).await;
            assert_eq!(data["organizations"]["totalCount"], 5);
            seen.extend(names(&data));
            let info = &data["organizations"]["pageInfo"];
            if !info["hasNextPage"].as_bool().unwrap() { break; }
            after = info["endCursor"].as_str().map(String::from);
        }
        // A page past the end is empty and still counts the whole list; so does a page
        // walked backward (the count is the list's, not what lies beyond the cursor).
        let data = app.graphql(None, LIST, json!({ "first": 2, "after": after, "filter": municipalities })).await;
        let last_cursor = data["organizations"]["pageInfo"]["endCursor"].clone();
        assert_eq!(names(&data).len(), 1, "{data}");
        let data = app.graphql(None, LIST, json!({ "first": 2, "after": last_cursor, "filter": municipalities })).await;
        assert_eq!(names(&data), Vec::<String>::new());
        assert_eq!(data["organizations"]["totalCount"], 5);
        let mut sorted: Vec<String> = FIVE.iter().map(|f| f.0.to_string()).collect();
        sorted.sort();
        assert_eq!(seen, sorted, "forward walk in name order");

        let data = app.graphql(None, LIST, json!({ "last": 2, "filter": municipalities })).await;
        assert_eq!(names(&data), sorted[3..].to_vec());
        assert_eq!(data["organizations"]["pageInfo"]["hasPreviousPage"], true);
        let before = data["organizations"]["pageInfo"]["startCursor"].as_str().unwrap().to_string();
        let data = app.graphql(None, LIST, json!({ "last": 2, "before": before, "filter": municipalities })).await;
        assert_eq!(names(&data), sorted[1..3].to_vec());
        assert_eq!(data["organizations"]["totalCount"], 5);

        let data = app.graphql(None, LIST, json!({ "first": 10, "orderBy": { "field": "NAME", "direction": "DESC" }, "filter": municipalities })).await;
        let mut reversed = sorted.clone();
        reversed.reverse();
        assert_eq!(names(&data), reversed);

        let data = app.graphql(None, LIST, json!({ "filter": { "county": "Akershus" } })).await;
        assert_eq!(names(&data), ["Asker kommune", "Bærum kommune"]);
        assert_eq!(data["organizations"]["totalCount"], 2);
        let data = app.graphql(None, LIST, json!({ "filter": { "nameContains": "BERG" } })).await;
        assert_eq!(names(&data), ["Bergen kommune"]);
        let data = app.graphql(None, LIST, json!({ "filter": { "nameContains": "%" } })).await;
        assert_eq!(names(&data), Vec::<String>::new(), "LIKE wildcards in the filter are literal");
        let data = app.graphql(None, LIST, json!({ "filter": { "kind": "SUPPLIER" } })).await;
        assert_eq!(data["organizations"]["totalCount"], 0);
    }
}

on_both_backends! {
    /// Page sizes over 100, both `first` and `last`, and forged cursors are client errors.
    async fn page_arguments_are_checked(app) {
        for (variables, fragment) in [
            (json!({ "first": 101 }), "exceeds the limit of 100"),
            (json!({ "last": 1000 }), "exceeds the limit of 100"),
            (json!({ "first": -1 }), "must not be negative"),
            (json!({ "first": 1, "last": 1 }), "not both"),
            (json!({ "after": "forged" }), "not a cursor"),
        ] {
            let (status, body) = app.graphql_raw(None, LIST, variables.clone()).await;
            assert_eq!(status, 200);
            assert_eq!(first_error_code(&body), "BAD_USER_INPUT", "{variables}: {body}");
            assert!(body["errors"][0]["message"].as_str().unwrap().contains(fragment), "{variables}: {body}");
        }
    }
}

on_both_backends! {
    /// Many concurrent writes and reads all succeed: no "database is locked" on SQLite.
    async fn concurrent_writes_and_reads_all_succeed(app) {
        let token = app.admin_token();
        let mut tasks = Vec::new();
        // Valid organisation numbers: find 40 by their check digit.
        let mut numbers = Vec::new();
        let mut prefix = 91_000_000u32;
        while numbers.len() < 40 {
            let digits: Vec<u32> = prefix.to_string().chars().map(|c| c.to_digit(10).unwrap()).collect();
            let sum: u32 = digits.iter().zip([3, 2, 7, 6, 5, 4, 3, 2]).map(|(d, w)| d * w).sum();
            let check = match 11 - sum % 11 { 11 => Some(0), 10 => None, d => Some(d) };
            if let Some(check) = check { numbers.push(format!("{prefix}{check}")); }
            prefix += 1;
        }
        let client = app.client.clone();
        for (i, number) in numbers.into_iter().enumerate() {
            let (client, url, token) = (client.clone(), app.url("/graphql"), token.clone());
            tasks.push(tokio::spawn(async move {
                let body = json!({
                    "query": "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { organization { id } userErrors { code } } }",
                    "variables": { "input": { "kind": "SUPPLIER", "name": format!("Supplier {i}"), "orgNumber": number } }
                });
                let write: Value = client.post(&url).bearer_auth(&token).json(&body).send().await.unwrap().json().await.unwrap();
                let read: Value = client.post(&url).json(&json!({ "query": "{ organizations(first: 100) { totalCount } }" }))
                    .send().await.unwrap().json().await.unwrap();
                (write, read)
            }));
        }
        for task in tasks {
            let (write, read) = task.await.unwrap();
            assert!(write.get("errors").is_none() && write["data"]["organizationCreate"]["userErrors"] == json!([]), "{write}");
            assert!(read.get("errors").is_none(), "{read}");
        }
        let data = app.graphql(None, "{ organizations(filter: { kind: SUPPLIER }) { totalCount } }", json!({})).await;
        assert_eq!(data["organizations"]["totalCount"], 40);
    }
}

on_both_backends! {
    /// A subscriber over graphql-transport-ws hears about an organisation registered over HTTP.
    async fn subscribers_hear_of_new_organisations(app) {
        let mut ws = graphql_socket(&app, Some(&app.admin_token())).await;
        subscribe(&mut ws, "1", "subscription { organizationCreated { name orgNumber } }", json!({})).await;
        app.create_organization(json!({ "kind": "SUPPLIER", "name": "Evondos Oy", "orgNumber": SUPPLIER_ORG })).await;
        let next = next_text(&mut ws).await;
        assert_eq!(next["type"], "next", "{next}");
        assert_eq!(next["payload"]["data"]["organizationCreated"], json!({ "name": "Evondos Oy", "orgNumber": SUPPLIER_ORG }));
    }
}

/// A bad token in `connection_init` closes the socket instead of subscribing anonymously.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_closes_the_subscription_socket() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "authorization": "Bearer forged" } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    let message = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    match message {
        Message::Close(Some(frame)) => assert!(frame.reason.contains("malformed"), "{frame:?}"),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// For `nodes.rs`: Larvik kommune of the demo data, as its procurement officer sees it.
pub async fn node_samples(app: &TestApp) -> Vec<NodeSample> {
    let token = app.token(LARVIK, &[Role::ProcurementOfficer]);
    let data = app.graphql(Some(&token), "{ viewer { organization { id } } }", json!({})).await;
    vec![NodeSample::new("Organization", &data["viewer"]["organization"]["id"], &token)]
}
