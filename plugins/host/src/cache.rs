//! The compile cache: components compiled by this host, kept on its own disk so that a restart
//! or a second check of the same bytes loads native code instead of compiling again.
//!
//! Loading compiled code is running code, so an entry is loaded only if it carries a valid
//! HMAC-SHA256 under a key that never leaves this host's configuration (a key file created
//! owner-only in the cache directory, or `VELFERD_ADAPTER_CACHE_KEY`). The MAC covers the
//! engine's configuration hash, the component's sha-256 and the compiled bytes, so an entry
//! cannot stand in for another component or another engine. A missing, truncated, tampered or
//! foreign entry is a miss: the component is compiled from its bytes and the entry rewritten.
//! Compiled bytes are never taken from the database or from another host.
//!
//! Why not wasmtime's own cache (`Config::cache`, the `wasmtime-cache` crate): it trusts any
//! file under the right name (no MAC), creates its directory with the process's umask, and
//! needs crates this workspace does not otherwise build (zstd, a TOML reader, a background
//! worker for eviction). See docs/adapters.md, "Compile cache".

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Start of every entry; the version changes with the entry format.
const MAGIC: &[u8; 16] = b"velferd-cwasm-1\n";
/// Name of the generated key file in the cache directory.
const KEY_FILE: &str = "key";
/// Shortest key accepted from the setting, and the length of a generated one.
pub const MIN_KEY_BYTES: usize = 32;
/// Largest entry read; anything bigger is not one of ours (compiled code is about 4 times the
/// component, and approved limits allow components of tens of MiB).
const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// Where compiled components are kept, and the key their MACs are made with. Cheap to clone;
/// `Debug` does not show the key.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: Arc<[u8]>,
    key_origin: KeyOrigin,
}

/// Where the MAC key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The key file in the cache directory, generated on first use.
    File(PathBuf),
    /// The operator's setting (`VELFERD_ADAPTER_CACHE_KEY`).
    Setting,
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache").field("dir", &self.dir).field("key", &self.key_origin).finish()
    }
}

/// What looking an entry up found.
pub(crate) enum Lookup {
    Hit(Component),
    Miss,
    /// An entry was there but not loaded (the log says why); it has been removed.
    Rejected,
}

impl CompileCache {
    /// Opens (creating it owner-only, 0700) the cache in `dir`. With `key` = `None` the MAC key is
    /// the key file in `dir`, created with 32 random bytes (0600) on first use; otherwise `key`
    /// (at least [`MIN_KEY_BYTES`]). A directory or key file that others may read or write is
    /// tightened to owner-only, and refused when that is not possible.
    pub fn open(dir: impl Into<PathBuf>, key: Option<&[u8]>) -> io::Result<CompileCache> {
        let dir = dir.into();
        DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        owner_only(&dir, 0o700)?;
        let (key, key_origin): (Arc<[u8]>, _) = match key {
            Some(key) if key.len() < MIN_KEY_BYTES => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the cache key is {} bytes; it needs at least {MIN_KEY_BYTES}", key.len()),
                ));
            }
            Some(key) => (key.into(), KeyOrigin::Setting),
            None => {
                let path = dir.join(KEY_FILE);
                (key_file(&path)?.into(), KeyOrigin::File(path))
            }
        };
        Ok(CompileCache { dir, key, key_origin })
    }

    /// The default directory: `$XDG_CACHE_HOME/velferd/adapters`, else
    /// `$HOME/.cache/velferd/adapters`; `None` when neither is set.
    pub fn default_dir() -> Option<PathBuf> {
        let absolute = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
        let base = absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|home| home.join(".cache")))?;
        Some(base.join("velferd").join("adapters"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key_origin(&self) -> &KeyOrigin {
        &self.key_origin
    }

    /// The entry of `component` (its sha-256) compiled by an engine whose configuration hashes
    /// to `engine`.
    pub fn entry_path(&self, component: &[u8; 32], engine: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.{}.cwasm", hex(component), &hex(engine)[..32]))
    }

    fn mac(&self, component: &[u8; 32], engine: &[u8; 32], compiled: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(MAGIC);
        mac.update(engine);
        mac.update(component);
        mac.update(compiled);
        mac
    }

    /// Loads the entry of `component` for `engine` if it is there and its MAC is valid.
    pub(crate) fn load(&self, engine: &Engine, engine_hash: &[u8; 32], component: &[u8; 32]) -> Lookup {
        let path = self.entry_path(component, engine_hash);
        let bytes = match read_entry(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Lookup::Miss,
            Err(e) => return self.reject(&path, format!("unreadable: {e}")),
        };
        let header = MAGIC.len() + 32;
        if bytes.len() < header || &bytes[..MAGIC.len()] != MAGIC {
            return self.reject(&path, "not a cache entry of this format".into());
        }
        let (tag, compiled) = bytes[MAGIC.len()..].split_at(32);
        if self.mac(component, engine_hash, compiled).verify_slice(tag).is_err() {
            return self.reject(&path, "its MAC does not match (tampered, truncated or made with another key)".into());
        }
        // SAFETY: `Component::deserialize` maps its input as executable code and trusts it to be
        // wasmtime's own output. These bytes were read into memory once (no later change to the
        // file reaches them) and carry a valid HMAC-SHA256, checked just above, under a key that
        // only this host holds, over this engine's configuration hash, this component's sha-256
        // and the bytes: so they are what `Component::serialize` wrote after this host compiled
        // and validated this very component with this engine configuration. wasmtime itself
        // also refuses bytes of another version or configuration.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, compiled) };
        match loaded {
            Ok(component) => Lookup::Hit(component),
            Err(e) => self.reject(&path, format!("wasmtime refused it: {e:#}")),
        }
    }

    fn reject(&self, path: &Path, why: String) -> Lookup {
        tracing::warn!(entry = %path.display(), why, "compile cache entry not loaded; compiling the component again");
        if let Err(e) = fs::remove_file(path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(entry = %path.display(), error = %e, "could not remove a bad compile cache entry");
        }
        Lookup::Rejected
    }

    /// Writes the entry of `component` for `engine` (0600, atomically: readers see the old entry,
    /// none, or the whole new one).
    pub(crate) fn store(&self, engine_hash: &[u8; 32], component: &[u8; 32], compiled: &[u8]) -> io::Result<()> {
        let path = self.entry_path(component, engine_hash);
        let tag = self.mac(component, engine_hash, compiled).finalize().into_bytes();
        let tmp = temp_name(&path)?;
        let written = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&tag)?;
            file.write_all(compiled)?;
            fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// A sha-256 of everything in `engine`'s configuration that compiled code depends on, wasmtime's
/// version included ([`Engine::precompile_compatibility_hash`]): an upgrade or a change of
/// configuration gives new entries and never loads old ones.
pub(crate) fn engine_hash(engine: &Engine) -> [u8; 32] {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            unreachable!("only finalised as a whole sha-256")
        }
    }
    let mut hasher = Sha(Sha256::new());
    hasher.write(MAGIC);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// Tightens `path` to `mode` when others may use it; fails when it cannot (not ours).
fn owner_only(path: &Path, mode: u32) -> io::Result<()> {
    let meta = fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{} is open to other users and cannot be made owner-only: {e}", path.display()),
            )
        })?;
    }
    Ok(())
}

/// The key in `path`, created with random bytes if there is none. Two processes starting at once
/// agree on one key: each writes a temporary file and links it into place, and the loser reads
/// the winner's.
fn key_file(path: &Path) -> io::Result<Vec<u8>> {
    if !path.exists() {
        let mut key = [0u8; MIN_KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| io::Error::other(format!("no random bytes for the cache key: {e}")))?;
        let tmp = temp_name(path)?;
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        let linked = file.write_all(&key).and_then(|()| file.sync_all()).and_then(|()| fs::hard_link(&tmp, path));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    owner_only(path, 0o600)?;
    let key = fs::read(path)?;
    if key.len() < MIN_KEY_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the cache key file {} holds {} bytes; it needs at least {MIN_KEY_BYTES}",
                path.display(),
                key.len()
            ),
        ));
    }
    Ok(key)
}

/// The entry's bytes, `None` when there is no entry. Reads at most [`MAX_ENTRY_BYTES`] and only
/// from a regular file.
fn read_entry(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MAX_ENTRY_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file of a plausible size"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_ENTRY_BYTES).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// A fresh name beside `path` for writing before the rename.
fn temp_name(path: &Path) -> io::Result<PathBuf> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(path.with_file_name(format!(".{name}.{}.{}.tmp", std::process::id(), hex(&nonce))))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
