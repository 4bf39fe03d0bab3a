//! The JavaScript and Python reference adapters (`plugins/guests/dispenser-js`,
//! `plugins/guests/dispenser-py`), built from source by `plugins/guests/build-polyglot.sh`
//! once per test process and cached across runs in `<target dir>/polyglot`, keyed by their
//! sources and lockfiles. Self-contained, so that other test crates can include it too:
//!
//! ```ignore
//! #[path = "../../plugins/host/tests/polyglot_support/mod.rs"]
//! mod polyglot;
//! let Some(js) = polyglot::component_path(polyglot::Lang::JavaScript) else { return }; // SKIPPED printed
//! ```
//!
//! When a toolchain cannot be installed (no node/npm or python3, or no network to the
//! registries), [`component_path`] prints a `SKIPPED` line and answers `None`; set
//! `VELFERD_REQUIRE_POLYGLOT=1` to make that a failure instead.

#![allow(dead_code)] // each including test crate uses part of it

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A language of a reference adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// `dispenser-js`: QuickJS via `jco componentize --backend quickjs` (synchronous runtime).
    JavaScript,
    /// `dispenser-py`: CPython via `componentize-py --stub-wasi`.
    Python,
}

impl Lang {
    fn arg(self) -> &'static str {
        match self {
            Lang::JavaScript => "js",
            Lang::Python => "py",
        }
    }

    /// The adapter's name in test output.
    pub fn name(self) -> &'static str {
        match self {
            Lang::JavaScript => "JavaScript",
            Lang::Python => "Python",
        }
    }
}

/// The repository root: the nearest folder above the including crate that holds the guests.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("plugins/guests/build-polyglot.sh").exists())
        .expect("the repository root holds plugins/guests/build-polyglot.sh")
        .to_path_buf()
}

/// `<target dir>/polyglot`: toolchains (node_modules, a venv) and built components.
pub fn out_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let base = if base.is_absolute() { base } else { repo_root().join(base) };
    base.join("polyglot")
}

/// Why a build gave no component: the toolchain is missing (skip) or the build broke (fail).
enum Outcome {
    Built(PathBuf),
    Unavailable(String),
}

fn build(lang: Lang) -> Outcome {
    let output = Command::new("bash")
        .arg(repo_root().join("plugins/guests/build-polyglot.sh"))
        .arg(lang.arg())
        .arg(out_dir())
        .output()
        .unwrap_or_else(|e| panic!("run build-polyglot.sh: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let path = stdout.lines().last().unwrap_or_default().trim();
            Outcome::Built(PathBuf::from(path))
        }
        Some(3) => Outcome::Unavailable(stderr.lines().last().unwrap_or("toolchain unavailable").to_owned()),
        _ => panic!("building the {} reference adapter failed:\n{stderr}", lang.name()),
    }
}

/// The built component of `lang`, built on first use in this process; `None` (after printing
/// a `SKIPPED` line) when its toolchain cannot be installed here.
pub fn component_path(lang: Lang) -> Option<PathBuf> {
    static JS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let cell = match lang {
        Lang::JavaScript => &JS,
        Lang::Python => &PY,
    };
    let mut first = false;
    let built = cell.get_or_init(|| {
        first = true;
        match build(lang) {
            Outcome::Built(path) => Ok(path),
            Outcome::Unavailable(why) => Err(why),
        }
    });
    match built {
        Ok(path) => Some(path.clone()),
        Err(why) if std::env::var_os("VELFERD_REQUIRE_POLYGLOT").is_some_and(|v| v == "1") => {
            panic!("the {} reference adapter is required (VELFERD_REQUIRE_POLYGLOT=1): {why}", lang.name())
        }
        // Said once per process, not for every message of a property test.
        Err(_) if !first => None,
        Err(why) => {
            // Straight to stderr: the test harness captures `eprintln!`, and a skip must show.
            let _ = writeln!(std::io::stderr(), "SKIPPED: the {} reference adapter was not built: {why}", lang.name());
            None
        }
    }
}

/// The bytes of the built component of `lang`, or `None` as [`component_path`].
pub fn component(lang: Lang) -> Option<Vec<u8>> {
    component_path(lang).map(|path| std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

/// What building `lang` took, as recorded by the build script when it last built it:
/// (toolchain install seconds, build seconds).
pub fn build_times(lang: Lang) -> Option<(f64, f64)> {
    let path = component_path(lang)?;
    let text = std::fs::read_to_string(path.with_file_name(format!("{}-times.txt", lang.arg()))).ok()?;
    let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.parse::<f64>().ok());
    Some((value("toolchain_install_s")?, value("build_s")?))
}
