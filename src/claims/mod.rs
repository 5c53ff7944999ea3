//! The lecture's claims, checked against measured results: each claim reads the figures it
//! needs from one or more results files (normally a run of `workloads/lecture.toml`) and gives
//! a verdict with its numbers: holds, does not hold here, or inconclusive.
//!
//! A verdict is only as strong as the measurement behind it, so the rules compare the range
//! over repeats, not just medians: "A is cheaper than B" holds when A's slowest repeat beats
//! B's fastest one, does not hold when B's slowest beats A's fastest, and is inconclusive when
//! the ranges overlap. A claim whose figures are missing from the results is inconclusive and
//! says which suite entry would supply them. Nothing here knows what the answer "should" be:
//! every sentence is computed from the data.
//!
//! `concbench claims RESULTS.json ...` prints the table; the report embeds the same sections.

mod rules;

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::result::{CellResult, MechanicResult, Results, Spread, Status};

/// What the measurement says about a claim on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The figures support the claim beyond the spread of the repeats.
    Holds,
    /// The figures contradict it beyond the spread of the repeats.
    DoesNotHold,
    /// Ranges overlap, or the figures are missing.
    Inconclusive,
}

impl Verdict {
    /// The words used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold here",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One claim and what the results say about it.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimResult {
    /// Short id (`thread-create`).
    pub id: &'static str,
    /// The claim as the lecture states it.
    pub claim: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// The numbers and the reasoning, computed from the results.
    pub evidence: String,
}

/// Evaluates every claim against the merged contents of `results`.
pub fn evaluate(results: &[Results]) -> Vec<ClaimResult> {
    let data = Data::new(results);
    rules::ALL
        .iter()
        .map(|rule| {
            let (verdict, evidence) = (rule.check)(&data);
            ClaimResult {
                id: rule.id,
                claim: rule.claim,
                verdict,
                evidence,
            }
        })
        .collect()
}

/// The claims as a Markdown section (a table, one row per claim).
pub fn to_markdown(claims: &[ClaimResult], cores: Option<usize>) -> String {
    let mut s = String::from("## The lecture's claims on this machine\n\n");
    if let Some(c) = cores {
        let _ = writeln!(
            s,
            "Measured on {c} cores. A verdict holds only beyond the spread of the repeats.\n"
        );
    }
    s.push_str("| claim | verdict | evidence |\n|---|---|---|\n");
    for c in claims {
        let _ = writeln!(
            s,
            "| {} | **{}** | {} |",
            c.claim,
            c.verdict.label(),
            c.evidence.replace('|', "\\|")
        );
    }
    s
}

/// The claims as plain text for a terminal.
pub fn to_text(claims: &[ClaimResult]) -> String {
    let mut s = String::new();
    for c in claims {
        let _ = writeln!(
            s,
            "[{}] {}\n    {}\n",
            c.verdict.label(),
            c.claim,
            c.evidence
        );
    }
    s
}

/// Everything the rules look things up in: the ok cells and mechanics of every file.
pub(crate) struct Data<'a> {
    cells: Vec<&'a CellResult>,
    mechanics: Vec<&'a MechanicResult>,
    cores: usize,
}

impl<'a> Data<'a> {
    fn new(results: &'a [Results]) -> Self {
        Data {
            cells: results
                .iter()
                .flat_map(|r| &r.cells)
                .filter(|c| c.status == Status::Ok && c.repeats_done > 0)
                .collect(),
            mechanics: results
                .iter()
                .flat_map(|r| &r.mechanics)
                .filter(|m| m.status == Status::Ok && m.repeats_done > 0)
                .collect(),
            cores: results
                .first()
                .map(|r| r.machine.allowed_cpus.len().max(1))
                .unwrap_or(1),
        }
    }

    /// The first mechanic `id` whose params include every `(key, value)` of `want`.
    pub(crate) fn mechanic(&self, id: &str, want: &[(&str, &str)]) -> Option<&'a MechanicResult> {
        self.mechanics
            .iter()
            .copied()
            .find(|m| m.mechanic == id && matches(&m.params, want))
    }

    /// Every ok cell of `workload` with `model`, whose params include `want`. Cells with an
    /// injected fault are left out unless `want` asks for a `fault`: their throughput is not
    /// the model's.
    pub(crate) fn cells(
        &self,
        workload: &str,
        model: &str,
        want: &[(&str, &str)],
    ) -> Vec<&'a CellResult> {
        let faults_wanted = want.iter().any(|(k, _)| *k == "fault");
        self.cells
            .iter()
            .copied()
            .filter(|c| c.workload == workload && c.model == model && matches(&c.params, want))
            .filter(|c| faults_wanted || !c.params.contains_key("fault"))
            .collect()
    }

    /// The mechanic like `m` (same id, same params) but with `key` = `value`.
    pub(crate) fn mechanics_like(
        &self,
        m: &MechanicResult,
        key: &str,
        value: &str,
    ) -> Option<&'a MechanicResult> {
        self.mechanics.iter().copied().find(|o| {
            o.mechanic == m.mechanic
                && o.params.get(key).is_some_and(|v| v == value)
                && o.params.len() == m.params.len()
                && o.params
                    .iter()
                    .all(|(k, v)| k == key || m.params.get(k) == Some(v))
        })
    }

    /// Every ok cell.
    pub(crate) fn all_cells(&self) -> impl Iterator<Item = &'a CellResult> + '_ {
        self.cells.iter().copied()
    }

    /// Cores the (first) run could use.
    pub(crate) fn cores(&self) -> usize {
        self.cores
    }
}

fn matches(params: &std::collections::BTreeMap<String, String>, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| params.get(*k).is_some_and(|p| p.eq_ignore_ascii_case(v)))
}

/// How two figures compare over their repeats (smaller is "less").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Every repeat of the first is below every repeat of the second.
    Less,
    /// Every repeat of the first is above every repeat of the second.
    Greater,
    /// The ranges overlap.
    Overlap,
}

/// Compares `a` and `b` by their ranges over repeats.
pub(crate) fn order(a: &Spread, b: &Spread) -> Order {
    if a.max < b.min {
        Order::Less
    } else if a.min > b.max {
        Order::Greater
    } else {
        Order::Overlap
    }
}

/// A duration in ns, in the unit that reads best.
pub(crate) fn ns(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else {
        format!("{v:.1} ns")
    }
}

/// A rate with k/M suffixes.
pub(crate) fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests;
