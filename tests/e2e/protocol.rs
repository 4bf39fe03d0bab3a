//! The GraphQL endpoint's protocol rules: methods, batches, sizes, limits, profiles.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

async fn post_json(app: &TestApp, body: &Value) -> (u16, Value) {
    let response = app.client.post(app.url("/graphql")).json(body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

on_both_backends! {
    /// Queries may use GET; mutations may not (405), so a link can never change data.
    async fn get_runs_queries_but_refuses_mutations(app) {
        let response = app.client.get(app.url("/graphql")).query(&[("query", "{ viewer { authenticated } }")]).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"]["viewer"]["authenticated"], false);

        let mutation = "mutation { organizationCreate(input: { kind: SUPPLIER, name: \"X\", orgNumber: \"923609016\" }) { userErrors { code } } }";
        let response = app.client.get(app.url("/graphql")).query(&[("query", mutation)]).bearer_auth(app.admin_token()).send().await.unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "POST");
        let body: Value = response.json().await.unwrap();
        assert_eq!(first_error_code(&body), "METHOD_NOT_ALLOWED");
        // Named operations: the one selected decides.
        let doc = "query Q { viewer { authenticated } } mutation M { organizationCreate(input: { kind: SUPPLIER, name: \"X\", orgNumber: \"923609016\" }) { userErrors { code } } }";
        let response = app.client.get(app.url("/graphql")).query(&[("query", doc), ("operationName", "M")]).send().await.unwrap();
        assert_eq!(response.status(), 405);
        let response = app.client.get(app.url("/graphql")).query(&[("query", doc), ("operationName", "Q")]).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let data = app.graphql(None, "{ organizations(filter: { kind: SUPPLIER }) { totalCount } }", json!({})).await;
        assert_eq!(data["organizations"]["totalCount"], 0);
    }
}

on_both_backends! {
    /// Batches run up to the cap; a larger one is refused whole. Bodies are bounded.
    async fn batches_and_bodies_are_bounded(app) {
        let one = json!({ "query": "{ viewer { authenticated } }" });
        let (status, body) = post_json(&app, &Value::Array(vec![one.clone(); 10])).await;
        assert_eq!(status, 200);
        assert_eq!(body.as_array().unwrap().len(), 10);
        let (status, body) = post_json(&app, &Value::Array(vec![one.clone(); 11])).await;
        assert_eq!(status, 400);
        assert_eq!(first_error_code(&body), "BATCH_TOO_LARGE");
        let (status, body) = post_json(&app, &json!([])).await;
        assert_eq!(status, 400, "{body}");

        let huge = json!({ "query": format!("{{ viewer {{ authenticated }} }} # {}", "x".repeat(2 << 20)) });
        let (status, body) = post_json(&app, &huge).await;
        assert_eq!(status, 413);
        assert_eq!(first_error_code(&body), "PAYLOAD_TOO_LARGE");

        let response = app.client.post(app.url("/graphql")).header("content-type", "application/json").body("{not json").send().await.unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(first_error_code(&body), "BAD_REQUEST");
    }
}

on_both_backends! {
    /// Every response reports its cost; parse and validation failures carry codes.
    async fn responses_report_cost_and_errors_carry_codes(app) {
        let (status, body) = post_json(&app, &json!({ "query": "{ organizations(first: 50) { nodes { name } } }" })).await;
        assert_eq!(status, 200);
        let cost = &body["extensions"]["cost"];
        assert!(cost["requestedQueryCost"].as_u64().unwrap() >= 50, "{body}");
        assert_eq!(cost["maximumQueryCost"], 10_000);

        let (_, body) = post_json(&app, &json!({ "query": "{ organizations { " })).await;
        assert_eq!(first_error_code(&body), "GRAPHQL_PARSE_FAILED", "{body}");
        let (_, body) = post_json(&app, &json!({ "query": "{ organisations { totalCount } }" })).await;
        assert_eq!(first_error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("Did you mean"), "development suggests: {body}");
    }
}

/// A query that asks for too much is refused before it runs, fast, with the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusive_queries_are_refused_before_execution() {
    let options = Options { pairs: vec![("VELFERD_GRAPHQL_MAX_DEPTH", "3".into())], demo: false };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();

    let deep = "{ viewer { organization { id } } organizations { edges { node { name } } } }";
    let started = Instant::now();
    let (_, body) = post_json(&app, &json!({ "query": deep })).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(first_error_code(&body), "MAX_DEPTH_EXCEEDED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], 3);
    assert!(body.get("data").is_none() || body["data"].is_null(), "{body}");

    let aliases: String =
        (0..30).map(|i| format!("a{i}: organizations(first: 100) {{ nodes {{ id name kind }} }} ")).collect();
    let started = Instant::now();
    let (_, body) = post_json(&app, &json!({ "query": format!("{{ {aliases} }}") })).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(first_error_code(&body), "MAX_COST_EXCEEDED", "{body}");
    assert!(body["errors"][0]["extensions"]["cost"].as_u64().unwrap() > 10_000);
}

/// A nested connection costs its page size times its items, as a top-level one does: a small
/// outer page cannot hide large inner ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_connections_cost_their_page_size() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let cost = async |inner: u32| {
        let query = format!("{{ procurements(first: 2) {{ nodes {{ needs(first: {inner}) {{ totalCount }} }} }} }}");
        let (_, body) = post_json(&app, &json!({ "query": query })).await;
        body["extensions"]["cost"]["requestedQueryCost"].as_u64().unwrap_or_else(|| panic!("{body}"))
    };
    let (small, large) = (cost(1).await, cost(100).await);
    assert!(large >= small + 2 * 99, "two procurements, each with 99 more needs: {small} then {large}");
}

/// The production profile: no GraphiQL, no introspection, no field suggestions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_hides_the_developer_conveniences() {
    let fixture = |name: &str| format!("{}/../tests/e2e/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let production = Options {
        pairs: vec![
            ("VELFERD_ENV", "production".into()),
            ("VELFERD_JWT_ALGORITHM", "RS256".into()),
            ("VELFERD_JWT_PUBLIC_KEY_FILE", fixture("rs256-public.pem")),
        ],
        demo: false,
    };
    let app = TestApp::spawn_with(Backend::Sqlite, production).await.unwrap();
    let development = TestApp::spawn(Backend::Sqlite).await;

    let page = development.client.get(development.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("graphiql"));
    let page = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 404);

    let introspection = json!({ "query": "{ __schema { types { name } } }" });
    let (_, body) = post_json(&development, &introspection).await;
    assert!(body["data"]["__schema"]["types"].is_array());
    let (_, body) = post_json(&app, &introspection).await;
    assert!(body["data"]["__schema"].is_null(), "{body}");

    let (_, body) = post_json(&app, &json!({ "query": "{ organisations { totalCount } }" })).await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");
    assert!(!body.to_string().contains("panicked") && !body.to_string().contains(".rs:"), "{body}");
}

on_both_backends! {
    /// async-graphql picks the operation of a document after validation, outside the hooks
    /// that code its errors: an unknown or a missing `operationName` must still be refused with
    /// a code, over POST, GET and WebSocket alike.
    async fn a_missing_or_unknown_operation_name_is_refused_with_a_code(app) {
        use futures_util::SinkExt;
        let doc = "query A { viewer { authenticated } } query B { viewer { authenticated } }";
        for (name, message) in [(None, "Operation name required in request."), (Some("C"), "Unknown operation named \"C\"")] {
            let mut body = json!({ "query": doc });
            let mut params = vec![("query", doc)];
            if let Some(name) = name {
                body["operationName"] = json!(name);
                params.push(("operationName", name));
            }
            let (_, reply) = post_json(&app, &body).await;
            assert_eq!(reply["errors"][0]["message"], message, "POST {name:?}: {reply}");
            assert_eq!(first_error_code(&reply), "GRAPHQL_VALIDATION_FAILED", "POST {name:?}: {reply}");

            let response = app.client.get(app.url("/graphql")).query(&params).send().await.unwrap();
            let reply: Value = response.json().await.unwrap();
            assert_eq!(reply["errors"][0]["message"], message, "GET {name:?}: {reply}");
            assert_eq!(first_error_code(&reply), "GRAPHQL_VALIDATION_FAILED", "GET {name:?}: {reply}");

            let mut ws = graphql_socket(&app, None).await;
            let subscribe = json!({ "id": "1", "type": "subscribe", "payload": body });
            ws.send(tokio_tungstenite::tungstenite::Message::text(subscribe.to_string())).await.unwrap();
            let reply = next_text(&mut ws).await;
            assert_eq!(reply["type"], "next", "WebSocket {name:?}: {reply}");
            assert_eq!(reply["payload"]["errors"][0]["message"], message, "WebSocket {name:?}: {reply}");
            assert_eq!(first_error_code(&reply["payload"]), "GRAPHQL_VALIDATION_FAILED", "WebSocket {name:?}: {reply}");
        }
        // The named operations still run.
        let (_, reply) = post_json(&app, &json!({ "query": doc, "operationName": "B" })).await;
        assert_eq!(reply["data"]["viewer"]["authenticated"], false, "{reply}");
    }
}

/// Portals on the origins of `VELFERD_ALLOWED_ORIGINS` may call the API from browsers: their
/// preflight is answered and their responses carry CORS headers (with `X-Request-Id` readable).
/// A page of any other origin gets no CORS answer and its request does not run; the server's own
/// pages (GraphiQL) and clients without `Origin` are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_on_allowed_origins_may_call_the_api_from_browsers_and_others_may_not() {
    let portal = "https://portal.example.no";
    let options = Options { pairs: vec![("VELFERD_ALLOWED_ORIGINS", portal.into())], ..Default::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let url = app.url("/graphql");

    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", portal)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], portal);
    let methods = preflight.headers()["access-control-allow-methods"].to_str().unwrap().to_string();
    assert!(methods.contains("POST") && !methods.contains("DELETE"), "{methods}");

    let query = json!({ "query": "{ __typename }" });
    let response = app.client.post(&url).header("origin", portal).json(&query).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], portal);
    let exposed = response.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");

    let own = format!("http://{}", app.addr);
    let response = app.client.post(&url).header("origin", &own).json(&query).send().await.unwrap();
    assert_eq!(response.status(), 200, "the server's own pages");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query");

    for foreign in ["https://evil.example", "null"] {
        let response = app.client.post(&url).header("origin", foreign).json(&query).send().await.unwrap();
        assert!(response.headers().get("access-control-allow-origin").is_none(), "{foreign}");
        assert_ne!(response.status(), 200, "{foreign}: the request does not run");
        let preflight = app
            .client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", foreign)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(preflight.headers().get("access-control-allow-origin").is_none(), "{foreign}");
    }
}
