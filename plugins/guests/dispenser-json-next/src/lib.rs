//! Release 1.1.0 of Velferd's reference dispenser adapter, built from the same decoder source
//! as 1.0.0 (`dispenser-json`): it decodes `tray_misplaced` and `break_in_attempt`, which
//! 1.0.0 refuses as unsupported, and rates a missed dose critical instead of serious. The
//! server's tests upload both releases to show review by replay and dead-letter replay.

// Shared with 1.0.0, which uses the parts this release does not.
#[allow(dead_code)]
#[path = "../../dispenser-json/src/decoder.rs"]
mod decoder;

use velferd_adapter_sdk::*;

struct DispenserNext;

impl Adapter for DispenserNext {
    fn describe() -> AdapterInfo {
        decoder::describe()
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        decoder::decode_revision(&message, &decoder::REVISION_1_1)
    }

    fn encode_command(device_serial: String, command: Command) -> Result<EncodedCommand, CommandError> {
        decoder::encode_command(&device_serial, &command)
    }
}

export_adapter!(DispenserNext);
