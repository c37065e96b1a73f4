//! JSON request bodies whose type errors name their field.
//!
//! poem-openapi's `Json` reports a value of the wrong type with a message that names no
//! field (`Expected input type "integer", found "many"`), since its objects pass a
//! field's error on without its name. When parsing fails, the body is read once more
//! and walked along the type's schema to the first value whose JSON type the schema
//! does not allow, and the 422 names that value's path (`sites[1].name`). Only the
//! failing request pays for it.

use poem::{IntoResponse, Request, RequestBody};
use poem_openapi::error::ParseRequestPayloadError;
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use serde_json::Value;

use crate::error::ApiError;

/// A JSON request body, parsed as `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = Json::<T>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        Json::<T>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = crate::compression::read_body(request.headers(), body.take()?)
            .await
            .map_err(|err| poem::Error::from_response(err.into_response()))?;
        let parse = |data: &[u8]| -> Result<Value, ParseRequestPayloadError> {
            if data.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(data).map_err(|err| ParseRequestPayloadError { reason: err.to_string() })
        };
        match T::parse_from_json(Some(parse(&data)?)) {
            Ok(value) => Ok(JsonBody(value)),
            Err(err) => {
                let mismatch = parse(&data).ok().and_then(|value| first_mismatch::<T>(&value));
                match mismatch {
                    Some((field, issue)) => Err(poem::Error::from_response(ApiError::field(&field, issue).into_response())),
                    None => Err(ParseRequestPayloadError { reason: err.into_message() }.into()),
                }
            }
        }
    }
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON);

/// The path of the first value in `value` whose JSON type `T`'s schema does not allow,
/// and what it should have been.
pub fn first_mismatch<T: Type>(value: &Value) -> Option<(String, String)> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let mut path = String::new();
    let issue = Walk { registry: &registry }.check(&T::schema_ref(), value, &mut path)?;
    if path.is_empty() {
        path.push_str("body");
    }
    Some((path, issue))
}

struct Walk<'a> {
    registry: &'a Registry,
}

impl Walk<'_> {
    fn resolve<'s>(&'s self, schema: &'s MetaSchemaRef) -> Option<&'s MetaSchema> {
        match schema {
            MetaSchemaRef::Inline(schema) => Some(schema),
            MetaSchemaRef::Reference(name) => self.registry.schemas.get(name),
        }
    }

    /// The issue with `value` (leaving `path` at it), or `None` when its type is one
    /// the schema allows. `null` is left to the parser and the domain's rules.
    fn check(&self, schema: &MetaSchemaRef, value: &Value, path: &mut String) -> Option<String> {
        let schema = self.resolve(schema)?;
        if value.is_null() {
            return None;
        }
        if !schema.all_of.is_empty() {
            return schema.all_of.iter().find_map(|part| self.check(part, value, path));
        }
        let branches = if schema.any_of.is_empty() { &schema.one_of } else { &schema.any_of };
        if !branches.is_empty() {
            let start = path.len();
            let mut first = None;
            for branch in branches {
                match self.check(branch, value, path) {
                    None => {
                        path.truncate(start);
                        return None;
                    }
                    Some(issue) if first.is_none() => first = Some((path.clone(), issue)),
                    Some(_) => {}
                }
                path.truncate(start);
            }
            let (at, issue) = first?;
            *path = at;
            return Some(issue);
        }
        let wrong = |expected: &str| Some(format!("must be {expected}, not {}", shown(value)));
        match (schema.ty, value) {
            ("string", Value::String(_)) | ("boolean", Value::Bool(_)) | ("number", Value::Number(_)) => None,
            ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => None,
            ("string", _) => wrong("a string"),
            ("boolean", _) => wrong("true or false"),
            ("number", _) => wrong("a number"),
            ("integer", _) => wrong("an integer"),
            ("array", Value::Array(items)) => {
                let item_schema = schema.items.as_deref()?;
                let start = path.len();
                for (index, item) in items.iter().enumerate() {
                    path.push_str(&format!("[{index}]"));
                    if let Some(issue) = self.check(item_schema, item, path) {
                        return Some(issue);
                    }
                    path.truncate(start);
                }
                None
            }
            ("array", _) => wrong("an array"),
            ("object", Value::Object(fields)) => {
                let start = path.len();
                for (name, field_schema) in &schema.properties {
                    let Some(field) = fields.get(*name) else { continue };
                    if start > 0 {
                        path.push('.');
                    }
                    path.push_str(name);
                    if let Some(issue) = self.check(field_schema, field, path) {
                        return Some(issue);
                    }
                    path.truncate(start);
                }
                None
            }
            ("object", _) if !schema.properties.is_empty() => wrong("an object"),
            _ => None,
        }
    }
}

/// A value as the issue quotes it: short values whole, the others by their kind.
fn shown(value: &Value) -> String {
    match value {
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
        Value::String(text) if text.chars().count() > 40 => "a string".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::Object;
    use serde_json::json;

    use super::*;
    use crate::api::text::Text;

    #[derive(Debug, Object)]
    struct Inner {
        name: Text,
        count: Option<i64>,
    }

    #[derive(Debug, Object)]
    struct Outer {
        title: Text,
        flag: Option<bool>,
        items: Option<Vec<Inner>>,
        tags: Option<Vec<Text>>,
        #[oai(nullable)]
        note: poem_openapi::types::MaybeUndefined<Text>,
    }

    fn mismatch(value: Value) -> Option<(String, String)> {
        first_mismatch::<Outer>(&value)
    }

    #[test]
    fn the_first_value_of_a_wrong_type_is_named_by_its_path() {
        let at = |path: &str, issue: &str| Some((path.to_owned(), issue.to_owned()));
        assert_eq!(mismatch(json!({"title": 12})), at("title", "must be a string, not 12"));
        assert_eq!(mismatch(json!({"title": "t", "flag": "yes"})), at("flag", "must be true or false, not \"yes\""));
        let items = json!({"title": "t", "items": [{"name": "a"}, {"name": "b", "count": 1.5}]});
        assert_eq!(mismatch(items), at("items[1].count", "must be an integer, not 1.5"));
        assert_eq!(mismatch(json!({"title": "t", "tags": ["a", false]})), at("tags[1]", "must be a string, not false"));
        assert_eq!(mismatch(json!({"title": "t", "items": {"name": "a"}})), at("items", "must be an array, not an object"));
        assert_eq!(mismatch(json!({"title": "t", "note": ["x"]})), at("note", "must be a string, not an array"));
        assert_eq!(mismatch(json!(["not", "an", "object"])), at("body", "must be an object, not an array"));
    }

    #[test]
    fn values_of_the_right_types_have_no_mismatch() {
        let fine = json!({"title": "t", "flag": true, "items": [{"name": "a", "count": 3}], "tags": [], "note": null});
        assert_eq!(mismatch(fine), None);
        assert_eq!(mismatch(json!({"title": "t", "unknown": 5})), None, "unknown fields are the parser's to refuse");
        assert_eq!(mismatch(json!({"title": null})), None, "null is left to the parser and the domain");
    }
}
