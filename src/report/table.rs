//! The summary table `concbench run` prints on stdout: one row per cell with throughput,
//! latency, switches, CPU and memory per op, plus each cell's warnings and errors below.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};

use super::result::{Results, Status};

/// Human-friendly number: 1234567 → "1.23M".
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Nanoseconds as a readable duration: 1500 → "1.50µs".
pub fn ns(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2}s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2}µs", v / 1e3)
    } else {
        format!("{v:.0}ns")
    }
}

/// Bytes as MiB.
pub fn mib(b: u64) -> String {
    format!("{:.1}MiB", b as f64 / (1024.0 * 1024.0))
}

/// Renders the summary table.
pub fn render(results: &Results) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "cell",
        "ops/s",
        "range",
        "vs linear",
        "p50",
        "p99",
        "p99.9",
        "vcsw/op",
        "icsw/op",
        "cpu/op",
        "PSS",
    ]);
    let mut notes = Vec::new();
    for c in &results.cells {
        let mut label = format!(
            "{} {} {} w{} t{}",
            c.workload,
            c.params
                .iter()
                .filter(|(k, _)| k.as_str() != "iterations")
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
            c.model,
            c.workers,
            c.tasks
        );
        if c.pin != crate::model::Pin::Spread {
            label.push_str(&format!(" {}", c.pin.id()));
        }
        if c.load != crate::model::Load::Closed {
            label.push_str(&format!(" {}/s", c.load.id().trim_start_matches('r')));
        }
        if c.status != Status::Ok {
            t.add_row(vec![label, format!("{:?}", c.status).to_lowercase()]);
        } else {
            t.add_row(vec![
                label,
                si(c.ops_per_sec.median),
                format!("{}..{}", si(c.ops_per_sec.min), si(c.ops_per_sec.max)),
                c.scaling_efficiency
                    .map(|e| format!("{:.0}%", e * 100.0))
                    .unwrap_or_else(|| "-".into()),
                ns(c.latency_ns.p50 as f64),
                ns(c.latency_ns.p99 as f64),
                ns(c.latency_ns.p999 as f64),
                format!("{:.3}", c.ctx_switches_per_op.voluntary),
                format!("{:.3}", c.ctx_switches_per_op.involuntary),
                ns(c.cpu_ns_per_op.user + c.cpu_ns_per_op.sys),
                mib(c.pss_bytes),
            ]);
        }
        if let Some(e) = &c.error {
            notes.push(format!("{}: {e}", c.id));
        }
        for w in &c.warnings {
            notes.push(format!("{}: {w}", c.id));
        }
    }
    for i in 1..11 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = if results.cells.is_empty() {
        String::new()
    } else {
        t.to_string() + "\n"
    };
    if !results.mechanics.is_empty() {
        out.push_str(&render_mechanics(results, &mut notes));
        out.push('\n');
    }
    if !results.servers.is_empty() {
        out.push_str(&render_servers(results, &mut notes));
        out.push('\n');
    }
    for w in &results.machine_warnings {
        out.push_str(&format!("machine: {w}\n"));
    }
    for n in notes {
        out.push_str(&format!("{n}\n"));
    }
    out
}

/// The OS mechanics table: time and switches per iteration, and each mechanic's own figures.
fn render_mechanics(results: &Results, notes: &mut Vec<String>) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "mechanic",
        "one iteration",
        "time/iter",
        "range",
        "csw/iter",
        "figures",
    ]);
    for m in &results.mechanics {
        let label = format!(
            "{} {}",
            m.mechanic,
            m.params.values().cloned().collect::<Vec<_>>().join(",")
        );
        if m.status != Status::Ok {
            t.add_row(vec![label, format!("{:?}", m.status).to_lowercase()]);
        } else {
            let figures = m
                .extra
                .iter()
                .filter(|(k, _)| !k.ends_with("_ns") || k.as_str() == "switch_ns")
                .map(|(k, v)| format!("{k}={}", si(v.median)))
                .collect::<Vec<_>>()
                .join(" ");
            t.add_row(vec![
                label,
                m.iteration.clone(),
                ns(m.ns_per_iter.median),
                format!("{}..{}", ns(m.ns_per_iter.min), ns(m.ns_per_iter.max)),
                format!("{:.2}", m.switches_per_iter.median),
                figures,
            ]);
        }
        if let Some(e) = &m.error {
            notes.push(format!("{}: {e}", m.id));
        }
    }
    for i in 2..5 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.to_string()
}

/// The servers table: requests/s, corrected latency, server cost per request, balance.
fn render_servers(results: &Results, notes: &mut Vec<String>) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "server",
        "req/s",
        "range",
        "p50",
        "p99",
        "p99 uncorr.",
        "errors",
        "csw/req",
        "cpu/req",
        "balance",
        "PSS",
    ]);
    for s in &results.servers {
        let mut label = format!("{} w{} c{} {}", s.arch, s.workers, s.connections, s.handler);
        if s.load != crate::model::Load::Closed {
            label.push_str(&format!(" {}/s", s.load.id().trim_start_matches('r')));
        }
        if s.status != Status::Ok {
            t.add_row(vec![label, format!("{:?}", s.status).to_lowercase()]);
        } else {
            t.add_row(vec![
                label,
                si(s.requests_per_sec.median),
                format!(
                    "{}..{}",
                    si(s.requests_per_sec.min),
                    si(s.requests_per_sec.max)
                ),
                ns(s.latency_ns.p50 as f64),
                ns(s.latency_ns.p99 as f64),
                ns(s.latency_uncorrected_ns.p99 as f64),
                s.errors.to_string(),
                format!(
                    "{:.2}",
                    s.ctx_switches_per_request.voluntary + s.ctx_switches_per_request.involuntary
                ),
                ns(s.cpu_ns_per_request),
                format!("{:.2}", s.balance),
                mib(s.pss_bytes),
            ]);
        }
        if let Some(e) = &s.error {
            notes.push(format!("{}: {e}", s.id));
        }
        for w in &s.warnings {
            notes.push(format!("{}: {w}", s.id));
        }
    }
    for i in 1..11 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.to_string()
}
