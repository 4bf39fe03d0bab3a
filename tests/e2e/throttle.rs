//! Cost-based throttling per caller: a leaky bucket of cost points per signed-in subject and
//! organisation (whatever its token) and per anonymous client address, reported on every
//! response in `extensions.cost.throttleStatus`, refused `THROTTLED` with the wait when empty,
//! over HTTP and WebSocket alike. `X-Forwarded-For` names the client only from a trusted proxy.
//! The buckets hold no database state: these tests run on SQLite.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};
use velferd::auth::{Role, TokenSigner};

use crate::support::{
    Backend, MUNICIPALITY_ORG, Options, SUPPLIER_ORG, Socket, TestApp, first_error_code, graphql_socket,
};
use crate::websocket::{Heard, init, next_heard, open, send_json};

async fn spawn(settings: &[(&'static str, &str)]) -> TestApp {
    let pairs = settings.iter().map(|(name, value)| (*name, value.to_string())).collect();
    TestApp::spawn_with(Backend::Sqlite, Options { pairs, ..Options::default() }).await.expect("SQLite is always there")
}

/// A query that costs exactly `n`: `n` aliased `__typename`s (each costs 1).
fn costing(n: usize) -> String {
    format!("{{ {} }}", (0..n).map(|i| format!("t{i}: __typename")).collect::<Vec<_>>().join(" "))
}

/// A token of `subject` of `org` valid for `ttl` (different lifetimes give different tokens).
fn token_of(app: &TestApp, org: &str, subject: &str, ttl: u64) -> String {
    let signer = TokenSigner::new(&app.settings.jwt).unwrap();
    let roles = [Role::CaseWorker].into_iter().collect::<BTreeSet<_>>();
    signer.mint(subject, org.parse::<velferd::organizations::OrgNumber>().unwrap(), roles, Duration::from_secs(ttl))
}

/// What one POST answered.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn throttle(&self) -> &Value {
        &self.body["extensions"]["cost"]["throttleStatus"]
    }

    fn available(&self) -> u64 {
        self.throttle()["currentlyAvailable"].as_u64().unwrap_or_else(|| panic!("{}", self.body))
    }
}

/// POSTs `query` as `token`, from the local address `from` (127.0.0.1 when `None`), with
/// `X-Forwarded-For: forwarded` when given.
async fn post(app: &TestApp, token: Option<&str>, query: &str, from: Option<&str>, forwarded: Option<&str>) -> Answer {
    let client = match from {
        None => app.client.clone(),
        Some(local) => crate::support::http_client().local_address(local.parse::<IpAddr>().unwrap()).build().unwrap(),
    };
    let mut request = client.post(app.url("/graphql")).json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(forwarded) = forwarded {
        request = request.header("X-Forwarded-For", forwarded);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    Answer { status, retry_after, body: response.json().await.expect("JSON body") }
}

/// A bucket of 50 points restoring 10 a second: queries of 20 drain it, the next is refused
/// `THROTTLED` with the wait (in `retryAfterSeconds` and `Retry-After`) and runs after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_drains_refuses_with_the_wait_and_refills() {
    let app = spawn(&[("VELFERD_THROTTLE_CAPACITY", "50"), ("VELFERD_THROTTLE_RESTORE_RATE", "10")]).await;
    let token = app.token(MUNICIPALITY_ORG, &[Role::CaseWorker]);
    let query = costing(20);
    let mut admitted = 0;
    let refused = loop {
        let answer = post(&app, Some(&token), &query, None, None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let cost = &answer.body["extensions"]["cost"];
        assert_eq!(cost["requestedQueryCost"], 20, "{}", answer.body);
        assert_eq!(answer.throttle()["maximumAvailable"], 50, "{}", answer.body);
        assert_eq!(answer.throttle()["restoreRate"], 10, "{}", answer.body);
        if answer.body.get("errors").is_some() {
            break answer;
        }
        assert_eq!(answer.body["data"]["t0"], "Query");
        assert!(answer.retry_after.is_none());
        admitted += 1;
        assert!(admitted < 50, "never throttled: {}", answer.body);
    };
    assert!(admitted >= 2, "a full bucket of 50 admits two queries of 20 at least");
    assert_eq!(first_error_code(&refused.body), "THROTTLED", "{}", refused.body);
    assert!(refused.body["data"].is_null(), "nothing ran: {}", refused.body);
    assert!(refused.available() < 20, "{}", refused.body);
    let wait = refused.body["errors"][0]["extensions"]["retryAfterSeconds"].as_u64().expect("retryAfterSeconds");
    assert!((1..=2).contains(&wait), "20 points at 10 a second: {}", refused.body);
    assert_eq!(refused.retry_after, Some(wait.to_string()), "the Retry-After header says the same");

    // Refilled after the wait.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let answer = post(&app, Some(&token), &query, None, None).await;
    assert!(answer.body.get("errors").is_none(), "{}", answer.body);

    // A query costing more than a full bucket can never run: refused by its cost.
    let answer = post(&app, Some(&token), &costing(51), None, None).await;
    assert_eq!(first_error_code(&answer.body), "MAX_COST_EXCEEDED", "{}", answer.body);
    assert_eq!(answer.body["errors"][0]["extensions"]["limit"], 50, "{}", answer.body);
}

/// Every response reports the caller's bucket, refusals and failures too; one refused before
/// its cost was measured was charged nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_reports_the_throttle_status() {
    let app =
        spawn(&[("VELFERD_ANONYMOUS_THROTTLE_CAPACITY", "1000"), ("VELFERD_ANONYMOUS_THROTTLE_RESTORE_RATE", "1")])
            .await;
    let introspection = post(&app, None, "{ __schema { queryType { name } } }", None, None).await;
    assert!(introspection.body.get("errors").is_none(), "{}", introspection.body);
    let charged = introspection.body["extensions"]["cost"]["requestedQueryCost"].as_u64().unwrap();
    assert!(charged >= 1, "introspection is charged its cost: {}", introspection.body);
    assert_eq!(introspection.available(), 1000 - charged);
    for query in
        ["{ organisations { totalCount } }", "{ organizations { ", "{ a: __typename a: organizations { totalCount } }"]
    {
        let answer = post(&app, None, query, None, None).await;
        assert!(answer.body.get("errors").is_some(), "{}", answer.body);
        assert_eq!(answer.throttle()["maximumAvailable"], 1000, "{query}: {}", answer.body);
        assert!(answer.available() <= 1000, "{query}: {}", answer.body);
    }
    let parse_failure = post(&app, None, "{ organizations { ", None, None).await;
    assert_eq!(parse_failure.body["extensions"]["cost"]["requestedQueryCost"], Value::Null);
    // A batch: each operation reports its own.
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!([{ "query": costing(3) }, { "query": costing(4) }]))
        .send()
        .await
        .unwrap();
    let batch: Value = response.json().await.unwrap();
    for (i, cost) in [3, 4].into_iter().enumerate() {
        assert_eq!(batch[i]["extensions"]["cost"]["requestedQueryCost"], cost, "{batch}");
        assert!(batch[i]["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"].is_u64(), "{batch}");
    }
}

/// A refreshed token is the same caller: two tokens of one subject share one bucket. The same
/// subject name in another organisation, another subject, and anonymous callers have their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_is_the_subjects_of_one_organisation_whatever_its_token() {
    let app = spawn(&[("VELFERD_THROTTLE_CAPACITY", "1000"), ("VELFERD_THROTTLE_RESTORE_RATE", "1")]).await;
    let first = token_of(&app, MUNICIPALITY_ORG, "kari", 600);
    let refreshed = token_of(&app, MUNICIPALITY_ORG, "kari", 900);
    assert_ne!(first, refreshed);
    let query = costing(100);
    let after_first = post(&app, Some(&first), &query, None, None).await.available();
    assert_eq!(after_first, 900);
    // Restoring 1 point a second, the bucket cannot have regained 100 in between.
    let after_refresh = post(&app, Some(&refreshed), &query, None, None).await.available();
    assert!(after_refresh < after_first, "the refreshed token drew on the same bucket: {after_refresh}");

    let other_org = token_of(&app, SUPPLIER_ORG, "kari", 600);
    assert_eq!(post(&app, Some(&other_org), &query, None, None).await.available(), 900);
    let other_subject = token_of(&app, MUNICIPALITY_ORG, "ola", 600);
    assert_eq!(post(&app, Some(&other_subject), &query, None, None).await.available(), 900);
    let anonymous = post(&app, None, &query, None, None).await;
    assert_eq!(anonymous.throttle()["maximumAvailable"], 10_000, "anonymous callers have their own limits");
    assert_eq!(anonymous.available(), 9_900);
}

/// Anonymous callers have a bucket per client address. `X-Forwarded-For` from an untrusted peer
/// is ignored; from a trusted proxy, its rightmost address no trusted proxy vouches for is the
/// client (what a client writes to its left is never read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_buckets_are_per_client_address_read_from_trusted_proxies_only() {
    let app = spawn(&[
        ("VELFERD_ANONYMOUS_THROTTLE_CAPACITY", "1000"),
        ("VELFERD_ANONYMOUS_THROTTLE_RESTORE_RATE", "1"),
        ("VELFERD_TRUSTED_PROXIES", "127.0.0.2"),
    ])
    .await;
    let query = costing(100);
    let available =
        async |from: &str, forwarded: Option<&str>| post(&app, None, &query, Some(from), forwarded).await.available();

    // Untrusted peers: the header is the caller's own invention, the peer is the client.
    assert_eq!(available("127.0.0.1", Some("203.0.113.1")).await, 900);
    assert!(available("127.0.0.1", Some("203.0.113.2")).await < 900, "same peer, same bucket");
    assert_eq!(available("127.0.0.3", Some("203.0.113.1")).await, 900, "another peer has its own");

    // The trusted proxy: each forwarded client has its own bucket.
    assert_eq!(available("127.0.0.2", Some("203.0.113.1")).await, 900);
    assert_eq!(available("127.0.0.2", Some("203.0.113.2")).await, 900);
    assert!(available("127.0.0.2", Some("203.0.113.1")).await < 900, "the same client again");
    assert!(available("127.0.0.2", Some("198.51.100.7, 203.0.113.2")).await < 900, "a spoofed left entry is not read");
    assert_eq!(available("127.0.0.2", Some("198.51.100.8")).await, 900);
    assert_eq!(available("127.0.0.2", None).await, 900, "without the header the proxy is the client");
}

/// The OCDS export draws on the same bucket: 100 points an export, `429 THROTTLED` with
/// `Retry-After` when the bucket holds fewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ocds_export_draws_on_the_same_bucket() {
    let app =
        spawn(&[("VELFERD_ANONYMOUS_THROTTLE_CAPACITY", "250"), ("VELFERD_ANONYMOUS_THROTTLE_RESTORE_RATE", "1")])
            .await;
    let export = async || {
        let missing = velferd::ids::global_id(velferd::ids::NodeType::Procurement, 987_654);
        let response = app.client.get(app.url(&format!("/ocds/procurements/{missing}"))).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        (response.status().as_u16(), retry_after, response.json::<Value>().await.unwrap())
    };
    assert_eq!(export().await.0, 404);
    assert_eq!(post(&app, None, &costing(10), None, None).await.available(), 140, "250, less 100 for the export");
    assert_eq!(export().await.0, 404);
    let (status, retry_after, body) = export().await;
    assert_eq!((status, first_error_code(&body)), (429, "THROTTLED"), "{body}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
}

/// The next message about operation `id` on `ws`: its `next` payload, or `None` on `complete`.
async fn next_of(ws: &mut Socket, id: &str) -> Option<Value> {
    loop {
        match next_heard(ws).await {
            Heard::Text(message) if message["id"] == id && message["type"] == "next" => {
                return Some(message["payload"].clone());
            }
            Heard::Text(message) if message["id"] == id && message["type"] == "complete" => return None,
            Heard::Text(_) => continue,
            Heard::Close(code, reason) => panic!("closed {code}: {reason}"),
        }
    }
}

/// Operations over WebSocket draw on the same bucket as over HTTP and are refused `THROTTLED`
/// alike, with the wait in `retryAfterSeconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_operations_are_throttled_too() {
    let app =
        spawn(&[("VELFERD_ANONYMOUS_THROTTLE_CAPACITY", "100"), ("VELFERD_ANONYMOUS_THROTTLE_RESTORE_RATE", "1")])
            .await;
    // Half the bucket over HTTP first: the socket's address has the same one.
    assert_eq!(post(&app, None, &costing(50), None, None).await.available(), 50);
    let mut ws = graphql_socket(&app, None).await;
    let mut last = None;
    for i in 0..10 {
        let id = i.to_string();
        send_json(&mut ws, json!({ "id": id, "type": "subscribe", "payload": { "query": costing(20) } })).await;
        let payload = next_of(&mut ws, &id).await.expect("an answer");
        assert_eq!(payload["extensions"]["cost"]["throttleStatus"]["maximumAvailable"], 100, "{payload}");
        if payload.get("errors").is_some() {
            last = Some(payload);
            break;
        }
        assert_eq!(payload["data"]["t0"], "Query");
        assert!(i < 2, "50 points left admit two queries of 20, not {}: {payload}", i + 1);
    }
    let refused = last.expect("throttled within ten operations");
    assert_eq!(first_error_code(&refused), "THROTTLED", "{refused}");
    assert!(refused["errors"][0]["extensions"]["retryAfterSeconds"].as_u64().unwrap() >= 1, "{refused}");
}

/// An anonymous client address opens at most `VELFERD_WS_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS`
/// sockets; one more is closed 1013 (try again later). Signed-in sockets count apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_websockets_are_capped_per_client_address() {
    let app = spawn(&[("VELFERD_WS_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS", "2")]).await;
    let _first = graphql_socket(&app, None).await;
    let _second = graphql_socket(&app, None).await;
    let mut third = open(&app, None).await.unwrap();
    let heard = init(&mut third, json!({})).await;
    assert!(matches!(&heard, Heard::Close(1013, reason) if reason.contains("client address")), "{heard:?}");
    let token = app.token(MUNICIPALITY_ORG, &[Role::CaseWorker]);
    let _signed_in = graphql_socket(&app, Some(&token)).await;
}
