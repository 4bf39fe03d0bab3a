//! afl target: [`velferd_fuzz::ingest_message`]. The adapters are compiled once, before afl's fork server
//! starts, so every run begins with them ready.

fn main() {
    let adapters = velferd_fuzz::Adapters::load(velferd_fuzz::guest_component);
    afl::fuzz!(|data: &[u8]| velferd_fuzz::ingest_message(&adapters, data));
}
