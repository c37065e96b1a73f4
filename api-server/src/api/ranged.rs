//! Numbers and lists of request bodies whose range the spec documents: the domain's own
//! limits, carried by the type as `minimum`/`maximum` or `minItems`/`maxItems` so that a
//! client (and a generator of requests) knows them, while the value still reaches the
//! domain, which checks it with the request's other rules and answers one 422 listing
//! every failing field (poem-openapi's validators would stop at the first). As `Text`
//! does for lengths.


use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// A JSON integer, documented as lying in `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int<const MIN: i64, const MAX: i64>(pub i64);

/// A JSON number, documented as lying in `MIN..=MAX`, or in `MIN < x <= MAX` when
/// `ABOVE_MIN` (a weight must be positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number<const MIN: i64, const MAX: i64, const ABOVE_MIN: bool = false>(pub f64);

/// A JSON array, documented as holding `MIN..=MAX` items (`UNBOUNDED`: no maximum).
#[derive(Debug, Clone, PartialEq)]
pub struct Items<T, const MIN: usize, const MAX: usize>(pub Vec<T>);

/// `Items`' `MAX` for a list the domain does not bound.
pub const UNBOUNDED: usize = usize::MAX;

self_raw_type!([const MIN: i64, const MAX: i64] Int<MIN, MAX>, like i64, schema MetaSchemaRef::Inline(Box::new(MetaSchema {
    format: Some("int64"),
    minimum: Some(MIN as f64),
    maximum: Some(MAX as f64),
    ..MetaSchema::new("integer")
})));

self_raw_type!([const MIN: i64, const MAX: i64, const ABOVE_MIN: bool] Number<MIN, MAX, ABOVE_MIN>, like f64, schema MetaSchemaRef::Inline(Box::new(MetaSchema {
    format: Some("double"),
    minimum: Some(MIN as f64),
    exclusive_minimum: ABOVE_MIN.then_some(true),
    maximum: Some(MAX as f64),
    ..MetaSchema::new("number")
})));

self_raw_type!([T: Type, const MIN: usize, const MAX: usize] Items<T, MIN, MAX>, like Vec<T>, schema MetaSchemaRef::Inline(Box::new({
    let MetaSchemaRef::Inline(array) = Vec::<T>::schema_ref() else { unreachable!("an array's schema is inline") };
    MetaSchema { min_items: (MIN > 0).then_some(MIN), max_items: (MAX != UNBOUNDED).then_some(MAX), ..*array }
})));

impl<const MIN: i64, const MAX: i64> ParseFromJSON for Int<MIN, MAX> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        i64::parse_from_json(value).map(Int).map_err(poem_openapi::types::ParseError::propagate)
    }
}

impl<const MIN: i64, const MAX: i64, const ABOVE_MIN: bool> ParseFromJSON for Number<MIN, MAX, ABOVE_MIN> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        f64::parse_from_json(value).map(Number).map_err(poem_openapi::types::ParseError::propagate)
    }
}

impl<T: ParseFromJSON, const MIN: usize, const MAX: usize> ParseFromJSON for Items<T, MIN, MAX> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        Vec::<T>::parse_from_json(value).map(Items).map_err(poem_openapi::types::ParseError::propagate)
    }
}

impl<const MIN: i64, const MAX: i64> ToJSON for Int<MIN, MAX> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

impl<const MIN: i64, const MAX: i64, const ABOVE_MIN: bool> ToJSON for Number<MIN, MAX, ABOVE_MIN> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

impl<T: ToJSON, const MIN: usize, const MAX: usize> ToJSON for Items<T, MIN, MAX> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

impl<const MIN: i64, const MAX: i64> From<Int<MIN, MAX>> for i64 {
    fn from(value: Int<MIN, MAX>) -> i64 {
        value.0
    }
}

impl<const MIN: i64, const MAX: i64, const ABOVE_MIN: bool> From<Number<MIN, MAX, ABOVE_MIN>> for f64 {
    fn from(value: Number<MIN, MAX, ABOVE_MIN>) -> f64 {
        value.0
    }
}

impl<T, const MIN: usize, const MAX: usize> From<Vec<T>> for Items<T, MIN, MAX> {
    fn from(items: Vec<T>) -> Self {
        Items(items)
    }
}

impl<T, const MIN: usize, const MAX: usize> IntoIterator for Items<T, MIN, MAX> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline<T: Type>() -> MetaSchema {
        match T::schema_ref() {
            MetaSchemaRef::Inline(schema) => *schema,
            MetaSchemaRef::Reference(name) => panic!("{name}: expected an inline schema"),
        }
    }

    #[test]
    fn ranges_are_documented() {
        let int = inline::<Int<0, 10_000_000>>();
        assert_eq!((int.ty, int.format, int.minimum, int.maximum), ("integer", Some("int64"), Some(0.0), Some(10_000_000.0)));
        let weight = inline::<Number<0, 10, true>>();
        assert_eq!((weight.ty, weight.minimum, weight.exclusive_minimum, weight.maximum), ("number", Some(0.0), Some(true), Some(10.0)));
        assert_eq!(inline::<Number<0, 100>>().exclusive_minimum, None);
        let list = inline::<Items<Int<0, 5>, 1, 50>>();
        assert_eq!((list.ty, list.min_items, list.max_items), ("array", Some(1), Some(50)));
        assert!(matches!(list.items.as_deref(), Some(MetaSchemaRef::Inline(item)) if item.maximum == Some(5.0)));
        assert_eq!(inline::<Items<Int<0, 5>, 0, 50>>().min_items, None, "no lower bound to document");
        assert_eq!(inline::<Items<Int<0, 5>, 1, UNBOUNDED>>().max_items, None, "no upper bound to document");
    }

    #[test]
    fn out_of_range_values_reach_the_domain_and_wrong_types_do_not() {
        assert_eq!(Int::<0, 10>::parse_from_json(Some(Value::from(11))).ok(), Some(Int(11)));
        assert_eq!(Int::<0, 10>::parse_from_json(Some(Value::from(-1))).ok(), Some(Int(-1)));
        for wrong in [Value::from("3"), Value::from(1.5), Value::from(true)] {
            assert!(Int::<0, 10>::parse_from_json(Some(wrong.clone())).is_err(), "{wrong} is not an integer");
        }
        assert_eq!(Number::<0, 10, true>::parse_from_json(Some(Value::from(0))).ok(), Some(Number(0.0)));
        assert!(Number::<0, 10>::parse_from_json(Some(Value::from("1"))).is_err());
        let many = Value::Array((0..60).map(Value::from).collect());
        assert_eq!(Items::<Int<0, 100>, 1, 50>::parse_from_json(Some(many)).map(|l| l.0.len()).ok(), Some(60));
        assert_eq!(Items::<Int<0, 100>, 1, 50>::parse_from_json(Some(Value::Array(vec![]))).map(|l| l.0.len()).ok(), Some(0));
        assert!(Items::<Int<0, 100>, 1, 50>::parse_from_json(Some(Value::from(1))).is_err(), "not an array");
    }
}
