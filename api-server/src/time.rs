//! Timestamps: stored as Unix milliseconds, shown as RFC 3339 (UTC).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// RFC 3339 text of a Unix-millisecond instant.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses RFC 3339 text into Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_milliseconds() {
        let text = rfc3339(1_700_000_000_123);
        assert_eq!(text, "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_rfc3339(&text), Some(1_700_000_000_123));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
