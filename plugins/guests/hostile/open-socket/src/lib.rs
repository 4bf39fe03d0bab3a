//! Hostile adapter: opens a TCP connection and leaks what it reads. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            supplier: "Hostile Ltd".into(),
            product: "open-socket".into(),
            adapter_version: "0.1.0".into(),
            device_classes: vec![DeviceClass::SafetyAlarm],
            content_types: vec!["application/json".into()],
        }
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect("127.0.0.1:5432")
            .map_err(|e| DecodeError::Unsupported(format!("could not connect: {e}")))?;
        let mut banner = String::new();
        let _ = stream.read_to_string(&mut banner);
        Ok(vec![Event {
            supplier_event_id: "leak".into(),
            device_serial: "HOSTILE-1".into(),
            occurred_at: message.received_at,
            kind: EventKind::Heartbeat,
            severity: Severity::Normal,
            detail: Some(banner),
        }])
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        Err(CommandError::Unsupported("hostile".into()))
    }
}

export_adapter!(Hostile);
