//! The fuzz targets' corpora (`fuzz/corpus/<target>/`), replayed through the targets' own code
//! (`fuzz/src/targets.rs`, included below) without afl: every input the long runs kept, and every
//! input that once crashed a target, runs here on each CI run. See docs/fuzzing.md.

use std::path::PathBuf;
use std::sync::OnceLock;

#[path = "../../fuzz/src/targets.rs"]
#[allow(dead_code, reason = "the afl binaries' component reader is not used here")]
mod targets;

/// The files of `fuzz/corpus/<target>`, at least one.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = crate::guests::repo_root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    files.into_iter().map(|path| (path.clone(), std::fs::read(&path).expect("corpus file"))).collect()
}

/// Runs `target` on every input of its corpus; a panic names the input.
fn replay(name: &str, target: impl Fn(&[u8])) {
    for (path, data) in corpus(name) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&data)));
        assert!(outcome.is_ok(), "fuzz target {name} panicked on {}", path.display());
    }
}

fn adapters() -> &'static targets::Adapters {
    static ADAPTERS: OnceLock<targets::Adapters> = OnceLock::new();
    ADAPTERS.get_or_init(|| targets::Adapters::load(crate::guests::component))
}

#[test]
fn the_ingest_message_corpus_runs_clean() {
    replay("ingest_message", |data| targets::ingest_message(adapters(), data));
}

#[test]
fn the_ingest_batch_corpus_runs_clean() {
    replay("ingest_batch", |data| targets::ingest_batch(adapters(), data));
}

#[test]
fn the_adapter_output_corpus_runs_clean() {
    replay("adapter_output", |data| targets::adapter_output(adapters(), data));
}

#[test]
fn the_jwt_corpus_runs_clean() {
    let auth = targets::Auth::new();
    replay("jwt", |data| targets::jwt(&auth, data));
}

#[test]
fn the_graphql_corpus_runs_clean() {
    let graphql = targets::Graphql::new();
    replay("graphql", |data| targets::graphql(&graphql, data));
}

/// The GraphQL target builds its schema itself (to stop before execution): it must stay the
/// schema the server serves.
#[test]
fn the_graphql_target_validates_against_the_servers_schema() {
    let settings = targets::settings();
    let served = velferd::graphql::build_schema(None, velferd::config::Profile::Production, &settings.graphql);
    assert_eq!(targets::Graphql::new().sdl(), served.sdl());
}

/// Without afl: random mutations of each corpus input (byte flips, inserts, deletes, splices of
/// two inputs) through the same targets, for `VELFERD_FUZZ_SECONDS` seconds per target (default
/// 10). Not coverage-guided; for a machine without afl, or a quick look after a change:
/// `VELFERD_FUZZ_SECONDS=60 cargo test --test e2e -- --ignored fuzz_corpus::mutated`.
#[test]
#[ignore = "runs for a while; see docs/fuzzing.md"]
fn mutated_corpus_inputs_run_clean() {
    let seconds: u64 = std::env::var("VELFERD_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let auth = targets::Auth::new();
    let graphql = targets::Graphql::new();
    type Target<'a> = (&'static str, &'a dyn Fn(&[u8]));
    let runs: [Target; 5] = [
        ("jwt", &|d| targets::jwt(&auth, d)),
        ("graphql", &|d| targets::graphql(&graphql, d)),
        ("ingest_batch", &|d| targets::ingest_batch(adapters(), d)),
        ("ingest_message", &|d| targets::ingest_message(adapters(), d)),
        ("adapter_output", &|d| targets::adapter_output(adapters(), d)),
    ];
    // xorshift64*: reproducible from the seed printed below.
    let mut state: u64 =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("seed {state}");
    let mut next = move |n: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1) as u64) as usize
    };
    for (name, target) in runs {
        let inputs: Vec<Vec<u8>> = corpus(name).into_iter().map(|(_, data)| data).collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        let mut executions = 0u64;
        while std::time::Instant::now() < deadline {
            let mut data = inputs[next(inputs.len())].clone();
            for _ in 0..=next(8) {
                let at = next(data.len() + 1);
                match next(5) {
                    0 if !data.is_empty() => {
                        let (i, bit) = (at.min(data.len() - 1), next(8));
                        data[i] ^= 1 << bit;
                    }
                    1 => data.insert(at, next(256) as u8),
                    2 if at < data.len() => drop(data.remove(at)),
                    3 => {
                        let other = &inputs[next(inputs.len())];
                        let from = next(other.len() + 1);
                        data.splice(at..at, other[from..(from + next(64)).min(other.len())].iter().copied());
                    }
                    _ => data.insert(at, b"{}[]\":,\x00\n"[next(9)]),
                }
            }
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&data)));
            assert!(outcome.is_ok(), "fuzz target {name} panicked on {data:?}");
            executions += 1;
        }
        println!("{name}: {executions} executions in {seconds} s");
    }
}
