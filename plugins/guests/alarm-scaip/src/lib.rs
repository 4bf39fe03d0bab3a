//! Velferd's reference adapter for a social-care safety alarm speaking
//! SCAIP-style XML (`<mrq>` messages; see `decoder.rs` and `samples/`).

pub mod decoder;

use velferd_adapter_sdk::*;

struct ScaipAlarm;

impl Adapter for ScaipAlarm {
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

export_adapter!(ScaipAlarm);
