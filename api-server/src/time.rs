//! Timestamps: stored as Unix milliseconds, shown as RFC 3339 (UTC).

use time::format_description::well_known::Rfc3339;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// RFC 3339 text of a Unix-millisecond instant, always with three fraction digits
/// (`…:20.100Z`, never `…:20.1Z`), so that timestamps also sort as strings.
///
/// Years 0–9999 are written digit by digit: every resource carries two or three
/// timestamps, and `time`'s interpreted format descriptions were a tenth of building
/// a bulk upsert's events. Other years (never stored in practice) take that path.
pub fn rfc3339(ms: i64) -> String {
    const MILLIS: &[FormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000) else {
        return String::new();
    };
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.format(MILLIS).unwrap_or_default();
    }
    let (hour, minute, second, milli) = t.to_hms_milli();
    let mut out = [0u8; 24];
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, u32::from(u8::from(t.month())), 2);
    put(8, u32::from(t.day()), 2);
    put(11, u32::from(hour), 2);
    put(14, u32::from(minute), 2);
    put(17, u32::from(second), 2);
    put(20, u32::from(milli), 3);
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')] {
        out[at] = sep;
    }
    // Digits and separators only: ASCII, so the bytes are the text (collecting them
    // char by char was 600 instructions a timestamp).
    std::str::from_utf8(&out).map(str::to_owned).unwrap_or_default()
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

    /// The digit-by-digit writer agrees with `time`'s own formatting everywhere.
    #[test]
    fn agrees_with_the_format_description() {
        const MILLIS: &[FormatItem<'static>] =
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
        let mut ms: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
        let last: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let step = (last - ms) / 20_011;
        while ms <= last {
            let expected = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
                .expect("in range")
                .format(MILLIS)
                .expect("formats");
            assert_eq!(rfc3339(ms), expected, "{ms}");
            ms += step;
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(last), "9999-12-31T23:59:59.999Z");
    }
}
