//! Hostile adapter: recurses without a base case. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        hostile_fixture::describe("deep-recursion")
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let depth = recurse(std::hint::black_box(message.payload.len() as u64));
        Err(DecodeError::Malformed(format!("returned from depth {depth}")))
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        hostile_fixture::no_commands()
    }
}

// Each frame keeps a buffer alive so the stack really grows.
#[inline(never)]
#[allow(unconditional_recursion)] // the point of this adapter
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n as u8; 256]);
    recurse(n.wrapping_add(frame[7] as u64)).wrapping_add(1)
}

export_adapter!(Hostile);
