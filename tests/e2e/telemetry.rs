//! Telemetry as an operator meets it: Prometheus metrics on their own listener, and the request
//! id that leads from what a client saw to the server's log line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::devices::{DISPENSER, Fleet, activate, ingest, register_device, sample, upload_signed};
use crate::support::{Backend, Options, SECRET, TestApp, first_error_code, graphql_socket, subscribe};

/// Scrapes `/metrics` and parses it with an independent parser.
pub(crate) async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let response = app.client.get(app.metrics_url()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("valid exposition")
}

/// The value of the sample `name` with exactly `labels`; 0 when there is none yet.
pub(crate) fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .filter_map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(*v),
            _ => None,
        })
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} is one series: {matching:?}");
    matching.first().copied().unwrap_or(0.0)
}

/// Known operations, one error with a known code, one ingested message: each moves exactly its
/// own series, and a name from a document that never validated never becomes a label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_operations_errors_ingest_and_adapter_calls_with_bounded_labels() {
    let options = Options { pairs: vec![("VELFERD_METRICS_BIND", "127.0.0.1:0".into())], demo: false };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();

    // Never on the public port.
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    assert!(!public.text().await.unwrap().contains("velferd_"));

    let fleet = Fleet::new(&app).await;
    let adapter = upload_signed(&app, &fleet, DISPENSER, "velferd_dispenser_json").await;
    assert_eq!(activate(&app, &adapter).await["adapter"]["status"], "ACTIVE");
    let case_worker = fleet.case_worker_token(&app);
    assert_eq!(register_device(&app, &case_worker, DISPENSER, "RD-100234").await["userErrors"], json!([]));

    let before = scrape(&app).await;

    let probe =
        json!({ "query": "query TelemetryProbe { viewer { authenticated } }", "operationName": "TelemetryProbe" });
    let body: Value = app.client.post(app.url("/graphql")).json(&probe).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["authenticated"], false, "{body}");
    let invalid =
        json!({ "query": "query NeverValidated { organisations { totalCount } }", "operationName": "NeverValidated" });
    let body: Value = app.client.post(app.url("/graphql")).json(&invalid).send().await.unwrap().json().await.unwrap();
    assert_eq!(first_error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    let integration = fleet.integration_token(&app);
    let (status, reply) =
        ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json")).await;
    assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");

    let after = scrape(&app).await;
    let delta = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);

    let probe = [("operation", "TelemetryProbe")];
    assert_eq!(delta("velferd_graphql_requests_total", &probe), 1.0);
    assert_eq!(delta("velferd_graphql_request_duration_seconds_count", &probe), 1.0);
    assert_eq!(delta("velferd_graphql_requests_total", &[("operation", "other")]), 1.0, "the invalid document");
    assert_eq!(delta("velferd_graphql_errors_total", &[("code", "GRAPHQL_VALIDATION_FAILED")]), 1.0);
    let accepted = [("product", DISPENSER), ("outcome", "accepted")];
    assert_eq!(delta("velferd_ingest_messages_total", &accepted), 1.0);
    assert_eq!(delta("velferd_adapter_call_duration_seconds_count", &[("result", "ok")]), 1.0);
    assert!(delta("velferd_adapter_instructions_total", &[("result", "ok")]) > 0.0);
    assert_eq!(value(&after, "velferd_graphql_subscribers", &[]), 0.0);
    assert!(
        after
            .samples
            .iter()
            .any(|s| s.metric == "velferd_db_connections_in_use" && s.labels.get("pool") == Some("read"))
    );

    // A live subscription counts while its socket is open.
    let mut ws = graphql_socket(&app, None).await;
    subscribe(&mut ws, "1", "subscription { organizationCreated { name } }", json!({})).await;
    assert_eq!(value(&scrape(&app).await, "velferd_graphql_subscribers", &[]), 1.0);
    drop(ws);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while value(&scrape(&app).await, "velferd_graphql_subscribers", &[]) != 0.0 {
        assert!(std::time::Instant::now() < deadline, "the subscriber is gone within 10 s of the socket closing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bounded labels: the name of the document that failed validation is nowhere.
    for sample in &after.samples {
        let labels = format!("{}", sample.labels);
        assert!(!labels.contains("NeverValidated"), "{} {labels}", sample.metric);
    }
}

/// Runs the real binary on a fresh SQLite file with JSON logs, breaks its database under it, and
/// follows the request id from the response header to the incident id in the error message and
/// to the error's log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_id_is_the_incident_id_of_an_internal_error_and_found_in_its_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("velferd.db");
    let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("VELFERD_")) {
        command.env_remove(name);
    }
    let mut child = command
        .current_dir(dir.path())
        .env("VELFERD_JWT_SECRET", SECRET)
        .env("VELFERD_BIND", "127.0.0.1:0")
        .env("VELFERD_DATABASE_URL", format!("sqlite://{}?mode=rwc", db_file.display()))
        .env("VELFERD_LOG", "warn")
        .env("VELFERD_LOG_FORMAT", "json")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first_line, line_received) = tokio::sync::oneshot::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = first_line.send(lines.next().and_then(Result::ok).unwrap_or_default());
        for _ in lines {}
    });
    let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = log_tx.send(line);
        }
    });
    let line = line_received.await.unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_string();
    let client = crate::support::http_client().build().unwrap();
    let query = json!({ "query": "{ organizations { totalCount nodes { name } } }" });

    // Every response carries a request id; a safe client id is kept, an unsafe one replaced.
    let healthy = client.post(format!("{base}/graphql")).json(&query).send().await.unwrap();
    assert_eq!(healthy.status(), 200);
    let generated = healthy.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!generated.is_empty() && generated.len() <= 64, "{generated}");
    let kept = client.get(format!("{base}/healthz")).header("x-request-id", "client-id.42_a").send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "client-id.42_a");
    let replaced = client.get(format!("{base}/healthz")).header("x-request-id", "bad id\"{}").send().await.unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id\"{}");

    // Break the database under the running server: its organisations table goes away.
    let url = format!("sqlite://{}", db_file.display());
    let outside = sea_orm::Database::connect(&url).await.unwrap();
    use sea_orm::ConnectionTrait;
    outside.execute_unprepared("PRAGMA foreign_keys = OFF; DROP TABLE organization;").await.unwrap();
    outside.close().await.unwrap();

    let response = client.post(format!("{base}/graphql")).json(&query).send().await.unwrap();
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(first_error_code(&body), "INTERNAL_SERVER_ERROR", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(message, format!("internal error (incident {request_id})"), "{body}");
    assert!(!body.to_string().contains("no such table"), "the cause is not shown: {body}");

    // The error's log line: JSON, with the incident and the request's span.
    let logged = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = log_rx.recv().await {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                panic!("every log line is JSON: {line:?}");
            };
            if entry["fields"]["incident"] == request_id.as_str() {
                return entry;
            }
        }
        panic!("stderr closed before the incident was logged");
    })
    .await
    .expect("the incident is logged within 10 s");
    assert_eq!(logged["level"], "ERROR", "{logged}");
    assert_eq!(logged["span"]["request_id"], request_id.as_str(), "{logged}");
    assert!(logged["fields"]["cause"].as_str().unwrap().contains("organization"), "the cause is in the log: {logged}");

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status:?}");
}
