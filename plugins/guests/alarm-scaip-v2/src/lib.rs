//! Release 2.0.0 of Velferd's reference SCAIP alarm adapter, built from the same decoder source
//! as 1.0.0 (`alarm-scaip`) but against `velferd:device@2.0.0`: an alarm from an accessory
//! (`<did>`: a pull cord, a smoke or fall detector) is filed under the accessory, with the alarm
//! unit (`<cid>`) as its gateway. The server's tests move the alarm product from 1.0.0 to this
//! release and back, to show a product crossing interface versions.

#[path = "../../alarm-scaip/src/decoder.rs"]
mod decoder;

use velferd_adapter_sdk::v2 as sdk;
use velferd_adapter_sdk::v2::*;

/// Interface 2.0.0 names the accessory that fired as the device and the unit as its gateway;
/// an alarm from the unit itself names the unit alone.
fn event_of(alarm: decoder::Alarm) -> Event {
    let decoder::Alarm { supplier_event_id, unit, accessory, occurred_at, kind, severity, detail } = alarm;
    let (device_serial, gateway_serial) = match accessory {
        Some(accessory) if accessory != unit => (accessory, Some(unit)),
        _ => (unit, None),
    };
    Event { supplier_event_id, device_serial, gateway_serial, occurred_at, kind, severity, detail }
}

export_decoder!(decoder);
