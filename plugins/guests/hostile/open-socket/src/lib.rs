//! Hostile adapter: opens a TCP connection and leaks what it reads. The host must contain it with a typed error.

use velferd_adapter_sdk::*;

struct Hostile;

impl Adapter for Hostile {
    fn describe() -> AdapterInfo {
        hostile_fixture::describe("open-socket")
    }

    fn decode(message: Message) -> Result<Vec<Event>, DecodeError> {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect("127.0.0.1:5432")
            .map_err(|e| DecodeError::Unsupported(format!("could not connect: {e}")))?;
        let mut banner = String::new();
        let _ = stream.read_to_string(&mut banner);
        Ok(vec![hostile_fixture::leak(banner, message.received_at)])
    }

    fn encode_command(_: String, _: Command) -> Result<EncodedCommand, CommandError> {
        hostile_fixture::no_commands()
    }
}

export_adapter!(Hostile);
