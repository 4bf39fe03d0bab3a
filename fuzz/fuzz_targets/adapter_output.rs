//! afl target: [`velferd_fuzz::adapter_output`]. The adapters are compiled once, before afl's fork server
//! starts, so every run begins with them ready.

fn main() {
    let adapters = velferd_fuzz::Adapters::load(velferd_fuzz::guest_component);
    afl::fuzz!(|data: &[u8]| velferd_fuzz::adapter_output(&adapters, data));
}
