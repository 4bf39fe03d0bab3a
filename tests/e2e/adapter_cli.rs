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

    let (code, out) = check(
        "velferd_alarm_scaip.wasm",
        Some(("plugins/guests/alarm-scaip/samples/fall.xml", "application/xml")),
    );
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
        let (code, out) = check(component, Some(("plugins/guests/dispenser-json/samples/missed-dose.json", "application/json")));
        assert_eq!(code, 1, "{component}: {out}");
        assert!(out.contains("FAILED"), "{component}: {out}");
        assert!(out.contains("cost of decode"), "{component}: {out}");
    }
}
