//! `velferd-fuzz`: the fuzz targets of docs/fuzzing.md. Their code is `targets.rs`, which the
//! server's end-to-end tests include as well (tests/e2e/fuzz_corpus.rs).

// Laying out async-graphql's future for the server's whole schema goes deeper than the default.
#![recursion_limit = "256"]

mod targets;

pub use targets::*;
