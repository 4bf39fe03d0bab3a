//! Hostile adapter: allocates a MiB at a time until something gives. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        hostile_fixture::describe("memory-bomb")
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![message.payload.len() as u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        hostile_fixture::no_commands()
    }
}

export_adapter!(Hostile);
