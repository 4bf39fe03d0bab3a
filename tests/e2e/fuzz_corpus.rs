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
