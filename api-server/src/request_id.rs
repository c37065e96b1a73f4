//! Request ids: one per request, in `X-Request-Id` and in every envelope's `meta`.
//! Carried in a task-local so that any code answering the request can read it.

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// `req_` + 20 random base62 characters.
pub fn new_request_id() -> String {
    let mut id = String::with_capacity(24);
    id.push_str("req_");
    breadbox_auth::secret::push_random_base62(&mut id, 20);
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
