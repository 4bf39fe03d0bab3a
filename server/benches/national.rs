//! The one benchmark command of issue 16: every figure of docs/performance.md's table in one
//! run, each beside its target and the reference measured in the same run, written with the
//! machine, the date and the commit to `target/bench/national.md` (and printed).
//!
//!     cargo bench -p velferd --bench national
//!     VELFERD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     BENCH_POSTGRAPHILE=/tmp/pg4/node_modules/.bin/postgraphile cargo bench -p velferd --bench national
//!
//! Needs `wrk` (Debian's package) on `PATH`: it is the load generator for ingest, with
//! `benches/wrk/ingest.lua`, which checks every reply (`"accepted":1` and its two events stored,
//! or every message of a batch accepted). The servers are `velferd serve` processes of this
//! build, with production's defaults (EdDSA tokens, throttles and quotas, alert rules, outbox,
//! audit) except the per-product ingest rate, raised because the whole load is one product; each
//! ingest run has a graphql-ws subscriber to every device event and a webhook endpoint (an HTTPS
//! receiver in this process) for alerts, which one message in a hundred raises.
//!
//! Environment: `BENCH_SECTIONS` (default `ingest,durability,postgres,scaleout,queries,fanout`;
//! the PostgreSQL ones need `VELFERD_BENCH_POSTGRES_URL`), `BENCH_SECONDS` (20) per timed run,
//! `BENCH_FILL_EVENTS` (1,000,000) stored through batch ingest before the second single-message
//! run (`BENCH_POSTGRES_FILL_EVENTS` for PostgreSQL, the same by default), `BENCH_CONNECTIONS`
//! (64) for single messages; for before/after comparisons `BENCH_VELFERD_BIN` (another build of
//! the server) and `BENCH_VELFERD_ENV` (settings added to the ingest servers', e.g.
//! `VELFERD_SQLITE_MMAP_MIB=0`). The query and fan-out sections are `benches/queries.rs` and
//! `benches/fanout.rs`, which also run on their own.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use velferd::auth::{Role, TokenSigner};

#[allow(dead_code, reason = "the fan-out benchmark's own entry point is unused here")]
#[path = "fanout.rs"]
mod fanout;
#[allow(dead_code, reason = "the ingest benchmark's own entry point is unused here")]
#[path = "ingest.rs"]
mod ingest;
#[allow(dead_code, reason = "the query benchmark's own entry point is unused here")]
#[path = "queries.rs"]
mod queries;
#[allow(dead_code, reason = "the e2e tests' receiver has more than the benchmark uses")]
#[path = "../../tests/e2e/receiver.rs"]
mod receiver;

use ingest::support::{MUNICIPALITY, OPERATOR, SUPPLIER};
use queries::{Process, velferd_command};

/// One line of the table: what, measured, target, reference (and the ratio to it).
type Row = [String; 4];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn main() {
    // The query section's reference servers are this executable started again.
    if let Ok(role) = std::env::var(queries::ROLE) {
        return queries::serve_reference(&role);
    }
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(national());
}

async fn national() {
    let sections =
        std::env::var("BENCH_SECTIONS").unwrap_or_else(|_| "ingest,durability,postgres,scaleout,queries,fanout".into());
    let wanted = |name: &str| sections.split(',').any(|s| s.trim() == name);
    let postgres = std::env::var("VELFERD_BENCH_POSTGRES_URL").ok();
    let fill = env_number("BENCH_FILL_EVENTS", 1_000_000);
    let mut table = Table::new();
    guests_ready();

    if wanted("ingest") {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("national.db").display());
        let rows = ingest_section("SQLite, synchronous=NORMAL", &url, &[], fill, None).await;
        table.section("Ingest, SQLite (`synchronous=NORMAL`: survives a process kill, not a power loss)", rows);
    }
    if wanted("durability") {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("national.db").display());
        let rows =
            ingest_section("SQLite, synchronous=FULL", &url, &[("VELFERD_SQLITE_SYNCHRONOUS", "full")], 0, None).await;
        table.section("Ingest, SQLite (`synchronous=FULL`: survives a power loss too)", rows);
    }
    if let Some(admin_url) = &postgres {
        if wanted("postgres") {
            let database = PgDatabase::create(admin_url, "ingest").await;
            let rows = ingest_section(
                "PostgreSQL",
                &database.url,
                &[],
                env_number("BENCH_POSTGRES_FILL_EVENTS", fill),
                Some((&database.admin, database.name.as_str())),
            )
            .await;
            table.section("Ingest, PostgreSQL (`synchronous_commit=on`)", rows);
            database.drop().await;
        }
        if wanted("scaleout") {
            let database = PgDatabase::create(admin_url, "scaleout").await;
            table.section("Scale-out: instances on one PostgreSQL, on the same 2 cores", scale_out(&database).await);
            database.drop().await;
        }
    }
    if wanted("queries") {
        table.section("Queries", query_rows(&queries::bench().await));
    }
    if wanted("fanout") {
        table.section("Live fan-out (graphql-ws consoles)", fanout::bench().await);
    }
    table.finish();
}

// ---------------------------------------------------------------------------------------------
// Ingest.

/// A seeded `velferd serve` with its sender's token, a subscriber and a webhook endpoint.
struct IngestServer {
    process: Process,
    bench: ingest::Bench,
    /// The supplier's integration token: what a supplier's platform sends with.
    token: String,
    db: DatabaseConnection,
    receiver: receiver::Receiver,
    subscriber: tokio::task::JoinHandle<(u64, u64)>,
    /// When `velferd serve` was started, and when it said where it listens and answered `/readyz`.
    cold_start: (Duration, Duration),
}

fn signer() -> TokenSigner {
    let (public_key, private_key) = (ingest::key_file("public"), ingest::key_file("private"));
    let settings = velferd::config::Settings::from_pairs([
        ("VELFERD_DATABASE_URL", "sqlite://unused.db"),
        ("VELFERD_JWT_ALGORITHM", "EdDSA"),
        ("VELFERD_JWT_PUBLIC_KEY_FILE", public_key.as_str()),
        ("VELFERD_JWT_PRIVATE_KEY_FILE", private_key.as_str()),
        ("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR),
    ])
    .unwrap();
    TokenSigner::new(&settings.jwt).unwrap()
}

/// `velferd serve` of this build on `url`, as production runs it but for the per-product
/// ingest rate; `extra` adds settings.
fn serve(url: &str, extra: &[(&str, &str)], receiver_ca: &std::path::Path) -> Process {
    // `BENCH_VELFERD_BIN` runs another build, as the query and fan-out benches allow.
    let mut command = velferd_command(&queries::velferd_binary(), url);
    command
        .env("VELFERD_JWT_ALGORITHM", "EdDSA")
        .env("VELFERD_JWT_PUBLIC_KEY_FILE", ingest::key_file("public"))
        .env("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR)
        // The whole load is one supplier's product; its default rate (1,000 messages a second)
        // would answer 429 and measure the rate limit.
        .env("VELFERD_INGEST_RATE", "10000000")
        .env("VELFERD_INGEST_BURST", "10000000")
        // The webhook receiver is this process, on 127.0.0.1, with a certificate of its own.
        .env("VELFERD_OUTBOUND_ALLOW_LOOPBACK", "true")
        .env("VELFERD_OUTBOUND_TRUST_ROOTS_FILE", receiver_ca)
        .arg("serve");
    for (name, value) in extra {
        command.env(name, value);
    }
    // Settings to compare, e.g. `BENCH_VELFERD_ENV="VELFERD_SQLITE_MMAP_MIB=0"` (space-separated).
    for pair in std::env::var("BENCH_VELFERD_ENV").unwrap_or_default().split_whitespace() {
        let (name, value) = pair.split_once('=').expect("BENCH_VELFERD_ENV holds NAME=VALUE pairs");
        command.env(name, value);
    }
    Process::start(command, "listening on ")
}

/// Waits until `GET /readyz` answers 200.
async fn ready(client: &reqwest::Client, addr: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("http://{addr}/readyz")).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(Instant::now() < until, "{addr} was not ready within a minute");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl IngestServer {
    async fn start(url: &str, extra: &[(&str, &str)]) -> IngestServer {
        let receiver = receiver::Receiver::start().await;
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let started = Instant::now();
        let process = serve(url, extra, receiver.ca_file());
        let listening = started.elapsed();
        ready(&client, &process.addr).await;
        let cold_start = (listening, started.elapsed());
        let db = sea_orm::Database::connect(url).await.unwrap();
        let bench = ingest::Bench { base: format!("http://{}", process.addr), client, signer: signer() };
        bench.setup(&db).await;
        let admin = bench.token(MUNICIPALITY, Role::MunicipalityAdmin);
        let created = bench
            .graphql(
                &admin,
                "mutation($url: String!) { webhookEndpointCreate(input: { url: $url, eventTypes: [ALERT_RAISED, ALERT_CHANGED] }) { userErrors { code message } } }",
                json!({ "url": receiver.url("/hooks") }),
            )
            .await;
        assert_eq!(created["webhookEndpointCreate"]["userErrors"], json!([]), "{created}");
        let viewer = bench.token(MUNICIPALITY, Role::CaseWorker);
        let subscriber = tokio::spawn(subscribe(process.addr.clone(), viewer));
        let token = bench.token(SUPPLIER, Role::Integration);
        IngestServer { process, bench, token, db, receiver, subscriber, cold_start }
    }
}

/// A console's subscription to every device event of its municipality. It counts the events it
/// hears and the times the server dropped it for falling behind (it then resumes after the last
/// sequence it was told, as a console does); any other error fails the run.
async fn subscribe(addr: String, token: String) -> (u64, u64) {
    let (mut heard, mut resumed, mut after) = (0, 0, None::<String>);
    loop {
        let mut request = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else { return (heard, resumed) };
        let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
        ws.send(Message::text(init.to_string())).await.unwrap();
        let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription($after: String) { deviceEventReceived(afterSequence: $after) { sequence event { supplierEventId } } }",
            "variables": { "after": after } } });
        ws.send(Message::text(subscribe.to_string())).await.unwrap();
        let mut dropped = false;
        while let Some(Ok(frame)) = ws.next().await {
            let Message::Text(text) = frame else { continue };
            let message: Value = serde_json::from_str(&text).unwrap();
            match message["type"].as_str() {
                Some("next") if message["payload"].get("errors").is_none() => heard += 1,
                Some("next") if message["payload"]["errors"][0]["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW" => {
                    after = message["payload"]["errors"][0]["extensions"]["lastSequence"].as_str().map(String::from);
                    (resumed, dropped) = (resumed + 1, true);
                    break;
                }
                Some("connection_ack" | "ping" | "pong" | "complete") => {}
                _ => panic!("the subscriber was told {message}"),
            }
        }
        if !dropped {
            return (heard, resumed);
        }
    }
}

/// What one `wrk` run measured.
struct Load {
    /// Replies checked as accepted, and the rest.
    accepted: u64,
    failed: u64,
    messages_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Server CPU per message, and the database's (PostgreSQL's backends) per message.
    server_us: f64,
    database_us: Option<f64>,
    first_failure: Option<String>,
}

/// Runs `wrk` with the ingest script against every server in `addrs` at once (one `wrk` each,
/// `connections` spread over them) for `seconds`; `batch` 0 sends single messages.
async fn wrk(
    addrs: &[&str],
    pids: &[u32],
    token: &str,
    batch: usize,
    connections: u64,
    seconds: u64,
    database: Option<(&DatabaseConnection, &str)>,
) -> Load {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/wrk/ingest.lua");
    let prefix = format!("n{}-{}", std::process::id(), NEXT_PREFIX.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let watch_before = cpu(pids, database).await;
    let mut runs = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let path = if batch == 0 { "/ingest/bench-dispenser" } else { "/ingest/bench-dispenser/batch" };
        let per = (connections / addrs.len() as u64).max(1);
        let threads = if addrs.len() == 1 { 2 } else { 1 };
        let mut command = Command::new("wrk");
        command
            .args(["-t", &threads.to_string(), "-c", &per.to_string(), "-d", &format!("{seconds}s"), "--latency"])
            .args(["-s", script, &format!("http://{addr}{path}")])
            .env("BENCH_TOKEN", token)
            .env("BENCH_PREFIX", format!("{prefix}-{i}"))
            .env("BENCH_BATCH", batch.to_string());
        runs.push(tokio::task::spawn_blocking(move || command.output()));
    }
    let started = Instant::now();
    let outputs = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed().as_secs_f64();
    let watch_after = cpu(pids, database).await;
    let mut load = Load {
        accepted: 0,
        failed: 0,
        messages_per_second: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        server_us: 0.0,
        database_us: None,
        first_failure: None,
    };
    for output in outputs {
        let output = output.unwrap().expect("wrk runs (apt-get install wrk)");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
        let (mut ok, mut bad) = (None, None);
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("checked replies: ") {
                let mut numbers = rest.split(' ').filter_map(|w| w.parse::<u64>().ok());
                (ok, bad) = (numbers.next(), numbers.next());
            } else if let Some(rest) = line.strip_prefix("accepted messages/s: ") {
                let numbers: Vec<f64> = rest.split_whitespace().filter_map(|w| w.parse().ok()).collect();
                load.messages_per_second += numbers[0];
                // Percentiles of several servers: the worst of them.
                load.p50_ms = load.p50_ms.max(numbers[1]);
                load.p99_ms = load.p99_ms.max(numbers[2]);
            } else if let Some(rest) = line.strip_prefix("first failure: ") {
                load.first_failure.get_or_insert_with(|| rest.to_string());
            }
        }
        load.accepted += ok.expect("the script's summary");
        load.failed += bad.expect("the script's summary");
    }
    let messages = (load.accepted * batch.max(1) as u64).max(1) as f64;
    load.server_us = (watch_after.0 - watch_before.0) / messages * 1e6;
    load.database_us = database.map(|_| (watch_after.1 - watch_before.1) / messages * 1e6);
    println!(
        "  wrk {} × {connections} connections, {}: {:.0} messages/s, p50 {:.2} ms, p99 {:.2} ms, server {:.0} µs/message{}, {} replies checked, {} failed{} ({elapsed:.1} s)",
        addrs.len(),
        if batch == 0 { "single messages".to_string() } else { format!("batches of {batch}") },
        load.messages_per_second,
        load.p50_ms,
        load.p99_ms,
        load.server_us,
        load.database_us.map_or(String::new(), |d| format!(" + database {d:.0} µs")),
        load.accepted,
        load.failed,
        load.first_failure.as_ref().map_or(String::new(), |f| format!(" (first: {f})")),
    );
    load
}

static NEXT_PREFIX: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// CPU seconds of the processes `pids`, and of the database's backends serving `database`.
async fn cpu(pids: &[u32], database: Option<(&DatabaseConnection, &str)>) -> (f64, f64) {
    let server = pids.iter().map(|pid| queries::cpu_seconds(*pid)).sum();
    let mut db = 0.0;
    if let Some((admin, name)) = database {
        for pid in queries::backends(admin, name).await {
            db += queries::cpu_seconds(pid);
        }
    }
    (server, db)
}

/// Resident memory of `pid` now (`VmRSS`) and at its peak (`VmHWM`), in MiB.
/// Waits (at most five minutes) until the server uses under a tenth of a core over a second:
/// what it still does after a load ends; answers how long that took.
async fn settle(pid: u32) -> Duration {
    let started = Instant::now();
    loop {
        let before = queries::cpu_seconds(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        if queries::cpu_seconds(pid) - before < 0.1 || started.elapsed() > Duration::from_secs(300) {
            return started.elapsed();
        }
    }
}

fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index(0).unwrap()
}

/// The largest tables and indexes with their sizes, as text for the table.
async fn sizes(db: &DatabaseConnection) -> String {
    let postgres = db.get_database_backend() == sea_orm::DbBackend::Postgres;
    let sql = if postgres {
        "SELECT relname::text, pg_total_relation_size(relid)::bigint FROM pg_statio_user_tables ORDER BY 2 DESC LIMIT 6"
    } else {
        "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 6"
    };
    let Ok(rows) = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await else {
        return "sizes not available".into();
    };
    let list: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let name: String = row.try_get_by_index(0).ok()?;
            let bytes: i64 = row.try_get_by_index(1).ok()?;
            Some(format!("{name} {:.0} MiB", bytes as f64 / 1048576.0))
        })
        .collect();
    let whole = if postgres {
        count(db, "SELECT pg_database_size(current_database())::bigint").await
    } else {
        count(db, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").await
    };
    format!("{:.0} MiB in all (with indexes): {}", whole as f64 / 1048576.0, list.join(", "))
}

fn number(n: f64) -> String {
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0.0 { format!("-{out}") } else { out }
}

fn row(
    what: impl Into<String>,
    measured: impl Into<String>,
    target: impl Into<String>,
    reference: impl Into<String>,
) -> Row {
    [what.into(), measured.into(), target.into(), reference.into()]
}

fn load_text(load: &Load) -> String {
    let failed =
        if load.failed == 0 { String::new() } else { format!(", {} replies FAILED", number(load.failed as f64)) };
    format!(
        "{} msg/s (p50 {:.1} ms, p99 {:.1} ms; server {} µs/msg{}{failed})",
        number(load.messages_per_second),
        load.p50_ms,
        load.p99_ms,
        number(load.server_us),
        load.database_us.map_or(String::new(), |d| format!(" + database {} µs", number(d))),
    )
}

/// Ingest on one back end: single messages on an empty database, batches, the database filled
/// to `fill` events through batch ingest, single messages again; cold start and memory.
async fn ingest_section(
    label: &str,
    url: &str,
    extra: &[(&str, &str)],
    fill: u64,
    database: Option<(&DatabaseConnection, &str)>,
) -> Vec<Row> {
    println!("{label}:");
    let seconds = env_number("BENCH_SECONDS", 20);
    let connections = env_number("BENCH_CONNECTIONS", 64);
    let server = IngestServer::start(url, extra).await;
    let pid = server.process.pid();
    let addr = server.process.addr.as_str();
    let (idle_rss, _) = memory(pid);
    let (mut accepted_messages, mut runs) = (0, 0);
    let mut run = async |batch: usize, connections: u64, seconds: u64| {
        let load = wrk(&[addr], &[pid], &server.token, batch, connections, seconds, database).await;
        accepted_messages += load.accepted * batch.max(1) as u64;
        runs += 1;
        load
    };
    run(0, connections, 3).await; // warm-up: connections, the compiled adapter, the caches
    settle(pid).await;
    let empty = run(0, connections, seconds).await;
    let batches = run(100, 8, seconds).await;
    let mut stored = count(&server.db, "SELECT COUNT(*) FROM device_event").await as u64;
    let filled_at = Instant::now();
    while stored < fill {
        let chunk = run(100, 8, 30).await;
        assert!(chunk.accepted > 0, "the fill stalled: {:?}", chunk.first_failure);
        stored = count(&server.db, "SELECT COUNT(*) FROM device_event").await as u64;
        println!("  {} events stored", number(stored as f64));
    }
    let filled_in = filled_at.elapsed();
    // The fill leaves work behind (the console's backlog of events, webhook deliveries): measure
    // what a message costs on the filled database, not that backlog.
    let settled_in = settle(pid).await;
    println!("  settled {:.1} s after the fill", settled_in.as_secs_f64());
    let full = if fill > 0 { Some(run(0, connections, seconds).await) } else { None };
    let (_, peak_rss) = memory(pid);
    let loaded_rss = memory(pid).0;

    // Every acknowledged message is stored with its two events; a request `wrk` cut off when its
    // time was up may be stored without its answer having been read (at most one a connection).
    let stored = count(&server.db, "SELECT COUNT(*) FROM device_event").await as u64;
    let cut_off = runs * connections.max(8) * 100 * 2;
    assert!(
        stored >= accepted_messages * 2 && stored - accepted_messages * 2 <= cut_off,
        "{stored} events stored for {accepted_messages} messages acknowledged"
    );
    let deliveries = server.receiver.requests().len();
    let alerts = count(&server.db, "SELECT COUNT(*) FROM alert").await;
    let table_sizes = sizes(&server.db).await;
    let IngestServer { process, bench, token: _, db, receiver, subscriber, cold_start } = server;
    drop(process);
    let (heard, resumed) = subscriber.await.unwrap_or((0, 0));
    // A restart on the filled database: what an operator waits for after an upgrade.
    let restarted_at = Instant::now();
    let again = serve(url, extra, receiver.ca_file());
    ready(&bench.client, &again.addr).await;
    let restart = restarted_at.elapsed();
    drop(again);
    db.close().await.ok();

    let mut rows = vec![row(
        format!("single messages, empty database, {connections} connections"),
        load_text(&empty),
        if database.is_some() { "≥ 5,000 msg/s" } else { "≥ 10,000 msg/s, p99 ≤ 50 ms" },
        "",
    )];
    if let Some(full) = &full {
        rows.push(row(
            format!("single messages after {} stored events", number(fill as f64)),
            load_text(full),
            "≥ 90 % of the empty rate",
            format!("{:.0} % of the empty rate", full.messages_per_second / empty.messages_per_second * 100.0),
        ));
    }
    rows.push(row(
        "batches of 100, 8 connections",
        load_text(&batches),
        if database.is_some() { "" } else { "≥ 30,000 msg/s" },
        "",
    ));
    if fill > 0 {
        rows.push(row(
            format!("filling to {} events through batch ingest", number(fill as f64)),
            format!(
                "{:.0} s, then {:.0} s until the server was idle (the console's backlog); {table_sizes}",
                filled_in.as_secs_f64(),
                settled_in.as_secs_f64()
            ),
            "",
            "",
        ));
    }
    let per_message = empty.server_us + empty.database_us.unwrap_or(0.0);
    rows.push(row(
        "devices per core at one heartbeat a minute (single messages, empty rate's CPU)",
        number(60.0 * 1e6 / per_message),
        "",
        format!(
            "{} µs of CPU a message{}",
            number(per_message),
            if database.is_some() { " (server + PostgreSQL)" } else { "" }
        ),
    ));
    rows.push(row(
        "cold start: process start → listening → `/readyz` 200, empty database (migrations run)",
        format!("{:.0} ms → {:.0} ms", cold_start.0.as_secs_f64() * 1e3, cold_start.1.as_secs_f64() * 1e3),
        "",
        "",
    ));
    if fill > 0 {
        rows.push(row(
            "restart to `/readyz` 200 on the filled database",
            format!("{:.0} ms", restart.as_secs_f64() * 1e3),
            "",
            "",
        ));
    }
    rows.push(row(
        "server memory (RSS): idle after start / after the runs / peak",
        format!("{idle_rss:.0} MiB / {loaded_rss:.0} MiB / {peak_rss:.0} MiB"),
        "",
        "",
    ));
    rows.push(row(
        "checked: events stored ≥ 2 × messages acknowledged; events the subscriber heard (times it resumed); alerts; webhook deliveries",
        format!(
            "{} ≥ 2 × {} (the rest: requests cut off at the end of a run); {} ({resumed}); {alerts}; {deliveries}",
            number(stored as f64),
            number(accepted_messages as f64),
            number(heard as f64)
        ),
        "",
        "",
    ));
    rows
}

// ---------------------------------------------------------------------------------------------
// Scale-out.

/// A database of this run on the benchmark's PostgreSQL, dropped at the end.
struct PgDatabase {
    admin: DatabaseConnection,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(admin_url: &str, what: &str) -> PgDatabase {
        let name = format!("velferd_national_{what}_{}", std::process::id());
        let admin = sea_orm::Database::connect(admin_url).await.unwrap();
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);
        PgDatabase { admin, name, url }
    }

    async fn drop(self) {
        self.admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await.unwrap();
    }
}

/// One, two and three instances on one PostgreSQL, a `wrk` each, for the same time.
async fn scale_out(database: &PgDatabase) -> Vec<Row> {
    println!("Scale-out:");
    let seconds = env_number("BENCH_SECONDS", 20);
    let connections = env_number("BENCH_CONNECTIONS", 64);
    let first = IngestServer::start(&database.url, &[]).await;
    let mut more = Vec::new();
    let mut rows = Vec::new();
    let mut one = None;
    for instances in 1..=3 {
        while more.len() + 1 < instances {
            let process = serve(&database.url, &[], first.receiver.ca_file());
            ready(&first.bench.client, &process.addr).await;
            more.push(process);
        }
        let mut addrs = vec![first.process.addr.as_str()];
        let mut pids = vec![first.process.pid()];
        addrs.extend(more.iter().map(|p| p.addr.as_str()));
        pids.extend(more.iter().map(|p| p.pid()));
        let db = Some((&database.admin, database.name.as_str()));
        wrk(&addrs, &pids, &first.token, 0, connections, 3, db).await;
        let load = wrk(&addrs, &pids, &first.token, 0, connections, seconds, db).await;
        let rate = load.messages_per_second;
        let base = *one.get_or_insert(rate);
        rows.push(row(
            format!(
                "{instances} instance{}, single messages, {connections} connections in all",
                if instances > 1 { "s" } else { "" }
            ),
            load_text(&load),
            "",
            format!("{:.2}× one instance's rate", rate / base),
        ));
    }
    let stored = count(&first.db, "SELECT COUNT(*) FROM device_event").await;
    rows.push(row("checked: events stored", number(stored as f64), "", "every acknowledged message's two events"));
    rows
}

// ---------------------------------------------------------------------------------------------
// Queries.

fn query_rows(results: &queries::Results) -> Vec<Row> {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let overview = &results.overview;
    let db =
        |f: &queries::Figures| f.database_cpu.map_or(String::new(), |d| format!(" + {} µs database", number(us(d))));
    let mut rows = vec![row(
        format!("overview (20 procurements, {} kB): server CPU per request", overview.reply_bytes / 1000),
        format!("{} µs{}", number(us(overview.server_cpu)), db(overview)),
        "≤ 2,000 µs",
        results.postgraphile.as_ref().map_or("PostGraphile not run (BENCH_POSTGRAPHILE)".into(), |p| {
            format!("PostGraphile 4: {} µs{}", number(us(p.server_cpu)), db(p))
        }),
    )];
    rows.push(row(
        "overview: requests/s",
        format!(
            "{} (p50 {:.0} ms, p99 {:.0} ms)",
            number(overview.rate),
            overview.p50.as_secs_f64() * 1e3,
            overview.p99.as_secs_f64() * 1e3
        ),
        "≥ 2× PostGraphile 4",
        results
            .postgraphile
            .as_ref()
            .map_or(String::new(), |p| format!("PostGraphile 4: {} → {:.2}×", number(p.rate), overview.rate / p.rate)),
    ));
    let (trivial, ceiling, stock) = (&results.trivial, &results.ceiling, &results.stock);
    rows.push(row(
        "`{ __typename }` anonymous: requests/s",
        number(trivial.rate),
        "≥ 0.90 × the ceiling",
        format!(
            "ceiling {} → {:.2}; stock async-graphql {} → {:.2}",
            number(ceiling.rate),
            trivial.rate / ceiling.rate,
            number(stock.rate),
            stock.rate / ceiling.rate
        ),
    ));
    rows.push(row(
        "`{ __typename }`: server CPU per request",
        format!("{:.1} µs", us(trivial.server_cpu)),
        "",
        format!("ceiling {:.1} µs, stock {:.1} µs", us(ceiling.server_cpu), us(stock.server_cpu)),
    ));
    rows.push(row("query data", if results.postgres { "PostgreSQL" } else { "SQLite" }, "", "202 procurements"));
    rows
}

// ---------------------------------------------------------------------------------------------
// The table.

struct Table {
    header: Vec<String>,
    sections: Vec<(String, Vec<Row>)>,
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl Table {
    fn new() -> Table {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("?")
            .trim()
            .to_string();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let commit = output("git", &["rev-parse", "--short", "HEAD"]);
        let dirty = if output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
            ""
        } else {
            " (with uncommitted changes)"
        };
        let header = vec![
            format!("date: {} UTC", chrono::Utc::now().format("%Y-%m-%d %H:%M")),
            format!("commit: {commit}{dirty}"),
            format!("machine: {cores} × {cpu}; load average before: {}", loadavg()),
            format!("PostgreSQL: {}", output("psql", &["--version"])),
            format!("wrk: {}", output("sh", &["-c", "wrk -v 2>&1 | head -1"])),
        ];
        for line in &header {
            println!("{line}");
        }
        Table { header, sections: Vec::new() }
    }

    fn section(&mut self, title: &str, rows: Vec<Row>) {
        println!("\n{title}");
        for [what, measured, target, reference] in &rows {
            println!("  {what}: {measured} | target {target} | {reference}");
        }
        self.sections.push((title.to_string(), rows));
        // Written after every section: a later section that fails keeps the earlier figures.
        self.write(" (running)");
    }

    fn finish(mut self) {
        self.header.push(format!("load average after: {}", loadavg()));
        self.write("");
    }

    fn write(&self, status: &str) {
        let mut text = format!("# Velferd national-scale benchmark{status}\n\n");
        for line in &self.header {
            text.push_str(&format!("- {line}\n"));
        }
        for (title, rows) in &self.sections {
            text.push_str(&format!(
                "\n## {title}\n\n| figure | measured | target | reference |\n| --- | --- | --- | --- |\n"
            ));
            for [what, measured, target, reference] in rows {
                text.push_str(&format!("| {what} | {measured} | {target} | {reference} |\n"));
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("national.md");
        std::fs::write(&file, &text).unwrap();
        if status.is_empty() {
            println!("\nthe table: {}", file.display());
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" ")
}

/// The guest components the ingest setup uploads, built before any timing starts.
fn guests_ready() {
    ingest::guests::guests_dir();
}
