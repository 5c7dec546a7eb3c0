//! Checker messages: short, valid UTF-8 and safe to show whatever bytes the program printed.

/// Longest checker message, in bytes: 1,000 tests of messages stay small in Redis and in clients.
pub const MAX_BYTES: usize = 256;
/// Longest quotation of a token or line inside a message.
const QUOTE_BYTES: usize = 40;

/// `bytes` quoted for a message: printable ASCII as is, everything else escaped (`\n`, `\0`,
/// `\xff`), cut at [`QUOTE_BYTES`] with an ellipsis.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes.iter().take(QUOTE_BYTES) {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0 => out.push_str("\\0"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > QUOTE_BYTES {
        out.push_str("...");
    }
    out.push('"');
    out
}

/// `text` cut to [`MAX_BYTES`] on a character boundary.
pub fn capped(mut text: String) -> String {
    if text.len() > MAX_BYTES {
        let mut end = MAX_BYTES - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_what_is_not_printable() {
        assert_eq!(quote(b"a\"b\\\n\0\xff"), r#""a\"b\\\n\0\xff""#);
        let long = quote(&[b'x'; 1000]);
        assert_eq!(long.len(), QUOTE_BYTES + 5, "{long}");
        assert!(long.ends_with("...\""));
    }

    #[test]
    fn messages_are_capped_on_a_char_boundary() {
        let m = capped("é".repeat(1000));
        assert!(m.len() <= MAX_BYTES && m.ends_with("..."), "{}", m.len());
        assert_eq!(capped("short".into()), "short");
    }
}
