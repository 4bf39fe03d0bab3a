//! Hostile adapter: panics. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            supplier: "Hostile Ltd".into(),
            product: "panic".into(),
            adapter_version: "0.1.0".into(),
            device_classes: vec![DeviceClass::SafetyAlarm],
            content_types: vec!["application/json".into()],
        }
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        panic!("hostile adapter gives up on a {}-byte message", message.payload.len())
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        Err(CommandError::Unsupported("hostile".into()))
    }
}

export_adapter!(Hostile);
