//! SCAIP-style alarm messages (CEN/TS 50134-9 shape), decoded into Velferd
//! events. Kept free of the component export so that the same code can be
//! compiled natively for the host's benchmark.
//!
//! A message is one `<mrq>` (message request):
//!
//! ```xml
//! <mrq><ver>01.00</ver><ref>A-000123</ref><cid>SA-7734001</cid><dty>005</dty>
//!      <mty>ME</mty><stc>001</stc><lco>010</lco></mrq>
//! ```
//!
//! `ref` is the sender's message reference (the supplier event id), `cid` the
//! caller id (the alarm unit's serial), `did` (optional) the id of the accessory
//! that fired when it was not the unit itself, `dty` the device type, `mty` the message
//! type — `ME` alarm, `RE` reset, `IN` information, `PI` heartbeat — `stc`
//! the status code and `lco` the location code. SCAIP carries no time, so the
//! event happened when Velferd received the message; an optional `dtm`
//! (`YYYYMMDDTHHMMSSZ`, UTC) is honoured when a gateway adds one.
//!
//! Status codes of this reference device: alarms (`ME`) 001 alarm button,
//! 002 pull cord, 010 fall, 020 smoke, 030 inactivity, any other code a
//! generic safety alarm (an alarm is never dropped); information (`IN`)
//! 100 test transmission, 110 battery low, 111 battery empty, 120 mains lost,
//! 121 mains restored.

// The including crate chooses the contract version: `crate::sdk` is the SDK module it builds
// against, and `super::event_of` turns an [`Alarm`] into that version's event.
use crate::sdk::{
    AdapterInfo, Battery, Command, CommandError, DecodeError, DeviceClass, EncodedCommand, Event, EventKind, Message,
    Place, Severity, Timestamp, truncate,
};

/// One decoded `<mrq>`, before it becomes an event of the including crate's contract version.
/// Version 1 names the alarm unit (`cid`) as the device; version 2 names the accessory that
/// fired (`did`: a pull cord, a smoke or fall detector paired with the unit), relayed by the
/// unit as its gateway.
pub struct Alarm {
    pub supplier_event_id: String,
    /// The alarm unit (base station): `cid`.
    pub unit: String,
    /// The accessory that fired, when the message names one: `did`.
    pub accessory: Option<String>,
    pub occurred_at: Timestamp,
    pub kind: EventKind,
    pub severity: Severity,
    pub detail: Option<String>,
}

/// Content types this adapter accepts.
pub const CONTENT_TYPES: [&str; 3] = ["application/xml", "text/xml", "application/scaip+xml"];

/// What the adapter says about itself.
pub fn describe() -> AdapterInfo {
    AdapterInfo {
        supplier: "Velferd reference".into(),
        product: "Reference social-care alarm (SCAIP XML)".into(),
        adapter_version: env!("CARGO_PKG_VERSION").into(),
        device_classes: vec![DeviceClass::SafetyAlarm],
        content_types: CONTENT_TYPES.iter().map(|c| c.to_string()).collect(),
    }
}

/// The fields of one `<mrq>` this adapter reads.
#[derive(Default)]
struct Mrq<'a> {
    reference: Option<&'a str>,
    caller: Option<&'a str>,
    accessory: Option<&'a str>,
    device_type: Option<&'a str>,
    message_type: Option<&'a str>,
    status: Option<&'a str>,
    location: Option<&'a str>,
    time: Option<&'a str>,
}

/// Decode one posted message.
pub fn decode(message: &Message) -> Result<Vec<Event>, DecodeError> {
    message.require_content_type(&CONTENT_TYPES)?;
    let text = std::str::from_utf8(&message.payload)
        .map_err(|e| DecodeError::Malformed(format!("message is not UTF-8: {e}")))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| DecodeError::Malformed(format!("invalid XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "mrq" {
        return Err(DecodeError::Unsupported(format!(
            "root element <{}> (expected <mrq>)",
            truncate(root.tag_name().name(), 40)
        )));
    }
    let mut mrq = Mrq::default();
    for child in root.children().filter(|n| n.is_element()) {
        let value = child.text().map(str::trim).filter(|v| !v.is_empty());
        let slot = match child.tag_name().name() {
            "ref" => &mut mrq.reference,
            "cid" => &mut mrq.caller,
            "did" => &mut mrq.accessory,
            "dty" => &mut mrq.device_type,
            "mty" => &mut mrq.message_type,
            "stc" => &mut mrq.status,
            "lco" => &mut mrq.location,
            "dtm" => &mut mrq.time,
            // Other SCAIP fields (ver, pri, cpi, stt, …) carry nothing Velferd stores.
            _ => continue,
        };
        *slot = value;
    }
    let required = |v: Option<&str>, name: &str, max: usize| -> Result<String, DecodeError> {
        match v {
            Some(v) if v.len() <= max => Ok(v.to_owned()),
            Some(_) => Err(DecodeError::Malformed(format!("<{name}> longer than {max} bytes"))),
            None => Err(DecodeError::Malformed(format!("<mrq> has no <{name}>"))),
        }
    };
    let supplier_event_id = required(mrq.reference, "ref", 128)?;
    let unit = required(mrq.caller, "cid", 64)?;
    let accessory = mrq.accessory.map(|did| required(Some(did), "did", 64)).transpose()?;
    let message_type = required(mrq.message_type, "mty", 2)?;
    let occurred_at = match mrq.time {
        Some(t) => parse_dtm(t)?,
        None => message.received_at,
    };
    let place = Place { location: mrq.location.map(|l| truncate(l, 32).to_owned()) };
    let status = || required(mrq.status, "stc", 3);
    let (kind, severity) = match message_type.as_str() {
        "ME" => match status()?.as_str() {
            "001" => (EventKind::AlarmButton(place), Severity::Critical),
            "002" => (EventKind::PullCord(place), Severity::Critical),
            "010" => (EventKind::Fall(place), Severity::Critical),
            "020" => (EventKind::Fire(place), Severity::Critical),
            "030" => (EventKind::Inactivity(place), Severity::Serious),
            _ => (EventKind::SafetyAlarm(place), Severity::Critical),
        },
        "RE" => (EventKind::AlarmCancelled(place), Severity::Normal),
        "IN" => match status()?.as_str() {
            "100" => (EventKind::TestTransmission, Severity::Normal),
            "110" => (EventKind::BatteryLow(Battery { level_percent: None }), Severity::Moderate),
            "111" => (EventKind::BatteryEmpty(Battery { level_percent: Some(0) }), Severity::Serious),
            "120" => (EventKind::MainsPowerLost, Severity::Moderate),
            "121" => (EventKind::MainsPowerRestored, Severity::Normal),
            other => return Err(DecodeError::Unsupported(format!("information status code {other:?}"))),
        },
        "PI" => (EventKind::Heartbeat, Severity::Normal),
        other => return Err(DecodeError::Unsupported(format!("message type {other:?}"))),
    };
    let detail = match (&kind, mrq.status, mrq.device_type) {
        // Keep the raw code of an alarm the adapter could not classify, so
        // the response centre sees what the device said.
        (EventKind::SafetyAlarm(_), Some(stc), dty) => {
            Some(format!("unclassified alarm: stc {stc}, dty {}", dty.unwrap_or("?")))
        }
        _ => None,
    };
    Ok(vec![super::event_of(Alarm { supplier_event_id, unit, accessory, occurred_at, kind, severity, detail })])
}

/// `YYYYMMDDTHHMMSSZ`, UTC.
fn parse_dtm(text: &str) -> Result<Timestamp, DecodeError> {
    let bad = || DecodeError::Malformed(format!("<dtm> is not YYYYMMDDTHHMMSSZ: {:?}", truncate(text, 40)));
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, DecodeError> {
        let part = &text[r];
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().map_err(|_| bad()) } else { Err(bad()) }
    };
    Timestamp::from_utc(num(0..4)? as i32, num(4..6)?, num(6..8)?, num(9..11)?, num(11..13)?, num(13..15)?, 0)
        .ok_or_else(bad)
}

/// Encode a command: the alarm can be told to send a test alarm; it has no
/// dispensing schedule.
pub fn encode_command(serial: &str, command: &Command) -> Result<EncodedCommand, CommandError> {
    match command {
        Command::TestAlarm => {
            if serial.is_empty() || serial.len() > 64 || !serial.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            {
                return Err(CommandError::Invalid("serial must be 1 to 64 letters, digits or dashes".into()));
            }
            let body = format!("<cmd><cid>{serial}</cid><act>test</act></cmd>");
            Ok(EncodedCommand { content_type: "application/xml".into(), body: body.into_bytes() })
        }
        Command::SetDispensingSchedule(_) => {
            Err(CommandError::Unsupported("a safety alarm has no dispensing schedule".into()))
        }
    }
}
