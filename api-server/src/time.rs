//! Timestamps: stored as Unix milliseconds, shown as RFC 3339 (UTC).

use time::format_description::well_known::Rfc3339;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// RFC 3339 text of a Unix-millisecond instant, always with three fraction digits
/// (`…:20.100Z`, never `…:20.1Z`), so that timestamps also sort as strings.
pub fn rfc3339(ms: i64) -> String {
    const MILLIS: &[FormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(MILLIS).ok())
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
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(rfc3339(1_700_000_000_100), "2023-11-14T22:13:20.100Z");
        assert!(rfc3339(1_700_000_000_000) < rfc3339(1_700_000_000_001));
    }
}
