//! Standard Webhooks signatures (spec: `standard-webhooks/standard-webhooks`,
//! `spec/standard-webhooks.md`, "Signature scheme"): the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`; `v1` is its HMAC-SHA256 under a secret serialised
//! as `whsec_` + base64 (24 to 64 random bytes: we make 32), `v1a` its Ed25519 signature under a
//! key pair serialised as `whsk_` + base64 (the 32-byte RFC 8032 private key, the seed) and
//! `whpk_` + base64 (the 32-byte public key). Signatures are standard base64 with padding, each
//! `version,signature`, space-separated in `webhook-signature`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";
const SIGNING_KEY_PREFIX: &str = "whsk_";
const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// Random bytes from the operating system.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    bytes
}

/// A fresh `whsec_` secret: 32 random bytes.
pub fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(random::<32>()))
}

/// A fresh Ed25519 signing key, as `whsk_` + base64 of its 32-byte seed.
pub fn new_signing_key() -> String {
    format!("{SIGNING_KEY_PREFIX}{}", STANDARD.encode(random::<32>()))
}

/// A random id of 16 bytes, hex: a test event's `webhook-id` suffix.
pub fn random_id() -> String {
    random::<16>().iter().map(|b| format!("{b:02x}")).collect()
}

fn signing_key(serialised: &str) -> Option<SigningKey> {
    let bytes = STANDARD.decode(serialised.strip_prefix(SIGNING_KEY_PREFIX)?).ok()?;
    Some(SigningKey::from_bytes(&bytes.try_into().ok()?))
}

/// The `whpk_` public key of a `whsk_` signing key.
pub fn public_key(signing: &str) -> Option<String> {
    let key = signing_key(signing)?;
    Some(format!("{PUBLIC_KEY_PREFIX}{}", STANDARD.encode(key.verifying_key().as_bytes())))
}

/// `v1,<base64 HMAC-SHA256 of id.timestamp.body>` under the `whsec_` secret.
pub fn sign_v1(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// `v1a,<base64 Ed25519 signature of id.timestamp.body>` under the `whsk_` key.
pub fn sign_v1a(signing: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = signing_key(signing)?;
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    Some(format!("v1a,{}", STANDARD.encode(key.sign(&content).to_bytes())))
}

/// The `webhook-signature` header: `v1` with the current secret, `v1` with the previous one
/// while its grace lasts (so a receiver mid-rotation verifies with either), and `v1a`.
pub fn signature_header(
    secret: &str,
    previous: Option<&str>,
    signing: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let mut parts = vec![sign_v1(secret, id, timestamp, body)?];
    if let Some(previous) = previous {
        parts.push(sign_v1(previous, id, timestamp, body)?);
    }
    parts.push(sign_v1a(signing, id, timestamp, body)?);
    Some(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn v1_matches_the_specs_reference_implementation_vector() {
        // The Standard Webhooks libraries' test vector (libraries/csharp/…/WebhookTest.cs,
        // verifyWebhookSignWorks): secret, id, timestamp and body give this signature.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signed = sign_v1(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn v1a_verifies_with_the_public_key_over_the_signed_content() {
        let key = new_signing_key();
        let public = public_key(&key).unwrap();
        let raw: [u8; 32] = STANDARD.decode(public.strip_prefix("whpk_").unwrap()).unwrap().try_into().unwrap();
        let verifying = VerifyingKey::from_bytes(&raw).unwrap();
        let signed = sign_v1a(&key, "msg_1", 1700000000, b"{}").unwrap();
        let sig: [u8; 64] = STANDARD.decode(signed.strip_prefix("v1a,").unwrap()).unwrap().try_into().unwrap();
        verifying.verify(b"msg_1.1700000000.{}", &Signature::from_bytes(&sig)).unwrap();
        assert!(verifying.verify(b"msg_1.1700000001.{}", &Signature::from_bytes(&sig)).is_err());
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_then_ed25519() {
        let (new, old, key) = (new_secret(), new_secret(), new_signing_key());
        let header = signature_header(&new, Some(&old), &key, "msg_9", 5, b"x").unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], sign_v1(&new, "msg_9", 5, b"x").unwrap());
        assert_eq!(parts[1], sign_v1(&old, "msg_9", 5, b"x").unwrap());
        assert!(parts[2].starts_with("v1a,"));
        assert_ne!(new, old, "fresh secrets differ");
        assert_eq!(STANDARD.decode(&new[6..]).unwrap().len(), 32);
    }
}
