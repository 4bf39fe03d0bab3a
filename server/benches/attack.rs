//! Load under attack (issue 12): a `velferd serve` process of its own (SQLite in a temporary
//! directory) is sent a fragment bomb, an alias bomb, a replay flood on a looping adapter and
//! oversized WebSocket messages (and a fragment bomb subscription) for a few seconds, while a
//! case worker's queries and a supplier's ingest go on; prints their latency beside the target,
//! how every attack was answered, and the server's memory beside the bound.
//!
//!     cargo bench -p velferd --bench attack
//!
//! `ATTACK_SECONDS` (default 10) and `QUIET_SECONDS` (default 5, the same traffic without the
//! attacks, for comparison) change the run; `ATTACKS` (e.g. `replay,alias`; keys: fragment,
//! alias, replay, ws-oversized, ws-fragment) sends only those; `ATTACK_SERVER_SETTINGS`
//! (`NAME=value ...`) adds server settings. The scenario is shared with the end-to-end test
//! (tests/e2e/attack.rs), which asserts the answers and no timing. Figures: docs/attack-run.md.

use std::sync::Arc;
use std::time::Duration;

#[path = "../../plugins/host/tests/common/mod.rs"]
mod guests;

#[path = "../../tests/e2e/attack/scenario.rs"]
mod scenario;

use scenario::{Attack, Figures, Server, World};

/// p99 of the normal traffic under attack, on this machine.
const TARGET_P99_MS: f64 = 100.0;
/// The server's resident memory during the attack may not pass this.
const MEMORY_BOUND_MIB: u64 = 256;

fn seconds(name: &str, default: u64) -> Duration {
    Duration::from_secs(std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One latency line: count, p50, p95, p99, max, and the p99 against the target when given.
fn latency_line(label: &str, latencies: &[Duration], elapsed: Duration, target: bool) {
    let [p50, p95, p99, max] = scenario::percentiles(latencies);
    let verdict = match (target, p99 < TARGET_P99_MS) {
        (false, _) => String::new(),
        (true, true) => format!("p99 target < {TARGET_P99_MS} ms: met"),
        (true, false) => format!("p99 target < {TARGET_P99_MS} ms: MISSED"),
    };
    println!(
        "{label:<30} {:>6} ({:>5.0}/s)  p50 {p50:>7.2}  p95 {p95:>7.2}  p99 {p99:>7.2}  max {max:>8.2} ms  {verdict}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
    );
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown CPU", |m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| format!(", {:.0} GiB", kib as f64 / (1 << 20) as f64));
    format!("{model}, {cores} cores{memory}")
}

/// Prints every attack's requests and answers; whether all were answered as expected.
fn attacks(figures: &Figures) -> bool {
    let mut all_expected = true;
    for attack in figures.attacks.keys().copied() {
        let tally = figures.attacks.get(&attack).cloned().unwrap_or_default();
        let answers: Vec<String> = tally
            .outcomes
            .iter()
            .map(|(outcome, n)| {
                let mark = if attack.expects(outcome) { "" } else { " (UNEXPECTED)" };
                all_expected &= attack.expects(outcome);
                format!("{outcome} × {n}{mark}")
            })
            .collect();
        let [p50, _, _, max] = scenario::percentiles(&tally.rounds);
        println!(
            "  {:<46} {:>6} sent, a round p50 {p50:>6.1} ms, max {max:>7.1} ms: {}",
            attack.name(),
            tally.sent,
            answers.join(", ")
        );
    }
    all_expected
}

/// The attack's name in `ATTACKS`.
fn key(attack: Attack) -> &'static str {
    match attack {
        Attack::FragmentBomb => "fragment",
        Attack::AliasBomb => "alias",
        Attack::ReplayFlood => "replay",
        Attack::WsOversized => "ws-oversized",
        Attack::WsFragmentBomb => "ws-fragment",
    }
}

/// The CPU time (user and system) process `pid` has used, from /proc/<pid>/stat, in clock
/// ticks of 10 ms (Linux's USER_HZ).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in brackets and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// `ATTACK_SERVER_SETTINGS`: `NAME=value` pairs, space-separated, for the server on top of the
/// run's own (e.g. `VELFERD_GRAPHQL_MAX_SELECTIONS=4000`).
fn server_settings() -> Vec<(String, String)> {
    let pairs = std::env::var("ATTACK_SERVER_SETTINGS").unwrap_or_default();
    let pair = |p: &str| p.split_once('=').map(|(n, v)| (n.to_string(), v.to_string()));
    pairs.split_whitespace().map(|p| pair(p).unwrap_or_else(|| panic!("ATTACK_SERVER_SETTINGS: {p:?}"))).collect()
}

/// The attacks named in `ATTACKS` (comma-separated keys), or all of them.
fn chosen_attacks() -> Vec<Attack> {
    match std::env::var("ATTACKS") {
        Ok(keys) => keys
            .split(',')
            .map(|name| {
                let name = name.trim();
                let known = Attack::ALL.map(key);
                let found = Attack::ALL.into_iter().find(|a| key(*a) == name);
                found.unwrap_or_else(|| panic!("ATTACKS: {name:?} is not one of {known:?}"))
            })
            .collect(),
        Err(_) => Attack::ALL.to_vec(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ok = runtime.block_on(async {
        guests::guests_dir();
        let (quiet, attacked) = (seconds("QUIET_SECONDS", 5), seconds("ATTACK_SECONDS", 10));
        let chosen = chosen_attacks();
        let mut server = Server::start(None, &server_settings()).await;
        let world = Arc::new(World::setup(&server).await);
        println!("Load under attack: velferd serve (SQLite), pid {}, on {}", server.pid(), machine());
        for (name, value) in server_settings() {
            println!("server setting: {name}={value}");
        }
        println!(
            "cost throttle: {}",
            if scenario::throttle_configurable() {
                "raised through VELFERD_THROTTLE_* and VELFERD_ANONYMOUS_THROTTLE_* (guards answer, not the bucket)"
            } else {
                "not in this build (VELFERD_THROTTLE_* are not settings yet; set anyway, ignored)"
            }
        );
        let idle = server.memory().unwrap_or_default();
        let cpu_before = cpu_time(server.pid());
        let calm = scenario::run(&server, &world, quiet, &[]).await;
        let cpu_calm = cpu_time(server.pid());
        let calm_rss = server.memory().unwrap_or_default();
        let under = scenario::run(&server, &world, attacked, &chosen).await;
        let cpu_under = cpu_time(server.pid());
        let after = server.memory().unwrap_or_default();

        println!("\nnormal traffic, {} s without attacks, then {} s under attack (2 query and 2 ingest clients):", quiet.as_secs(), attacked.as_secs());
        latency_line("case worker queries, quiet", &calm.queries, calm.elapsed, false);
        latency_line("case worker queries, attacked", &under.queries, under.elapsed, true);
        latency_line("supplier ingest, quiet", &calm.ingests, calm.elapsed, false);
        latency_line("supplier ingest, attacked", &under.ingests, under.elapsed, true);
        let errors = calm.error_count + under.error_count;
        println!("errors in normal traffic (target 0): {errors} {:?}", [calm.errors.clone(), under.errors.clone()].concat());

        println!("\nattacks (2 senders each over HTTP, 1 each over WebSocket), and how they were answered:");
        let expected = attacks(&under);

        let peak = under.peak_rss_kib.max(calm.peak_rss_kib);
        let within = peak < MEMORY_BOUND_MIB << 10;
        println!(
            "\nserver memory: idle {:.1} MiB after set-up, {:.1} MiB after the quiet phase, peak {:.1} MiB under attack, {:.1} MiB after; VmHWM {:.1} MiB; bound {MEMORY_BOUND_MIB} MiB: {}",
            mib(idle.rss_kib),
            mib(calm_rss.rss_kib),
            mib(under.peak_rss_kib),
            mib(after.rss_kib),
            mib(after.hwm_kib),
            if within { "held" } else { "EXCEEDED" }
        );
        let share = |cpu: Duration, phase: &Figures| 100.0 * cpu.as_secs_f64() / phase.elapsed.as_secs_f64();
        println!(
            "server CPU: {:.1} s in the quiet phase ({:.0}% of one core), {:.1} s under attack ({:.0}%)",
            (cpu_calm - cpu_before).as_secs_f64(),
            share(cpu_calm - cpu_before, &calm),
            (cpu_under - cpu_calm).as_secs_f64(),
            share(cpu_under - cpu_calm, &under),
        );
        let healthy = server.alive() && scenario::healthy(&server).await;
        println!("after the attack: server {}", if healthy { "alive, /healthz 200" } else { "NOT answering" });
        if !healthy || errors > 0 || !expected {
            eprintln!("{}", server.log());
        }
        let stopped = server.stop();
        healthy && errors == 0 && expected && within && stopped.success()
    });
    if !ok {
        std::process::exit(1);
    }
}
