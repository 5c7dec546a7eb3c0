//! The built-in checkers (`checker.type` `exact`, `lines`, `tokens`, `float`): whether a test's
//! output matches its expected output, and if not, where it first differs.
//!
//! Each walks the two outputs once, side by side, and stops at the first difference, so a
//! checker costs at most the bytes it reads (a 64 MiB output of one token, no newline, or 10^7
//! tokens included) and allocates only its message.

use crate::message::{capped, quote};
use crate::tokens::{Lines, Tokens};
use serde::{Deserialize, Serialize};

/// A built-in checker as clients write it (`{"type": "tokens", "case_sensitive": false}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Checker {
    /// Byte for byte. (Braced so that unknown fields are refused as for every other type.)
    Exact {},
    /// Line by line, each line's trailing whitespace and the output's trailing empty lines
    /// ignored (Judge0's comparison of `expected_output`). The default.
    Lines {},
    /// Whitespace-separated tokens; `case_sensitive: false` folds ASCII letters.
    Tokens {
        #[serde(default = "yes")]
        case_sensitive: bool,
    },
    /// Tokens, where two tokens that both read as decimal numbers match when they differ by at
    /// most `abs_tolerance`, or by at most `rel_tolerance` times the expected value (either
    /// suffices, as Kattis' default validator does); other tokens must be equal.
    Float {
        #[serde(default)]
        abs_tolerance: Option<f64>,
        #[serde(default)]
        rel_tolerance: Option<f64>,
    },
}

fn yes() -> bool {
    true
}

impl Default for Checker {
    fn default() -> Self {
        Self::Lines {}
    }
}

/// The tolerance `float` uses when the client gives neither: 10^-6, absolute and relative.
pub const DEFAULT_FLOAT_TOLERANCE: f64 = 1e-6;

/// What a checker decided about one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub accepted: bool,
    /// Where the output first differs (empty when accepted); at most `message::MAX_BYTES`.
    pub message: String,
}

impl Checked {
    fn accepted() -> Self {
        Self {
            accepted: true,
            message: String::new(),
        }
    }

    fn wrong(message: String) -> Self {
        Self {
            accepted: false,
            message: capped(message),
        }
    }
}

impl Checker {
    /// Checks `output` against `expected`.
    pub fn check(&self, output: &[u8], expected: &[u8]) -> Checked {
        match self {
            Self::Exact {} => exact(output, expected),
            Self::Lines {} => lines(output, expected),
            Self::Tokens { case_sensitive } => tokens(output, expected, |a, b| {
                if *case_sensitive {
                    a == b
                } else {
                    a.eq_ignore_ascii_case(b)
                }
            }),
            Self::Float {
                abs_tolerance,
                rel_tolerance,
            } => {
                let (abs, rel) = match (abs_tolerance, rel_tolerance) {
                    (None, None) => (DEFAULT_FLOAT_TOLERANCE, DEFAULT_FLOAT_TOLERANCE),
                    (a, r) => (a.unwrap_or(0.0), r.unwrap_or(0.0)),
                };
                tokens(output, expected, |got, want| {
                    float_match(got, want, abs, rel)
                })
            }
        }
    }

    /// Why this checker's settings are unusable, if they are (a negative or non-finite
    /// tolerance), naming the field.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        let Self::Float {
            abs_tolerance,
            rel_tolerance,
        } = self
        else {
            return None;
        };
        [
            ("abs_tolerance", abs_tolerance),
            ("rel_tolerance", rel_tolerance),
        ]
        .into_iter()
        .find_map(|(field, value)| match value {
            Some(v) if !v.is_finite() || *v < 0.0 => {
                Some((field, format!("must be a number >= 0, got {v}")))
            }
            _ => None,
        })
    }
}

fn exact(output: &[u8], expected: &[u8]) -> Checked {
    let at = output
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(output.len().min(expected.len()));
    if at == output.len() && at == expected.len() {
        return Checked::accepted();
    }
    let rest = |b: &[u8]| {
        if at < b.len() {
            quote(&b[at..])
        } else {
            "the end of output".to_string()
        }
    };
    Checked::wrong(format!(
        "byte {}: expected {}, got {}",
        at + 1,
        rest(expected),
        rest(output)
    ))
}

/// Trailing empty lines do not count: the line count that matters is up to the last non-empty.
fn lines(output: &[u8], expected: &[u8]) -> Checked {
    let mut got = Lines::new(output);
    let mut want = Lines::new(expected);
    let mut n = 0;
    loop {
        n += 1;
        match (got.next(), want.next()) {
            (None, None) => return Checked::accepted(),
            (Some(g), Some(w)) if g == w => {}
            (Some(g), Some(w)) => {
                return Checked::wrong(format!("line {n}: expected {}, got {}", quote(w), quote(g)))
            }
            (Some(g), None) => {
                if g.is_empty() && got.all(|l| l.is_empty()) {
                    return Checked::accepted();
                }
                return Checked::wrong(format!(
                    "line {n}: expected the end of output, got {}",
                    quote(g)
                ));
            }
            (None, Some(w)) => {
                if w.is_empty() && want.all(|l| l.is_empty()) {
                    return Checked::accepted();
                }
                return Checked::wrong(format!(
                    "line {n}: expected {}, got the end of output",
                    quote(w)
                ));
            }
        }
    }
}

fn tokens(output: &[u8], expected: &[u8], same: impl Fn(&[u8], &[u8]) -> bool) -> Checked {
    let mut got = Tokens::new(output);
    let mut want = Tokens::new(expected);
    let mut n = 0;
    loop {
        n += 1;
        match (got.next(), want.next()) {
            (None, None) => return Checked::accepted(),
            (Some((_, g)), Some((_, w))) if same(g, w) => {}
            (Some((line, g)), Some((_, w))) => {
                return Checked::wrong(format!(
                    "token {n} (line {line}): expected {}, got {}",
                    quote(w),
                    quote(g)
                ))
            }
            (Some((line, g)), None) => {
                return Checked::wrong(format!(
                    "token {n} (line {line}): expected the end of output, got {}",
                    quote(g)
                ))
            }
            (None, Some((_, w))) => {
                return Checked::wrong(format!(
                    "token {n}: expected {}, got the end of output",
                    quote(w)
                ))
            }
        }
    }
}

/// Longest token read as a number; longer ones are compared as text (no real answer has 400
/// digits, and parsing stays cheap).
const MAX_NUMBER_BYTES: usize = 400;

/// `token` as a finite decimal number (`-1`, `2.50`, `.5`, `1e-9`, `+3.`), or `None`: `inf`,
/// `nan`, hex floats and the like are words, compared exactly.
fn number(token: &[u8]) -> Option<f64> {
    if token.len() > MAX_NUMBER_BYTES {
        return None;
    }
    let mut i = usize::from(matches!(token.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while token.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if token.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return None;
    }
    if matches!(token.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(token.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != token.len() {
        return None;
    }
    let value: f64 = std::str::from_utf8(token).ok()?.parse().ok()?;
    value.is_finite().then_some(value)
}

fn float_match(got: &[u8], want: &[u8], abs: f64, rel: f64) -> bool {
    match (number(got), number(want)) {
        (Some(g), Some(w)) => {
            // The decimal texts are exact; their nearest doubles are not, so a difference that
            // is exactly the tolerance in decimal (1.01 against 1 at 0.01) may come out a few
            // ulps above it. Allow for that rounding, and nothing more.
            let diff = (g - w).abs();
            let rounding = 4.0 * f64::EPSILON * g.abs().max(w.abs());
            diff <= abs + rounding || diff <= rel * w.abs() + rounding
        }
        _ => got == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(checker: &Checker, output: &str, expected: &str) -> bool {
        checker
            .check(output.as_bytes(), expected.as_bytes())
            .accepted
    }

    fn tokens_checker(case_sensitive: bool) -> Checker {
        Checker::Tokens { case_sensitive }
    }

    fn float(abs: Option<f64>, rel: Option<f64>) -> Checker {
        Checker::Float {
            abs_tolerance: abs,
            rel_tolerance: rel,
        }
    }

    #[test]
    fn exact_is_byte_for_byte() {
        assert!(ok(&Checker::Exact {}, "3\n", "3\n"));
        assert!(!ok(&Checker::Exact {}, "3", "3\n"));
        assert!(!ok(&Checker::Exact {}, "3 \n", "3\n"));
        assert!(ok(&Checker::Exact {}, "", ""));
        let m = Checker::Exact {}.check(b"abd", b"abc").message;
        assert_eq!(m, r#"byte 3: expected "c", got "d""#);
        let m = Checker::Exact {}.check(b"ab", b"abc").message;
        assert_eq!(m, r#"byte 3: expected "c", got the end of output"#);
    }

    #[test]
    fn lines_ignore_trailing_whitespace_and_trailing_empty_lines() {
        let c = Checker::Lines {};
        assert!(ok(&c, "1 2  \r\n3\t\n\n\n", "1 2\n3"));
        assert!(ok(&c, "1 2\n3", "1 2\n3\n\n"));
        assert!(ok(&c, "", "\n\n"));
        assert!(ok(&c, "\n", ""));
        assert!(!ok(&c, "1  2\n3", "1 2\n3"), "inner whitespace counts");
        assert!(!ok(&c, " 1", "1"), "leading whitespace counts");
        assert!(!ok(&c, "1\n\n3", "1\n3"), "an inner empty line counts");
        assert!(!ok(&c, "", "1"));
        let m = c.check(b"1\n2\n", b"1\n3\n").message;
        assert_eq!(m, r#"line 2: expected "3", got "2""#);
        let m = c.check(b"1\n2\n", b"1\n").message;
        assert_eq!(m, r#"line 2: expected the end of output, got "2""#);
    }

    #[test]
    fn tokens_ignore_all_whitespace_and_can_fold_case() {
        assert!(ok(&tokens_checker(true), "  1\n\n2\t3 ", "1 2 3\n"));
        assert!(!ok(&tokens_checker(true), "YES", "yes"));
        assert!(ok(&tokens_checker(false), "YES", "yes"));
        assert!(
            !ok(&tokens_checker(true), "1 2 3 4", "1 2 3"),
            "an extra token"
        );
        assert!(
            !ok(&tokens_checker(true), "1 2", "1 2 3"),
            "a missing token"
        );
        assert!(ok(&tokens_checker(true), "", " \n"));
        let m = tokens_checker(true).check(b"1\n2 x", b"1 2 3").message;
        assert_eq!(m, r#"token 3 (line 2): expected "3", got "x""#);
    }

    #[test]
    fn float_tolerances_are_inclusive_and_either_suffices() {
        let abs = float(Some(0.01), None);
        assert!(ok(&abs, "1.01", "1"));
        assert!(ok(&abs, "0.99", "1.0"));
        assert!(!ok(&abs, "1.0101", "1"));
        let rel = float(None, Some(0.01));
        assert!(ok(&rel, "1010", "1000"));
        assert!(!ok(&rel, "1011", "1000"));
        assert!(!ok(&rel, "0.001", "0"), "relative to zero is exact");
        let both = float(Some(0.5), Some(0.001));
        assert!(ok(&both, "0.4", "0"), "absolute suffices near zero");
        assert!(
            ok(&both, "1000.9", "1000"),
            "relative suffices for large values"
        );
        assert!(!ok(&both, "1001.1", "1000"));
        let default = float(None, None);
        assert!(ok(&default, "3.1415926", "3.14159265"));
        assert!(!ok(&default, "3.1416", "3.14159265"));
    }

    #[test]
    fn float_reads_only_decimal_numbers_and_compares_words_exactly() {
        let c = float(Some(0.1), None);
        assert!(ok(&c, "x 1.05 y", "x 1 y"));
        assert!(!ok(&c, "X 1 y", "x 1 y"));
        assert!(ok(&c, "1e0 .5 -2. +3", "1 0.5 -2 3"));
        for word in [
            "inf", "nan", "NaN", "0x10", "1e", "e5", ".", "-", "1.2.3", "1e400",
        ] {
            assert_eq!(number(word.as_bytes()), None, "{word}");
        }
        assert!(ok(&c, "nan", "nan"), "words match themselves");
        assert!(!ok(&c, "nan", "1"));
        assert!(!ok(&c, "1", "nan"));
        assert!(!ok(&c, "1 2", "1"));
    }

    #[test]
    fn negative_or_infinite_tolerances_are_refused_by_field() {
        assert_eq!(
            float(Some(-1.0), None).invalid().unwrap().0,
            "abs_tolerance"
        );
        assert_eq!(
            float(None, Some(f64::NAN)).invalid().unwrap().0,
            "rel_tolerance"
        );
        assert_eq!(float(Some(0.0), Some(1.0)).invalid(), None);
        assert_eq!(Checker::Lines {}.invalid(), None);
    }

    #[test]
    fn hostile_output_is_judged_in_linear_time_with_a_short_message() {
        // 64 MiB of one token without a newline, invalid UTF-8 and NUL inside.
        let mut huge = vec![b'7'; 64 << 20];
        huge[1000] = 0xff;
        huge[2000] = 0;
        for c in [
            Checker::Exact {},
            Checker::Lines {},
            tokens_checker(false),
            float(None, None),
        ] {
            let checked = c.check(&huge, b"7");
            assert!(!checked.accepted, "{c:?}");
            assert!(checked.message.len() <= crate::message::MAX_BYTES, "{c:?}");
        }
        // 10^7 tokens, the last one wrong.
        let mut many = "1 ".repeat(10_000_000).into_bytes();
        let expected = many.clone();
        let n = many.len();
        many[n - 2] = b'2';
        for c in [tokens_checker(true), float(Some(0.5), None)] {
            let checked = c.check(&many, &expected);
            assert!(!checked.accepted);
            assert!(
                checked.message.starts_with("token 10000000 "),
                "{}",
                checked.message
            );
        }
        assert!(tokens_checker(true).check(&expected, &expected).accepted);
    }

    #[test]
    fn the_wire_form_is_the_contracts() {
        let parse = |s: &str| serde_json::from_str::<Checker>(s);
        assert_eq!(parse(r#"{"type":"exact"}"#).unwrap(), Checker::Exact {});
        assert_eq!(parse(r#"{"type":"tokens"}"#).unwrap(), tokens_checker(true));
        assert_eq!(
            parse(r#"{"type":"tokens","case_sensitive":false}"#).unwrap(),
            tokens_checker(false)
        );
        assert_eq!(
            parse(r#"{"type":"float","abs_tolerance":0.001}"#).unwrap(),
            float(Some(0.001), None)
        );
        assert!(parse(r#"{"type":"lines","case_sensitive":false}"#).is_err());
        assert!(parse(r#"{"type":"fuzzy"}"#).is_err());
        assert_eq!(Checker::default(), Checker::Lines {});
    }
}
