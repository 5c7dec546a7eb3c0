//! The SemVer range selectors Piston's `version` takes (node-semver's `satisfies`): `*`, exact
//! versions, partial ones (`3`, `3.11`, `3.x`), `^`, `~`, comparisons (`>=3.8 <4`) and `||`.
//! Our versions that are not three numbers (Java's `17`) read as `17.0.0`, as node-semver's
//! `coerce` would.

type Version = (u64, u64, u64);

/// Up to three numbers of `text` (a missing or `x`/`X`/`*` part is `None`); `None` when it is
/// not a version at all.
fn partial(text: &str) -> Option<[Option<u64>; 3]> {
    let text = text.trim().trim_start_matches(['v', '=']);
    let mut parts = [None; 3];
    if text.is_empty() {
        return Some(parts);
    }
    // Prerelease and build suffixes are ignored.
    let core = text.split(['-', '+']).next().unwrap_or("");
    let pieces: Vec<&str> = core.split('.').collect();
    if pieces.len() > 3 {
        return None;
    }
    for (i, piece) in pieces.iter().enumerate() {
        match *piece {
            "x" | "X" | "*" => break,
            n => parts[i] = Some(n.parse().ok()?),
        }
    }
    Some(parts)
}

fn version(text: &str) -> Option<Version> {
    let p = partial(text)?;
    Some((p[0]?, p[1].unwrap_or(0), p[2].unwrap_or(0)))
}

/// The half-open interval `[low, high)` a partial version covers.
fn span(p: [Option<u64>; 3]) -> (Version, Option<Version>) {
    // No upper end past the largest number (`u64::MAX` as a part is open-ended).
    match p {
        [None, _, _] => ((0, 0, 0), None),
        [Some(a), None, _] => ((a, 0, 0), a.checked_add(1).map(|a| (a, 0, 0))),
        [Some(a), Some(b), None] => ((a, b, 0), b.checked_add(1).map(|b| (a, b, 0))),
        [Some(a), Some(b), Some(c)] => ((a, b, c), c.checked_add(1).map(|c| (a, b, c))),
    }
}

fn comparator(v: Version, c: &str) -> Option<bool> {
    let (op, rest) = [">=", "<=", ">", "<", "^", "~", "="]
        .iter()
        .find_map(|op| c.strip_prefix(op).map(|r| (*op, r)))
        .unwrap_or(("", c));
    let p = partial(rest)?;
    let (low, high) = span(p);
    Some(match op {
        "" | "=" => v >= low && high.is_none_or(|h| v < h),
        ">=" => v >= low,
        ">" => high.is_some_and(|h| v >= h),
        "<" => v < low,
        "<=" => high.is_none_or(|h| v < h),
        "^" => {
            let high = match p {
                [Some(0), Some(0), Some(c)] => c.checked_add(1).map(|c| (0, 0, c)),
                [Some(0), Some(b), _] if p[2].is_some() || b > 0 => {
                    b.checked_add(1).map(|b| (0, b, 0))
                }
                [Some(a), _, _] => a.checked_add(1).map(|a| (a, 0, 0)),
                [None, _, _] => return Some(true),
            };
            v >= low && high.is_none_or(|h| v < h)
        }
        "~" => {
            let high = match p {
                [Some(a), Some(b), _] => b.checked_add(1).map(|b| (a, b, 0)),
                [Some(a), None, _] => a.checked_add(1).map(|a| (a, 0, 0)),
                [None, _, _] => return Some(true),
            };
            v >= low && high.is_none_or(|h| v < h)
        }
        _ => return None,
    })
}

/// Whether our `version` satisfies Piston's `range`. A range that cannot be read matches
/// nothing (the runtime is then "unknown", as in Piston).
pub fn satisfies(version_text: &str, range: &str) -> bool {
    let Some(v) = version(version_text) else {
        return false;
    };
    range.split("||").any(|alternative| {
        let mut all = true;
        let mut tokens = alternative.split_whitespace().peekable();
        while let Some(token) = tokens.next() {
            // `>= 3` written with a space: join the operator with its version.
            let joined;
            let c = if [">=", "<=", ">", "<", "^", "~", "="].contains(&token) {
                joined = format!("{token}{}", tokens.next().unwrap_or(""));
                joined.as_str()
            } else {
                token
            };
            match comparator(v, c) {
                Some(ok) => all &= ok,
                None => return false,
            }
        }
        all
    })
}

#[cfg(test)]
mod tests {
    use super::satisfies;

    #[test]
    fn ranges_as_node_semver_reads_them() {
        for (v, r) in [
            ("3.11.2", "*"),
            ("3.11.2", ""),
            ("3.11.2", "3.11.2"),
            ("3.11.2", "3"),
            ("3.11.2", "3.x"),
            ("3.11.2", "3.11"),
            ("3.11.2", "^3.8"),
            ("3.11.2", "~3.11.0"),
            ("3.11.2", ">=3.8 <4"),
            ("3.11.2", "2 || 3"),
            ("3.11.2", ">= 3.10"),
            ("17", "17"),
            ("17", "^17.0.0"),
            ("1.19.8", "1.x.x"),
        ] {
            assert!(satisfies(v, r), "{v} should satisfy {r:?}");
        }
        for (v, r) in [
            ("3.11.2", "2"),
            ("3.11.2", "3.12"),
            ("3.11.2", "<3.11.2"),
            ("3.11.2", ">3.11.2"),
            ("3.11.2", "~3.10"),
            ("3.11.2", "^2"),
            ("3.11.2", "garbage"),
            ("0.2.5", "^0.3"),
            ("3.11.2", "18446744073709551615"),
            ("3.11.2", "^18446744073709551615.0.0"),
            ("3.11.2", "~3.18446744073709551615"),
        ] {
            assert!(!satisfies(v, r), "{v} should not satisfy {r:?}");
        }
    }
}
