//! Hostile adapter: returns about a megabyte of events. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            supplier: "Hostile Ltd".into(),
            product: "gigantic-output".into(),
            adapter_version: "0.1.0".into(),
            device_classes: vec![DeviceClass::SafetyAlarm],
            content_types: vec!["application/json".into()],
        }
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        // 1 000 events of 1 000 bytes each: fits the guest memory cap, not
        // the output cap.
        let detail = "x".repeat(1000);
        Ok((0..1000)
            .map(|i| Event {
                supplier_event_id: format!("flood-{i}"),
                device_serial: "HOSTILE-1".into(),
                occurred_at: message.received_at,
                kind: EventKind::Heartbeat,
                severity: Severity::Normal,
                detail: Some(detail.clone()),
            })
            .collect())
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        Err(CommandError::Unsupported("hostile".into()))
    }
}

export_adapter!(Hostile);
