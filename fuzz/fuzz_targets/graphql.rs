//! afl target: [`velferd_fuzz::graphql`]. The schema is built once, before afl's fork server
//! starts.

fn main() {
    let graphql = velferd_fuzz::Graphql::new();
    afl::fuzz!(|data: &[u8]| velferd_fuzz::graphql(&graphql, data));
}
