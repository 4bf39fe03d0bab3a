//! # Velferd adapter SDK
//!
//! Write a Velferd device adapter in a few lines of Rust. An adapter turns the
//! messages your platform posts to Velferd into Velferd's normalised device
//! events, and Velferd's commands into your wire format. It runs as a
//! WebAssembly component in a sandbox that grants nothing (no files, sockets
//! or environment), under a deadline, an instruction budget and a memory cap.
//!
//! ```ignore
//! use velferd_adapter_sdk::v2::*;
//!
//! struct MyAdapter;
//!
//! impl Adapter for MyAdapter {
//!     fn describe() -> AdapterInfo { /* who you are, what you handle */ }
//!     fn decode(message: Message) -> Result<Vec<Event>, DecodeError> { /* parse */ }
//!     fn encode_command(serial: String, command: Command) -> Result<EncodedCommand, CommandError> {
//!         Err(CommandError::Unsupported("no commands".into()))
//!     }
//! }
//!
//! export_adapter!(MyAdapter);
//! ```
//!
//! When your decoding lives in a module of free functions `describe()`,
//! `decode(&Message)` and `encode_command(&str, &Command)` (so that it can also be
//! tested or benchmarked natively), `export_decoder!(decoder);` exports that module
//! as the adapter in one line, in place of the `impl Adapter` and `export_adapter!`.
//!
//! Build with the stock target: `cargo build --release --target wasm32-wasip2`,
//! then check the component with `velferd adapter check`. The full guide is
//! `docs/adapters.md` in the Velferd repository; every type is documented in
//! the contract, `schema/wit/device-v2/device.wit`, and below.
//!
//! ## Contract versions
//!
//! Velferd serves every supported major version of the contract side by side,
//! and this SDK speaks each of them; your component says which one it was
//! built against by the interface it exports.
//!
//! * [`v2`] — `velferd:device@2.0.0`, the newest: start new adapters here
//!   (`use velferd_adapter_sdk::v2::*;`, `v2::export_adapter!`). Events may
//!   name the gateway that relayed them.
//! * the crate root — `velferd:device@1.0.0`, as in SDK 1.0: adapters built
//!   with it keep compiling and keep running unchanged.

#![forbid(unsafe_op_in_unsafe_fn)]

wit_bindgen::generate!({
    path: "../../../schema/wit/device-v1",
    world: "velferd:device/device-adapter",
    pub_export_macro: true,
    export_macro_name: "export_adapter",
    default_bindings_module: "velferd_adapter_sdk",
    additional_derives: [PartialEq, Clone],
});

/// The interface version of the contract the crate root implements
/// (`velferd:device@1.0.0`). Velferd reads it from your component.
pub const INTERFACE_VERSION: &str = "1.0.0";

/// The SDK's surface for the contract version generated in the module it is
/// invoked in: the adapter trait, the types, logging and time helpers. The
/// same for every version, so written once.
macro_rules! sdk_surface {
    () => {
        pub use exports::velferd::device::adapter::Guest as Adapter;
        pub use velferd::device::types::{
            AdapterInfo, Assistance, Battery, Command, CommandError, DecodeError, DeviceClass, Dose, EncodedCommand,
            Event, EventKind, Fault, Message, Place, Severity, Supply, TimeOfDay, Timestamp,
        };
        pub use $crate::text::truncate;

        /// Logging to Velferd's server logs, capped per call (about 1 kB by
        /// default; the rest is dropped). Never log personal data.
        pub mod log {
            use super::velferd::device::log::{Level, log};

            /// Log at debug level.
            pub fn debug(message: &str) {
                log(Level::Debug, message)
            }
            /// Log at info level.
            pub fn info(message: &str) {
                log(Level::Info, message)
            }
            /// Log at warning level.
            pub fn warn(message: &str) {
                log(Level::Warn, message)
            }
            /// Log at error level.
            pub fn error(message: &str) {
                log(Level::Error, message)
            }
        }

        impl Message {
            /// `Ok` when the message's content type is one of `accepted` (ignoring case and
            /// parameters such as `charset`); else the `unsupported` error that names them.
            /// Call it first in `decode`:
            /// `message.require_content_type(&["application/json"])?;`
            pub fn require_content_type(&self, accepted: &[&str]) -> Result<(), DecodeError> {
                let base = self.content_type.split(';').next().unwrap_or("").trim();
                if accepted.iter().any(|c| c.eq_ignore_ascii_case(base)) {
                    return Ok(());
                }
                Err(DecodeError::Unsupported(format!(
                    "content type {:?} (accepted: {})",
                    $crate::text::truncate(&self.content_type, 100),
                    accepted.join(", ")
                )))
            }
        }

        impl Timestamp {
            /// A UTC timestamp from calendar parts; `None` when a part is out of
            /// range (month 1–12, day valid for the month, hour 0–23, minute 0–59,
            /// second 0–60 with 60 for a leap second folded into the next minute,
            /// nanosecond below 10⁹).
            pub fn from_utc(
                year: i32,
                month: u32,
                day: u32,
                hour: u32,
                minute: u32,
                second: u32,
                nanosecond: u32,
            ) -> Option<Timestamp> {
                let civil = $crate::time::Civil { year, month, day, hour, minute, second, nanosecond };
                let (seconds, nanoseconds) = civil.to_utc()?;
                Some(Timestamp { seconds, nanoseconds })
            }

            /// Parse an RFC 3339 timestamp such as `2026-11-22T07:04:12Z`,
            /// `2026-11-22T08:04:12.250+01:00` or `2026-11-22 07:04:12z`, converting
            /// its offset to UTC.
            pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
                let (seconds, nanoseconds) = $crate::time::parse_rfc3339(text)?;
                Ok(Timestamp { seconds, nanoseconds })
            }
        }
    };
}

sdk_surface!();

/// Export a module of free functions as the adapter: `export_decoder!(decoder);` implements
/// [`Adapter`] by calling `decoder::describe()`, `decoder::decode(&message)` and
/// `decoder::encode_command(&device_serial, &command)`, and exports it as
/// `export_adapter!` would. For the 2.0.0 contract use `v2::export_decoder!`.
#[macro_export]
macro_rules! export_decoder {
    ($decoder:ident) => {
        $crate::__export_decoder!(($crate) $decoder);
    };
}

/// `v2::export_decoder!`, exported at the root because `#[macro_export]` puts every macro there.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_decoder_v2 {
    ($decoder:ident) => {
        $crate::__export_decoder!(($crate::v2) $decoder);
    };
}

/// The body of both versions' `export_decoder!`, given the SDK module of the version.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_decoder {
    (($($sdk:tt)*) $decoder:ident) => {
        const _: () = {
            struct DecoderAdapter;

            impl $($sdk)*::Adapter for DecoderAdapter {
                fn describe() -> $($sdk)*::AdapterInfo {
                    $decoder::describe()
                }

                fn decode(message: $($sdk)*::Message) -> Result<Vec<$($sdk)*::Event>, $($sdk)*::DecodeError> {
                    $decoder::decode(&message)
                }

                fn encode_command(
                    device_serial: String,
                    command: $($sdk)*::Command,
                ) -> Result<$($sdk)*::EncodedCommand, $($sdk)*::CommandError> {
                    $decoder::encode_command(&device_serial, &command)
                }
            }

            $($sdk)*::export_adapter!(DecoderAdapter);
        };
    };
}

/// The contract `velferd:device@2.0.0`, for new adapters: the same surface as
/// the crate root, plus `gateway-serial` on [`v2::Event`] for devices that
/// report through a hub or an alarm base station. Export with
/// `velferd_adapter_sdk::v2::export_adapter!`.
///
/// ```ignore
/// use velferd_adapter_sdk::v2::*;
///
/// struct MyHub;
///
/// impl Adapter for MyHub { /* describe, decode, encode_command */ }
///
/// export_adapter!(MyHub);
/// ```
pub mod v2 {
    // The world is given a name of its own (it includes the contract's
    // `device-adapter` world) so that its export macro does not collide with
    // the crate root's: both are exported from this crate.
    wit_bindgen::generate!({
        inline: "
            package velferd:adapter-sdk;
            world device-adapter-v2 {
                include velferd:device/device-adapter@2.0.0;
            }
        ",
        path: "../../../schema/wit/device-v2",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_adapter",
        default_bindings_module: "velferd_adapter_sdk::v2",
        additional_derives: [PartialEq, Clone],
    });

    /// The interface version of the contract this module implements
    /// (`velferd:device@2.0.0`).
    pub const INTERFACE_VERSION: &str = "2.0.0";

    sdk_surface!();

    /// Export a module of free functions as a 2.0.0 adapter, like the crate root's
    /// [`export_decoder!`](crate::export_decoder).
    #[doc(inline)]
    pub use crate::__export_decoder_v2 as export_decoder;
}

/// Calendar arithmetic behind every version's `Timestamp` helpers.
mod time {
    /// A calendar date and time of day, as the `Timestamp` helpers take it.
    #[derive(Clone, Copy)]
    pub(crate) struct Civil {
        pub(crate) year: i32,
        pub(crate) month: u32,
        pub(crate) day: u32,
        pub(crate) hour: u32,
        pub(crate) minute: u32,
        pub(crate) second: u32,
        pub(crate) nanosecond: u32,
    }

    impl Civil {
        /// Seconds since the epoch and nanoseconds, or `None` when a part is out of range.
        pub(crate) fn to_utc(self) -> Option<(i64, u32)> {
            let Civil { year, month, day, hour, minute, second, nanosecond } = self;
            if !(1..=12).contains(&month)
                || day == 0
                || day > days_in_month(year, month)
                || hour > 23
                || minute > 59
                || second > 60
                || nanosecond >= 1_000_000_000
            {
                return None;
            }
            let days = days_from_civil(year, month, day);
            Some((days * 86_400 + i64::from(hour * 3600 + minute * 60 + second), nanosecond))
        }
    }

    pub(crate) fn parse_rfc3339(text: &str) -> Result<(i64, u32), String> {
        let bad = || format!("not an RFC 3339 timestamp: {:?}", crate::truncate(text, 40));
        let b = text.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad());
        }
        let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
            let part = &text[range];
            if part.bytes().all(|c| c.is_ascii_digit()) { part.parse::<u32>().map_err(|_| bad()) } else { Err(bad()) }
        };
        let year = num(0..4)? as i32;
        let (month, day) = (num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut rest = &text[19..];
        let mut nanosecond = 0u32;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad());
            }
            nanosecond = frac[..digits].parse::<u32>().map_err(|_| bad())? * 10u32.pow(9 - digits as u32);
            rest = &frac[digits..];
        }
        let offset_seconds: i64 = match rest.as_bytes() {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) => {
                let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
                let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
                if hours > 23 || minutes > 59 {
                    return Err(bad());
                }
                let offset = hours * 3600 + minutes * 60;
                if *sign == b'+' { offset } else { -offset }
            }
            _ => return Err(bad()),
        };
        let (local, nanos) = Civil { year, month, day, hour, minute, second, nanosecond }.to_utc().ok_or_else(bad)?;
        Ok((local - offset_seconds, nanos))
    }

    fn is_leap(year: i32) -> bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    fn days_in_month(year: i32, month: u32) -> u32 {
        match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if is_leap(year) => 29,
            _ => 28,
        }
    }

    // Howard Hinnant's days-from-civil: days since 1970-01-01 of a proleptic
    // Gregorian date, exact for every representable year.
    fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
        let y = i64::from(year) - i64::from(month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

/// Text helpers every version re-exports.
mod text {
    /// Cut `text` to at most `max` bytes on a character boundary, e.g. to keep an
    /// error message or a detail within the contract's size limits.
    pub fn truncate(text: &str, max: usize) -> &str {
        if text.len() <= max {
            return text;
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_offsets_and_fractions() {
        let t = Timestamp::parse_rfc3339("2026-11-22T07:04:12Z").unwrap();
        assert_eq!(t, Timestamp { seconds: 1_795_331_052, nanoseconds: 0 });
        let t2 = Timestamp::parse_rfc3339("2026-11-22T08:04:12.25+01:00").unwrap();
        assert_eq!(t2, Timestamp { seconds: 1_795_331_052, nanoseconds: 250_000_000 });
        assert!(Timestamp::parse_rfc3339("2026-02-29T00:00:00Z").is_err());
        assert!(Timestamp::parse_rfc3339("2026-11-22T07:04:12").is_err());
        assert_eq!(Timestamp::parse_rfc3339("1970-01-01T00:00:00Z").unwrap().seconds, 0);
    }

    #[test]
    fn every_version_shares_the_time_helpers() {
        let v1 = Timestamp::parse_rfc3339("2026-12-01T04:00:00+01:00").unwrap();
        let v2 = v2::Timestamp::parse_rfc3339("2026-12-01T04:00:00+01:00").unwrap();
        assert_eq!((v1.seconds, v1.nanoseconds), (v2.seconds, v2.nanoseconds));
        assert_eq!(v2::Timestamp::from_utc(2026, 2, 29, 0, 0, 0, 0), None);
    }
}
