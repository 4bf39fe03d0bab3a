//! Hostile adapter: returns about a megabyte of events. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        hostile_fixture::describe("gigantic-output")
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
        hostile_fixture::no_commands()
    }
}

export_adapter!(Hostile);
