//! The generated part of `docs/benchmarks.md`: everything between two HTML comments, so a run
//! replaces its own report and leaves the hand-written rest of the page alone.

pub const BEGIN: &str = "<!-- bench:begin -->";
pub const END: &str = "<!-- bench:end -->";

/// `doc` with `section` between the markers. Without markers yet, the section goes right after
/// the page's introduction: before its first `## ` heading (at the end if it has none).
pub fn replace_section(doc: &str, section: &str) -> String {
    let section = section.trim_end_matches('\n');
    if let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) {
        if begin < end {
            let body_start = begin + BEGIN.len();
            return format!("{}\n{section}\n{}", &doc[..body_start], &doc[end..]);
        }
    }
    let block = format!("{BEGIN}\n{section}\n{END}\n");
    let first_heading = doc
        .match_indices("\n## ")
        .next()
        .map(|(at, _)| at + 1)
        .or_else(|| doc.starts_with("## ").then_some(0));
    match first_heading {
        Some(at) => format!("{}{block}\n{}", &doc[..at], &doc[at..]),
        None if doc.is_empty() => block,
        None => format!("{}\n\n{block}", doc.trim_end_matches('\n')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# Benchmarks\n\nIntro text.\n\n## Core path\n\nold figures\n";

    #[test]
    fn first_run_inserts_after_the_introduction() {
        let out = replace_section(PAGE, "## Load generator\n\nnew\n");
        assert_eq!(
            out,
            "# Benchmarks\n\nIntro text.\n\n<!-- bench:begin -->\n## Load generator\n\nnew\n<!-- bench:end -->\n\n## Core path\n\nold figures\n"
        );
    }

    #[test]
    fn later_runs_replace_only_between_the_markers() {
        let once = replace_section(PAGE, "first");
        let twice = replace_section(&once, "second");
        assert!(twice.contains("second") && !twice.contains("first"));
        assert!(twice.starts_with("# Benchmarks\n\nIntro text.\n\n"));
        assert!(twice.ends_with("## Core path\n\nold figures\n"));
        assert_eq!(twice.matches(BEGIN).count(), 1);
        assert_eq!(replace_section(&twice, "second"), twice, "idempotent");
    }

    #[test]
    fn pages_without_headings() {
        assert_eq!(
            replace_section("# T\n\nintro\n", "x"),
            format!("# T\n\nintro\n\n{BEGIN}\nx\n{END}\n")
        );
        assert_eq!(replace_section("", "x"), format!("{BEGIN}\nx\n{END}\n"));
    }
}
