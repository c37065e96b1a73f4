use breadbox_tests::*;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use breadbox_auth::Environment;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::jwk::AlgorithmParameters;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sqlx::Connection;

use super::token::{issuer, jwks};

const ME: &str = "/api/v1/me";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// Asserts that `GET /me` refuses `token` with 401 and `reason` in the envelope.
async fn assert_refused(app: &TestApp, token: &str, reason: &str, case: &str) {
    let (status, body) = app.get_bearer(ME, token).await;
    assert_eq!(status, 401, "{case}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{case}: {body}");
    assert_eq!(body["error"]["reason"], reason, "{case}: {body}");
}

/// Asserts that `GET /me` accepts `token` as a token of `client`.
async fn assert_accepted(app: &TestApp, token: &str, client: &TestClient, case: &str) {
    let (status, body) = app.get_bearer(ME, token).await;
    assert_eq!(status, 200, "{case}: {body}");
    assert_eq!(body["data"]["credentialId"], client.id.as_str(), "{case}");
    assert_eq!(body["data"]["credentialKind"], "oauth_client", "{case}");
}

/// A token issued by the server, taken apart.
struct Genuine {
    client: TestClient,
    token: String,
    kid: String,
    claims: Value,
}

async fn genuine(app: &TestApp) -> Genuine {
    let client = app.client(Environment::Live, "accounts:read").await;
    let token = app.token(&client, None).await;
    let kid = jsonwebtoken::decode_header(&token).expect("header").kid.expect("kid");
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Value>(&token).expect("claims");
    Genuine { client, token, kid, claims }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn header(alg: Algorithm, kid: &str, typ: Option<&str>) -> Header {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = typ.map(str::to_owned);
    header
}

fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("test token signs")
}

/// The server's active signing key, read from its database: its kid and the key.
async fn server_signing_key(app: &TestApp) -> (String, EncodingKey) {
    sqlx::any::install_default_drivers();
    let url = match app.backend {
        Backend::Sqlite => format!("sqlite://{}", app.data_dir().join("breadbox.db").display()),
        Backend::Postgres => app.auth_config.database_url.clone(),
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect to the server's database");
    let (kid, der): (String, String) =
        sqlx::query_as("SELECT kid, private_der FROM signing_keys WHERE retired_at IS NULL")
            .fetch_one(&mut conn)
            .await
            .expect("one active signing key");
    conn.close().await.expect("close");
    let der = STANDARD.decode(der).expect("base64 PKCS#8 DER");
    (kid, EncodingKey::from_ed_der(&der))
}

/// The claims the server would put in a token for `client` expiring at `exp`.
fn claims(app: &TestApp, issuer: &str, client: &TestClient, exp: i64) -> Value {
    json!({
        "iss": issuer, "sub": client.id, "aud": "breadbox-api", "exp": exp, "iat": exp - 3600,
        "jti": uuid::Uuid::new_v4().simple().to_string(), "client_id": client.id,
        "scope": "accounts:read", "org_id": app.org_id, "env": "live",
    })
}

async fn alg_none_token_is_refused(app: &mut TestApp) {
    let real = genuine(app).await;
    let signature = real.token.rsplit('.').next().expect("signature");
    for alg in ["none", "None", "NONE"] {
        let head = b64(&json!({"alg": alg, "typ": "at+jwt", "kid": real.kid}));
        let body = b64(&real.claims);
        assert_refused(app, &format!("{head}.{body}."), "INVALID_TOKEN", alg).await;
        assert_refused(app, &format!("{head}.{body}.{signature}"), "INVALID_TOKEN", alg).await;
    }
    assert_accepted(app, &real.token, &real.client, "the genuine token").await;
}

async fn hs256_signed_with_the_public_key_is_refused(app: &mut TestApp) {
    let real = genuine(app).await;
    let jwks = jwks(app).await;
    let jwk = jwks.find(&real.kid).expect("kid in JWKS");
    let AlgorithmParameters::OctetKeyPair(okp) = &jwk.algorithm else { panic!("an Ed25519 JWK: {jwk:?}") };
    let raw = URL_SAFE_NO_PAD.decode(&okp.x).expect("x is base64url");
    assert_eq!(raw.len(), 32);
    for (case, secret) in [("raw public key", raw.as_slice()), ("base64url public key", okp.x.as_bytes())] {
        for alg in [Algorithm::HS256, Algorithm::HS512] {
            let forged = sign(&header(alg, &real.kid, Some("at+jwt")), &real.claims, &EncodingKey::from_secret(secret));
            assert_refused(app, &forged, "INVALID_TOKEN", &format!("{alg:?} with the {case}")).await;
        }
    }
}

async fn token_signed_by_another_key_is_refused(app: &mut TestApp) {
    let real = genuine(app).await;
    let other = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let der = other.to_pkcs8_der().expect("PKCS#8");
    let key = EncodingKey::from_ed_der(der.as_bytes());
    let same_kid = sign(&header(Algorithm::EdDSA, &real.kid, Some("at+jwt")), &real.claims, &key);
    assert_refused(app, &same_kid, "INVALID_TOKEN", "another key, the real kid").await;
    let unknown_kid = sign(&header(Algorithm::EdDSA, "unknown-kid", Some("at+jwt")), &real.claims, &key);
    assert_refused(app, &unknown_kid, "INVALID_TOKEN", "an unknown kid").await;
    let mut no_kid = header(Algorithm::EdDSA, "", Some("at+jwt"));
    no_kid.kid = None;
    assert_refused(app, &sign(&no_kid, &real.claims, &key), "INVALID_TOKEN", "no kid").await;
}

async fn tampered_payload_is_refused(app: &mut TestApp) {
    let real = genuine(app).await;
    let parts: Vec<&str> = real.token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut claims = real.claims.clone();
    claims["scope"] = json!("admin:write");
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_refused(app, &tampered, "INVALID_TOKEN", "scope raised").await;
    let mut claims = real.claims.clone();
    claims["exp"] = json!(real.claims["exp"].as_i64().expect("exp") + 86_400);
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_refused(app, &tampered, "INVALID_TOKEN", "exp extended").await;
    assert_accepted(app, &real.token, &real.client, "the genuine token").await;
}

async fn tokens_signed_with_the_real_key_are_accepted(app: &mut TestApp) {
    let issuer = issuer(app).await;
    let client = app.client(Environment::Live, "accounts:read").await;
    let (kid, key) = server_signing_key(app).await;
    let at_jwt = header(Algorithm::EdDSA, &kid, Some("at+jwt"));
    let fresh = sign(&at_jwt, &claims(app, &issuer, &client, now() + 3600), &key);
    assert_accepted(app, &fresh, &client, "all claims right").await;
    let (_, body) = app.get_bearer(ME, &fresh).await;
    assert_eq!(body["data"]["scopes"], json!(["accounts:read"]));
    assert_eq!(body["data"]["orgId"], app.org_id.as_str());
    let within_leeway = sign(&at_jwt, &claims(app, &issuer, &client, now() - 30), &key);
    assert_accepted(app, &within_leeway, &client, "expired 30 s ago, within the 60 s leeway").await;
    let media_type = sign(&header(Algorithm::EdDSA, &kid, Some("application/at+jwt")), &claims(app, &issuer, &client, now() + 60), &key);
    assert_accepted(app, &media_type, &client, "typ application/at+jwt (RFC 9068 §2.1)").await;
}

async fn tokens_signed_with_the_real_key_but_wrong_claims_are_refused(app: &mut TestApp) {
    let issuer = issuer(app).await;
    let client = app.client(Environment::Live, "accounts:read").await;
    let (kid, key) = server_signing_key(app).await;
    let at_jwt = header(Algorithm::EdDSA, &kid, Some("at+jwt"));
    let good = || claims(app, &issuer, &client, now() + 3600);

    let mut wrong_aud = good();
    wrong_aud["aud"] = json!("another-api");
    assert_refused(app, &sign(&at_jwt, &wrong_aud, &key), "INVALID_TOKEN", "wrong aud").await;
    let mut wrong_iss = good();
    wrong_iss["iss"] = json!("https://evil.example");
    assert_refused(app, &sign(&at_jwt, &wrong_iss, &key), "INVALID_TOKEN", "wrong iss").await;
    let mut issued_later = good();
    issued_later["iat"] = json!(now() + 600);
    assert_refused(app, &sign(&at_jwt, &issued_later, &key), "INVALID_TOKEN", "iat in the future").await;
    let expired = claims(app, &issuer, &client, now() - 120);
    assert_refused(app, &sign(&at_jwt, &expired, &key), "EXPIRED_TOKEN", "expired 120 s ago").await;
    assert_refused(app, &sign(&header(Algorithm::EdDSA, &kid, None), &good(), &key), "INVALID_TOKEN", "no typ").await;
    let plain_jwt = header(Algorithm::EdDSA, &kid, Some("JWT"));
    assert_refused(app, &sign(&plain_jwt, &good(), &key), "INVALID_TOKEN", "typ JWT").await;
    let mut no_exp = good();
    no_exp.as_object_mut().expect("object").remove("exp");
    assert_refused(app, &sign(&at_jwt, &no_exp, &key), "INVALID_TOKEN", "no exp").await;
}

async fn signing_key_rotation_keeps_old_tokens_valid(app: &mut TestApp) {
    let client = app.client(Environment::Live, "accounts:read").await;
    // Not presented before the rotation, so the server cannot answer from its token cache.
    let before = app.token(&client, None).await;
    let kid_before = jsonwebtoken::decode_header(&before).expect("header").kid.expect("kid");
    let kid_rotated = app.service.rotate_signing_key().await.expect("rotation");
    assert_ne!(kid_rotated, kid_before);

    assert_accepted(app, &before, &client, "a token signed before the rotation").await;
    let after = app.token(&client, None).await;
    let kid_after = jsonwebtoken::decode_header(&after).expect("header").kid.expect("kid");
    assert_eq!(kid_after, kid_rotated, "new tokens are signed with the new key");
    assert_accepted(app, &after, &client, "a token signed after the rotation").await;

    let jwks = jwks(app).await;
    assert!(jwks.find(&kid_before).is_some(), "the retired key stays in the JWKS");
    assert!(jwks.find(&kid_after).is_some(), "the new key is in the JWKS");
    let (active, _) = server_signing_key(app).await;
    assert_eq!(active, kid_after);
}

both_backends!(
    alg_none_token_is_refused,
    hs256_signed_with_the_public_key_is_refused,
    token_signed_by_another_key_is_refused,
    tampered_payload_is_refused,
    tokens_signed_with_the_real_key_are_accepted,
    tokens_signed_with_the_real_key_but_wrong_claims_are_refused,
    signing_key_rotation_keeps_old_tokens_valid,
);
