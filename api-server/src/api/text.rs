//! Strings of request bodies, parsed strictly.


use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON};
use serde_json::Value;

/// A JSON string of a request body. poem-openapi's `String` also takes a number or a
/// boolean and keeps its text (`{"phone": false}` stored the phone number "false"); a
/// field documented as a string takes only a string, else the request is a 422 naming
/// it. `MAX` (0: none) is the longest text the domain accepts, documented in the spec
/// as `maxLength`; the domain checks it (trimmed), with the request's other rules, so
/// that one 422 lists every failing field. `FORMAT` (one of [`format`]) documents what
/// the domain parses the text as — a date, a date and time, an e-mail address —, which
/// the domain checks in the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<const MAX: usize = 0, const FORMAT: u8 = { format::NONE }>(pub String);

/// The formats a [`Text`] can document (OpenAPI's `format` of a string).
pub mod format {
    /// Any text.
    pub const NONE: u8 = 0;
    /// `YYYY-MM-DD` (RFC 3339's `full-date`).
    pub const DATE: u8 = 1;
    /// RFC 3339's `date-time`.
    pub const DATE_TIME: u8 = 2;
    /// An e-mail address.
    pub const EMAIL: u8 = 3;

    /// OpenAPI's name of `format`.
    pub(super) fn name(format: u8) -> Option<&'static str> {
        match format {
            DATE => Some("date"),
            DATE_TIME => Some("date-time"),
            EMAIL => Some("email"),
            _ => None,
        }
    }
}

self_raw_type!([const MAX: usize, const FORMAT: u8] Text<MAX, FORMAT>, like String, schema {
    match (MAX, format::name(FORMAT)) {
        (0, None) => String::schema_ref(),
        (max, format) => MetaSchemaRef::Inline(Box::new(MetaSchema {
            max_length: (max > 0).then_some(max),
            format,
            ..MetaSchema::new("string")
        })),
    }
});

impl<const MAX: usize, const FORMAT: u8> ParseFromJSON for Text<MAX, FORMAT> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Text(text)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<const MAX: usize, const FORMAT: u8> ToJSON for Text<MAX, FORMAT> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

impl<const MAX: usize, const FORMAT: u8> From<Text<MAX, FORMAT>> for String {
    fn from(text: Text<MAX, FORMAT>) -> String {
        text.0
    }
}

impl<const MAX: usize, const FORMAT: u8> From<String> for Text<MAX, FORMAT> {
    fn from(text: String) -> Self {
        Text(text)
    }
}

impl<const MAX: usize, const FORMAT: u8> serde::Serialize for Text<MAX, FORMAT> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Each text as a `String`.
pub fn texts(list: impl IntoIterator<Item = Text>) -> Vec<String> {
    list.into_iter().map(String::from).collect()
}

impl<const MAX: usize, const FORMAT: u8> From<&str> for Text<MAX, FORMAT> {
    fn from(text: &str) -> Self {
        Text(text.to_owned())
    }
}

impl<const MAX: usize, const FORMAT: u8> std::ops::Deref for Text<MAX, FORMAT> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize, const FORMAT: u8> AsRef<str> for Text<MAX, FORMAT> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::types::Type;

    #[test]
    fn only_a_string_parses() {
        assert_eq!(Text::<0>::parse_from_json(Some(Value::from("+1 207"))).ok(), Some(Text("+1 207".to_owned())));
        for other in [Value::from(false), Value::from(12), Value::from(1.5), serde_json::json!(["a"]), serde_json::json!({})] {
            assert!(Text::<0>::parse_from_json(Some(other.clone())).is_err(), "{other} is not a string");
        }
        assert!(String::parse_from_json(Some(Value::from(false))).is_ok(), "poem-openapi's String would take it");
    }

    #[test]
    fn the_longest_text_is_documented_not_checked() {
        let MetaSchemaRef::Inline(schema) = Text::<50>::schema_ref() else { panic!("inline") };
        assert_eq!((schema.ty, schema.max_length), ("string", Some(50)));
        assert_eq!(Text::<0>::schema_ref(), String::schema_ref(), "no maximum: a plain string");
        let long = Value::from("x".repeat(60));
        assert!(Text::<50>::parse_from_json(Some(long)).is_ok(), "the domain checks the length, with the other rules");
    }

    #[test]
    fn formats_are_documented_not_checked() {
        let MetaSchemaRef::Inline(date) = Text::<0, { format::DATE }>::schema_ref() else { panic!("inline") };
        assert_eq!((date.ty, date.format, date.max_length), ("string", Some("date"), None));
        let MetaSchemaRef::Inline(email) = Text::<254, { format::EMAIL }>::schema_ref() else { panic!("inline") };
        assert_eq!((email.format, email.max_length), (Some("email"), Some(254)));
        let MetaSchemaRef::Inline(at) = Text::<0, { format::DATE_TIME }>::schema_ref() else { panic!("inline") };
        assert_eq!(at.format, Some("date-time"));
        assert!(Text::<0, { format::DATE }>::parse_from_json(Some(Value::from("not a date"))).is_ok(), "the domain says why");
    }
}
