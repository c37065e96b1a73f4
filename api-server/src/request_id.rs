//! Request ids: one per request, in `X-Request-Id` and in every envelope's `meta`.
//! Carried in a task-local so that any code answering the request can read it.

use rand::Rng;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// `req_` + 20 random base62 characters.
pub fn new_request_id() -> String {
    let mut rng = rand::thread_rng();
    base62_digits([rng.gen(), rng.gen()])
}

/// `req_` and ten base62 digits from each of `halves`, each digit the top of the
/// half's fraction times 62 (about 6 of its 64 bits each, 59.5 in all): one random
/// `u64` per ten digits instead of a bounded random draw per digit.
fn base62_digits(halves: [u64; 2]) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(24);
    id.push_str("req_");
    for mut fraction in halves {
        for _ in 0..10 {
            let product = u128::from(fraction) * 62;
            id.push(char::from(ALPHABET[(product >> 64) as usize]));
            fraction = product as u64;
        }
    }
    id
}

/// The id of the request being answered (empty outside a request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_the_fraction_in_base_62() {
        assert_eq!(base62_digits([0, 0]), format!("req_{}", "0".repeat(20)));
        // One half is 31/62 of the way: 'V' is digit 31, and nothing is left after it.
        assert_eq!(base62_digits([1 << 63, 0]), format!("req_V{}", "0".repeat(19)));
        assert_eq!(base62_digits([0, 1 << 63]), format!("req_{}V{}", "0".repeat(10), "0".repeat(9)));
        assert!(base62_digits([u64::MAX, u64::MAX]).starts_with("req_zzzzzzzz"));
    }

    #[test]
    fn ids_are_distinct_base62() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), 24);
            assert!(id.starts_with("req_"));
            assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
    }
}
