//! Hostile adapter: reads the environment (secrets such as DATABASE_URL). The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        hostile_fixture::describe("read-env")
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        if env.is_empty() {
            return Err(DecodeError::Unsupported("environment is empty".into()));
        }
        Ok(vec![hostile_fixture::leak(env.join(";"), message.received_at)])
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        hostile_fixture::no_commands()
    }
}

export_adapter!(Hostile);
