//! The demo feed: device messages in the reference adapters' own formats, POSTed over HTTP to
//! this server's `/ingest/{product}` with the supplier's integration token, exactly as a
//! supplier's platform would send them — so they are decoded by the active adapters, stored,
//! and raise whatever alerts the rules raise.
//!
//! The rhythm (seconds after start): a dispense at once and then every 5 s on the demo
//! dispensers in turn; a missed dose at 10 s (Larvik) and 20 s (Bergen) and then one every
//! 5 minutes; an alarm-button press every 30 s from 15 s on, on the alarm units in turn; a
//! heartbeat from every alarm unit every 60 s.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::devices::{ALARM, DISPENSER, DemoDevices, FLEET};
use crate::auth::{OrgRef, Role, TokenSigner};

/// A running feed; dropping it stops it.
pub struct DemoFeed {
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl DemoFeed {
    /// Messages ingest has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for DemoFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One message for one product.
struct Message {
    product: &'static str,
    content_type: &'static str,
    body: String,
}

/// The feed's script: what to send at second `t`, each event id unique to this run (`run`).
struct Script {
    run: String,
    next_id: u64,
}

impl Script {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("demo-{}-{}", self.run, self.next_id)
    }

    fn dispensers() -> Vec<&'static str> {
        FLEET.iter().flat_map(|(_, dispensers, _)| dispensers.iter().copied()).collect()
    }

    fn alarms() -> Vec<&'static str> {
        FLEET.iter().flat_map(|(_, _, alarms)| alarms.iter().copied()).collect()
    }

    fn dose(&mut self, serial: &str, missed: bool) -> Message {
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let dose = serde_json::json!({ "id": self.id(), "scheduled": now });
        let available = serde_json::json!({ "id": self.id(), "type": "dose_available", "at": now, "dose": dose });
        let outcome = if missed {
            serde_json::json!({ "id": self.id(), "type": "dose_missed", "at": now, "dose": dose,
                "text": "Dose not taken within 60 minutes (demo feed)" })
        } else {
            serde_json::json!({ "id": self.id(), "type": "dose_taken", "at": now,
                "dose": { "id": dose["id"], "scheduled": now, "assisted": false } })
        };
        let body = serde_json::json!({ "serial": serial, "events": [available, outcome] });
        Message { product: DISPENSER, content_type: "application/json", body: body.to_string() }
    }

    fn scaip(&mut self, unit: &str, message_type: &str, status: &str) -> Message {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrq><ver>01.00</ver><ref>{}</ref><cid>{unit}</cid>\
             <dty>005</dty><mty>{message_type}</mty><stc>{status}</stc><lco>010</lco><pri>1</pri></mrq>",
            self.id()
        );
        Message { product: ALARM, content_type: "application/xml", body }
    }

    /// The messages due at second `t` after start.
    fn at(&mut self, t: u64) -> Vec<Message> {
        let dispensers = Self::dispensers();
        let alarms = Self::alarms();
        let mut out = Vec::new();
        if t.is_multiple_of(5) {
            let serial = dispensers[(t / 5) as usize % dispensers.len()];
            out.push(self.dose(serial, false));
        }
        // Larvik's second dispenser, then Bergen's first: one missed dose each, early.
        if t == 10 {
            out.push(self.dose(FLEET[0].1[1], true));
        }
        if t == 20 {
            out.push(self.dose(FLEET[1].1[0], true));
        }
        if t >= 300 && t.is_multiple_of(300) {
            let serial = dispensers[(t / 300) as usize % dispensers.len()];
            out.push(self.dose(serial, true));
        }
        if t >= 15 && (t - 15).is_multiple_of(30) {
            let unit = alarms[((t - 15) / 30) as usize % alarms.len()];
            out.push(self.scaip(unit, "ME", "001"));
        }
        if t.is_multiple_of(60) {
            for unit in &alarms {
                out.push(self.scaip(unit, "PI", "000"));
            }
        }
        out
    }
}

/// Where to reach the server from inside it: a wildcard bind answers on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), a.port()),
        SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), a.port()),
        other => other,
    }
}

/// One HTTP/1.1 POST; answers the status code.
async fn post(addr: SocketAddr, token: &str, message: &Message) -> std::io::Result<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let head = format!(
            "POST /ingest/{} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: {}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            message.product,
            message.content_type,
            message.body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(message.body.as_bytes()).await?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await?;
        let line = String::from_utf8_lossy(&reply[..reply.len().min(64)]).into_owned();
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP reply: {line:?}")))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("no reply within 30 s")))
}

/// Sends the messages due at second `t`; counts the accepted ones.
async fn send_due(
    addr: SocketAddr,
    signer: &TokenSigner,
    devices: &DemoDevices,
    script: &mut Script,
    t: u64,
    accepted: &AtomicU64,
) {
    let roles = BTreeSet::from([Role::Integration]);
    // A short-lived token per round: the feed never holds one that outlives it by much.
    let token = signer.mint("demo-feed", OrgRef::Id(devices.supplier_id), roles, Duration::from_secs(300));
    for message in script.at(t) {
        match post(addr, &token, &message).await {
            Ok(200) => {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(status) => tracing::warn!(status, product = message.product, "demo feed: message not accepted"),
            Err(e) => tracing::warn!(error = %e, "demo feed: ingest did not answer"),
        }
    }
}

/// Starts the feed against the server listening on `addr`; returns once the first message has
/// been answered, so a caller that prints "listening" next has events to show.
pub async fn start(addr: SocketAddr, signer: TokenSigner, devices: DemoDevices) -> DemoFeed {
    let addr = reachable(addr);
    let accepted = Arc::new(AtomicU64::new(0));
    let mut script = Script { run: Utc::now().format("%Y%m%dT%H%M%S").to_string(), next_id: 0 };
    send_due(addr, &signer, &devices, &mut script, 0, &accepted).await;
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        for t in 1.. {
            tick.tick().await;
            send_due(addr, &signer, &devices, &mut script, t, &counter).await;
        }
    });
    DemoFeed { accepted, task }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(script: &mut Script, range: std::ops::Range<u64>) -> Vec<String> {
        range
            .flat_map(|t| script.at(t))
            .map(|m| {
                if m.product == DISPENSER {
                    if m.body.contains("dose_missed") { "missed".into() } else { "dispense".into() }
                } else if m.body.contains("<mty>ME</mty>") {
                    "press".into()
                } else {
                    "heartbeat".into()
                }
            })
            .collect()
    }

    #[test]
    fn the_first_minute_has_dispenses_two_missed_doses_two_presses_and_heartbeats() {
        let mut script = Script { run: "t".into(), next_id: 0 };
        let first_minute = kinds(&mut script, 0..60);
        let count = |k: &str| first_minute.iter().filter(|x| *x == k).count();
        assert_eq!((count("dispense"), count("missed"), count("press"), count("heartbeat")), (12, 2, 2, 4));
    }

    #[test]
    fn event_ids_never_repeat_within_a_run() {
        let mut script = Script { run: "t".into(), next_id: 0 };
        let ids: Vec<String> = (0..600).flat_map(|t| script.at(t)).map(|m| m.body).collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }
}
