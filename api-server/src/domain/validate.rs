//! Field rules shared by the resources. Every check records its failure and goes on,
//! so that one 422 names every failing field of a body.

use super::{DomainError, Patch};

/// One failing field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field as sent: camelCase, dotted or indexed for nested ones (`sites[1].name`).
    pub field: String,
    pub issue: String,
}

/// Every failing field of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, issue: impl Into<String>) {
        self.0.push(Violation { field: field.into(), issue: issue.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many failures are recorded so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn into_vec(self) -> Vec<Violation> {
        self.0
    }

    /// `Ok(value)` when nothing failed.
    pub fn finish<T>(self, value: T) -> Result<T, DomainError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(DomainError::Invalid(self))
        }
    }
}

/// Trimmed text of 1 to `max` characters, or `None` (recorded) otherwise. The length
/// is the text's as sent, spaces around it included: it is what the spec documents as
/// `maxLength`; so are the control characters, refused wherever they are (the spec's
/// `pattern`, `api::text::pattern::NON_BLANK`).
pub fn text(v: &mut Violations, field: &str, value: &str, max: usize) -> Option<String> {
    let trimmed = value.trim();
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
        None
    } else if has_control(value) {
        v.add(field, "must not contain control characters");
        None
    } else if trimmed.is_empty() {
        v.add(field, "must not be empty");
        None
    } else {
        Some(trimmed.to_owned())
    }
}

/// Whether `value` holds a control character other than tab, line feed and carriage
/// return: refused in every text, blank or not.
fn has_control(value: &str) -> bool {
    value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// Applies a change to a required text field: it may be set, never cleared.
pub fn required_text(v: &mut Violations, field: &str, patch: Patch<String>, max: usize, slot: &mut String) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => v.add(field, "is required and cannot be null"),
        Patch::Set(value) => {
            if let Some(value) = text(v, field, &value, max) {
                *slot = value;
            }
        }
    }
}

/// Applies a change to an optional text field; an empty string clears it like `null`.
pub fn optional_text(v: &mut Violations, field: &str, patch: Patch<String>, max: usize, slot: &mut Option<String>) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => *slot = None,
        Patch::Set(value) if value.trim().is_empty() && value.chars().count() <= max && !has_control(&value) => *slot = None,
        Patch::Set(value) => {
            if let Some(value) = text(v, field, &value, max) {
                *slot = Some(value);
            }
        }
    }
}

/// Applies a change to a required enumerated field given as text.
pub fn required_enum<E: Copy>(
    v: &mut Violations,
    field: &str,
    patch: Patch<String>,
    parse: fn(&str) -> Option<E>,
    allowed: &[&str],
    slot: &mut E,
) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => v.add(field, "is required and cannot be null"),
        Patch::Set(text) => match parse(&text) {
            Some(value) => *slot = value,
            None => v.add(field, format!("must be one of {}", allowed.join(", "))),
        },
    }
}

/// A count that must lie in `0..=max`.
pub fn optional_count(v: &mut Violations, field: &str, patch: Patch<i64>, max: i64, slot: &mut Option<i64>) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => *slot = None,
        Patch::Set(n) if !(0..=max).contains(&n) => v.add(field, format!("must be between 0 and {max}")),
        Patch::Set(n) => *slot = Some(n),
    }
}

/// A calendar date as `YYYY-MM-DD`, normalised.
pub fn date(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(value.trim(), &format).ok().and_then(|d| d.format(&format).ok()) {
        Some(text) => Some(text),
        None => {
            v.add(field, "must be a date as YYYY-MM-DD");
            None
        }
    }
}

/// A DNS name such as `contoso.com`: lower-cased, at least two labels of letters,
/// digits and hyphens, no scheme or path.
pub fn domain_name(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    let name = value.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() <= 253 && name.split('.').count() >= 2 && name.split('.').all(label_ok) {
        Some(name)
    } else {
        v.add(field, "must be a domain name such as contoso.com (no scheme or path)");
        None
    }
}

/// An e-mail address, lower-cased: one `@`, a non-empty local part, a domain name.
pub fn email(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    let address = value.trim().to_ascii_lowercase();
    let valid = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && address.len() <= 254
                && !local.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@')
                && domain_name(&mut Violations::default(), field, domain).is_some()
        }
        None => false,
    };
    if valid {
        Some(address)
    } else {
        v.add(field, "must be an e-mail address such as jane@contoso.com");
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_is_recorded() {
        let mut v = Violations::default();
        let mut name = String::from("old");
        required_text(&mut v, "name", Patch::Set("   ".into()), 10, &mut name);
        required_text(&mut v, "other", Patch::Clear, 10, &mut name);
        let mut seats = None;
        optional_count(&mut v, "seats", Patch::Set(-1), 100, &mut seats);
        let fields: Vec<_> = v.into_vec().into_iter().map(|x| x.field).collect();
        assert_eq!(fields, ["name", "other", "seats"]);
        assert_eq!(name, "old");
    }

    #[test]
    fn the_length_limit_counts_the_text_as_sent() {
        let mut v = Violations::default();
        assert_eq!(text(&mut v, "t", " abc ", 5).as_deref(), Some("abc"), "trimmed when stored");
        assert_eq!(text(&mut v, "t", "  abc  ", 5), None, "7 characters sent");
        let mut notes = Some("kept".to_owned());
        optional_text(&mut v, "n", Patch::Set(" ".repeat(6)), 5, &mut notes);
        assert_eq!(notes.as_deref(), Some("kept"), "blank but too long: refused, not a clear");
        optional_text(&mut v, "n", Patch::Set(" ".repeat(5)), 5, &mut notes);
        assert_eq!(notes, None, "blank within the limit clears");
        let issues: Vec<_> = v.into_vec().into_iter().map(|x| (x.field, x.issue)).collect();
        let too_long = "must be at most 5 characters".to_owned();
        assert_eq!(issues, [("t".to_owned(), too_long.clone()), ("n".to_owned(), too_long)]);
    }

    #[test]
    fn domains_and_emails() {
        let mut v = Violations::default();
        assert_eq!(domain_name(&mut v, "d", " Contoso.COM. ").as_deref(), Some("contoso.com"));
        assert_eq!(domain_name(&mut v, "d", "https://contoso.com"), None);
        assert_eq!(domain_name(&mut v, "d", "localhost"), None);
        assert_eq!(email(&mut v, "e", "Jane@Contoso.com").as_deref(), Some("jane@contoso.com"));
        assert_eq!(email(&mut v, "e", "jane@@contoso.com"), None);
        assert_eq!(email(&mut v, "e", "jane contoso.com"), None);
        assert_eq!(v.into_vec().len(), 4);
    }
}
