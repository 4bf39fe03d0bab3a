//! afl target: [`velferd_fuzz::graphql`]. The schema is built once, before afl's fork server
//! starts. The schema is not `RefUnwindSafe`, which `afl::fuzz!` asks of what its closure
//! borrows; a panic aborts the process there, so no state is seen after one.

fn main() {
    let graphql = std::panic::AssertUnwindSafe(velferd_fuzz::Graphql::new());
    afl::fuzz!(|data: &[u8]| velferd_fuzz::graphql(&graphql, data));
}
