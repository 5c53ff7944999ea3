//! `concbench compare --relative`: within-run ratios, which survive a move to a faster or
//! slower machine (a CI runner that is 30% slower today slows every model alike, so
//! "threads ÷ processes" stays put while "threads ops/s" does not).
//!
//! # The pairs, defined from the data
//!
//! Each run is read on its own; a ratio's numerator and denominator come from the same file.
//!
//! - **model ratio** (`ops_per_sec`): cells that differ only in the model (same workload,
//!   params, W, T, pin, load) are a group. Each cell is divided by the group's reference
//!   model: `event-loop` when the group has it, else the first model in suite order; the
//!   reference itself is divided by the next model, so every model is the numerator of one
//!   ratio and any one model slowing down regresses its own ratio. When the group has both
//!   `threads` and `processes`, `threads ÷ processes` is added as well (the lecture's central
//!   comparison). Id: `<numerator cell id> ÷ <denominator model>`.
//! - **scaling ratio** (`ops_per_sec`): a cell with W > 1 divided by the W = 1 cell of the
//!   same series (workload, params, model, pin, load, and the same T or the same T/W).
//!   Id: `<cell id> ÷ w1`.
//! - **mechanic ratio** (`ns_per_iter`): each variant of a mechanic divided by the first
//!   variant of the same mechanic in suite order (the first by the second).
//!   Id: `<mechanic id> ÷ <denominator id>`.
//! - **server ratio** (`requests_per_sec`): server cells that differ only in the architecture
//!   (same W, connections, handler, load) divided by `event-loop` (else the first; the
//!   reference by the next).
//!   Id: `<server id> ÷ <reference arch>`.
//!
//! A ratio's per-window values pair the two entries' windows of the same repeat index (the
//! runner interleaves repeats over cells, so repeat r of both ran minutes apart at most);
//! those values are then judged like absolute ones ([`super::stats::judge`]). "Bigger is
//! better" reads from the numerator's side: a falling `threads ÷ event-loop` is reported as
//! a regression of threads relative to the loop, which may also mean the loop got faster.
//! Invariants still hold in this mode: a candidate cell that failed or did no ops fails.

use anyhow::bail;

use super::stats::{self, Better};
use super::{Policy, Report, Row, Side};
use crate::report::result::{CellResult, MechanicResult, Results, ServerResult, Status};

/// A within-run ratio with its per-repeat values.
#[derive(Debug, Clone)]
pub struct Ratio {
    /// `<numerator id> ÷ <denominator>`.
    pub id: String,
    /// The metric of both sides.
    pub metric: &'static str,
    /// Which way is better for the numerator.
    pub better: Better,
    /// numerator ÷ denominator, one per shared repeat index.
    pub values: Vec<f64>,
    /// Worst noise share of a flagged window of either side (cells only).
    pub flagged: Option<f64>,
}

fn worst(a: &CellResult, b: &CellResult) -> Option<f64> {
    [super::flagged_share(a), super::flagged_share(b)]
        .into_iter()
        .flatten()
        .reduce(f64::max)
}

/// Divides per-repeat values sharing a repeat index; falls back to the medians' ratio when no
/// index is shared.
fn paired(num: &[(u32, f64)], den: &[(u32, f64)]) -> Vec<f64> {
    let v: Vec<f64> = num
        .iter()
        .filter_map(|(r, x)| {
            den.iter()
                .find(|(rd, _)| rd == r)
                .filter(|(_, d)| *d > 0.0)
                .map(|(_, d)| x / d)
        })
        .collect();
    if !v.is_empty() {
        return v;
    }
    let med = |s: &[(u32, f64)]| stats::median(&s.iter().map(|p| p.1).collect::<Vec<_>>());
    let (n, d) = (med(num), med(den));
    if d > 0.0 && !num.is_empty() {
        vec![n / d]
    } else {
        Vec::new()
    }
}

fn cell_values(c: &CellResult) -> Vec<(u32, f64)> {
    c.samples
        .iter()
        .map(|s| (s.repeat, s.ops_per_sec))
        .collect()
}

fn server_values(s: &ServerResult) -> Vec<(u32, f64)> {
    s.samples
        .iter()
        .map(|w| (w.repeat, w.requests_per_sec))
        .collect()
}

fn usable_cell(c: &CellResult) -> bool {
    c.status == Status::Ok && !c.samples.is_empty()
}

/// The ratio `this` is the numerator of within `group` (entries that differ in one
/// dimension only): `this ÷ reference`, where the reference is the first entry matching
/// `preferred` or else the first; the reference itself is divided by the first other entry,
/// so that every entry is the numerator of one ratio and a slowdown of any one of them shows
/// as a regression of its own ratio. None when the group has one entry.
fn partner<'a, T: HasId>(
    group: &[&'a T],
    this: &'a T,
    preferred: impl Fn(&T) -> bool,
) -> Option<(&'a T, &'a T)> {
    if group.len() < 2 {
        return None;
    }
    let reference = group
        .iter()
        .copied()
        .find(|o| preferred(o))
        .unwrap_or(group[0]);
    if reference.entry_id() != this.entry_id() {
        return Some((this, reference));
    }
    let alt = group
        .iter()
        .copied()
        .find(|o| o.entry_id() != reference.entry_id())?;
    Some((this, alt))
}

/// Entries with an id.
trait HasId {
    fn entry_id(&self) -> &str;
}

impl HasId for CellResult {
    fn entry_id(&self) -> &str {
        &self.id
    }
}

impl HasId for MechanicResult {
    fn entry_id(&self) -> &str {
        &self.id
    }
}

impl HasId for ServerResult {
    fn entry_id(&self) -> &str {
        &self.id
    }
}

/// Every within-run ratio of `r` for `metrics`.
pub fn ratios(r: &Results, metrics: &[String]) -> Vec<Ratio> {
    let want = |m: &str| metrics.iter().any(|x| x == m);
    let mut out = Vec::new();
    if want("ops_per_sec") {
        let cells: Vec<&CellResult> = r.cells.iter().filter(|c| usable_cell(c)).collect();
        let same_but_model = |a: &CellResult, b: &CellResult| {
            a.workload == b.workload
                && a.params == b.params
                && a.workers == b.workers
                && a.tasks == b.tasks
                && a.pin == b.pin
                && a.load == b.load
        };
        for c in &cells {
            let group: Vec<&CellResult> = cells
                .iter()
                .copied()
                .filter(|o| same_but_model(c, o))
                .collect();
            let Some((num, den)) = partner(&group, c, |o| o.model == "event-loop") else {
                continue;
            };
            out.push(Ratio {
                id: format!("{} ÷ {}", num.id, den.model),
                metric: "ops_per_sec",
                better: Better::Bigger,
                values: paired(&cell_values(num), &cell_values(den)),
                flagged: worst(num, den),
            });
            if c.model == "threads"
                && den.model != "processes"
                && let Some(p) = group.iter().find(|o| o.model == "processes")
            {
                out.push(Ratio {
                    id: format!("{} ÷ processes", c.id),
                    metric: "ops_per_sec",
                    better: Better::Bigger,
                    values: paired(&cell_values(c), &cell_values(p)),
                    flagged: worst(c, p),
                });
            }
        }
        for c in &cells {
            if c.workers <= 1 {
                continue;
            }
            let w1 = cells.iter().find(|b| {
                b.workers == 1
                    && b.workload == c.workload
                    && b.params == c.params
                    && b.model == c.model
                    && b.pin == c.pin
                    && b.load == c.load
                    && (b.tasks == c.tasks || b.tasks * c.workers == c.tasks)
            });
            if let Some(b) = w1 {
                out.push(Ratio {
                    id: format!("{} ÷ w1", c.id),
                    metric: "ops_per_sec",
                    better: Better::Bigger,
                    values: paired(&cell_values(c), &cell_values(b)),
                    flagged: worst(c, b),
                });
            }
        }
    }
    if want("ns_per_iter") {
        let mechs: Vec<_> = r
            .mechanics
            .iter()
            .filter(|m| m.status == Status::Ok && !m.samples.is_empty())
            .collect();
        for m in &mechs {
            let group: Vec<&MechanicResult> = mechs
                .iter()
                .copied()
                .filter(|f| f.mechanic == m.mechanic)
                .collect();
            if let Some((num, den)) = partner(&group, m, |_| false) {
                let v = |x: &MechanicResult| {
                    x.samples
                        .iter()
                        .map(|s| (s.repeat, s.ns_per_iter))
                        .collect::<Vec<_>>()
                };
                out.push(Ratio {
                    id: format!("{} ÷ {}", num.id, den.id),
                    metric: "ns_per_iter",
                    better: Better::Smaller,
                    values: paired(&v(num), &v(den)),
                    flagged: None,
                });
            }
        }
    }
    if want("requests_per_sec") {
        let servers: Vec<&ServerResult> = r
            .servers
            .iter()
            .filter(|s| s.status == Status::Ok && !s.samples.is_empty())
            .collect();
        for s in &servers {
            let group: Vec<&ServerResult> = servers
                .iter()
                .copied()
                .filter(|o| {
                    o.workers == s.workers
                        && o.connections == s.connections
                        && o.handler == s.handler
                        && o.load == s.load
                })
                .collect();
            if let Some((num, den)) = partner(&group, s, |o| o.arch == "event-loop") {
                out.push(Ratio {
                    id: format!("{} ÷ {}", num.id, den.arch),
                    metric: "requests_per_sec",
                    better: Better::Bigger,
                    values: paired(&server_values(num), &server_values(den)),
                    flagged: None,
                });
            }
        }
    }
    out.retain(|r| !r.values.is_empty());
    out
}

/// Compares the within-run ratios of `base` and `new`, plus the candidate's invariants.
pub fn compare(
    base: &Results,
    new: &Results,
    metrics: &[String],
    policy: Policy,
) -> anyhow::Result<Report> {
    if let Some(m) = metrics.iter().find(|m| super::is_latency(m)) {
        bail!(
            "--relative compares throughput ratios: drop --metric {m} (use ops_per_sec, ns_per_iter or requests_per_sec)"
        );
    }
    let b = ratios(base, metrics);
    let n = ratios(new, metrics);
    let mut rows = super::invariant_failures(new);
    for nr in &n {
        let Some(br) = b.iter().find(|x| x.id == nr.id) else {
            rows.push(super::whole(
                &nr.id,
                "ratio",
                stats::Verdict::New,
                "not in the baseline".into(),
            ));
            continue;
        };
        let flagged = [br.flagged, nr.flagged]
            .into_iter()
            .flatten()
            .reduce(f64::max);
        let j = super::judge(&br.values, &nr.values, nr.better, policy, flagged);
        rows.push(Row {
            id: nr.id.clone(),
            kind: "ratio",
            metric: nr.metric.to_string(),
            unit: "×",
            better: nr.better,
            base: Some(Side::of(&br.values)),
            new: Some(Side::of(&nr.values)),
            change: j.change,
            verdict: j.verdict,
            evidence: j.evidence,
        });
    }
    for br in &b {
        if !n.iter().any(|x| x.id == br.id) {
            rows.push(super::whole(
                &br.id,
                "ratio",
                stats::Verdict::Missing,
                "not in the candidate".into(),
            ));
        }
    }
    let mut notes = super::context_notes(base, new);
    notes.push(format!(
        "{} within-run ratio(s) compared: model ÷ reference model, W=N ÷ W=1, variant ÷ first variant",
        n.len()
    ));
    Ok(Report {
        title: String::new(),
        threshold: policy.threshold,
        metrics: metrics.to_vec(),
        relative: true,
        notes,
        rows,
        failed: false,
    })
}
