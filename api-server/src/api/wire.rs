//! Wire pieces every resource shares: enumerations parsed by the domain (so a wrong value
//! is reported with every other failing field), PATCH fields, `ETag`/`If-Match`, and the
//! responses that carry them.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use poem::http::{header, HeaderMap, HeaderValue};
use poem::{IntoResponse, Response};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaParamIn, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{MaybeUndefined, ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::domain::{Patch, Precondition};
use crate::envelope::{Meta, Single};
use crate::error::ApiError;

/// A string documented as the enumeration `E`. Any string parses; the domain checks
/// the value along with the rest of the body.
pub struct EnumText<E> {
    pub text: String,
    _schema: PhantomData<fn() -> E>,
}

impl<E> EnumText<E> {
    pub fn into_string(self) -> String {
        self.text
    }
}

impl<E> std::fmt::Debug for EnumText<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.text.fmt(f)
    }
}

impl<E> From<&str> for EnumText<E> {
    fn from(text: &str) -> Self {
        EnumText { text: text.to_owned(), _schema: PhantomData }
    }
}

self_raw_type!([E: Type] EnumText<E>, like E, schema E::schema_ref());

impl<E: Type> ParseFromJSON for EnumText<E> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(EnumText { text, _schema: PhantomData }),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<E: Type> ToJSON for EnumText<E> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.text.clone()))
    }
}

impl<E> Serialize for EnumText<E> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// A field the schema marks required whose absence (or `null`) the domain reports,
/// along with every other failing field, instead of the parser stopping at it.
#[derive(Debug)]
pub struct Required<T>(pub Option<T>);

impl<T: Type> Type for Required<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(value) => value.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Required<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Ok(Required(None)),
            Some(value) => T::parse_from_json(Some(value)).map(|v| Required(Some(v))).map_err(ParseError::propagate),
        }
    }
}

impl<T: ToJSON> ToJSON for Required<T> {
    fn to_json(&self) -> Option<Value> {
        self.0.as_ref().and_then(ToJSON::to_json)
    }
}

/// An element of a batch read on its own: a malformed one keeps its parse error and
/// raw value instead of failing the whole body, so that a batch operation can report
/// it per item. Documented as `T`.
#[derive(Debug)]
pub struct Lenient<T> {
    pub parsed: Result<T, String>,
    pub raw: Value,
}

impl<T: Type> Type for Lenient<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.parsed.as_ref().ok().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.parsed {
            Ok(value) => value.raw_element_iter(),
            Err(_) => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Lenient<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let raw = value.clone().unwrap_or_default();
        Ok(Lenient { parsed: T::parse_from_json(value).map_err(ParseError::into_message), raw })
    }
}

impl<T: ToJSON> ToJSON for Lenient<T> {
    fn to_json(&self) -> Option<Value> {
        match &self.parsed {
            Ok(value) => value.to_json(),
            Err(_) => Some(self.raw.clone()),
        }
    }
}

/// A PATCH field: absent keeps, `null` clears, a value sets.
pub fn patch<T, U>(field: MaybeUndefined<T>, f: impl FnOnce(T) -> U) -> Patch<U> {
    match field {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(value) => Patch::Set(f(value)),
    }
}

/// A field of a create body: given or not.
pub fn given<T, U>(field: Option<T>, f: impl FnOnce(T) -> U) -> Patch<U> {
    Patch::from_option(field.map(f))
}

/// The `ETag` header value of a version tag.
pub fn etag_header(tag: &str) -> String {
    let mut header = String::with_capacity(tag.len() + 2);
    header.push('"');
    header.push_str(tag);
    header.push('"');
    header
}

/// A header that is a list (RFC 9110 §5.3) — `If-Match`, `If-None-Match` — read as
/// sent: every line of it, joined with `, ` as one list, and bytes past ASCII (the
/// obs-text an entity tag may hold, §8.8.3) kept as the Latin-1 characters they are.
/// poem-openapi's `Header<Option<String>>` reads only the first line and drops one that
/// is not UTF-8 as if it were absent, which turned `If-Match: "\xff"` into no condition
/// at all. Documented as the optional string header it is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListHeader(pub Option<String>);

impl ListHeader {
    /// The header `name` of `headers`, or `None` when no line carries it.
    pub fn read(headers: &HeaderMap, name: &str) -> ListHeader {
        let mut joined: Option<String> = None;
        for line in headers.get_all(name) {
            let list = joined.get_or_insert_with(String::new);
            if !list.is_empty() {
                list.push_str(", ");
            }
            list.extend(line.as_bytes().iter().map(|&byte| char::from(byte)));
        }
        ListHeader(joined)
    }
}

impl<'a> ApiExtractor<'a> for ListHeader {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    const PARAM_IS_REQUIRED: bool = false;

    type ParamType = Option<String>;
    type ParamRawType = String;

    fn register(registry: &mut Registry) {
        <Option<String> as Type>::register(registry);
    }

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Header)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(<Option<String> as Type>::schema_ref())
    }

    fn param_raw_type(&self) -> Option<&String> {
        self.0.as_ref()
    }

    async fn from_request(
        request: &'a poem::Request,
        _body: &mut poem::RequestBody,
        param_opts: ExtractParamOptions<Option<String>>,
    ) -> poem::Result<Self> {
        Ok(ListHeader::read(request.headers(), param_opts.name))
    }
}

/// Parses `If-Match` (RFC 9110 §13.1.1): `*` or a list of entity tags. Comparison is
/// strong, so weak tags (`W/"…"`) never match.
pub fn precondition(if_match: Option<&str>) -> Result<Precondition, ApiError> {
    let Some(value) = if_match else {
        return Ok(Precondition::None);
    };
    match entity_tags("If-Match", value)? {
        None => Ok(Precondition::Exists),
        Some(tags) => Ok(Precondition::OneOf(tags.into_iter().filter(|(weak, _)| !weak).map(|(_, tag)| tag.to_owned()).collect())),
    }
}

/// `*` (`None`), or each entity tag of a list (RFC 9110 §8.8.3) as whether it is weak
/// and its text without quotes; a 400 naming `header` when the value is neither.
fn entity_tags<'a>(header: &str, value: &'a str) -> Result<Option<Vec<(bool, &'a str)>>, ApiError> {
    let value = value.trim();
    if value == "*" {
        return Ok(None);
    }
    let malformed = || ApiError::bad_request(format!("{header} must be * or a list of quoted entity tags such as \"3f2a…\""));
    let mut tags = Vec::new();
    // Empty list elements are ignored (RFC 9110 §5.6.1.2); a value of none is malformed.
    // (`str::is_empty` by name: poem-openapi's `Type::is_empty` would answer for `&&str`.)
    for tag in value.split(',').map(str::trim).filter(|tag| !str::is_empty(tag)) {
        let (weak, quoted) = match tag.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let inner = quoted
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|t| !t.contains('"'))
            .ok_or_else(malformed)?;
        tags.push((weak, inner));
    }
    if tags.is_empty() {
        return Err(malformed());
    }
    Ok(Some(tags))
}

/// `If-None-Match` of a GET (RFC 9110 §13.1.2): the versions the client holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum NoneMatch {
    /// No `If-None-Match`: always the resource.
    #[default]
    Absent,
    /// `*`: any current version.
    Any,
    /// These entity tags (without quotes and `W/`: the comparison is weak).
    OneOf(Vec<String>),
}

impl NoneMatch {
    /// Parses the header; a 400 when it is neither `*` nor a list of entity tags.
    pub fn parse(if_none_match: Option<&str>) -> Result<NoneMatch, ApiError> {
        let Some(value) = if_none_match else {
            return Ok(NoneMatch::Absent);
        };
        match entity_tags("If-None-Match", value)? {
            None => Ok(NoneMatch::Any),
            Some(tags) => Ok(NoneMatch::OneOf(tags.into_iter().map(|(_, tag)| tag.to_owned()).collect())),
        }
    }

    /// Whether the client already holds the version `etag` (an `ETag` header value).
    fn holds(&self, etag: &str) -> bool {
        let current = etag.strip_prefix("W/").unwrap_or(etag).trim_matches('"');
        match self {
            NoneMatch::Absent => false,
            NoneMatch::Any => true,
            NoneMatch::OneOf(tags) => tags.iter().any(|tag| tag == current),
        }
    }
}

/// A resource read by GET, or word that the client's copy is current.
#[derive(ApiResponse)]
pub enum Fetched<T: ParseFromJSON + ToJSON + Serialize> {
    /// The resource. `ETag` names this version: send it in `If-None-Match` to be told
    /// (304) while it is current, in `If-Match` to update only this version.
    #[oai(status = 200)]
    Ok(Written<T>, #[oai(header = "ETag")] String),
    /// Not modified: `If-None-Match` named the current version, whose `ETag` this is.
    /// No body.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String),
}

impl<T: ParseFromJSON + ToJSON + Serialize> Fetched<T> {
    /// The answer to a GET of a resource written as `json`, at the version `etag` (an
    /// `ETag` header value), for a client holding `held`.
    pub fn of(json: Arc<RawValue>, etag: String, held: &NoneMatch) -> Self {
        if held.holds(&etag) {
            Fetched::NotModified(etag)
        } else {
            Fetched::Ok(Written::new(json), etag)
        }
    }
}

/// A resource's answer, `{"data": …, "meta": …}`, whose `data` was written to JSON
/// beforehand (`memo`: perhaps for an earlier request), documented as `Single<T>`.
pub struct Written<T> {
    data: Arc<RawValue>,
    _schema: PhantomData<fn() -> T>,
}

impl<T> Written<T> {
    pub fn new(data: Arc<RawValue>) -> Self {
        Written { data, _schema: PhantomData }
    }
}

impl<T: ParseFromJSON + ToJSON> Payload for Written<T> {
    const CONTENT_TYPE: &'static str = <Body<Single<T>> as Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <Body<Single<T>> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        <Single<T> as Type>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <Single<T> as Type>::register(registry);
    }
}

impl<T> IntoResponse for Written<T> {
    fn into_response(self) -> Response {
        /// `Single`'s fields, with `data` as written.
        #[derive(Serialize)]
        struct Envelope<'a> {
            data: &'a RawValue,
            meta: Meta,
        }
        let mut json = Vec::with_capacity(BODY_CAPACITY);
        match serde_json::to_writer(&mut json, &Envelope { data: &self.data, meta: Meta::now() }) {
            Ok(()) => json_response(json),
            // `internal` logs the cause.
            Err(err) => ApiError::internal(&err).into_response(),
        }
    }
}

/// Room for a resource answer's headers.
const RESPONSE_HEADERS: usize = 12;

/// A JSON response body written by serde, documented as poem-openapi's `Json<T>`.
/// `Json` first builds a `serde_json::Value` tree (a map per object, an owned string
/// per key and value), which was a third of the time a page of 100 accounts took.
/// `T`'s `Serialize` must write what its `ToJSON` writes: debug builds (every test)
/// compare the two on each response they send.
#[derive(Debug)]
pub struct Body<T>(pub T);

/// The first size of a response body's buffer.
const BODY_CAPACITY: usize = 1024;

/// The content type of every JSON answer.
const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

impl<T: Type> Payload for Body<T> {
    const CONTENT_TYPE: &'static str = JSON_CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <Json<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ToJSON + Serialize> IntoResponse for Body<T> {
    fn into_response(self) -> Response {
        // `to_vec` starts at 128 bytes and doubles: a one-record answer (400–800 bytes)
        // was three reallocations, each copying what was written so far.
        let mut json = Vec::with_capacity(BODY_CAPACITY);
        match serde_json::to_writer(&mut json, &self.0) {
            Ok(()) => {
                #[cfg(debug_assertions)]
                same_as_to_json(&self.0, &json);
                json_response(json)
            }
            // `internal` logs the cause.
            Err(err) => ApiError::internal(&err).into_response(),
        }
    }
}

/// A 200 whose body is `json`.
fn json_response(json: Vec<u8>) -> Response {
    let mut response = Response::builder().body(json);
    // Sized once for the headers every answer gets (content type, `ETag`, request id,
    // five rate-limit fields) rather than grown on the way.
    let mut headers = HeaderMap::with_capacity(RESPONSE_HEADERS);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    *response.headers_mut() = headers;
    response
}

/// Panics when serde wrote something else than `ToJSON` would have (debug builds).
#[cfg(debug_assertions)]
pub(crate) fn same_as_to_json<T: ToJSON>(value: &T, json: &[u8]) {
    let written: Option<Value> = serde_json::from_slice(json).ok();
    let expected = value.to_json();
    assert!(written == expected, "serde wrote {written:?}, ToJSON gives {expected:?}");
}

impl<T: ToJSON + Serialize> ApiResponse for Body<T> {
    fn meta() -> MetaResponses {
        <Json<T> as ApiResponse>::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// A resource with the `ETag` of its current version.
#[derive(ApiResponse)]
pub enum Tagged<T: ParseFromJSON + ToJSON + Serialize> {
    /// The resource. `ETag` names this version; send it in `If-Match` to update only
    /// this version.
    #[oai(status = 200)]
    Ok(Body<Single<T>>, #[oai(header = "ETag")] String),
}

impl<T: ParseFromJSON + ToJSON + Serialize> Tagged<T> {
    pub fn new(data: T, tag: &str) -> Self {
        Tagged::Ok(Body(Single::new(data)), etag_header(tag))
    }
}

/// A resource just created.
#[derive(ApiResponse)]
pub enum Created<T: ParseFromJSON + ToJSON + Serialize> {
    /// Created. `Location` is its URL; `ETag` names this version.
    #[oai(status = 201)]
    Created(Body<Single<T>>, #[oai(header = "Location")] String, #[oai(header = "ETag")] String),
}

impl<T: ParseFromJSON + ToJSON + Serialize> Created<T> {
    pub fn new(data: T, location: String, tag: &str) -> Self {
        Created::Created(Body(Single::new(data)), location, etag_header(tag))
    }
}

/// `value` as JSON exactly as the API writes it: the `data` of webhook events.
pub fn to_wire<T: poem_openapi::types::ToJSON>(value: T) -> serde_json::Value {
    value.to_json().unwrap_or(serde_json::Value::Null)
}

pub use super::params::IdempotencyKey;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, poem_openapi::Object, Serialize)]
    #[oai(rename_all = "camelCase")]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        account_id: String,
        seats: Option<i64>,
        #[oai(skip_serializing_if_is_none)]
        #[serde(skip_serializing_if = "Option::is_none")]
        notes: Option<String>,
    }

    #[tokio::test]
    async fn a_body_is_the_json_that_poem_openapi_writes() {
        let sample = || Single::new(Sample { account_id: "acc_1".into(), seats: None, notes: None });
        let ours = Body(sample()).into_response();
        assert_eq!(ours.content_type(), Some("application/json; charset=utf-8"));
        let ours: Value = serde_json::from_slice(&ours.into_body().into_bytes().await.expect("body")).expect("json");
        let theirs = Json(sample()).into_response();
        let theirs: Value = serde_json::from_slice(&theirs.into_body().into_bytes().await.expect("body")).expect("json");
        assert_eq!(ours, theirs);
        assert_eq!(ours["data"], serde_json::json!({"accountId": "acc_1", "seats": null}));
    }

    #[cfg(debug_assertions)]
    #[derive(Debug, poem_openapi::Object, Serialize)]
    struct Misnamed {
        #[serde(rename = "other")]
        name: String,
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "ToJSON gives")]
    fn a_body_whose_serde_and_schema_differ_panics_in_debug_builds() {
        let _ = Body(Misnamed { name: "x".into() }).into_response();
    }

    #[test]
    fn if_match_is_parsed_strictly() {
        assert_eq!(precondition(None).ok(), Some(Precondition::None));
        assert_eq!(precondition(Some("*")).ok(), Some(Precondition::Exists));
        assert_eq!(
            precondition(Some("\"a\", W/\"b\", \"c\"")).ok(),
            Some(Precondition::OneOf(vec!["a".into(), "c".into()]))
        );
        assert!(precondition(Some("abc")).is_err());
        assert!(precondition(Some("")).is_err());
        assert!(precondition(Some("\"a\"\"")).is_err());
        assert!(precondition(Some(" , ")).is_err(), "a list of no tags");
        assert_eq!(precondition(Some(", \"a\",, \"b\" ,")).ok(), Some(Precondition::OneOf(vec!["a".into(), "b".into()])), "empty elements are ignored");
    }

    #[test]
    fn a_list_header_keeps_every_line_and_every_byte() {
        let mut headers = HeaderMap::new();
        assert_eq!(ListHeader::read(&headers, "if-match"), ListHeader(None));
        headers.append("if-match", HeaderValue::from_static("\"a\""));
        assert_eq!(ListHeader::read(&headers, "if-match").0.as_deref(), Some("\"a\""));
        headers.append("if-match", HeaderValue::from_bytes(b"W/\"b\", \"\xff\"").expect("obs-text is a valid header byte"));
        assert_eq!(ListHeader::read(&headers, "if-match").0.as_deref(), Some("\"a\", W/\"b\", \"\u{ff}\""));
        let held = precondition(ListHeader::read(&headers, "if-match").0.as_deref()).expect("a list of entity tags");
        assert_eq!(held, Precondition::OneOf(vec!["a".into(), "\u{ff}".into()]), "the obs-text tag is kept, to match nothing");
        assert_eq!(ListHeader::read(&headers, "if-none-match"), ListHeader(None));
    }

    #[test]
    fn if_none_match_is_parsed_strictly_and_compared_weakly() {
        assert_eq!(NoneMatch::parse(None).ok(), Some(NoneMatch::Absent));
        assert_eq!(NoneMatch::parse(Some(" * ")).ok(), Some(NoneMatch::Any));
        let held = NoneMatch::parse(Some("\"a\", W/\"b\"")).expect("a list of tags");
        assert_eq!(held, NoneMatch::OneOf(vec!["a".into(), "b".into()]));
        assert!(held.holds("\"a\"") && held.holds("\"b\"") && held.holds("W/\"b\""));
        assert!(!held.holds("\"c\"") && !held.holds("\"ab\""));
        assert!(NoneMatch::Any.holds("\"c\"") && !NoneMatch::Absent.holds("\"c\""));
        assert_eq!(NoneMatch::parse(Some("\"a\", , W/\"b\",")).ok(), Some(NoneMatch::OneOf(vec!["a".into(), "b".into()])));
        for malformed in ["abc", "", ",", "\"a\"\"", "\"a\", b", "W/a"] {
            let refused = NoneMatch::parse(Some(malformed)).expect_err(malformed);
            let message = &refused.body().error.message;
            assert!(message.contains("If-None-Match"), "{malformed}: {message}");
        }
    }

    #[tokio::test]
    async fn a_held_version_is_answered_304_without_a_body() {
        use poem::IntoResponse;
        let json = || -> Arc<RawValue> { serde_json::value::to_raw_value(&serde_json::json!({"id": "acc_1"})).expect("JSON").into() };
        let fresh = Fetched::<Value>::of(json(), etag_header("v1"), &NoneMatch::OneOf(vec!["v0".into()])).into_response();
        assert_eq!(fresh.status(), poem::http::StatusCode::OK);
        assert_eq!(fresh.headers().get("etag").and_then(|v| v.to_str().ok()), Some("\"v1\""));
        let body: Value = serde_json::from_slice(&fresh.into_body().into_bytes().await.expect("a body")).expect("JSON");
        assert_eq!(body["data"], serde_json::json!({"id": "acc_1"}), "{body}");
        assert!(body["meta"]["requestId"].is_string(), "{body}");
        let held = Fetched::<Value>::of(json(), etag_header("v1"), &NoneMatch::OneOf(vec!["v0".into(), "v1".into()])).into_response();
        assert_eq!(held.status(), poem::http::StatusCode::NOT_MODIFIED);
        assert_eq!(held.headers().get("etag").and_then(|v| v.to_str().ok()), Some("\"v1\""));
        assert!(held.into_body().into_bytes().await.expect("a body").is_empty());
    }
}
