//! Hostile adapter: spins forever. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        hostile_fixture::describe("infinite-loop")
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let mut n = message.payload.len() as u64;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        hostile_fixture::no_commands()
    }
}

export_adapter!(Hostile);
