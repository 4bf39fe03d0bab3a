//! Velferd's reference adapter for a social-care safety alarm speaking
//! SCAIP-style XML (`<mrq>` messages; see `decoder.rs` and `samples/`).

pub mod decoder;

use velferd_adapter_sdk as sdk;
use velferd_adapter_sdk::*;

/// Interface 1.0.0 has one serial per event: the alarm unit, which is what the response centre
/// calls back; the accessory that fired goes unnamed.
fn event_of(alarm: decoder::Alarm) -> Event {
    let decoder::Alarm { supplier_event_id, unit, accessory: _, occurred_at, kind, severity, detail } = alarm;
    Event { supplier_event_id, device_serial: unit, occurred_at, kind, severity, detail }
}

export_decoder!(decoder);
