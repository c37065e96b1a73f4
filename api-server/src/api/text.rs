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
/// the domain parses the text as — a date, a date and time, an e-mail address, an
/// identifier, a text that must not be blank —, which the domain checks in the same
/// way. A free text (a `MAX`, no `FORMAT`) documents the characters the domain refuses
/// in every text as a `pattern` ([`pattern::PLAIN`]).
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
    /// A free text that must hold more than spaces ([`super::pattern::NON_BLANK`]): a
    /// name, say, which an update may change but not clear.
    pub const NON_BLANK: u8 = 4;
    /// An identifier of letters, digits, `_`, `-`, `.` and `:` ([`super::pattern::IDENTIFIER`]).
    pub const IDENTIFIER: u8 = 5;
    /// A domain name, or a blank text that clears it ([`super::pattern::DOMAIN`]).
    pub const DOMAIN: u8 = 6;

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

/// The `pattern`s texts document (ECMA 262 regular expressions, as OpenAPI asks),
/// written to match exactly what `domain::validate` and `domain::health` accept.
pub mod pattern {
    /// A free text: no control character but tab, line feed and carriage return
    /// (`char::is_control` is Unicode's `Cc`: U+0000–U+001F and U+007F–U+009F). A blank
    /// one clears an optional field.
    pub const PLAIN: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$";
    /// A free text as [`PLAIN`] with at least one character that is neither a control
    /// nor white space (Unicode's `White_Space`, which `str::trim` removes).
    pub const NON_BLANK: &str = concat!(
        r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*",
        r"[^\x00-\x20\x7F-\x9F\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
        r"[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    );
    /// An identifier: ASCII letters and digits, `_`, `-`, `.` and `:`.
    pub const IDENTIFIER: &str = r"^[A-Za-z0-9_.:-]+$";
    /// A domain name as `domain::validate::domain_name` takes it — two labels or more of
    /// 1–63 letters, digits and inner hyphens, any case, trailing dots and white space
    /// around it dropped (253 characters at most, which a pattern cannot count here) —
    /// or a blank text, which clears the field.
    pub const DOMAIN: &str = concat!(
        r"^[\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+\.*",
        r"[\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*)?$"
    );

    /// What a text of `MAX` and `FORMAT` documents as its `pattern`.
    pub(super) fn of(max: usize, format: u8) -> Option<&'static str> {
        match format {
            super::format::NON_BLANK => Some(NON_BLANK),
            super::format::IDENTIFIER => Some(IDENTIFIER),
            super::format::DOMAIN => Some(DOMAIN),
            super::format::NONE if max > 0 => Some(PLAIN),
            _ => None,
        }
    }
}

self_raw_type!([const MAX: usize, const FORMAT: u8] Text<MAX, FORMAT>, like String, schema {
    match (MAX, FORMAT) {
        (0, format::NONE) => String::schema_ref(),
        (max, format) => MetaSchemaRef::Inline(Box::new(MetaSchema {
            max_length: (max > 0).then_some(max),
            format: format::name(format),
            pattern: pattern::of(max, format).map(str::to_owned),
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

    fn pattern_of<const MAX: usize, const FORMAT: u8>() -> Option<String> {
        match Text::<MAX, FORMAT>::schema_ref() {
            MetaSchemaRef::Inline(schema) => schema.pattern,
            MetaSchemaRef::Reference(_) => None,
        }
    }

    #[test]
    fn free_texts_document_their_pattern() {
        assert_eq!(pattern_of::<50, { format::NONE }>().as_deref(), Some(pattern::PLAIN));
        assert_eq!(pattern_of::<50, { format::NON_BLANK }>().as_deref(), Some(pattern::NON_BLANK));
        assert_eq!(pattern_of::<64, { format::IDENTIFIER }>().as_deref(), Some(pattern::IDENTIFIER));
        assert_eq!(pattern_of::<0, { format::NONE }>(), None, "an id or a scope: the domain has its own rules");
        assert_eq!(pattern_of::<254, { format::EMAIL }>(), None);
    }

    /// The documented patterns accept exactly what the domain's text rules accept: every
    /// character alone, between letters and around a letter. Above U+3000 no character
    /// is a control or white space, so the patterns' classes and the rules agree there
    /// as they do on U+3000 itself (checked first).
    #[test]
    fn the_patterns_are_the_domains_rules() {
        use crate::domain::validate::{optional_text, text, Violations};
        use crate::domain::Patch;
        let plain = regex::Regex::new(pattern::PLAIN).expect("PLAIN compiles");
        let non_blank = regex::Regex::new(pattern::NON_BLANK).expect("NON_BLANK compiles");
        assert!((0x3001..=0x10FFFF).filter_map(char::from_u32).all(|c| !c.is_control() && !c.is_whitespace()));
        let required = |s: &str| text(&mut Violations::default(), "f", s, 10).is_some();
        let optional = |s: &str| {
            let mut v = Violations::default();
            optional_text(&mut v, "f", Patch::Set(s.to_owned()), 10, &mut None);
            v.is_empty()
        };
        for c in (0..=0x3001).filter_map(char::from_u32).chain(['\u{FEFF}', '\u{10FFFF}']) {
            for s in [c.to_string(), format!("a{c}b"), format!("{c}a"), format!("a{c}"), format!("{c}{c}")] {
                assert_eq!(non_blank.is_match(&s), required(&s), "NON_BLANK on {s:?}");
                assert_eq!(plain.is_match(&s), optional(&s), "PLAIN on {s:?}");
            }
        }
        for (s, ok) in [("", false), (" \t\r\n ", false), ("Acme\tCorp\n", true), ("\u{00A0}\u{3000}", false)] {
            assert_eq!((non_blank.is_match(s), required(s)), (ok, ok), "{s:?}");
        }
    }

    /// The documented domain pattern takes what the domain takes: a blank text (which
    /// clears the field) or what `domain_name` accepts (up to its 253 characters).
    #[test]
    fn the_domain_pattern_is_the_domains_rule() {
        use crate::domain::validate::{domain_name, Violations};
        let pattern = regex::Regex::new(pattern::DOMAIN).expect("DOMAIN compiles");
        let accepted = |s: &str| s.trim().is_empty() || domain_name(&mut Violations::default(), "domain", s).is_some();
        let label = "a".repeat(63);
        let samples = [
            "contoso.com", " Contoso.COM. ", "contoso.com..", "a.b", "xn--bcher-kva.example", "a--b.com",
            "", "  ", "\t\u{3000}\u{85}", "localhost", "-a.com", "a-.com", "https://contoso.com", "contoso.com/x",
            "a..b", ".a.b", "a.b.\t.", "\u{b}a.b", "a.b\u{85}", "a.b\u{feff}", "ünicode.com", "a_b.com", "a b.com",
            &format!("{label}.com"), &format!("{label}a.com"), &format!("{label}.{label}.{label}.{}", &label[..61]),
        ];
        for s in samples {
            assert_eq!(pattern.is_match(s), accepted(s), "{s:?}");
        }
        let too_long = format!("{label}.{label}.{label}.{label}");
        assert!(pattern.is_match(&too_long) && !accepted(&too_long), "255 characters: the one rule the pattern leaves out");
        assert_eq!(pattern_of::<0, { format::DOMAIN }>().as_deref(), Some(pattern::DOMAIN));
    }
}
