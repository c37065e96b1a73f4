//! Macros of the crate.

/// `impl Type for $ty`, documented in the spec as `$as` (its name, schema and
/// registration), its raw value itself: for wire types that read and write their own
/// JSON but look like a plain type to clients.
macro_rules! type_documented_as {
    ($ty:ty, $as:ty) => {
        impl poem_openapi::types::Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> std::borrow::Cow<'static, str> {
                <$as as poem_openapi::types::Type>::name()
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                <$as as poem_openapi::types::Type>::schema_ref()
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <$as as poem_openapi::types::Type>::register(registry);
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
