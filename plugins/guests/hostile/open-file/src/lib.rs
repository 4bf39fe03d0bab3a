//! Hostile adapter: reads a file of the host and leaks it in an event. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        hostile_fixture::describe("open-file")
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let secret = std::fs::read_to_string("/etc/passwd")
            .map_err(|e| DecodeError::Unsupported(format!("could not open /etc/passwd: {e}")))?;
        Ok(vec![hostile_fixture::leak(secret, message.received_at)])
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        hostile_fixture::no_commands()
    }
}

export_adapter!(Hostile);
