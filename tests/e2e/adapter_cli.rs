//! `velferd adapter check` as a supplier runs it, on the reference adapters and hostile ones
//! built from source (the same guest build the host's own tests use).

use std::process::Command;

use crate::guests;

fn check(component: &str, sample: Option<(&str, &str)>) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
    // No compile cache: these runs leave nothing in the user's cache directory.
    command.env("VELFERD_ADAPTER_CACHE_DIR", "off");
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
    command.env("VELFERD_ADAPTER_CACHE_DIR", "off");
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

/// Runs `velferd adapter check FILE ARGS` with only `env` set among the `VELFERD_*` variables (and
/// no compile cache unless `env` names one); returns exit code, stdout, stderr.
fn check_file(file: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("VELFERD_")) {
        command.env_remove(name);
    }
    command.env("VELFERD_ADAPTER_CACHE_DIR", "off").envs(env.iter().copied());
    command.args(["adapter", "check"]).arg(file).args(args);
    let output = command.output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

/// A guest component with its initial memory raised to 12.5 MiB, written to `dir`.
fn big_memory(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let bytes = guests::with_initial_memory(&guests::component(name), 200);
    let path = dir.join(format!("{name}-big-memory.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn sample_args(file: &str) -> Vec<String> {
    let path = guests::repo_root().join("plugins/guests/dispenser-json/samples").join(file);
    vec!["--sample".into(), path.display().to_string(), "--content-type".into(), "application/json".into()]
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Issue 15: one run names every problem — size, initial memory and each refused import — and
/// says which limits it judged with.
#[test]
fn adapter_check_names_every_problem_of_a_component_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let component = big_memory(dir.path(), "hostile_open_file");
    let limits = dir.path().join("limits.json");
    std::fs::write(&limits, r#"{"componentBytes": 1024, "memoryBytes": 4194304, "fuel": 10000000, "deadlineMs": 100}"#)
        .unwrap();
    let mut args = vec!["--limits".to_string(), limits.display().to_string()];
    args.extend(sample_args("morning-dose.json"));
    let (code, out, err) = check_file(&component, &strs(&args), &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("judged with the approved limits in {}", limits.display())), "{out}");
    assert!(out.contains("REJECTED  the component is"), "{out}");
    assert!(out.contains("the limit is 1024"), "{out}");
    assert!(out.contains("REJECTED  the component starts with 12.5 MiB of memory; the limit is 4 MiB"), "{out}");
    assert!(out.contains("REJECTED  the component imports wasi:filesystem/"), "{out}");
    assert!(out.contains("the sandbox grants no file system"), "{out}");
    assert!(out.contains("not decoded: the component cannot be instantiated"), "{out}");
    let problems = out.lines().filter(|l| l.starts_with("REJECTED  ")).count();
    assert!(problems >= 3, "{out}");
    assert!(
        out.contains(&format!(
            "verdict   REJECTED: the server would refuse this component ({problems} problems above)"
        ))
    );
}

/// Issue 15: a product's approved limits (the API's JSON) decide; an unknown key is refused.
#[test]
fn adapter_check_judges_with_a_limits_file_and_refuses_one_with_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let component = big_memory(dir.path(), "velferd_dispenser_json");
    let sample = sample_args("morning-dose.json");

    let (code, out, err) = check_file(&component, &strs(&sample), &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("judged with the defaults every product starts with"), "{out}");
    assert!(out.contains("starts with 12.5 MiB of memory; the limit is 4 MiB"), "{out}");
    assert!(!out.contains("memory index"), "the pooling allocator's words: {out}");

    let approved = dir.path().join("approved.json");
    std::fs::write(
        &approved,
        r#"{"componentBytes": 524288, "memoryBytes": 16777216, "fuel": null, "deadlineMs": 200}"#,
    )
    .unwrap();
    let mut args = vec!["--limits".to_string(), approved.display().to_string()];
    args.extend(sample.iter().cloned());
    let (code, out, err) = check_file(&component, &strs(&args), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("limits    instructions unmetered (fuel off), deadline 200 ms, memory 16 MiB"), "{out}");
    assert!(out.contains("2 event(s)"), "{out}");
    assert!(out.contains("verdict   OK"), "{out}");

    let unknown = dir.path().join("unknown.json");
    std::fs::write(
        &unknown,
        r#"{"componentBytes": 524288, "memoryBytes": 16777216, "fuel": null, "deadlineMs": 200, "inputBytes": 1}"#,
    )
    .unwrap();
    let mut args = vec!["--limits".to_string(), unknown.display().to_string()];
    args.extend(sample.iter().cloned());
    let (code, out, err) = check_file(&component, &strs(&args), &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--limits") && err.contains("unknown field `inputBytes`"), "{err}");
}

/// Issue 15: `--expect-error CODE` passes on a sample that fails with CODE, fails on one that
/// decodes, and refuses a code that does not exist.
#[test]
fn adapter_check_expect_error_passes_on_a_broken_sample_and_fails_on_a_good_one() {
    let component = guests::guests_dir().join("velferd_dispenser_json.wasm");
    let mut args = sample_args("malformed.json");
    args.extend(["--expect-error".to_string(), "malformed".to_string()]);
    let (code, out, err) = check_file(&component, &strs(&args), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(the sample failed with [malformed], as expected)"), "{out}");

    let mut args = sample_args("morning-dose.json");
    args.extend(["--expect-error".to_string(), "malformed".to_string()]);
    let (code, out, err) = check_file(&component, &strs(&args), &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAILED: the sample decoded, but it was expected to fail with [malformed]"), "{out}");

    let mut args = sample_args("malformed.json");
    args.extend(["--expect-error".to_string(), "broken".to_string()]);
    let (code, _, err) = check_file(&component, &strs(&args), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--expect-error: unknown code \"broken\"; one of malformed, unsupported"), "{err}");
}

/// Issue 15: the check compiles into the compile cache, and a second run loads from it.
#[test]
fn adapter_check_reports_compile_time_and_a_cache_hit_on_the_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let component = guests::guests_dir().join("velferd_dispenser_json.wasm");
    let env = [("VELFERD_ADAPTER_CACHE_DIR", cache.to_str().unwrap())];
    let (code, out, err) = check_file(&component, &[], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("ms, compile cache miss ({})", cache.display())), "{out}");
    let (code, out, err) = check_file(&component, &[], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("ms, compile cache hit ({})", cache.display())), "{out}");
    let (code, out, err) = check_file(&component, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ms (no compile cache)"), "{out}");
}
