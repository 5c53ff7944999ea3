//! The criterion bridge: `concbench compare --criterion target/criterion --baseline NAME`
//! gates criterion's own saved estimates, since criterion reports a regression and still
//! exits 0.
//!
//! Criterion keeps, per benchmark, `DIR/<benchmark directory>/<NAME>/estimates.json` for a
//! baseline saved with `--save-baseline NAME` and `.../new/estimates.json` for the latest run
//! (`benchmark.json` beside it holds the benchmark's full id). Each estimates file has `mean`,
//! `median`, `std_dev`, `median_abs_dev` and optionally `slope`, each a `point_estimate` with
//! a `confidence_interval` (`lower_bound`, `upper_bound`, `confidence_level`), in the
//! measurement's unit per iteration (ns for wall time). Smaller is better.
//!
//! The verdict uses [`super::stats::judge_intervals`]: a change beyond the threshold with
//! disjoint confidence intervals is regressed or improved, with overlapping ones noisy.
//!
//! Typical use: on the main branch `cargo bench -- --save-baseline main`; on the pull request
//! `cargo bench -- --baseline main` (compares against `main` without overwriting it and
//! writes `new`), then `concbench compare --criterion target/criterion --baseline main`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::stats::{self, Better, Verdict};
use super::{Report, Row, Side};

/// One criterion estimate: a point and its confidence interval.
#[derive(Debug, Clone, Deserialize)]
pub struct Estimate {
    /// The interval.
    pub confidence_interval: Interval,
    /// The point estimate.
    pub point_estimate: f64,
}

/// A confidence interval as criterion writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Interval {
    /// Confidence level (0.95 by default).
    pub confidence_level: f64,
    /// Lower bound.
    pub lower_bound: f64,
    /// Upper bound.
    pub upper_bound: f64,
}

/// criterion's `estimates.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Estimates {
    /// Mean time per iteration.
    pub mean: Estimate,
    /// Median time per iteration.
    pub median: Estimate,
    /// Slope of the linear regression (only for linear sampling).
    #[serde(default)]
    pub slope: Option<Estimate>,
}

impl Estimates {
    fn get(&self, metric: &str) -> Option<&Estimate> {
        match metric {
            "mean" => Some(&self.mean),
            "median" => Some(&self.median),
            _ => self.slope.as_ref(),
        }
    }
}

#[derive(Deserialize)]
struct BenchmarkId {
    full_id: String,
}

/// Benchmark directories under `dir`: every directory that has a `baseline` or `candidate`
/// subdirectory holding `estimates.json`.
fn bench_dirs(dir: &Path, baseline: &str, candidate: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    if [baseline, candidate]
        .iter()
        .any(|n| dir.join(n).join("estimates.json").is_file())
    {
        out.push(dir.to_path_buf());
    }
    for d in subdirs {
        let name = d.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Criterion's own per-benchmark subdirectories (baselines, change, report).
        if name == baseline || name == candidate || name == "change" || name == "report" {
            continue;
        }
        if d.join("estimates.json").is_file() {
            continue; // another saved baseline
        }
        bench_dirs(&d, baseline, candidate, out);
    }
}

fn read_estimates(path: &Path) -> anyhow::Result<Estimates> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a criterion estimates.json (expected mean/median with point_estimate and confidence_interval)",
            path.display()
        )
    })
}

/// Compares every benchmark's `baseline` estimates with its `candidate` estimates.
pub fn compare(
    dir: &Path,
    baseline: &str,
    candidate: &str,
    metric: &str,
    threshold: f64,
) -> anyhow::Result<Report> {
    if !matches!(metric, "mean" | "median" | "slope") {
        bail!("unknown criterion metric \"{metric}\": use mean, median or slope");
    }
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: give criterion's output directory, e.g. target/criterion",
            dir.display()
        );
    }
    let mut dirs = Vec::new();
    bench_dirs(dir, baseline, candidate, &mut dirs);
    if dirs.is_empty() {
        bail!(
            "no criterion estimates under {} for baseline \"{baseline}\" or \"{candidate}\": run `cargo bench -- --save-baseline {baseline}`, then `cargo bench -- --baseline {baseline}`",
            dir.display()
        );
    }
    let mut rows = Vec::new();
    for d in dirs {
        let id = [candidate, baseline]
            .iter()
            .find_map(|n| {
                let t = std::fs::read_to_string(d.join(n).join("benchmark.json")).ok()?;
                serde_json::from_str::<BenchmarkId>(&t).ok()
            })
            .map(|b| b.full_id)
            .unwrap_or_else(|| {
                d.strip_prefix(dir)
                    .unwrap_or(&d)
                    .to_string_lossy()
                    .into_owned()
            });
        let (bp, np) = (
            d.join(baseline).join("estimates.json"),
            d.join(candidate).join("estimates.json"),
        );
        let (b, n) = match (bp.is_file(), np.is_file()) {
            (true, true) => (read_estimates(&bp)?, read_estimates(&np)?),
            (true, false) => {
                rows.push(super::whole(
                    &id,
                    "criterion",
                    Verdict::Missing,
                    format!("no {candidate}/estimates.json"),
                ));
                continue;
            }
            _ => {
                rows.push(super::whole(
                    &id,
                    "criterion",
                    Verdict::New,
                    format!("no {baseline}/estimates.json"),
                ));
                continue;
            }
        };
        let (Some(be), Some(ne)) = (b.get(metric), n.get(metric)) else {
            bail!(
                "{}: no {metric} estimate (criterion writes slope only for linear sampling): use --metric mean",
                d.display()
            );
        };
        let tri = |e: &Estimate| {
            (
                e.point_estimate,
                e.confidence_interval.lower_bound,
                e.confidence_interval.upper_bound,
            )
        };
        let mut j = stats::judge_intervals(tri(be), tri(ne), Better::Smaller, threshold);
        let level = ne.confidence_interval.confidence_level;
        j.evidence = j
            .evidence
            .replacen("95%", &format!("{:.0}%", level * 100.0), 1);
        let side = |e: &Estimate| Side {
            center: e.point_estimate,
            low: e.confidence_interval.lower_bound,
            high: e.confidence_interval.upper_bound,
            n: 0,
        };
        rows.push(Row {
            id,
            kind: "criterion",
            metric: metric.to_string(),
            unit: "ns",
            better: Better::Smaller,
            base: Some(side(be)),
            new: Some(side(ne)),
            change: j.change,
            verdict: j.verdict,
            evidence: j.evidence,
        });
    }
    Ok(Report {
        title: format!(
            "criterion {}: {baseline} → {candidate}",
            dir.display()
        ),
        threshold,
        metrics: vec![metric.to_string()],
        relative: false,
        notes: vec![
            "criterion estimates: point estimate (confidence interval); unit is the measurement's per iteration (ns for wall time)".into(),
        ],
        rows,
        failed: false,
    })
}
