//! The comparison report as a document: sections of tables, charts and "what this shows" lines,
//! built once from one or more [`Results`] and then rendered by `markdown` and `html`. Both
//! outputs therefore say the same thing; only the charts are HTML-only.
//!
//! Several results files (machines or commits) are read side by side: every row and every
//! chart series carries its file's label, and the sentences are computed per file.

use std::fmt::Write as _;

use super::chart::Chart;
use super::result::{Results, Status};
use super::table::{mib, ns, si};

/// One results file and the label its rows and series carry.
pub struct Input {
    /// Short label (suite, host, commit: whatever tells the files apart); empty with one file.
    pub label: String,
    /// Where it was read from, as given.
    pub path: String,
    /// The results.
    pub results: Results,
}

/// The whole report.
pub struct Doc {
    /// Title line.
    pub title: String,
    /// Sections in order.
    pub sections: Vec<Section>,
}

/// A titled part of the report.
pub struct Section {
    /// Heading level: 2 for a part, 3 for a sub-part.
    pub level: u8,
    /// Heading text.
    pub title: String,
    /// What it contains, in order.
    pub blocks: Vec<Block>,
}

/// One piece of a section.
pub enum Block {
    /// A paragraph of plain text.
    Text(String),
    /// A bulleted list (warnings, notes).
    List(Vec<String>),
    /// A table.
    Table(Table),
    /// A chart (drawn in HTML, referred to in Markdown) and what it shows: sentences computed
    /// from the data, shown under it.
    Figure(Chart, Vec<String>),
    /// Markdown text rendered as is in report.md and as a table in HTML (the claims).
    Claims(Vec<(String, Vec<crate::claims::ClaimResult>)>),
}

/// A table of text cells.
#[derive(Default)]
pub struct Table {
    /// What the table holds (shown above it; may be empty).
    pub caption: String,
    /// Column headings.
    pub header: Vec<String>,
    /// Rows, each as long as the header.
    pub rows: Vec<Vec<String>>,
    /// Columns (by index) that hold numbers and align right.
    pub numeric: Vec<usize>,
}

impl Doc {
    /// Every chart of the report, in order.
    pub fn charts(&self) -> impl Iterator<Item = &Chart> {
        self.sections.iter().flat_map(|s| {
            s.blocks.iter().filter_map(|b| match b {
                Block::Figure(c, _) => Some(c),
                _ => None,
            })
        })
    }
}

/// Labels that tell `results` apart: the suite, host and commit where they differ, else the
/// file's position. One file gets an empty label.
pub fn labels(results: &[Results]) -> Vec<String> {
    if results.len() < 2 {
        return vec![String::new(); results.len()];
    }
    let differs = |f: &dyn Fn(&Results) -> String| {
        let first = f(&results[0]);
        results.iter().any(|r| f(r) != first)
    };
    let suite = |r: &Results| r.suite.name.clone();
    let host = |r: &Results| r.machine.hostname.clone();
    let commit = |r: &Results| short_commit(&r.tool.commit);
    let parts: Vec<&dyn Fn(&Results) -> String> = vec![&suite, &host, &commit];
    let used: Vec<_> = parts.into_iter().filter(|f| differs(*f)).collect();
    let mut out: Vec<String> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if used.is_empty() {
                format!("run {}", i + 1)
            } else {
                used.iter().map(|f| f(r)).collect::<Vec<_>>().join(" ")
            }
        })
        .collect();
    for i in 0..out.len() {
        if out[..i].contains(&out[i]) || out[i + 1..].contains(&out[i]) {
            out[i] = format!("{} #{}", out[i], i + 1);
        }
    }
    out
}

/// A commit id shortened to 7 hex digits, keeping a `-dirty` mark as `*`.
pub fn short_commit(c: &str) -> String {
    let dirty = c.ends_with("-dirty");
    let hex: String = c
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .take(7)
        .collect();
    match (hex.is_empty(), dirty) {
        (true, _) => c.to_string(),
        (false, true) => format!("{hex}*"),
        (false, false) => hex,
    }
}

/// Builds the report from `inputs`.
pub fn build(inputs: &[Input]) -> Doc {
    let mut sections = vec![machine_section(inputs)];
    sections.extend(super::cells::sections(inputs));
    sections.extend(mechanic_sections(inputs));
    if let Some(s) = server_section(inputs) {
        sections.push(s);
    }
    sections.push(claims_section(inputs));
    let suites: Vec<&str> = inputs
        .iter()
        .map(|i| i.results.suite.name.as_str())
        .collect();
    Doc {
        title: format!("concbench report: {}", suites.join(", ")),
        sections,
    }
}

fn machine_section(inputs: &[Input]) -> Section {
    let multi = inputs.len() > 1;
    let mut t = Table {
        header: vec!["".into()],
        ..Default::default()
    };
    for i in inputs {
        t.header.push(if multi {
            i.label.clone()
        } else {
            "this run".into()
        });
    }
    let row = |name: &str, f: &dyn Fn(&Results) -> String| {
        let mut r = vec![name.to_string()];
        r.extend(inputs.iter().map(|i| f(&i.results)));
        r
    };
    let file_row = {
        let mut r = vec!["file".to_string()];
        r.extend(inputs.iter().map(|i| i.path.clone()));
        r
    };
    t.rows = vec![
        file_row,
        row("suite", &|r| format!("{} ({})", r.suite.name, r.suite.file)),
        row("machine", &|r| r.machine.hostname.clone()),
        row("CPU", &|r| r.machine.cpu_model.clone()),
        row("cores", &|r| {
            format!(
                "{} logical, {} physical, SMT {}, allowed {}",
                r.machine.logical_cpus,
                r.machine.physical_cores,
                if r.machine.smt { "on" } else { "off" },
                crate::measure::machine::format_cpu_list(&r.machine.allowed_cpus)
            )
        }),
        row("kernel", &|r| {
            format!("{} ({})", r.machine.kernel, r.machine.os)
        }),
        row("VM", &|r| {
            r.machine
                .virtualization
                .clone()
                .unwrap_or_else(|| "none detected".into())
        }),
        row("governor", &|r| {
            r.machine.governor.clone().unwrap_or_else(|| "-".into())
        }),
        row("commit", &|r| {
            format!("{} (concbench {})", r.tool.commit, r.tool.version)
        }),
        row("rustc", &|r| r.machine.rustc.clone()),
        row("window", &|r| {
            format!(
                "{} × {} repeats after {} warmup",
                ns(r.suite.duration_ns as f64),
                r.suite.repeats,
                ns(r.suite.warmup_ns as f64)
            )
        }),
        row("started", &|r| utc(r.started_unix)),
        row("state", &|r| {
            let cells = r.cells.iter().filter(|c| c.status == Status::Ok).count();
            let state = if r.interrupted {
                "interrupted"
            } else if r.complete {
                "complete"
            } else {
                "incomplete"
            };
            format!(
                "{state}: {cells}/{} cells ok, {} mechanics, {} server cells",
                r.cells.len(),
                r.mechanics.len(),
                r.servers.len()
            )
        }),
    ];
    let mut blocks = vec![Block::Table(t)];
    let mut warnings = Vec::new();
    for i in inputs {
        let prefix = if multi {
            format!("{}: ", i.label)
        } else {
            String::new()
        };
        for w in &i.results.machine_warnings {
            warnings.push(format!("{prefix}{w}"));
        }
        if i.results.machine.debug_build {
            warnings.push(format!("{prefix}built without optimisations (debug build)"));
        }
    }
    if !warnings.is_empty() {
        blocks.push(Block::Text("Warnings:".into()));
        blocks.push(Block::List(warnings));
    }
    Section {
        level: 2,
        title: "Machine".into(),
        blocks,
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn mechanic_sections(inputs: &[Input]) -> Vec<Section> {
    let multi = inputs.len() > 1;
    let mut ids: Vec<&str> = Vec::new();
    for i in inputs {
        for m in &i.results.mechanics {
            if !ids.contains(&m.mechanic.as_str()) {
                ids.push(&m.mechanic);
            }
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let rows: Vec<_> = inputs
            .iter()
            .flat_map(|i| {
                i.results
                    .mechanics
                    .iter()
                    .filter(move |m| m.mechanic == id)
                    .map(move |m| (i, m))
            })
            .collect();
        let mut params: Vec<&str> = Vec::new();
        let mut extras: Vec<&str> = Vec::new();
        for (_, m) in &rows {
            for k in m.params.keys() {
                if !params.contains(&k.as_str()) {
                    params.push(k);
                }
            }
            for k in m.extra.keys() {
                if !extras.contains(&k.as_str()) {
                    extras.push(k);
                }
            }
        }
        let mut t = Table::default();
        if multi {
            t.header.push("run".into());
        }
        t.header.extend(params.iter().map(|p| p.to_string()));
        let first_num = t.header.len();
        t.header
            .extend(["time/iter".into(), "range".into(), "switches/iter".into()]);
        t.header.extend(
            extras
                .iter()
                .map(|e| e.strip_suffix("_ns").unwrap_or(e).replace('_', " ")),
        );
        t.numeric = (first_num..t.header.len()).collect();
        let mut notes = Vec::new();
        for (i, m) in &rows {
            let mut r = Vec::new();
            if multi {
                r.push(i.label.clone());
            }
            r.extend(
                params
                    .iter()
                    .map(|p| m.params.get(*p).cloned().unwrap_or_default()),
            );
            if m.status != Status::Ok {
                r.push(format!("{:?}", m.status).to_lowercase());
                r.resize(t.header.len(), String::new());
                if let Some(e) = &m.error {
                    notes.push(format!("{}: {e}", m.id));
                }
            } else {
                r.push(ns(m.ns_per_iter.median));
                r.push(format!(
                    "{}..{}",
                    ns(m.ns_per_iter.min),
                    ns(m.ns_per_iter.max)
                ));
                r.push(format!("{:.2}", m.switches_per_iter.median));
                for e in &extras {
                    r.push(
                        m.extra
                            .get(*e)
                            .map(|s| extra(e, s.median))
                            .unwrap_or_default(),
                    );
                }
            }
            t.rows.push(r);
        }
        let iteration = rows
            .first()
            .map(|(_, m)| m.iteration.clone())
            .unwrap_or_default();
        let mut blocks = vec![
            Block::Text(format!("One iteration: {iteration}.")),
            Block::Table(t),
        ];
        if !notes.is_empty() {
            blocks.push(Block::List(notes));
        }
        out.push(Section {
            level: 3,
            title: format!("Mechanic: {id}"),
            blocks,
        });
    }
    if !out.is_empty() {
        out.insert(
            0,
            Section {
                level: 2,
                title: "OS mechanics".into(),
                blocks: vec![Block::Text(
                    "Each mechanic measured on its own: medians over repeats, with the range."
                        .into(),
                )],
            },
        );
    }
    out
}

/// A mechanic's further figure, formatted by its name (`*_ns` are durations).
fn extra(name: &str, v: f64) -> String {
    if name.ends_with("_ns") {
        ns(v)
    } else if v.fract() == 0.0 && v.abs() < 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        si(v)
    } else {
        format!("{v:.3}")
    }
}

fn server_section(inputs: &[Input]) -> Option<Section> {
    if inputs.iter().all(|i| i.results.servers.is_empty()) {
        return None;
    }
    let multi = inputs.len() > 1;
    let mut t = Table::default();
    if multi {
        t.header.push("run".into());
    }
    t.header.extend(
        ["architecture", "W", "conns", "handler", "load"]
            .iter()
            .map(|s| s.to_string()),
    );
    let first_num = t.header.len();
    t.header.extend(
        [
            "req/s", "range", "p50", "p99", "p99.9", "errors", "vcsw/req", "icsw/req", "cpu/req",
            "balance", "RSS",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    t.numeric = (first_num..t.header.len()).collect();
    let mut notes = Vec::new();
    for i in inputs {
        for s in &i.results.servers {
            let mut r = Vec::new();
            if multi {
                r.push(i.label.clone());
            }
            r.extend([
                s.arch.clone(),
                s.workers.to_string(),
                s.connections.to_string(),
                s.handler.clone(),
                s.load.id(),
            ]);
            if s.status != Status::Ok {
                r.push(format!("{:?}", s.status).to_lowercase());
                r.resize(t.header.len(), String::new());
            } else {
                r.extend([
                    si(s.requests_per_sec.median),
                    format!(
                        "{}..{}",
                        si(s.requests_per_sec.min),
                        si(s.requests_per_sec.max)
                    ),
                    ns(s.latency_ns.p50 as f64),
                    ns(s.latency_ns.p99 as f64),
                    ns(s.latency_ns.p999 as f64),
                    s.errors.to_string(),
                    format!("{:.3}", s.ctx_switches_per_request.voluntary),
                    format!("{:.3}", s.ctx_switches_per_request.involuntary),
                    ns(s.cpu_ns_per_request),
                    format!("{:.2}", s.balance),
                    mib(s.rss_bytes),
                ]);
            }
            t.rows.push(r);
            if let Some(e) = &s.error {
                notes.push(format!("{}: {e}", s.id));
            }
            for w in &s.warnings {
                notes.push(format!("{}: {w}", s.id));
            }
        }
    }
    let mut blocks = vec![
        Block::Text(
            "HTTP servers under the load generator; latency from the intended send time (no \
             coordinated omission), balance = least busy worker's requests ÷ busiest's."
                .into(),
        ),
        Block::Table(t),
    ];
    if !notes.is_empty() {
        blocks.push(Block::List(notes));
    }
    Some(Section {
        level: 2,
        title: "Servers".into(),
        blocks,
    })
}

fn claims_section(inputs: &[Input]) -> Section {
    let per_file = inputs
        .iter()
        .map(|i| {
            (
                i.label.clone(),
                crate::claims::evaluate(std::slice::from_ref(&i.results)),
            )
        })
        .collect();
    let mut text = String::from(
        "Each claim checked against this file's own cells and mechanics; a verdict holds \
         only beyond the spread of the repeats. A claim whose figures the suite did not \
         measure is inconclusive and names the suite entry that would supply them \
         (workloads/lecture.toml has them all).",
    );
    if let Some(c) = inputs.first().map(|i| i.results.machine.allowed_cpus.len()) {
        let _ = write!(text, " Measured on {c} cores.");
    }
    Section {
        level: 2,
        title: "The lecture's claims".into(),
        blocks: vec![Block::Text(text), Block::Claims(per_file)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_795_505_102), "2026-11-24 07:25 UTC");
    }

    #[test]
    fn short_commits() {
        assert_eq!(short_commit("34516dc2cd35-dirty"), "34516dc*");
        assert_eq!(short_commit("e54290f0123"), "e54290f");
        assert_eq!(short_commit("unknown"), "unknown");
    }
}
