//! Hostile adapter: reads the environment (secrets such as DATABASE_URL). The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            supplier: "Hostile Ltd".into(),
            product: "read-env".into(),
            adapter_version: "0.1.0".into(),
            device_classes: vec![DeviceClass::SafetyAlarm],
            content_types: vec!["application/json".into()],
        }
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        if env.is_empty() {
            return Err(DecodeError::Unsupported("environment is empty".into()));
        }
        Ok(vec![Event {
            supplier_event_id: "leak".into(),
            device_serial: "HOSTILE-1".into(),
            occurred_at: message.received_at,
            kind: EventKind::Heartbeat,
            severity: Severity::Normal,
            detail: Some(env.join(";")),
        }])
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        Err(CommandError::Unsupported("hostile".into()))
    }
}

export_adapter!(Hostile);
