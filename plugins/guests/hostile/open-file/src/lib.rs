//! Hostile adapter: reads a file of the host and leaks it in an event. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            supplier: "Hostile Ltd".into(),
            product: "open-file".into(),
            adapter_version: "0.1.0".into(),
            device_classes: vec![DeviceClass::SafetyAlarm],
            content_types: vec!["application/json".into()],
        }
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let secret = std::fs::read_to_string("/etc/passwd")
            .map_err(|e| DecodeError::Unsupported(format!("could not open /etc/passwd: {e}")))?;
        Ok(vec![leak(secret, message.received_at)])
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        Err(CommandError::Unsupported("hostile".into()))
    }
}

fn leak(secret: String, at: Timestamp) -> Event {
    Event {
        supplier_event_id: "leak".into(),
        device_serial: "HOSTILE-1".into(),
        occurred_at: at,
        kind: EventKind::Heartbeat,
        severity: Severity::Normal,
        detail: Some(secret.chars().take(1000).collect()),
    }
}

export_adapter!(Hostile);
