//! Live updates through the outbox: how long from an alarm ingested over HTTP until a
//! subscriber's WebSocket has it, on one SQLite instance and across two instances on one
//! PostgreSQL database (ingest on one, subscriber on the other, woken by `NOTIFY`); and how many
//! publishing transactions a second the commit-order counter lets through.
//!
//!     cargo bench -p velferd --bench live
//!     VELFERD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p velferd --bench live
//!
//! `BENCH_EVENTS` (default 300) alarms are raised one after the other, each once the previous
//! one was heard. The two PostgreSQL instances run in this process, each with its own pools and
//! its own `LISTEN` connection: what they share is the database, as two processes would (the
//! e2e test `live::two_server_processes_…` runs real processes). Figures: docs/live.md.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use velferd::auth::{Role, TokenSigner};
use velferd::config::Settings;
use velferd::live::{Scope, Topic};

use support::{MUNICIPALITY, OPERATOR, SECRET, SUPPLIER};

#[path = "../../plugins/host/tests/common/mod.rs"]
mod guests;
mod support;
#[path = "../../tests/e2e/wire.rs"]
mod wire;

const SERIAL: &str = "SA-B00001";

fn settings(database_url: &str) -> Settings {
    Settings::from_pairs([
        ("VELFERD_DATABASE_URL", database_url),
        ("VELFERD_BIND", "127.0.0.1:0"),
        ("VELFERD_JWT_SECRET", SECRET),
        ("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR),
        ("VELFERD_LOG", "error"),
        ("VELFERD_DB_MAX_CONNECTIONS", "8"),
    ])
    .unwrap()
}

struct Bench {
    client: reqwest::Client,
    signer: TokenSigner,
}

impl Bench {
    fn token(&self, org: &str, role: Role) -> String {
        support::token(&self.signer, org, role)
    }

    async fn graphql(&self, base: &str, token: &str, query: &str, variables: Value) -> Value {
        let body = wire::graphql(&self.client, base, Some(token), query, variables).await;
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }

    /// The organisations, the alarm adapter and one alarm delivered and registered to Larvik.
    async fn setup(&self, base: &str, db: &sea_orm::DatabaseConnection) {
        let admin = self.token(OPERATOR, Role::Admin);
        let create =
            "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { userErrors { code } } }";
        for input in [
            json!({ "kind": "SUPPLIER", "name": "Bench Alarms AS", "orgNumber": SUPPLIER }),
            json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": MUNICIPALITY,
                "municipalityNumber": "3805", "county": "Vestfold" }),
        ] {
            self.graphql(base, &admin, create, json!({ "input": input })).await;
        }
        let supplier = self.token(SUPPLIER, Role::Supplier);
        let key = SigningKey::from_bytes(&[9; 32]);
        let proof = key.sign(&velferd::devices::identifiers::key_registration_message(SUPPLIER));
        self.graphql(
            base,
            &supplier,
            "mutation($k: String!, $p: String!) { signingKeyRegister(input: { publicKey: $k, proof: $p }) { userErrors { code } } }",
            json!({ "k": STANDARD.encode(key.verifying_key().as_bytes()), "p": STANDARD.encode(proof.to_bytes()) }),
        )
        .await;
        let bytes = guests::component("velferd_alarm_scaip");
        let operations = json!({
            "query": "mutation($input: AdapterUploadInput!) { adapterUpload(input: $input) { adapter { id } userErrors { code message } } }",
            "variables": { "input": { "product": "bench-alarm", "component": null, "signature": STANDARD.encode(key.sign(&bytes).to_bytes()) } },
        });
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.input.component"] }).to_string())
            .part("0", reqwest::multipart::Part::bytes(bytes).file_name("a.wasm"));
        let body = wire::body(self.client.post(format!("{base}/graphql")).bearer_auth(&supplier).multipart(form)).await;
        let adapter = body["data"]["adapterUpload"]["adapter"]["id"].as_str().unwrap_or_else(|| panic!("{body}"));
        self.graphql(
            base,
            &admin,
            "mutation($id: ID!) { adapterActivate(input: { adapterId: $id }) { userErrors { code } } }",
            json!({ "id": adapter }),
        )
        .await;
        let call_off = support::confirmed_call_off(db).await;
        self.graphql(
            base,
            &supplier,
            "mutation($input: DeviceDeliverInput!) { deviceDeliver(input: $input) { userErrors { code message } } }",
            json!({ "input": { "callOffId": velferd::ids::global_id(velferd::ids::NodeType::CallOff, call_off),
                "product": "bench-alarm", "serials": [SERIAL] } }),
        )
        .await;
        self.graphql(
            base,
            &self.token(MUNICIPALITY, Role::CaseWorker),
            "mutation($s: String!) { deviceRegister(input: { product: \"bench-alarm\", serial: $s }) { userErrors { code } } }",
            json!({ "s": SERIAL }),
        )
        .await;
    }

    async fn raise(&self, base: &str, token: &str, reference: &str) {
        let body = format!(
            "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>{SERIAL}</cid><dty>005</dty><mty>ME</mty><stc>001</stc><lco>010</lco></mrq>"
        );
        let response = wire::ingest(&self.client, base, token, "bench-alarm", "application/xml", body).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscriber(addr: std::net::SocketAddr, token: &str) -> Socket {
    let mut request = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    next_text(&mut ws).await;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription { deviceEventReceived { sequence event { supplierEventId } } }" } });
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    ws
}

async fn next_text(ws: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("in time").unwrap().unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Waits on `ws` for the delivery of `reference`; `false` if another came first.
async fn heard(ws: &mut Socket, reference: &str) -> bool {
    let message = next_text(ws).await;
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["deviceEventReceived"]["event"]["supplierEventId"] == reference
}

fn report(label: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{label:<58} {:>5} alarms  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        latencies.len(),
        at(0.5),
        at(0.95),
        at(0.99),
        at(1.0)
    );
}

/// Raise → heard, one alarm at a time: ingested on `ingest`, heard on `listen`.
async fn latency(label: &str, bench: &Bench, ingest: &str, listen: std::net::SocketAddr) {
    let integration = bench.token(SUPPLIER, Role::Integration);
    let mut ws = subscriber(listen, &bench.token(MUNICIPALITY, Role::CaseWorker)).await;
    // Until the subscription runs, warm-up alarms go unheard.
    let mut warm = 0;
    loop {
        let reference = format!("W-{label}-{warm}");
        bench.raise(ingest, &integration, &reference).await;
        if let Ok(message) = tokio::time::timeout(Duration::from_secs(2), next_text(&mut ws)).await
            && message["payload"]["data"]["deviceEventReceived"]["event"]["supplierEventId"] == reference.as_str()
        {
            break;
        }
        warm += 1;
        assert!(warm < 30, "the subscription never started");
    }
    let events: usize = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let mut latencies = Vec::with_capacity(events);
    for n in 0..events {
        let reference = format!("L-{label}-{n}");
        let started = Instant::now();
        bench.raise(ingest, &integration, &reference).await;
        assert!(heard(&mut ws, &reference).await, "deliveries came in order");
        latencies.push(started.elapsed());
    }
    report(label, latencies);
}

/// What each measured transaction writes: one published item, or (the baseline) one row of a
/// table of its own, so that what the counter's lock costs is the difference.
#[derive(Clone, Copy)]
enum Write {
    Publish,
    PlainInsert,
}

/// Transactions a second that each write one item, from `concurrency` tasks.
async fn rate(label: &str, server: &velferd::http::RunningServer, concurrency: usize, write: Write) {
    let total = 2000;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (db, live) = (server.db.clone(), server.live.clone());
        tasks.push(tokio::spawn(async move {
            for n in (t..total).step_by(concurrency) {
                let txn = db.write().begin().await.unwrap();
                match write {
                    Write::Publish => {
                        live.publish(&txn, Topic::DeviceEvent, Scope::default(), &json!({ "n": n })).await.unwrap();
                    }
                    Write::PlainInsert => {
                        let insert = format!("INSERT INTO bench_baseline (payload) VALUES ('{{\"n\": {n}}}')");
                        txn.execute_unprepared(&insert).await.unwrap();
                    }
                }
                txn.commit().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let what = match write {
        Write::Publish => "publishing",
        Write::PlainInsert => "plain inserting",
    };
    println!("{label:<58} {rate:>8.0} {what} transactions/s ({concurrency} concurrent)");
}

/// Publishing and then plain-insert rates, one task and eight, on `server`; `baseline_table`
/// creates the baseline's table in the backend's dialect.
async fn rates(label: &str, server: &velferd::http::RunningServer, baseline_table: &str) {
    server.db.write().execute_unprepared(baseline_table).await.unwrap();
    for write in [Write::Publish, Write::PlainInsert] {
        for concurrency in [1, 8] {
            rate(label, server, concurrency, write).await;
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // reqwest's rustls has no crypto provider of its own (ring is installed, never aws-lc).
    velferd::outbound::install_crypto_provider();
    let bench = Bench {
        client: reqwest::Client::new(),
        signer: TokenSigner::new(&settings("sqlite://unused.db?mode=rwc").jwt).unwrap(),
    };

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let server = velferd::start(&settings(&url), false, 2).await.unwrap();
    let base = format!("http://{}", server.addr);
    bench.setup(&base, server.db.write()).await;
    latency("SQLite, one instance", &bench, &base, server.addr).await;
    rates("SQLite", &server, "CREATE TABLE bench_baseline (id INTEGER PRIMARY KEY, payload TEXT)").await;
    server.stop().await;

    let Ok(admin_url) = std::env::var("VELFERD_BENCH_POSTGRES_URL") else {
        println!("PostgreSQL skipped: set VELFERD_BENCH_POSTGRES_URL");
        return;
    };
    let name = format!("velferd_live_bench_{}", std::process::id());
    let admin = sea_orm::Database::connect(&admin_url).await.unwrap();
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);
    let first = velferd::start(&settings(&url), false, 2).await.unwrap();
    let second = velferd::start(&settings(&url), false, 2).await.unwrap();
    let first_base = format!("http://{}", first.addr);
    bench.setup(&first_base, first.db.write()).await;
    latency("PostgreSQL, one instance", &bench, &first_base, first.addr).await;
    latency("PostgreSQL, ingest on one instance, subscriber on another", &bench, &first_base, second.addr).await;
    rates("PostgreSQL", &first, "CREATE TABLE bench_baseline (id BIGSERIAL PRIMARY KEY, payload TEXT)").await;
    first.stop().await;
    second.stop().await;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
}
