//! The refusal log: refused and throttled attempts, counted per minute, caller and code, read by
//! the platform operator alone (`refusedAttempts`) and counted in Prometheus; a flood of callers
//! costs a bounded number of rows.

use futures_util::StreamExt;
use serde_json::{Value, json};
use velferd::auth::Role;

use crate::nodes::NodeSample;
use crate::support::{Backend, MUNICIPALITY_ORG, Options, SUPPLIER_ORG, TestApp, first_error_code, on_each_backend};
use crate::telemetry::{scrape, value};

/// The refusal log has no node types.
pub async fn node_samples(_app: &TestApp) -> Vec<NodeSample> {
    Vec::new()
}

const LOG: &str = "query($filter: RefusedAttemptFilter) { refusedAttempts(first: 100, filter: $filter) { totalCount nodes { minute caller code attempts } } }";

async fn spawn(backend: Backend, settings: &[(&'static str, &str)]) -> Option<TestApp> {
    let pairs = settings.iter().map(|(name, value)| (*name, value.to_string())).collect();
    TestApp::spawn_with(backend, Options { pairs, ..Options::default() }).await
}

/// The attempts of `caller` in `rows`, summed (a count may straddle a minute).
fn attempts_of(rows: &Value, caller: &str) -> i64 {
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|row| row["caller"] == caller)
        .map(|row| row["attempts"].as_i64().unwrap())
        .sum()
}

on_each_backend! {
    async fn refused_attempts_are_read_by_the_operator_alone(backend) {
        let Some(app) = spawn(backend, &[("VELFERD_METRICS_BIND", "127.0.0.1:0")]).await else { return };
        // Three refused tokens, from this test's address.
        for _ in 0..3 {
            let (status, body) = app.graphql_raw(Some("not-a-token"), "{ __typename }", json!({})).await;
            assert_eq!((status, first_error_code(&body)), (401, "UNAUTHENTICATED"), "{body}");
        }
        // Anonymous and a supplier are refused the log itself: that counts too.
        let (_, body) = app.graphql_raw(None, LOG, json!({})).await;
        assert_eq!(first_error_code(&body), "UNAUTHENTICATED", "{body}");
        assert!(body["data"]["refusedAttempts"].is_null(), "{body}");
        let supplier = app.token(SUPPLIER_ORG, &[Role::Supplier]);
        let (_, body) = app.graphql_raw(Some(&supplier), LOG, json!({})).await;
        assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");
        assert!(body["data"]["refusedAttempts"].is_null(), "{body}");
        let case_worker = app.token(MUNICIPALITY_ORG, &[Role::CaseWorker]);
        let (_, body) = app.graphql_raw(Some(&case_worker), LOG, json!({})).await;
        assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");

        let admin = app.admin_token();
        let data = app.graphql(Some(&admin), LOG, json!({ "filter": { "code": "UNAUTHENTICATED" } })).await;
        let rows = &data["refusedAttempts"]["nodes"];
        assert_eq!(attempts_of(rows, "address 127.0.0.1"), 4, "three refused tokens and one anonymous read: {data}");
        assert!(rows.as_array().unwrap().iter().all(|row| row["code"] == "UNAUTHENTICATED"), "{data}");
        let data = app.graphql(Some(&admin), LOG, json!({ "filter": { "code": "FORBIDDEN" } })).await;
        let rows = &data["refusedAttempts"]["nodes"];
        assert_eq!(attempts_of(rows, &format!("org {SUPPLIER_ORG} sub test-user")), 1, "{data}");
        assert_eq!(attempts_of(rows, &format!("org {MUNICIPALITY_ORG} sub test-user")), 1, "{data}");
        let minute = rows[0]["minute"].as_str().unwrap();
        assert!(minute.ends_with(":00Z") || minute.ends_with(":00+00:00"), "a whole minute: {minute}");

        // Nothing after now.
        let data = app.graphql(Some(&admin), LOG, json!({ "filter": { "since": "2999-01-01T00:00:00Z" } })).await;
        assert_eq!(data["refusedAttempts"]["totalCount"], 0, "{data}");

        // Prometheus counts the same attempts.
        let scraped = scrape(&app).await;
        assert_eq!(value(&scraped, "velferd_refused_attempts_total", &[("code", "UNAUTHENTICATED")]), 4.0);
        assert_eq!(value(&scraped, "velferd_refused_attempts_total", &[("code", "FORBIDDEN")]), 2.0);
    }
}

on_each_backend! {
    /// Refused tokens from more client addresses than one instance keeps apart: every attempt is
    /// counted, the callers past the table's bound together under `(others)`, and the log gains a
    /// bounded number of rows, not one per attempt.
    async fn a_flood_of_callers_costs_a_bounded_number_of_rows(backend) {
        let settings = [("VELFERD_TRUSTED_PROXIES", "127.0.0.1"), ("VELFERD_REFUSAL_LOG_FLUSH_SECONDS", "86400")];
        let Some(app) = spawn(backend, &settings).await else { return };
        const FLOOD: usize = 1_500;
        let statuses: Vec<u16> = futures_util::stream::iter(0..FLOOD)
            .map(|i| {
                let request = app
                    .client
                    .post(app.url("/graphql"))
                    .bearer_auth("forged")
                    .header("X-Forwarded-For", format!("10.0.{}.{}", i / 250, i % 250))
                    .json(&json!({ "query": "{ __typename }" }));
                async move { request.send().await.unwrap().status().as_u16() }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s == 401));

        // Reading the log writes what the instance holds.
        let admin = app.admin_token();
        let data = app.graphql(Some(&admin), LOG, json!({ "filter": { "code": "UNAUTHENTICATED" } })).await;
        assert!(data["refusedAttempts"]["totalCount"].as_u64().unwrap() > 0, "{data}");
        use sea_orm::{ConnectionTrait, Statement};
        let db = app.db().read();
        let sql = "SELECT COUNT(*) AS n, CAST(SUM(attempts) AS BIGINT) AS total, \
                   CAST(SUM(CASE WHEN caller = '(others)' THEN attempts ELSE 0 END) AS BIGINT) AS others \
                   FROM refused_attempt WHERE code = 'UNAUTHENTICATED'";
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        let (rows, total, others) = (
            row.try_get::<i64>("", "n").unwrap(),
            row.try_get::<i64>("", "total").unwrap(),
            row.try_get::<i64>("", "others").unwrap(),
        );
        assert_eq!(total, FLOOD as i64, "every attempt is counted");
        let most = velferd::refusals::log::MAX_PENDING as i64;
        // One overflow row per minute the flood spanned (two at most).
        assert!(rows <= most + 2, "{rows} rows for {FLOOD} attempts");
        assert_eq!(others, FLOOD as i64 - most, "the callers past the bound are counted together");
    }
}

/// WebSockets the server refuses or closes are logged too: a foreign page's upgrade
/// (`FORBIDDEN`), an address past its socket cap (`WS_TOO_MANY_CONNECTIONS`), a refused token at
/// `connection_init` (`UNAUTHENTICATED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_refusals_are_logged() {
    use crate::websocket::{Heard, init, open};
    let settings = [("VELFERD_WS_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS", "1")];
    let app = spawn(Backend::Sqlite, &settings).await.expect("SQLite is always there");
    assert_eq!(open(&app, Some("https://evil.example")).await.err(), Some(403));
    let _first = crate::support::graphql_socket(&app, None).await;
    let mut second = open(&app, None).await.unwrap();
    assert!(matches!(init(&mut second, json!({})).await, Heard::Close(1013, _)));
    let mut forged = open(&app, None).await.unwrap();
    assert!(matches!(init(&mut forged, json!({ "authorization": "Bearer forged" })).await, Heard::Close(4403, _)));

    let data = app.graphql(Some(&app.admin_token()), LOG, json!({})).await;
    let rows = data["refusedAttempts"]["nodes"].as_array().unwrap().clone();
    let count = |code: &str| -> i64 {
        rows.iter()
            .filter(|r| r["code"] == code && r["caller"] == "address 127.0.0.1")
            .map(|r| r["attempts"].as_i64().unwrap())
            .sum()
    };
    assert_eq!((count("FORBIDDEN"), count("WS_TOO_MANY_CONNECTIONS"), count("UNAUTHENTICATED")), (1, 1, 1), "{data}");
}
