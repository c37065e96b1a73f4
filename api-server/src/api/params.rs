//! Parameters documented with the constraints their handlers check: the spec tells a
//! client (and Swagger UI, and generated code) that `limit` is 1–100 or that
//! `updatedSince` is a date-time, while a value outside them still reaches the handler,
//! which answers with its own precise error (a 422 naming `limit`, a 400 giving an
//! example time) rather than poem-openapi's generic parse error.

use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, Type};
use serde_json::Value;

use crate::domain::paging::{DEFAULT_LIMIT, MAX_LIMIT};

/// The schema a parameter is documented with.
pub trait Documentation {
    fn schema() -> MetaSchema;
}

/// A parameter parsed as `T` and documented as `D` says.
pub struct Documented<T, D> {
    pub value: T,
    _documentation: PhantomData<fn() -> D>,
}

impl<T: std::fmt::Debug, D> std::fmt::Debug for Documented<T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: Type, D: Documentation> Type for Documented<T, D> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(D::schema()))
    }

    fn register(_registry: &mut Registry) {}

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.value.as_raw_value()
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.value.raw_element_iter()
    }
}

impl<T: ParseFromParameter, D: Documentation> ParseFromParameter for Documented<T, D> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        T::parse_from_parameter(value)
            .map(|value| Documented { value, _documentation: PhantomData })
            .map_err(ParseError::propagate)
    }
}

/// `limit` of a list: 1 to `MAX_LIMIT`, `DEFAULT_LIMIT` when absent.
pub struct LimitRange;

impl Documentation for LimitRange {
    fn schema() -> MetaSchema {
        MetaSchema {
            minimum: Some(1.0),
            maximum: Some(f64::from(MAX_LIMIT)),
            default: Some(Value::from(DEFAULT_LIMIT)),
            ..MetaSchema::new_with_format("integer", "int64")
        }
    }
}

/// An RFC 3339 time, such as `2024-05-01T00:00:00Z`.
pub struct DateTime;

impl Documentation for DateTime {
    fn schema() -> MetaSchema {
        MetaSchema { example: Some(Value::from("2024-05-01T00:00:00Z")), ..MetaSchema::new_with_format("string", "date-time") }
    }
}

/// An `Idempotency-Key` header: 1–255 printable ASCII characters (checked by the
/// idempotency layer before any handler runs).
pub struct IdempotencyKeyText;

impl Documentation for IdempotencyKeyText {
    fn schema() -> MetaSchema {
        MetaSchema {
            title: Some("Idempotency key".to_owned()),
            description: Some(
                "1–255 printable ASCII characters, unique per intended change (a UUID does). A retry \
                 with the same key and body gets the first answer again, with \
                 `Idempotent-Replayed: true`, and changes nothing; the same key with another request \
                 is a 422; while the first request still runs, a 409. Keys belong to the credential \
                 that sent them and are kept 24 hours.",
            ),
            min_length: Some(1),
            max_length: Some(crate::idempotency::MAX_KEY_LEN),
            pattern: Some("^[ -~]+$".to_owned()),
            ..MetaSchema::new("string")
        }
    }
}

/// `limit` of a list.
pub type Limit = Documented<i64, LimitRange>;
/// A time parameter (`updatedSince`, the audit log's `from` and `to`).
pub type Time = Documented<String, DateTime>;
/// The `Idempotency-Key` header of a POST.
pub type IdempotencyKey = Documented<String, IdempotencyKeyText>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_outside_the_documented_range_still_parses() {
        // The handler answers it with its own error (a 422 naming `limit`).
        assert_eq!(Limit::parse_from_parameter("101").map(|l| l.value).ok(), Some(101));
        assert_eq!(Limit::parse_from_parameter("-5").map(|l| l.value).ok(), Some(-5));
        assert!(Limit::parse_from_parameter("ten").is_err(), "not an integer");
        assert_eq!(Time::parse_from_parameter("yesterday").map(|t| t.value).ok().as_deref(), Some("yesterday"));
    }

    #[test]
    fn the_schemas_carry_the_constraints() {
        let MetaSchemaRef::Inline(limit) = Limit::schema_ref() else { panic!("inline") };
        assert_eq!((limit.ty, limit.format), ("integer", Some("int64")));
        assert_eq!((limit.minimum, limit.maximum), (Some(1.0), Some(f64::from(MAX_LIMIT))));
        assert_eq!(limit.default, Some(Value::from(DEFAULT_LIMIT)));
        let MetaSchemaRef::Inline(time) = Time::schema_ref() else { panic!("inline") };
        assert_eq!(time.format, Some("date-time"));
        let MetaSchemaRef::Inline(key) = IdempotencyKey::schema_ref() else { panic!("inline") };
        assert_eq!((key.min_length, key.max_length), (Some(1), Some(255)));
        let pattern = key.pattern.as_deref().expect("a pattern");
        assert_eq!(pattern, "^[ -~]+$", "space (0x20) to tilde (0x7e), as the idempotency layer checks");
    }
}
