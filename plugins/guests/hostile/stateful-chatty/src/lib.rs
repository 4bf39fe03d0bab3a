//! Hostile adapter: keeps state between calls (a counter in a static) and
//! logs far more than the per-call cap. A fresh instance per call must see
//! the counter at 1 every time, and the host must keep only the capped log.

use std::sync::atomic::{AtomicU32, Ordering};
use velferd_adapter_sdk::*;

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Chatty;

impl Adapter for Chatty {
    fn describe() -> AdapterInfo {
        hostile_fixture::describe("stateful-chatty")
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        for i in 0..50 {
            log::info(&format!("log line {i}: {}", "l".repeat(90)));
            println!("stdout line {i}: {}", "o".repeat(90));
            eprintln!("stderr line {i}: {}", "e".repeat(90));
        }
        Ok(vec![Event {
            supplier_event_id: format!("call-{calls}"),
            device_serial: String::from_utf8_lossy(&message.payload).into_owned(),
            occurred_at: message.received_at,
            kind: EventKind::Heartbeat,
            severity: Severity::Normal,
            detail: Some(format!("calls seen by this instance: {calls}")),
        }])
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        hostile_fixture::no_commands()
    }
}

export_adapter!(Chatty);
