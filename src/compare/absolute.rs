//! Absolute comparison: every cell, mechanic and server cell of the candidate matched by id
//! with the baseline's, one row per metric, judged on the per-window values (see
//! [`super::stats`]); plus the invariants every candidate entry must meet (status ok, ops > 0).

use super::{
    Better, Policy, Report, Row, Side, Verdict, context_notes, flagged_share, judge, whole,
};
use crate::report::result::{Latency, Results, Status};

pub(crate) fn is_latency(m: &str) -> bool {
    matches!(m, "p50" | "p90" | "p99" | "p999" | "mean")
}

fn latency_value(l: &Latency, m: &str) -> f64 {
    match m {
        "p50" => l.p50 as f64,
        "p90" => l.p90 as f64,
        "p99" => l.p99 as f64,
        "p999" => l.p999 as f64,
        _ => l.mean,
    }
}

/// One side of an entry: its status and its per-window values for each metric.
struct Entry {
    kind: &'static str,
    ok: Result<(), String>,
    flagged: Option<f64>,
    values: Vec<(String, &'static str, Better, Vec<f64>)>,
}

/// Per-window values of every entry of `r` for `metrics`, keyed by id.
fn entries(r: &Results, metrics: &[String]) -> Vec<(String, Entry)> {
    let mut out = Vec::new();
    for c in &r.cells {
        let mut values = Vec::new();
        for m in metrics {
            if m == "ops_per_sec" {
                let v = c.samples.iter().map(|s| s.ops_per_sec).collect();
                values.push((m.clone(), "ops/s", Better::Bigger, v));
            } else if is_latency(m) {
                let per: Option<Vec<f64>> = c
                    .samples
                    .iter()
                    .map(|s| s.latency_ns.as_ref().map(|l| latency_value(l, m)))
                    .collect();
                let v = match per {
                    Some(v) if !v.is_empty() => v,
                    _ => vec![latency_value(&c.latency_ns, m)],
                };
                values.push((m.clone(), "ns", Better::Smaller, v));
            }
        }
        let ops: u64 = c.samples.iter().map(|s| s.ops).sum();
        let ok = match (c.status, ops) {
            (Status::Ok, 0) => Err("no ops completed".to_string()),
            (Status::Ok, _) => Ok(()),
            (s, _) => Err(format!(
                "status {s:?}{}",
                c.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
        };
        out.push((
            c.id.clone(),
            Entry {
                kind: "cell",
                ok,
                flagged: flagged_share(c),
                values,
            },
        ));
    }
    for mech in &r.mechanics {
        let mut values = Vec::new();
        if metrics.iter().any(|m| m == "ns_per_iter") {
            let v = mech.samples.iter().map(|s| s.ns_per_iter).collect();
            values.push(("ns_per_iter".into(), "ns", Better::Smaller, v));
        }
        let ok = match mech.status {
            Status::Ok if mech.samples.iter().any(|s| s.iters > 0) => Ok(()),
            Status::Ok => Err("no iterations ran".to_string()),
            s => Err(format!(
                "status {s:?}{}",
                mech.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
        };
        out.push((
            mech.id.clone(),
            Entry {
                kind: "mechanic",
                ok,
                flagged: None,
                values,
            },
        ));
    }
    for s in &r.servers {
        let mut values = Vec::new();
        for m in metrics {
            if m == "requests_per_sec" {
                let v = s.samples.iter().map(|w| w.requests_per_sec).collect();
                values.push((m.clone(), "req/s", Better::Bigger, v));
            } else if is_latency(m) {
                let v = vec![latency_value(&s.latency_ns, m)];
                values.push((m.clone(), "ns", Better::Smaller, v));
            }
        }
        let ok = match s.status {
            Status::Ok if s.samples.iter().any(|w| w.requests_per_sec > 0.0) => Ok(()),
            Status::Ok => Err("no requests were answered".to_string()),
            st => Err(format!(
                "status {st:?}{}",
                s.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
        };
        out.push((
            s.id.clone(),
            Entry {
                kind: "server",
                ok,
                flagged: None,
                values,
            },
        ));
    }
    out
}

/// Compares absolute figures of every entry.
pub fn compare(base: &Results, new: &Results, metrics: &[String], policy: Policy) -> Report {
    let b = entries(base, metrics);
    let n = entries(new, metrics);
    let mut rows = Vec::new();
    let mut notes = context_notes(base, new);
    let mut single = 0;
    for (id, ne) in &n {
        let be = b.iter().find(|(bid, _)| bid == id).map(|(_, e)| e);
        if let Err(why) = &ne.ok {
            rows.push(whole(id, ne.kind, Verdict::Failed, why.clone()));
            continue;
        }
        let Some(be) = be.filter(|e| e.ok.is_ok()) else {
            let why = if be.is_some() {
                "failed in the baseline"
            } else {
                "not in the baseline"
            };
            rows.push(whole(id, ne.kind, Verdict::New, why.into()));
            continue;
        };
        for (metric, unit, better, nv) in &ne.values {
            let Some((_, _, _, bv)) = be.values.iter().find(|(m, ..)| m == metric) else {
                continue;
            };
            if bv.is_empty() || nv.is_empty() {
                continue;
            }
            if bv.len() == 1 && nv.len() == 1 {
                single += 1;
            }
            let flagged = [be.flagged, ne.flagged]
                .into_iter()
                .flatten()
                .reduce(f64::max);
            let j = judge(bv, nv, *better, policy, flagged);
            rows.push(Row {
                id: id.clone(),
                kind: ne.kind,
                metric: metric.clone(),
                unit,
                better: *better,
                base: Some(Side::of(bv)),
                new: Some(Side::of(nv)),
                change: j.change,
                verdict: j.verdict,
                evidence: j.evidence,
            });
        }
    }
    for (id, be) in &b {
        if !n.iter().any(|(nid, _)| nid == id) {
            rows.push(whole(
                id,
                be.kind,
                Verdict::Missing,
                "not in the candidate".into(),
            ));
        }
    }
    if single > 0 {
        notes.push(format!(
            "{single} figure(s) had one value per side (no per-window values): gated on the threshold alone"
        ));
    }
    Report {
        title: String::new(),
        threshold: policy.threshold,
        metrics: metrics.to_vec(),
        relative: false,
        notes,
        rows,
        failed: false,
    }
}

/// Failed rows for every candidate entry that broke an invariant (used by `--relative`,
/// which compares ratios but still requires every cell to run).
pub fn invariant_failures(new: &Results) -> Vec<Row> {
    entries(new, &[])
        .into_iter()
        .filter_map(|(id, e)| {
            e.ok.err()
                .map(|why| whole(&id, e.kind, Verdict::Failed, why))
        })
        .collect()
}
