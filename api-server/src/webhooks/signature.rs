//! Signing secrets and the two signatures of every delivery.
//!
//! A secret is `whsec_` + base64 of 32 random bytes, as Standard Webhooks expects.
//! - `X-MSP-Signature`: hex HMAC-SHA256 of the raw body, keyed with the whole secret
//!   text (`whsec_…` as UTF-8 bytes).
//! - `webhook-signature` (Standard Webhooks): `v1,` + base64 HMAC-SHA256 of
//!   `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded part of
//!   the secret after `whsec_`.
//!
//! While a rotated-out secret is still valid, each header carries a signature per
//! secret: comma-separated for `X-MSP-Signature`, space-separated (as the standard
//! says) for `webhook-signature`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const PREFIX: &str = "whsec_";

/// A new signing secret.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts every key length"))
}

/// `X-MSP-Signature` of `body` for one secret.
pub fn msp_signature(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret.as_bytes());
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// The Standard Webhooks signature (`v1,…`) of one secret.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret.strip_prefix(PREFIX).and_then(|k| STANDARD.decode(k).ok()).unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut m = mac(&key);
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("v1,{}", STANDARD.encode(m.finalize().into_bytes()))
}

/// The signature headers of one delivery, signed with every secret in `secrets`.
pub struct Signed {
    pub msp: String,
    pub standard: String,
}

pub fn sign(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> Signed {
    Signed {
        msp: secrets.iter().map(|s| msp_signature(s, body)).collect::<Vec<_>>().join(","),
        standard: secrets.iter().map(|s| standard_signature(s, id, timestamp, body)).collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_fresh_and_prefixed() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with(PREFIX) && a != b);
        assert_eq!(STANDARD.decode(&a[PREFIX.len()..]).map(|k| k.len()).ok(), Some(32));
    }
}
