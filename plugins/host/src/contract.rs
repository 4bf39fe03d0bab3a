//! The major versions of the `velferd:device` contract this host serves, side
//! by side: the bindings generated from each version's WIT package
//! (`schema/wit/device-v1`, `schema/wit/device-v2`) and the conversions
//! between each version's types and the host's version-free ones
//! ([`crate::event`], [`crate::AdapterInfo`], [`crate::Command`]).
//!
//! Versions differ little (2.0.0 adds `gateway-serial` to `event`), so one
//! macro writes the conversions of every version from the same source; what
//! differs is passed in. A new major version is a new WIT directory, a module
//! here, a variant in `host::Bindings` and `host::Instance`, and an entry in
//! [`SUPPORTED_INTERFACE_MAJORS`].

use chrono::{DateTime, Datelike, Utc};
use wasmtime::Store;
use wasmtime::component::{HasData, Linker};

use crate::event::{self, DeviceClass, Event};
use crate::host::{AdapterInfo, Command, DecodeError, EncodedCommand};
use crate::sandbox::{LogSource, Sandbox};

/// Major versions of `velferd:device` this host serves, oldest first. The
/// newest is what the SDK's documentation and `velferd adapter check` point
/// new adapters to; older ones keep running unchanged.
pub const SUPPORTED_INTERFACE_MAJORS: &[u64] = &[1, 2];

/// The newest interface version, e.g. for messages telling a supplier what
/// to build against.
pub const NEWEST_INTERFACE_VERSION: &str = "2.0.0";

/// Gives the generated `add_to_linker` functions the store's `Sandbox`.
pub(crate) struct SandboxData;

impl HasData for SandboxData {
    type Data<'a> = &'a mut Sandbox;
}

/// Link the `velferd:device` imports (`log`) of every served version. Their
/// names carry the package version, so the versions do not collide and one
/// linker serves them all.
pub(crate) fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    v1::DeviceAdapter::add_to_linker::<Sandbox, SandboxData>(linker, |s| s)?;
    v2::DeviceAdapter::add_to_linker::<Sandbox, SandboxData>(linker, |s| s)?;
    Ok(())
}

/// The host side of one contract version, written once for all versions.
/// `gateway_serial: |e| expr` says how to take the relaying gateway's serial
/// out of this version's event (`e` is `&mut` the event).
macro_rules! served_version {
    (gateway_serial: |$e:ident| $gateway_serial:expr) => {
        use self::velferd::device::types as t;

        impl self::velferd::device::log::Host for Sandbox {
            fn log(&mut self, level: self::velferd::device::log::Level, message: String) {
                use self::velferd::device::log::Level;
                let source = match level {
                    Level::Debug => LogSource::Debug,
                    Level::Info => LogSource::Info,
                    Level::Warn => LogSource::Warn,
                    Level::Error => LogSource::Error,
                };
                self.record_log(source, &message);
            }
        }

        impl t::Host for Sandbox {}

        pub(crate) fn describe(store: &mut Store<Sandbox>, adapter: &DeviceAdapter) -> wasmtime::Result<AdapterInfo> {
            let info = adapter.velferd_device_adapter().call_describe(store)?;
            Ok(AdapterInfo {
                supplier: info.supplier,
                product: info.product,
                adapter_version: info.adapter_version,
                device_classes: info
                    .device_classes
                    .into_iter()
                    .map(|c| match c {
                        t::DeviceClass::MedicationDispenser => DeviceClass::MedicationDispenser,
                        t::DeviceClass::SafetyAlarm => DeviceClass::SafetyAlarm,
                        t::DeviceClass::HomeSensor => DeviceClass::HomeSensor,
                    })
                    .collect(),
                content_types: info.content_types,
            })
        }

        pub(crate) fn decode(
            store: &mut Store<Sandbox>,
            adapter: &DeviceAdapter,
            content_type: &str,
            payload: &[u8],
            received_at: DateTime<Utc>,
        ) -> wasmtime::Result<Result<Vec<Event>, DecodeError>> {
            let message = t::Message {
                content_type: content_type.to_owned(),
                payload: payload.to_vec(),
                received_at: t::Timestamp {
                    seconds: received_at.timestamp(),
                    nanoseconds: received_at.timestamp_subsec_nanos(),
                },
            };
            Ok(match adapter.velferd_device_adapter().call_decode(store, &message)? {
                Ok(events) => events.into_iter().map(event_from).collect(),
                Err(t::DecodeError::Malformed(m)) => Err(DecodeError::Malformed(m)),
                Err(t::DecodeError::Unsupported(m)) => Err(DecodeError::Unsupported(m)),
            })
        }

        pub(crate) fn encode_command(
            store: &mut Store<Sandbox>,
            adapter: &DeviceAdapter,
            device_serial: &str,
            command: &Command,
        ) -> wasmtime::Result<Result<EncodedCommand, DecodeError>> {
            let command = match command {
                Command::TestAlarm => t::Command::TestAlarm,
                Command::SetDispensingSchedule { times } => t::Command::SetDispensingSchedule(
                    times.iter().map(|&(hour, minute)| t::TimeOfDay { hour, minute }).collect(),
                ),
            };
            Ok(match adapter.velferd_device_adapter().call_encode_command(store, device_serial, &command)? {
                Ok(e) => Ok(EncodedCommand { content_type: e.content_type, body: e.body }),
                Err(t::CommandError::Unsupported(m)) => Err(DecodeError::Unsupported(m)),
                Err(t::CommandError::Invalid(m)) => Err(DecodeError::InvalidCommand(m)),
            })
        }

        /// A time the server can store and write: years 1 to 9999, as RFC 3339 and FHIR write
        /// them. chrono reaches years beyond ±262 000, but PostgreSQL's `timestamptz` ends at
        /// 4713 BC (an insert of an earlier event fails, and ingest would answer `503` to that
        /// message for ever), and SQLite's text form stops sorting in time past year 9999.
        fn time_from(t: t::Timestamp) -> Result<DateTime<Utc>, DecodeError> {
            DateTime::from_timestamp(t.seconds, t.nanoseconds)
                .filter(|at| t.nanoseconds < 1_000_000_000 && (1..=9999).contains(&at.year()))
                .ok_or_else(|| {
                    DecodeError::InvalidOutput(format!(
                        "timestamp {}.{:09} out of range (years 1 to 9999)",
                        t.seconds, t.nanoseconds
                    ))
                })
        }

        fn event_from(mut e: t::Event) -> Result<Event, DecodeError> {
            let gateway_serial: Option<String> = {
                let $e = &mut e;
                $gateway_serial
            };
            let dose = |d: t::Dose| -> Result<event::Dose, DecodeError> {
                Ok(event::Dose {
                    dose_id: d.dose_id,
                    scheduled_for: d.scheduled_for.map(time_from).transpose()?,
                    assistance: match d.assistance {
                        t::Assistance::Unknown => event::Assistance::Unknown,
                        t::Assistance::Unassisted => event::Assistance::Unassisted,
                        t::Assistance::Assisted => event::Assistance::Assisted,
                    },
                })
            };
            let supply = |s: t::Supply| event::Supply { doses_remaining: s.doses_remaining };
            let place = |p: t::Place| event::Place { location: p.location };
            let battery = |b: t::Battery| event::Battery { level_percent: b.level_percent };
            use event::EventKind as E;
            use t::EventKind as K;
            let kind = match e.kind {
                K::DoseAvailable(d) => E::DoseAvailable(dose(d)?),
                K::DoseDispensed(d) => E::DoseDispensed(dose(d)?),
                K::AsNeededDoseDispensed(d) => E::AsNeededDoseDispensed(dose(d)?),
                K::TravelDosesDispensed(d) => E::TravelDosesDispensed(dose(d)?),
                K::MessageAcknowledged => E::MessageAcknowledged,
                K::DoseMissed(d) => E::DoseMissed(dose(d)?),
                K::DispensingBlockedEmpty(d) => E::DispensingBlockedEmpty(dose(d)?),
                K::DoseNotConfirmed(d) => E::DoseNotConfirmed(dose(d)?),
                K::MessageNotRead => E::MessageNotRead,
                K::TechnicalFault(f) => E::TechnicalFault(event::Fault { code: f.code }),
                K::PouchNotRead => E::PouchNotRead,
                K::RollError => E::RollError,
                K::RollJammed => E::RollJammed,
                K::RejectDrawerFull => E::RejectDrawerFull,
                K::MedicationWaiting(d) => E::MedicationWaiting(dose(d)?),
                K::SupplyInsufficientForTrip(s) => E::SupplyInsufficientForTrip(supply(s)),
                K::SupplyLow(s) => E::SupplyLow(supply(s)),
                K::SupplyEmpty => E::SupplyEmpty,
                K::NoSchedule => E::NoSchedule,
                K::Refilled(s) => E::Refilled(supply(s)),
                K::LidOpened => E::LidOpened,
                K::LidClosed => E::LidClosed,
                K::BreakInAttempt => E::BreakInAttempt,
                K::TrayMisplaced => E::TrayMisplaced,
                K::AlarmButton(p) => E::AlarmButton(place(p)),
                K::PullCord(p) => E::PullCord(place(p)),
                K::Fall(p) => E::Fall(place(p)),
                K::Fire(p) => E::Fire(place(p)),
                K::WaterLeak(p) => E::WaterLeak(place(p)),
                K::DoorOpened(p) => E::DoorOpened(place(p)),
                K::DoorClosed(p) => E::DoorClosed(place(p)),
                K::LeftHome(p) => E::LeftHome(place(p)),
                K::LeftBed(p) => E::LeftBed(place(p)),
                K::Inactivity(p) => E::Inactivity(place(p)),
                K::NoMovement(p) => E::NoMovement(place(p)),
                K::LongBathroomStay(p) => E::LongBathroomStay(place(p)),
                K::SafetyAlarm(p) => E::SafetyAlarm(place(p)),
                K::AlarmCancelled(p) => E::AlarmCancelled(place(p)),
                K::TestTransmission => E::TestTransmission,
                K::Heartbeat => E::Heartbeat,
                K::Offline => E::Offline,
                K::Online => E::Online,
                K::BatteryLow(b) => E::BatteryLow(battery(b)),
                K::BatteryEmpty(b) => E::BatteryEmpty(battery(b)),
                K::MainsPowerLost => E::MainsPowerLost,
                K::MainsPowerRestored => E::MainsPowerRestored,
            };
            let severity = match e.severity {
                t::Severity::NotReported => event::Severity::NotReported,
                t::Severity::Normal => event::Severity::Normal,
                t::Severity::Moderate => event::Severity::Moderate,
                t::Severity::Serious => event::Severity::Serious,
                t::Severity::Critical => event::Severity::Critical,
            };
            Event::new(
                e.supplier_event_id,
                e.device_serial,
                gateway_serial,
                time_from(e.occurred_at)?,
                kind,
                severity,
                e.detail,
            )
            .map_err(DecodeError::InvalidOutput)
        }
    };
}

/// `velferd:device@1.0.0`: events name one serial.
pub(crate) mod v1 {
    use super::*;

    wasmtime::component::bindgen!({
        path: "../../schema/wit/device-v1",
        world: "velferd:device/device-adapter",
    });

    served_version!(gateway_serial: |_event| None);
}

/// `velferd:device@2.0.0`: events may name the gateway that relayed them.
pub(crate) mod v2 {
    use super::*;

    wasmtime::component::bindgen!({
        path: "../../schema/wit/device-v2",
        world: "velferd:device/device-adapter",
    });

    served_version!(gateway_serial: |event| event.gateway_serial.take());
}
