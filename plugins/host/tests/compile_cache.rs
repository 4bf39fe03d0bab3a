//! The compile cache on disk: a second host (a restart) loads what the first compiled, an entry
//! that is tampered with, truncated, moved or made by another engine configuration or key is
//! compiled again and never loaded, and the cache is owner-only.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chrono::{TimeZone, Utc};
use sha2::{Digest, Sha256};
use velferd_plugins::{AdapterHost, CompileCache, Event, KeyOrigin, Limits, ValidatedAdapter};

const DISPENSER: &str = "velferd_dispenser_json";
const ALARM: &str = "velferd_alarm_scaip";

fn host(dir: &Path, limits: Limits) -> AdapterHost {
    AdapterHost::with_compile_cache(limits, Some(CompileCache::open(dir, None).unwrap())).unwrap()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn decode_sample(host: &AdapterHost, adapter: &ValidatedAdapter) -> Vec<Event> {
    let payload = std::fs::read(common::sample("dispenser-json", "lid-power-offline.json")).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 7, 30, 0).unwrap();
    host.decode_with_report(adapter, "3805", "application/json", &payload, at).result.unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_second_host_with_the_same_cache_loads_the_component_instead_of_compiling_and_decodes_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = common::component(DISPENSER);
    let first = host(dir.path(), Limits::default());
    let compiled = first.validate(&bytes).unwrap();
    assert!(!compiled.compilation().cache_hit);
    assert_eq!(first.compiled_count(), 1);
    let entry = first.compile_cache_entry(&digest(&bytes)).unwrap();
    assert!(entry.is_file(), "{}", entry.display());
    // The same host finds it in memory: no second compile.
    assert!(first.validate(&bytes).unwrap().compilation().cache_hit);
    assert_eq!(first.compiled_count(), 1);

    // A restart: a new host, the same directory.
    let second = host(dir.path(), Limits::default());
    let loaded = second.validate(&bytes).unwrap();
    assert!(loaded.compilation().cache_hit);
    assert_eq!(second.compiled_count(), 0);
    assert_eq!(loaded.info, compiled.info);
    assert_eq!(loaded.interface_version, compiled.interface_version);
    let events = decode_sample(&second, &loaded);
    assert_eq!(events.len(), 7);
    assert_eq!(events, decode_sample(&first, &compiled));
}

/// Writes a valid entry for `name` in `dir` and returns the entry's path and the component.
fn cached(dir: &Path, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let bytes = common::component(name);
    let host = host(dir, Limits::default());
    host.validate(&bytes).unwrap();
    (host.compile_cache_entry(&digest(&bytes)).unwrap(), bytes)
}

/// A new host validates `bytes` from `dir`: whether it was a cache hit, and its compile count.
fn revalidate(dir: &Path, bytes: &[u8]) -> (bool, u64) {
    let host = host(dir, Limits::default());
    let adapter = host.validate(bytes).unwrap();
    assert_eq!(decode_sample(&host, &adapter).len(), 7, "the recompiled adapter still decodes");
    (adapter.compilation().cache_hit, host.compiled_count())
}

#[test]
fn a_tampered_or_truncated_entry_is_compiled_again_never_loaded_and_then_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let (entry, bytes) = cached(dir.path(), DISPENSER);
    let good = std::fs::read(&entry).unwrap();
    let middle = good.len() / 2;
    let tampered: Vec<(&str, Vec<u8>)> = vec![
        ("a byte of the compiled code flipped", {
            let mut b = good.clone();
            b[middle] ^= 0x01;
            b
        }),
        ("a byte of the MAC flipped", {
            let mut b = good.clone();
            b[20] ^= 0x80;
            b
        }),
        ("cut short", good[..middle].to_vec()),
        ("only the header left", good[..10].to_vec()),
        ("empty", vec![]),
    ];
    for (what, bytes_on_disk) in tampered {
        std::fs::write(&entry, &bytes_on_disk).unwrap();
        assert_eq!(revalidate(dir.path(), &bytes), (false, 1), "{what}: compiled, not loaded");
        // Compiling again wrote a good entry in its place.
        assert_eq!(std::fs::read(&entry).unwrap(), good, "{what}: rewritten");
        assert_eq!(revalidate(dir.path(), &bytes), (true, 0), "{what}: the rewritten entry loads");
    }
}

#[test]
fn an_entry_moved_to_another_components_name_or_made_with_another_key_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let (dispenser_entry, _) = cached(dir.path(), DISPENSER);
    let alarm = common::component(ALARM);
    let alarm_host = host(dir.path(), Limits::default());
    let alarm_entry = alarm_host.compile_cache_entry(&digest(&alarm)).unwrap();
    // Valid under this key, but the MAC names the dispenser: the alarm is compiled from its bytes.
    std::fs::copy(&dispenser_entry, &alarm_entry).unwrap();
    let adapter = alarm_host.validate(&alarm).unwrap();
    assert!(!adapter.compilation().cache_hit);
    assert_eq!(alarm_host.compiled_count(), 1);
    assert_eq!(adapter.info.product, "Reference social-care alarm (SCAIP XML)");

    // Another key (say, another host's) over the same directory: nothing of the first loads.
    let other_key = [7u8; 32];
    let foreign = AdapterHost::with_compile_cache(
        Limits::default(),
        Some(CompileCache::open(dir.path(), Some(&other_key)).unwrap()),
    )
    .unwrap();
    let adapter = foreign.validate(&common::component(DISPENSER)).unwrap();
    assert!(!adapter.compilation().cache_hit);
    assert_eq!(foreign.compiled_count(), 1);
}

#[test]
fn another_engine_configuration_does_not_load_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (entry, bytes) = cached(dir.path(), DISPENSER);
    // Fuel metering changes the compiled code: its own entry, compiled once.
    let unmetered = host(dir.path(), Limits { fuel: None, ..Limits::default() });
    let adapter = unmetered.validate(&bytes).unwrap();
    assert!(!adapter.compilation().cache_hit);
    assert_eq!(unmetered.compiled_count(), 1);
    let other_entry = unmetered.compile_cache_entry(&digest(&bytes)).unwrap();
    assert_ne!(other_entry, entry);
    assert!(other_entry.is_file() && entry.is_file());
    // A limit that does not change the code (the deadline) shares the entry.
    let later = host(dir.path(), Limits { deadline: std::time::Duration::from_millis(250), ..Limits::default() });
    assert!(later.validate(&bytes).unwrap().compilation().cache_hit);
    assert_eq!(later.compile_cache_entry(&digest(&bytes)).unwrap(), entry);
}

#[test]
fn the_cache_directory_its_key_and_its_entries_are_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("velferd/adapters");
    let (entry, _) = cached(&dir, DISPENSER);
    assert_eq!(mode(&dir), 0o700);
    let cache = CompileCache::open(&dir, None).unwrap();
    let KeyOrigin::File(key) = cache.key_origin().clone() else { panic!("a generated key file") };
    assert_eq!(std::fs::read(&key).unwrap().len(), 32);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&entry), 0o600);

    // A directory and key others may read are tightened, and the key is kept.
    let key_before = std::fs::read(&key).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    CompileCache::open(&dir, None).unwrap();
    assert_eq!((mode(&dir), mode(&key)), (0o700, 0o600));
    assert_eq!(std::fs::read(&key).unwrap(), key_before);

    // A key from the setting must be long enough; no key file is made for it.
    let elsewhere = parent.path().join("other");
    let err = CompileCache::open(&elsewhere, Some(b"short")).unwrap_err();
    assert!(err.to_string().contains("at least 32"), "{err}");
    let cache = CompileCache::open(&elsewhere, Some(&[1u8; 32])).unwrap();
    assert_eq!(cache.key_origin(), &KeyOrigin::Setting);
    assert!(!elsewhere.join("key").exists());
}

/// Compile time from the bytes and from the cache for every reference adapter, printed for
/// docs/adapter-benchmarks.md (`cargo test -p velferd-plugins --test compile_cache -- --nocapture`).
#[test]
fn every_reference_adapter_loads_from_the_cache_after_one_compile() {
    let dir = tempfile::tempdir().unwrap();
    for name in [DISPENSER, ALARM, "velferd_sensor_hub_json", "velferd_alarm_scaip_v2"] {
        let bytes = common::component(name);
        let cold = host(dir.path(), Limits::default()).validate(&bytes).unwrap().compilation();
        let warm = host(dir.path(), Limits::default()).validate(&bytes).unwrap().compilation();
        assert!(!cold.cache_hit && warm.cache_hit, "{name}");
        println!(
            "{name}: {} KiB, compiled in {:.1} ms, loaded from the cache in {:.1} ms",
            bytes.len() >> 10,
            cold.millis(),
            warm.millis()
        );
    }
}
