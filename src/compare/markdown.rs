//! Rendering a [`Report`]: Markdown for a pull-request comment (the summary line first, then
//! the rows that matter in a table, then everything else folded in `<details>`), and plain
//! text for a terminal.

use std::fmt::Write as _;

use super::{Report, Row, Side, Verdict};

/// The one-line summary: gate result and counts per verdict.
pub fn summary(r: &Report) -> String {
    let mut parts = Vec::new();
    for v in [
        Verdict::Failed,
        Verdict::Regressed,
        Verdict::Improved,
        Verdict::Noisy,
        Verdict::Unchanged,
        Verdict::Missing,
        Verdict::New,
    ] {
        let n = r.count(v);
        if n > 0 || matches!(v, Verdict::Regressed | Verdict::Unchanged) {
            parts.push(format!("{n} {}", v.label()));
        }
    }
    format!(
        "{} {}: {} (threshold {}, {}{})",
        if r.failed { "❌" } else { "✅" },
        if r.failed {
            "performance gate failed"
        } else {
            "no regression"
        },
        parts.join(", "),
        pct(r.threshold),
        r.metrics.join(", "),
        if r.relative {
            ", within-run ratios"
        } else {
            ""
        }
    )
}

fn pct(x: f64) -> String {
    format!("{}%", trim(x * 100.0))
}

fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// A value with engineering-style precision (3 significant digits, thousands as k/M/G).
pub fn num(x: f64) -> String {
    let a = x.abs();
    let (v, suffix) = if a >= 1e9 {
        (x / 1e9, "G")
    } else if a >= 1e6 {
        (x / 1e6, "M")
    } else if a >= 1e4 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    format!("{v:.digits$}{suffix}")
}

fn side(s: &Option<Side>, unit: &str) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.n == 1 => format!("{} {unit}", num(s.center)),
        Some(s) => format!("{} {unit} ({}–{})", num(s.center), num(s.low), num(s.high)),
    }
}

fn change(r: &Row) -> String {
    match r.change {
        Some(c) => format!("{}{}%", if c >= 0.0 { "+" } else { "" }, trim(c * 100.0)),
        None => "—".into(),
    }
}

fn icon(v: Verdict) -> &'static str {
    match v {
        Verdict::Failed => "💥",
        Verdict::Regressed => "🔴",
        Verdict::Improved => "🟢",
        Verdict::Noisy => "〰️",
        Verdict::Unchanged => "⚪",
        Verdict::Missing => "❔",
        Verdict::New => "🆕",
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn table(rows: &[&Row]) -> String {
    let mut s = String::from(
        "| verdict | id | metric | baseline | candidate | change | evidence |\n| --- | --- | --- | --- | --- | ---: | --- |\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} {} | `{}` | {} | {} | {} | {} | {} |",
            icon(r.verdict),
            r.verdict.label(),
            md_escape(&r.id),
            r.metric,
            side(&r.base, r.unit),
            side(&r.new, r.unit),
            change(r),
            md_escape(&r.evidence)
        );
    }
    s
}

/// The report as Markdown for a pull-request comment.
pub fn to_markdown(r: &Report) -> String {
    let mut s = format!("**{}**\n\n", summary(r));
    if !r.title.is_empty() {
        let _ = writeln!(s, "`concbench compare` {}\n", md_escape(&r.title));
    }
    let (top, rest): (Vec<&Row>, Vec<&Row>) = r.rows.iter().partition(|x| {
        matches!(
            x.verdict,
            Verdict::Failed | Verdict::Regressed | Verdict::Improved
        )
    });
    if top.is_empty() {
        s.push_str("No figure moved beyond the threshold with separated windows.\n\n");
    } else {
        s.push_str("### Regressions and improvements\n\n");
        s.push_str(&table(&top));
        s.push('\n');
    }
    for n in &r.notes {
        let _ = writeln!(s, "> {}", md_escape(n));
    }
    if !r.notes.is_empty() {
        s.push('\n');
    }
    if !rest.is_empty() {
        let _ = writeln!(
            s,
            "<details><summary>The other {} comparison(s)</summary>\n",
            rest.len()
        );
        s.push_str(&table(&rest));
        s.push_str("\n</details>\n\n");
    }
    s.push_str(
        "<sub>Regressed/improved: beyond the threshold and the windows separated (rank test with 4+ windows a side, disjoint ranges with fewer). Noisy: beyond the threshold, windows overlap. Values: median (min–max) over windows.</sub>\n",
    );
    s
}

/// The report as plain text for a terminal.
pub fn to_text(r: &Report) -> String {
    let mut s = format!("{}\n", summary(r));
    if !r.title.is_empty() {
        let _ = writeln!(s, "{}", r.title);
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header(vec![
        "verdict",
        "id",
        "metric",
        "baseline",
        "candidate",
        "change",
        "evidence",
    ]);
    for row in &r.rows {
        t.add_row(vec![
            row.verdict.label().to_string(),
            row.id.clone(),
            row.metric.clone(),
            side(&row.base, row.unit),
            side(&row.new, row.unit),
            change(row),
            row.evidence.clone(),
        ]);
    }
    let _ = writeln!(s, "{t}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(1_234_567.0), "1.23M");
        assert_eq!(num(45_600.0), "45.6k");
        assert_eq!(num(9_999.0), "9999");
        assert_eq!(num(0.5), "0.500");
        assert_eq!(pct(0.05), "5%");
        assert_eq!(pct(0.125), "12.5%");
    }
}
