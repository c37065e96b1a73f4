//! The success envelope: `{"data": …, "meta": {"requestId": …}}`.

use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::Object;

use crate::request_id::{current_request_id, RequestId};

/// Metadata of every response.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The id of the request, as in the `X-Request-Id` header.
    pub request_id: RequestId,
}

impl Meta {
    pub fn now() -> Meta {
        Meta { request_id: current_request_id() }
    }
}

/// A single resource.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Single<T: ParseFromJSON + ToJSON> {
    pub data: T,
    pub meta: Meta,
}

impl<T: ParseFromJSON + ToJSON> Single<T> {
    pub fn new(data: T) -> Self {
        Single { data, meta: Meta::now() }
    }
}

/// A page of a list.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// The page size used.
    pub limit: u32,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A list of resources.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct List<T: ParseFromJSON + ToJSON> {
    pub data: Vec<T>,
    pub pagination: Pagination,
    pub meta: Meta,
}

impl<T: ParseFromJSON + ToJSON> List<T> {
    /// A complete, single-page list.
    pub fn complete(data: Vec<T>) -> Self {
        let limit = data.len() as u32;
        List { data, pagination: Pagination { limit, has_more: false, next_cursor: None }, meta: Meta::now() }
    }

    /// One page of a paginated list; another follows when there is a `next_cursor`.
    pub fn page(data: Vec<T>, limit: u32, next_cursor: Option<String>) -> Self {
        let has_more = next_cursor.is_some();
        List { data, pagination: Pagination { limit, has_more, next_cursor }, meta: Meta::now() }
    }
}
