//! The per-workload part of the report: cells grouped by workload, parameters, pinning and
//! load (across every results file), and for each group the charts (throughput against
//! workers with linear-scaling references, latency percentiles, switches, CPU and memory per
//! op) with their tables and "what this shows" lines.

use std::collections::BTreeMap;

use super::analysis;
use super::chart::{Chart, PALETTE, Scale, Series, Stroke, Unit, small};
use super::doc::{Block, Input, Section, Table};
use super::result::{CellResult, Status};
use super::table::{mib, ns, si};
use crate::model::{Load, Pin};

/// Cells that share a workload, its parameters, pinning and load: one part of the report.
pub struct Group<'a> {
    /// Heading: workload and parameters, plus pinning and load when not the defaults.
    pub title: String,
    /// (file index, cell), in file order then suite order.
    pub cells: Vec<(usize, &'a CellResult)>,
}

/// A series of a group: one model in one file, its cells by workers.
pub struct Line<'a> {
    /// Index of the results file.
    pub file: usize,
    /// Model id.
    pub model: &'a str,
    /// Its ok cells, fewest workers first.
    pub cells: Vec<&'a CellResult>,
}

const MODEL_ORDER: [&str; 5] = [
    "event-loop",
    "threads",
    "processes",
    "thread-loops",
    "process-loops",
];

/// The colour of a model: fixed for the known ones, so a model looks the same in every chart.
pub fn model_colour(model: &str) -> (u8, u8, u8) {
    match MODEL_ORDER.iter().position(|m| *m == model) {
        Some(i) => PALETTE[i],
        None => {
            let h = model
                .bytes()
                .fold(0usize, |a, b| a.wrapping_mul(31) + b as usize);
            PALETTE[5 + h % 5]
        }
    }
}

fn model_rank(model: &str) -> usize {
    MODEL_ORDER
        .iter()
        .position(|m| *m == model)
        .unwrap_or(MODEL_ORDER.len())
}

/// The parameters worth showing (a zero `iterations` only means "calibrate from op_time").
pub fn shown_params(c: &CellResult) -> String {
    c.params
        .iter()
        .filter(|(k, v)| !(k.as_str() == "iterations" && v.as_str() == "0"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Groups the cells of every input, in order of first appearance.
pub fn groups(inputs: &[Input]) -> Vec<Group<'_>> {
    type Key = (String, BTreeMap<String, String>, Pin, String);
    let mut keys: Vec<Key> = Vec::new();
    let mut out: Vec<Group> = Vec::new();
    for (f, i) in inputs.iter().enumerate() {
        for c in &i.results.cells {
            let key = (c.workload.clone(), c.params.clone(), c.pin, c.load.id());
            match keys.iter().position(|k| *k == key) {
                Some(g) => out[g].cells.push((f, c)),
                None => {
                    let mut title = c.workload.clone();
                    let p = shown_params(c);
                    if !p.is_empty() {
                        title.push_str(&format!(" ({p})"));
                    }
                    if c.pin != Pin::Spread {
                        title.push_str(&format!(", pin {}", c.pin.id()));
                    }
                    if let Load::Open { rate } = c.load {
                        title.push_str(&format!(", open loop at {}/s", si(rate)));
                    }
                    keys.push(key);
                    out.push(Group {
                        title,
                        cells: vec![(f, c)],
                    });
                }
            }
        }
    }
    for g in &mut out {
        g.cells
            .sort_by_key(|(f, c)| (*f, model_rank(&c.model), c.workers));
    }
    out
}

/// The group's series: one per (file, model), ok cells only.
pub fn lines<'a>(g: &Group<'a>) -> Vec<Line<'a>> {
    let mut out: Vec<Line> = Vec::new();
    for &(f, c) in &g.cells {
        if c.status != Status::Ok || c.repeats_done == 0 {
            continue;
        }
        match out.iter_mut().find(|l| l.file == f && l.model == c.model) {
            Some(l) => l.cells.push(c),
            None => out.push(Line {
                file: f,
                model: &c.model,
                cells: vec![c],
            }),
        }
    }
    out
}

/// Builds one section per group.
pub fn sections(inputs: &[Input]) -> Vec<Section> {
    let labels: Vec<&str> = inputs.iter().map(|i| i.label.as_str()).collect();
    let cores: Vec<usize> = inputs
        .iter()
        .map(|i| i.results.machine.allowed_cpus.len())
        .collect();
    groups(inputs)
        .iter()
        .map(|g| section(g, &labels, &cores))
        .collect()
}

fn section(g: &Group, labels: &[&str], cores: &[usize]) -> Section {
    let lines = lines(g);
    let multi = labels.len() > 1;
    let name = |l: &Line| {
        if multi {
            format!("{} · {}", l.model, labels[l.file])
        } else {
            l.model.to_string()
        }
    };
    let mut tasks: Vec<usize> = g.cells.iter().map(|(_, c)| c.tasks).collect();
    tasks.sort_unstable();
    tasks.dedup();
    let load = match g.cells[0].1.load {
        Load::Closed => "closed loop (each task issues its next op when the last ends)".into(),
        Load::Open { rate } => format!("open loop at {} ops/s", si(rate)),
    };
    let mut blocks = vec![Block::Text(format!(
        "Tasks: {}; {load}; workers pinned: {}.",
        tasks
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
        g.cells[0].1.pin.id()
    ))];

    blocks.push(Block::Figure(
        throughput_chart(g, &lines, &name),
        analysis::throughput(&lines, labels, cores),
    ));
    blocks.push(Block::Figure(
        latency_chart(g, &lines, &name),
        analysis::latency(&lines, labels),
    ));
    blocks.push(Block::Figure(
        pair_chart(
            g,
            &lines,
            &name,
            "Context switches per op",
            "switches per op",
            Unit::Ratio,
            ("voluntary", |c| c.ctx_switches_per_op.voluntary),
            ("involuntary", |c| c.ctx_switches_per_op.involuntary),
        ),
        analysis::switches(&lines, labels, cores),
    ));
    blocks.push(Block::Figure(
        pair_chart(
            g,
            &lines,
            &name,
            "CPU time per op",
            "CPU per op",
            Unit::Nanos,
            ("user+sys", |c| c.cpu_ns_per_op.user + c.cpu_ns_per_op.sys),
            ("sys", |c| c.cpu_ns_per_op.sys),
        ),
        analysis::cpu(&lines, labels),
    ));
    blocks.push(Block::Figure(
        pair_chart(
            g,
            &lines,
            &name,
            "Memory per worker",
            "MiB per worker",
            Unit::Count,
            ("PSS", |c| c.pss_per_worker_bytes as f64 / MIB),
            ("RSS", |c| c.rss_per_worker_bytes as f64 / MIB),
        ),
        analysis::memory(&lines, labels),
    ));
    blocks.push(Block::Table(throughput_table(g, labels)));
    blocks.push(Block::Table(latency_table(g, labels)));
    blocks.push(Block::Table(cost_table(g, labels)));
    blocks.push(Block::Table(memory_table(g, labels)));

    let mut notes = Vec::new();
    for &(f, c) in &g.cells {
        let who = if multi {
            format!("{} w{} ({})", c.model, c.workers, labels[f])
        } else {
            format!("{} w{}", c.model, c.workers)
        };
        if let Some(e) = &c.error {
            notes.push(format!("{who}: {e}"));
        }
        for w in &c.warnings {
            notes.push(format!("{who}: {w}"));
        }
    }
    if !notes.is_empty() {
        blocks.push(Block::Text("Notes on these cells:".into()));
        blocks.push(Block::List(notes));
    }
    Section {
        level: 2,
        title: format!("Workload: {}", g.title),
        blocks,
    }
}

fn worker_axis(g: &Group) -> (Scale, Vec<(f64, String)>) {
    let mut w: Vec<usize> = g.cells.iter().map(|(_, c)| c.workers).collect();
    w.sort_unstable();
    w.dedup();
    let (lo, hi) = (
        *w.first().unwrap_or(&1) as f64,
        *w.last().unwrap_or(&1) as f64,
    );
    let scale = if hi / lo >= 8.0 {
        Scale::Log
    } else {
        Scale::Linear
    };
    (
        scale,
        w.iter().map(|&x| (x as f64, x.to_string())).collect(),
    )
}

fn throughput_chart(g: &Group, lines: &[Line], name: &dyn Fn(&Line) -> String) -> Chart {
    let (x_scale, x_ticks) = worker_axis(g);
    let mut series = Vec::new();
    for l in lines {
        series.push(Series {
            label: name(l),
            colour: model_colour(l.model),
            stroke: Stroke::Solid,
            marker: l.file,
            points: l
                .cells
                .iter()
                .map(|c| (c.workers as f64, c.ops_per_sec.median))
                .collect(),
        });
    }
    let mut refs = Vec::new();
    for l in lines.iter().filter(|l| l.cells.len() > 1) {
        let base = l.cells[0];
        let per_worker = base.ops_per_sec.median / base.workers as f64;
        refs.push(Series {
            label: String::new(),
            colour: model_colour(l.model),
            stroke: Stroke::Dashed,
            marker: l.file,
            points: l
                .cells
                .iter()
                .map(|c| (c.workers as f64, per_worker * c.workers as f64))
                .collect(),
        });
    }
    if !refs.is_empty() {
        refs.push(legend_only("dashed: linear from fewest W"));
    } else {
        // No model has two worker counts: scale the best one-worker cell instead.
        let best = lines
            .iter()
            .flat_map(|l| l.cells.iter())
            .filter(|c| c.workers == 1)
            .max_by(|a, b| a.ops_per_sec.median.total_cmp(&b.ops_per_sec.median));
        if let Some(b) = best {
            refs.push(Series {
                label: format!("{} w1 × W: linear", b.model),
                colour: (110, 110, 110),
                stroke: Stroke::Dashed,
                marker: 0,
                points: x_ticks
                    .iter()
                    .map(|t| (t.0, b.ops_per_sec.median * t.0))
                    .collect(),
            });
        }
    }
    series.extend(refs);
    Chart {
        title: format!("Throughput: {}", g.title),
        x_label: "workers (W)".into(),
        y_label: "ops/s (median)".into(),
        x_scale,
        y_scale: Scale::Linear,
        y_unit: Unit::Count,
        x_ticks,
        series,
    }
}

/// A legend entry with no points: explains what the dashed lines of a chart are.
fn legend_only(text: &str) -> Series {
    Series {
        label: text.into(),
        colour: (110, 110, 110),
        stroke: Stroke::Dashed,
        marker: 0,
        points: Vec::new(),
    }
}

/// The percentiles the latency chart draws, in order.
pub const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

fn latency_chart(g: &Group, lines: &[Line], name: &dyn Fn(&Line) -> String) -> Chart {
    let mut series = Vec::new();
    let mut k = 0;
    for l in lines {
        for c in &l.cells {
            let lat = &c.latency_ns;
            let v = [lat.p50, lat.p90, lat.p99, lat.p999, lat.max];
            series.push(Series {
                label: format!("{} w{}", name(l), c.workers),
                colour: PALETTE[k % PALETTE.len()],
                stroke: Stroke::Solid,
                marker: l.file,
                points: v
                    .iter()
                    .enumerate()
                    .map(|(i, &y)| (i as f64, y as f64))
                    .collect(),
            });
            k += 1;
        }
    }
    Chart {
        title: format!("Latency percentiles: {}", g.title),
        x_label: "percentile".into(),
        y_label: "latency (log scale)".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Log,
        y_unit: Unit::Nanos,
        x_ticks: PERCENTILES
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64, p.to_string()))
            .collect(),
        series,
    }
}

type Figure = fn(&CellResult) -> f64;

const MIB: f64 = 1024.0 * 1024.0;

/// A chart of two figures per model against workers: the first solid, the second dashed.
#[allow(clippy::too_many_arguments)]
fn pair_chart(
    g: &Group,
    lines: &[Line],
    name: &dyn Fn(&Line) -> String,
    title: &str,
    y_label: &str,
    y_unit: Unit,
    solid: (&str, Figure),
    dashed: (&str, Figure),
) -> Chart {
    let (x_scale, x_ticks) = worker_axis(g);
    let mut series = Vec::new();
    for l in lines {
        for (stroke, (what, f)) in [(Stroke::Solid, solid), (Stroke::Dashed, dashed)] {
            series.push(Series {
                label: match stroke {
                    Stroke::Solid => format!("{} ({what})", name(l)),
                    Stroke::Dashed => String::new(),
                },
                colour: model_colour(l.model),
                stroke,
                marker: l.file,
                points: l.cells.iter().map(|c| (c.workers as f64, f(c))).collect(),
            });
        }
    }
    if !lines.is_empty() {
        series.push(legend_only(&format!("dashed: {}", dashed.0)));
    }
    Chart {
        title: format!("{title}: {}", g.title),
        x_label: "workers (W)".into(),
        y_label: y_label.into(),
        x_scale,
        y_scale: Scale::Linear,
        y_unit,
        x_ticks,
        series,
    }
}

/// The leading columns every cell table shares, and the row start for `c`.
fn table_with(caption: &str, labels: &[&str], rest: &[&str]) -> Table {
    let mut t = Table {
        caption: caption.into(),
        ..Default::default()
    };
    if labels.len() > 1 {
        t.header.push("run".into());
    }
    t.header.extend(["model".into(), "W".into()]);
    let first = t.header.len();
    t.header.extend(rest.iter().map(|s| s.to_string()));
    t.numeric = (first - 1..t.header.len()).collect();
    t
}

fn row_start(labels: &[&str], f: usize, c: &CellResult) -> Vec<String> {
    let mut r = Vec::new();
    if labels.len() > 1 {
        r.push(labels[f].to_string());
    }
    r.extend([c.model.clone(), c.workers.to_string()]);
    r
}

/// Fills `r` for a cell that did not measure: its status, then blanks.
fn not_ok(mut r: Vec<String>, c: &CellResult, width: usize) -> Vec<String> {
    r.push(format!("{:?}", c.status).to_lowercase());
    r.resize(width, String::new());
    r
}

fn ok(c: &CellResult) -> bool {
    c.status == Status::Ok && c.repeats_done > 0
}

fn throughput_table(g: &Group, labels: &[&str]) -> Table {
    let mut t = table_with(
        "Throughput (median over repeats; range = slowest..fastest repeat)",
        labels,
        &["T", "ops/s", "range", "per worker", "vs linear"],
    );
    for &(f, c) in &g.cells {
        let mut r = row_start(labels, f, c);
        r.push(c.tasks.to_string());
        if !ok(c) {
            t.rows.push(not_ok(r, c, t.header.len()));
            continue;
        }
        r.extend([
            si(c.ops_per_sec.median),
            format!("{}..{}", si(c.ops_per_sec.min), si(c.ops_per_sec.max)),
            format!(
                "{}..{}",
                si(c.per_worker_ops_per_sec.min),
                si(c.per_worker_ops_per_sec.max)
            ),
            c.scaling_efficiency
                .map(|e| format!("{:.0}%", e * 100.0))
                .unwrap_or_else(|| "-".into()),
        ]);
        t.rows.push(r);
    }
    t
}

fn latency_table(g: &Group, labels: &[&str]) -> Table {
    let mut t = table_with(
        "Latency (every op of every worker and repeat)",
        labels,
        &["p50", "p90", "p99", "p99.9", "max", "mean", "ops recorded"],
    );
    for &(f, c) in &g.cells {
        let r = row_start(labels, f, c);
        if !ok(c) {
            t.rows.push(not_ok(r, c, t.header.len()));
            continue;
        }
        let l = &c.latency_ns;
        let mut r = r;
        r.extend([
            ns(l.p50 as f64),
            ns(l.p90 as f64),
            ns(l.p99 as f64),
            ns(l.p999 as f64),
            ns(l.max as f64),
            ns(l.mean),
            si(l.count as f64),
        ]);
        t.rows.push(r);
    }
    t
}

fn cost_table(g: &Group, labels: &[&str]) -> Table {
    let mut t = table_with(
        "Cost per op (the workers' own rusage)",
        labels,
        &[
            "vol. switches/op",
            "invol. switches/op",
            "user CPU/op",
            "sys CPU/op",
            "minor faults/op",
        ],
    );
    for &(f, c) in &g.cells {
        let r = row_start(labels, f, c);
        if !ok(c) {
            t.rows.push(not_ok(r, c, t.header.len()));
            continue;
        }
        let mut r = r;
        r.extend([
            small(c.ctx_switches_per_op.voluntary),
            small(c.ctx_switches_per_op.involuntary),
            ns(c.cpu_ns_per_op.user),
            ns(c.cpu_ns_per_op.sys),
            small(c.minor_faults_per_op),
        ]);
        t.rows.push(r);
    }
    t
}

fn memory_table(g: &Group, labels: &[&str]) -> Table {
    let mut t = table_with(
        "Memory (PSS splits shared copy-on-write pages among their sharers; RSS counts them in full)",
        labels,
        &["PSS/worker", "RSS/worker", "PSS (cell)", "RSS (cell)"],
    );
    for &(f, c) in &g.cells {
        let r = row_start(labels, f, c);
        if !ok(c) {
            t.rows.push(not_ok(r, c, t.header.len()));
            continue;
        }
        let mut r = r;
        r.extend([
            mib(c.pss_per_worker_bytes),
            mib(c.rss_per_worker_bytes),
            mib(c.pss_bytes),
            mib(c.rss_bytes),
        ]);
        t.rows.push(r);
    }
    t
}
