//! The adapter host, tested the way the server uses it: reference adapters
//! and hostile adapters are built from source (see `common`), validated,
//! and called through `AdapterHost`.

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use velferd_plugins::event::{Assistance, EventKind, Severity, VOCABULARY, VkpCode};
use velferd_plugins::{
    AdapterHost, CheckOptions, Command, DecodeError, Event, Limits, LogSource, Sample, ValidatedAdapter,
    ValidationError, check,
};

const DISPENSER: &str = "velferd_dispenser_json";
const ALARM: &str = "velferd_alarm_scaip";
/// Built against `velferd:device@2.0.0`; the two above against 1.0.0.
const HUB: &str = "velferd_sensor_hub_json";

/// One host for the whole run, as in the server; components are compiled
/// once and found again by sha-256.
fn host() -> &'static AdapterHost {
    static HOST: OnceLock<AdapterHost> = OnceLock::new();
    HOST.get_or_init(|| AdapterHost::new(Limits::default()).expect("host"))
}

fn adapter(name: &str) -> ValidatedAdapter {
    host().validate(&common::component(name)).unwrap_or_else(|e| panic!("{name} should validate: {e}"))
}

fn received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 7, 30, 0).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn decode_sample(
    adapter: &ValidatedAdapter,
    dir: &str,
    file: &str,
    content_type: &str,
) -> Result<Vec<Event>, DecodeError> {
    let payload = std::fs::read(common::sample(dir, file)).unwrap();
    host().decode_with_report(adapter, "3805", content_type, &payload, received_at()).result
}

/// (id, serial, kind, severity, VKP code, occurred at)
type Expected<'a> = (&'a str, &'a str, &'a str, Severity, Option<&'a str>, &'a str);
type Row<'a> = (String, String, &'a str, Severity, Option<&'a str>, DateTime<Utc>);

fn assert_events(events: &[Event], expected: &[Expected]) {
    let got: Vec<Row> = events
        .iter()
        .map(|e| {
            (
                e.supplier_event_id.clone(),
                e.device_serial.clone(),
                e.kind.name(),
                e.severity,
                e.vkp.map(|v| v.code),
                e.occurred_at,
            )
        })
        .collect();
    let want: Vec<Row> = expected
        .iter()
        .map(|&(id, serial, kind, severity, vkp, at)| (id.into(), serial.into(), kind, severity, vkp, utc(at)))
        .collect();
    assert_eq!(got, want);
}

/// The reference adapter still works: used after every hostile case.
fn assert_reference_still_serves() {
    let events = decode_sample(&adapter(DISPENSER), "dispenser-json", "morning-dose.json", "application/json").unwrap();
    assert_eq!(events.len(), 2);
    let events = decode_sample(&adapter(ALARM), "alarm-scaip", "alarm-button.xml", "application/xml").unwrap();
    assert_eq!(events[0].kind.name(), "alarm-button");
}

#[test]
fn dispenser_describes_itself() {
    let a = adapter(DISPENSER);
    assert_eq!(a.interface_version, "1.0.0");
    assert_eq!(a.sha256.len(), 64);
    assert_eq!(a.info.product, "Reference medication dispenser (JSON)");
    assert_eq!(a.info.content_types, ["application/json", "application/vnd.velferd.reference-dispenser+json"]);
}

#[test]
fn dispenser_samples_decode_to_the_expected_events() {
    use Severity::*;
    let a = adapter(DISPENSER);
    let events = decode_sample(&a, "dispenser-json", "morning-dose.json", "application/json").unwrap();
    assert_events(
        &events,
        &[
            ("e-1001", "RD-100234", "dose-available", Normal, None, "2026-11-22T07:00:00Z"),
            ("e-1002", "RD-100234", "dose-dispensed", Normal, Some("1.1"), "2026-11-22T07:04:12Z"),
        ],
    );
    let EventKind::DoseDispensed(dose) = &events[1].kind else { unreachable!() };
    assert_eq!(dose.dose_id.as_deref(), Some("d-5501"));
    assert_eq!(dose.scheduled_for, Some(utc("2026-11-22T07:00:00Z")));
    assert_eq!(dose.assistance, Assistance::Unassisted);
    assert_eq!(events[1].vkp.unwrap().system, velferd_plugins::event::VKP_DISPENSE_SYSTEM);

    let events = decode_sample(&a, "dispenser-json", "missed-dose.json", "application/json; charset=utf-8").unwrap();
    assert_events(
        &events,
        &[
            ("e-1003", "RD-100234", "dose-available", Normal, None, "2026-11-22T12:00:00Z"),
            ("e-1004", "RD-100234", "dose-missed", Serious, Some("1.1"), "2026-11-22T13:00:00Z"),
        ],
    );
    assert_eq!(events[1].detail.as_deref(), Some("Dose not taken within 60 minutes"));
    assert_eq!(events[1].vkp.unwrap().system, velferd_plugins::event::VKP_ALERT_SYSTEM);

    let events = decode_sample(&a, "dispenser-json", "refill-jam-fault.json", "application/json").unwrap();
    assert_events(
        &events,
        &[
            ("e-2001", "RD-100235", "refilled", Normal, Some("1.16"), "2026-11-20T09:15:00Z"),
            ("e-2002", "RD-100235", "roll-jammed", Serious, Some("1.8"), "2026-11-21T18:00:30.5Z"),
            ("e-2003", "RD-100235", "technical-fault", Serious, Some("1.5"), "2026-11-21T18:00:31Z"),
        ],
    );
    assert!(matches!(&events[0].kind, EventKind::Refilled(s) if s.doses_remaining == Some(28)));
    assert!(matches!(&events[2].kind, EventKind::TechnicalFault(f) if f.code == "E42"));

    let events = decode_sample(&a, "dispenser-json", "lid-power-offline.json", "application/json").unwrap();
    assert_events(
        &events,
        &[
            ("e-3001", "RD-100236", "lid-opened", Moderate, Some("1.21"), "2026-11-22T06:10:00Z"),
            ("e-3002", "RD-100236", "lid-closed", Normal, None, "2026-11-22T06:11:00Z"),
            ("e-3003", "RD-100236", "mains-power-lost", Moderate, Some("1.19"), "2026-11-22T06:20:00Z"),
            ("e-3004", "RD-100236", "battery-low", Moderate, Some("1.17"), "2026-11-22T09:20:00Z"),
            ("e-3005", "RD-100236", "offline", Serious, Some("1.20"), "2026-11-22T10:00:00Z"),
            ("e-3006", "RD-100236", "online", Normal, Some("1.20"), "2026-11-22T10:45:00Z"),
            ("e-3007", "RD-100236", "mains-power-restored", Normal, Some("1.19"), "2026-11-22T10:45:05Z"),
        ],
    );
    assert!(matches!(&events[3].kind, EventKind::BatteryLow(b) if b.level_percent == Some(15)));

    let err = decode_sample(&a, "dispenser-json", "malformed.json", "application/json").unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(ref m) if m.contains("JSON")), "{err:?}");
    let err = decode_sample(&a, "dispenser-json", "unknown-type.json", "application/json").unwrap_err();
    assert!(matches!(err, DecodeError::Unsupported(ref m) if m.contains("firmware_updated")), "{err:?}");
    let err = decode_sample(&a, "dispenser-json", "morning-dose.json", "text/csv").unwrap_err();
    assert!(matches!(err, DecodeError::Unsupported(ref m) if m.contains("text/csv")), "{err:?}");
}

#[test]
fn alarm_samples_decode_to_the_expected_events() {
    use Severity::*;
    let a = adapter(ALARM);
    let now = "2026-11-22T07:30:00Z"; // SCAIP carries no time: received-at
    let cases: &[(&str, Expected)] = &[
        ("alarm-button.xml", ("A-000123", "SA-7734001", "alarm-button", Critical, Some("4.13"), now)),
        ("pull-cord.xml", ("A-000124", "SA-7734001", "pull-cord", Critical, Some("4.14"), now)),
        ("fall.xml", ("A-000125", "SA-7734002", "fall", Critical, Some("4.1"), "2026-11-22T03:15:03Z")),
        ("smoke.xml", ("A-000126", "SA-7734003", "fire", Critical, Some("4.11"), now)),
        ("inactivity.xml", ("A-000127", "SA-7734001", "inactivity", Serious, Some("4.9"), now)),
        ("cancel.xml", ("A-000128", "SA-7734001", "alarm-cancelled", Normal, None, now)),
        ("test-transmission.xml", ("A-000129", "SA-7734001", "test-transmission", Normal, None, now)),
        ("battery-low.xml", ("A-000130", "SA-7734002", "battery-low", Moderate, Some("1.17"), now)),
        ("heartbeat.xml", ("A-000131", "SA-7734001", "heartbeat", Normal, None, now)),
        ("unclassified-alarm.xml", ("A-000132", "SA-7734004", "safety-alarm", Critical, Some("3"), now)),
        // Version 1 names the unit even when an accessory fired.
        ("pull-cord-accessory.xml", ("A-000140", "SA-7734001", "pull-cord", Critical, Some("4.14"), now)),
    ];
    for (file, expected) in cases {
        let events =
            decode_sample(&a, "alarm-scaip", file, "application/xml").unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_events(&events, std::slice::from_ref(expected));
    }
    let events = decode_sample(&a, "alarm-scaip", "alarm-button.xml", "text/xml").unwrap();
    assert!(matches!(&events[0].kind, EventKind::AlarmButton(p) if p.location.as_deref() == Some("010")));
    let events = decode_sample(&a, "alarm-scaip", "unclassified-alarm.xml", "application/xml").unwrap();
    assert_eq!(events[0].detail.as_deref(), Some("unclassified alarm: stc 777, dty 033"));
    let err = decode_sample(&a, "alarm-scaip", "malformed.xml", "application/xml").unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(ref m) if m.contains("XML")), "{err:?}");
}

#[test]
fn commands_are_encoded_or_refused_with_a_reason() {
    let alarm = adapter(ALARM);
    let encoded = host().encode_command(&alarm, "3805", "SA-7734001", &Command::TestAlarm).result.unwrap();
    assert_eq!(encoded.content_type, "application/xml");
    assert_eq!(String::from_utf8(encoded.body).unwrap(), "<cmd><cid>SA-7734001</cid><act>test</act></cmd>");
    let schedule = Command::SetDispensingSchedule { times: vec![(14, 0), (8, 30)] };
    assert!(matches!(
        host().encode_command(&alarm, "3805", "SA-1", &schedule).result,
        Err(DecodeError::Unsupported(_))
    ));

    let dispenser = adapter(DISPENSER);
    let encoded = host().encode_command(&dispenser, "3805", "RD-100234", &schedule).result.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"serial": "RD-100234", "command": "set_schedule", "times": ["08:30", "14:00"]})
    );
    let bad = Command::SetDispensingSchedule { times: vec![(25, 0)] };
    assert!(matches!(
        host().encode_command(&dispenser, "3805", "RD-1", &bad).result,
        Err(DecodeError::InvalidCommand(_))
    ));
}

#[test]
fn a_fresh_instance_per_call_keeps_no_state_and_logs_are_capped() {
    let a = adapter("hostile_stateful_chatty");
    for municipality in ["3805", "0301", "3805"] {
        let report = host().decode_with_report(&a, municipality, "application/json", b"SA-1", received_at());
        let events = report.result.unwrap();
        // The guest counts its calls in a static: a reused instance would say 2, 3, …
        assert_eq!(events[0].detail.as_deref(), Some("calls seen by this instance: 1"));
        let kept: usize = report.logs.iter().map(|l| l.text.len()).sum();
        assert!(kept <= Limits::default().log_bytes, "kept {kept} log bytes");
        assert!(report.cost.log_bytes_dropped > 10_000, "dropped {}", report.cost.log_bytes_dropped);
        assert_eq!(report.logs[0].source, LogSource::Info);
    }
}

#[test]
fn oversized_input_is_refused_before_the_adapter_runs() {
    let a = adapter(DISPENSER);
    let big = vec![b' '; Limits::default().input_bytes + 1];
    let err = host().decode(&a, "3805", "application/json", &big).unwrap_err();
    assert_eq!(err, DecodeError::InputTooLarge { size: big.len(), limit: Limits::default().input_bytes });
}

#[test]
fn a_core_module_or_garbage_is_not_a_component() {
    // The smallest valid core module: magic and version only.
    let core = b"\0asm\x01\0\0\0";
    assert!(matches!(host().validate(core), Err(ValidationError::NotAComponent { .. })));
    assert!(matches!(host().validate(b"hello"), Err(ValidationError::NotAComponent { .. })));
    let small = AdapterHost::new(Limits { component_bytes: 1000, ..Limits::default() }).unwrap();
    assert!(matches!(small.validate(&common::component(DISPENSER)), Err(ValidationError::TooLarge { .. })));
}

// ---- the hostile suite: each contained with a typed error, in bounded time,
// ---- and the host still serves the reference adapters afterwards.

/// Decode with a hostile adapter; returns the error and how long it took.
fn hostile_decode(host: &AdapterHost, name: &str) -> (DecodeError, Duration) {
    let a = host.validate(&common::component(name)).unwrap_or_else(|e| panic!("{name} should validate: {e}"));
    let start = Instant::now();
    let result = host.decode(&a, "3805", "application/json", br#"{"serial":"X"}"#);
    let elapsed = start.elapsed();
    (result.expect_err("a hostile adapter must not succeed"), elapsed)
}

const BOUND: Duration = Duration::from_secs(2);

/// Decode with a hostile adapter on the default host, which must stop it within [`BOUND`] and
/// go on serving the reference adapters; returns the error it stopped it with.
fn contained(name: &str) -> DecodeError {
    let (err, took) = hostile_decode(host(), name);
    assert!(took < BOUND, "{took:?}");
    assert_reference_still_serves();
    err
}

#[test]
fn hostile_infinite_loop_runs_out_of_fuel() {
    let err = contained("hostile_infinite_loop");
    assert_eq!(err, DecodeError::FuelExhausted { limit: 10_000_000 });
}

#[test]
fn hostile_infinite_loop_hits_the_deadline_without_fuel() {
    let host =
        AdapterHost::new(Limits { fuel: None, deadline: Duration::from_millis(50), ..Limits::default() }).unwrap();
    let (err, took) = hostile_decode(&host, "hostile_infinite_loop");
    assert_eq!(err, DecodeError::DeadlineExceeded { limit_ms: 50 });
    assert!(took >= Duration::from_millis(45) && took < Duration::from_millis(500), "{took:?}");
    let dispenser = host.validate(&common::component(DISPENSER)).unwrap();
    assert_eq!(
        host.decode(
            &dispenser,
            "3805",
            "application/json",
            &std::fs::read(common::sample("dispenser-json", "morning-dose.json")).unwrap()
        )
        .unwrap()
        .len(),
        2
    );
    // The epoch ticker sleeps between calls: it must start again for the next one, in a fresh
    // instance and in a warm one.
    let (again, _) = hostile_decode(&host, "hostile_infinite_loop");
    assert_eq!(again, DecodeError::DeadlineExceeded { limit_ms: 50 });
    let looping = host.validate(&common::component("hostile_infinite_loop")).unwrap();
    let mut warm = host.instantiate(&looping, "3805").unwrap();
    let warm_result = warm.decode("application/json", br#"{"serial":"X"}"#, Utc::now()).result;
    assert_eq!(warm_result, Err(DecodeError::DeadlineExceeded { limit_ms: 50 }));
}

#[test]
fn hostile_memory_bomb_hits_the_memory_cap() {
    let err = contained("hostile_memory_bomb");
    assert_eq!(err, DecodeError::MemoryExceeded { limit: 4 << 20 });
}

#[test]
fn hostile_deep_recursion_overflows_its_stack() {
    let err = contained("hostile_deep_recursion");
    // Rust keeps its stack in linear memory: overflowing it runs off the
    // bottom of memory (an out-of-bounds trap) unless the Wasm stack limit
    // strikes first.
    assert!(
        err == DecodeError::StackOverflow || matches!(&err, DecodeError::Trap(t) if t.contains("out of bounds")),
        "{err:?}"
    );
}

#[test]
fn hostile_panic_is_a_trap_with_the_panic_message() {
    let err = contained("hostile_panic");
    assert!(
        matches!(&err, DecodeError::Trap(t) if t.contains("unreachable") && t.contains("hostile adapter gives up on a 14-byte message")),
        "{err:?}"
    );
}

#[test]
fn hostile_gigantic_output_is_refused() {
    let err = contained("hostile_gigantic_output");
    assert!(
        matches!(err, DecodeError::OutputTooLarge { size, limit } if size > 1_000_000 && limit == 64 << 10),
        "{err:?}"
    );
}

/// An output-echo message (plugins/guests/hostile/output-echo) of one heartbeat at `seconds`.
fn echoed_heartbeat(seconds: i64) -> Vec<u8> {
    let mut message = vec![41, 1, 0, 0];
    message.extend_from_slice(&seconds.to_le_bytes());
    message.extend_from_slice(&0u32.to_le_bytes());
    for text in ["e-1", "HB-1"] {
        message.extend_from_slice(&(text.len() as u16).to_le_bytes());
        message.extend_from_slice(text.as_bytes());
    }
    message
}

/// Found while writing the `adapter_output` fuzz target's checks (docs/fuzzing.md): an event in
/// 5000 BC passed the host, and PostgreSQL refuses to store times before 4713 BC.
#[test]
fn an_event_time_outside_years_1_to_9999_is_invalid_output() {
    let echo = adapter("hostile_output_echo");
    let decode = |seconds: i64| host().decode(&echo, "3805", "application/octet-stream", &echoed_heartbeat(seconds));
    let year_1 = utc("0001-01-01T00:00:00Z").timestamp();
    let year_9999 = utc("9999-12-31T23:59:59Z").timestamp();
    for fine in [year_1, 0, year_9999] {
        assert_eq!(decode(fine).unwrap()[0].occurred_at.timestamp(), fine);
    }
    let bc_5000 = year_1 - 5001 * 31_556_952;
    for out in [year_1 - 1, bc_5000, year_9999 + 1] {
        assert!(
            matches!(decode(out), Err(DecodeError::InvalidOutput(m)) if m.contains("out of range (years 1 to 9999)")),
            "{out}"
        );
    }
}

/// Uploading the hostile component `name` is refused for an import under `prefix`, with a
/// reason that says `why`, and the reference adapter still serves.
fn assert_rejected_for_import(name: &str, prefix: &str, why: &str) {
    let err = host().validate(&common::component(name)).unwrap_err();
    assert!(
        matches!(&err, ValidationError::ForbiddenImport { import, reason } if import.starts_with(prefix) && reason.contains(why)),
        "{err:?}"
    );
    assert_reference_still_serves();
}

#[test]
fn hostile_file_access_is_rejected_on_upload() {
    assert_rejected_for_import("hostile_open_file", "wasi:filesystem/", "file system");
}

#[test]
fn hostile_socket_is_rejected_on_upload() {
    assert_rejected_for_import("hostile_open_socket", "wasi:sockets/", "network");
}

#[test]
fn hostile_environment_read_is_denied_at_run_time() {
    let err = contained("hostile_read_env");
    assert_eq!(
        err,
        DecodeError::CapabilityDenied(
            "the adapter tried to read environment variables; the sandbox grants none".into()
        )
    );
}

#[test]
fn hostile_wrong_world_is_rejected_on_upload() {
    let err = host().validate(&common::component("hostile_wrong_world")).unwrap_err();
    assert!(
        matches!(&err, ValidationError::WrongWorld { exports } if exports == &["acme:gadget/runner@1.0.0"]),
        "{err:?}"
    );
    assert_reference_still_serves();
}

#[test]
fn hostile_other_interface_version_is_rejected_on_upload() {
    let err = host().validate(&common::component("hostile_other_version")).unwrap_err();
    assert_eq!(
        err,
        ValidationError::UnsupportedInterfaceVersion { found: "3.0.0".into(), supported: "1.x, 2.x".into() }
    );
    assert_reference_still_serves();
}

// ---- interface versions served side by side

#[test]
fn sensor_hub_samples_decode_to_events_that_name_their_gateway() {
    use Severity::*;
    let hub = adapter(HUB);
    assert_eq!(hub.interface_version, "2.0.0");
    assert_eq!(hub.info.device_classes, [velferd_plugins::event::DeviceClass::HomeSensor]);
    let events = decode_sample(&hub, "sensor-hub-json", "night-round.json", "application/json").unwrap();
    assert_events(
        &events,
        &[
            ("h-7001", "BS-0311", "left-bed", Moderate, Some("4.2"), "2026-11-30T01:41:10Z"),
            ("h-7002", "DS-0042", "door-opened", Normal, Some("4.15"), "2026-11-30T01:43:55Z"),
            ("h-7003", "SM-0007", "fire", Critical, Some("4.11"), "2026-11-22T07:30:00Z"),
            ("h-7004", "HUB-5521007", "heartbeat", Normal, None, "2026-11-30T01:45:00Z"),
            ("h-7005", "HUB-5521007", "mains-power-lost", Moderate, Some("1.19"), "2026-11-30T01:46:00Z"),
        ],
    );
    let gateways: Vec<Option<&str>> = events.iter().map(|e| e.gateway_serial.as_deref()).collect();
    assert_eq!(gateways, [Some("HUB-5521007"), Some("HUB-5521007"), Some("HUB-5521007"), None, None]);
    assert!(matches!(&events[2].kind, EventKind::Fire(p) if p.location.as_deref() == Some("kitchen")));

    let err = decode_sample(&hub, "sensor-hub-json", "malformed.json", "application/json").unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(ref m) if m.contains("yesterday")), "{err:?}");
    let err = decode_sample(&hub, "sensor-hub-json", "unknown-type.json", "application/json").unwrap_err();
    assert!(matches!(err, DecodeError::Unsupported(ref m) if m.contains("carbon_monoxide")), "{err:?}");
    let encoded = host().encode_command(&hub, "3024", "HUB-5521007", &Command::TestAlarm).result.unwrap();
    assert_eq!(String::from_utf8(encoded.body).unwrap(), r#"{"hub":"HUB-5521007","command":"test"}"#);
}

#[test]
fn one_decoder_built_for_versions_1_and_2_differs_only_in_who_it_names() {
    // The SCAIP decoder, built against 1.0.0 (`alarm-scaip`) and 2.0.0 (`alarm-scaip-v2`): an
    // accessory's alarm is filed under the unit by 1.0.0 and under the accessory, relayed by
    // the unit, by 2.0.0; the unit's own messages decode the same.
    let (v1, v2) = (adapter(ALARM), adapter("velferd_alarm_scaip_v2"));
    assert_eq!((v1.interface_version.as_str(), v2.interface_version.as_str()), ("1.0.0", "2.0.0"));
    assert_eq!(v2.info.adapter_version, "2.0.0");
    let by_v1 = decode_sample(&v1, "alarm-scaip", "pull-cord-accessory.xml", "application/xml").unwrap();
    let by_v2 = decode_sample(&v2, "alarm-scaip", "pull-cord-accessory.xml", "application/xml").unwrap();
    assert_eq!((by_v1[0].device_serial.as_str(), by_v1[0].gateway_serial.as_deref()), ("SA-7734001", None));
    assert_eq!((by_v2[0].device_serial.as_str(), by_v2[0].gateway_serial.as_deref()), ("PC-0007", Some("SA-7734001")));
    assert_eq!((by_v1[0].kind.name(), by_v1[0].severity), (by_v2[0].kind.name(), by_v2[0].severity));
    for file in ["alarm-button.xml", "fall.xml", "heartbeat.xml", "unclassified-alarm.xml"] {
        let by_v1 = decode_sample(&v1, "alarm-scaip", file, "application/xml").unwrap();
        assert_eq!(by_v1, decode_sample(&v2, "alarm-scaip", file, "application/xml").unwrap(), "{file}");
    }
    let long = format!("<mrq><ref>A-1</ref><cid>SA-1</cid><did>{}</did><mty>PI</mty></mrq>", "d".repeat(65));
    let err = host().decode(&v2, "3805", "application/xml", long.as_bytes()).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(ref m) if m.contains("<did>")), "{err:?}");
}

#[test]
fn versions_1_and_2_are_served_side_by_side_by_one_host() {
    // One host, both majors validated, calls interleaved from several threads
    // as concurrent ingest would make them: each adapter keeps answering in its
    // own version's terms.
    let (dispenser, alarm, hub) = (adapter(DISPENSER), adapter(ALARM), adapter(HUB));
    assert_eq!(
        [dispenser.interface_version.as_str(), alarm.interface_version.as_str(), hub.interface_version.as_str()],
        ["1.0.0", "1.0.0", "2.0.0"]
    );
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..10 {
                    let events =
                        decode_sample(&hub, "sensor-hub-json", "night-round.json", "application/json").unwrap();
                    assert_eq!(events[0].gateway_serial.as_deref(), Some("HUB-5521007"));
                    let events =
                        decode_sample(&dispenser, "dispenser-json", "morning-dose.json", "application/json").unwrap();
                    assert_eq!(events.len(), 2);
                    assert!(events.iter().all(|e| e.gateway_serial.is_none()));
                    let events = decode_sample(&alarm, "alarm-scaip", "fall.xml", "application/xml").unwrap();
                    assert_eq!((events[0].kind.name(), events[0].gateway_serial.as_deref()), ("fall", None));
                }
            });
        }
    });
    // A version-1 event's JSON is what it was before version 2 existed, so
    // stored events and replay reviews do not see a spurious new field.
    let events = decode_sample(&dispenser, "dispenser-json", "morning-dose.json", "application/json").unwrap();
    assert!(!serde_json::to_string(&events[0]).unwrap().contains("gateway"));
    let events = decode_sample(&hub, "sensor-hub-json", "night-round.json", "application/json").unwrap();
    assert!(serde_json::to_string(&events[0]).unwrap().contains(r#""gateway_serial":"HUB-5521007""#));
}

#[test]
fn a_warm_instance_serves_version_2_too() {
    let hub = adapter(HUB);
    let mut warm = host().instantiate(&hub, "3024").unwrap();
    let payload = std::fs::read(common::sample("sensor-hub-json", "night-round.json")).unwrap();
    for _ in 0..3 {
        let events = warm.decode("application/json", &payload, received_at()).result.unwrap();
        assert_eq!(events.len(), 5);
    }
    assert_eq!(warm.calls(), 3);
}

#[test]
fn the_sdk_helpers_pass_their_own_tests() {
    common::sdk_unit_tests().unwrap_or_else(|output| panic!("the SDK's unit tests failed:\n{output}"));
}

// ---- velferd adapter check

fn check_output(name: &str, sample: Option<(&Path, &str)>) -> (bool, String) {
    let sample = sample.map(|(file, content_type)| Sample { file, content_type, expect_error: None });
    let report = check(&common::component_path(name), &Limits::default(), &CheckOptions { sample, cache: None });
    (report.passed(), report.to_string())
}

#[test]
fn check_accepts_the_reference_adapters_and_shows_events_and_cost() {
    let sample = common::sample("dispenser-json", "missed-dose.json");
    let (passed, out) = check_output(DISPENSER, Some((&sample, "application/json")));
    assert!(passed, "{out}");
    for needle in [
        "interface velferd:device@1.0.0",
        "supplier        Velferd reference",
        "2 event(s)",
        "dose-missed Serious [VKP 1.1] id=e-1004",
        "instructions",
        "peak memory",
        "of 10000000",
        "verdict   OK",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let sample = common::sample("alarm-scaip", "fall.xml");
    let (passed, out) = check_output(ALARM, Some((&sample, "application/xml")));
    assert!(passed, "{out}");
    assert!(out.contains("SA-7734002 fall Critical [VKP 4.1] id=A-000125"), "{out}");
    let (passed, out) = check_output(ALARM, None);
    assert!(passed && out.contains("content types   application/xml, text/xml, application/scaip+xml"), "{out}");
    assert!(out.contains("interface velferd:device@1.0.0 (served; the newest is 2.0.0"), "{out}");

    let sample = common::sample("sensor-hub-json", "night-round.json");
    let (passed, out) = check_output(HUB, Some((&sample, "application/json")));
    assert!(passed, "{out}");
    for needle in [
        "interface velferd:device@2.0.0\n",
        "5 event(s)",
        "DS-0042 via HUB-5521007 door-opened Normal [VKP 4.15] id=h-7002",
        "HUB-5521007 heartbeat Normal id=h-7004",
        "verdict   OK",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
}

#[test]
fn check_gives_the_right_verdict_on_every_hostile_adapter() {
    let sample = common::sample("dispenser-json", "morning-dose.json");
    let runtime = [
        ("hostile_infinite_loop", "[fuel-exhausted]"),
        ("hostile_memory_bomb", "[memory-exceeded]"),
        ("hostile_panic", "[trap]"),
        ("hostile_gigantic_output", "[output-too-large]"),
        ("hostile_read_env", "[capability-denied]"),
    ];
    for (name, code) in runtime {
        let (passed, out) = check_output(name, Some((&sample, "application/json")));
        assert!(!passed, "{name}\n{out}");
        assert!(
            out.contains(code) && out.contains("verdict   FAILED") && out.contains("instructions"),
            "{name}\n{out}"
        );
    }
    let (passed, out) = check_output("hostile_deep_recursion", Some((&sample, "application/json")));
    assert!(!passed && (out.contains("[stack-overflow]") || out.contains("[trap]")), "{out}");
    let upload = [
        ("hostile_open_file", "wasi:filesystem/"),
        ("hostile_open_socket", "wasi:sockets/"),
        ("hostile_wrong_world", "does not export velferd:device/adapter"),
        ("hostile_other_version", "velferd:device@3.0.0"),
    ];
    for (name, needle) in upload {
        let (passed, out) = check_output(name, Some((&sample, "application/json")));
        assert!(!passed, "{name}\n{out}");
        assert!(out.contains(needle) && out.contains("verdict   REJECTED"), "{name}\n{out}");
    }
    let (passed, out) = check_output("no_such_adapter", None);
    assert!(!passed && out.contains("cannot read"), "{out}");
}

/// 200 pages: 12.5 MiB, over the default 4 MiB and under 16 MiB.
const BIG_MEMORY_PAGES: u64 = 200;

/// The kebab-case kind of each problem a check found (`too-large`, `forbidden-import`, …).
fn problem_kinds(report: &velferd_plugins::CheckReport) -> Vec<String> {
    report
        .problems
        .iter()
        .map(|p| match p {
            velferd_plugins::CheckError::Rejected(e) => {
                serde_json::to_value(e).unwrap()["error"].as_str().unwrap().to_owned()
            }
            other => format!("{other}"),
        })
        .collect()
}

#[test]
fn check_lists_every_problem_of_a_component_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sample = common::sample("dispenser-json", "morning-dose.json");
    let tiny = Limits { component_bytes: 1000, ..Limits::default() };
    // (component, its initial memory raised, limits, the problems, whether the sample runs)
    let table: [(&str, bool, &Limits, &[&str], bool); 7] = [
        (DISPENSER, true, &Limits::default(), &["initial-memory-too-large"], false),
        (DISPENSER, false, &tiny, &["too-large"], true),
        (DISPENSER, true, &tiny, &["too-large", "initial-memory-too-large"], false),
        ("hostile_open_file", true, &tiny, &["too-large", "initial-memory-too-large", "forbidden-import"], false),
        ("hostile_open_socket", false, &Limits::default(), &["forbidden-import"], false),
        ("hostile_wrong_world", true, &Limits::default(), &["initial-memory-too-large", "wrong-world"], false),
        ("hostile_other_version", false, &tiny, &["too-large", "unsupported-interface-version"], false),
    ];
    for (name, big_memory, limits, expected, sample_runs) in table {
        let mut bytes = common::component(name);
        if big_memory {
            bytes = common::with_initial_memory(&bytes, BIG_MEMORY_PAGES);
        }
        let path = dir.path().join(format!("{name}-{big_memory}.wasm"));
        std::fs::write(&path, &bytes).unwrap();
        let options = CheckOptions {
            sample: Some(Sample { file: &sample, content_type: "application/json", expect_error: None }),
            cache: None,
        };
        let report = check(&path, limits, &options);
        let out = report.to_string();
        let mut kinds = problem_kinds(&report);
        // A component refused for its imports names each of them: keep one of a kind.
        kinds.dedup();
        assert_eq!(kinds, expected, "{name} (big memory: {big_memory})\n{out}");
        assert!(!report.passed(), "{out}");
        assert!(out.contains("verdict   REJECTED: the server would refuse this component"), "{out}");
        for problem in &report.problems {
            assert!(out.contains(&format!("REJECTED  {problem}")), "{problem} not shown in\n{out}");
        }
        let sample_report = report.sample.as_ref().unwrap();
        assert_eq!(sample_report.result.is_some(), sample_runs, "{name}\n{out}");
        if big_memory {
            assert!(out.contains("starts with 12.5 MiB of memory; the limit is 4 MiB"), "{out}");
        }
    }
    // Each refused import is named with its reason.
    let report = check(&common::component_path("hostile_open_socket"), &Limits::default(), &CheckOptions::default());
    let imports: Vec<&velferd_plugins::CheckError> = report.problems.iter().collect();
    assert!(!imports.is_empty());
    for problem in imports {
        assert!(
            matches!(problem, velferd_plugins::CheckError::Rejected(ValidationError::ForbiddenImport { import, reason })
                if import.starts_with("wasi:sockets/") && reason == "the sandbox grants no network"),
            "{problem:?}"
        );
    }
}

#[test]
fn initial_memory_over_the_cap_is_refused_in_plain_words_on_upload_and_accepted_under_a_higher_cap() {
    let big = common::with_initial_memory(&common::component(DISPENSER), BIG_MEMORY_PAGES);
    let err = host().validate(&big).unwrap_err();
    assert_eq!(err, ValidationError::InitialMemoryTooLarge { size: BIG_MEMORY_PAGES << 16, limit: 4 << 20 });
    assert_eq!(err.to_string(), "the component starts with 12.5 MiB of memory; the limit is 4 MiB");
    assert_eq!(serde_json::to_value(&err).unwrap()["error"], "initial-memory-too-large");

    let roomy = AdapterHost::with_compile_cache(Limits { memory_bytes: 16 << 20, ..Limits::default() }, None).unwrap();
    let adapter = roomy.validate(&big).unwrap();
    let payload = std::fs::read(common::sample("dispenser-json", "morning-dose.json")).unwrap();
    let report = roomy.decode_with_report(&adapter, "3805", "application/json", &payload, received_at());
    assert_eq!(report.result.unwrap().len(), 2);
    assert!(report.cost.peak_memory_bytes >= (BIG_MEMORY_PAGES << 16) as usize);
}

#[test]
fn a_sample_marked_with_expect_error_passes_only_when_it_fails_with_that_code() {
    let path = common::component_path(DISPENSER);
    let run = |file: &str, expect_error: Option<&str>| {
        let sample = common::sample("dispenser-json", file);
        let options = CheckOptions {
            sample: Some(Sample { file: &sample, content_type: "application/json", expect_error }),
            cache: None,
        };
        let report = check(&path, &Limits::default(), &options);
        (report.passed(), report.to_string())
    };
    let (passed, out) = run("malformed.json", Some("malformed"));
    assert!(passed, "{out}");
    assert!(out.contains("failed as expected [malformed]"), "{out}");
    assert!(
        out.contains("verdict   OK: the adapter is ready to upload (the sample failed with [malformed], as expected)")
    );

    let (passed, out) = run("morning-dose.json", Some("malformed"));
    assert!(!passed, "{out}");
    assert!(
        out.contains("verdict   FAILED: the sample decoded, but it was expected to fail with [malformed]"),
        "{out}"
    );

    let (passed, out) = run("malformed.json", Some("unsupported"));
    assert!(!passed, "{out}");
    assert!(
        out.contains("verdict   FAILED: the sample failed with [malformed], not the expected [unsupported]"),
        "{out}"
    );

    let (passed, out) = run("malformed.json", None);
    assert!(!passed && out.contains("FAILED [malformed]"), "{out}");
}

// ---- calling from async code, as the server will

#[test]
fn calls_work_from_tokio_through_spawn_blocking() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dispenser = adapter(DISPENSER);
        let panicky = adapter("hostile_panic");
        let payload = std::fs::read(common::sample("dispenser-json", "morning-dose.json")).unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (host, dispenser, panicky, payload) =
                (host().clone(), dispenser.clone(), panicky.clone(), payload.clone());
            tasks.push(tokio::task::spawn_blocking(move || {
                // The panicking guest writes to stderr, which goes through
                // WASI's stream glue: it must work off the async workers.
                let trapped = host.decode(&panicky, "0301", "application/json", b"{}");
                let decoded =
                    host.decode(&dispenser, if i % 2 == 0 { "3805" } else { "0301" }, "application/json", &payload);
                (trapped, decoded)
            }));
        }
        for task in tasks {
            let (trapped, decoded) = task.await.unwrap();
            assert!(matches!(trapped, Err(DecodeError::Trap(_))));
            assert_eq!(decoded.unwrap().len(), 2);
        }
    });
}

// ---- the vocabulary against the WIT and VKP's code systems

fn shared_schemas() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("VELFERD_SHARED_SCHEMAS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("../shared/schemas"));
    if dir.join("vkp-r4-v090").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("VKP code systems not found at {} (set VELFERD_SHARED_SCHEMAS)", dir.display());
    }
    eprintln!("SKIPPED: VKP code systems not found at {} (set VELFERD_SHARED_SCHEMAS)", dir.display());
    None
}

/// Every `<code value="…"/>` of a FHIR CodeSystem in XML, nested concepts
/// included, with the system's canonical URL.
fn codes_of(file: &Path) -> (String, Vec<String>) {
    let xml = std::fs::read_to_string(file).unwrap();
    let value_of = |tag: &str, text: &str| -> Vec<String> {
        let open = format!("<{tag} value=\"");
        text.match_indices(&open)
            .map(|(i, _)| {
                let rest = &text[i + open.len()..];
                rest[..rest.find('"').unwrap()].to_owned()
            })
            .collect()
    };
    // The CodeSystem's own url comes before any concept.
    let head = &xml[..xml.find("<concept>").unwrap_or(xml.len())];
    let url = value_of("url", head).into_iter().last().expect("CodeSystem url");
    (url, value_of("code", &xml))
}

#[test]
fn every_vkp_code_of_the_vocabulary_exists_in_vkp() {
    let Some(dir) = shared_schemas() else { return };
    let dir = dir.join("vkp-r4-v090");
    let systems: Vec<(String, Vec<String>)> = [
        "vkp-alert-code-v090.codesystem.xml",
        "vkp-medicationdispense-events-v090.codesystem.xml",
        "vkp-severity-level-v090.codesystem.xml",
    ]
    .iter()
    .map(|f| codes_of(&dir.join(f)))
    .collect();
    let exists =
        |code: &VkpCode| systems.iter().any(|(url, codes)| url == code.system && codes.iter().any(|c| c == code.code));
    assert!(systems.iter().all(|(_, codes)| codes.len() >= 5), "parsed too few codes: {systems:?}");
    let mut checked = 0;
    for kind in VOCABULARY {
        for code in kind.vkp_codes {
            assert!(exists(code), "{} maps to {code:?}, which VKP does not define", kind.name);
            checked += 1;
        }
    }
    for severity in Severity::ALL {
        assert!(exists(&severity.vkp_code()), "{severity:?}");
    }
    assert!(checked >= 40, "only {checked} codes checked");
}

/// The WIT's `event-kind` cases with the VKP codes their docs name.
fn wit_event_kinds() -> Vec<(String, Vec<String>)> {
    wit_event_kinds_of("device-v2")
}

#[test]
fn every_served_version_has_the_same_event_vocabulary() {
    // 2.0.0 changed the event record, not the kinds: the host's one
    // vocabulary (and its VKP mapping) covers every served version.
    assert_eq!(wit_event_kinds_of("device-v1"), wit_event_kinds_of("device-v2"));
    for major in velferd_plugins::SUPPORTED_INTERFACE_MAJORS {
        let wit = std::fs::read_to_string(common::repo_root().join(format!("schema/wit/device-v{major}/device.wit")))
            .unwrap();
        assert!(
            wit.contains(&format!("package velferd:device@{major}.")),
            "schema/wit/device-v{major} holds version {major}"
        );
    }
    assert!(
        velferd_plugins::NEWEST_INTERFACE_VERSION
            .starts_with(&format!("{}.", velferd_plugins::SUPPORTED_INTERFACE_MAJORS.last().unwrap()))
    );
}

fn wit_event_kinds_of(dir: &str) -> Vec<(String, Vec<String>)> {
    let wit = std::fs::read_to_string(common::repo_root().join(format!("schema/wit/{dir}/device.wit"))).unwrap();
    let body = &wit[wit.find("variant event-kind {").unwrap()..];
    let body = &body[..body.find("\n    }").unwrap()];
    let mut kinds = Vec::new();
    let mut doc = String::new();
    for line in body.lines().skip(1).map(str::trim) {
        if let Some(text) = line.strip_prefix("///") {
            doc.push_str(text);
            doc.push(' ');
        } else if line.ends_with(',') && !line.starts_with("//") {
            let name = line.trim_end_matches(',').split('(').next().unwrap().to_owned();
            let words: Vec<&str> = doc.split_whitespace().collect();
            let mut codes = Vec::new();
            for (i, w) in words.iter().enumerate() {
                if *w == "alert" || *w == "dispense" {
                    let mut j = i + 1;
                    while let Some(next) = words.get(j) {
                        let code = next.trim_end_matches([',', '.', ';', ')']);
                        if code.is_empty()
                            || !code.chars().all(|c| c.is_ascii_digit() || c == '.')
                            || code.ends_with('.')
                        {
                            break;
                        }
                        codes.push(format!("{w} {code}"));
                        j += 1;
                        // "1.1 when unassisted, 1.2 when assisted, 1 when unknown"
                        while let Some(skip) = words.get(j) {
                            if skip.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                                break;
                            }
                            if [
                                "when",
                                "unassisted,",
                                "assisted,",
                                "unassisted",
                                "assisted",
                                "unknown.",
                                "unknown",
                                "or",
                            ]
                            .contains(skip)
                            {
                                j += 1;
                            } else {
                                break;
                            }
                        }
                    }
                }
            }
            kinds.push((name, codes));
            doc.clear();
        }
    }
    kinds
}

#[test]
fn the_vocabulary_matches_the_wit_and_its_documented_codes() {
    let wit = wit_event_kinds();
    let names: Vec<&str> = wit.iter().map(|(n, _)| n.as_str()).collect();
    let ours: Vec<&str> = VOCABULARY.iter().map(|k| k.name).collect();
    assert_eq!(names, ours, "WIT event-kind cases and the host's VOCABULARY differ");
    for ((name, documented), kind) in wit.iter().zip(VOCABULARY) {
        let mut ours: Vec<String> = kind
            .vkp_codes
            .iter()
            .map(|c| {
                format!("{} {}", if c.system.contains("medicationdispense") { "dispense" } else { "alert" }, c.code)
            })
            .collect();
        let mut documented = documented.clone();
        ours.sort();
        documented.sort();
        assert_eq!(documented, ours, "{name}: the WIT docs and the host's VKP mapping differ");
        // And the Rust type knows the kind by the same name and code.
        let value: EventKind = serde_json::from_value(serde_json::json!({ "type": name })).unwrap();
        assert_eq!(value.name(), name);
        assert_eq!(value.vkp_code(), kind.vkp_codes.first().copied());
    }
}

// ---- untrusted input

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary bytes never make a reference adapter trap: they decode or
    /// are refused as malformed or unsupported.
    #[test]
    fn reference_adapters_refuse_garbage_cleanly(payload in proptest::collection::vec(any::<u8>(), 0..2048), json in any::<bool>()) {
        let (name, content_type) = if json { (DISPENSER, "application/json") } else { (ALARM, "application/xml") };
        match host().decode(&adapter(name), "3805", content_type, &payload) {
            Ok(_) | Err(DecodeError::Malformed(_)) | Err(DecodeError::Unsupported(_)) => {}
            Err(other) => prop_assert!(false, "{name} on {payload:?}: {other:?}"),
        }
    }

    /// Well-formed messages with arbitrary field values never trap either.
    #[test]
    fn dispenser_survives_arbitrary_field_values(id in ".{0,200}", kind in "[a-z_]{0,20}", at in ".{0,40}", remaining in any::<u32>()) {
        let payload = serde_json::json!({"serial": "RD-1", "events": [{"id": id, "type": kind, "at": at, "doses_remaining": remaining}]});
        match host().decode(&adapter(DISPENSER), "3805", "application/json", payload.to_string().as_bytes()) {
            Ok(events) => prop_assert_eq!(events.len(), 1),
            Err(DecodeError::Malformed(_)) | Err(DecodeError::Unsupported(_)) => {}
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }

    /// A version-2 adapter's events name a gateway exactly when the sensor is not the hub
    /// itself, whatever the serials; bad serials are refused, never trapped on.
    #[test]
    fn hub_events_name_their_gateway_only_when_relayed(hub in ".{0,80}", sensor in proptest::option::of(".{0,80}"), zone in ".{0,100}") {
        let payload = serde_json::json!({"hub": hub, "events": [{"id": "h-1", "sensor": sensor, "type": "door_opened", "zone": zone}]});
        match host().decode(&adapter(HUB), "3024", "application/json", payload.to_string().as_bytes()) {
            Ok(events) => {
                let relayed = sensor.as_ref().is_some_and(|s| *s != hub);
                prop_assert_eq!(events[0].gateway_serial.as_deref(), relayed.then_some(hub.as_str()));
                prop_assert_eq!(&events[0].device_serial, if relayed { sensor.as_ref().unwrap() } else { &hub });
            }
            Err(DecodeError::Malformed(_)) => prop_assert!(hub.is_empty() || hub.len() > 64 || sensor.is_some_and(|s| s.is_empty() || s.len() > 64)),
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }
}

#[test]
fn a_warm_instance_keeps_state_within_a_batch_and_refuses_calls_after_a_trap() {
    let chatty = adapter("hostile_stateful_chatty");
    let mut warm = host().instantiate(&chatty, "3805").unwrap();
    for expected in ["1", "2", "3"] {
        let events = warm.decode("application/json", b"SA-1", received_at()).result.unwrap();
        assert_eq!(events[0].detail.as_deref(), Some(format!("calls seen by this instance: {expected}").as_str()));
    }
    let mut warm = host().instantiate(&adapter("hostile_panic"), "3805").unwrap();
    assert!(matches!(warm.decode("application/json", b"{}", received_at()).result, Err(DecodeError::Trap(_))));
    let again = warm.decode("application/json", b"{}", received_at()).result;
    assert!(matches!(&again, Err(DecodeError::Trap(t)) if t.contains("trapped earlier")), "{again:?}");
    assert_eq!(warm.calls(), 1);
}
