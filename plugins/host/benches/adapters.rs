//! Adapter host benchmark: `cargo bench -p velferd-plugins --bench adapters`.
//!
//! Builds the guests from source (as the tests do) and the reference decoders
//! natively, then reports, each as the median of repeated runs:
//! (a) instantiation, (b) the overhead of one call on a warm instance,
//! (c) decode compute inside the sandbox against the same decoder compiled
//! natively, (d) the whole per-message cost under each isolation policy.
//! Figures and their reading are in docs/adapter-benchmarks.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use velferd_plugins::{AdapterHost, Limits, ValidatedAdapter};

/// Median of `runs` measurements of `per_run` iterations, in ns/iteration.
fn median_ns(runs: usize, per_run: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..per_run.min(100) {
        f();
    }
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_run {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(per_run)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn us(ns: f64) -> String {
    format!("{:.2} µs", ns / 1e3)
}

struct Setup {
    host: AdapterHost,
    dispenser: ValidatedAdapter,
    alarm: ValidatedAdapter,
    /// Interface version 2.0.0, beside the two 1.0.0 adapters.
    hub: ValidatedAdapter,
    bench: ValidatedAdapter,
}

fn setup(limits: Limits) -> Setup {
    let host = AdapterHost::new(limits).expect("host");
    let load = |name: &str| host.validate(&common::component(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    Setup {
        dispenser: load("velferd_dispenser_json"),
        alarm: load("velferd_alarm_scaip"),
        hub: load("velferd_sensor_hub_json"),
        bench: load("velferd_decoder_bench"),
        host,
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter is not supported.
    let received_at = Utc.with_ymd_and_hms(2026, 11, 22, 7, 30, 0).unwrap();
    let messages = [
        ("dispenser", "morning-dose.json (2 events, 330 B)", common::sample("dispenser-json", "morning-dose.json")),
        (
            "dispenser",
            "lid-power-offline.json (7 events, 630 B)",
            common::sample("dispenser-json", "lid-power-offline.json"),
        ),
        ("alarm", "alarm-button.xml (1 event, 170 B)", common::sample("alarm-scaip", "alarm-button.xml")),
    ];
    let native = common::native_decoder_bench();
    let fuel_on = setup(Limits::default());
    let fuel_off = setup(Limits { fuel: None, ..Limits::default() });

    println!("velferd-plugins adapter benchmark (median of 15 runs; wasmtime 48, release host)\n");
    println!("component sizes: dispenser {} B, alarm {} B", fuel_on.dispenser.size_bytes, fuel_on.alarm.size_bytes);

    // (a) instantiation: store + WASI context, then instantiate.
    println!("\n(a) instantiation (pooling allocator, copy-on-write images, InstancePre)");
    for (label, s) in [("fuel on ", &fuel_on), ("fuel off", &fuel_off)] {
        let mut setup_ns = Vec::new();
        let mut inst_ns = Vec::new();
        let total = median_ns(15, 2000, || {
            let w = s.host.instantiate(&s.dispenser, "3805").unwrap();
            setup_ns.push(w.setup_time.as_nanos() as f64);
            inst_ns.push(w.instantiate_time.as_nanos() as f64);
            black_box(w);
        });
        setup_ns.sort_by(f64::total_cmp);
        inst_ns.sort_by(f64::total_cmp);
        println!(
            "  {label}: store + WASI context {} | instantiate {} | total incl. drop {}",
            us(setup_ns[setup_ns.len() / 2]),
            us(inst_ns[inst_ns.len() / 2]),
            us(total)
        );
    }

    // (b) call overhead on a warm instance: a decode that does no work
    // (n=0 iterations) but crosses the boundary with a real message.
    println!("\n(b) one call on a warm instance, no guest work (lower message, lift result, reset budget)");
    for (label, s) in [("fuel on ", &fuel_on), ("fuel off", &fuel_off)] {
        let payload = std::fs::read(&messages[0].2).unwrap();
        let mut warm = s.host.instantiate(&s.bench, "3805").unwrap();
        let ns = median_ns(15, 20_000, || {
            black_box(warm.decode("bench/dispenser;n=0", &payload, received_at).result.unwrap());
        });
        println!("  {label}: {}", us(ns));
    }

    // (c) decode compute: n decodes inside one call, against native.
    println!("\n(c) decode compute per message, warm, sandbox vs the same decoder compiled natively");
    // A decode loop needs more than one call's default budget: a host with
    // the same engine settings but room for n decodes per call.
    let n = 500u32;
    let roomy = |fuel| Limits { fuel, deadline: std::time::Duration::from_secs(30), ..Limits::default() };
    let loop_fuel_on = setup(roomy(Some(u64::MAX / 4)));
    let loop_fuel_off = setup(roomy(None));
    for (decoder, label, path) in &messages {
        let payload = std::fs::read(path).unwrap();
        let out = std::process::Command::new(&native)
            .args([decoder, path.to_str().unwrap(), &n.to_string()])
            .output()
            .expect("run native-decoder-bench");
        let native_ns: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("native ns");
        let mut line = format!("  {label}: native {}", us(native_ns));
        for (fuel, s) in [("fuel on", &loop_fuel_on), ("fuel off", &loop_fuel_off)] {
            let mut warm = s.host.instantiate(&s.bench, "3805").unwrap();
            let content_type = format!("bench/{decoder};n={n}");
            let empty = format!("bench/{decoder};n=0");
            let call = median_ns(15, 10, || {
                black_box(warm.decode(&content_type, &payload, received_at).result.unwrap());
            });
            let overhead = median_ns(15, 1000, || {
                black_box(warm.decode(&empty, &payload, received_at).result.unwrap());
            });
            let wasm_ns = (call - overhead) / f64::from(n);
            line += &format!(" | {fuel} {} ({:.2}×)", us(wasm_ns), wasm_ns / native_ns);
            if let Some(per_call) =
                warm.decode(&format!("bench/{decoder};n=1"), &payload, received_at).cost.instructions
            {
                line += &format!(" [{per_call} instr/call]");
            }
        }
        println!("{line}");
    }

    // (d) per message, whole cost: fresh instance per message (the policy
    // the host implements) against one warm instance per batch.
    println!("\n(d) whole per-message cost (decode with a reference adapter, events converted, output capped)");
    let hub_message = (
        "hub",
        "night-round.json (5 events, 540 B; interface 2.0.0)",
        common::sample("sensor-hub-json", "night-round.json"),
    );
    for (label, s) in [("fuel on ", &fuel_on), ("fuel off", &fuel_off)] {
        for (decoder, msg_label, path) in messages.iter().chain([&hub_message]) {
            let payload = std::fs::read(path).unwrap();
            let (adapter, ct) = match *decoder {
                "alarm" => (&s.alarm, "application/xml"),
                "hub" => (&s.hub, "application/json"),
                _ => (&s.dispenser, "application/json"),
            };
            let fresh = median_ns(15, 2000, || {
                black_box(s.host.decode_with_report(adapter, "3805", ct, &payload, received_at).result.unwrap());
            });
            let mut warm = s.host.instantiate(adapter, "3805").unwrap();
            let batch = median_ns(15, 2000, || {
                black_box(warm.decode(ct, &payload, received_at).result.unwrap());
            });
            println!(
                "  {label} {msg_label}: fresh instance {} ({:.0} msg/s/core) | warm instance {} ({:.0} msg/s/core)",
                us(fresh),
                1e9 / fresh,
                us(batch),
                1e9 / batch
            );
        }
    }

    // Compile once per component: what validation costs on upload.
    let bytes = common::component("velferd_dispenser_json");
    let start = Instant::now();
    let fresh_host = AdapterHost::new(Limits::default()).unwrap();
    fresh_host.validate(&bytes).unwrap();
    let compile = start.elapsed();
    let start = Instant::now();
    fresh_host.validate(&bytes).unwrap();
    let cached = start.elapsed();
    println!(
        "\nvalidate (compile + link + describe) dispenser: {:.1} ms first time, {} from the sha-256 cache",
        compile.as_secs_f64() * 1e3,
        us(cached.as_nanos() as f64)
    );
}
