//! The audit key: what signs each chain's anchor (HMAC-SHA-256), kept outside the database so
//! that someone who can write the database cannot recompute a chain and its anchor.
//!
//! The server takes its keys from the settings (`VELFERD_AUDIT_KEY` / `VELFERD_AUDIT_KEY_FILE`,
//! and `VELFERD_AUDIT_RETIRED_KEY_FILES` for anchors signed before a rotation) and installs them
//! once at start ([`install`]); [`crate::audit::record`] signs with the installed current key.
//! In development, without a configured key, a published development key is used and the
//! server says so in its log; production refuses to start without a key of its own.

use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The key used when none is configured, in development only: it is in the source, so it
/// protects nothing.
pub const DEVELOPMENT_KEY: &[u8] = b"velferd-development-audit-key--not-a-secret--never-use-in-production";

/// Fewest bytes an audit key may have.
pub const MIN_KEY_BYTES: usize = 32;

/// One HMAC key and its fingerprint.
#[derive(Clone)]
pub struct AuditKey {
    bytes: Vec<u8>,
    id: String,
}

impl std::fmt::Debug for AuditKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id)
    }
}

impl AuditKey {
    /// A key from its bytes; `None` when shorter than [`MIN_KEY_BYTES`].
    pub fn new(bytes: &[u8]) -> Option<AuditKey> {
        if bytes.len() < MIN_KEY_BYTES {
            return None;
        }
        let digest = Sha256::new().chain_update(b"velferd-audit-key-id\0").chain_update(bytes).finalize();
        Some(AuditKey { bytes: bytes.to_vec(), id: super::chain::hex(&digest[..8]) })
    }

    pub fn development() -> AuditKey {
        AuditKey::new(DEVELOPMENT_KEY).expect("the development key is long enough")
    }

    /// The key's fingerprint (16 hex digits of a hash of it), stored beside each anchor it signs.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn is_development(&self) -> bool {
        self.bytes == DEVELOPMENT_KEY
    }

    /// HMAC-SHA-256 of `message` under this key, in lower-case hex.
    pub fn mac(&self, message: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.bytes).expect("HMAC takes a key of any length");
        mac.update(message);
        super::chain::hex(&mac.finalize().into_bytes())
    }

    /// Whether `mac_hex` is this key's HMAC of `message`, compared in constant time.
    pub fn verifies(&self, message: &[u8], mac_hex: &str) -> bool {
        let Some(expected) = super::chain::unhex(mac_hex) else { return false };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.bytes).expect("HMAC takes a key of any length");
        mac.update(message);
        mac.verify_slice(&expected).is_ok()
    }
}

/// The key that signs new anchors, and retired keys whose anchors still verify.
#[derive(Clone, Debug)]
pub struct AuditKeys {
    pub current: AuditKey,
    pub retired: Vec<AuditKey>,
}

impl AuditKeys {
    pub fn development() -> AuditKeys {
        AuditKeys { current: AuditKey::development(), retired: Vec::new() }
    }

    /// The configured key with fingerprint `id`.
    pub fn by_id(&self, id: &str) -> Option<&AuditKey> {
        std::iter::once(&self.current).chain(&self.retired).find(|k| k.id == id)
    }
}

static INSTALLED: RwLock<Option<Arc<AuditKeys>>> = RwLock::new(None);

/// Makes `keys` the ones [`crate::audit::record`] signs with, for the whole process (the
/// server calls it at start, before serving).
pub fn install(keys: AuditKeys) {
    *INSTALLED.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(keys));
}

/// The installed keys; the development key when none were installed (library tests only: the
/// server always installs its configured keys, and production refuses to start without one).
pub fn current() -> Arc<AuditKeys> {
    if let Some(keys) = INSTALLED.read().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref() {
        return keys.clone();
    }
    Arc::new(AuditKeys::development())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused_and_ids_differ_per_key() {
        assert!(AuditKey::new(b"short").is_none());
        let a = AuditKey::new(&[1u8; 32]).unwrap();
        let b = AuditKey::new(&[2u8; 32]).unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        assert!(AuditKey::development().is_development());
        assert!(!format!("{a:?}").contains("0101"), "Debug prints no key material");
    }

    #[test]
    fn a_mac_verifies_under_its_key_only() {
        let a = AuditKey::new(&[1u8; 32]).unwrap();
        let b = AuditKey::new(&[2u8; 32]).unwrap();
        let mac = a.mac(b"head");
        assert!(a.verifies(b"head", &mac));
        assert!(!a.verifies(b"heads", &mac));
        assert!(!b.verifies(b"head", &mac));
        assert!(!a.verifies(b"head", "not hex"));
    }
}
