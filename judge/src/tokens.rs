//! Streaming splitters over raw bytes: tokens and lines are yielded as slices of the output, one
//! at a time, so comparing 10^7 tokens allocates nothing.

/// Whitespace as C's `isspace` in the "C" locale: what separates tokens for every judge.
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Whitespace-separated tokens of `bytes`, each with its 1-based line number.
pub struct Tokens<'a> {
    rest: &'a [u8],
    line: usize,
}

impl<'a> Tokens<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            line: 1,
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.rest.iter().position(|&b| !is_space(b));
        let skipped = &self.rest[..start.unwrap_or(self.rest.len())];
        self.line += skipped.iter().filter(|&&b| b == b'\n').count();
        let start = start?;
        let after = &self.rest[start..];
        let len = after
            .iter()
            .position(|&b| is_space(b))
            .unwrap_or(after.len());
        let token = &after[..len];
        self.rest = &after[len..];
        Some((self.line, token))
    }
}

/// The lines of `bytes` with trailing whitespace (spaces, tabs, `\r`, vertical tab, form feed)
/// removed from each; a final `\n` does not start another line.
pub struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Lines<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: (!bytes.is_empty()).then_some(bytes),
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        self.rest = (!next.is_empty()).then_some(next);
        let end = line
            .iter()
            .rposition(|&b| !is_space(b))
            .map_or(0, |i| i + 1);
        Some(&line[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_line() {
        let got: Vec<_> = Tokens::new(b"  a b\n\n c\t\r\nd").collect();
        assert_eq!(
            got,
            vec![
                (1, &b"a"[..]),
                (1, &b"b"[..]),
                (3, &b"c"[..]),
                (4, &b"d"[..])
            ]
        );
        assert_eq!(Tokens::new(b" \n\t ").count(), 0);
        assert_eq!(Tokens::new(b"").count(), 0);
    }

    #[test]
    fn lines_lose_trailing_whitespace_only() {
        let got: Vec<_> = Lines::new(b" a  \r\nb\t\n\nc").collect();
        assert_eq!(got, vec![&b" a"[..], b"b", b"", b"c"]);
        assert_eq!(Lines::new(b"x\n").count(), 1);
        assert_eq!(Lines::new(b"").count(), 0);
        assert_eq!(Lines::new(b"\n").collect::<Vec<_>>(), vec![&b""[..]]);
    }
}
