//! The refusal log: what the platform operator reads to see who is being refused or throttled —
//! `THROTTLED`, the GraphQL guards' `MAX_*_EXCEEDED` and `RESPONSE_TOO_LARGE`, refused tokens,
//! `FORBIDDEN`, ingest's 429s and WebSockets closed for expiry, limits or origin.
//!
//! A log written per attempt would hand an attacker an amplifier (each refused request a row),
//! so attempts are counted in memory per (minute, caller, code) in a bounded table ([`log`]) and
//! a background task adds the counts to the database by upsert: a flood costs a handful of rows
//! a minute. `admin` reads it as `refusedAttempts`; Prometheus counts every attempt in
//! `velferd_refused_attempts_total` by code.

pub mod graphql;
pub mod loaders;
pub mod log;
pub mod model;

pub use log::{LOGGED_CODES, RefusalLog};
