//! Request ids: one per request, in `X-Request-Id` and in every envelope's `meta`.
//! Carried in a task-local so that any code answering the request can read it.


use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON};
use serde_json::Value;

use crate::inline::InlineStr;

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

pub const HEADER: &str = "x-request-id";

/// Characters of an id: `req_` and 20 base62 digits.
const LEN: usize = 24;

/// A request id, held inline: it is copied into the task-local, the envelope's `meta`
/// and the audit entry of every request, where a `String` was an allocation each.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestId(InlineStr<LEN>);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// An id read back from text (`None` unless ASCII of at most 24 bytes).
    pub fn parse(text: &str) -> Option<RequestId> {
        InlineStr::ascii(text.as_bytes()).map(RequestId)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// In the spec, a string.
type_documented_as!(RequestId, String);

impl ParseFromJSON for RequestId {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => RequestId::parse(&text).ok_or_else(|| ParseError::custom("not a request id")),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for RequestId {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.as_str().to_owned()))
    }
}

/// `req_` + 20 random base62 characters.
pub fn new_request_id() -> RequestId {
    let mut bytes = [0u8; LEN];
    bytes[..4].copy_from_slice(b"req_");
    breadbox_auth::secret::fill_random_base62(&mut bytes[4..]);
    RequestId(InlineStr::ascii(&bytes).unwrap_or_default())
}

/// The id of the request being answered (empty outside a request).
pub fn current_request_id() -> RequestId {
    REQUEST_ID.try_with(|id| *id).unwrap_or_default()
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: RequestId, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_base62() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_request_id().to_string()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), 24);
            assert!(id.starts_with("req_"));
            assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
    }

    #[test]
    fn an_id_reads_back_as_written_and_refuses_what_it_cannot_hold() {
        let id = new_request_id();
        assert_eq!(RequestId::parse(id.as_str()), Some(id));
        assert_eq!(serde_json::to_string(&id).ok(), Some(format!("\"{id}\"")));
        assert_eq!(id.to_json(), Some(Value::String(id.to_string())));
        assert_eq!(RequestId::parse_from_json(Some(Value::String(id.to_string()))).ok(), Some(id));
        assert_eq!(RequestId::parse("req_short").map(|id| id.to_string()), Some("req_short".to_owned()));
        assert!(RequestId::parse("req_aaaaaaaaaaaaaaaaaaaaaaaaa").is_none(), "25 bytes");
        assert!(RequestId::parse("req_é").is_none());
        assert!(RequestId::parse_from_json(Some(Value::from(3))).is_err());
        assert_eq!(current_request_id().as_str(), "", "outside a request");
    }

    #[tokio::test]
    async fn the_scope_holds_the_id() {
        let id = new_request_id();
        assert_eq!(scope(id, async { current_request_id() }).await, id);
    }
}
