//! Access tokens (RFC 9068 JWTs) signed with Ed25519, and the key ring behind the JWKS.
//!
//! Keys are made and stored (PKCS#8) with `ed25519-dalek`. Signing goes through
//! `aws-lc-rs` with a key parsed once: `jsonwebtoken::encode` re-derived the public key
//! on every call, and AWS-LC's Ed25519 (s2n-bignum's assembly on x86-64) signs in
//! under half the time of `ed25519-dalek`'s portable arithmetic — signing was a third
//! of the token endpoint's CPU. Ed25519 is deterministic: both give the same bytes
//! (a test holds them to it). Verification uses `jsonwebtoken` with the algorithm
//! pinned.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use crate::db::now_ms;
use crate::principal::Environment;
use crate::repo::signing_keys::SigningKeyRecord;
use crate::secret::random_base62;

/// Lifetime of an access token, in seconds (seed 001).
pub const TOKEN_TTL_SECS: i64 = 3600;
/// Clock skew tolerated on `exp`/`iat`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// The claims of an access token (RFC 9068 §2.2 plus `org_id` and `env`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    pub org_id: String,
    pub env: Environment,
}

/// A new Ed25519 signing key as a database record.
pub fn generate_signing_key() -> SigningKeyRecord {
    let key = SigningKey::generate(&mut OsRng);
    let der = key.to_pkcs8_der().expect("an Ed25519 key always encodes as PKCS#8");
    SigningKeyRecord {
        kid: random_base62(12),
        alg: "EdDSA".to_owned(),
        private_der: STANDARD.encode(der.as_bytes()),
        public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        created_at: now_ms(),
        retired_at: None,
    }
}

struct ActiveKey {
    kid: String,
    key: aws_lc_rs::signature::Ed25519KeyPair,
    /// `base64url({"alg":"EdDSA","typ":"at+jwt","kid":…})`, computed once.
    encoded_header: String,
}

/// The keys of one moment: the active signer and every key whose tokens may be alive.
pub struct KeySet {
    active: Option<ActiveKey>,
    verifiers: HashMap<String, DecodingKey>,
    jwks: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {kid} is corrupt: {reason}")]
    Corrupt { kid: String, reason: String },
    #[error("no active signing key")]
    NoActiveKey,
}

impl KeySet {
    /// Builds from records ordered newest first; the newest unretired one signs.
    pub fn from_records(records: &[SigningKeyRecord]) -> Result<KeySet, KeyError> {
        let mut active = None;
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        for record in records {
            let corrupt = |reason: String| KeyError::Corrupt { kid: record.kid.clone(), reason };
            let x = URL_SAFE_NO_PAD
                .decode(&record.public_key)
                .map_err(|e| corrupt(e.to_string()))?;
            if x.len() != 32 {
                return Err(corrupt("public key is not 32 bytes".into()));
            }
            verifiers.insert(record.kid.clone(), DecodingKey::from_ed_der(&x));
            jwks.push(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": record.public_key,
                "kid": record.kid, "alg": "EdDSA", "use": "sig",
            }));
            if active.is_none() && record.retired_at.is_none() {
                let der = STANDARD.decode(&record.private_der).map_err(|e| corrupt(e.to_string()))?;
                let key = SigningKey::from_pkcs8_der(&der).map_err(|e| corrupt(e.to_string()))?;
                let key = signer(&key, &x).map_err(|_| corrupt("private key does not match the public key".into()))?;
                let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": record.kid});
                active = Some(ActiveKey {
                    kid: record.kid.clone(),
                    key,
                    encoded_header: URL_SAFE_NO_PAD.encode(header.to_string()),
                });
            }
        }
        let jwks = serde_json::json!({ "keys": jwks }).to_string();
        Ok(KeySet { active, verifiers, jwks: jwks.into() })
    }

    pub fn active_kid(&self) -> Option<&str> {
        self.active.as_ref().map(|a| a.kid.as_str())
    }

    pub fn jwks(&self) -> Arc<str> {
        self.jwks.clone()
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.verifiers.contains_key(kid)
    }

    /// Signs `claims` as a compact JWS with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let active = self.active.as_ref().ok_or(KeyError::NoActiveKey)?;
        let payload = serde_json::to_vec(claims).expect("claims always serialize");
        let mut token = String::with_capacity(active.encoded_header.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&active.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = active.key.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }
}

/// AWS-LC's signer for `key`, refused unless `public` (the key the JWKS publishes) is
/// `key`'s public half.
fn signer(key: &SigningKey, public: &[u8]) -> Result<aws_lc_rs::signature::Ed25519KeyPair, aws_lc_rs::error::KeyRejected> {
    aws_lc_rs::signature::Ed25519KeyPair::from_seed_and_public_key(&key.to_bytes(), public)
}

/// Why a JWT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Malformed, wrong algorithm or type, unknown key, bad signature, wrong iss/aud.
    Invalid,
    Expired,
}

/// The shared, swappable key set plus the validation rules of our tokens.
pub struct Keyring {
    current: RwLock<Arc<KeySet>>,
    validation: Validation,
}

impl Keyring {
    pub fn new(keys: KeySet, issuer: &str, audience: &str) -> Keyring {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Keyring { current: RwLock::new(Arc::new(keys)), validation }
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.current.read().clone()
    }

    pub fn replace(&self, keys: KeySet) {
        *self.current.write() = Arc::new(keys);
    }

    /// Verifies signature (by `kid`, EdDSA only), `typ`, `iss`, `aud`, `exp` and `iat`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenRejection::Invalid);
        }
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
        if !typ_ok {
            return Err(TokenRejection::Invalid);
        }
        let kid = header.kid.ok_or(TokenRejection::Invalid)?;
        let keys = self.current();
        let key = keys.verifiers.get(&kid).ok_or(TokenRejection::Invalid)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRejection::Expired,
                _ => TokenRejection::Invalid,
            }
        })?;
        let claims = data.claims;
        if claims.iat > now_ms() / 1000 + LEEWAY_SECS as i64 {
            return Err(TokenRejection::Invalid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_offset: i64) -> AccessClaims {
        let now = now_ms() / 1000;
        AccessClaims {
            iss: "http://issuer".into(),
            sub: "cli_1".into(),
            aud: "breadbox-api".into(),
            exp: now + exp_offset,
            iat: now,
            jti: "j1".into(),
            client_id: "cli_1".into(),
            scope: "accounts:read".into(),
            org_id: "org_1".into(),
            env: Environment::Live,
        }
    }

    fn ring() -> (Keyring, SigningKeyRecord) {
        let record = generate_signing_key();
        let keys = KeySet::from_records(std::slice::from_ref(&record)).unwrap();
        (Keyring::new(keys, "http://issuer", "breadbox-api"), record)
    }

    #[test]
    fn signed_tokens_verify_and_round_trip() {
        let (ring, _) = ring();
        let token = ring.current().sign(&claims(3600)).unwrap();
        assert_eq!(ring.verify(&token).unwrap(), claims(3600));
    }

    #[test]
    fn signatures_are_ed25519_dalek_s_bytes_and_verify_with_it() {
        use ed25519_dalek::{Signer, Verifier};
        let key = SigningKey::generate(&mut OsRng);
        let signer = signer(&key, key.verifying_key().as_bytes()).unwrap();
        for message in [&b""[..], b"header.payload", &[7u8; 1000][..]] {
            let ours = signer.sign(message);
            assert_eq!(ours.as_ref(), &key.sign(message).to_bytes()[..]);
            let parsed = ed25519_dalek::Signature::from_slice(ours.as_ref()).unwrap();
            assert!(key.verifying_key().verify(message, &parsed).is_ok());
        }
    }

    #[test]
    fn a_record_whose_keys_do_not_match_is_corrupt() {
        let mut record = generate_signing_key();
        record.public_key = generate_signing_key().public_key;
        assert!(matches!(KeySet::from_records(&[record]), Err(KeyError::Corrupt { .. })));
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let (ring, _) = ring();
        let expired = ring.current().sign(&claims(-120)).unwrap();
        assert_eq!(ring.verify(&expired), Err(TokenRejection::Expired));
        let token = ring.current().sign(&claims(3600)).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&AccessClaims { scope: "admin:write".into(), ..claims(3600) }).unwrap());
        parts[1] = &forged;
        assert_eq!(ring.verify(&parts.join(".")), Err(TokenRejection::Invalid));
        let (other, _) = self::ring();
        assert_eq!(other.verify(&token), Err(TokenRejection::Invalid));
    }

    #[test]
    fn newest_unretired_key_signs_and_all_verify() {
        let mut old = generate_signing_key();
        old.retired_at = Some(now_ms());
        let new = generate_signing_key();
        let keys = KeySet::from_records(&[new.clone(), old.clone()]).unwrap();
        assert_eq!(keys.active_kid(), Some(new.kid.as_str()));
        assert!(keys.knows(&old.kid));
        assert!(keys.jwks().contains(&old.kid));
    }
}
