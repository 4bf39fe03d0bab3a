//! Live fan-out at scale: `velferd serve` as a child process with N graphql-ws subscribers —
//! response-centre consoles listening for critical device events — and alarms ingested over
//! HTTP. For each step of N it measures the server's memory before and with N idle
//! subscribers, the time from each alarm's ingest request until EACH subscriber has it (alarms
//! a few a second, then a burst), and what subscribers that stop reading their socket do to
//! ingest, to the others and to the server's memory.
//!
//!     cargo bench -p velferd --bench fanout
//!     BENCH_SUBSCRIBERS=1000,10000 VELFERD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench -p velferd --bench fanout
//!
//! Settings (environment): `BENCH_SUBSCRIBERS` (steps, default `1000,4000,10000`),
//! `BENCH_ALARMS` (alarms at a steady rate, default 40), `BENCH_ALARM_RATE` (a second, default
//! 4), `BENCH_BURST` (alarms sent at once, default 20), `BENCH_STALLED` (subscribers that fall
//! behind, default 4), `BENCH_FLOOD` (events for them to fall behind by, default 2000), `BENCH_CONSOLE`
//! (`alerts`: consoles subscribe to `alertChanged`, each delivery audited, instead of events). `VELFERD_BENCH_POSTGRES_URL` runs on PostgreSQL, in a database of its own created and
//! dropped per step; SQLite in a temporary directory otherwise. `BENCH_VELFERD_BIN` runs another
//! build of the server.
//!
//! Each step starts a fresh server (`velferd serve --demo --no-demo-feed`: the demo data, the
//! reference SCAIP alarm adapter, Larvik's and Bergen's alarm units) with production defaults.
//! Subscribers are Larvik case workers, each its own token subject (the server caps sockets per
//! subject), subscribed to `deviceEventReceived(filter: { minSeverity: CRITICAL })` as the schema
//! says a response centre listens. Every delivery is parsed and checked (a `next` with no
//! errors, the alarm's supplier event id, kind and severity); deliveries that never come are
//! counted. The subscribers behind are Bergen case workers listening to all of Bergen's events,
//! with a 4 KiB receive buffer: half never read after subscribing, half read 5 messages a
//! second. The flood is Bergen heartbeats in batches of 200, an alarm after each batch, run
//! once before they subscribe (the control) and once with them.
//!
//! The process needs a file descriptor per subscriber, and so does the server: the bench raises
//! its soft `RLIMIT_NOFILE` to the hard limit (with `prlimit`, util-linux) before it starts the
//! server, which inherits it. Figures: docs/live.md, "Fan-out at scale".
//!
//! Another bench can include it with `#[path]` and call [`bench`]; it starts no copy of itself.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use velferd::auth::{Role, TokenSigner};

#[allow(
    dead_code,
    clippy::duplicate_mod,
    reason = "shared with the e2e tests, which use other parts; the national bench includes this file and the query bench, each with its copy"
)]
#[path = "../../tests/e2e/process.rs"]
mod process;
use process::{Process, velferd_command};

const SECRET: &str = "bench-secret-that-is-at-least-32-bytes-long";
const OPERATOR: &str = "991000003";
/// The demo's municipalities (server/demo/organizations.json) and an alarm unit of each.
const LARVIK: &str = "918082956";
const BERGEN: &str = "964338531";
const LARVIK_ALARM: &str = "SA-7734001";
const BERGEN_ALARM: &str = "SA-8801001";
/// The demo's reference SCAIP alarm product, of the supplier Dignio AS.
const PRODUCT: &str = "reference-alarm";
/// What a console subscribes to: critical events, with what it shows of them (nothing that
/// needs a database read per delivery).
const CONSOLE: &str = "subscription { deviceEventReceived(filter: { minSeverity: CRITICAL }) {
    sequence event { id kind severity supplierEventId occurredAt receivedAt detail } } }";
/// What a console subscribes to with `BENCH_CONSOLE=alerts`: its municipality's alerts as they
/// change, each delivery audited (the alert names a recipient) — one audit entry per console per
/// alarm. Every alarm joins the one open alert of Larvik's unit, so its event count names it.
const ALERT_CONSOLE: &str = "subscription { alertChanged { sequence alert { id eventCount status } } }";
/// What a stalled subscriber asked for: every event of its municipality, with its data.
const EVERYTHING: &str = "subscription { deviceEventReceived {
    sequence event { id kind severity supplierEventId occurredAt receivedAt detail data } } }";
/// Handshakes in flight while subscribers connect: the listen backlog is finite.
const CONNECTING_AT_ONCE: usize = 64;
/// How long a delivery may take before it counts as missing.
const PATIENCE: Duration = Duration::from_secs(60);

type Socket = WebSocketStream<TcpStream>;
type Row = [String; 4];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn steps() -> Vec<usize> {
    let steps = std::env::var("BENCH_SUBSCRIBERS").unwrap_or_else(|_| "1000,4000,10000".into());
    steps.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|dir| dir.count()).unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// `(soft, hard)` `RLIMIT_NOFILE` of this process.
fn nofile() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or_default();
    let mut numbers = line.split_whitespace().filter_map(|w| w.parse::<u64>().ok());
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (children inherit it);
/// answers the limit now in force. No libc binding here, so util-linux's `prlimit` does it.
fn raise_nofile() -> u64 {
    let (soft, hard) = nofile();
    if soft < hard {
        let pid = std::process::id().to_string();
        let status = Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={hard}:{hard}")]).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("fanout: could not raise RLIMIT_NOFILE from {soft} to {hard} (prlimit): {status:?}");
        }
    }
    nofile().0
}

// ---------------------------------------------------------------------------------------------
// The server, a child process.

/// `velferd serve --demo --no-demo-feed` on `database_url`; killed when dropped.
fn serve(database_url: &str) -> Process {
    let mut command = bench_command(database_url);
    command.args(["serve", "--demo", "--no-demo-feed"]);
    Process::start(command, "listening on ")
}

/// The server binary (`BENCH_VELFERD_BIN`, or this build's) with this bench's settings and none
/// of the caller's `VELFERD_*`.
fn bench_command(database_url: &str) -> Command {
    let binary = std::env::var("BENCH_VELFERD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_velferd").to_string());
    let mut command = velferd_command(&binary, database_url);
    command.env("VELFERD_JWT_SECRET", SECRET).env("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR);
    command
}

/// The demo supplier's integration token, minted by `velferd token` (the supplier has no
/// organisation number, so the CLI looks its id up by name).
fn integration_token(database_url: &str) -> String {
    let mut command = bench_command(database_url);
    command.args(["token", "--org-name", "Dignio AS", "--role", "integration"]);
    let output = command.output().unwrap();
    assert!(output.status.success(), "velferd token: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Where a step's server keeps its data; a PostgreSQL database is dropped with it.
enum Store {
    Sqlite(tempfile::TempDir),
    Postgres { admin: sea_orm::DatabaseConnection, name: String, url: String },
}

impl Store {
    async fn new(step: usize) -> Store {
        use sea_orm::ConnectionTrait;
        let Ok(admin_url) = std::env::var("VELFERD_BENCH_POSTGRES_URL") else {
            return Store::Sqlite(tempfile::tempdir().unwrap());
        };
        let name = format!("velferd_fanout_bench_{}_{step}", std::process::id());
        let admin = sea_orm::Database::connect(&admin_url).await.unwrap();
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);
        Store::Postgres { admin, name, url }
    }

    fn url(&self) -> String {
        match self {
            Store::Sqlite(dir) => format!("sqlite://{}?mode=rwc", dir.path().join("fanout.db").display()),
            Store::Postgres { url, .. } => url.clone(),
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "SQLite",
            Store::Postgres { .. } => "PostgreSQL",
        }
    }

    async fn drop_database(self) {
        use sea_orm::ConnectionTrait;
        if let Store::Postgres { admin, name, .. } = self {
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ingest.

fn scaip(reference: &str, unit: &str, message_type: &str, status: &str) -> String {
    format!(
        "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>{unit}</cid><dty>005</dty><mty>{message_type}</mty><stc>{status}</stc><lco>010</lco></mrq>"
    )
}

struct Ingest {
    client: reqwest::Client,
    base: String,
    token: String,
    run: String,
}

impl Ingest {
    fn reference(&self, alarm: usize) -> String {
        format!("FO-{}-{alarm}", self.run)
    }

    /// An alarm-button press on Larvik's unit, as alarm number `alarm`; answers how long the
    /// ingest request took, or `None` when the message was rejected (kept as a dead letter: on
    /// an overloaded machine the adapter can run past its deadline). Anything else fails.
    async fn alarm(&self, alarm: usize) -> Option<Duration> {
        let started = Instant::now();
        let response = self
            .client
            .post(format!("{}/ingest/{PRODUCT}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/xml")
            .body(scaip(&self.reference(alarm), LARVIK_ALARM, "ME", "001"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status == 202 && body["rejected"] == 1 {
            return None;
        }
        assert!(status == 200 && body["accepted"] == 1, "{status} {body}");
        Some(started.elapsed())
    }

    /// `count` heartbeats of Bergen's unit in one batch request; answers how many were
    /// rejected (see [`Ingest::alarm`]); none may be refused or retried.
    async fn heartbeats(&self, first: usize, count: usize) -> usize {
        let messages: Vec<Value> = (first..first + count)
            .map(|n| {
                let body = scaip(&format!("HB-{}-{n}", self.run), BERGEN_ALARM, "PI", "000");
                json!({ "contentType": "application/xml", "body": body })
            })
            .collect();
        let response = self
            .client
            .post(format!("{}/ingest/{PRODUCT}/batch", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "messages": messages }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        let rejected = body["rejected"].as_u64().unwrap_or(0) as usize;
        assert!(status == 200 && body["accepted"].as_u64() == Some((count - rejected) as u64), "{status} {body}");
        rejected
    }
}

// ---------------------------------------------------------------------------------------------
// Subscribers.

/// A graphql-transport-ws connection to `addr` signed in with `token`, acknowledged, running
/// `query`; with `receive_buffer`, its socket's receive buffer is that small.
async fn subscribe(addr: &str, token: &str, query: &str, receive_buffer: Option<u32>) -> Socket {
    let address: std::net::SocketAddr = addr.parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    let stream = socket.connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut request = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("acknowledged in time")
            .expect("the server closed the socket before connection_ack (answered after its 5 s init timeout?)")
            .unwrap();
        if let Message::Text(text) = frame {
            let ack: Value = serde_json::from_str(text.as_str()).unwrap();
            assert_eq!(ack["type"], "connection_ack", "{ack}");
            break;
        }
    }
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": query } });
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    ws
}

/// What all consoles of a step heard, and what went wrong.
#[derive(Default)]
struct Tally {
    /// Consoles that heard at least one alarm (the warm-up).
    live: AtomicUsize,
    /// Messages that were not a correct delivery of an alarm (counted, the first kept).
    wrong: AtomicUsize,
    first_wrong: Mutex<Option<String>>,
    /// Consoles whose socket ended (counted, the first reason kept).
    ended: AtomicUsize,
    first_end: Mutex<Option<String>>,
}

impl Tally {
    fn end(&self, why: String) {
        if self.ended.fetch_add(1, Ordering::SeqCst) == 0 {
            *self.first_end.lock().unwrap() = Some(why);
        }
    }
}

/// One console: when it heard each alarm.
struct Console {
    heard: Mutex<Vec<(usize, Instant)>>,
}

/// The alarm number a message delivers, if it is a correct delivery of an alarm of `run`.
fn delivered(text: &str, prefix: &str) -> Option<usize> {
    let message: Value = serde_json::from_str(text).ok()?;
    if message["type"] != "next" || message["id"] != "1" || message["payload"].get("errors").is_some() {
        return None;
    }
    if alert_consoles() {
        // The alert was raised by the first alarm of the step (the unit's first event).
        let count = message["payload"]["data"]["alertChanged"]["alert"]["eventCount"].as_u64()?;
        return usize::try_from(count).ok()?.checked_sub(1);
    }
    let event = &message["payload"]["data"]["deviceEventReceived"]["event"];
    if event["kind"] != "alarm-button" || event["severity"] != "CRITICAL" {
        return None;
    }
    event["supplierEventId"].as_str()?.strip_prefix(prefix)?.parse().ok()
}

/// `BENCH_CONSOLE=alerts`: consoles listen to alerts (`ALERT_CONSOLE`) instead of events.
fn alert_consoles() -> bool {
    std::env::var("BENCH_CONSOLE").is_ok_and(|v| v == "alerts")
}

/// Reads `ws` until it ends, noting when each alarm arrived (the moment its frame is read,
/// before it is parsed); an alert's later changes (an escalation) repeat its count and are not
/// a second delivery.
async fn listen(mut ws: Socket, console: Arc<Console>, tally: Arc<Tally>, prefix: String) {
    let mut first = true;
    let mut heard = std::collections::HashSet::new();
    while let Some(frame) = ws.next().await {
        let at = Instant::now();
        match frame {
            Ok(Message::Text(text)) => match delivered(text.as_str(), &prefix) {
                Some(alarm) if !heard.insert(alarm) => {}
                Some(alarm) => {
                    console.heard.lock().unwrap().push((alarm, at));
                    if std::mem::take(&mut first) {
                        tally.live.fetch_add(1, Ordering::SeqCst);
                    }
                }
                None => {
                    if tally.wrong.fetch_add(1, Ordering::SeqCst) == 0 {
                        *tally.first_wrong.lock().unwrap() = Some(text.as_str().to_string());
                    }
                }
            },
            Ok(Message::Close(frame)) => {
                tally.end(format!("closed {:?}", frame.map(|f| (u16::from(f.code), f.reason.to_string()))));
                return;
            }
            Err(error) => {
                tally.end(error.to_string());
                return;
            }
            Ok(_) => {}
        }
    }
    tally.end("socket ended".into());
}

struct Percentiles {
    count: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<Duration>) -> Percentiles {
        samples.sort();
        let at = |p: f64| {
            samples
                .get(((samples.len().max(1) - 1) as f64 * p).round() as usize)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        Percentiles { count: samples.len(), p50: at(0.5), p99: at(0.99), max: at(1.0) }
    }

    fn text(&self) -> String {
        format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", self.p50, self.p99, self.max)
    }
}

/// One step: N consoles on a fresh server.
struct Step {
    n: usize,
    backend: &'static str,
    server: Process,
    ingest: Ingest,
    consoles: Vec<Arc<Console>>,
    tally: Arc<Tally>,
    /// When each alarm's ingest request was sent, by alarm number.
    sent: Vec<Option<Instant>>,
    /// Heartbeats sent so far (their references are numbered).
    heartbeats: usize,
    /// Messages ingest rejected (dead letters), alarms and heartbeats.
    rejected: usize,
    rows: Vec<Row>,
}

impl Step {
    fn row(&mut self, figure: String, value: String, target: &str, note: String) {
        let row = [format!("{} {}: {figure}", self.backend, self.n), value, target.to_string(), note];
        println!("{}", row.join(" | "));
        self.rows.push(row);
    }

    fn next_alarm(&mut self) -> usize {
        self.sent.push(None);
        self.sent.len() - 1
    }

    /// Sends alarm `alarm`; answers its POST's time, or `None` (and forgets it) if rejected.
    async fn raise(&mut self, alarm: usize) -> Option<Duration> {
        self.sent[alarm] = Some(Instant::now());
        let took = self.ingest.alarm(alarm).await;
        if took.is_none() {
            self.sent[alarm] = None;
            self.rejected += 1;
        }
        took
    }

    /// Deliveries of `alarms` so far.
    fn heard(&self, alarms: &std::ops::Range<usize>) -> usize {
        let heard = |c: &Arc<Console>| c.heard.lock().unwrap().iter().filter(|(a, _)| alarms.contains(a)).count();
        self.consoles.iter().map(heard).sum()
    }

    /// Waits until every console has every alarm of `alarms` (or [`PATIENCE`] passed); answers
    /// the latencies of all deliveries and how many never came.
    async fn deliveries(&self, alarms: std::ops::Range<usize>) -> (Percentiles, usize) {
        let sent = alarms.clone().filter(|a| self.sent[*a].is_some()).count();
        let expected = sent * self.consoles.len();
        let deadline = Instant::now() + PATIENCE;
        while self.heard(&alarms) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut latencies = Vec::with_capacity(expected);
        for console in &self.consoles {
            for (alarm, at) in console.heard.lock().unwrap().iter() {
                if let Some(sent) = self.sent.get(*alarm).copied().flatten().filter(|_| alarms.contains(alarm)) {
                    latencies.push(at.duration_since(sent));
                }
            }
        }
        let missing = expected.saturating_sub(latencies.len());
        (Percentiles::of(latencies), missing)
    }

    /// `count` alarms at `rate` a second; answers their numbers and the ingest requests' times.
    async fn steady(&mut self, count: usize, rate: usize) -> (std::ops::Range<usize>, Vec<Duration>) {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let first = self.sent.len();
        let mut acks = Vec::with_capacity(count);
        for _ in 0..count {
            tick.tick().await;
            let alarm = self.next_alarm();
            acks.extend(self.raise(alarm).await);
        }
        (first..self.sent.len(), acks)
    }

    /// `count` alarms sent at once, from as many concurrent requests.
    async fn burst(&mut self, count: usize) -> std::ops::Range<usize> {
        let first = self.sent.len();
        let alarms: Vec<usize> = (0..count).map(|_| self.next_alarm()).collect();
        let now = Instant::now();
        for alarm in &alarms {
            self.sent[*alarm] = Some(now);
        }
        let ingest = &self.ingest;
        let answers = futures_util::future::join_all(alarms.iter().map(|alarm| ingest.alarm(*alarm))).await;
        for (alarm, answer) in alarms.iter().zip(answers) {
            if answer.is_none() {
                self.sent[*alarm] = None;
                self.rejected += 1;
            }
        }
        first..self.sent.len()
    }
}

/// What a flood phase measured.
#[derive(Clone, Copy)]
struct Flood {
    latency_p99: f64,
    post_p99: f64,
}

impl Step {
    /// `count` Bergen heartbeats in batches of 200, an alarm after each batch; measures the
    /// alarms' deliveries and POSTs. Answers the figures and adds no row.
    async fn flood(&mut self, count: usize) -> (Flood, Percentiles, Percentiles, usize, String) {
        let load = load_average();
        let rss_before = status_kib(self.server.pid(), "VmRSS");
        let first_alarm = self.sent.len();
        let mut acks = Vec::new();
        let mut sent = 0;
        while sent < count {
            let batch = 200.min(count - sent);
            self.rejected += self.ingest.heartbeats(self.heartbeats + sent, batch).await;
            sent += batch;
            let alarm = self.next_alarm();
            acks.extend(self.raise(alarm).await);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.heartbeats += sent;
        let alarms = first_alarm..self.sent.len();
        let (latency, missing) = self.deliveries(alarms).await;
        let posts = Percentiles::of(acks);
        let note =
            format!("server RSS {} → {}; load {load}", mib(rss_before), mib(status_kib(self.server.pid(), "VmRSS")));
        (Flood { latency_p99: latency.p99, post_p99: posts.p99 }, latency, posts, missing, note)
    }

    fn flood_rows(
        &mut self,
        (_, latency, posts, missing, note): (Flood, Percentiles, Percentiles, usize, String),
        what: &str,
        control: Option<Flood>,
    ) {
        let flood = env_number("BENCH_FLOOD", 2000);
        let target = |figure: f64| match control {
            Some(_) => format!("≈ {figure:.1} ms (no one behind)"),
            None => String::new(),
        };
        self.row(
            format!("alarms amid {flood} Bergen events, {what}"),
            latency.text(),
            &target(control.map_or(0.0, |c| c.latency_p99)),
            format!("{} deliveries, {missing} missing; {note}", latency.count),
        );
        self.row(
            format!("their ingest POSTs, {what}"),
            posts.text(),
            &target(control.map_or(0.0, |c| c.post_p99)),
            String::new(),
        );
    }
}

/// Runs one step of `n` consoles; answers its rows.
async fn step(n: usize, signer: &TokenSigner, stalled_count: usize) -> Vec<Row> {
    let store = Store::new(n).await;
    let backend = store.backend();
    let url = store.url();
    let load_before = load_average();
    let server = serve(&url);
    let ingest = Ingest {
        client: reqwest::Client::new(),
        base: format!("http://{}", server.addr),
        token: integration_token(&url),
        run: format!("{}-{n}", std::process::id()),
    };
    let prefix = format!("FO-{}-", ingest.run);
    let mut step = Step {
        n,
        backend,
        server,
        ingest,
        consoles: Vec::with_capacity(n),
        tally: Arc::new(Tally::default()),
        sent: Vec::new(),
        heartbeats: 0,
        rejected: 0,
        rows: Vec::new(),
    };
    let pid = step.server.pid();
    // A few alarms nobody hears, so that the server has served ingest before it is measured.
    for _ in 0..3 {
        let alarm = step.next_alarm();
        step.raise(alarm).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_before, files_before) = (status_kib(pid, "VmRSS"), open_files(pid));

    let started = Instant::now();
    let addr = step.server.addr.clone();
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let org: velferd::organizations::OrgNumber = LARVIK.parse().unwrap();
            signer.mint(&format!("console-{i}"), org, [Role::CaseWorker].into(), Duration::from_secs(4 * 3600))
        })
        .collect();
    // Each console reads from the moment it is subscribed: the server pings every 5 s and
    // closes a socket that has not answered for 10 s.
    let tally = step.tally.clone();
    let connected: Vec<(Arc<Console>, tokio::task::JoinHandle<()>)> = futures_util::stream::iter(tokens.iter())
        .map(|token| {
            let (addr, tally, prefix) = (&addr, tally.clone(), prefix.clone());
            async move {
                let document = if alert_consoles() { ALERT_CONSOLE } else { CONSOLE };
                let ws = subscribe(addr, token, document, None).await;
                let console = Arc::new(Console { heard: Mutex::new(Vec::new()) });
                (console.clone(), tokio::spawn(listen(ws, console, tally, prefix)))
            }
        })
        .buffer_unordered(CONNECTING_AT_ONCE)
        .collect()
        .await;
    let connecting = started.elapsed();
    let mut tasks = Vec::with_capacity(n);
    for (console, task) in connected {
        step.consoles.push(console);
        tasks.push(task);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_idle, files_idle) = (status_kib(pid, "VmRSS"), open_files(pid));
    step.row(
        "connect and subscribe".into(),
        format!("{:.1} s", connecting.as_secs_f64()),
        "",
        format!("{CONNECTING_AT_ONCE} handshakes at once; load {load_before}"),
    );
    step.row(
        "server RSS, no subscribers → N idle".into(),
        format!("{} → {}", mib(rss_before), mib(rss_idle)),
        "",
        format!("open files {files_before} → {files_idle}"),
    );
    step.row(
        "memory per idle subscriber".into(),
        format!("{:.1} KiB", rss_idle.saturating_sub(rss_before) as f64 / n as f64),
        "stated",
        "server RSS growth / N, after connection_init and subscribe".into(),
    );

    // Warm-up: alarms until every console has heard one (a subscription runs once its
    // `subscribe` was processed; the protocol does not acknowledge it).
    let mut tries = 0;
    while step.tally.live.load(Ordering::SeqCst) < n {
        let alarm = step.next_alarm();
        step.raise(alarm).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while step.tally.live.load(Ordering::SeqCst) < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tries += 1;
        assert!(tries < 10, "{} of {n} consoles heard nothing", n - step.tally.live.load(Ordering::SeqCst));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let alarms = env_number("BENCH_ALARMS", 40);
    let rate = env_number("BENCH_ALARM_RATE", 4);
    let load = load_average();
    let (steady, acks) = step.steady(alarms, rate).await;
    let (latency, missing) = step.deliveries(steady).await;
    step.row(
        format!("ingest → every subscriber, {alarms} alarms at {rate}/s"),
        latency.text(),
        "p99 ≤ 100 ms",
        format!("{} deliveries, {missing} missing; load {load}", latency.count),
    );
    let ack = Percentiles::of(acks);
    step.row("ingest request (the alarm's POST)".into(), ack.text(), "", format!("load {load}"));

    let burst = env_number("BENCH_BURST", 20);
    let load = load_average();
    let alarms_in_burst = step.burst(burst).await;
    let (latency, missing) = step.deliveries(alarms_in_burst).await;
    step.row(
        format!("ingest → every subscriber, burst of {burst} alarms at once"),
        latency.text(),
        "",
        format!("{} deliveries, {missing} missing; load {load}", latency.count),
    );
    let peak = status_kib(pid, "VmHWM");

    // A flood of Bergen heartbeats (the consoles hear none) while alarms go on: first with no
    // subscriber behind, then with subscribers that stop reading or read slowly.
    let flood = env_number("BENCH_FLOOD", 2000);
    let control = step.flood(flood).await;
    let control_figures = control.0;
    step.flood_rows(control, "no subscriber behind", None);

    // Bergen case workers hearing everything of Bergen: half never read after subscribing,
    // half read 5 messages a second.
    let mut behind = Vec::new();
    for i in 0..stalled_count {
        let org: velferd::organizations::OrgNumber = BERGEN.parse().unwrap();
        let token = signer.mint(&format!("behind-{i}"), org, [Role::CaseWorker].into(), Duration::from_secs(3600));
        let ws = subscribe(&addr, &token, EVERYTHING, Some(4096)).await;
        let slow = i % 2 == 1;
        behind.push((slow, tokio::spawn(behind_reader(ws, slow))));
    }
    let with_behind = step.flood(flood).await;
    step.flood_rows(with_behind, &format!("{stalled_count} subscribers behind"), Some(control_figures));
    let mut outcomes = Vec::new();
    for (slow, task) in behind {
        let what = if slow { "reading 5 a second" } else { "not reading" };
        outcomes.push(format!("{what}: {}", task.await.unwrap()));
    }
    outcomes.sort();
    step.row(
        "subscribers behind: what each got, and how it ended".into(),
        outcomes.join("; "),
        "dropped, not buffered without bound",
        "server pings every 5 s and closes a socket silent for 10 s; VELFERD_LIVE_SUBSCRIBER_BUFFER (1024 items) \
         bounds what waits for one"
            .into(),
    );
    let wrong = step.tally.wrong.load(Ordering::SeqCst);
    let first_wrong = step.tally.first_wrong.lock().unwrap().clone().unwrap_or_default();
    let first_end = step.tally.first_end.lock().unwrap().clone().unwrap_or_default();
    step.row(
        "wrong messages / consoles disconnected / messages rejected by ingest".into(),
        format!("{wrong} / {} / {}", step.tally.ended.load(Ordering::SeqCst), step.rejected),
        "0 / 0 / 0",
        format!("first wrong: {}; first end: {first_end}", first_wrong.chars().take(300).collect::<String>()),
    );
    step.row(
        "server peak RSS (VmHWM), open files".into(),
        format!("{} (after the burst) / {}", mib(peak), mib(status_kib(pid, "VmHWM"))),
        "",
        format!("{} files open with N consoles", open_files(pid)),
    );
    for task in tasks {
        task.abort();
    }
    let rows = std::mem::take(&mut step.rows);
    drop(step);
    store.drop_database().await;
    rows
}

/// A subscriber behind: after `EVERYTHING`, it never reads (until the flood is over) or reads
/// 5 messages a second; answers how many events it got and how its subscription ended.
async fn behind_reader(mut ws: Socket, slow: bool) -> String {
    if !slow {
        tokio::time::sleep(PATIENCE / 2).await;
    }
    let mut events = 0;
    let mut end = String::from("still subscribed (quiet 5 s)");
    // What the kernel buffered for a reader at 5 a second could take an hour to read: it stops
    // after a while and says so.
    let stop = tokio::time::Instant::now() + PATIENCE;
    loop {
        if slow {
            if tokio::time::Instant::now() > stop {
                end = format!("still reading when the bench stopped after {} s", PATIENCE.as_secs());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Err(_) => break,
            Ok(None) => {
                end = "socket ended".into();
                break;
            }
            Ok(Some(Err(error))) => {
                end = format!("{error}");
                break;
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                end = format!("closed {:?}", frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                break;
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                let message: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                match message["type"].as_str() {
                    Some("next") if message["payload"].get("errors").is_none() => events += 1,
                    Some("next") => {
                        let error = &message["payload"]["errors"][0]["extensions"];
                        end = format!("error {} lastSequence {}", error["code"], error["lastSequence"]);
                    }
                    Some("complete") => end = format!("{end}, then complete"),
                    _ => end = format!("{end}; {}", text.as_str().chars().take(120).collect::<String>()),
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
    format!("{events} events, then {end}")
}

/// The fan-out figures: `[figure, measured, target, note]` per row.
pub async fn bench() -> Vec<Row> {
    velferd::outbound::install_crypto_provider();
    let (soft_before, hard) = nofile();
    let limit = raise_nofile();
    let steps = steps();
    let stalled = env_number("BENCH_STALLED", 4);
    let most = steps.iter().copied().max().unwrap_or(0);
    let mut rows = vec![[
        "file descriptors".to_string(),
        format!("RLIMIT_NOFILE soft {soft_before} → {limit} (hard {hard})"),
        format!("≥ {} for {most} subscribers", most + stalled + 256),
        "server: one per subscriber socket plus ~50 of its own; this client as many again".to_string(),
    ]];
    if (limit as usize) < most + stalled + 256 {
        rows[0][3] = format!("{}; TOO LOW: raise the hard limit (ulimit -Hn, LimitNOFILE=)", rows[0][3]);
    }
    let settings = velferd::config::Settings::from_pairs([
        ("VELFERD_DATABASE_URL", "sqlite://unused.db?mode=rwc"),
        ("VELFERD_JWT_SECRET", SECRET),
        ("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR),
    ])
    .unwrap();
    let signer = TokenSigner::new(&settings.jwt).unwrap();
    for n in steps {
        rows.extend(step(n, &signer, stalled).await);
    }
    rows
}

#[allow(dead_code, reason = "the entry point only when this file is the bench, not when included")]
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rows = runtime.block_on(bench());
    println!();
    println!("| figure | measured | target | note |");
    println!("| --- | --- | --- | --- |");
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
}
