//! `results.csv`: one flat row per cell (the headline figures), for spreadsheets and scripts.
//! Column meanings are those of the same-named fields in results.json.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::result::Results;

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    workload: &'a str,
    params: String,
    model: &'a str,
    workers: usize,
    tasks: usize,
    pin: &'a str,
    load: String,
    status: String,
    repeats_done: u32,
    ops_per_sec: f64,
    ops_per_sec_min: f64,
    ops_per_sec_max: f64,
    worker_ops_per_sec_min: f64,
    worker_ops_per_sec_max: f64,
    linear_reference_ops_per_sec: Option<f64>,
    latency_p50_ns: u64,
    latency_p90_ns: u64,
    latency_p99_ns: u64,
    latency_p999_ns: u64,
    latency_max_ns: u64,
    voluntary_switches_per_op: f64,
    involuntary_switches_per_op: f64,
    cpu_user_ns_per_op: f64,
    cpu_sys_ns_per_op: f64,
    rss_bytes: u64,
    pss_bytes: u64,
    noise_other_cpu: f64,
    noise_steal: f64,
    noise_flagged: bool,
    error: Option<&'a str>,
}

/// Renders the CSV text.
pub fn render(results: &Results) -> anyhow::Result<Vec<u8>> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    for c in &results.cells {
        w.serialize(Row {
            id: &c.id,
            workload: &c.workload,
            params: c
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";"),
            model: &c.model,
            workers: c.workers,
            tasks: c.tasks,
            pin: c.pin.id(),
            load: c.load.id(),
            status: serde_json::to_value(c.status)?
                .as_str()
                .unwrap_or_default()
                .to_string(),
            repeats_done: c.repeats_done,
            ops_per_sec: c.ops_per_sec.median,
            ops_per_sec_min: c.ops_per_sec.min,
            ops_per_sec_max: c.ops_per_sec.max,
            worker_ops_per_sec_min: c.per_worker_ops_per_sec.min,
            worker_ops_per_sec_max: c.per_worker_ops_per_sec.max,
            linear_reference_ops_per_sec: c.linear_reference_ops_per_sec,
            latency_p50_ns: c.latency_ns.p50,
            latency_p90_ns: c.latency_ns.p90,
            latency_p99_ns: c.latency_ns.p99,
            latency_p999_ns: c.latency_ns.p999,
            latency_max_ns: c.latency_ns.max,
            voluntary_switches_per_op: c.ctx_switches_per_op.voluntary,
            involuntary_switches_per_op: c.ctx_switches_per_op.involuntary,
            cpu_user_ns_per_op: c.cpu_ns_per_op.user,
            cpu_sys_ns_per_op: c.cpu_ns_per_op.sys,
            rss_bytes: c.rss_bytes,
            pss_bytes: c.pss_bytes,
            noise_other_cpu: c.noise.other_cpu,
            noise_steal: c.noise.steal,
            noise_flagged: c.noise.flagged,
            error: c.error.as_deref(),
        })?;
    }
    w.into_inner().context("finishing CSV")
}

/// Writes the CSV atomically to `path`.
pub fn write_atomic(results: &Results, path: &Path) -> anyhow::Result<()> {
    let bytes = render(results)?;
    super::write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))
}

#[derive(Serialize)]
struct MechRow<'a> {
    id: &'a str,
    mechanic: &'a str,
    params: String,
    iteration: &'a str,
    status: String,
    repeats_done: u32,
    ns_per_iter: f64,
    ns_per_iter_min: f64,
    ns_per_iter_max: f64,
    switches_per_iter: f64,
    figures: String,
    error: Option<&'a str>,
}

/// Renders `mechanics.csv`: one row per OS mechanic; `figures` is `name=median;…`.
pub fn render_mechanics(results: &Results) -> anyhow::Result<Vec<u8>> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    for m in &results.mechanics {
        w.serialize(MechRow {
            id: &m.id,
            mechanic: &m.mechanic,
            params: m
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";"),
            iteration: &m.iteration,
            status: serde_json::to_value(m.status)?
                .as_str()
                .unwrap_or_default()
                .to_string(),
            repeats_done: m.repeats_done,
            ns_per_iter: m.ns_per_iter.median,
            ns_per_iter_min: m.ns_per_iter.min,
            ns_per_iter_max: m.ns_per_iter.max,
            switches_per_iter: m.switches_per_iter.median,
            figures: m
                .extra
                .iter()
                .map(|(k, v)| format!("{k}={}", v.median))
                .collect::<Vec<_>>()
                .join(";"),
            error: m.error.as_deref(),
        })?;
    }
    w.into_inner().context("finishing CSV")
}
