//! # velferd-plugins
//!
//! The host side of Velferd's device adapters: suppliers' WebAssembly
//! components that implement the `velferd:device@1` contract
//! (`schema/wit/device/device.wit`) run here, sandboxed with wasmtime.
//!
//! * [`AdapterHost`] validates components ([`AdapterHost::validate`]),
//!   caches them compiled by sha-256 and runs every call in a fresh instance
//!   under [`Limits`] ([`AdapterHost::decode`],
//!   [`AdapterHost::encode_command`]).
//! * [`event`] holds the normalised events as plain serde types, with their
//!   VKP codes.
//! * [`check()`] is `velferd adapter check`: the verdict a supplier sees before
//!   uploading.

mod check;
pub mod event;
mod host;
mod limits;
mod sandbox;

pub use check::{CheckReport, SampleReport, check};
pub use event::{Event, EventKind, Severity};
pub use host::{
    AdapterHost, AdapterInfo, CallCost, CallReport, Command, DecodeError, EncodedCommand,
    SUPPORTED_INTERFACE_MAJORS, ValidatedAdapter, ValidationError, WarmInstance,
};
pub use limits::Limits;
pub use sandbox::{LogLine, LogSource};
