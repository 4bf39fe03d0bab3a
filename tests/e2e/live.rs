//! Live updates through the outbox (docs/live.md): resume after the last sequence seen, two
//! server processes on one PostgreSQL database, transactions that commit out of order, an
//! expired sequence, and a subscriber too slow to keep up.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use velferd::auth::Role;
use velferd::live::{Announcement, Filter, Interest, Scope, Topic};

use crate::devices::{ALARM, Fleet, ingest, live_reference_adapters};
use crate::serve::Server;
use crate::support::{Backend, Options, Socket, TestApp, on_both_backends};

/// What each delivery shows: enough to tell the events apart and to resume.
const LIVE: &str = "subscription($after: Sequence) { deviceEventReceived(afterSequence: $after) {
    sequence event { kind supplierEventId device { serial } } } }";

/// How long a test waits for something that should come at once; generous for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A SCAIP message of type `mty` (`ME` a press, `RE` a cancel) from Larvik's alarm
/// `SA-7734001`, the supplier calling the event `reference`.
fn alarm(reference: &str, mty: &str) -> Vec<u8> {
    format!(
        "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>SA-7734001</cid><dty>005</dty><mty>{mty}</mty><stc>001</stc><lco>010</lco></mrq>"
    )
    .into_bytes()
}

/// Posts alarm message `reference` of type `mty` on `base` (`http://host:port`): (status, reply).
async fn post_alarm(client: &reqwest::Client, base: &str, token: &str, reference: &str, mty: &str) -> (u16, Value) {
    let response = crate::wire::ingest(client, base, token, ALARM, "application/xml", alarm(reference, mty)).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Ingests alarm `reference` on `base` and checks it was stored.
async fn raise(client: &reqwest::Client, base: &str, token: &str, reference: &str) {
    let (status, reply) = post_alarm(client, base, token, reference, "ME").await;
    assert_eq!((status, reply["results"][0]["eventsStored"].as_u64()), (200, Some(1)), "{reference}: {reply}");
}

/// Larvik's fleet with live reference adapters; its integration's and its case worker's tokens.
async fn live_fleet(app: &TestApp) -> (Fleet, String, String) {
    let fleet = Fleet::new(app).await;
    live_reference_adapters(app, &fleet).await;
    let (integration, case_worker) = (fleet.integration_token(app), fleet.case_worker_token(app));
    (fleet, integration, case_worker)
}

/// A graphql-transport-ws socket to the server at `addr` (`host:port`), signed in with `token`.
async fn socket(addr: &str, token: &str) -> Socket {
    let mut request = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(next_message(&mut ws).await["type"], "connection_ack");
    ws
}

/// Starts the live device-event subscription on `ws`, after `after` when given.
async fn subscribe(ws: &mut Socket, after: Option<&str>) {
    let message =
        json!({ "id": "live", "type": "subscribe", "payload": { "query": LIVE, "variables": { "after": after } } });
    ws.send(Message::text(message.to_string())).await.unwrap();
}

/// The next text message on `ws`, within [`PATIENCE`].
async fn next_message(ws: &mut Socket) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let frame =
            tokio::time::timeout_at(deadline, ws.next()).await.expect("a message in time").expect("open").unwrap();
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// The next delivery on `ws`: (sequence, supplier event id).
async fn delivery(ws: &mut Socket) -> (u64, String) {
    let message = next_message(ws).await;
    assert_eq!(message["type"], "next", "{message}");
    let delivered = &message["payload"]["data"]["deviceEventReceived"];
    let sequence = delivered["sequence"].as_str().unwrap_or_else(|| panic!("a sequence: {message}"));
    let id = delivered["event"]["supplierEventId"].as_str().unwrap().to_string();
    (sequence.parse().expect("a decimal sequence"), id)
}

/// Subscribes on a fresh socket and proves the subscription is live: raises `probe` and waits
/// for it (the server starts subscriptions asynchronously). Returns the socket and the probe's
/// sequence.
async fn live_socket(addr: &str, token: &str, raise_on: (&reqwest::Client, &str, &str), probe: &str) -> (Socket, u64) {
    let mut ws = socket(addr, token).await;
    subscribe(&mut ws, None).await;
    let (client, base, integration) = raise_on;
    // Until the subscription runs, probes go unheard; each later one proves it started.
    for attempt in 0.. {
        assert!(attempt < 60, "the subscription never started");
        let reference = format!("{probe}-{attempt}");
        raise(client, base, integration, &reference).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
            if let Message::Text(text) = frame {
                let message: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(message["type"], "next", "{message}");
                let delivered = &message["payload"]["data"]["deviceEventReceived"];
                let sequence = delivered["sequence"].as_str().unwrap().parse().unwrap();
                if delivered["event"]["supplierEventId"] == reference.as_str() {
                    return (ws, sequence);
                }
            }
        }
    }
    unreachable!()
}

on_both_backends! {
    /// One instance: a subscriber that drops and comes back with the last sequence it saw gets
    /// the events stored meanwhile, in order and each once, then live ones; every delivery
    /// carries its sequence, and the sequences increase.
    async fn a_subscriber_resumes_after_its_last_sequence_exactly_once_then_live(app) {
        let (fleet, integration, case_worker) = live_fleet(&app).await;
        let base = app.url("");
        let addr = app.addr.to_string();

        let (mut ws, first) = live_socket(&addr, &case_worker, (&app.client, &base, &integration), "A-1").await;
        raise(&app.client, &base, &integration, "A-2").await;
        let (second, id) = delivery(&mut ws).await;
        assert_eq!(id, "A-2");
        assert!(second > first, "{second} after {first}");
        drop(ws);

        for reference in ["A-3", "A-4", "A-5"] {
            raise(&app.client, &base, &integration, reference).await;
        }
        let mut ws = socket(&addr, &case_worker).await;
        subscribe(&mut ws, Some(&second.to_string())).await;
        let mut missed = Vec::new();
        for _ in 0..3 {
            missed.push(delivery(&mut ws).await);
        }
        let ids: Vec<&str> = missed.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids, ["A-3", "A-4", "A-5"]);
        assert!(missed.windows(2).all(|w| w[0].0 < w[1].0) && missed[0].0 > second, "{missed:?}");
        // Then live, with nothing repeated: the next delivery is the next event.
        raise(&app.client, &base, &integration, "A-6").await;
        let (sixth, id) = delivery(&mut ws).await;
        assert_eq!(id, "A-6");
        assert!(sixth > missed[2].0);

        // Resuming is authorised like the live stream: Asker hears none of Larvik's events,
        // missed or live, and no error either.
        let asker = app.token(&fleet.other_municipality, &[Role::CaseWorker]);
        let mut other = socket(&addr, &asker).await;
        subscribe(&mut other, Some(&first.to_string())).await;
        let mut admin = socket(&addr, &app.admin_token()).await;
        subscribe(&mut admin, Some(&sixth.to_string())).await;
        raise(&app.client, &base, &integration, "A-7").await;
        assert_eq!(delivery(&mut admin).await.1, "A-7", "the admin hears every device's events");
        drop(admin);
        // Asker's own device speaks: its first delivery is its own event, none of Larvik's.
        assert_eq!(crate::devices::register_device(&app, &asker, ALARM, "SA-9000001").await["userErrors"], json!([]));
        let asker_alarm = "<mrq><ver>01.00</ver><ref>B-1</ref><cid>SA-9000001</cid><dty>005</dty><mty>ME</mty><stc>001</stc><lco>010</lco></mrq>";
        let (status, _) = ingest(&app, &integration, ALARM, "application/xml", asker_alarm.as_bytes().to_vec()).await;
        assert_eq!(status, 200);
        assert_eq!(delivery(&mut other).await.1, "B-1");
    }
}

on_both_backends! {
    /// A sequence the outbox no longer keeps is refused with `SEQUENCE_EXPIRED` (and where it
    /// was pruned through); one never handed out with `SEQUENCE_UNKNOWN`; the latest one starts
    /// a subscription.
    async fn a_sequence_older_than_the_outbox_keeps_is_refused_with_its_code(app) {
        let app = app.respawn_with(&[("VELFERD_LIVE_RETENTION_SECONDS", "1")]).await;
        let (_fleet, integration, case_worker) = live_fleet(&app).await;
        let base = app.url("");
        for reference in ["E-1", "E-2"] {
            raise(&app.client, &base, &integration, reference).await;
        }
        // Pruning runs every quarter of the retention: wait until it has removed those two.
        let pruned_through = async || {
            let row = app
                .db()
                .read()
                .query_one_raw(Statement::from_string(
                    app.db().read().get_database_backend(),
                    "SELECT value FROM outbox_counter WHERE name = 'pruned_through'",
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<i64>("", "value").unwrap()
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while pruned_through().await < 2 {
            assert!(tokio::time::Instant::now() < deadline, "the outbox was never pruned");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let addr = app.addr.to_string();
        let mut ws = socket(&addr, &case_worker).await;
        subscribe(&mut ws, Some("0")).await;
        let refused = next_message(&mut ws).await;
        assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "SEQUENCE_EXPIRED", "{refused}");
        let through: i64 = refused["payload"]["errors"][0]["extensions"]["prunedThrough"].as_str().unwrap().parse().unwrap();
        assert!(through >= 2, "{refused}");
        assert_eq!(next_message(&mut ws).await["type"], "complete");

        let latest = velferd::live::last_sequence(app.db().read()).await.unwrap();
        let mut ws = socket(&addr, &case_worker).await;
        subscribe(&mut ws, Some(&(latest + 1000).to_string())).await;
        let refused = next_message(&mut ws).await;
        assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "SEQUENCE_UNKNOWN", "{refused}");

        // Not a sequence at all: refused as bad input.
        for bad in [json!("forty-two"), json!(-1)] {
            let mut ws = socket(&addr, &case_worker).await;
            let message = json!({ "id": "live", "type": "subscribe", "payload": { "query": LIVE, "variables": { "after": bad } } });
            ws.send(Message::text(message.to_string())).await.unwrap();
            let refused = next_message(&mut ws).await;
            assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{bad}: {refused}");
        }

        // The latest sequence is still in reach: resuming there starts the subscription.
        let mut ws = socket(&addr, &case_worker).await;
        subscribe(&mut ws, Some(&latest.to_string())).await;
        raise(&app.client, &base, &integration, "E-3").await;
        let (sequence, id) = delivery(&mut ws).await;
        assert_eq!((sequence, id.as_str()), (latest as u64 + 1, "E-3"));
    }
}

on_both_backends! {
    /// A subscriber that does not take what it is sent is dropped once its buffer is full,
    /// with a last error naming the last sequence it took; ingest never waits for it, and
    /// another subscriber hears everything. Resuming after that sequence gets the rest.
    async fn a_slow_subscriber_is_dropped_with_its_last_sequence_while_ingest_goes_on(app) {
        let app = app.respawn_with(&[("VELFERD_LIVE_SUBSCRIBER_BUFFER", "2")]).await;
        let (_fleet, integration, case_worker) = live_fleet(&app).await;
        let base = app.url("");
        let addr = app.addr.to_string();
        let (mut fast, probe) = live_socket(&addr, &case_worker, (&app.client, &base, &integration), "S-0").await;

        // The slow one subscribes below GraphQL, where not reading is in the test's hands (a
        // WebSocket client that stops reading is buffered by the kernel for megabytes first).
        let mut slow = app.live().subscribe(Filter::everything(&[Topic::DeviceEvent]), None).await.unwrap();
        let references = ["S-1", "S-2", "S-3", "S-4", "S-5"];
        // One at a time: the fast subscriber, with a buffer of two as well, takes each before
        // the next is raised; ingest answers every one while the slow one takes nothing.
        let mut heard = Vec::new();
        for reference in references {
            raise(&app.client, &base, &integration, reference).await;
            heard.push(delivery(&mut fast).await);
        }
        assert_eq!(heard.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>(), references);
        assert!(heard[0].0 > probe);

        // The slow subscriber still has the two it had room for, then the error.
        let mut taken = Vec::new();
        let last = loop {
            match tokio::time::timeout(PATIENCE, slow.next()).await.expect("in time").expect("an error ends it") {
                Ok(item) => taken.push(item.sequence as u64),
                Err(velferd::live::LiveError::TooSlow { last }) => break last as u64,
                Err(other) => panic!("{other}"),
            }
        };
        assert_eq!(taken, [heard[0].0, heard[1].0]);
        assert_eq!(last, heard[1].0);
        assert!(slow.next().await.is_none(), "the stream ends after the error");

        // It resumes where it stood, over GraphQL: the three it missed, in order.
        let mut resumed = socket(&addr, &case_worker).await;
        subscribe(&mut resumed, Some(&last.to_string())).await;
        for expected in &heard[2..] {
            assert_eq!(&delivery(&mut resumed).await, expected);
        }
    }
}

on_both_backends! {
    /// A row whose wake-up never came (a `NOTIFY` lost while an instance's listener was
    /// reconnecting) still reaches subscribers: every instance also reads the outbox on a timer.
    async fn a_missed_wake_up_is_covered_by_the_poll(app) {
        let app = app.respawn_with(&[("VELFERD_LIVE_POLL_MS", "200")]).await;
        let mut stream = app.live().subscribe(Filter::everything(&[Topic::DeviceEvent]), None).await.unwrap();
        // Written as `Live::publish` writes it, but with no NOTIFY and no wake-up.
        let db = app.db().write();
        let backend = db.get_database_backend();
        let txn = db.begin().await.unwrap();
        let row = txn
            .query_one_raw(Statement::from_string(
                backend,
                "UPDATE outbox_counter SET value = value + 1 WHERE name = 'sequence' RETURNING value",
            ))
            .await
            .unwrap()
            .unwrap();
        let sequence: i64 = row.try_get("", "value").unwrap();
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => "INSERT INTO outbox (id, topic, payload, created_at) VALUES ($1, 'device-event', '{}', now())",
                _ => "INSERT INTO outbox (id, topic, payload, created_at) VALUES (?, 'device-event', '{}', '2026-12-06T08:00:00+00:00')",
            },
            [sequence.into()],
        ))
        .await
        .unwrap();
        txn.commit().await.unwrap();
        let item = tokio::time::timeout(PATIENCE, stream.next()).await.expect("polled in time").unwrap().unwrap();
        assert_eq!(item.sequence, sequence);
    }
}

/// `count` transactions on PostgreSQL, each publishing then waiting a different time before it
/// commits; returns when all committed.
async fn concurrent_publishers(app: &TestApp, count: usize) {
    let mut tasks = Vec::new();
    for n in 0..count {
        let (db, live) = (app.db().clone(), app.live().clone());
        tasks.push(tokio::spawn(async move {
            let txn = db.write().begin().await.unwrap();
            live.publish(&txn, Topic::DeviceEvent, Scope::default(), &json!({ "n": n })).await.unwrap();
            tokio::time::sleep(Duration::from_millis(((n * 7) % 5) as u64 * 10)).await;
            txn.commit().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// PostgreSQL sessions of this test's database that wait for a lock.
async fn waiting_for_a_lock(app: &TestApp) -> i64 {
    let db = app.db().read();
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "waiting").unwrap()
}

/// Must show 3, PostgreSQL: a transaction that announces first and commits last cannot be
/// overtaken — the one that announces after it waits for its commit — so a reader of "after
/// the last sequence I saw" skips nothing. Then many transactions that commit in a shuffled
/// order: the subscriber gets every one, with consecutive sequences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_committing_out_of_order_lose_nothing() {
    let Some(app) = TestApp::spawn_postgres().await else { return };
    let mut stream = app.live().subscribe(Filter::everything(&[Topic::DeviceEvent]), None).await.unwrap();
    let start = velferd::live::last_sequence(app.db().read()).await.unwrap();

    let early = app.db().write().begin().await.unwrap();
    let first =
        app.live().publish(&early, Topic::DeviceEvent, Scope::default(), &json!({ "n": "early" })).await.unwrap();
    assert_eq!(first, start + 1);
    let (db, live) = (app.db().clone(), app.live().clone());
    let late = tokio::spawn(async move {
        let txn = db.write().begin().await.unwrap();
        let sequence = live.publish(&txn, Topic::DeviceEvent, Scope::default(), &json!({ "n": "late" })).await.unwrap();
        txn.commit().await.unwrap();
        sequence
    });
    // The later transaction waits on the counter row the first one holds.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while waiting_for_a_lock(&app).await < 1 {
        assert!(tokio::time::Instant::now() < deadline, "the second publisher never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!late.is_finished());
    early.commit().await.unwrap();
    assert_eq!(late.await.unwrap(), first + 1, "the later commit takes the later sequence");

    concurrent_publishers(&app, 20).await;
    let mut sequences = Vec::new();
    let mut payloads = Vec::new();
    while sequences.len() < 22 {
        let item = tokio::time::timeout(PATIENCE, stream.next()).await.expect("in time").unwrap().unwrap();
        sequences.push(item.sequence);
        payloads.push(item.payload::<Value>().unwrap()["n"].to_string());
    }
    assert_eq!(sequences, ((start + 1)..=(start + 22)).collect::<Vec<_>>(), "consecutive, in commit order");
    assert_eq!(&payloads[..2], ["\"early\"", "\"late\""]);
    let mut numbers: Vec<String> = payloads[2..].to_vec();
    numbers.sort_by_key(|n| n.parse::<u32>().unwrap());
    assert_eq!(numbers, (0..20).map(|n| n.to_string()).collect::<Vec<_>>(), "every transaction heard once");
}

/// Larvik's live fleet on `app`'s database and two `velferd serve` processes on it, one to
/// ingest on and one to subscribe to: (integration token, case worker token, the two).
async fn two_processes(app: &TestApp) -> (String, String, Server, Server) {
    let (_fleet, integration, case_worker) = live_fleet(app).await;
    let url = &app.settings.database_url;
    (integration, case_worker, Server::start(url, &[]), Server::start(url, &[]))
}

/// Must show 3: two `velferd serve` processes on one PostgreSQL database. An event ingested on
/// one reaches a subscriber on the other; the subscriber drops, three events are ingested, and
/// it comes back — to either process — with its last sequence and gets exactly those three, in
/// order, then live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_postgres_database_share_live_updates() {
    let Some(app) = TestApp::spawn_with(Backend::Postgres, Options::default()).await else { return };
    let (integration, case_worker, ingesting, subscribed) = two_processes(&app).await;
    let client = &app.client;

    // Ingest on one process, hear it on the other.
    let (mut ws, probe) =
        live_socket(subscribed.addr(), &case_worker, (client, &ingesting.base, &integration), "P-0").await;
    raise(client, &ingesting.base, &integration, "P-1").await;
    let (last_seen, id) = delivery(&mut ws).await;
    assert_eq!(id, "P-1");
    assert!(last_seen > probe);
    drop(ws);

    for reference in ["P-2", "P-3", "P-4"] {
        raise(client, &ingesting.base, &integration, reference).await;
    }
    // Back on the subscriber's process, and on the ingesting one: the same three, in order.
    for server in [&subscribed, &ingesting] {
        let mut ws = socket(server.addr(), &case_worker).await;
        subscribe(&mut ws, Some(&last_seen.to_string())).await;
        let mut missed = Vec::new();
        for _ in 0..3 {
            missed.push(delivery(&mut ws).await);
        }
        assert_eq!(
            missed.iter().map(|(_, id)| id.as_str()).collect::<Vec<_>>(),
            ["P-2", "P-3", "P-4"],
            "{}",
            server.base
        );
        assert!(missed.windows(2).all(|w| w[0].0 < w[1].0));
        if server.base == subscribed.base {
            // Then live from the other process, nothing repeated.
            raise(client, &ingesting.base, &integration, "P-5").await;
            assert_eq!(delivery(&mut ws).await.1, "P-5");
        }
    }
}

const ALERTS: &str = "subscription($after: Sequence) { alertRaised(afterSequence: $after) {
    sequence alert { id kind status } } }";

/// Alarm unit `SA-7734001` sends SCAIP message type `mty` (`ME` a press, `RE` a cancel) on `base`.
async fn signal(client: &reqwest::Client, base: &str, token: &str, reference: &str, mty: &str) {
    let (status, reply) = post_alarm(client, base, token, reference, mty).await;
    assert_eq!(status, 200, "{reference}: {reply}");
}

/// The next `alertRaised` delivery on `ws`: (sequence, alert id).
async fn raised(ws: &mut Socket) -> (u64, String) {
    let message = next_message(ws).await;
    assert_eq!(message["type"], "next", "{message}");
    let delivered = &message["payload"]["data"]["alertRaised"];
    assert_eq!(
        (&delivered["alert"]["kind"], &delivered["alert"]["status"]),
        (&json!("alarm-button"), &json!("RAISED"))
    );
    let sequence = delivered["sequence"].as_str().unwrap_or_else(|| panic!("a sequence: {message}"));
    (sequence.parse().unwrap(), delivered["alert"]["id"].as_str().unwrap().to_string())
}

async fn subscribe_alerts(ws: &mut Socket, after: u64) {
    let message = json!({ "id": "alerts", "type": "subscribe",
        "payload": { "query": ALERTS, "variables": { "after": after.to_string() } } });
    ws.send(Message::text(message.to_string())).await.unwrap();
}

/// Must show 3, for alerts: an alert raised from a message ingested on one `velferd serve`
/// process reaches a subscriber on another; the subscriber drops, three alerts are raised, and
/// it comes back with its last sequence to exactly those three, in order, then the next live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_alerts_and_a_returning_subscriber_gets_exactly_the_three_it_missed() {
    let Some(app) = TestApp::spawn_with(Backend::Postgres, Options::default()).await else { return };
    let (integration, case_worker, ingesting, subscribed) = two_processes(&app).await;
    let client = &app.client;

    // From the outbox's start: nothing raised before the subscription can be missed.
    let mut ws = socket(subscribed.addr(), &case_worker).await;
    subscribe_alerts(&mut ws, 0).await;
    signal(client, &ingesting.base, &integration, "A-1", "ME").await;
    let (last_seen, first) = raised(&mut ws).await;
    drop(ws);

    // Each cancel closes the open alert, so each press after it raises a new one.
    for n in 2..=4 {
        signal(client, &ingesting.base, &integration, &format!("C-{n}"), "RE").await;
        signal(client, &ingesting.base, &integration, &format!("A-{n}"), "ME").await;
    }
    let mut ws = socket(subscribed.addr(), &case_worker).await;
    subscribe_alerts(&mut ws, last_seen).await;
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(raised(&mut ws).await);
    }
    assert!(missed.windows(2).all(|w| w[0].0 < w[1].0), "in order: {missed:?}");
    let ids: std::collections::BTreeSet<&str> = missed.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), 3, "three different alerts: {missed:?}");
    assert!(!ids.contains(first.as_str()), "the alert seen before the drop is not repeated");
    // Then live, with nothing repeated in between.
    signal(client, &ingesting.base, &integration, "C-5", "RE").await;
    signal(client, &ingesting.base, &integration, "A-5", "ME").await;
    let (sequence, fifth) = raised(&mut ws).await;
    assert!(sequence > missed[2].0 && !ids.contains(fifth.as_str()) && fifth != first);
}

on_both_backends! {
    /// The hub offers a subscriber only what its filter admits — its scope, then its test — so
    /// a flood of other municipalities' changes neither wakes nor drops it (its buffer holds
    /// two here), while a subscriber to everything is dropped by the same flood. Resuming reads
    /// the stored rows through the same filter.
    async fn a_subscriber_hears_only_what_its_filter_admits_and_others_changes_never_drop_it(app) {
        let app = app.respawn_with(&[("VELFERD_LIVE_SUBSCRIBER_BUFFER", "2")]).await;
        let live = app.live();
        let (larvik, bergen) = (Scope { municipality_id: Some(1), organization_id: Some(9) }, Scope {
            municipality_id: Some(2),
            organization_id: Some(9),
        });
        let in_larvik = Filter::new(&[Topic::DeviceEvent], Interest::Scoped { municipality: Some(1), organization: None });
        let real_ones = in_larvik.clone().and(|item| item.decoded::<Value>().is_some_and(|p| p["test"] == false));
        let mut scoped = live.subscribe(in_larvik.clone(), None).await.unwrap();
        let mut tested = live.subscribe(real_ones, None).await.unwrap();
        let mut everything = live.subscribe(Filter::everything(&[Topic::DeviceEvent]), None).await.unwrap();
        let start = velferd::live::last_sequence(app.db().read()).await.unwrap();

        let mut announced: Vec<_> =
            (0..10).map(|n| Announcement::new(Topic::DeviceEvent, bergen, &json!({ "n": n, "test": false }))).collect();
        announced.push(Announcement::new(Topic::DeviceEvent, larvik, &json!({ "n": "test", "test": true })));
        announced.push(Announcement::new(Topic::DeviceEvent, larvik, &json!({ "n": "real", "test": false })));
        let txn = app.db().write().begin().await.unwrap();
        live.publish_all(&txn, announced).await.unwrap();
        txn.commit().await.unwrap();

        let next = async |stream: &mut velferd::live::LiveStream| {
            let item = tokio::time::timeout(PATIENCE, stream.next()).await.expect("in time").expect("open");
            item.map(|item| (item.sequence - start, item.payload::<Value>().unwrap()["n"].to_string()))
        };
        assert_eq!(next(&mut scoped).await.unwrap(), (11, "\"test\"".to_string()));
        assert_eq!(next(&mut scoped).await.unwrap(), (12, "\"real\"".to_string()));
        assert_eq!(next(&mut tested).await.unwrap(), (12, "\"real\"".to_string()));
        // The control: the first two, then dropped as too slow.
        assert_eq!(next(&mut everything).await.unwrap().0, 1);
        assert_eq!(next(&mut everything).await.unwrap().0, 2);
        assert!(matches!(next(&mut everything).await, Err(velferd::live::LiveError::TooSlow { .. })));

        // Neither filtered subscriber was dropped: a later change of theirs reaches both.
        let txn = app.db().write().begin().await.unwrap();
        live.publish(&txn, Topic::DeviceEvent, larvik, &json!({ "n": "later", "test": false })).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(next(&mut scoped).await.unwrap(), (13, "\"later\"".to_string()));
        assert_eq!(next(&mut tested).await.unwrap(), (13, "\"later\"".to_string()));

        // Resuming from before the flood reads only Larvik's rows from the table.
        let mut resumed = live.subscribe(in_larvik, Some(start)).await.unwrap();
        for expected in [(11, "\"test\""), (12, "\"real\""), (13, "\"later\"")] {
            assert_eq!(next(&mut resumed).await.unwrap(), (expected.0, expected.1.to_string()));
        }
    }
}

#[test]
fn an_interest_admits_its_municipality_and_its_organisation_only() {
    let scope = |m, o| Scope { municipality_id: m, organization_id: o };
    let case_worker = Interest::Scoped { municipality: Some(1), organization: None };
    let supplier = Interest::Scoped { municipality: None, organization: Some(9) };
    assert!(case_worker.admits(&scope(Some(1), Some(9))));
    assert!(!case_worker.admits(&scope(Some(2), Some(9))));
    assert!(!case_worker.admits(&scope(None, None)), "no scope is nobody's");
    assert!(supplier.admits(&scope(Some(2), Some(9))));
    assert!(!supplier.admits(&scope(Some(1), None)));
    assert!(Interest::Everything.admits(&scope(None, None)));
    let nobody = Interest::Scoped { municipality: None, organization: None };
    assert!(!nobody.admits(&scope(None, None)) && !nobody.admits(&scope(Some(1), Some(9))));
}
