//! Parsed identifiers of the devices area: product slugs, device serials, Ed25519 public keys
//! and detached signatures. Each parses once at the edge and cannot hold an invalid value.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

/// A device product's slug: the `{product}` of `POST /ingest/{product}`. 3 to 63 characters of
/// `a-z`, `0-9` and inner `-`, like a DNS label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductSlug(String);

impl FromStr for ProductSlug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (3..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(ProductSlug(s.to_string()))
        } else {
            Err(format!("{:?} is not a product slug: 3 to 63 characters of a-z, 0-9 and inner hyphens", truncate(s)))
        }
    }
}

impl ProductSlug {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A device's serial number as its supplier prints it: 1 to 64 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceSerial(String);

impl FromStr for DeviceSerial {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(DeviceSerial(s.to_string()))
        } else {
            Err(format!("{:?} is not a device serial: 1 to 64 visible ASCII characters", truncate(s)))
        }
    }
}

impl DeviceSerial {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A supplier's Ed25519 public key. Accepted as PEM (`openssl pkey -pubout`) or as the raw
/// 32 bytes in base64; stored as standard base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningPublicKey(VerifyingKey);

impl FromStr for SigningPublicKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let key = if s.starts_with("-----BEGIN") {
            VerifyingKey::from_public_key_pem(s).map_err(|e| format!("not an Ed25519 public key in PEM: {e}"))?
        } else {
            let bytes = decode_base64(s).ok_or("not base64 and not PEM")?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| format!("an Ed25519 public key has 32 bytes, not {}", b.len()))?;
            VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_string())?
        };
        if key.is_weak() {
            return Err("a weak (small-order) Ed25519 key cannot sign uploads".into());
        }
        Ok(SigningPublicKey(key))
    }
}

impl SigningPublicKey {
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// Whether `signature` is this key's signature over `message` (strict verification: no
    /// malleable or small-order signatures).
    pub fn verifies(&self, message: &[u8], signature: &DetachedSignature) -> bool {
        self.0.verify_strict(message, &signature.0).is_ok() && self.0.verify(message, &signature.0).is_ok()
    }
}

/// What a supplier signs to prove it holds the private half of a key it registers: the key is
/// bound to the supplier's organisation number, so a proof made for one organisation does not
/// register the key for another.
pub fn key_registration_message(org_number: &str) -> Vec<u8> {
    format!("velferd signing key for {org_number}").into_bytes()
}

/// A detached Ed25519 signature over an uploaded component: 64 bytes in base64.
#[derive(Debug, Clone)]
pub struct DetachedSignature(Signature);

impl FromStr for DetachedSignature {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = decode_base64(s.trim()).ok_or("the signature is not base64")?;
        let bytes: [u8; 64] =
            bytes.try_into().map_err(|b: Vec<u8>| format!("an Ed25519 signature has 64 bytes, not {}", b.len()))?;
        Ok(DetachedSignature(Signature::from_bytes(&bytes)))
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok().or_else(|| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    #[test]
    fn slugs_are_dns_labels() {
        for good in ["reference-dispenser", "abc", "a1-b2"] {
            assert!(good.parse::<ProductSlug>().is_ok(), "{good}");
        }
        for bad in ["", "ab", "-abc", "abc-", "ABC", "a b c", "æøå", &"a".repeat(64)] {
            assert!(bad.parse::<ProductSlug>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serials_are_visible_ascii() {
        assert!("RD-100234".parse::<DeviceSerial>().is_ok());
        for bad in ["", "RD 1", "RD\n1", &"x".repeat(65), "Ø1"] {
            assert!(bad.parse::<DeviceSerial>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_signature_verifies_only_over_its_message_and_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let public: SigningPublicKey = STANDARD.encode(key.verifying_key().as_bytes()).parse().unwrap();
        let signature: DetachedSignature = STANDARD.encode(key.sign(b"component").to_bytes()).parse().unwrap();
        assert!(public.verifies(b"component", &signature));
        assert!(!public.verifies(b"component!", &signature));
        let forged: DetachedSignature = STANDARD.encode(other.sign(b"component").to_bytes()).parse().unwrap();
        assert!(!public.verifies(b"component", &forged));
    }

    #[test]
    fn keys_parse_from_pem_and_refuse_wrong_lengths() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert!(pem.parse::<SigningPublicKey>().is_ok());
        assert!(STANDARD.encode([1u8; 31]).parse::<SigningPublicKey>().is_err());
        assert!("not a key".parse::<SigningPublicKey>().is_err());
        assert!(STANDARD.encode([0u8; 32]).parse::<SigningPublicKey>().is_err(), "the identity point is weak");
        assert!(STANDARD.encode([1u8; 63]).parse::<DetachedSignature>().is_err());
    }

    proptest! {
        #[test]
        fn parsing_untrusted_text_never_panics(s in ".{0,200}") {
            let _ = s.parse::<ProductSlug>();
            let _ = s.parse::<DeviceSerial>();
            let _ = s.parse::<SigningPublicKey>();
            let _ = s.parse::<DetachedSignature>();
        }
    }
}
