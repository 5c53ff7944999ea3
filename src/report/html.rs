//! report.html: one self-contained page (inline CSS, inline SVG charts, one inline script, no
//! fetches), readable offline and attachable to a CI run.
//!
//! The page declares how many charts it holds (`data-charts` on `<body>`); a small inline
//! script checks on load that each chart's SVG laid out a non-empty box with lines in it and
//! writes the count to `data-charts-rendered`, which the headless-browser test reads back.

use std::fmt::Write as _;

use super::doc::{Block, Doc, Table};

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px auto;
       max-width: 1400px; padding: 0 16px; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 2em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure.chart { margin: 0; border: 1px solid #e2e2e2; background: #fff; width: 660px; }
figcaption { padding: 0 8px; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
figure.chart svg { display: block; }
p.shows { background: #f5f8ff; border-left: 4px solid #1f77b4; padding: 6px 10px; margin: 6px 0; }
.verdict-holds { color: #1b7f1b; font-weight: bold; }
.verdict-does-not-hold-here { color: #b3261e; font-weight: bold; }
.verdict-inconclusive { color: #777; font-weight: bold; }
nav ul { columns: 2; }
";

const SCRIPT: &str = "
(function () {
  var rendered = 0;
  document.querySelectorAll('figure.chart').forEach(function (f) {
    var svg = f.querySelector('svg');
    var box = svg ? svg.getBBox() : null;
    var ok = !!box && box.width > 0 && box.height > 0 &&
             svg.querySelectorAll('polyline, circle, line, path').length > 0 &&
             svg.querySelectorAll('text').length > 0;
    f.setAttribute('data-rendered', ok ? 'yes' : 'no');
    if (ok) { rendered += 1; }
  });
  document.body.setAttribute('data-charts-rendered', String(rendered));
})();
";

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(c),
        }
    }
    o
}

fn anchor(i: usize) -> String {
    format!("s{i}")
}

/// Renders `doc` as one HTML page; `charts` holds each chart's SVG, in order.
pub fn render(doc: &Doc, charts: &[String]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n\
         <body data-charts=\"{}\" data-charts-rendered=\"pending\">\n<h1>{}</h1>\n",
        esc(&doc.title),
        charts.len(),
        esc(&doc.title)
    );
    s.push_str("<nav><ul>\n");
    for (i, sec) in doc.sections.iter().enumerate() {
        if sec.level == 2 {
            let _ = writeln!(
                s,
                "<li><a href=\"#{}\">{}</a></li>",
                anchor(i),
                esc(&sec.title)
            );
        }
    }
    s.push_str("</ul></nav>\n");
    let mut next_chart = 0;
    for (i, sec) in doc.sections.iter().enumerate() {
        let _ = writeln!(
            s,
            "<section>\n<h{l} id=\"{}\">{}</h{l}>",
            anchor(i),
            esc(&sec.title),
            l = sec.level
        );
        let mut in_charts = false;
        for b in &sec.blocks {
            let is_chart = matches!(b, Block::Figure(..));
            if is_chart && !in_charts {
                s.push_str("<div class=\"charts\">\n");
            } else if !is_chart && in_charts {
                s.push_str("</div>\n");
            }
            in_charts = is_chart;
            match b {
                Block::Text(t) => {
                    let _ = writeln!(s, "<p>{}</p>", esc(t));
                }
                Block::List(items) => {
                    s.push_str("<ul>\n");
                    for i in items {
                        let _ = writeln!(s, "<li>{}</li>", esc(i));
                    }
                    s.push_str("</ul>\n");
                }
                Block::Table(t) => s.push_str(&table(t)),
                Block::Figure(c, shows) => {
                    let svg = charts.get(next_chart).map(String::as_str).unwrap_or("");
                    next_chart += 1;
                    let _ = writeln!(
                        s,
                        "<figure class=\"chart\" data-title=\"{}\">\n{svg}\n<figcaption>",
                        esc(&c.title)
                    );
                    for l in shows {
                        let _ = writeln!(
                            s,
                            "<p class=\"shows\"><b>What this shows:</b> {}</p>",
                            esc(l)
                        );
                    }
                    s.push_str("</figcaption>\n</figure>\n");
                }
                Block::Claims(per_file) => {
                    for (label, claims) in per_file {
                        if !label.is_empty() {
                            let _ = writeln!(s, "<h3>{}</h3>", esc(label));
                        }
                        s.push_str(
                            "<table>\n<tr><th>claim</th><th>verdict</th><th>evidence</th></tr>\n",
                        );
                        for c in claims {
                            let v = c.verdict.label();
                            let _ = writeln!(
                                s,
                                "<tr><td>{}</td><td class=\"verdict-{}\">{}</td><td>{}</td></tr>",
                                esc(c.claim),
                                v.replace(' ', "-"),
                                esc(v),
                                esc(&c.evidence)
                            );
                        }
                        s.push_str("</table>\n");
                    }
                }
            }
        }
        if in_charts {
            s.push_str("</div>\n");
        }
        s.push_str("</section>\n");
    }
    let _ = write!(s, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    s
}

fn table(t: &Table) -> String {
    let mut s = String::from("<table>\n");
    if !t.caption.is_empty() {
        let _ = writeln!(s, "<caption>{}</caption>", esc(&t.caption));
    }
    s.push_str("<tr>");
    for h in &t.header {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>\n");
    for r in &t.rows {
        s.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            if t.numeric.contains(&i) {
                let _ = write!(s, "<td class=\"num\">{}</td>", esc(c));
            } else {
                let _ = write!(s, "<td>{}</td>", esc(c));
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}
