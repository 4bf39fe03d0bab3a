//! Ingest over HTTP against a running server: messages per second and latency percentiles on
//! SQLite and (when `VELFERD_BENCH_POSTGRES_URL` is set) PostgreSQL, single and batch form,
//! and the latency of GraphQL requests while a hostile adapter is flooded with messages.
//!
//!     cargo bench -p velferd --bench ingest
//!     VELFERD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p velferd --bench ingest
//!
//! `BENCH_MESSAGES` (default 20000) and `BENCH_CONCURRENCY` (default 16) change the load;
//! `BENCH_ROUNDS` (default 1) repeats the single-message load on the same database, to see
//! whether the rate falls as the stored events grow.
//! The server and this client share the machine, as they would on a small VM. Figures and how
//! to read them: docs/ingest.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use velferd::auth::{Role, TokenSigner};
use velferd::config::Settings;

use support::{MUNICIPALITY, OPERATOR, SUPPLIER};

#[path = "../../plugins/host/tests/common/mod.rs"]
pub(crate) mod guests;
#[path = "support/mod.rs"]
pub(crate) mod support;

/// Production's token algorithm: the test suite's Ed25519 key pair.
pub(crate) fn key_file(which: &str) -> String {
    format!("{}/../tests/e2e/fixtures/ed25519-{which}.pem", env!("CARGO_MANIFEST_DIR"))
}
const DEVICES: usize = 200;

pub(crate) struct Bench {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) signer: TokenSigner,
}

impl Bench {
    pub(crate) fn token(&self, org: &str, role: Role) -> String {
        support::token(&self.signer, org, role)
    }

    /// POSTs to /graphql with `token`; returns the whole JSON reply.
    async fn post_graphql(
        &self,
        token: &str,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Value {
        let request = body(self.client.post(format!("{}/graphql", self.base)).bearer_auth(token));
        request.send().await.unwrap().json().await.unwrap()
    }

    pub(crate) async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.post_graphql(token, |r| r.json(&json!({ "query": query, "variables": variables }))).await;
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    async fn upload(&self, product: &str, guest: &str, key: &SigningKey) -> String {
        let bytes = guests::component(guest);
        let operations = json!({
            "query": "mutation($input: AdapterUploadInput!) { adapterUpload(input: $input) { adapter { id } userErrors { code message } } }",
            "variables": { "input": { "product": product, "component": null, "signature": STANDARD.encode(key.sign(&bytes).to_bytes()) } },
        });
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.input.component"] }).to_string())
            .part("0", reqwest::multipart::Part::bytes(bytes).file_name("a.wasm"));
        let body = self.post_graphql(&self.token(SUPPLIER, Role::Supplier), |r| r.multipart(form)).await;
        let id =
            body["data"]["adapterUpload"]["adapter"]["id"].as_str().unwrap_or_else(|| panic!("{body}")).to_string();
        let admin = self.token(OPERATOR, Role::Admin);
        self.graphql(
            &admin,
            "mutation($id: ID!) { adapterActivate(input: { adapterId: $id }) { userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
        id
    }

    pub(crate) async fn setup(&self, db: &sea_orm::DatabaseConnection) {
        let admin = self.token(OPERATOR, Role::Admin);
        let create =
            "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { userErrors { code } } }";
        self.graphql(
            &admin,
            create,
            json!({ "input": { "kind": "SUPPLIER", "name": "Bench Devices AS", "orgNumber": SUPPLIER } }),
        )
        .await;
        self.graphql(
            &admin,
            create,
            json!({ "input": { "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": MUNICIPALITY,
            "municipalityNumber": "3805", "county": "Vestfold" } }),
        )
        .await;
        let key = SigningKey::from_bytes(&[9; 32]);
        let proof = key.sign(&velferd::devices::identifiers::key_registration_message(SUPPLIER));
        let data = self
            .graphql(
                &self.token(SUPPLIER, Role::Supplier),
                "mutation($k: String!, $p: String!) { signingKeyRegister(input: { publicKey: $k, proof: $p }) { userErrors { code } } }",
                json!({ "k": STANDARD.encode(key.verifying_key().as_bytes()), "p": STANDARD.encode(proof.to_bytes()) }),
            )
            .await;
        assert_eq!(data["signingKeyRegister"]["userErrors"], json!([]), "{data}");
        self.upload("bench-dispenser", "velferd_dispenser_json", &key).await;
        self.upload("bench-hostile", "hostile_infinite_loop", &key).await;
        // The supplier delivers the devices under the municipality's call-off; the municipality
        // registers them.
        let call_off = support::confirmed_call_off(db).await;
        let serials: Vec<String> = (0..DEVICES).map(|i| format!("RD-B{i:05}")).collect();
        for batch in serials.chunks(100) {
            let data = self
                .graphql(
                    &self.token(SUPPLIER, Role::Supplier),
                    "mutation($input: DeviceDeliverInput!) { deviceDeliver(input: $input) { userErrors { code message } } }",
                    json!({ "input": { "callOffId": velferd::ids::global_id(velferd::ids::NodeType::CallOff, call_off),
                        "product": "bench-dispenser", "serials": batch } }),
                )
                .await;
            assert_eq!(data["deviceDeliver"]["userErrors"], json!([]), "{data}");
        }
        let case_worker = self.token(MUNICIPALITY, Role::CaseWorker);
        for serial in &serials {
            let data = self
                .graphql(
                    &case_worker,
                    "mutation($s: String!) { deviceRegister(input: { product: \"bench-dispenser\", serial: $s }) { userErrors { code } } }",
                    json!({ "s": serial }),
                )
                .await;
            assert_eq!(data["deviceRegister"]["userErrors"], json!([]), "{data}");
        }
    }
}

/// A realistic dispenser message: a dose made available and taken, with unique event ids.
fn message(n: usize) -> String {
    json!({ "serial": format!("RD-B{:05}", n % DEVICES), "events": [
        { "id": format!("b-{n}-a"), "type": "dose_available", "at": "2026-11-22T07:00:00Z", "dose": { "id": format!("d-{n}"), "scheduled": "2026-11-22T07:00:00Z" } },
        { "id": format!("b-{n}-t"), "type": "dose_taken", "at": "2026-11-22T07:04:12Z", "dose": { "id": format!("d-{n}"), "scheduled": "2026-11-22T07:00:00Z", "assisted": false } },
    ] })
    .to_string()
}

fn report(label: &str, messages: usize, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{label:<44} {:>8.0} msg/s  {:>6} requests  p50 {:>6.2} ms  p95 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
        messages as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        at(0.5),
        at(0.95),
        at(0.99),
        at(1.0)
    );
}

/// `total` requests from `concurrency` clients; `request(n)` sends request n and returns how
/// many messages it carried.
async fn load<F, Fut>(concurrency: usize, total: usize, request: F) -> (usize, Duration, Vec<Duration>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, request) = (next.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut messages) = (Vec::new(), 0);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let t = Instant::now();
                messages += request(n).await;
                latencies.push(t.elapsed());
            }
            (latencies, messages)
        }));
    }
    let (mut latencies, mut messages) = (Vec::new(), 0);
    for task in tasks {
        let (l, m) = task.await.unwrap();
        latencies.extend(l);
        messages += m;
    }
    (messages, started.elapsed(), latencies)
}

async fn run(label: &str, database_url: String, hostile: bool) {
    let (public_key, private_key) = (key_file("public"), key_file("private"));
    let bind = std::env::var("BENCH_BIND").unwrap_or_else(|_| "127.0.0.1:0".into());
    let settings = Settings::from_pairs([
        ("VELFERD_DATABASE_URL", database_url.as_str()),
        ("VELFERD_BIND", bind.as_str()),
        ("VELFERD_JWT_ALGORITHM", "EdDSA"),
        ("VELFERD_JWT_PUBLIC_KEY_FILE", public_key.as_str()),
        ("VELFERD_JWT_PRIVATE_KEY_FILE", private_key.as_str()),
        ("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR),
        ("VELFERD_LOG", "error"),
        ("VELFERD_DB_MAX_CONNECTIONS", "8"),
        // The bench times GraphQL answers beside the flood; the cost throttle (issue 12) would
        // refuse its one admin's steady queries, which measures the throttle instead.
        ("VELFERD_THROTTLE_RESTORE_RATE", "100000000"),
        // One product sends the whole load here; the per-product ingest rate (1 000 a second by
        // default, issue 12) would answer 429 and measure the rate limit instead.
        ("VELFERD_INGEST_RATE", "10000000"),
        ("VELFERD_INGEST_BURST", "10000000"),
    ])
    .unwrap();
    let server = velferd::start(&settings, false, 2).await.unwrap();
    // reqwest's rustls has no crypto provider of its own (ring is installed, never aws-lc).
    velferd::outbound::install_crypto_provider();
    let bench = Arc::new(Bench {
        base: format!("http://{}", server.addr),
        client: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
        signer: TokenSigner::new(&settings.jwt).unwrap(),
    });
    bench.setup(server.db.write()).await;
    let total: usize = std::env::var("BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let integration = Arc::new(bench.token(SUPPLIER, Role::Integration));
    if std::env::var_os("BENCH_SERVE").is_some() {
        // The server stays up, seeded, for an outside load generator (`wrk`, docs/performance.md)
        // and a profiler; stop it with Ctrl-C.
        println!("{label}: serving on {} (pid {})", bench.base, std::process::id());
        println!("BENCH_TOKEN={integration}");
        tokio::signal::ctrl_c().await.unwrap();
        server.stop().await;
        return;
    }

    let single = |offset: usize| {
        let (bench, token) = (bench.clone(), integration.clone());
        move |n: usize| {
            let (bench, token) = (bench.clone(), token.clone());
            async move {
                let response = bench
                    .client
                    .post(format!("{}/ingest/bench-dispenser", bench.base))
                    .bearer_auth(token.as_str())
                    .header("content-type", "application/json")
                    .body(message(offset + n))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
                1
            }
        }
    };
    // Warm up connections, the compiled adapter and the database's caches.
    load(concurrency, 500, single(10_000_000)).await;
    // `BENCH_ROUNDS` rounds of `total` messages each on the same database: whether a message
    // costs more as the events stored grow (docs/performance.md).
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    for round in 0..rounds {
        let stored = stored_events(server.db.write()).await;
        let (messages, elapsed, latencies) = load(concurrency, total, single(round * total)).await;
        let name = format!("{label}: single message, {concurrency} clients, {stored} events stored before");
        report(&name, messages, elapsed, latencies);
    }

    let batch_size = 100;
    let batches = (total / batch_size).max(10);
    let (bench2, token2) = (bench.clone(), integration.clone());
    let (messages, elapsed, latencies) = load(4, batches, move |n| {
        let (bench, token) = (bench2.clone(), token2.clone());
        async move {
            let messages: Vec<Value> = (0..batch_size)
                .map(|i| json!({ "contentType": "application/json", "body": message(20_000_000 + n * batch_size + i) }))
                .collect();
            let response = bench
                .client
                .post(format!("{}/ingest/bench-dispenser/batch", bench.base))
                .bearer_auth(token.as_str())
                .json(&json!({ "messages": messages }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let reply: Value = response.json().await.unwrap();
            assert_eq!(reply["accepted"], batch_size, "{reply}");
            batch_size
        }
    })
    .await;
    report(&format!("{label}: batches of {batch_size}, 4 clients"), messages, elapsed, latencies);

    if hostile {
        let viewer = bench.token(MUNICIPALITY, Role::CaseWorker);
        let query = "{ viewer { authenticated } devices(first: 10) { totalCount nodes { serial } } }";
        let mut quiet = Vec::new();
        for _ in 0..300 {
            let t = Instant::now();
            bench.graphql(&viewer, query, json!({})).await;
            quiet.push(t.elapsed());
        }
        report(&format!("{label}: GraphQL, quiet"), quiet.len(), quiet.iter().sum(), quiet);
        let until = Instant::now() + Duration::from_secs(5);
        let mut attackers = Vec::new();
        for a in 0..8 {
            let (bench, token) = (bench.clone(), integration.clone());
            attackers.push(tokio::spawn(async move {
                let mut sent = 0;
                while Instant::now() < until {
                    let response = bench
                        .client
                        .post(format!("{}/ingest/bench-hostile", bench.base))
                        .bearer_auth(token.as_str())
                        .header("content-type", "application/json")
                        .body(format!("{{\"attacker\": {a}, \"n\": {sent}}}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 202);
                    sent += 1;
                }
                sent
            }));
        }
        let mut attacked = Vec::new();
        while Instant::now() < until {
            let t = Instant::now();
            bench.graphql(&viewer, query, json!({})).await;
            attacked.push(t.elapsed());
        }
        let mut contained = 0;
        for attacker in attackers {
            contained += attacker.await.unwrap();
        }
        println!(
            "{label}: {contained} messages to an infinite-loop adapter contained as dead letters in 5 s by 8 senders"
        );
        report(&format!("{label}: GraphQL during the attack"), attacked.len(), attacked.iter().sum(), attacked);
    }
    server.stop().await;
}

async fn stored_events(db: &sea_orm::DatabaseConnection) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = "SELECT COUNT(*) FROM device_event";
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index(0).unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        guests::guests_dir();
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        run("SQLite", sqlite, true).await;
        if let Ok(admin_url) = std::env::var("VELFERD_BENCH_POSTGRES_URL") {
            use sea_orm::ConnectionTrait;
            let name = format!("velferd_bench_{}", std::process::id());
            let admin = sea_orm::Database::connect(&admin_url).await.unwrap();
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
            let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);
            run("PostgreSQL", url, false).await;
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
        } else {
            println!("PostgreSQL: skipped (set VELFERD_BENCH_POSTGRES_URL)");
        }
    });
}
