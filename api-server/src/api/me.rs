//! `GET /api/v1/me`: who the caller is.

use std::cell::RefCell;
use std::collections::HashMap;

use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON};
use poem_openapi::{Object, OpenApi};
use serde_json::value::RawValue;

use breadbox_auth::{Principal, ScopeSet};

use super::security::{AnyScope, Auth};
use super::wire::Body;
use super::ApiTags;
use crate::envelope::Single;
use crate::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The organization every request of this credential acts in.
    pub org_id: String,
    /// `live` or `test`: the partition of data this credential sees.
    pub environment: String,
    /// The scopes granted to the credential.
    pub scopes: ScopeList,
    /// Every scope the credential may act with, implications applied.
    pub effective_scopes: ScopeList,
    /// The API key id (`key_…`) or OAuth client id (`cli_…`).
    pub credential_id: String,
    /// `api_key` or `oauth_client`.
    pub credential_kind: String,
    /// The access token's `jti`, when a JWT was presented.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

impl From<&Principal> for Me {
    fn from(p: &Principal) -> Self {
        Me {
            org_id: p.org_id.clone(),
            environment: p.env.as_str().to_owned(),
            scopes: ScopeList(p.scopes),
            effective_scopes: ScopeList(p.scopes.effective()),
            credential_id: p.credential_id.clone(),
            credential_kind: p.kind.as_str().to_owned(),
            token_id: p.token_id.clone(),
        }
    }
}

/// A set of scopes on the wire: an array of their names, documented as `Vec<String>`,
/// written from the set's static names (a full-access key's two lists were 44 strings
/// allocated per `/me`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeList(pub ScopeSet);

type_documented_as!(ScopeList, Vec<String>);

impl ParseFromJSON for ScopeList {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        let names = Vec::<String>::parse_from_json(value).map_err(ParseError::propagate)?;
        ScopeSet::parse(&names.join(" ")).map(ScopeList).map_err(|err| ParseError::custom(err.to_string()))
    }
}

impl ToJSON for ScopeList {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(self.0.iter().map(|scope| serde_json::Value::from(scope.as_str())).collect())
    }
}

/// Distinct scope sets whose JSON each thread keeps (there are as many sets as
/// credentials at most, and in practice a handful of presets).
const CACHED_SETS: usize = 1024;

thread_local! {
    /// The JSON array of each scope set this thread has written.
    static SCOPE_JSON: RefCell<HashMap<u32, Box<RawValue>>> = RefCell::new(HashMap::new());
}

/// The JSON array of the names in `set`. Scope names are ASCII letters, `:` and `_`:
/// nothing to escape.
fn scope_json(set: ScopeSet) -> Box<RawValue> {
    let mut json = String::with_capacity(2 + set.iter().map(|s| s.as_str().len() + 3).sum::<usize>());
    json.push('[');
    for (i, scope) in set.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push('"');
        json.push_str(scope.as_str());
        json.push('"');
    }
    json.push(']');
    RawValue::from_string(json).expect("an array of scope names is JSON")
}

/// Written from the set's JSON, made once per thread and set: serde_json checking each
/// byte of 44 names for escapes was a fifth of the instructions of a full-access `/me`.
impl serde::Serialize for ScopeList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SCOPE_JSON.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(json) = cache.get(&self.0.bits()) {
                return json.serialize(serializer);
            }
            let json = scope_json(self.0);
            let written = json.serialize(serializer);
            if cache.len() < CACHED_SETS {
                cache.insert(self.0.bits(), json);
            }
            written
        })
    }
}

pub struct MeApi;

#[OpenApi(prefix_path = "/api/v1")]
impl MeApi {
    /// Who am I
    ///
    /// The organization, environment, scopes and credential of the caller. Any valid
    /// credential may call it; useful to check a key or token.
    #[oai(path = "/me", method = "get", operation_id = "get_me", tag = "ApiTags::Identity")]
    async fn get_me(&self, auth: Auth<AnyScope>) -> Result<Body<Single<Me>>, ApiError> {
        Ok(Body(Single::new(Me::from(&*auth.principal))))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::Type;

    use super::*;

    #[test]
    fn a_scope_list_is_written_as_the_names_of_its_set_and_read_back() {
        let set = ScopeSet::read_only();
        let list = ScopeList(set);
        let names = serde_json::to_value(list).expect("serializes");
        assert_eq!(names, serde_json::json!(set.to_vec()));
        assert_eq!(list.to_json(), Some(names.clone()));
        assert_eq!(ScopeList::parse_from_json(Some(names)).ok(), Some(list));
        assert!(ScopeList::parse_from_json(Some(serde_json::json!(["accounts:read", "nope:read"]))).is_err());
        assert!(ScopeList::parse_from_json(Some(serde_json::json!("accounts:read"))).is_err());
        assert_eq!(<ScopeList as Type>::schema_ref(), <Vec<String> as Type>::schema_ref());
    }

    #[test]
    fn cached_scope_json_is_the_names_array() {
        for set in [ScopeSet::empty(), ScopeSet::read_only(), ScopeSet::full_access(), ScopeSet::all(), ScopeSet::all().effective()] {
            // The second time comes from the cache.
            for _ in 0..2 {
                let bytes = serde_json::to_vec(&ScopeList(set)).expect("serializes");
                let names: Vec<String> = serde_json::from_slice(&bytes).expect("JSON");
                assert_eq!(names, set.to_vec());
                assert_eq!(bytes, serde_json::to_vec(&set.to_vec()).expect("serializes"));
            }
        }
        for scope in breadbox_auth::Scope::ALL {
            assert!(scope.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b':' || b == b'_'), "{}", scope.as_str());
        }
    }
}
