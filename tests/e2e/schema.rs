/// The checked-in SDL is what the server serves; a front-end team builds against that file.
#[test]
fn checked_in_sdl_matches_the_live_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema/velferd.graphql");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let live = velferd::graphql::sdl();
    assert!(
        checked_in == live,
        "schema/velferd.graphql is out of date; regenerate it with:\n    cargo run -q -- schema > schema/velferd.graphql"
    );
}
