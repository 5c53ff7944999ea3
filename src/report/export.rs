//! `concbench export`: results.json in the formats other benchmark trackers read, so users
//! can plug concbench into the tools they already run.
//!
//! # Bencher Metric Format (`--format bmf`)
//!
//! Followed: <https://bencher.dev/docs/reference/bencher-metric-format> — "Custom
//! benchmarking harnesses should output their results as BMF JSON and use the json adapter."
//! The shape is `{ "<benchmark name>": { "<measure slug>": { "value": N, "lower_value": N,
//! "upper_value": N } } }` with `value` required and the bounds optional; "Each Project has
//! a Latency (i.e. `latency`) and a Throughput (i.e. `throughput`) Measure by default …
//! measured in nanosecond (ns) and operations / second (ops/s) respectively", and a measure
//! slug that does not exist yet is created. Mapping:
//! - cell: `throughput` = ops/s (median, lower/upper = slowest/fastest window); `latency` =
//!   p50 ns (bounds from the windows' own p50 when recorded); `latency-p99` = p99 ns.
//! - mechanic: `latency` = ns per iteration (median, min, max over windows).
//! - server cell: `throughput` = requests/s over windows; `latency` = p50, `latency-p99`.
//!
//! # github-action-benchmark (`--format github-action-benchmark`)
//!
//! Followed: the action's README section on custom benchmarks, as documented at
//! <https://deepwiki.com/benchmark-action/github-action-benchmark/5.2-custom-benchmarks>
//! (sources: the README and `src/extract.ts`): "Custom benchmark data must be provided as a
//! JSON array of benchmark result objects", fields `name` (required, "Identifier for the
//! benchmark"), `value` (required, "The measured performance value"), `unit` (required),
//! `range` (optional, "Variation or error range of the measurement") and `extra` (optional,
//! "Additional information displayed in tooltips"); `customBiggerIsBetter` alerts "when
//! current values are significantly lower", `customSmallerIsBetter` when higher. Published
//! data files of projects using it carry `"range": "± 383"`-style strings, as written here.
//! One direction per file, matching the action's `tool:` input: `--tool customBiggerIsBetter`
//! (default) writes throughputs (cells' ops/s, servers' requests/s); `--tool
//! customSmallerIsBetter` writes times (cells' and servers' p50 and p99 latency, mechanics'
//! ns per iteration). `range` is "± half the min–max spread over windows".

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::result::{Results, Spread, Status};

/// Output formats of `concbench export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Bencher Metric Format JSON.
    Bmf,
    /// github-action-benchmark's custom JSON (see --tool).
    GithubActionBenchmark,
}

/// github-action-benchmark's custom tools: one direction per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tool {
    /// Throughputs: a drop is a regression.
    #[value(name = "customBiggerIsBetter")]
    CustomBiggerIsBetter,
    /// Times and latencies: a rise is a regression.
    #[value(name = "customSmallerIsBetter")]
    CustomSmallerIsBetter,
}

/// `concbench export` arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A results.json.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// With github-action-benchmark: which custom tool the file is for.
    #[arg(long, value_enum, default_value = "customBiggerIsBetter")]
    pub tool: Tool,
    /// Write here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `concbench export`: 0 on success, 2 on an unreadable input, 1 when the output cannot be
/// written.
pub fn main(args: ExportArgs) -> ExitCode {
    let results = match super::json::read(&args.file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let value = match args.format {
        Format::Bmf => bmf(&results),
        Format::GithubActionBenchmark => {
            serde_json::to_value(github_action_benchmark(&results, args.tool))
                .unwrap_or(Value::Null)
        }
    };
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    match &args.out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(p) => match super::write_atomic(p, text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: writing {}: {e}", p.display());
                ExitCode::from(1)
            }
        },
    }
}

fn metric(value: f64, bounds: Option<(f64, f64)>) -> Value {
    match bounds {
        Some((lo, hi)) => json!({ "value": value, "lower_value": lo, "upper_value": hi }),
        None => json!({ "value": value }),
    }
}

fn spread_metric(s: &Spread) -> Value {
    metric(s.median, Some((s.min, s.max)))
}

/// Results as Bencher Metric Format JSON (only entries that ran: status ok).
pub fn bmf(r: &Results) -> Value {
    let mut out = Map::new();
    for c in r.cells.iter().filter(|c| c.status == Status::Ok) {
        let mut m = Map::new();
        m.insert("throughput".into(), spread_metric(&c.ops_per_sec));
        let p50s: Option<Vec<f64>> = c
            .samples
            .iter()
            .map(|s| s.latency_ns.map(|l| l.p50 as f64))
            .collect();
        let bounds = p50s.filter(|v| !v.is_empty()).map(|v| {
            let s = Spread::of(&v);
            (s.min, s.max)
        });
        m.insert("latency".into(), metric(c.latency_ns.p50 as f64, bounds));
        m.insert("latency-p99".into(), metric(c.latency_ns.p99 as f64, None));
        out.insert(c.id.clone(), Value::Object(m));
    }
    for mech in r.mechanics.iter().filter(|m| m.status == Status::Ok) {
        let mut m = Map::new();
        m.insert("latency".into(), spread_metric(&mech.ns_per_iter));
        out.insert(mech.id.clone(), Value::Object(m));
    }
    for s in r.servers.iter().filter(|s| s.status == Status::Ok) {
        let mut m = Map::new();
        m.insert("throughput".into(), spread_metric(&s.requests_per_sec));
        m.insert("latency".into(), metric(s.latency_ns.p50 as f64, None));
        m.insert("latency-p99".into(), metric(s.latency_ns.p99 as f64, None));
        out.insert(s.id.clone(), Value::Object(m));
    }
    Value::Object(out)
}

/// One entry of github-action-benchmark's custom JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GabEntry {
    /// Benchmark name (the concbench id, plus the percentile for latencies).
    pub name: String,
    /// Unit shown on the chart.
    pub unit: String,
    /// The value.
    pub value: f64,
    /// Variation: "± half the min–max spread over windows" (absent for single values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Tooltip text: what the value is and over how many windows.
    pub extra: String,
}

fn range_of(s: &Spread) -> Option<String> {
    let half = (s.max - s.min) / 2.0;
    (half > 0.0).then(|| format!("± {}", round3(half)))
}

fn round3(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

/// Results as github-action-benchmark's custom JSON for `tool`.
pub fn github_action_benchmark(r: &Results, tool: Tool) -> Vec<GabEntry> {
    let mut out = Vec::new();
    let ok_cells = r.cells.iter().filter(|c| c.status == Status::Ok);
    let ok_servers = r.servers.iter().filter(|s| s.status == Status::Ok);
    match tool {
        Tool::CustomBiggerIsBetter => {
            for c in ok_cells {
                out.push(GabEntry {
                    name: c.id.clone(),
                    unit: "ops/s".into(),
                    value: c.ops_per_sec.median,
                    range: range_of(&c.ops_per_sec),
                    extra: format!(
                        "median of {} windows; min {:.0}, max {:.0}",
                        c.samples.len(),
                        c.ops_per_sec.min,
                        c.ops_per_sec.max
                    ),
                });
            }
            for s in ok_servers {
                out.push(GabEntry {
                    name: s.id.clone(),
                    unit: "req/s".into(),
                    value: s.requests_per_sec.median,
                    range: range_of(&s.requests_per_sec),
                    extra: format!("median of {} windows", s.samples.len()),
                });
            }
        }
        Tool::CustomSmallerIsBetter => {
            for c in ok_cells {
                for (p, v) in [("p50", c.latency_ns.p50), ("p99", c.latency_ns.p99)] {
                    out.push(GabEntry {
                        name: format!("{} {p}", c.id),
                        unit: "ns".into(),
                        value: v as f64,
                        range: None,
                        extra: format!(
                            "{p} latency over {} ops in {} windows",
                            c.latency_ns.count,
                            c.samples.len()
                        ),
                    });
                }
            }
            for m in r.mechanics.iter().filter(|m| m.status == Status::Ok) {
                out.push(GabEntry {
                    name: m.id.clone(),
                    unit: "ns/iter".into(),
                    value: m.ns_per_iter.median,
                    range: range_of(&m.ns_per_iter),
                    extra: format!(
                        "one iteration: {}; {} windows",
                        m.iteration,
                        m.samples.len()
                    ),
                });
            }
            for s in ok_servers {
                for (p, v) in [("p50", s.latency_ns.p50), ("p99", s.latency_ns.p99)] {
                    out.push(GabEntry {
                        name: format!("{} {p}", s.id),
                        unit: "ns".into(),
                        value: v as f64,
                        range: None,
                        extra: format!("{p} latency from the intended send time, last window"),
                    });
                }
            }
        }
    }
    out
}
