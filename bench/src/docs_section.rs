//! The generated part of `docs/benchmarks.md`: everything between two HTML comments, so a run
//! replaces its own report and leaves the hand-written rest of the page alone.

pub const BEGIN: &str = "<!-- bench:begin -->";
pub const END: &str = "<!-- bench:end -->";
/// The judge-mode part's own section (`judge_report`), so a `--judge-only` run replaces it alone.
pub const JUDGE_BEGIN: &str = "<!-- bench:judge:begin -->";
pub const JUDGE_END: &str = "<!-- bench:judge:end -->";

/// `doc` with `section` between `begin` and `end`; `None` when the markers are not there (in
/// that order).
fn replace_between(doc: &str, begin: &str, end: &str, section: &str) -> Option<String> {
    let b = doc.find(begin)?;
    let e = doc.find(end)?;
    (b < e).then(|| {
        let body_start = b + begin.len();
        format!("{}\n{section}\n{}", &doc[..body_start], &doc[e..])
    })
}

/// `doc` with the judge-mode `section` between its markers. Without them yet, it goes right
/// after the load generator's section (or where that one would go).
pub fn replace_judge_section(doc: &str, section: &str) -> String {
    let section = section.trim_end_matches('\n');
    if let Some(out) = replace_between(doc, JUDGE_BEGIN, JUDGE_END, section) {
        return out;
    }
    let block = format!("{JUDGE_BEGIN}\n{section}\n{JUDGE_END}\n");
    match doc.find(END) {
        Some(at) => {
            let after = at + END.len();
            let rest = doc[after..].trim_start_matches('\n');
            format!("{}\n\n{block}\n{rest}", &doc[..after])
        }
        None => insert_after_introduction(doc, &block),
    }
}

/// `doc` with `section` between the markers. Without markers yet, the section goes right after
/// the page's introduction: before its first `## ` heading (at the end if it has none).
pub fn replace_section(doc: &str, section: &str) -> String {
    let section = section.trim_end_matches('\n');
    if let Some(out) = replace_between(doc, BEGIN, END, section) {
        return out;
    }
    insert_after_introduction(doc, &format!("{BEGIN}\n{section}\n{END}\n"))
}

/// `block` before the page's first `## ` heading (at the end if it has none).
fn insert_after_introduction(doc: &str, block: &str) -> String {
    let first_heading = doc
        .match_indices("\n## ")
        .next()
        .map(|(at, _)| at + 1)
        .or_else(|| doc.starts_with("## ").then_some(0));
    match first_heading {
        Some(at) => format!("{}{block}\n{}", &doc[..at], &doc[at..]),
        None if doc.is_empty() => block.to_string(),
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
    fn the_judge_section_follows_the_load_generators_and_is_replaced_alone() {
        let page = replace_section(PAGE, "main");
        let once = replace_judge_section(&page, "judge 1");
        assert!(
            once.contains(&format!(
                "{END}\n\n{JUDGE_BEGIN}\njudge 1\n{JUDGE_END}\n\n## Core path"
            )),
            "{once}"
        );
        let twice = replace_judge_section(&once, "judge 2");
        assert!(twice.contains("judge 2") && !twice.contains("judge 1"));
        assert_eq!(
            replace_judge_section(&twice, "judge 2"),
            twice,
            "idempotent"
        );
        let main_again = replace_section(&twice, "main 2");
        assert!(main_again.contains("main 2") && main_again.contains("judge 2"));
        // A page without either section: where the load generator's would go.
        let alone = replace_judge_section(PAGE, "j");
        assert!(
            alone.contains(&format!(
                "Intro text.\n\n{JUDGE_BEGIN}\nj\n{JUDGE_END}\n\n## Core path"
            )),
            "{alone}"
        );
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
