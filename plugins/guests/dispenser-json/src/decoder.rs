//! The reference medication dispenser's JSON protocol, decoded into Velferd
//! events. Kept free of the component export so that the same code can be
//! compiled natively for the host's benchmark.
//!
//! A message is one device's batch of events:
//!
//! ```json
//! { "serial": "RD-100234",
//!   "events": [ { "id": "e-1", "type": "dose_taken", "at": "2026-11-22T07:04:12Z",
//!                 "dose": { "id": "d-1", "scheduled": "2026-11-22T07:00:00Z", "assisted": false } } ] }
//! ```

use serde::Deserialize;
use velferd_adapter_sdk::{
    AdapterInfo, Assistance, Battery, Command, CommandError, DecodeError, DeviceClass, Dose, EncodedCommand, Event,
    EventKind, Fault, Message, Severity, Supply, Timestamp, truncate,
};

/// Content types this adapter accepts.
pub const CONTENT_TYPES: [&str; 2] = ["application/json", "application/vnd.velferd.reference-dispenser+json"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<'a> {
    #[serde(borrow)]
    serial: std::borrow::Cow<'a, str>,
    events: Vec<Item<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    at: std::borrow::Cow<'a, str>,
    #[serde(default)]
    dose: Option<DoseJson<'a>>,
    #[serde(default)]
    doses_remaining: Option<u32>,
    #[serde(default)]
    battery: Option<u8>,
    #[serde(default, borrow)]
    code: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DoseJson<'a> {
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    scheduled: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    assisted: Option<bool>,
}

/// What the adapter says about itself.
pub fn describe() -> AdapterInfo {
    AdapterInfo {
        supplier: "Velferd reference".into(),
        product: "Reference medication dispenser (JSON)".into(),
        adapter_version: env!("CARGO_PKG_VERSION").into(),
        device_classes: vec![DeviceClass::MedicationDispenser],
        content_types: CONTENT_TYPES.iter().map(|c| c.to_string()).collect(),
    }
}

/// What changed between releases of the reference dispenser's adapter. The `1.1.0` release
/// (crate `dispenser-json-next`, built from this same file) understands two event types
/// `1.0.0` refuses and rates a missed dose critical; Velferd's tests use the pair to show
/// review by replay and dead-letter replay after a fix.
#[derive(Debug, Clone, Copy)]
pub struct Revision {
    /// Decode `tray_misplaced` and `break_in_attempt` (1.0.0 answers `unsupported`).
    pub tray_and_break_in: bool,
    pub dose_missed_severity: Severity,
}

/// The `1.0.0` release.
pub const REVISION_1_0: Revision = Revision { tray_and_break_in: false, dose_missed_severity: Severity::Serious };
/// The `1.1.0` release.
#[allow(dead_code)] // used by `dispenser-json-next` only
pub const REVISION_1_1: Revision = Revision { tray_and_break_in: true, dose_missed_severity: Severity::Critical };

/// Decode one posted message.
pub fn decode(message: &Message) -> Result<Vec<Event>, DecodeError> {
    decode_revision(message, &REVISION_1_0)
}

/// Decode one posted message as release `revision` does.
pub fn decode_revision(message: &Message, revision: &Revision) -> Result<Vec<Event>, DecodeError> {
    message.require_content_type(&CONTENT_TYPES)?;
    let batch: Batch = serde_json::from_slice(&message.payload)
        .map_err(|e| DecodeError::Malformed(format!("invalid message JSON: {e}")))?;
    if batch.serial.is_empty() || batch.serial.len() > 64 {
        return Err(DecodeError::Malformed("serial must be 1 to 64 bytes".into()));
    }
    batch
        .events
        .iter()
        .enumerate()
        .map(|(index, item)| event(&batch.serial, item, revision).map_err(|e| at_index(e, index)))
        .collect()
}

fn at_index(error: DecodeError, index: usize) -> DecodeError {
    match error {
        DecodeError::Malformed(m) => DecodeError::Malformed(format!("events[{index}]: {m}")),
        DecodeError::Unsupported(m) => DecodeError::Unsupported(format!("events[{index}]: {m}")),
    }
}

fn event(serial: &str, item: &Item, revision: &Revision) -> Result<Event, DecodeError> {
    if item.id.is_empty() || item.id.len() > 128 {
        return Err(DecodeError::Malformed("id must be 1 to 128 bytes".into()));
    }
    let occurred_at = Timestamp::parse_rfc3339(&item.at).map_err(DecodeError::Malformed)?;
    let dose = || -> Result<Dose, DecodeError> {
        let Some(d) = &item.dose else {
            return Err(DecodeError::Malformed(format!("{} needs a dose", item.kind)));
        };
        Ok(Dose {
            dose_id: d.id.as_deref().map(str::to_owned),
            scheduled_for: d
                .scheduled
                .as_deref()
                .map(Timestamp::parse_rfc3339)
                .transpose()
                .map_err(DecodeError::Malformed)?,
            assistance: match d.assisted {
                None => Assistance::Unknown,
                Some(false) => Assistance::Unassisted,
                Some(true) => Assistance::Assisted,
            },
        })
    };
    let supply = || Supply { doses_remaining: item.doses_remaining };
    let battery = || Battery { level_percent: item.battery.filter(|b| *b <= 100) };
    let (kind, severity) = match &*item.kind {
        "dose_available" => (EventKind::DoseAvailable(dose()?), Severity::Normal),
        "dose_taken" => (EventKind::DoseDispensed(dose()?), Severity::Normal),
        "prn_dose_taken" => (EventKind::AsNeededDoseDispensed(dose()?), Severity::Normal),
        "dose_missed" => (EventKind::DoseMissed(dose()?), revision.dose_missed_severity),
        "dose_not_confirmed" => (EventKind::DoseNotConfirmed(dose()?), Severity::Moderate),
        "refill" => (EventKind::Refilled(supply()), Severity::Normal),
        "supply_low" => (EventKind::SupplyLow(supply()), Severity::Moderate),
        "supply_empty" => (EventKind::SupplyEmpty, Severity::Serious),
        "jam" => (EventKind::RollJammed, Severity::Serious),
        "lid_open" => (EventKind::LidOpened, Severity::Moderate),
        "lid_closed" => (EventKind::LidClosed, Severity::Normal),
        "power_lost" => (EventKind::MainsPowerLost, Severity::Moderate),
        "power_restored" => (EventKind::MainsPowerRestored, Severity::Normal),
        "battery_low" => (EventKind::BatteryLow(battery()), Severity::Moderate),
        "offline" => (EventKind::Offline, Severity::Serious),
        "online" => (EventKind::Online, Severity::Normal),
        "fault" => {
            let code = item.code.as_deref().filter(|c| !c.is_empty() && c.len() <= 32);
            let code = code.ok_or_else(|| DecodeError::Malformed("fault needs a code of 1 to 32 bytes".into()))?;
            (EventKind::TechnicalFault(Fault { code: code.to_owned() }), Severity::Serious)
        }
        "tray_misplaced" if revision.tray_and_break_in => (EventKind::TrayMisplaced, Severity::Moderate),
        "break_in_attempt" if revision.tray_and_break_in => (EventKind::BreakInAttempt, Severity::Serious),
        other => {
            return Err(DecodeError::Unsupported(format!("event type {:?}", truncate(other, 40))));
        }
    };
    Ok(Event {
        supplier_event_id: item.id.to_string(),
        device_serial: serial.to_owned(),
        occurred_at,
        kind,
        severity,
        detail: item.text.as_deref().map(|t| truncate(t, 1024).to_owned()),
    })
}

/// Encode a command: the dispenser takes a JSON schedule of up to 8 times a
/// day; it has no alarm to test.
pub fn encode_command(serial: &str, command: &Command) -> Result<EncodedCommand, CommandError> {
    match command {
        Command::TestAlarm => Err(CommandError::Unsupported("the dispenser has no alarm to test".into())),
        Command::SetDispensingSchedule(times) => {
            if times.is_empty() || times.len() > 8 {
                return Err(CommandError::Invalid("a schedule has 1 to 8 times a day".into()));
            }
            let mut slots = Vec::with_capacity(times.len());
            for t in times {
                if t.hour > 23 || t.minute > 59 {
                    return Err(CommandError::Invalid(format!("no such time {}:{}", t.hour, t.minute)));
                }
                slots.push(format!("{:02}:{:02}", t.hour, t.minute));
            }
            slots.sort();
            if slots.windows(2).any(|w| w[0] == w[1]) {
                return Err(CommandError::Invalid("the schedule repeats a time".into()));
            }
            let body = serde_json::json!({ "serial": serial, "command": "set_schedule", "times": slots });
            Ok(EncodedCommand { content_type: CONTENT_TYPES[1].into(), body: body.to_string().into_bytes() })
        }
    }
}
