//! afl target: [`velferd_fuzz::adapter_output`]. The adapters are compiled once, before afl's fork server
//! starts, so every run begins with them ready. The host (wasmtime's engine) is not `RefUnwindSafe`,
//! which `afl::fuzz!` asks of what its closure borrows; a panic aborts the process there, so no
//! state is seen after one.

fn main() {
    let adapters = std::panic::AssertUnwindSafe(velferd_fuzz::Adapters::load(velferd_fuzz::guest_component));
    afl::fuzz!(|data: &[u8]| velferd_fuzz::adapter_output(&adapters, data));
}
