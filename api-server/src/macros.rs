//! Macros of the crate.

/// `impl Type for $ty` (generic over `[$generics]`) for a wire type that reads and
/// writes its own JSON: its raw value is itself, its name and registration those of
/// `$like`, its schema `$schema` (a `MetaSchemaRef`).
macro_rules! self_raw_type {
    ([$($generics:tt)*] $ty:ty, like $like:ty, schema $schema:expr) => {
        impl<$($generics)*> poem_openapi::types::Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> std::borrow::Cow<'static, str> {
                <$like as poem_openapi::types::Type>::name()
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                $schema
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <$like as poem_openapi::types::Type>::register(registry);
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(std::iter::once(self))
            }
        }
    };
}

/// `impl Type for $ty`, documented in the spec as `$as` (its name, schema and
/// registration): for wire types that look like a plain type to clients.
macro_rules! type_documented_as {
    ($ty:ty, $as:ty) => {
        self_raw_type!([] $ty, like $as, schema <$as as poem_openapi::types::Type>::schema_ref());
    };
}
