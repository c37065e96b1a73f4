//! Strings of request bodies, parsed strictly.

use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON};
use serde_json::Value;

/// A JSON string of a request body. poem-openapi's `String` also takes a number or a
/// boolean and keeps its text (`{"phone": false}` stored the phone number "false"); a
/// field documented as a string takes only a string, else the request is a 422 naming
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

type_documented_as!(Text, String);

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Text(text)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> String {
        text.0
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text(text)
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Each text as a `String`.
pub fn texts(list: Vec<Text>) -> Vec<String> {
    list.into_iter().map(String::from).collect()
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text(text.to_owned())
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_string_parses() {
        assert_eq!(Text::parse_from_json(Some(Value::from("+1 207"))).ok(), Some(Text("+1 207".to_owned())));
        for other in [Value::from(false), Value::from(12), Value::from(1.5), serde_json::json!(["a"]), serde_json::json!({})] {
            assert!(Text::parse_from_json(Some(other.clone())).is_err(), "{other} is not a string");
        }
        assert!(String::parse_from_json(Some(Value::from(false))).is_ok(), "poem-openapi's String would take it");
    }
}
