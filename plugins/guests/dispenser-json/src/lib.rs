//! Velferd's reference adapter for a medication dispenser that reports
//! batches of JSON events (see `decoder.rs` for the format and `samples/`).

pub mod decoder;

use velferd_adapter_sdk::*;

export_decoder!(decoder);
