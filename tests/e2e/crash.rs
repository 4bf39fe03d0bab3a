//! Crash safety (issue 16): a `velferd serve` process is killed with SIGKILL twenty times at
//! random moments while eight senders post alarms, and started again each time. The senders
//! behave as real ones do: a message that was not acknowledged (refused connection, broken
//! reply, 5xx) is sent again, to whichever process runs now. At the end every acknowledged
//! event is stored exactly once, the outbox's sequences have no gaps and announce each event
//! once, no alert was raised twice, and each raised alert has its webhook delivery.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};

use crate::alerts::Centre;
use crate::devices::ALARM;
use crate::receiver::Receiver;
use crate::serve::Server;
use crate::support::{Backend, Options, TestApp};
use crate::webhooks::{FAST, pairs, registered};

const SENDERS: usize = 8;
const KILLS: usize = 20;
/// The alarm units of the test's municipality; alarms rotate over them.
const UNITS: [&str; 3] = ["SA-7734001", "SA-7734002", "SA-7734003"];

fn alarm(unit: &str, reference: &str) -> Vec<u8> {
    format!(
        "<mrq><ver>01.00</ver><ref>{reference}</ref><cid>{unit}</cid><dty>005</dty><mty>ME</mty><stc>001</stc><lco>010</lco></mrq>"
    )
    .into_bytes()
}

/// Posts one alarm to the process at `base`; true when it was acknowledged.
async fn acknowledged(client: &reqwest::Client, base: &str, token: &str, unit: &str, reference: &str) -> bool {
    let sent = client
        .post(format!("http://{base}/ingest/{ALARM}"))
        .bearer_auth(token)
        .header("content-type", "application/xml")
        .body(alarm(unit, reference))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let Ok(response) = sent else { return false };
    let status = response.status().as_u16();
    let Ok(body) = response.json::<serde_json::Value>().await else { return false };
    match status {
        200 => {
            let answer = body["results"][0]["status"].as_str();
            assert!(matches!(answer, Some("ACCEPTED" | "DUPLICATE")), "{reference}: 200 but {body}");
            true
        }
        500..=599 => false,
        _ => panic!("{reference}: {status} {body}"),
    }
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

async fn run(backend: Backend) {
    let receiver = Receiver::start().await;
    // The in-process server sets up and reads the database; the killed processes do the work.
    let mut setup = pairs(&receiver, FAST);
    setup.push(("VELFERD_WEBHOOK_CONCURRENCY", "0".into()));
    let Some(app) = TestApp::spawn_with(backend, Options { pairs: setup, demo: false }).await else { return };
    let world = Centre::new(&app).await;
    registered(&app, &world.municipality_admin(&app), &receiver.url("/hook"), &["ALERT_RAISED"]).await;
    let token = world.fleet.integration_token(&app);
    let database_url = app.settings.database_url.clone();
    let mut process = pairs(&receiver, FAST);
    // A killed process's lease on a delivery must run out before another process sends it.
    process.push(("VELFERD_WEBHOOK_LEASE", "3s".into()));
    process.push(("VELFERD_OUTBOUND_TIMEOUT", "2s".into()));

    let server = Server::start(&database_url, &process);
    let base = Arc::new(RwLock::new(server.addr().to_string()));
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let acknowledgements = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (client, token, base) = (app.client.clone(), token.clone(), base.clone());
        let (stop, in_flight, acknowledgements) = (stop.clone(), in_flight.clone(), acknowledgements.clone());
        senders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let reference = format!("crash-{sender}-{n}");
                let unit = UNITS[n % UNITS.len()];
                loop {
                    let current = base.read().unwrap().clone();
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let done = acknowledged(&client, &current, &token, unit, &reference).await;
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    if done {
                        acknowledgements.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sent.push(reference);
            }
            sent
        }));
    }

    // Kill at random moments of steady ingest (each process first acknowledges a round of
    // messages: a fresh one compiles the adapter before it decodes); count how often requests
    // were in flight at the kill.
    let mut server = Some(server);
    let mut hit_in_flight = 0;
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..KILLS {
        let before = acknowledgements.load(Ordering::Relaxed);
        let started = Instant::now();
        while acknowledgements.load(Ordering::Relaxed) < before + SENDERS {
            assert!(started.elapsed() < Duration::from_secs(60), "the new process acknowledges nothing");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(150 + seed % 600)).await;
        if in_flight.load(Ordering::Relaxed) > 0 {
            hit_in_flight += 1;
        }
        server.take().unwrap().kill();
        let next = Server::start(&database_url, &process);
        *base.write().unwrap() = next.addr().to_string();
        server = Some(next);
    }
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = BTreeSet::new();
    for sender in senders {
        acknowledged.extend(sender.await.expect("a sender does not panic"));
    }

    let stored = references(&app).await;
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    eprintln!(
        "crash ({backend:?}): {KILLS} kills, {hit_in_flight} with requests in flight; {} alarms acknowledged, {} events stored",
        acknowledged.len(),
        stored.len()
    );
    assert_eq!(unique, acknowledged, "every acknowledged alarm is stored, and nothing else");
    assert_eq!(stored.len(), unique.len(), "no event is stored twice");

    let sequences = column(&app, "SELECT id FROM outbox ORDER BY id").await;
    let expected: Vec<i64> = (sequences[0]..sequences[0] + sequences.len() as i64).collect();
    assert_eq!(sequences, expected, "outbox sequences have no gaps");
    let announced = column(&app, "SELECT COUNT(*) FROM outbox WHERE topic = 'device-event'").await[0];
    assert_eq!(announced, stored.len() as i64, "each stored event is announced once");

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
    let ids: BTreeSet<String> = receiver
        .requests()
        .iter()
        .filter_map(|r| r.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("webhook-id")).map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(ids.len() as i64, alerts, "each alert's webhook-id arrived (a repeat keeps its id)");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_steady_ingest_loses_and_repeats_nothing_acknowledged_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_steady_ingest_loses_and_repeats_nothing_acknowledged_postgres() {
    run(Backend::Postgres).await;
}
