//! report.md: the report as GitHub-flavoured Markdown, the same sections, tables and "what
//! this shows" lines as report.html; charts are named and left to the HTML report.

use std::fmt::Write as _;

use super::doc::{Block, Doc, Table};

/// Renders `doc` as Markdown.
pub fn render(doc: &Doc) -> String {
    let mut s = format!("# {}\n\n", doc.title);
    s.push_str("Charts are in report.html beside this file (one self-contained page).\n\n");
    for sec in &doc.sections {
        let _ = writeln!(s, "{} {}\n", "#".repeat(sec.level as usize), sec.title);
        for b in &sec.blocks {
            match b {
                Block::Text(t) => {
                    let _ = writeln!(s, "{}\n", t);
                }
                Block::List(items) => {
                    for i in items {
                        let _ = writeln!(s, "- {}", cell(i));
                    }
                    s.push('\n');
                }
                Block::Table(t) => s.push_str(&table(t)),
                Block::Figure(c, shows) => {
                    let _ = writeln!(s, "*Chart in report.html: {}.*\n", c.title);
                    for l in shows {
                        let _ = writeln!(s, "**What this shows:** {l}\n");
                    }
                }
                Block::Claims(per_file) => {
                    for (label, claims) in per_file {
                        if !label.is_empty() {
                            let _ = writeln!(s, "**{label}**\n");
                        }
                        let md = crate::claims::to_markdown(claims, None);
                        let body = md
                            .strip_prefix("## The lecture's claims on this machine\n\n")
                            .unwrap_or(&md);
                        s.push_str(body);
                        s.push('\n');
                    }
                }
            }
        }
    }
    s
}

/// Escapes what would break a table cell or a list item.
fn cell(t: &str) -> String {
    t.replace('|', "\\|").replace('\n', " ")
}

/// A GitHub-flavoured table; numeric columns align right.
pub fn table(t: &Table) -> String {
    let mut s = String::new();
    if !t.caption.is_empty() {
        let _ = writeln!(s, "**{}**\n", t.caption);
    }
    let row = |cells: &[String]| {
        let mut r = String::from("|");
        for c in cells {
            let _ = write!(r, " {} |", cell(c));
        }
        r.push('\n');
        r
    };
    s.push_str(&row(&t.header));
    s.push('|');
    for i in 0..t.header.len() {
        s.push_str(if t.numeric.contains(&i) {
            "---:|"
        } else {
            "---|"
        });
    }
    s.push('\n');
    for r in &t.rows {
        s.push_str(&row(r));
    }
    s.push('\n');
    s
}
