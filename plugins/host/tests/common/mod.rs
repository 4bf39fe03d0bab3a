//! Builds the guest workspace (SDK, reference and hostile adapters) from
//! source, once per process, and hands out the components.

#![allow(dead_code)] // shared by the test binary and the benchmark

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root: the nearest folder above the including crate that holds the guest
/// workspace (this module is also included by the server's end-to-end tests).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("plugins/guests/Cargo.toml").exists())
        .expect("the repository root holds plugins/guests")
        .canonicalize()
        .expect("repo root")
}

/// Where guest builds go: `<target dir>/wasm-guests`, beside the host's
/// own build but with its own cargo lock, so building from inside a running
/// `cargo test` does not wait on the outer cargo.
fn target_dir(subdir: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let base = if base.is_absolute() { base } else { repo_root().join(base) };
    base.join(subdir)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // The outer cargo's per-build variables must not leak into the guests'
    // build (they would e.g. point it at the host's target directory).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_")
            && key != "CARGO_HOME"
            && !key.starts_with("CARGO_REGISTRIES_")
            && !key.starts_with("CARGO_NET_")
            && !key.starts_with("CARGO_HTTP_")
        {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUSTC_WRAPPER").env_remove("RUSTC_WORKSPACE_WRAPPER");
    cmd
}

/// `cargo <args> --locked` on the guest workspace, building into `target`.
fn guests_cargo(args: &[&str], target: &Path) -> Command {
    let mut cmd = cargo();
    cmd.args(args)
        .arg("--locked")
        .arg("--manifest-path")
        .arg(repo_root().join("plugins/guests/Cargo.toml"))
        .arg("--target-dir")
        .arg(target);
    cmd
}

/// Build every guest for `wasm32-wasip2` in release; returns the directory
/// holding the `.wasm` files.
pub fn guests_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = target_dir("wasm-guests");
        let output = guests_cargo(&["build", "--release", "--target", "wasm32-wasip2"], &target)
            .output()
            .expect("run cargo to build the guest adapters");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            if stderr.contains("wasm32-wasip2")
                && (stderr.contains("target may not be installed")
                    || stderr.contains("can't find crate for `core`")
                    || stderr.contains("can't find crate for `std`"))
            {
                panic!("the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`\n\n{stderr}");
            }
            panic!("building the guest adapters failed:\n{stderr}");
        }
        target.join("wasm32-wasip2/release")
    })
}

/// Run the SDK's own unit tests (its time and text helpers, for every contract version) natively,
/// in the guests' target directory; returns cargo's combined output on failure.
pub fn sdk_unit_tests() -> Result<(), String> {
    let output = guests_cargo(&["test", "-p", "velferd-adapter-sdk"], &target_dir("wasm-guests"))
        .output()
        .expect("run cargo to test the SDK");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }
}

/// The bytes of the guest component `name` (crate name with underscores).
pub fn component(name: &str) -> Vec<u8> {
    let path = guests_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Path of a guest component.
pub fn component_path(name: &str) -> PathBuf {
    guests_dir().join(format!("{name}.wasm"))
}

/// A sample message shipped with a reference adapter.
pub fn sample(adapter_dir: &str, file: &str) -> PathBuf {
    repo_root().join("plugins/guests").join(adapter_dir).join("samples").join(file)
}

/// Build the native decoder benchmark binary (release) and return its path.
pub fn native_decoder_bench() -> PathBuf {
    let target = target_dir("native-guests");
    let status = guests_cargo(&["build", "--release", "--bin", "native-decoder-bench"], &target)
        .status()
        .expect("run cargo to build the native decoder benchmark");
    assert!(status.success(), "building native-decoder-bench failed");
    target.join("release/native-decoder-bench")
}

/// `component` with every memory its core modules define starting at `pages` Wasm pages (64 KiB
/// each) instead: a component that asks for more initial memory than the sandbox gives, without
/// a toolchain that makes one. Rewrites the binary's section sizes; nothing else changes.
pub fn with_initial_memory(component: &[u8], pages: u64) -> Vec<u8> {
    assert_eq!(&component[..4], b"\0asm", "not a WebAssembly binary");
    let core = is_core_module(component);
    rewrite_sections(component, &|id, body| match (core, id) {
        // A component's core modules and nested components.
        (false, 1 | 4) => Some(with_initial_memory(body, pages)),
        // A core module's memory section.
        (true, 5) => Some(memory_section(body, pages)),
        _ => None,
    })
}

fn is_core_module(binary: &[u8]) -> bool {
    binary[4..8] == [1, 0, 0, 0]
}

/// A section's new body, given its id and body; `None` keeps it.
type SectionPatch<'a> = &'a dyn Fn(u8, &[u8]) -> Option<Vec<u8>>;

/// The binary with each section's body replaced by `patch`'s answer, if any.
fn rewrite_sections(binary: &[u8], patch: SectionPatch) -> Vec<u8> {
    let mut out = binary[..8].to_vec();
    let mut pos = 8;
    while pos < binary.len() {
        let id = binary[pos];
        let (size, n) = leb(&binary[pos + 1..]);
        let start = pos + 1 + n;
        let body = &binary[start..start + size as usize];
        let body = patch(id, body).unwrap_or_else(|| body.to_vec());
        out.push(id);
        write_leb(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        pos = start + size as usize;
    }
    out
}

/// A memory section with every memory's minimum raised to `pages` (and its maximum, if lower).
fn memory_section(body: &[u8], pages: u64) -> Vec<u8> {
    let (count, mut pos) = leb(body);
    let mut out = Vec::new();
    write_leb(&mut out, count);
    for _ in 0..count {
        let flags = body[pos];
        pos += 1;
        let (min, n) = leb(&body[pos..]);
        pos += n;
        let min = min.max(pages);
        out.push(flags);
        write_leb(&mut out, min);
        if flags & 1 != 0 {
            let (max, n) = leb(&body[pos..]);
            pos += n;
            write_leb(&mut out, max.max(min));
        }
        if flags & 8 != 0 {
            // Custom page size: its log2, copied.
            let (log2, n) = leb(&body[pos..]);
            pos += n;
            write_leb(&mut out, log2);
        }
    }
    out
}

fn leb(bytes: &[u8]) -> (u64, usize) {
    let (mut value, mut shift) = (0u64, 0);
    for (i, byte) in bytes.iter().enumerate() {
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
        shift += 7;
    }
    panic!("truncated LEB128");
}

fn write_leb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
