//! Limits per adapter version, over real HTTP: a supplier asks for more (or less) than the
//! defaults at upload within the platform's ceilings, the replay review runs the version under
//! what it asked for, the admin's activation approves it, and ingest then runs it under those
//! limits — in a pool of its own when it needs more memory or a larger component. Uploads get a
//! body limit of their own for suppliers only, and products share adapter time fairly. Every
//! limit is tested both ways: under it accepted, over it refused with the limit named.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use velferd::auth::Role;

use crate::devices::{DISPENSER, Fleet, activate, ingest, register_device, sample};
use crate::guests;
use crate::support::{Backend, Options, TestApp, on_both_backends};

const UPLOAD: &str = "mutation($input: AdapterUploadInput!) { adapterUpload(input: $input) {
    adapter { id status limitsApproval limitsFile limits { componentBytes memoryBytes fuel deadlineMs } }
    compilation { millis cacheHit } userErrors { field code message } } }";

const ADAPTER: &str = "query($id: ID!) { node(id: $id) { ... on Adapter { status limitsApproval limitsApprovedBy
    limitsApprovedAt limitsFile limits { componentBytes memoryBytes fuel deadlineMs } } } }";

/// `component` with a custom section appended: other bytes (another sha-256, so another
/// version) that decode the same, `padding` bytes larger.
fn with_custom_section(mut component: Vec<u8>, name: &str, padding: usize) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.resize(content.len() + padding, 0x5a);
    component.push(0); // custom section id
    leb128(content.len(), &mut component);
    component.extend_from_slice(&content);
    component
}

/// Uploads `component` signed by the fleet, asking for `limits` (null: nothing); returns the
/// `adapterUpload` payload.
pub(crate) async fn upload_with_limits(
    app: &TestApp,
    fleet: &Fleet,
    product: &str,
    component: Vec<u8>,
    limits: Value,
) -> Value {
    let signature = fleet.sign(&component);
    let mut input = json!({ "product": product, "component": null, "signature": signature });
    if !limits.is_null() {
        input["requestedLimits"] = limits;
    }
    crate::devices::upload_as(app, &fleet.supplier_token(app), UPLOAD, input, component).await
}

pub(crate) async fn activate_approving(app: &TestApp, id: &str, approve: bool) -> Value {
    app.graphql(
        Some(&app.admin_token()),
        "mutation($id: ID!, $approve: Boolean!) { adapterActivate(input: { adapterId: $id, approveLimits: $approve }) {
            adapter { id status limitsApproval } userErrors { field code message } } }",
        json!({ "id": id, "approve": approve }),
    )
    .await["adapterActivate"]
        .clone()
}

/// The reason of a reply's first message.
fn reason(reply: &Value) -> (String, String) {
    reason_of(&reply["results"][0])
}

/// The reason one message of a reply was given.
fn reason_of(result: &Value) -> (String, String) {
    let reason = &result["reason"];
    (reason["code"].as_str().unwrap_or("none").to_string(), reason["message"].as_str().unwrap_or("").to_string())
}

on_both_backends! {
    /// Fuel both ways: a version that asked for 1 000 instructions is refused at ingest with
    /// that budget named; a new version that asks for 50 M waits for approval, its replay review
    /// runs it under the 50 M it asked for (the baseline keeps its 1 000), activation without
    /// `approveLimits` is refused and changes nothing, with it the limits are approved, the
    /// supplier sees so, and ingest decodes under them.
    async fn a_version_runs_under_the_limits_it_asked_for_once_approved(app) {
        let fleet = Fleet::new(&app).await;
        let dispenser = guests::component("velferd_dispenser_json");
        let tight = upload_with_limits(&app, &fleet, DISPENSER, dispenser.clone(), json!({ "fuel": 1000 })).await;
        assert_eq!(tight["userErrors"], json!([]), "{tight}");
        let tight = &tight["adapter"];
        assert_eq!(tight["limitsApproval"], "NOT_NEEDED", "asking for less needs no approval");
        assert_eq!(tight["limits"], json!({ "componentBytes": 524288, "memoryBytes": 4194304, "fuel": 1000, "deadlineMs": 100 }));
        let tight_id = tight["id"].as_str().unwrap().to_string();
        assert_eq!(activate(&app, &tight_id).await["adapter"]["status"], "ACTIVE");
        let case_worker = fleet.case_worker_token(&app);
        assert_eq!(register_device(&app, &case_worker, DISPENSER, "RD-100234").await["userErrors"], json!([]));
        let integration = fleet.integration_token(&app);
        let body = sample("dispenser-json", "morning-dose.json");
        let (status, reply) = ingest(&app, &integration, DISPENSER, "application/json", body.clone()).await;
        assert_eq!(status, 202, "over its fuel: a dead letter {reply}");
        let (code, message) = reason(&reply);
        assert_eq!(code, "fuel-exhausted");
        assert!(message.contains("1000 instructions"), "the budget is named: {message}");

        let generous = with_custom_section(dispenser, "velferd-test-v2", 16);
        let payload = upload_with_limits(&app, &fleet, DISPENSER, generous, json!({ "fuel": 50_000_000 })).await;
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        let candidate = payload["adapter"].clone();
        assert_eq!(candidate["limitsApproval"], "PENDING");
        assert_eq!(
            candidate["limitsFile"],
            r#"{"componentBytes":524288,"memoryBytes":4194304,"fuel":50000000,"deadlineMs":100}"#,
            "exactly the file `velferd adapter check --limits` reads"
        );
        let id = candidate["id"].as_str().unwrap().to_string();

        let review = app
            .graphql(
                Some(&app.admin_token()),
                "query($id: ID!) { node(id: $id) { ... on Adapter { replayReview(last: 1) {
                    candidateLimits { fuel memoryBytes } defaultLimits { fuel } limitsApproval
                    messages { baseline { errorCode error } candidate { events errorCode } } } } } }",
                json!({ "id": id }),
            )
            .await;
        let review = &review["node"]["replayReview"];
        assert_eq!(review["candidateLimits"], json!({ "fuel": 50_000_000, "memoryBytes": 4194304 }));
        assert_eq!(review["defaultLimits"]["fuel"], 10_000_000);
        assert_eq!(review["limitsApproval"], "PENDING");
        let message = &review["messages"][0];
        assert_eq!(message["baseline"]["errorCode"], "fuel-exhausted", "{review}");
        assert_eq!(message["candidate"]["errorCode"], Value::Null, "the candidate runs under what it asked for: {review}");
        assert!(!message["candidate"]["events"].as_array().unwrap().is_empty(), "{review}");

        let refused = activate_approving(&app, &id, false).await;
        assert_eq!(refused["userErrors"][0]["code"], "LIMITS_NOT_APPROVED", "{refused}");
        assert_eq!(refused["userErrors"][0]["field"], json!(["input", "approveLimits"]));
        assert!(refused["userErrors"][0]["message"].as_str().unwrap().contains("fuel 50000000"), "{refused}");
        let supplier = fleet.supplier_token(&app);
        let seen = app.graphql(Some(&supplier), ADAPTER, json!({ "id": id })).await;
        assert_eq!(seen["node"]["status"], "PENDING_REVIEW", "a refused activation changes nothing");
        assert_eq!(seen["node"]["limitsApproval"], "PENDING");

        let approved = activate_approving(&app, &id, true).await;
        assert_eq!(approved["userErrors"], json!([]), "{approved}");
        assert_eq!(approved["adapter"]["status"], "ACTIVE");
        let seen = app.graphql(Some(&supplier), ADAPTER, json!({ "id": id })).await["node"].clone();
        assert_eq!(seen["limitsApproval"], "APPROVED", "the supplier sees the approval");
        assert!(seen["limitsApprovedAt"].is_string() && seen["limitsApprovedBy"].is_string(), "{seen}");
        assert_eq!(seen["limits"]["fuel"], 50_000_000);

        // Others see the active version, without its limits, like other supplier-only fields.
        let other = app.token(&fleet.other_supplier, &[Role::Supplier]);
        let hidden = app.graphql(Some(&other), ADAPTER, json!({ "id": id })).await["node"].clone();
        assert_eq!(hidden["status"], "ACTIVE");
        for field in ["limits", "limitsFile", "limitsApproval", "limitsApprovedBy"] {
            assert_eq!(hidden[field], Value::Null, "{field}: {hidden}");
        }

        let (status, reply) = ingest(&app, &integration, DISPENSER, "application/json", body).await;
        assert_eq!(status, 200, "under the approved budget the message decodes: {reply}");
    }
}

on_both_backends! {
    /// A request over a platform ceiling (or not a positive number) is a user error naming the
    /// ceiling and its setting, and records nothing.
    async fn requests_over_the_ceilings_are_refused_naming_the_ceiling(app) {
        let fleet = Fleet::new(&app).await;
        let dispenser = guests::component("velferd_dispenser_json");
        let before = app.fingerprint().await;
        let cases = [
            (json!({ "memoryBytes": 65 << 20 }), "requestedLimits.memoryBytes", "LIMIT_OVER_CEILING", "67108864 (VELFERD_ADAPTER_MAX_MEMORY_BYTES)"),
            (json!({ "componentBytes": 33 << 20 }), "requestedLimits.componentBytes", "LIMIT_OVER_CEILING", "33554432 (VELFERD_ADAPTER_MAX_COMPONENT_BYTES)"),
            (json!({ "fuel": 2_000_000_000 }), "requestedLimits.fuel", "LIMIT_OVER_CEILING", "1000000000 (VELFERD_ADAPTER_MAX_FUEL)"),
            (json!({ "fuel": null }), "requestedLimits.fuel", "LIMIT_OVER_CEILING", "VELFERD_ADAPTER_MAX_FUEL"),
            (json!({ "deadlineMs": 5001 }), "requestedLimits.deadlineMs", "LIMIT_OVER_CEILING", "5000 (VELFERD_ADAPTER_MAX_DEADLINE_MS)"),
            (json!({ "deadlineMs": 0 }), "requestedLimits.deadlineMs", "INVALID_LIMIT", "positive"),
        ];
        for (limits, field, code, named) in cases {
            let payload = upload_with_limits(&app, &fleet, DISPENSER, dispenser.clone(), limits.clone()).await;
            let error = &payload["userErrors"][0];
            assert_eq!((error["field"][1].as_str(), error["code"].as_str()), (Some(field), Some(code)), "{limits}: {payload}");
            assert!(error["message"].as_str().unwrap().contains(named), "{limits}: {payload}");
            assert_eq!(payload["adapter"], Value::Null);
        }
        before.assert_unchanged(&app.fingerprint().await);
        // At the ceiling is accepted.
        let payload = upload_with_limits(&app, &fleet, DISPENSER, dispenser, json!({ "memoryBytes": 64 << 20, "deadlineMs": 5000 })).await;
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        assert_eq!(payload["adapter"]["limitsApproval"], "PENDING");
    }
}

on_both_backends! {
    /// Memory and component size: a component over the default 512 KiB is refused unless it
    /// asks for the room, and one that asked (with 16 MiB of memory) runs in the large pool and
    /// decodes; a memory bomb approved for 16 MiB is stopped at 16 MiB, and a version that asked
    /// for less memory than it starts with is refused with that limit named.
    async fn memory_and_component_size_follow_the_approved_limits(app) {
        let fleet = Fleet::new(&app).await;
        let case_worker = fleet.case_worker_token(&app);
        let integration = fleet.integration_token(&app);
        let big = with_custom_section(guests::component("velferd_dispenser_json"), "velferd-test-padding", 600 << 10);
        assert!(big.len() > 512 << 10);
        let refused = upload_with_limits(&app, &fleet, DISPENSER, big.clone(), Value::Null).await;
        assert_eq!(refused["userErrors"][0]["code"], "INVALID_COMPONENT", "{refused}");
        let message = refused["userErrors"][0]["message"].as_str().unwrap();
        assert!(message.contains("524288") && message.contains("requestedLimits.componentBytes"), "{message}");
        let too_small = upload_with_limits(&app, &fleet, DISPENSER, big.clone(), json!({ "componentBytes": 600 << 10 })).await;
        assert!(too_small["userErrors"][0]["message"].as_str().unwrap().contains(&format!("{}", 600 << 10)), "{too_small}");

        let large = upload_with_limits(&app, &fleet, DISPENSER, big, json!({ "componentBytes": 1 << 20, "memoryBytes": 16 << 20 })).await;
        assert_eq!(large["userErrors"], json!([]), "{large}");
        assert_eq!(large["adapter"]["limitsApproval"], "PENDING");
        let id = large["adapter"]["id"].as_str().unwrap().to_string();
        assert_eq!(activate_approving(&app, &id, true).await["adapter"]["status"], "ACTIVE");
        assert_eq!(register_device(&app, &case_worker, DISPENSER, "RD-100234").await["userErrors"], json!([]));
        let (status, reply) =
            ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json")).await;
        assert_eq!(status, 200, "the large version decodes in its own pool: {reply}");

        let bomb = upload_with_limits(&app, &fleet, "memory-bomb", guests::component("hostile_memory_bomb"), json!({ "memoryBytes": 16 << 20, "fuel": 500_000_000 })).await;
        let bomb_id = bomb["adapter"]["id"].as_str().expect("uploaded").to_string();
        assert_eq!(activate_approving(&app, &bomb_id, true).await["adapter"]["status"], "ACTIVE");
        let (status, reply) = ingest(&app, &integration, "memory-bomb", "application/json", b"{}".to_vec()).await;
        assert_eq!(status, 202);
        assert_eq!(reason(&reply), ("memory-exceeded".to_string(), format!("the adapter needed more than {} bytes of memory", 16 << 20)));

        // A Rust guest starts with about 1.1 MiB: under 1 MiB it cannot even start.
        let starved = upload_with_limits(&app, &fleet, "starved", guests::component("velferd_dispenser_json"), json!({ "memoryBytes": 1 << 20 })).await;
        let starved_id = starved["adapter"]["id"].as_str().expect("uploaded").to_string();
        assert_eq!(starved["adapter"]["limitsApproval"], "NOT_NEEDED");
        assert_eq!(activate(&app, &starved_id).await["adapter"]["status"], "ACTIVE");
        let (status, reply) = ingest(&app, &integration, "starved", "application/json", sample("dispenser-json", "morning-dose.json")).await;
        assert_eq!(status, 202);
        assert_eq!(reason(&reply), ("memory-exceeded".to_string(), format!("the adapter needed more than {} bytes of memory", 1 << 20)));
    }
}

/// A multipart body of `size` bytes (one file part) with `token` (none: anonymous).
async fn post_multipart(app: &TestApp, token: Option<&str>, size: usize) -> (u16, Value) {
    let operations = json!({
        "query": "mutation($input: AdapterUploadInput!) { adapterUpload(input: $input) { adapter { id } userErrors { code } } }",
        "variables": { "input": { "product": "big-body", "component": null, "signature": "x" } },
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.input.component"] }).to_string())
        .part("0", reqwest::multipart::Part::bytes(vec![0u8; size]).file_name("adapter.wasm"));
    let mut request = app.client.post(app.url("/graphql")).multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Resident memory of this process (the server runs in it), in KiB, from /proc.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

on_both_backends! {
    /// Uploads have a body limit of their own (`VELFERD_MAX_UPLOAD_BYTES`) for signed-in
    /// suppliers only: a supplier's 20 MiB component passes the body stage and is stored, while
    /// an anonymous caller's or a case worker's 2 MiB multipart body is refused with 413 naming
    /// `VELFERD_MAX_BODY_BYTES` — declared or streamed in chunks, before it is all read.
    async fn uploads_have_their_own_body_limit_for_suppliers_only(app) {
        let fleet = Fleet::new(&app).await;
        let before = rss_kib();
        let big = with_custom_section(guests::component("velferd_dispenser_json"), "velferd-test-padding", 20 << 20);
        let payload = upload_with_limits(&app, &fleet, DISPENSER, big, json!({ "componentBytes": 21 << 20 })).await;
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        assert_eq!(payload["adapter"]["limitsApproval"], "PENDING");
        println!("resident memory around a 20 MiB upload (client and server in one process): {before:?} KiB -> {:?} KiB", rss_kib());

        let case_worker = fleet.case_worker_token(&app);
        for token in [None, Some(case_worker.as_str())] {
            let (status, body) = post_multipart(&app, token, 2 << 20).await;
            assert_eq!(status, 413, "{body}");
            assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");
            assert!(body["errors"][0]["message"].as_str().unwrap().contains("1048576 bytes (VELFERD_MAX_BODY_BYTES)"), "{body}");
        }
        // A supplier's small upload of rubbish is read and refused by GraphQL, not by size.
        let (status, body) = post_multipart(&app, Some(&fleet.supplier_token(&app)), 2 << 20).await;
        assert_eq!(status, 200, "{body}");

        // Chunked, with no length declared: the server stops reading at the limit.
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let boundary = "velferdboundary";
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n",
            app.addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let part = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"a.wasm\"\r\n\r\n");
        let mut sent = 0usize;
        let chunk = vec![0u8; 64 << 10];
        let mut first = part.into_bytes();
        first.extend_from_slice(&chunk);
        let mut next = first;
        // Up to 4 MiB; the server may stop reading (and answer) long before.
        while sent < 4 << 20 {
            let framed = [format!("{:x}\r\n", next.len()).into_bytes(), next.clone(), b"\r\n".to_vec()].concat();
            if stream.write_all(&framed).await.is_err() {
                break;
            }
            sent += next.len();
            next = chunk.clone();
            if sent > 2 << 20 {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("VELFERD_MAX_BODY_BYTES"), "{answer}");
    }
}

/// How the slow product's six messages are sent.
#[derive(Clone, Copy, PartialEq)]
enum Sending {
    /// Six requests of one message each.
    OneByOne,
    /// One batch of six: its messages take their turns at the slot one slow call at a time.
    OneBatch,
}

/// Fair adapter time, on a server with one adapter slot: a product whose adapter runs every
/// message to a 1 s deadline (an infinite loop, approved to run unmetered) has six messages in
/// flight, and another product's message is decoded after at most the slow call running when it
/// arrived and the one that took the slot before it — not after all six.
async fn a_slow_product_does_not_starve_another(backend: Backend, sending: Sending) {
    let pairs = vec![
        ("VELFERD_ADAPTER_CONCURRENCY", "1".to_string()),
        ("VELFERD_ADAPTER_MAX_FUEL", "0".to_string()),
        ("VELFERD_METRICS_BIND", "127.0.0.1:0".to_string()),
    ];
    let Some(app) = TestApp::spawn_with(backend, Options { pairs, ..Options::default() }).await else { return };
    let fleet = Fleet::new(&app).await;
    let slow = upload_with_limits(
        &app,
        &fleet,
        "slow-product",
        guests::component("hostile_infinite_loop"),
        json!({ "fuel": null, "deadlineMs": 1000 }),
    )
    .await;
    assert_eq!(slow["adapter"]["limits"]["fuel"], Value::Null, "{slow}");
    assert_eq!(
        slow["adapter"]["limitsFile"],
        r#"{"componentBytes":524288,"memoryBytes":4194304,"fuel":null,"deadlineMs":1000}"#
    );
    let slow_id = slow["adapter"]["id"].as_str().unwrap().to_string();
    assert_eq!(activate_approving(&app, &slow_id, true).await["adapter"]["status"], "ACTIVE");
    let fast =
        upload_with_limits(&app, &fleet, DISPENSER, guests::component("velferd_dispenser_json"), Value::Null).await;
    activate(&app, fast["adapter"]["id"].as_str().unwrap()).await;
    let case_worker = fleet.case_worker_token(&app);
    assert_eq!(register_device(&app, &case_worker, DISPENSER, "RD-100234").await["userErrors"], json!([]));

    let integration = fleet.integration_token(&app);
    let mut senders = Vec::new();
    match sending {
        Sending::OneBatch => {
            let (client, base, token) = (app.client.clone(), app.url(""), integration.clone());
            senders.push(tokio::spawn(async move {
                let messages: Vec<Value> = (0..6)
                    .map(|n| json!({ "contentType": "application/json", "body": format!("{{\"n\": {n}}}") }))
                    .collect();
                let request = client.post(format!("{base}/ingest/slow-product/batch")).bearer_auth(&token);
                let reply = crate::wire::body(request.json(&json!({ "messages": messages }))).await;
                reply["results"].as_array().expect("one result a message").iter().map(reason_of).collect::<Vec<_>>()
            }));
        }
        Sending::OneByOne => {
            for n in 0..6 {
                let (client, base, token) = (app.client.clone(), app.url(""), integration.clone());
                senders.push(tokio::spawn(async move {
                    let message = format!("{{\"n\": {n}}}");
                    let reply =
                        crate::wire::ingest(&client, &base, &token, "slow-product", "application/json", message);
                    vec![reason(&reply.await.json().await.unwrap())]
                }));
            }
        }
    }
    // Not a timing assertion: only so that the slow product's messages are queued first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, reply) =
        ingest(&app, &integration, DISPENSER, "application/json", sample("dispenser-json", "morning-dose.json")).await;
    // Every adapter call made so far, the other product's one included: the slow calls it
    // waited for.
    let slow_before_fast = app.adapter_calls().await - 1.0;
    assert_eq!(status, 200, "{reply}");
    assert!(
        slow_before_fast <= 2.0,
        "the other product waited for {slow_before_fast} of the slow product's 6 calls; a fair share is at most 2"
    );
    let answers: Vec<(String, String)> =
        futures_util::future::join_all(senders).await.into_iter().flat_map(|sender| sender.unwrap()).collect();
    assert_eq!(answers.len(), 6);
    for (code, message) in answers {
        assert_eq!(code, "deadline-exceeded");
        assert!(message.contains("1000 ms"), "the approved deadline is named: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_product_does_not_starve_another_products_ingest_sqlite() {
    a_slow_product_does_not_starve_another(Backend::Sqlite, Sending::OneByOne).await;
}

/// A batch takes its turns one slow call at a time too (SQLite only: it runs six seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_products_batch_does_not_starve_another_products_ingest() {
    a_slow_product_does_not_starve_another(Backend::Sqlite, Sending::OneBatch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_product_does_not_starve_another_products_ingest_postgres() {
    a_slow_product_does_not_starve_another(Backend::Postgres, Sending::OneByOne).await;
}

/// The upload's answer says how the component was compiled: the first time it is compiled; the
/// same bytes again (for another product) come from the cache; and after a restart, from the
/// compile cache on disk, which the new process did not fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_answer_reports_compile_time_and_the_compile_cache() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("adapters").display().to_string();
    let options = Options { pairs: vec![("VELFERD_ADAPTER_CACHE_DIR", cache_dir.clone())], ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let fleet = Fleet::new(&app).await;
    let component = guests::component("velferd_dispenser_json");
    let compilation = |payload: &Value| {
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        let compilation = &payload["compilation"];
        assert!(compilation["millis"].as_f64().is_some_and(|ms| ms > 0.0), "{payload}");
        compilation["cacheHit"].as_bool().unwrap()
    };
    let first = upload_with_limits(&app, &fleet, DISPENSER, component.clone(), Value::Null).await;
    assert!(!compilation(&first), "compiled the first time");
    let again = upload_with_limits(&app, &fleet, "reference-dispenser-two", component.clone(), Value::Null).await;
    assert!(compilation(&again), "the same bytes are not compiled again");
    let entries = std::fs::read_dir(&cache_dir).unwrap().count();
    assert!(entries >= 2, "the cache directory holds the key and the entry ({entries} files)");

    let app = app.respawn_with(&[("VELFERD_ADAPTER_CACHE_DIR", cache_dir.as_str())]).await;
    let after_restart = upload_with_limits(&app, &fleet, "reference-dispenser-three", component, Value::Null).await;
    assert!(compilation(&after_restart), "a restarted server loads the compiled component from its disk");
}
