//! Credentials as they travel: static API keys, OAuth client secrets and ids. Every
//! secret type redacts itself in `Debug`/`Display` and is stored only as a hash.

use std::fmt;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::principal::Environment;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 32 random bytes in base62, left-padded: 62^43 > 2^256.
const KEY_BODY_LEN: usize = 43;
/// A CRC32 in base62, left-padded: 62^6 > 2^32.
const CHECKSUM_LEN: usize = 6;
const LIVE_PREFIX: &str = "msp_live_";
const TEST_PREFIX: &str = "msp_test_";
/// Characters of a key kept in clear to recognise it in lists (`msp_live_AbCd`).
const DISPLAY_PREFIX_LEN: usize = 13;

/// Encodes `bytes` (big-endian) in base62, left-padded with `0` to `width`.
fn base62(bytes: &[u8], width: usize) -> String {
    if bytes.len() <= 14 {
        return base62_short(bytes, width);
    }
    let mut digits = Vec::with_capacity(width);
    let mut number: Vec<u8> = bytes.to_vec();
    while number.iter().any(|b| *b != 0) {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        digits.push(BASE62[remainder as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("base62 alphabet is ASCII")
}

/// `base62` of at most 14 bytes (every id): the number as a `u128`, split once by
/// 62^10 into two `u64` halves (the high one below 2^53), whose digits then cost a
/// multiplication each instead of a long division over the bytes per digit.
fn base62_short(bytes: &[u8], width: usize) -> String {
    const POW10: u64 = 62u64.pow(10);
    debug_assert!(bytes.len() <= 14);
    let number = bytes.iter().fold(0u128, |n, &b| (n << 8) | u128::from(b));
    let (mut high, mut low) = ((number / u128::from(POW10)) as u64, (number % u128::from(POW10)) as u64);
    let mut digits = Vec::with_capacity(width.max(20));
    if high != 0 {
        // Below a non-zero high half, the low half is exactly 10 digits, zeros included.
        for _ in 0..10 {
            digits.push(BASE62[(low % 62) as usize]);
            low /= 62;
        }
        low = std::mem::take(&mut high);
    }
    while low != 0 {
        digits.push(BASE62[(low % 62) as usize]);
        low /= 62;
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("base62 alphabet is ASCII")
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn checksum(body: &str) -> String {
    String::from_utf8_lossy(&checksum_digits(body)).into_owned()
}

/// The key checksum's base62 digits, on the stack: checked on every request made with a
/// key (a CRC-32 is below 62^6, so six digits always hold it).
fn checksum_digits(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut crc = u64::from(crc32fast::hash(body.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    digits
}

/// Base62 digits that hold any `bytes` bytes (log62(256) ≈ 1.3435 per byte).
fn base62_width(bytes: usize) -> usize {
    (bytes * 8 * 1000).div_ceil(5954)
}

/// Random base62 text of `bytes` bytes of OS randomness (secrets).
pub fn random_base62(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    base62(&buf, base62_width(bytes))
}

/// A new opaque identifier such as `org_4kT…` (non-secret): the time in ms (48 bits)
/// then 64 random bits, in base62 (19 characters). Ids of one table then grow with
/// time, so its primary-key index is appended to rather than written at random places
/// (a bulk upsert inserts 500 devices and 500 events), and they still cannot be
/// guessed. Within one millisecond (or when the clock steps back) an id is the last
/// one plus a random step of 1 to 2^32, so the ids one process makes sort in the order
/// they were made: lists ordered by creation time, then id, keep the order of creates
/// that fall in the same millisecond. The random part comes from the thread's CSPRNG
/// (ChaCha, seeded and reseeded from the OS) rather than a system call per id, which
/// was 40 % of building a bulk upsert's events.
pub fn new_id(prefix: &str) -> String {
    /// The last id made, as `ms << 64 | random` (112 bits).
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let ms = (crate::db::now_ms().max(0) as u64) & ((1 << 48) - 1);
    let mut rng = rand::thread_rng();
    let fresh = (u128::from(ms) << 64) | u128::from(rng.next_u64());
    let value = {
        let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if fresh <= *last {
            *last += 1 + u128::from(rng.next_u32());
        } else {
            *last = fresh;
        }
        *last
    };
    let buf = &value.to_be_bytes()[2..];
    format!("{prefix}_{}", base62(buf, base62_width(buf.len())))
}

/// Appends `len` random base62 digits from the thread's CSPRNG (ChaCha, seeded from the
/// OS): one `u64` drawn per ten digits (`fraction_digits`) instead of a bounded draw per
/// digit, which request ids and token ids spent a few hundred instructions on.
pub fn push_random_base62(out: &mut String, len: usize) {
    let mut rng = rand::thread_rng();
    fraction_digits(|digit| out.push(char::from(digit)), std::iter::repeat_with(|| rng.next_u64()), len);
}

/// Fills `out` with random base62 digits, as `push_random_base62` appends them.
pub fn fill_random_base62(out: &mut [u8]) {
    let mut rng = rand::thread_rng();
    let mut next = out.iter_mut();
    let len = next.len();
    fraction_digits(
        |digit| {
            if let Some(slot) = next.next() {
                *slot = digit;
            }
        },
        std::iter::repeat_with(|| rng.next_u64()),
        len,
    );
}

/// Gives `len` base62 digits to `push`, ten from each number of `draws`: each digit is
/// the top of the number's fraction times 62 (about 6 of its 64 bits each, 59.5 for ten).
fn fraction_digits(mut push: impl FnMut(u8), draws: impl Iterator<Item = u64>, len: usize) {
    let mut left = len;
    for mut fraction in draws {
        if left == 0 {
            break;
        }
        for _ in 0..left.min(10) {
            let product = u128::from(fraction) * 62;
            push(BASE62[(product >> 64) as usize]);
            fraction = product as u64;
        }
        left -= left.min(10);
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(input: &[u8]) -> String {
    to_hex(&Sha256::digest(input))
}

/// Lower-case hex of `bytes`, two table lookups a byte: the `hex` crate's encoder goes
/// through an iterator of chars, about 1,800 instructions for a SHA-256 (in callgrind),
/// and every authenticated request hashes its key, every detail answer its ETag.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    write_hex(bytes, &mut out);
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// Writes the lower-case hex of `bytes` into `out`, two digits a byte, as far as `out`
/// holds them (for text held inline rather than in a `String`).
pub fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, &byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

/// Why a presented key was refused before any database work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key does not start with msp_live_ or msp_test_")]
    Prefix,
    #[error("the key has the wrong length or characters")]
    Shape,
    #[error("the key's checksum does not match")]
    Checksum,
}

/// A static API key in clear: exists only between generation and the one response
/// that shows it, and while a request that presented it is authenticated.
#[derive(Clone)]
pub struct ApiKeySecret {
    value: String,
    env: Environment,
}

impl ApiKeySecret {
    pub fn generate(env: Environment) -> Self {
        let prefix = match env {
            Environment::Live => LIVE_PREFIX,
            Environment::Test => TEST_PREFIX,
        };
        let mut body = String::with_capacity(prefix.len() + KEY_BODY_LEN + CHECKSUM_LEN);
        body.push_str(prefix);
        body.push_str(&random_base62(32));
        let sum = checksum(&body);
        body.push_str(&sum);
        ApiKeySecret { value: body, env }
    }

    /// Checks prefix, shape and checksum — offline, no database.
    pub fn parse(candidate: &str) -> Result<Self, KeyFormatError> {
        let env = Self::check(candidate)?;
        Ok(ApiKeySecret { value: candidate.to_owned(), env })
    }

    /// `parse` without keeping a copy of the key: its environment, or why it is not one
    /// of ours.
    pub fn check(candidate: &str) -> Result<Environment, KeyFormatError> {
        let env = if candidate.starts_with(LIVE_PREFIX) {
            Environment::Live
        } else if candidate.starts_with(TEST_PREFIX) {
            Environment::Test
        } else {
            return Err(KeyFormatError::Prefix);
        };
        if candidate.len() != LIVE_PREFIX.len() + KEY_BODY_LEN + CHECKSUM_LEN
            || !is_base62(&candidate[LIVE_PREFIX.len()..])
        {
            return Err(KeyFormatError::Shape);
        }
        let (body, sum) = candidate.split_at(candidate.len() - CHECKSUM_LEN);
        if !bool::from(checksum_digits(body).ct_eq(sum.as_bytes())) {
            return Err(KeyFormatError::Checksum);
        }
        Ok(env)
    }

    /// The SHA-256 of a presented key, as bytes: what `hash` writes in hex.
    pub fn digest(presented: &str) -> [u8; 32] {
        Sha256::digest(presented.as_bytes()).into()
    }

    /// Whether a bearer token looks like one of our keys rather than a JWT.
    pub fn looks_like_key(candidate: &str) -> bool {
        candidate.starts_with("msp_")
    }

    pub fn env(&self) -> Environment {
        self.env
    }

    /// The SHA-256 under which the key is stored and looked up.
    pub fn hash(&self) -> String {
        to_hex(&Self::digest(&self.value))
    }

    /// The non-secret head kept to recognise the key in lists.
    pub fn display_prefix(&self) -> String {
        self.value[..DISPLAY_PREFIX_LEN].to_owned()
    }

    /// The key in clear, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…[redacted])", &self.value[..DISPLAY_PREFIX_LEN])
    }
}

impl fmt::Display for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An OAuth client secret (or a webhook signing secret) in clear.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn generate() -> Self {
        ClientSecret(format!("mcs_{}", random_base62(32)))
    }

    pub fn from_presented(value: String) -> Self {
        ClientSecret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the presented secret: the key of the verified-secret cache.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// An argon2id PHC string with a fresh salt.
    pub fn hash_argon2(&self) -> String {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .expect("argon2 with default parameters cannot fail")
            .to_string()
    }

    /// Verifies against a stored PHC string; a malformed hash verifies nothing.
    pub fn verify_argon2(&self, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => Argon2::default().verify_password(self.0.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// Constant-time equality of two digests.
pub fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_the_fraction_in_base_62() {
        let digits = |draws: [u64; 2]| {
            let mut id = String::from("req_");
            fraction_digits(|digit| id.push(char::from(digit)), draws.into_iter(), 20);
            id
        };
        assert_eq!(digits([0, 0]), format!("req_{}", "0".repeat(20)));
        // One half is 31/62 of the way: 'V' is digit 31, and nothing is left after it.
        assert_eq!(digits([1 << 63, 0]), format!("req_V{}", "0".repeat(19)));
        assert_eq!(digits([0, 1 << 63]), format!("req_{}V{}", "0".repeat(10), "0".repeat(9)));
        assert!(digits([u64::MAX, u64::MAX]).starts_with("req_zzzzzzzz"));
        // A length that is not a multiple of ten takes the first digits of the last draw.
        let mut short = String::new();
        fraction_digits(|digit| short.push(char::from(digit)), [0, 1 << 63, 0].into_iter(), 12);
        assert_eq!(short, format!("{}V0", "0".repeat(10)));
        let mut random = String::new();
        push_random_base62(&mut random, 22);
        assert_eq!(random.len(), 22);
        assert!(random.bytes().all(|b| b.is_ascii_alphanumeric()), "{random}");
        let mut filled = [0u8; 22];
        fill_random_base62(&mut filled);
        assert!(filled.iter().all(u8::is_ascii_alphanumeric), "{filled:?}");
        assert_ne!(filled, [b'0'; 22], "random digits");
    }

    #[test]
    fn checksum_digits_are_the_base62_of_the_crc() {
        for body in ["", "msp_live_", "msp_test_0123456789abcdefghijABCDEFGHIJ0123456789ab"] {
            let crc = crc32fast::hash(body.as_bytes()).to_be_bytes();
            assert_eq!(checksum(body), base62(&crc, CHECKSUM_LEN), "{body}");
        }
        assert_eq!(base62(&u32::MAX.to_be_bytes(), CHECKSUM_LEN).len(), CHECKSUM_LEN, "six digits hold every CRC-32");
    }

    #[test]
    fn hex_is_the_hex_crates() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        assert_eq!(to_hex(&bytes), hex::encode(&bytes));
        assert_eq!(to_hex(&[]), "");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    /// The fast encoder of up to 14 bytes agrees with the long division on every length.
    #[test]
    fn short_base62_agrees_with_the_long_division() {
        fn long(bytes: &[u8], width: usize) -> String {
            let mut padded = vec![0u8; 15 - bytes.len()];
            padded.extend_from_slice(bytes);
            base62(&padded, width)
        }
        let mut seed: u64 = 7;
        for len in 0..=14 {
            for round in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|i| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        match round {
                            0 => 0,
                            1 => 0xff,
                            2 if i == 0 => 1,
                            2 => 0,
                            _ => (seed >> 56) as u8,
                        }
                    })
                    .collect();
                let width = base62_width(len);
                assert_eq!(base62_short(&bytes, width), long(&bytes, width), "{bytes:?}");
            }
        }
    }

    #[test]
    fn ids_carry_their_prefix_are_distinct_and_grow_with_time() {
        let first = new_id("evt");
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id("evt")).collect();
        assert_eq!(ids.len(), 10_000, "no repeats");
        let made: Vec<String> = (0..10_000).map(|_| new_id("evt")).collect();
        assert!(made.windows(2).all(|w| w[0] < w[1]), "ids sort in the order they were made, also within a millisecond");
        for id in ids.iter().take(100) {
            let body = id.strip_prefix("evt_").expect("prefix");
            assert_eq!(body.len(), 19, "{id}");
            assert!(is_base62(body), "{id}");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = new_id("evt");
        assert!(later > first, "{later} sorts after {first}");
        assert!(ids.iter().all(|id| *id < later), "every id made earlier sorts before {later}");
    }

    #[test]
    fn generated_keys_parse_and_carry_their_environment() {
        for env in [Environment::Live, Environment::Test] {
            let key = ApiKeySecret::generate(env);
            assert_eq!(key.expose().len(), 58);
            let parsed = ApiKeySecret::parse(key.expose()).unwrap();
            assert_eq!(parsed.env(), env);
            assert_eq!(parsed.hash(), key.hash());
            assert_eq!(ApiKeySecret::check(key.expose()), Ok(env));
            assert_eq!(to_hex(&ApiKeySecret::digest(key.expose())), key.hash(), "the cache's digest is the stored hash");
        }
    }

    #[test]
    fn a_mistyped_key_fails_its_checksum() {
        let key = ApiKeySecret::generate(Environment::Live).expose().to_owned();
        let mut bytes = key.into_bytes();
        bytes[20] = if bytes[20] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(bytes).unwrap();
        assert_eq!(ApiKeySecret::parse(&typo).unwrap_err(), KeyFormatError::Checksum);
        assert_eq!(ApiKeySecret::parse("bb_123").unwrap_err(), KeyFormatError::Prefix);
        assert_eq!(ApiKeySecret::parse("msp_live_short").unwrap_err(), KeyFormatError::Shape);
    }

    #[test]
    fn secrets_never_print_in_clear() {
        let key = ApiKeySecret::generate(Environment::Test);
        assert!(!format!("{key:?} {key}").contains(&key.expose()[20..]));
        let secret = ClientSecret::generate();
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }

    #[test]
    fn argon2_verifies_only_the_right_secret() {
        let secret = ClientSecret::generate();
        let phc = secret.hash_argon2();
        assert!(phc.starts_with("$argon2id$"));
        assert!(secret.verify_argon2(&phc));
        assert!(!ClientSecret::from_presented("nope".into()).verify_argon2(&phc));
        assert!(!secret.verify_argon2("not a hash"));
    }

    #[test]
    fn base62_is_fixed_width() {
        assert_eq!(base62(&[0, 0], 4), "0000");
        assert_eq!(base62(&[0, 61], 2), "0z");
        assert_eq!(base62(&[0xff; 32], KEY_BODY_LEN).len(), KEY_BODY_LEN);
    }
}
