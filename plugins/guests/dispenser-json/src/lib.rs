//! Velferd's reference adapter for a medication dispenser that reports
//! batches of JSON events (see `decoder.rs` for the format and `samples/`).

pub mod decoder;

use velferd_adapter_sdk::*;

struct Dispenser;

impl Adapter for Dispenser {
    fn describe() -> AdapterInfo {
        decoder::describe()
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        decoder::decode(&message)
    }

    fn encode_command(device_serial: String, command: Command) -> Result<EncodedCommand, CommandError> {
        decoder::encode_command(&device_serial, &command)
    }
}

export_adapter!(Dispenser);
