//! Crash safety (issue 16): a `velferd serve` process dies while eight senders post alarms, and
//! is started again each time: twenty times by SIGKILL at random moments, and by itself at
//! named failpoints (`VELFERD_FAILPOINT`, server/src/failpoint.rs) — after decode, after
//! commit and before the reply, four times each (twenty with `VELFERD_LONG_CRASH=1`) at a random
//! hit count, and once after a webhook delivery before it is recorded. The senders behave as
//! real ones do: a message that was not acknowledged (refused connection, broken reply, 5xx) is
//! sent again, to whichever process runs now. A subscriber to the live device events follows
//! the processes, resuming after the last sequence it saw. At the end every acknowledged event
//! is stored exactly once, the outbox's sequences have no gaps and announce each event once,
//! the subscriber was given each of them once and in order, no alert was raised twice, and each
//! raised alert has its webhook delivery, a repeated one with the same `webhook-id`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use velferd::failpoint::{Failpoint, Point};

use crate::alerts::Centre;
use crate::devices::ALARM;
use crate::receiver::Receiver;
use crate::serve::Server;
use crate::support::{Backend, Options, Socket, TestApp};
use crate::webhooks::{FAST, pairs, registered};

const SENDERS: usize = 8;
const KILLS: usize = 20;
/// The alarm units of the test's municipality; alarms rotate over them.
const UNITS: [&str; 3] = ["SA-7734001", "SA-7734002", "SA-7734003"];
/// The ingest failpoints, each a process's death in its own rounds.
const INGEST_POINTS: [Point; 3] = [Point::AfterDecode, Point::AfterCommit, Point::BeforeReply];
/// The signal `std::process::abort` ends a process with.
const SIGABRT: i32 = 6;

/// How one process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// SIGKILL from the test, at a random moment of steady ingest.
    Sigkill,
    /// By itself, at its failpoint.
    At(Point),
}

impl Death {
    fn name(self) -> &'static str {
        match self {
            Death::Sigkill => "sigkill",
            Death::At(point) => point.name(),
        }
    }
}

/// Rounds of each ingest failpoint: four in CI (about ten seconds more than the random kills
/// alone), twenty when `VELFERD_LONG_CRASH=1`.
fn rounds_per_point() -> usize {
    if std::env::var("VELFERD_LONG_CRASH").is_ok_and(|v| v == "1") { 20 } else { 4 }
}

/// How each process of the run dies, in order. The first dies after its first webhook delivery
/// (the first alarms raise the alerts); the random kills and the ingest failpoints alternate.
fn schedule(per_point: usize) -> Vec<Death> {
    let named: Vec<Point> = (0..per_point).flat_map(|_| INGEST_POINTS).collect();
    let mut deaths = vec![Death::At(Point::AfterDelivery)];
    for i in 0..KILLS.max(named.len()) {
        if i < KILLS {
            deaths.push(Death::Sigkill);
        }
        deaths.extend(named.get(i).map(|point| Death::At(*point)));
    }
    deaths
}

/// A small deterministic generator: the same moments and hit counts in every run.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn alarm(unit: &str, reference: &str) -> Vec<u8> {
    format!(
        "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>{unit}</cid><dty>005</dty><mty>ME</mty><stc>001</stc><lco>010</lco></mrq>"
    )
    .into_bytes()
}

/// What one post of an alarm came to.
enum Answer {
    /// Stored now, or (`duplicate`) by an earlier post whose answer was lost.
    Acknowledged { duplicate: bool },
    /// No process listened: nothing was sent.
    Unreached,
    /// Sent, and the connection broke before the answer: the process died with it in flight.
    Broken,
    /// A 5xx: not acknowledged.
    Unavailable,
}

/// Posts one alarm to the process at `addr`.
async fn post(client: &reqwest::Client, addr: &str, token: &str, unit: &str, reference: &str) -> Answer {
    let sent = client
        .post(format!("http://{addr}/ingest/{ALARM}"))
        .bearer_auth(token)
        .header("content-type", "application/xml")
        .body(alarm(unit, reference))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) if e.is_connect() => return Answer::Unreached,
        Err(_) => return Answer::Broken,
    };
    let status = response.status().as_u16();
    let Ok(body) = response.json::<Value>().await else { return Answer::Broken };
    match status {
        200 => {
            let answer = body["results"][0]["status"].as_str();
            assert!(matches!(answer, Some("ACCEPTED" | "DUPLICATE")), "{reference}: 200 but {body}");
            Answer::Acknowledged { duplicate: answer == Some("DUPLICATE") }
        }
        500..=599 => Answer::Unavailable,
        _ => panic!("{reference}: {status} {body}"),
    }
}

/// The process the senders and the subscriber talk to, and its round.
struct Target {
    addr: String,
    round: usize,
}

/// What the senders saw of one round's process.
#[derive(Default)]
struct Tally {
    /// Posts in flight when it died.
    broken: AtomicUsize,
    /// Messages it committed without the sender hearing so: answered `DUPLICATE` when sent again.
    committed_unanswered: AtomicUsize,
}

/// Opens a graphql-transport-ws socket to `addr` and subscribes to the live device events after
/// `after`; `None` when the process is gone (or going).
async fn live_subscription(addr: &str, token: &str, after: i64) -> Option<Socket> {
    let open = async {
        let mut request = format!("ws://{addr}/graphql/ws").into_client_request().ok()?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().ok()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.ok()?;
        let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
        ws.send(Message::text(init.to_string())).await.ok()?;
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(text) = frame {
                let ack: Value = serde_json::from_str(&text).ok()?;
                assert_eq!(ack["type"], "connection_ack", "{ack}");
                break;
            }
        }
        let query = "subscription($after: Sequence) { deviceEventReceived(afterSequence: $after) { sequence } }";
        let variables = json!({ "after": after.to_string() });
        let subscribe =
            json!({ "id": "live", "type": "subscribe", "payload": { "query": query, "variables": variables } });
        ws.send(Message::text(subscribe.to_string())).await.ok()?;
        Some(ws)
    };
    tokio::time::timeout(Duration::from_secs(5), open).await.ok().flatten()
}

/// A live subscriber as a client would write one: it follows whichever process runs and, each
/// time its connection ends, subscribes again after the last sequence it was given. Records
/// every sequence it is given, and counts its subscriptions.
async fn follow(
    target: Arc<RwLock<Target>>,
    token: String,
    from: i64,
    seen: Arc<Mutex<Vec<i64>>>,
    subscriptions: Arc<AtomicUsize>,
) {
    let mut last = from;
    loop {
        let addr = target.read().unwrap().addr.clone();
        let Some(mut ws) = live_subscription(&addr, &token, last).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        subscriptions.fetch_add(1, Ordering::Relaxed);
        loop {
            let frame = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
                // Quiet: still the process the senders use?
                Err(_) if target.read().unwrap().addr == addr => continue,
                Ok(Some(Ok(frame))) => frame,
                _ => break,
            };
            let Message::Text(text) = frame else { continue };
            let message: Value = serde_json::from_str(&text).unwrap();
            let code = message["payload"]["errors"][0]["extensions"]["code"].as_str();
            match (message["type"].as_str(), code) {
                (Some("next"), None) => {
                    let sequence = &message["payload"]["data"]["deviceEventReceived"]["sequence"];
                    last = sequence.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{message}"));
                    seen.lock().unwrap().push(last);
                }
                // Dropped as too slow: resume after `last`, as the error says.
                (Some("next"), Some("SUBSCRIBER_TOO_SLOW")) => break,
                (Some("complete"), _) => break,
                _ => panic!("the live subscription after {last} failed: {message}"),
            }
        }
    }
}

/// Starts the process of a round that ends in `death` (`None`: the last, which runs to the
/// end); a failpoint fires at a random hit, after the process has answered a round of requests
/// or so.
fn start(
    database_url: &str,
    settings: &[(&'static str, String)],
    death: Option<Death>,
    random: &mut Xorshift,
) -> Server {
    let mut settings = settings.to_vec();
    if let Some(Death::At(point)) = death {
        // The first delivery: the alerts, so their deliveries, come at the start.
        let at = if point == Point::AfterDelivery { 1 } else { SENDERS as u64 + random.next() % (3 * SENDERS as u64) };
        settings.push(("VELFERD_FAILPOINT", Failpoint { point, at }.to_string()));
    }
    Server::start(database_url, &settings)
}

async fn column(app: &TestApp, sql: &str) -> Vec<i64> {
    let db = app.db().write();
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<i64>(0).unwrap()).collect()
}

async fn references(app: &TestApp) -> Vec<String> {
    let db = app.db().write();
    let sql = "SELECT supplier_event_id FROM device_event";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
}

fn webhook_ids(receiver: &Receiver) -> Vec<String> {
    let ids = receiver
        .requests()
        .into_iter()
        .filter_map(|r| r.headers.into_iter().find(|(n, _)| n.eq_ignore_ascii_case("webhook-id")).map(|(_, v)| v));
    ids.collect()
}

async fn run(backend: Backend) {
    let receiver = Receiver::start().await;
    // The in-process server sets up and reads the database; the processes do the work.
    let mut setup = pairs(&receiver, FAST);
    setup.push(("VELFERD_WEBHOOK_CONCURRENCY", "0".into()));
    let Some(app) = TestApp::spawn_with(backend, Options { pairs: setup, demo: false }).await else { return };
    let world = Centre::new(&app).await;
    registered(&app, &world.municipality_admin(&app), &receiver.url("/hook"), &["ALERT_RAISED"]).await;
    let token = world.fleet.integration_token(&app);
    let database_url = app.settings.database_url.clone();
    let mut process = pairs(&receiver, FAST);
    // A dead process's lease on a delivery must run out before another process sends it.
    process.push(("VELFERD_WEBHOOK_LEASE", "3s".into()));
    process.push(("VELFERD_OUTBOUND_TIMEOUT", "2s".into()));

    let deaths = schedule(rounds_per_point());
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    let tallies: Arc<Vec<Tally>> = Arc::new((0..=deaths.len()).map(|_| Tally::default()).collect());
    let mut server = start(&database_url, &process, deaths.first().copied(), &mut random);
    let target = Arc::new(RwLock::new(Target { addr: server.addr().to_string(), round: 0 }));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledgements = Arc::new(AtomicUsize::new(0));

    let from = column(&app, "SELECT COALESCE(MAX(id), 0) FROM outbox").await[0];
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriptions = Arc::new(AtomicUsize::new(0));
    let follower = tokio::spawn(follow(
        target.clone(),
        world.fleet.case_worker_token(&app),
        from,
        seen.clone(),
        subscriptions.clone(),
    ));

    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (client, token, target, tallies) = (app.client.clone(), token.clone(), target.clone(), tallies.clone());
        let (stop, acknowledgements) = (stop.clone(), acknowledgements.clone());
        senders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let reference = format!("crash-{sender}-{n}");
                let unit = UNITS[n % UNITS.len()];
                // The round of the last post that died in flight: the one that may have committed.
                let mut broken_in = None;
                loop {
                    let (addr, round) = {
                        let target = target.read().unwrap();
                        (target.addr.clone(), target.round)
                    };
                    match post(&client, &addr, &token, unit, &reference).await {
                        Answer::Acknowledged { duplicate } => {
                            if duplicate {
                                tallies[broken_in.unwrap_or(round)]
                                    .committed_unanswered
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            acknowledgements.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Answer::Broken => {
                            tallies[round].broken.fetch_add(1, Ordering::Relaxed);
                            broken_in = Some(round);
                        }
                        Answer::Unreached | Answer::Unavailable => {}
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sent.push(reference);
            }
            sent
        }));
    }

    // Each process dies as the schedule says: killed at a random moment of steady ingest (after
    // it acknowledged a round of messages: a fresh one compiles the adapter before it decodes),
    // or by itself at its failpoint.
    let mut first_deliveries = Vec::new();
    for (round, death) in deaths.iter().enumerate() {
        match death {
            Death::Sigkill => {
                let before = acknowledgements.load(Ordering::Relaxed);
                let started = Instant::now();
                while acknowledgements.load(Ordering::Relaxed) < before + SENDERS {
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "round {round}: the process acknowledges nothing"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::time::sleep(Duration::from_millis(150 + random.next() % 600)).await;
                server.kill();
            }
            Death::At(point) => {
                let started = Instant::now();
                let status = loop {
                    if let Some(status) = server.exited() {
                        break status;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "round {round}: {} was never reached",
                        point.name()
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                };
                assert_eq!(
                    status.signal(),
                    Some(SIGABRT),
                    "round {round}: the process died at {}: {status}",
                    point.name()
                );
                if *point == Point::AfterDelivery {
                    first_deliveries = webhook_ids(&receiver);
                }
            }
        }
        let next = start(&database_url, &process, deaths.get(round + 1).copied(), &mut random);
        *target.write().unwrap() = Target { addr: next.addr().to_string(), round: round + 1 };
        server = next;
    }
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = BTreeSet::new();
    for sender in senders {
        acknowledged.extend(sender.await.expect("a sender does not panic"));
    }

    let stored = references(&app).await;
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique, acknowledged, "every acknowledged alarm is stored, and nothing else");
    assert_eq!(stored.len(), unique.len(), "no event is stored twice");

    let sequences = column(&app, "SELECT id FROM outbox ORDER BY id").await;
    let expected: Vec<i64> = (sequences[0]..sequences[0] + sequences.len() as i64).collect();
    assert_eq!(sequences, expected, "outbox sequences have no gaps");
    let announced = column(&app, "SELECT COUNT(*) FROM outbox WHERE topic = 'device-event'").await[0];
    assert_eq!(announced, stored.len() as i64, "each stored event is announced once");

    // The subscriber, resuming after each death, was given every announced event once, in order.
    let events =
        column(&app, &format!("SELECT id FROM outbox WHERE topic = 'device-event' AND id > {from} ORDER BY id")).await;
    let started = Instant::now();
    while seen.lock().unwrap().len() < events.len() && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    follower.abort();
    if let Err(e) = follower.await
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
    let seen = seen.lock().unwrap().clone();
    let missing = events.iter().filter(|s| !seen.contains(s)).count();
    assert_eq!(seen, events, "the subscriber saw each live sequence once and in order ({missing} missing)");

    let alerts = column(&app, "SELECT COUNT(*) FROM alert").await[0];
    let raising_events = column(&app, "SELECT COUNT(DISTINCT event_id) FROM alert").await[0];
    assert_eq!(alerts, raising_events, "no event raised two alerts");
    assert!(alerts >= 1, "the alarms raised alerts");
    // Each raised alert reaches the webhook endpoint: its delivery exists and is sent.
    let started = Instant::now();
    loop {
        let sent = column(&app, "SELECT COUNT(*) FROM webhook_delivery WHERE status = 'succeeded'").await[0];
        if sent >= alerts {
            let deliveries = column(&app, "SELECT COUNT(*) FROM webhook_delivery").await[0];
            assert_eq!(deliveries, alerts, "one delivery per raised alert");
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let states = column(&app, "SELECT attempts FROM webhook_delivery WHERE status <> 'succeeded'").await;
            panic!("{sent} of {alerts} alert webhooks sent; attempts of the others: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids = webhook_ids(&receiver);
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len() as i64, alerts, "each alert's webhook-id arrived (a repeat keeps its id)");
    // The first process died after a delivery it had not recorded: it was sent again, same id.
    let last_before_death = first_deliveries.last().expect("the first process delivered a webhook before it died");
    let times = ids.iter().filter(|id| *id == last_before_death).count();
    assert!(times >= 2, "the delivery a process died after was sent again with its webhook-id ({times} times)");

    // Per kind of death: how many, how many with posts in flight, posts cut, messages committed
    // without an answer (each answered DUPLICATE when sent again).
    let mut kinds: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for (round, death) in deaths.iter().enumerate() {
        let broken = tallies[round].broken.load(Ordering::Relaxed);
        let kind = kinds.entry(death.name()).or_default();
        kind[0] += 1;
        kind[1] += usize::from(broken > 0);
        kind[2] += broken;
        kind[3] += tallies[round].committed_unanswered.load(Ordering::Relaxed);
        if INGEST_POINTS.iter().any(|p| *death == Death::At(*p)) {
            assert!(broken > 0, "round {round}: the process died at {} with no request in flight", death.name());
        }
    }
    let per_kind: Vec<String> =
        kinds.iter().map(|(name, [n, hit, cut, lost])| format!("{name} {n}/{hit}/{cut}/{lost}")).collect();
    eprintln!(
        "crash ({backend:?}): {} deaths; {} alarms acknowledged, {} events stored once; {} live sequences seen once in \
         order over {} subscriptions; {} webhook posts for {alerts} alerts; per kind deaths/with requests in \
         flight/requests cut/committed but unanswered: {}",
        deaths.len(),
        acknowledged.len(),
        stored.len(),
        seen.len(),
        subscriptions.load(Ordering::Relaxed),
        ids.len(),
        per_kind.join(", ")
    );
    // The rows of the table in docs/performance.md, "Crash safety".
    for (name, [n, hit, cut, lost]) in &kinds {
        eprintln!("| {backend:?} | `{name}` | {n} | {hit} | {cut} | {lost} |");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_failpoints_during_steady_ingest_lose_and_repeat_nothing_acknowledged_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_failpoints_during_steady_ingest_lose_and_repeat_nothing_acknowledged_postgres() {
    run(Backend::Postgres).await;
}

/// A failpoint that names no point stops the start, naming the setting and the points.
#[test]
fn an_unknown_failpoint_stops_the_start() {
    let stderr = crate::binary::refused_start(&[
        ("VELFERD_JWT_SECRET", crate::support::SECRET),
        ("VELFERD_FAILPOINT", "after_lunch:3"),
    ]);
    assert!(stderr.contains("VELFERD_FAILPOINT: unknown failpoint \"after_lunch\""), "{stderr}");
    assert!(stderr.contains("after_decode, after_commit, before_reply, after_delivery"), "{stderr}");
}
