//! `velferd adapter check` as a supplier runs it, on the reference adapters and hostile ones
//! built from source (the same guest build the host's own tests use).

use std::process::Command;

use crate::guests;

fn check(component: &str, sample: Option<(&str, &str)>) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
    command.args(["adapter", "check"]).arg(guests::guests_dir().join(component));
    if let Some((file, content_type)) = sample {
        command.arg("--sample").arg(guests::repo_root().join(file)).args(["--content-type", content_type]);
    }
    let output = command.output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn reference_adapters_pass_the_check_and_report_their_cost() {
    let (code, out) = check(
        "velferd_dispenser_json.wasm",
        Some(("plugins/guests/dispenser-json/samples/missed-dose.json", "application/json")),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict   OK"), "{out}");
    assert!(out.contains("cost of decode on a fresh instance"), "{out}");
    assert!(out.contains("event(s)"), "{out}");

    let (code, out) =
        check("velferd_alarm_scaip.wasm", Some(("plugins/guests/alarm-scaip/samples/fall.xml", "application/xml")));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict   OK"), "{out}");
    assert!(out.contains("interface velferd:device@1.0.0 (served; the newest is 2.0.0"), "{out}");

    let (code, out) = check(
        "velferd_sensor_hub_json.wasm",
        Some(("plugins/guests/sensor-hub-json/samples/night-round.json", "application/json")),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("interface velferd:device@2.0.0\n"), "{out}");
    assert!(out.contains("SM-0007 via HUB-5521007 fire Critical"), "{out}");
    assert!(out.contains("verdict   OK"), "{out}");
}

#[test]
fn hostile_adapters_get_the_right_verdict() {
    // A component of another world or interface version is refused outright.
    for component in ["hostile_wrong_world.wasm", "hostile_other_version.wasm"] {
        let (code, out) = check(component, None);
        assert_eq!(code, 1, "{component}: {out}");
        assert!(out.contains("REJECTED"), "{component}: {out}");
    }
    // A valid component whose decode misbehaves fails on the sample, with the call's cost.
    for component in ["hostile_infinite_loop.wasm", "hostile_memory_bomb.wasm", "hostile_panic.wasm"] {
        let (code, out) =
            check(component, Some(("plugins/guests/dispenser-json/samples/missed-dose.json", "application/json")));
        assert_eq!(code, 1, "{component}: {out}");
        assert!(out.contains("FAILED"), "{component}: {out}");
        assert!(out.contains("cost of decode"), "{component}: {out}");
    }
}

/// Runs `velferd adapter check` on the reference dispenser and its sample with extra arguments
/// and environment, and no JWT secret or database anywhere; returns exit code, stdout, stderr.
fn check_configured(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("VELFERD_")) {
        command.env_remove(name);
    }
    command.args(args).args(["adapter", "check"]).arg(guests::guests_dir().join("velferd_dispenser_json.wasm"));
    command.arg("--sample").arg(guests::repo_root().join("plugins/guests/dispenser-json/samples/missed-dose.json"));
    command.args(["--content-type", "application/json"]).envs(env.iter().copied());
    let output = command.output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

/// Bug 9(d): the check judges with the limits the configured server applies.
#[test]
fn adapter_check_judges_with_the_fuel_limit_of_the_environment() {
    let (code, out, err) = check_configured(&[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("limits    instructions 10000000 per call, deadline 100 ms"), "{out}");

    let (code, out, err) = check_configured(&[], &[("VELFERD_ADAPTER_FUEL", "100")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("limits    instructions 100 per call"), "{out}");
    assert!(out.contains("budget of 100 instructions"), "{out}");
    assert!(!out.contains("verdict   OK"), "{out}");
}

/// Bug 9(d): `--config` is read like `serve` reads it — only the adapter settings matter, so
/// a file that names a database but no JWT secret is fine.
#[test]
fn adapter_check_judges_with_the_fuel_limit_of_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("velferd.toml");
    std::fs::write(&file, "adapter_fuel = 100\ndatabase_url = \"postgres://nobody@127.0.0.1:1/none\"\n").unwrap();
    let (code, out, err) = check_configured(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("limits    instructions 100 per call"), "{out}");
    assert!(out.contains("budget of 100 instructions"), "{out}");
}

/// Bug 9(d): an unknown key in the config file is refused as `serve` refuses it: exit 2 and one
/// line naming the key.
#[test]
fn adapter_check_refuses_an_unknown_key_in_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("velferd.toml");
    std::fs::write(&file, "adapter_fuell = 100\n").unwrap();
    let (code, out, err) = check_configured(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown setting `adapter_fuell`"), "{err}");
    assert!(out.is_empty(), "{out}");
}
