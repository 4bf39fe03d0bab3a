//! Velferd's reference adapter for the contract's version 2
//! (`velferd:device@2.0.0`): a home-sensor hub (digitalt tilsyn) whose door,
//! bed, smoke, water and fall sensors report through it. Version 2 lets each
//! event name both the sensor that saw it (`device-serial`) and the hub that
//! relayed it (`gateway-serial`); the hub's own events (heartbeat, power,
//! contact) name the hub alone.
//!
//! A message is one hub's batch:
//!
//! ```json
//! { "hub": "HUB-5521007",
//!   "events": [ { "id": "h-1", "sensor": "DS-0042", "type": "door_opened",
//!                 "at": "2026-11-30T22:13:58+01:00", "zone": "hall" } ] }
//! ```
//!
//! `sensor` is left out (or equal to `hub`) for the hub's own events; `at` is
//! optional (the hub forwards some sensors' events without a time: then the
//! event happened when Velferd received the message); `zone` is a coarse
//! place in the home; `battery` (percent) goes with `battery_low`.

use std::borrow::Cow;

use serde::Deserialize;
use velferd_adapter_sdk::v2::*;

/// Content types this adapter accepts.
const CONTENT_TYPES: [&str; 2] = ["application/json", "application/vnd.velferd.reference-hub+json"];

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    hub: Cow<'a, str>,
    events: Vec<Item<'a>>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    sensor: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    zone: Option<Cow<'a, str>>,
    #[serde(default)]
    battery: Option<u8>,
}

struct SensorHub;

impl Adapter for SensorHub {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            supplier: "Velferd reference".into(),
            product: "Reference home-sensor hub (JSON)".into(),
            adapter_version: env!("CARGO_PKG_VERSION").into(),
            device_classes: vec![DeviceClass::HomeSensor],
            content_types: CONTENT_TYPES.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        message.require_content_type(&CONTENT_TYPES)?;
        let batch: Batch = serde_json::from_slice(&message.payload)
            .map_err(|e| DecodeError::Malformed(format!("invalid JSON: {e}")))?;
        if batch.hub.is_empty() || batch.hub.len() > 64 {
            return Err(DecodeError::Malformed("\"hub\" must be 1 to 64 bytes".into()));
        }
        batch.events.iter().map(|item| event(&batch.hub, item, &message.received_at)).collect()
    }

    fn encode_command(device_serial: String, command: Command) -> Result<EncodedCommand, CommandError> {
        match command {
            Command::TestAlarm => Ok(EncodedCommand {
                content_type: "application/json".into(),
                body: format!("{{\"hub\":{},\"command\":\"test\"}}", serde_json::Value::from(device_serial))
                    .into_bytes(),
            }),
            Command::SetDispensingSchedule(_) => {
                Err(CommandError::Unsupported("a sensor hub has no dispensing schedule".into()))
            }
        }
    }
}

fn event(hub: &str, item: &Item, received_at: &Timestamp) -> Result<Event, DecodeError> {
    let malformed = |m: String| DecodeError::Malformed(format!("event {:?}: {m}", truncate(&item.id, 40)));
    if item.id.is_empty() || item.id.len() > 128 {
        return Err(malformed("\"id\" must be 1 to 128 bytes".into()));
    }
    let sensor = item.sensor.as_deref().filter(|s| *s != hub);
    if sensor.is_some_and(|s| s.is_empty() || s.len() > 64) {
        return Err(malformed("\"sensor\" must be 1 to 64 bytes".into()));
    }
    let occurred_at = match &item.at {
        Some(at) => Timestamp::parse_rfc3339(at).map_err(malformed)?,
        None => *received_at,
    };
    let place = || Place { location: item.zone.as_deref().map(|z| truncate(z, 64).to_owned()) };
    let battery = || Battery { level_percent: item.battery.filter(|p| *p <= 100) };
    use Severity::*;
    let (kind, severity) = match item.kind.as_ref() {
        "door_opened" => (EventKind::DoorOpened(place()), Normal),
        "door_closed" => (EventKind::DoorClosed(place()), Normal),
        "left_home" => (EventKind::LeftHome(place()), Moderate),
        "left_bed" => (EventKind::LeftBed(place()), Moderate),
        "no_movement" => (EventKind::NoMovement(place()), Serious),
        "fall" => (EventKind::Fall(place()), Critical),
        "smoke" => (EventKind::Fire(place()), Critical),
        "water_leak" => (EventKind::WaterLeak(place()), Serious),
        "battery_low" => (EventKind::BatteryLow(battery()), Moderate),
        "heartbeat" => (EventKind::Heartbeat, Normal),
        "offline" => (EventKind::Offline, Serious),
        "online" => (EventKind::Online, Normal),
        "mains_lost" => (EventKind::MainsPowerLost, Moderate),
        "mains_restored" => (EventKind::MainsPowerRestored, Normal),
        other => {
            return Err(DecodeError::Unsupported(format!("event type {:?}", truncate(other, 40))));
        }
    };
    Ok(Event {
        supplier_event_id: item.id.to_string(),
        device_serial: sensor.unwrap_or(hub).to_owned(),
        gateway_serial: sensor.map(|_| hub.to_owned()),
        occurred_at,
        kind,
        severity,
        detail: None,
    })
}

export_adapter!(SensorHub);
