//! Hostile adapter: allocates a MiB at a time until something gives. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            supplier: "Hostile Ltd".into(),
            product: "memory-bomb".into(),
            adapter_version: "0.1.0".into(),
            device_classes: vec![DeviceClass::SafetyAlarm],
            content_types: vec!["application/json".into()],
        }
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![message.payload.len() as u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        Err(CommandError::Unsupported("hostile".into()))
    }
}

export_adapter!(Hostile);
