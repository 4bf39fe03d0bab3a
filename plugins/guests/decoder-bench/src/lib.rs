//! Benchmark harness, not an adapter to deploy: it compiles the reference
//! adapters' decoders (the very same source files) into one component whose
//! `decode` runs a decoder `n` times, so the host's benchmark can compare the
//! decoder's compute inside the sandbox with the same code compiled natively
//! (`src/main.rs`), without the per-call overhead in the way.
//!
//! Content type `bench/dispenser;n=1000` or `bench/alarm;n=1000`; the payload
//! is one message for that decoder. Returns no events.

#[path = "../../alarm-scaip/src/decoder.rs"]
pub mod alarm;
#[path = "../../dispenser-json/src/decoder.rs"]
pub mod dispenser;

use velferd_adapter_sdk as sdk;
use velferd_adapter_sdk::*;

/// The alarm decoder's events as its version-1 adapter makes them.
fn event_of(alarm: alarm::Alarm) -> Event {
    let alarm::Alarm { supplier_event_id, unit, accessory: _, occurred_at, kind, severity, detail } = alarm;
    Event { supplier_event_id, device_serial: unit, occurred_at, kind, severity, detail }
}

/// Decode `payload` `n` times with the named decoder; returns the number of
/// events of the last run.
pub fn run(decoder: &str, payload: &[u8], received_at: Timestamp, n: u32) -> Result<usize, DecodeError> {
    type Decoder = fn(&Message) -> Result<Vec<Event>, DecodeError>;
    let (content_type, decode): (&str, Decoder) = match decoder {
        "dispenser" => ("application/json", dispenser::decode),
        "alarm" => ("application/xml", alarm::decode),
        other => return Err(DecodeError::Unsupported(format!("decoder {other:?}"))),
    };
    let message = Message { content_type: content_type.into(), payload: payload.to_vec(), received_at };
    let mut count = 0;
    for _ in 0..n {
        count = std::hint::black_box(decode(std::hint::black_box(&message)))?.len();
    }
    Ok(count)
}

// The component export only exists for Wasm: natively the export names
// (`velferd:device/adapter@1.0.0#decode`) are not valid linker symbols.
#[cfg(target_arch = "wasm32")]
struct Bench;

#[cfg(target_arch = "wasm32")]
impl Adapter for Bench {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            supplier: "Velferd".into(),
            product: "decoder benchmark".into(),
            adapter_version: env!("CARGO_PKG_VERSION").into(),
            device_classes: vec![DeviceClass::MedicationDispenser, DeviceClass::SafetyAlarm],
            content_types: vec!["bench/dispenser".into(), "bench/alarm".into()],
        }
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let (decoder, params) = message.content_type.split_once(';').unwrap_or((&message.content_type, ""));
        let decoder = decoder.strip_prefix("bench/").unwrap_or(decoder);
        let n = params
            .trim()
            .strip_prefix("n=")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| DecodeError::Malformed("content type needs ;n=<iterations>".into()))?;
        run(decoder, &message.payload, message.received_at, n)?;
        Ok(Vec::new())
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        Err(CommandError::Unsupported("benchmark only".into()))
    }
}

#[cfg(target_arch = "wasm32")]
export_adapter!(Bench);
