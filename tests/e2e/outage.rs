//! A database outage under load (issue 16): PostgreSQL reached through a TCP proxy the test
//! controls — never by stopping the shared server — is cut while senders post alarms. Requests
//! are turned away at once (503 with `Retry-After`, `DATABASE_UNAVAILABLE`) instead of hanging,
//! `/readyz` says 503, nothing panics; when the proxy comes back the server recovers by itself,
//! the senders re-send what was not acknowledged, and every alarm is stored exactly once.
//! Through the same proxy: what a pooled connection sends besides its statements.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::devices::{ALARM, Fleet, live_reference_adapters};
use crate::support::{Backend, Options, PostgresDatabase, TestApp};

/// How long the test waits for what should come within a second or two; generous for a loaded
/// machine. Not a performance claim: the times seen are printed.
const PATIENCE: Duration = Duration::from_secs(20);

/// A TCP proxy to PostgreSQL that the test can cut (listener closed, every connection dropped)
/// and restore on the same port. It counts what each connection sends.
struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    connections: Arc<Mutex<Vec<Arc<Sent>>>>,
}

/// What one connection sent PostgreSQL, counted by the reads the proxy made of it.
#[derive(Default)]
struct Sent {
    /// A lone `Sync` message: sqlx's ping, a round trip with no statement.
    pings: AtomicU64,
    /// Anything else: the start-up and statements (a statement is a `Parse`…`Sync` sequence,
    /// sent at once).
    other: AtomicU64,
}

/// The protocol's `Sync` message alone.
const SYNC: [u8; 5] = [b'S', 0, 0, 0, 4];

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy { addr, target, tasks: Arc::default(), connections: Arc::default() };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, tasks, connections) = (self.target, self.tasks.clone(), self.connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let sent = Arc::new(Sent::default());
                connections.lock().unwrap().push(sent.clone());
                let pipe = tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        let _ = pipe(client, server, &sent).await;
                    }
                });
                tasks.lock().unwrap().push(pipe.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Pings and other reads so far, per connection, in the order they connected.
    fn sent(&self) -> Vec<(u64, u64)> {
        let connections = self.connections.lock().unwrap();
        connections.iter().map(|c| (c.pings.load(Ordering::Relaxed), c.other.load(Ordering::Relaxed))).collect()
    }

    /// PostgreSQL "goes away": new connections are refused, open ones are closed.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// PostgreSQL is back, on the same address.
    async fn restore(&self) {
        let listener = loop {
            // The aborted accept task lets go of the port as it is dropped.
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }
}

/// Copies both ways, counting what the client sends.
async fn pipe(client: TcpStream, server: TcpStream, sent: &Sent) -> std::io::Result<()> {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = async {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let n = from_client.read(&mut buffer).await?;
            if n == 0 {
                return to_server.shutdown().await;
            }
            let counter = if buffer[..n] == SYNC { &sent.pings } else { &sent.other };
            counter.fetch_add(1, Ordering::Relaxed);
            to_server.write_all(&buffer[..n]).await?;
        }
    };
    let down = async {
        tokio::io::copy(&mut from_server, &mut to_client).await?;
        to_client.shutdown().await
    };
    tokio::try_join!(up, down).map(|_| ())
}

/// A SCAIP alarm from Larvik's `SA-7734001`, the supplier calling the event `reference`.
fn alarm(reference: &str) -> Vec<u8> {
    format!(
        "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>SA-7734001</cid><dty>005</dty><mty>ME</mty><stc>001</stc><lco>010</lco></mrq>"
    )
    .into_bytes()
}

/// What one post of an alarm came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 200: the alarm is stored (or was already).
    Acknowledged,
    /// 503 `DATABASE_UNAVAILABLE` with `Retry-After`: nothing done, send again.
    TurnedAway,
    /// Any other 5xx or a broken connection while the database went away: not acknowledged,
    /// so the sender sends again; the server must not have stored it twice.
    Failed,
}

async fn post(client: &reqwest::Client, url: &str, token: &str, reference: &str) -> Answer {
    let sent = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/xml")
        .body(alarm(reference))
        .send()
        .await;
    let Ok(response) = sent else { return Answer::Failed };
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").is_some();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    match status {
        200 => {
            let stored = body["results"][0]["status"].as_str();
            assert!(matches!(stored, Some("ACCEPTED" | "DUPLICATE")), "200 that is not an acknowledgement: {body}");
            Answer::Acknowledged
        }
        503 if body["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE" => {
            assert!(retry_after, "a 503 without Retry-After: {body}");
            Answer::TurnedAway
        }
        500..=599 => Answer::Failed,
        _ => panic!("{reference}: unexpected {status}: {body}"),
    }
}

async fn readyz(app: &TestApp) -> u16 {
    app.client.get(app.url("/readyz")).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Polls `/readyz` until it answers `status`; how long that took.
async fn ready_becomes(app: &TestApp, status: u16) -> Duration {
    let started = Instant::now();
    while readyz(app).await != status {
        assert!(started.elapsed() < PATIENCE, "/readyz never answered {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// The supplier event ids of every stored alarm, with their count.
async fn stored_references(app: &TestApp) -> (usize, BTreeSet<String>) {
    let db = app.db().read();
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT supplier_event_id FROM device_event"))
        .await
        .unwrap();
    let ids: Vec<String> = rows.iter().map(|row| row.try_get("", "supplier_event_id").unwrap()).collect();
    let count = ids.len();
    (count, ids.into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_turns_requests_away_at_once_and_loses_nothing_acknowledged() {
    let Some(database) = PostgresDatabase::create().await else { return };
    let target: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    assert!(database.url.contains("127.0.0.1:5432"), "the test proxies PostgreSQL on 127.0.0.1:5432: {}", database.url);
    let proxy = Proxy::start(target).await;
    let url = database.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let options = Options { pairs: vec![("VELFERD_DATABASE_URL", url)], ..Options::default() };
    let app = TestApp::spawn_with(Backend::Postgres, options).await.expect("PostgreSQL configured");
    let set_up = Instant::now();
    let fleet = Fleet::new(&app).await;
    live_reference_adapters(&app, &fleet).await;
    eprintln!("outage: fleet set up in {:?}", set_up.elapsed());
    let token = fleet.integration_token(&app);
    let ingest_url = app.url(&format!("/ingest/{ALARM}"));

    // Four senders post alarms until told to stop, each re-sending an alarm until it is
    // acknowledged, as a real sender would; they record every answer.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::<(String, Answer)>::new()));
    let mut senders = Vec::new();
    for sender in 0..4 {
        let (client, url, token) = (app.client.clone(), ingest_url.clone(), token.clone());
        let (stop, answers) = (stop.clone(), answers.clone());
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let reference = format!("outage-{sender}-{n}");
                loop {
                    let answer = post(&client, &url, &token, &reference).await;
                    answers.lock().unwrap().push((reference.clone(), answer));
                    if answer == Answer::Acknowledged {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                acknowledged.push(reference);
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    proxy.cut();
    let cut_at = Instant::now();
    let readyz_down = ready_becomes(&app, 503).await;
    // Now the database is known gone: every route that needs it answers at once.
    let started = Instant::now();
    assert_eq!(post(&app.client, &ingest_url, &token, "while-down").await, Answer::TurnedAway);
    let ingest_refusal = started.elapsed();
    let started = Instant::now();
    let (status, body) =
        app.graphql_raw(Some(&token), "{ viewer { organization { name } } }", serde_json::json!({})).await;
    let graphql_refusal = started.elapsed();
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (503, Some("DATABASE_UNAVAILABLE")),
        "{body}"
    );
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200, "liveness is not readiness");
    // The outage lasts until the senders have been turned away a few times.
    let outage = Instant::now();
    while answers.lock().unwrap().iter().filter(|(_, a)| *a == Answer::TurnedAway).count() < 8 {
        assert!(outage.elapsed() < PATIENCE, "the senders never met the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxy.restore().await;
    let readyz_up = ready_becomes(&app, 200).await;
    // A little traffic after recovery, then the senders finish what they hold.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = BTreeSet::new();
    for sender in senders {
        acknowledged.extend(sender.await.expect("a sender does not panic"));
    }
    assert_eq!(post(&app.client, &ingest_url, &token, "while-down").await, Answer::Acknowledged);
    acknowledged.insert("while-down".to_string());

    let answers = answers.lock().unwrap().clone();
    let turned_away = answers.iter().filter(|(_, a)| *a == Answer::TurnedAway).count();
    let failed = answers.iter().filter(|(_, a)| *a == Answer::Failed).count();
    eprintln!(
        "outage: {} posts, {} acknowledged, {turned_away} turned away, {failed} failed in flight; /readyz 503 after \
         {readyz_down:?}, ingest refused in {ingest_refusal:?}, GraphQL in {graphql_refusal:?}, /readyz 200 \
         {readyz_up:?} after the restore ({:?} after the cut)",
        answers.len(),
        acknowledged.len(),
        cut_at.elapsed()
    );
    assert!(turned_away > 1, "the senders met the outage: {answers:?}");
    let (count, stored) = stored_references(&app).await;
    assert_eq!(stored, acknowledged, "every acknowledged alarm is stored, and nothing else");
    assert_eq!(count, stored.len(), "no alarm is stored twice");
    let stopping = Instant::now();
    drop(app);
    database.drop_database();
    eprintln!("outage: stopped and dropped in {:?}", stopping.elapsed());
}

/// A pooled connection in steady use goes straight to its statement: sqlx pings one on every
/// checkout by default, a round trip to PostgreSQL before every statement outside a
/// transaction; only a connection idle for a while is pinged now (`db::PING_IF_IDLE_FOR`).
/// sqlx still pings each connection it takes back (unconditionally, to flush what a dropped
/// statement may have left): one ping a statement remains, where there were two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_in_steady_use_are_not_pinged_before_each_statement() {
    let Some(database) = PostgresDatabase::create().await else { return };
    let target: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = Proxy::start(target).await;
    let url = database.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    // Two connections, handed out in turn: each is idle for about one query between uses.
    let pairs = vec![("VELFERD_DATABASE_URL", url), ("VELFERD_DB_MAX_CONNECTIONS", "2".into())];
    let options = Options { pairs, ..Options::default() };
    let app = TestApp::spawn_with(Backend::Postgres, options).await.expect("PostgreSQL configured");
    let list = "{ organizations(first: 5) { nodes { name } } }";
    app.graphql(None, list, serde_json::json!({})).await;

    let before = proxy.sent();
    for _ in 0..60 {
        app.graphql(None, list, serde_json::json!({})).await;
    }
    let after = proxy.sent();
    // The connections that ran statements meanwhile (not the watchdog's, which only pings).
    let (mut pings, mut statements) = (0, 0);
    for (i, (pinged, other)) in after.iter().enumerate() {
        let (pinged_before, other_before) = before.get(i).copied().unwrap_or((0, 0));
        if other > &other_before {
            pings += pinged - pinged_before;
            statements += other - other_before;
        }
    }
    eprintln!("60 queries: {statements} statement reads, {pings} pings on those connections");
    assert!(statements >= 60, "every query reads the database: {statements}");
    // The release's ping for each statement, and a few checkouts after an idle second at most.
    assert!(pings <= statements + 8, "{pings} pings for {statements} statements");
    drop(app);
    database.drop_database();
}
