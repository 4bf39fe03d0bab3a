//! The JavaScript and Python reference adapters (plugins/guests/dispenser-js and
//! dispenser-py, `velferd:device@2.0.0`) against the Rust reference adapter they copy
//! (plugins/guests/dispenser-json, 1.0.0): the same events, or the same error code, for the
//! shared samples and for generated messages, valid and broken. All three run in the host
//! as the server runs them, a fresh instance per message.
//!
//! The two components are built from source with the registries' toolchains (see
//! `polyglot_support`); where a toolchain cannot be installed, each test prints a SKIPPED
//! line and passes. The limits they run under here are the ones an admin would approve for
//! them (docs/adapter-benchmarks.md, "JavaScript and Python adapters").

mod common;
mod polyglot_support;

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use polyglot_support::Lang;
use proptest::prelude::*;
use velferd_plugins::{AdapterHost, Command, DecodeError, Event, Limits, ValidatedAdapter, ValidationError};

const RUST_DISPENSER: &str = "velferd_dispenser_json";

/// What each adapter needs beyond the defaults, with headroom over what it was measured to
/// use on the largest batch (docs/adapter-benchmarks.md, "JavaScript and Python adapters"):
/// JavaScript 1.8 MB, 1.7 MiB of memory, 183 M instructions; Python 18.5 MB, 12.4 MiB,
/// 80 M. Both decode that batch within the default 100 ms; the deadlines here are longer only
/// so that a busy CI machine cannot make the tests flaky.
fn approved_limits(lang: Lang) -> Limits {
    let defaults = Limits::default();
    match lang {
        Lang::JavaScript => Limits {
            component_bytes: 2 << 20,
            fuel: Some(250_000_000),
            deadline: Duration::from_secs(1),
            concurrent_instances: 8,
            ..defaults
        },
        Lang::Python => Limits {
            component_bytes: 20 << 20,
            memory_bytes: 16 << 20,
            fuel: Some(100_000_000),
            deadline: Duration::from_secs(1),
            concurrent_instances: 8,
            ..defaults
        },
    }
}

/// One host per language with its approved limits, and the Rust adapter under the defaults.
fn host(lang: Option<Lang>) -> &'static AdapterHost {
    static RUST: OnceLock<AdapterHost> = OnceLock::new();
    static JS: OnceLock<AdapterHost> = OnceLock::new();
    static PY: OnceLock<AdapterHost> = OnceLock::new();
    let (cell, limits) = match lang {
        None => (&RUST, Limits::default()),
        Some(Lang::JavaScript) => (&JS, approved_limits(Lang::JavaScript)),
        Some(Lang::Python) => (&PY, approved_limits(Lang::Python)),
    };
    cell.get_or_init(|| AdapterHost::new(limits).expect("host"))
}

fn rust_adapter() -> &'static ValidatedAdapter {
    static ADAPTER: OnceLock<ValidatedAdapter> = OnceLock::new();
    ADAPTER.get_or_init(|| {
        host(None).validate(&common::component(RUST_DISPENSER)).unwrap_or_else(|e| panic!("Rust adapter: {e}"))
    })
}

/// The validated adapter of `lang`, or `None` when its toolchain is not available here
/// (`polyglot_support` prints a SKIPPED line once).
fn adapter(lang: Lang) -> Option<&'static ValidatedAdapter> {
    static JS: OnceLock<Option<ValidatedAdapter>> = OnceLock::new();
    static PY: OnceLock<Option<ValidatedAdapter>> = OnceLock::new();
    let cell = match lang {
        Lang::JavaScript => &JS,
        Lang::Python => &PY,
    };
    cell.get_or_init(|| {
        let bytes = polyglot_support::component(lang)?;
        Some(host(Some(lang)).validate(&bytes).unwrap_or_else(|e| panic!("{} adapter: {e}", lang.name())))
    })
    .as_ref()
}

/// About the largest batch whose events stay under the default output cap (64 KiB of events
/// as JSON): 240 refills, 24 KB. What a decode may cost at most in practice.
fn largest_batch() -> Vec<u8> {
    let events: Vec<String> = (0..240)
        .map(|k| format!(r#"{{"id":"e-{k}","type":"refill","at":"2026-11-22T07:00:00Z","doses_remaining":{k}}}"#))
        .collect();
    format!(r#"{{"serial":"RD-100234","events":[{}]}}"#, events.join(",")).into_bytes()
}

fn received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 7, 30, 0).unwrap()
}

/// Events, or the error's code: messages differ between languages, codes must not.
type Outcome = Result<Vec<Event>, &'static str>;

fn decode(lang: Option<Lang>, adapter: &ValidatedAdapter, content_type: &str, payload: &[u8]) -> Outcome {
    let report = host(lang).decode_with_report(adapter, "3805", content_type, payload, received_at());
    report.result.map_err(|e| e.code())
}

fn samples() -> Vec<(String, Vec<u8>)> {
    let dir = common::repo_root().join("plugins/guests/dispenser-json/samples");
    let mut samples: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect();
    samples.sort();
    samples
}

fn decodes_the_samples_like_the_rust_adapter(lang: Lang) {
    let Some(adapter) = adapter(lang) else { return };
    let rust = rust_adapter();
    assert_eq!(adapter.interface_version, "2.0.0");
    assert_eq!(adapter.info, rust.info, "describe answers as the Rust adapter's");
    let mut events = 0;
    for (file, payload) in samples() {
        for content_type in ["application/json", "application/vnd.velferd.reference-dispenser+json", "text/plain"] {
            let expected = decode(None, rust, content_type, &payload);
            let got = decode(Some(lang), adapter, content_type, &payload);
            assert_eq!(got, expected, "{} on {file} as {content_type}", lang.name());
            events += expected.as_ref().map_or(0, Vec::len);
        }
    }
    // The samples hold both outcomes, so the comparison covers events as well as errors.
    assert!(events >= 14, "the samples decode to events: {events}");
}

#[test]
fn javascript_adapter_decodes_the_samples_like_the_rust_adapter() {
    decodes_the_samples_like_the_rust_adapter(Lang::JavaScript);
}

#[test]
fn python_adapter_decodes_the_samples_like_the_rust_adapter() {
    decodes_the_samples_like_the_rust_adapter(Lang::Python);
}

fn encodes_commands_like_the_rust_adapter(lang: Lang) {
    let Some(adapter) = adapter(lang) else { return };
    let commands = [
        Command::TestAlarm,
        Command::SetDispensingSchedule { times: vec![(8, 0), (20, 30), (12, 5)] },
        Command::SetDispensingSchedule { times: vec![] },
        Command::SetDispensingSchedule { times: vec![(24, 0)] },
        Command::SetDispensingSchedule { times: vec![(8, 0), (8, 0)] },
        Command::SetDispensingSchedule { times: (0..9).map(|h| (h, 0)).collect() },
    ];
    for serial in ["RD-100234", "RD-\"æ\"\u{1}"] {
        for command in &commands {
            let expected = host(None).encode_command(rust_adapter(), "3805", serial, command).result;
            let got = host(Some(lang)).encode_command(adapter, "3805", serial, command).result;
            match (&got, &expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{} encoding {command:?}", lang.name()),
                (got, expected) => assert_eq!(
                    got.as_ref().map_err(DecodeError::code).err(),
                    expected.as_ref().map_err(DecodeError::code).err(),
                    "{} encoding {command:?}: {got:?} vs {expected:?}",
                    lang.name()
                ),
            }
        }
    }
}

#[test]
fn javascript_adapter_encodes_commands_like_the_rust_adapter() {
    encodes_commands_like_the_rust_adapter(Lang::JavaScript);
}

#[test]
fn python_adapter_encodes_commands_like_the_rust_adapter() {
    encodes_commands_like_the_rust_adapter(Lang::Python);
}

/// The approved limits hold the largest batch a message can carry (its events at the output
/// cap), decoded to the Rust adapter's events.
#[test]
fn approved_limits_hold_the_largest_batch() {
    let payload = largest_batch();
    let expected = decode(None, rust_adapter(), "application/json", &payload);
    assert_eq!(expected.as_ref().map(Vec::len), Ok(240));
    for lang in [Lang::JavaScript, Lang::Python] {
        let Some(adapter) = adapter(lang) else { continue };
        let got = decode(Some(lang), adapter, "application/json", &payload);
        assert!(got == expected, "{}: {:?}", lang.name(), got.as_ref().map(Vec::len));
    }
}

/// Today's defaults refuse both components on size, naming the limit; the approved limits
/// above take them. (Limits per adapter version, approved at activation, are the server's
/// part: the end-to-end tests.)
#[test]
fn default_limits_refuse_the_javascript_and_python_adapters_by_size() {
    let defaults = AdapterHost::new(Limits::default()).expect("host");
    for lang in [Lang::JavaScript, Lang::Python] {
        let Some(bytes) = polyglot_support::component(lang) else { continue };
        match defaults.validate(&bytes) {
            Err(ValidationError::TooLarge { size, limit }) => {
                assert_eq!((size, limit), (bytes.len(), Limits::default().component_bytes));
            }
            other => panic!("{} under the defaults: {other:?}", lang.name()),
        }
    }
}

// ---- generated messages ----

/// A JSON value written exactly as generated: strings hold their escaped text (so a lone
/// surrogate escape can be written), numbers their literal, objects may repeat a key.
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(&'static str),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn write(&self, out: &mut String, ws: &str) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(n),
            J::Str(s) => {
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            J::Arr(items) => {
                out.push('[');
                for (k, item) in items.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    out.push_str(ws);
                    item.write(out, ws);
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (k, (key, value)) in fields.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    out.push_str(ws);
                    out.push('"');
                    out.push_str(key);
                    out.push_str("\":");
                    out.push_str(ws);
                    value.write(out, ws);
                }
                out.push_str(ws);
                out.push('}');
            }
        }
    }
}

/// Escaped JSON string text of `s`, as serde_json writes it.
fn escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

// Every strategy below takes `wild`: false draws only values the adapters accept (still
// varied: Unicode, lengths up to the limits, escapes, absent and null optional fields,
// field order, serde's array form of a struct), true mixes in values at and past every
// bound. Half the messages are tame, so the comparison is about events as much as errors.

fn text(wild: bool) -> BoxedStrategy<String> {
    // Lengths at the contract's byte limits (32, 64, 128, 1 024), with multi-byte characters
    // across them; over them only when wild.
    let lengths = if wild {
        vec![31usize, 32, 33, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 1030]
    } else {
        vec![1usize, 2, 31, 32]
    };
    let long = prop::sample::select(lengths)
        .prop_flat_map(|n| (Just(n), prop::sample::select(vec!["a", "æ", "€", "😀"])))
        .prop_map(|(n, c)| escaped(&c.repeat(n.div_ceil(c.len()))));
    // A valid pair and valid escapes; when wild, lone surrogates and a raw control character.
    let mut escapes = vec!["\\ud83d\\ude00", "\\u0001", "\\/\\b\\f\\n\\r\\t", "\\u00e6"];
    if wild {
        escapes.extend(["\\ud800", "\\udc00x", "\\ud800\\u0041", "a\u{1}b"]);
    }
    let escapes = prop::sample::select(escapes).prop_map(str::to_owned);
    let plain = "[A-Za-z0-9 _.-]{1,12}".prop_map(|s| escaped(&s));
    let unicode = ".{1,8}".prop_map(|s| escaped(&s));
    if wild {
        prop_oneof![6 => plain, 2 => unicode, 1 => Just(String::new()), 2 => long, 2 => escapes].boxed()
    } else {
        prop_oneof![12 => plain, 2 => unicode, 1 => long, 1 => escapes].boxed()
    }
}

/// Timestamps around the RFC 3339 grammar the adapters accept. ASCII only: the Rust SDK's
/// `Timestamp::parse_rfc3339` slices the text at byte 19 and so panics (the Rust adapter
/// traps) when a multi-byte character spans that byte, where the other two answer
/// `malformed` — a bug of the SDK, not a difference the contract allows.
fn timestamp(wild: bool) -> BoxedStrategy<String> {
    let pick = move |valid: &[&'static str], invalid: &[&'static str]| {
        let mut values = valid.to_vec();
        if wild {
            values.extend_from_slice(invalid);
        }
        prop::sample::select(values)
    };
    let parts = (
        pick(&["2026", "2024", "2100", "2000", "1970", "0000", "9999"], &["20x6"]),
        pick(&["01", "02", "11", "12"], &["00", "13"]),
        pick(&["01", "22", "28"], &["29", "30", "31", "00", "32"]),
        pick(&["T", "t", " "], &["x"]),
        pick(&["00", "07", "23"], &["24"]),
        pick(&["00", "59"], &["60"]),
        pick(&["00", "12", "59", "60"], &["61"]),
        pick(&["", "", ".5", ".123456789"], &[".1234567890", ".", ".x"]),
        pick(&["Z", "Z", "z", "+01:00", "-23:59"], &["+24:00", "+01:60", "", "+0100", "Zx"]),
    )
        .prop_map(|(y, mo, d, s, h, mi, se, f, z)| format!("{y}-{mo}-{d}{s}{h}:{mi}:{se}{f}{z}"));
    if wild { prop_oneof![6 => parts, 1 => "[0-9TZ:.+ -]{0,26}"].boxed() } else { parts.boxed() }
}

/// A number literal for a u8 or u32 field.
fn number(wild: bool) -> BoxedStrategy<J> {
    let mut values = vec!["0", "7", "28", "100", "101", "255"];
    if wild {
        values.extend(["256", "4294967295", "4294967296", "-1", "-0", "1.0", "1e2", "0.5", "18446744073709551616"]);
    }
    prop::sample::select(values).prop_map(J::Num).boxed()
}

/// Any value, for a field given the wrong type.
fn wrong() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(J::Bool(true)),
        number(true),
        text(true).prop_map(J::Str),
        Just(J::Arr(vec![])),
        Just(J::Obj(vec![])),
    ]
}

/// A field: absent (`None`), null (optional fields; any field when wild), a value of its
/// type, or (wild) a value of another type.
fn field(good: BoxedStrategy<J>, optional: bool, wild: bool) -> BoxedStrategy<Option<J>> {
    match (optional, wild) {
        (true, false) => prop_oneof![2 => Just(None), 1 => Just(Some(J::Null)), 6 => good.prop_map(Some)].boxed(),
        (false, false) => good.prop_map(Some).boxed(),
        (_, true) => prop_oneof![
            1 => Just(None),
            1 => Just(Some(J::Null)),
            8 => good.prop_map(Some),
            1 => wrong().prop_map(Some),
        ]
        .boxed(),
    }
}

const TYPES: &[&str] = &[
    "dose_available",
    "dose_taken",
    "prn_dose_taken",
    "dose_missed",
    "dose_not_confirmed",
    "refill",
    "supply_low",
    "supply_empty",
    "jam",
    "lid_open",
    "lid_closed",
    "power_lost",
    "power_restored",
    "battery_low",
    "offline",
    "online",
    "fault",
    "tray_misplaced",
    "break_in_attempt",
    "firmware_updated",
    "",
    "DOSE_TAKEN",
];
/// The event types release 1.0.0 decodes: the first ones of `TYPES`.
const KNOWN_TYPES: usize = 17;
const DOSE_TYPES: &[&str] = &["dose_available", "dose_taken", "prn_dose_taken", "dose_missed", "dose_not_confirmed"];

/// How an object is written: as is, with a field twice or an unknown one (wild only), or as
/// serde's other form of a struct, the array of its fields in order.
#[derive(Debug, Clone, Copy)]
enum Form {
    Object,
    Twice,
    Unknown,
    Array,
}

fn form(wild: bool) -> BoxedStrategy<Form> {
    if wild {
        prop_oneof![8 => Just(Form::Object), 1 => Just(Form::Twice), 1 => Just(Form::Unknown), 1 => Just(Form::Array)]
            .boxed()
    } else {
        prop_oneof![12 => Just(Form::Object), 1 => Just(Form::Array)].boxed()
    }
}

/// An object from named fields, the absent ones left out.
fn object(fields: Vec<(&'static str, Option<J>)>, form: Form) -> J {
    let present: Vec<(String, J)> =
        fields.iter().filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v))).collect();
    match form {
        Form::Twice if !present.is_empty() => {
            let mut with_twice = present.clone();
            with_twice.push(present[0].clone());
            J::Obj(with_twice)
        }
        Form::Unknown => {
            let mut with_unknown = present;
            with_unknown.push(("extra".to_owned(), J::Null));
            J::Obj(with_unknown)
        }
        // Leading fields in order; a missing one ends the array.
        Form::Array => J::Arr(fields.into_iter().map_while(|(_, v)| v).collect()),
        _ => J::Obj(present),
    }
}

fn dose(wild: bool) -> BoxedStrategy<J> {
    (
        field(text(wild).prop_map(J::Str).boxed(), true, wild),
        field(timestamp(wild).prop_map(J::Str).boxed(), true, wild),
        field(any::<bool>().prop_map(J::Bool).boxed(), true, wild),
        form(wild),
    )
        .prop_map(|(id, scheduled, assisted, form)| {
            object(vec![("id", id), ("scheduled", scheduled), ("assisted", assisted)], form)
        })
        .boxed()
}

fn item(wild: bool) -> BoxedStrategy<J> {
    let kind = if wild {
        prop_oneof![
            6 => prop::sample::select(TYPES).prop_map(|t| J::Str(t.to_owned())),
            1 => text(true).prop_map(J::Str),
        ]
        .boxed()
    } else {
        prop::sample::select(&TYPES[..KNOWN_TYPES]).prop_map(|t| J::Str(t.to_owned())).boxed()
    };
    let fault_code =
        if wild { text(true).prop_map(J::Str).boxed() } else { "[A-Z][0-9]{1,4}".prop_map(J::Str).boxed() };
    (
        (
            field(text(wild).prop_map(J::Str).boxed(), false, wild),
            field(kind, false, wild),
            field(timestamp(wild).prop_map(J::Str).boxed(), false, wild),
            field(dose(wild), true, wild),
        ),
        (
            field(number(wild), true, wild),
            field(number(wild), true, wild),
            field(fault_code, true, wild),
            field(text(wild).prop_map(J::Str).boxed(), true, wild),
        ),
        form(wild),
        any::<bool>(),
    )
        .prop_map(move |((id, kind, at, mut dose), (doses_remaining, battery, mut code, text), form, reverse)| {
            // A tame message has what its type needs: a dose, a fault code.
            if !wild {
                let kind_is = |name: &str| matches!(&kind, Some(J::Str(k)) if k == name);
                if DOSE_TYPES.iter().any(|t| kind_is(t)) && matches!(dose, None | Some(J::Null)) {
                    dose = Some(J::Obj(vec![]));
                }
                if kind_is("fault") && matches!(code, None | Some(J::Null)) {
                    code = Some(J::Str("E1".into()));
                }
            }
            let mut fields = vec![
                ("id", id),
                ("type", kind),
                ("at", at),
                ("dose", dose),
                ("doses_remaining", doses_remaining),
                ("battery", battery),
                ("code", code),
                ("text", text),
            ];
            // Field order must not matter for an object.
            if reverse && !matches!(form, Form::Array) {
                fields.reverse();
            }
            object(fields, form)
        })
        .boxed()
}

fn batch(wild: bool) -> BoxedStrategy<J> {
    let serial = if wild {
        prop_oneof![4 => Just(J::Str("RD-100234".into())), 3 => text(true).prop_map(J::Str), 1 => wrong()].boxed()
    } else {
        prop_oneof![1 => Just(J::Str("RD-100234".into())), 1 => text(false).prop_map(J::Str)].boxed()
    };
    let events = if wild {
        prop_oneof![8 => prop::collection::vec(item(true), 0..4).prop_map(J::Arr), 1 => wrong()].boxed()
    } else {
        prop::collection::vec(item(false), 0..4).prop_map(J::Arr).boxed()
    };
    (field(serial, false, wild), field(events, false, wild), form(wild))
        .prop_map(|(serial, events, form)| object(vec![("serial", serial), ("events", events)], form))
        .boxed()
}

/// A message: a generated batch, written with some whitespace; wild ones may also come with
/// another content type or be broken at the byte level (cut short, a byte replaced or
/// inserted: bad UTF-8, stray syntax).
fn message() -> impl Strategy<Value = (String, Vec<u8>)> {
    let tame = (
        prop::sample::select(vec![
            "application/json",
            "application/vnd.velferd.reference-dispenser+json",
            "Application/JSON; charset=utf-8",
            " application/json ",
            "\u{a0}application/json",
        ]),
        batch(false),
        Just(None),
    );
    let damage = prop_oneof![
        4 => Just(None),
        1 => (any::<prop::sample::Index>(), Just(0u8), any::<u8>()).prop_map(Some),
        1 => (any::<prop::sample::Index>(), Just(1u8), prop::sample::select(vec![0xffu8, 0xc3, 0x80, b'"', b',', b'}', b'\\', 0x00])).prop_map(Some),
        1 => (any::<prop::sample::Index>(), Just(2u8), prop::sample::select(vec![0xffu8, 0xc3, 0xed, b'"', b'{', b'[', b' ', b'0'])).prop_map(Some),
    ];
    let wild = (
        prop::sample::select(vec![
            "application/json",
            "application/json",
            "application/json",
            "text/plain",
            "application/xml",
            "\u{85}application/json",
            "",
        ]),
        batch(true),
        damage,
    );
    let ws = prop::sample::select(vec!["", " ", "\n  ", "\t", "\r\n"]);
    (prop_oneof![tame, wild], ws).prop_map(|((content_type, batch, damage), ws)| {
        let mut text = String::new();
        batch.write(&mut text, ws);
        let mut bytes = text.into_bytes();
        if let Some((at, how, byte)) = damage {
            let at = at.index(bytes.len() + 1);
            match how {
                0 => bytes.truncate(at),
                1 if at < bytes.len() => bytes[at] = byte,
                _ => bytes.insert(at, byte),
            }
        }
        (content_type.to_owned(), bytes)
    })
}

proptest! {
    // Each case runs three adapters in fresh instances; the Python one costs a few
    // milliseconds per message, so the count is kept to what CI runs in seconds.
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Differential test: every generated message — valid, broken in structure, types,
    /// limits, escapes, timestamps or bytes — decodes to the same events, or fails with the
    /// same error code, in JavaScript, Python and Rust.
    #[test]
    fn javascript_python_and_rust_adapters_agree_on_generated_messages((content_type, payload) in message()) {
        let expected = decode(None, rust_adapter(), &content_type, &payload);
        for lang in [Lang::JavaScript, Lang::Python] {
            let Some(adapter) = adapter(lang) else { continue };
            let got = decode(Some(lang), adapter, &content_type, &payload);
            prop_assert_eq!(
                &got, &expected, "{} on {:?} as {:?}", lang.name(), String::from_utf8_lossy(&payload), content_type
            );
        }
    }
}

/// The generator draws well-formed messages often enough for the comparison to be about
/// events, not only about errors.
#[test]
fn generated_messages_are_often_valid() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = message();
    let (mut decoded, mut events) = (0, 0);
    for _ in 0..200 {
        let (content_type, payload) = strategy.new_tree(&mut runner).unwrap().current();
        if let Ok(got) = decode(None, rust_adapter(), &content_type, &payload) {
            decoded += 1;
            events += got.len();
        }
    }
    assert!(decoded >= 60 && events >= 60, "{decoded} of 200 generated messages decoded, to {events} events");
}

/// The figures behind the approved limits and docs/adapter-benchmarks.md: size, compile
/// time, memory, instructions and wall time of a fresh-instance decode, for each language
/// beside the Rust adapter. Prints a table; timings are never asserted. Run with
/// `cargo test -p velferd-plugins --test polyglot -- --ignored --nocapture measure` (add
/// `--release` for the figures of a release build).
#[test]
#[ignore = "a measurement, run by hand"]
fn measure_polyglot_costs() {
    use std::time::Instant;
    let runs = 50;
    let mut rows = vec![];
    let languages: [(&str, Option<Lang>); 3] =
        [("Rust", None), ("JavaScript", Some(Lang::JavaScript)), ("Python", Some(Lang::Python))];
    for (name, lang) in languages {
        let bytes = match lang {
            None => common::component(RUST_DISPENSER),
            Some(lang) => {
                let Some(bytes) = polyglot_support::component(lang) else { continue };
                if let Some((install, build)) = polyglot_support::build_times(lang) {
                    println!("{name}: toolchain install {install} s, build {build} s (when last built)");
                }
                bytes
            }
        };
        let limits = lang.map_or_else(Limits::default, approved_limits);
        // A fresh host each, so that validate compiles (no cache hit).
        let metered = AdapterHost::new(Limits { fuel: Some(u64::MAX / 4), ..limits.clone() }).unwrap();
        let start = Instant::now();
        let adapter = metered.validate(&bytes).unwrap();
        let validate = start.elapsed();
        let describe = metered.describe(&adapter);
        // Wall time with fuel off, as the server can run (fuel costs guest speed).
        let timed = AdapterHost::new(Limits { fuel: None, ..limits.clone() }).unwrap();
        let timed_adapter = timed.validate(&bytes).unwrap();
        let large = ("240 events (24 KB)".to_owned(), largest_batch());
        for (file, payload) in samples().into_iter().chain([large]) {
            let report = metered.decode_with_report(&adapter, "3805", "application/json", &payload, received_at());
            let mut walls: Vec<Duration> = (0..runs)
                .map(|_| {
                    timed
                        .decode_with_report(&timed_adapter, "3805", "application/json", &payload, received_at())
                        .cost
                        .wall_time
                })
                .collect();
            walls.sort();
            assert!(report.result.is_ok() || !file.starts_with("240"), "{name}: {:?}", report.result);
            rows.push(format!(
                "| {name} | {file} | {} | {} | {:.0} µs |",
                report.cost.instructions.unwrap_or(0),
                report.cost.peak_memory_bytes,
                walls[runs / 2].as_secs_f64() * 1e6
            ));
        }
        println!(
            "{name}: {} bytes, validate (compile + describe) {:.2} s, describe: {} instructions, {} bytes of memory",
            bytes.len(),
            validate.as_secs_f64(),
            describe.cost.instructions.unwrap_or(0),
            describe.cost.peak_memory_bytes
        );
    }
    println!(
        "| adapter | sample | instructions (fresh instance + decode) | largest memory (bytes) | wall, median of {runs}, fuel off |"
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
