//! An adapter whose output is chosen by whoever sends the message: the payload spells out the
//! events it returns, field by field, whether or not they keep the contract (ids over their
//! length, times out of range, a megabyte of events). The fuzz target `adapter_output`
//! (`fuzz/`) sends it fuzzer-made payloads, so that what the host checks of an adapter's
//! answer (`plugins/host/src/contract.rs`, `event.rs`, the output cap) meets every shape a
//! hostile or broken adapter could return. Built against `velferd:device@2.0.0`, the version
//! with the most fields.
//!
//! The payload is a sequence of events, each read as (missing bytes read as zeros):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | kind: its index in the contract's `event-kind`, modulo 46 |
//! | 1 | severity, modulo 5 |
//! | 1 | flags: 1 gateway serial, 2 detail, 4 the kind's optional field, 8 a dose's `scheduled-for`; bits 4–5 a dose's assistance |
//! | 1 | copies: the event is returned this many times plus one |
//! | 8 + 4 | `occurred-at`: seconds (i64) and nanoseconds (u32), little-endian |
//! | string | supplier event id, then device serial, then (by the flags) gateway serial and detail |
//! | … | the kind's fields: a string (dose id, fault code, location), 8 + 4 (`scheduled-for`), 4 (doses remaining) or 1 (battery percent) |
//!
//! A string is a little-endian u16 length, then that many bytes (fewer at the end), read as
//! UTF-8 with invalid sequences replaced.

use velferd_adapter_sdk::v2::*;

struct OutputEcho;

/// Reads the payload front to back.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let head = self.take(N);
        out[..head.len()].copy_from_slice(head);
        out
    }

    fn byte(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn string(&mut self) -> String {
        let len = u16::from_le_bytes(self.array());
        String::from_utf8_lossy(self.take(usize::from(len))).into_owned()
    }

    fn timestamp(&mut self) -> Timestamp {
        Timestamp { seconds: i64::from_le_bytes(self.array()), nanoseconds: u32::from_le_bytes(self.array()) }
    }
}

fn event(r: &mut Reader) -> (Event, usize) {
    let kind = r.byte() % 46;
    let severity = match r.byte() % 5 {
        0 => Severity::NotReported,
        1 => Severity::Normal,
        2 => Severity::Moderate,
        3 => Severity::Serious,
        _ => Severity::Critical,
    };
    let flags = r.byte();
    let copies = usize::from(r.byte()) + 1;
    let occurred_at = r.timestamp();
    let supplier_event_id = r.string();
    let device_serial = r.string();
    let gateway_serial = (flags & 1 != 0).then(|| r.string());
    let detail = (flags & 2 != 0).then(|| r.string());
    let optional = flags & 4 != 0;
    let mut dose = || Dose {
        dose_id: optional.then(|| r.string()),
        scheduled_for: (flags & 8 != 0).then(|| r.timestamp()),
        assistance: match (flags >> 4) % 3 {
            0 => Assistance::Unknown,
            1 => Assistance::Unassisted,
            _ => Assistance::Assisted,
        },
    };
    use EventKind as K;
    let kind = match kind {
        0 => K::DoseAvailable(dose()),
        1 => K::DoseDispensed(dose()),
        2 => K::AsNeededDoseDispensed(dose()),
        3 => K::TravelDosesDispensed(dose()),
        4 => K::DoseMissed(dose()),
        5 => K::DispensingBlockedEmpty(dose()),
        6 => K::DoseNotConfirmed(dose()),
        7 => K::MedicationWaiting(dose()),
        8 => K::TechnicalFault(Fault { code: r.string() }),
        9..=11 => {
            let supply = Supply { doses_remaining: optional.then(|| u32::from_le_bytes(r.array())) };
            match kind {
                9 => K::SupplyInsufficientForTrip(supply),
                10 => K::SupplyLow(supply),
                _ => K::Refilled(supply),
            }
        }
        12..=25 => {
            let place = Place { location: optional.then(|| r.string()) };
            match kind {
                12 => K::AlarmButton(place),
                13 => K::PullCord(place),
                14 => K::Fall(place),
                15 => K::Fire(place),
                16 => K::WaterLeak(place),
                17 => K::DoorOpened(place),
                18 => K::DoorClosed(place),
                19 => K::LeftHome(place),
                20 => K::LeftBed(place),
                21 => K::Inactivity(place),
                22 => K::NoMovement(place),
                23 => K::LongBathroomStay(place),
                24 => K::SafetyAlarm(place),
                _ => K::AlarmCancelled(place),
            }
        }
        26 | 27 => {
            let battery = Battery { level_percent: optional.then(|| r.byte()) };
            if kind == 26 { K::BatteryLow(battery) } else { K::BatteryEmpty(battery) }
        }
        28 => K::MessageAcknowledged,
        29 => K::MessageNotRead,
        30 => K::PouchNotRead,
        31 => K::RollError,
        32 => K::RollJammed,
        33 => K::RejectDrawerFull,
        34 => K::SupplyEmpty,
        35 => K::NoSchedule,
        36 => K::LidOpened,
        37 => K::LidClosed,
        38 => K::BreakInAttempt,
        39 => K::TrayMisplaced,
        40 => K::TestTransmission,
        41 => K::Heartbeat,
        42 => K::Offline,
        43 => K::Online,
        44 => K::MainsPowerLost,
        _ => K::MainsPowerRestored,
    };
    (Event { supplier_event_id, device_serial, gateway_serial, occurred_at, kind, severity, detail }, copies)
}

impl Adapter for OutputEcho {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            supplier: "Velferd fuzzing".into(),
            product: "output-echo".into(),
            adapter_version: env!("CARGO_PKG_VERSION").into(),
            device_classes: vec![DeviceClass::SafetyAlarm],
            content_types: vec!["application/octet-stream".into()],
        }
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let mut reader = Reader { bytes: &message.payload };
        let mut events = Vec::new();
        while !reader.bytes.is_empty() {
            let (event, copies) = event(&mut reader);
            events.extend(std::iter::repeat_n(event, copies));
        }
        Ok(events)
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        Err(CommandError::Unsupported("output-echo encodes no commands".into()))
    }
}

export_adapter!(OutputEcho);
