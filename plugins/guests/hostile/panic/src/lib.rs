//! Hostile adapter: panics. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        hostile_fixture::describe("panic")
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        panic!("hostile adapter gives up on a {}-byte message", message.payload.len())
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        hostile_fixture::no_commands()
    }
}

export_adapter!(Hostile);
