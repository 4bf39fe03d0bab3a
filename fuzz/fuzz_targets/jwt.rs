//! afl target: [`velferd_fuzz::jwt`].

fn main() {
    let auth = velferd_fuzz::Auth::new();
    afl::fuzz!(|data: &[u8]| velferd_fuzz::jwt(&auth, data));
}
