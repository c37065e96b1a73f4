//! Short text held inline, for values made on every request (request ids, audit
//! entries' ids and addresses), where a `String` is an allocation each.

/// Text of at most `N` bytes, held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineStr<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> InlineStr<N> {
    pub fn new() -> Self {
        InlineStr { bytes: [0; N], len: 0 }
    }

    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 text is written (`write_str`).
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    /// `bytes` as text, or `None` unless they are ASCII and at most `N` of them.
    pub fn ascii(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > N || !bytes.is_ascii() {
            return None;
        }
        let mut text = InlineStr::new();
        text.bytes[..bytes.len()].copy_from_slice(bytes);
        text.len = bytes.len();
        Some(text)
    }

    /// The text of `value`'s `Display`, or `None` when it is longer than `N` bytes.
    pub fn display(value: impl std::fmt::Display) -> Option<Self> {
        use std::fmt::Write;
        let mut text = InlineStr::new();
        write!(text, "{value}").ok()?;
        Some(text)
    }
}

impl<const N: usize> Default for InlineStr<N> {
    fn default() -> Self {
        InlineStr::new()
    }
}

impl<const N: usize> std::fmt::Write for InlineStr<N> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl<const N: usize> std::fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_text_holds_what_fits_and_refuses_the_rest() {
        let v4: std::net::IpAddr = [203, 0, 113, 7].into();
        assert_eq!(InlineStr::<{ crate::audit::IP_TEXT_MAX }>::display(v4).map(|t| t.as_str().to_owned()).as_deref(), Some("203.0.113.7"));
        let longest: std::net::IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".parse().expect("an address");
        let text = InlineStr::<{ crate::audit::IP_TEXT_MAX }>::display(longest).expect("the longest address text fits");
        assert_eq!(text.as_str(), longest.to_string());
        assert!(InlineStr::<4>::display("12345").is_none());
        assert_eq!(InlineStr::<4>::display("1234").map(|t| t.as_str().len()), Some(4));
        assert_eq!(InlineStr::<4>::new().as_str(), "");
        assert_eq!(InlineStr::<4>::ascii(b"abcd").map(|t| t.as_str().to_owned()).as_deref(), Some("abcd"));
        assert!(InlineStr::<4>::ascii(b"abcde").is_none(), "too long");
        assert!(InlineStr::<4>::ascii("é".as_bytes()).is_none(), "not ASCII");
    }
}
