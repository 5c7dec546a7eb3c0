//! Grouped bar charts on a log scale, written as plain SVG: the paths differ by two to three
//! orders of magnitude (a native C program in a millisecond, a container per job in hundreds),
//! which a linear axis cannot show. No plotting crate: a few rectangles, lines and labels.

use crate::stats::three_digits;
use std::fmt::Write;

/// One bar: its height and, optionally, a whisker above it (p90 over a p50 bar).
#[derive(Clone, Debug)]
pub struct Bar {
    pub value: f64,
    pub whisker: Option<f64>,
}

/// A legend entry; bars of one series share its colour.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
}

/// Bars side by side, one per series (`None`: not measured).
#[derive(Clone, Debug)]
pub struct Group {
    pub label: String,
    pub bars: Vec<Option<Bar>>,
}

/// One panel of groups, with its own axes (one per language).
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub groups: Vec<Group>,
}

#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub subtitle: String,
    pub y_label: String,
    pub x_label: String,
    pub series: Vec<Series>,
    pub panels: Vec<Panel>,
}

/// Colours of the paths, the same in every chart.
pub const PALETTE: [&str; 6] = [
    "#4d4d4d", "#1b9e77", "#7570b3", "#d95f02", "#e7298a", "#66a61e",
];

const BAR_W: f64 = 16.0;
const GROUP_GAP: f64 = 22.0;
const PANEL_GAP: f64 = 80.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 118.0;
const PLOT_H: f64 = 320.0;
const BOTTOM: f64 = 64.0;

/// Escapes text for use in SVG element content and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick label: 0.5, 1, 20, 1000, 10k.
fn tick_label(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{}k", v / 1000.0)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

/// The log-scale range: whole decades around every bar and whisker.
fn decades(chart: &Chart) -> (f64, f64) {
    let values = chart
        .panels
        .iter()
        .flat_map(|p| &p.groups)
        .flat_map(|g| g.bars.iter().flatten())
        .flat_map(|b| std::iter::once(b.value).chain(b.whisker))
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (1.0, 10.0);
    }
    let lo = lo.log10().floor();
    let hi = hi.log10().ceil().max(lo + 1.0);
    (lo, hi)
}

/// The whole SVG document.
pub fn render(chart: &Chart) -> String {
    let n_series = chart.series.len().max(1) as f64;
    let group_w = n_series * BAR_W + GROUP_GAP;
    let panel_widths: Vec<f64> = chart
        .panels
        .iter()
        .map(|p| p.groups.len().max(1) as f64 * group_w + GROUP_GAP)
        .collect();
    let width = LEFT
        + panel_widths.iter().sum::<f64>()
        + PANEL_GAP * (panel_widths.len().max(1) - 1) as f64
        + 30.0;
    let width = width.max(620.0);
    let height = TOP + PLOT_H + BOTTOM;
    let (lo, hi) = decades(chart);
    let y = |v: f64| TOP + PLOT_H - (v.max(10f64.powf(lo)).log10() - lo) / (hi - lo) * PLOT_H;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12">"##
    );
    let _ = writeln!(
        svg,
        r##"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"##,
        escape(&chart.title)
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="44" fill="#555">{}</text>"##,
        escape(&chart.subtitle)
    );

    // Legend: one row, wrapping when it is wider than the chart.
    let (mut lx, mut ly) = (LEFT, 66.0);
    for s in &chart.series {
        let w = 26.0 + 7.0 * s.name.chars().count() as f64;
        if lx + w > width - 10.0 {
            lx = LEFT;
            ly += 18.0;
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/>"##,
            ly - 10.0,
            s.color
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{ly:.1}">{}</text>"##,
            lx + 17.0,
            escape(&s.name)
        );
        lx += w + 12.0;
    }

    // Y axis title, rotated, at the far left.
    let mid = TOP + PLOT_H / 2.0;
    let _ = writeln!(
        svg,
        r##"<text x="18" y="{mid:.1}" transform="rotate(-90 18 {mid:.1})" text-anchor="middle">{}</text>"##,
        escape(&chart.y_label)
    );

    let mut x0 = LEFT;
    for (panel, panel_w) in chart.panels.iter().zip(&panel_widths) {
        let x1 = x0 + panel_w;
        // Grid: a solid line and label per decade, faint ones at 2× and 5×.
        let mut decade = lo;
        while decade <= hi {
            let v = 10f64.powf(decade);
            let gy = y(v);
            let _ = writeln!(
                svg,
                r##"<line x1="{x0:.1}" y1="{gy:.1}" x2="{x1:.1}" y2="{gy:.1}" stroke="#ccc"/>"##
            );
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{}</text>"##,
                x0 - 6.0,
                gy + 4.0,
                tick_label(v)
            );
            if decade < hi {
                for m in [2.0, 5.0] {
                    let gy = y(v * m);
                    let _ = writeln!(
                        svg,
                        r##"<line x1="{x0:.1}" y1="{gy:.1}" x2="{x1:.1}" y2="{gy:.1}" stroke="#eee"/>"##
                    );
                }
            }
            decade += 1.0;
        }
        // Axes.
        let base = TOP + PLOT_H;
        let _ = writeln!(
            svg,
            r##"<line x1="{x0:.1}" y1="{TOP}" x2="{x0:.1}" y2="{base:.1}" stroke="#333"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{x0:.1}" y1="{base:.1}" x2="{x1:.1}" y2="{base:.1}" stroke="#333"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"##,
            (x0 + x1) / 2.0,
            TOP - 8.0,
            escape(&panel.title)
        );
        for (gi, group) in panel.groups.iter().enumerate() {
            let gx = x0 + GROUP_GAP + gi as f64 * group_w;
            for (si, bar) in group.bars.iter().enumerate() {
                let Some(bar) = bar else { continue };
                let bx = gx + si as f64 * BAR_W;
                let top = y(bar.value);
                let color = chart.series.get(si).map_or("#999", |s| s.color);
                let name = chart.series.get(si).map_or("", |s| s.name.as_str());
                let tip = match bar.whisker {
                    Some(w) => format!(
                        "{name}, {}: {} (whisker {})",
                        group.label,
                        three_digits(bar.value),
                        three_digits(w)
                    ),
                    None => format!("{name}, {}: {}", group.label, three_digits(bar.value)),
                };
                let _ = writeln!(
                    svg,
                    r##"<rect x="{bx:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"##,
                    BAR_W - 2.0,
                    (base - top).max(0.5),
                    escape(&tip)
                );
                let mut label_y = top;
                if let Some(w) = bar.whisker.filter(|w| *w > bar.value) {
                    let wy = y(w);
                    let cx = bx + (BAR_W - 2.0) / 2.0;
                    let _ = writeln!(
                        svg,
                        r##"<line x1="{cx:.1}" y1="{top:.1}" x2="{cx:.1}" y2="{wy:.1}" stroke="#000"/>"##
                    );
                    let _ = writeln!(
                        svg,
                        r##"<line x1="{:.1}" y1="{wy:.1}" x2="{:.1}" y2="{wy:.1}" stroke="#000"/>"##,
                        cx - 4.0,
                        cx + 4.0
                    );
                    label_y = wy;
                }
                let lx = bx + (BAR_W - 2.0) / 2.0 + 3.0;
                let ly = label_y - 4.0;
                let _ = writeln!(
                    svg,
                    r##"<text x="{lx:.1}" y="{ly:.1}" font-size="9" transform="rotate(-90 {lx:.1} {ly:.1})">{}</text>"##,
                    three_digits(bar.value)
                );
            }
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                gx + n_series * BAR_W / 2.0,
                base + 18.0,
                escape(&group.label)
            );
        }
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#333">{}</text>"##,
            (x0 + x1) / 2.0,
            base + 40.0,
            escape(&chart.x_label)
        );
        x0 = x1 + PANEL_GAP;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small well-formedness check: every tag closes in order, attributes are quoted, and
    /// text holds no raw `<` or unescaped `&`.
    pub(crate) fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>'), "stray > in text {text:?}");
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..text.len().min(i + 6)];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "unescaped & in {text:?}"
                );
            }
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "< inside tag {tag:?}");
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in {tag:?}"
            );
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("tag name");
                stack.push(name.to_string());
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        assert!(svg
            .trim_start()
            .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    }

    fn chart() -> Chart {
        let bar = |v: f64| {
            Some(Bar {
                value: v,
                whisker: Some(v * 1.3),
            })
        };
        Chart {
            title: "p50 <latency> & more".into(),
            subtitle: "quick \"run\"".into(),
            y_label: "ms".into(),
            x_label: "concurrency".into(),
            series: vec![
                Series {
                    name: "floor".into(),
                    color: PALETTE[0],
                },
                Series {
                    name: "naive".into(),
                    color: PALETTE[1],
                },
            ],
            panels: vec![
                Panel {
                    title: "python".into(),
                    groups: vec![
                        Group {
                            label: "1".into(),
                            bars: vec![bar(0.8), bar(250.0)],
                        },
                        Group {
                            label: "4".into(),
                            bars: vec![None, bar(900.0)],
                        },
                    ],
                },
                Panel {
                    title: "c".into(),
                    groups: vec![],
                },
            ],
        }
    }

    #[test]
    fn charts_are_well_formed_and_escaped() {
        let svg = render(&chart());
        assert_well_formed(&svg);
        assert!(svg.contains("p50 &lt;latency&gt; &amp; more"));
        assert!(
            svg.contains(">0.1<") && svg.contains(">1000<"),
            "decades from 0.1 to 1000"
        );
        assert_eq!(
            svg.matches("<rect").count(),
            1 + 2 + 3,
            "background, legend, bars"
        );
    }

    #[test]
    fn an_empty_chart_is_still_a_document() {
        let mut c = chart();
        c.panels.clear();
        assert_well_formed(&render(&c));
    }

    #[test]
    fn the_checker_catches_broken_documents() {
        for broken in [
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><g></svg>",
            "<svg xmlns=\"http://www.w3.org/2000/svg\">a & b</svg>",
        ] {
            assert!(std::panic::catch_unwind(|| assert_well_formed(broken)).is_err());
        }
    }

    #[test]
    fn labels() {
        assert_eq!(tick_label(0.1), "0.1");
        assert_eq!(tick_label(100.0), "100");
        assert_eq!(tick_label(10_000.0), "10k");
        assert_eq!(three_digits(4.567), "4.57");
        assert_eq!(three_digits(250.4), "250");
    }
}
