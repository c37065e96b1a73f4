//! The endpoint class of an operation, decided in one place from its method and path
//! shape. The API server also writes it into the OpenAPI document
//! (`x-rate-limit-class`), so the spec and the limiter cannot disagree.

use std::fmt;

/// Endpoint classes of seed 001, each with its own per-credential bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// The token, introspection and revocation endpoints.
    Auth,
    /// GET on a collection.
    List,
    /// GET on one record (or a singleton such as `/me`).
    Detail,
    /// POST, PUT, PATCH, DELETE.
    Write,
    /// Reports: GET `/mrr`, GET `/reconciliation…`.
    Report,
    /// Batch operations: `…/bulk`.
    Bulk,
}

impl Class {
    pub const ALL: [Class; 6] = [Class::Auth, Class::List, Class::Detail, Class::Write, Class::Report, Class::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Auth => "auth",
            Class::List => "list",
            Class::Detail => "detail",
            Class::Write => "write",
            Class::Report => "report",
            Class::Bulk => "bulk",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// API paths answered by one resource rather than a collection.
const SINGLETONS: &[&str] = &["me", "admin/organization"];
/// Top-level resources whose reads are reports.
const REPORTS: &[&str] = &["mrr", "reconciliation"];

/// The class of `method path`, where `path` is a route template (`/accounts/{id}` or
/// poem's `/accounts/:id`). `None` outside the API (health, metrics, docs, the spec).
/// Run on every limited request, so it reads bytes: `str`'s pattern searchers took
/// 330 instructions a call.
pub fn class_of(method: &str, path: &str) -> Option<Class> {
    let bytes = path.as_bytes();
    let end = bytes.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    // `end` is the length or the index of a `/`: a char boundary either way.
    let rest = path[..end].strip_prefix("/api/v1/")?;
    if rest == "openapi.json" {
        return None;
    }
    if matches!(rest, "auth/token" | "auth/introspect" | "auth/revoke") {
        return Some(Class::Auth);
    }
    let rest_bytes = rest.as_bytes();
    let last = match rest_bytes.iter().rposition(|&b| b == b'/') {
        Some(slash) => &rest_bytes[slash + 1..],
        None => rest_bytes,
    };
    if last == b"bulk" {
        return Some(Class::Bulk);
    }
    let reads = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    if !reads {
        return Some(Class::Write);
    }
    let first = match rest_bytes.iter().position(|&b| b == b'/') {
        Some(slash) => &rest_bytes[..slash],
        None => rest_bytes,
    };
    if REPORTS.iter().any(|r| r.as_bytes() == first) {
        return Some(Class::Report);
    }
    let is_param = matches!(last.first(), Some(b'{' | b':'));
    Some(if is_param || SINGLETONS.contains(&rest) { Class::Detail } else { Class::List })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_path_shape() {
        let cases = [
            ("POST", "/api/v1/auth/token", Some(Class::Auth)),
            ("POST", "/api/v1/auth/introspect", Some(Class::Auth)),
            ("POST", "/api/v1/auth/revoke", Some(Class::Auth)),
            ("GET", "/api/v1/accounts", Some(Class::List)),
            ("GET", "/api/v1/accounts/{id}", Some(Class::Detail)),
            ("GET", "/api/v1/accounts/:id", Some(Class::Detail)),
            ("HEAD", "/api/v1/accounts/:id", Some(Class::Detail)),
            ("POST", "/api/v1/accounts", Some(Class::Write)),
            ("PATCH", "/api/v1/accounts/{id}", Some(Class::Write)),
            ("DELETE", "/api/v1/accounts/{id}", Some(Class::Write)),
            ("POST", "/api/v1/devices/bulk", Some(Class::Bulk)),
            ("GET", "/api/v1/mrr", Some(Class::Report)),
            ("GET", "/api/v1/reconciliation", Some(Class::Report)),
            ("GET", "/api/v1/reconciliation/{id}", Some(Class::Report)),
            ("POST", "/api/v1/reconciliation", Some(Class::Write)),
            ("GET", "/api/v1/health-scores/{accountId}", Some(Class::Detail)),
            ("POST", "/api/v1/health-scores/{accountId}/signals", Some(Class::Write)),
            ("GET", "/api/v1/me", Some(Class::Detail)),
            ("GET", "/api/v1/admin/organization", Some(Class::Detail)),
            ("GET", "/api/v1/admin/api-keys", Some(Class::List)),
            ("GET", "/api/v1/admin/api-keys/{id}", Some(Class::Detail)),
            ("POST", "/api/v1/admin/api-keys/{id}/revoke", Some(Class::Write)),
            ("GET", "/api/v1/openapi.json", None),
            ("GET", "/api/v1/accounts/", Some(Class::List)),
            ("GET", "/api/v1/me//", Some(Class::Detail)),
            ("GET", "/api/v1/mrr/", Some(Class::Report)),
            ("POST", "/api/v1/devices/bulk/", Some(Class::Bulk)),
            ("GET", "/api/v1/", None),
            ("GET", "/api/v1", None),
            ("GET", "/", None),
            ("GET", "", None),
            ("get", "/api/v1/accounts", Some(Class::List)),
            ("GET", "/healthz", None),
            ("GET", "/.well-known/jwks.json", None),
        ];
        for (method, path, class) in cases {
            assert_eq!(class_of(method, path), class, "{method} {path}");
        }
    }
}
