//! # velferd-plugins
//!
//! The host side of Velferd's device adapters: suppliers' WebAssembly
//! components that implement the `velferd:device` contract run here,
//! sandboxed with wasmtime. Every major version in
//! [`SUPPORTED_INTERFACE_MAJORS`] is served side by side
//! (`schema/wit/device-v1`, `schema/wit/device-v2`): an adapter states the
//! version it was built against by the interface it exports, and keeps
//! running unchanged when a newer major version arrives.
//!
//! * [`AdapterHost`] validates components ([`AdapterHost::validate`]),
//!   caches them compiled by sha-256 (in memory, and on disk in a
//!   [`CompileCache`] whose entries carry a MAC) and runs every call in a fresh instance
//!   under [`Limits`] ([`AdapterHost::decode`],
//!   [`AdapterHost::encode_command`]).
//! * [`event`] holds the normalised events as plain serde types, with their
//!   VKP codes.
//! * [`check()`] is `velferd adapter check`: the verdict a supplier sees before
//!   uploading.

mod cache;
mod check;
mod contract;
pub mod event;
mod host;
mod limits;
mod sandbox;

pub use cache::{CompileCache, KeyOrigin, MIN_KEY_BYTES as MIN_CACHE_KEY_BYTES};
pub use check::{CheckError, CheckOptions, CheckReport, LimitsSource, SAMPLE_ERROR_CODES, Sample, SampleReport, check};
pub use contract::{NEWEST_INTERFACE_VERSION, SUPPORTED_INTERFACE_MAJORS};
pub use event::{Event, EventKind, Severity};
pub use host::{
    AdapterHost, AdapterInfo, CallCost, CallReport, Command, Compilation, DecodeError, EncodedCommand,
    ValidatedAdapter, ValidationError, WarmInstance,
};
pub use limits::{ApprovedLimits, CallLimits, Limits};
pub use sandbox::{LogLine, LogSource};
