//! `concbench compare`: the CI regression gate. Reads two results files (a baseline, e.g. the
//! main branch's, and a candidate), matches cells, mechanics and server cells by id, and gives
//! each figure a change and a verdict (improved / regressed / unchanged / noisy / missing /
//! new, and failed when the candidate broke an invariant). The exit code is the gate: 0 when
//! nothing regressed or failed, 1 otherwise, 2 on bad input. Criterion only reports changes
//! and always exits 0; this fails the job.
//!
//! How a verdict is reached is in [`stats`]: the per-window values of both runs (ops/s of
//! every window of a cell, ns/iteration of every window of a mechanic, requests/s of every
//! window of a server cell) must differ by more than the threshold AND be separated (a rank
//! test with 4+ windows a side, disjoint ranges with fewer). Latency percentiles use each
//! window's own percentiles (`Sample::latency_ns`) when the files have them; files written
//! before that field existed, and server cells (whose latency is from the last window), have
//! one value per side and are gated on the threshold alone (the evidence column says so).
//!
//! `--relative` compares within-run ratios instead (see [`relative`]), which survive a move
//! to a faster or slower machine. `--criterion DIR` gates criterion's saved estimates (see
//! [`criterion`]).

mod absolute;
pub mod criterion;
pub mod markdown;
pub mod relative;
pub mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use serde::Serialize;

pub(crate) use absolute::is_latency;
pub use absolute::{compare, invariant_failures};
pub use stats::{Better, Verdict};

use crate::report::result::{CellResult, Results};

/// Figures `compare` can gate on. The first three are each kind's headline and the default.
pub const METRICS: &[(&str, &str)] = &[
    (
        "ops_per_sec",
        "cells: ops/s of every window (bigger is better)",
    ),
    (
        "ns_per_iter",
        "mechanics: ns per iteration of every window (smaller is better)",
    ),
    (
        "requests_per_sec",
        "server cells: responses/s of every window (bigger is better)",
    ),
    (
        "p50",
        "cells and server cells: median latency (smaller is better)",
    ),
    ("p90", "… 90th percentile latency"),
    ("p99", "… 99th percentile latency"),
    ("p999", "… 99.9th percentile latency"),
    ("mean", "… mean latency"),
];

/// The default metric set: each kind's headline throughput figure.
pub const DEFAULT_METRICS: &[&str] = &["ops_per_sec", "ns_per_iter", "requests_per_sec"];

/// `concbench compare` arguments.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Baseline results.json (e.g. the main branch's).
    #[arg(required_unless_present = "criterion")]
    pub base: Option<PathBuf>,
    /// Candidate results.json (e.g. the pull request's).
    #[arg(required_unless_present = "criterion")]
    pub new: Option<PathBuf>,
    /// Smallest change that counts, e.g. 5% or 0.05.
    #[arg(long, default_value = "5%", value_parser = parse_threshold)]
    pub threshold: f64,
    /// Figures to compare (comma-separated): ops_per_sec, ns_per_iter, requests_per_sec, p50,
    /// p90, p99, p999, mean [default: ops_per_sec,ns_per_iter,requests_per_sec]; with
    /// --criterion: mean, median or slope [default: mean].
    #[arg(long, value_delimiter = ',')]
    pub metric: Vec<String>,
    /// Compare within-run ratios (model ÷ reference model, W=N ÷ W=1, variant ÷ first
    /// variant), which survive a change of machine, instead of absolute figures.
    #[arg(long)]
    pub relative: bool,
    /// Print Markdown for a pull-request comment.
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Fail (exit 1) when a baseline entry is missing from the candidate.
    #[arg(long)]
    pub fail_on_missing: bool,
    /// Distrust cells whose windows the run's noise guard flagged (other processes used more
    /// of the machine than the suite's noise threshold) in either file: their changes are
    /// reported as noisy, never regressed or improved. For shared, busy CI runners.
    #[arg(long)]
    pub skip_noisy: bool,
    /// Compare criterion's saved estimates under this directory (e.g. target/criterion)
    /// instead of two results files.
    #[arg(long, conflicts_with_all = ["base", "new", "relative"])]
    pub criterion: Option<PathBuf>,
    /// With --criterion: the saved baseline's name (`--save-baseline NAME`).
    #[arg(long, default_value = "base", requires = "criterion")]
    pub baseline: String,
    /// With --criterion: the candidate's directory name (criterion writes `new`).
    #[arg(long, default_value = "new", requires = "criterion")]
    pub candidate: String,
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("\"{s}\" is not a threshold: write e.g. 5% or 0.05"))?;
    if !(0.0..10.0).contains(&v) || v.is_nan() {
        return Err(format!("threshold {s} is out of range: use 0% to 1000%"));
    }
    Ok(v)
}

/// A figure's values on one side: the centre and the spread the verdict used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Side {
    /// Median over windows (or the point estimate).
    pub center: f64,
    /// Smallest window (or the interval's lower bound).
    pub low: f64,
    /// Largest window (or the interval's upper bound).
    pub high: f64,
    /// Windows behind it (0 for criterion estimates).
    pub n: usize,
}

impl Side {
    /// Median, min, max and count of per-window values.
    pub fn of(v: &[f64]) -> Side {
        let s = crate::report::result::Spread::of(v);
        Side {
            center: s.median,
            low: s.min,
            high: s.max,
            n: v.len(),
        }
    }
}

/// One compared figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Cell, mechanic, server cell, ratio or criterion bench id.
    pub id: String,
    /// `cell`, `mechanic`, `server`, `ratio` or `criterion`.
    pub kind: &'static str,
    /// Metric name (`*` for a whole missing, new or failed entry).
    pub metric: String,
    /// Unit of the values.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// Baseline values (None when missing there).
    pub base: Option<Side>,
    /// Candidate values (None when missing there).
    pub new: Option<Side>,
    /// median(new) / median(base) − 1.
    pub change: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// How the verdict was reached (test, windows, chance level) or what failed.
    pub evidence: String,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was compared (file names or the criterion directory).
    pub title: String,
    /// Threshold as a fraction.
    pub threshold: f64,
    /// Metrics compared.
    pub metrics: Vec<String>,
    /// Whether within-run ratios were compared.
    pub relative: bool,
    /// Notes for the reader (different machines, suites, missing per-window values).
    pub notes: Vec<String>,
    /// Every row, worst verdicts first.
    pub rows: Vec<Row>,
    /// True when the gate fails (exit 1).
    pub failed: bool,
}

impl Report {
    /// Counts rows with `v`.
    pub fn count(&self, v: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == v).count()
    }

    fn finish(mut self, fail_on_missing: bool) -> Report {
        let skipped = self
            .rows
            .iter()
            .filter(|r| r.evidence.contains("but the noise guard flagged"))
            .count();
        if skipped > 0 {
            self.notes.push(format!(
                "--skip-noisy: {skipped} change(s) beyond the threshold came from noise-flagged windows and count as noisy"
            ));
        }
        self.rows
            .sort_by(|a, b| a.verdict.cmp(&b.verdict).then_with(|| a.id.cmp(&b.id)));
        self.failed = self.rows.iter().any(|r| {
            matches!(r.verdict, Verdict::Regressed | Verdict::Failed)
                || (fail_on_missing && r.verdict == Verdict::Missing)
        });
        self
    }
}

/// `concbench compare`: prints the report and returns the gate's exit code.
pub fn main(args: CompareArgs) -> ExitCode {
    match run(&args) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else if args.markdown {
                print!("{}", markdown::to_markdown(&report));
            } else {
                print!("{}", markdown::to_text(&report));
            }
            ExitCode::from(u8::from(report.failed))
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Reads the inputs and builds the report (errors are bad input: exit 2).
pub fn run(args: &CompareArgs) -> anyhow::Result<Report> {
    if let Some(dir) = &args.criterion {
        let metric = match args.metric.as_slice() {
            [] => "mean".to_string(),
            [m] => m.clone(),
            _ => bail!("--criterion compares one metric: give --metric mean, median or slope"),
        };
        return criterion::compare(
            dir,
            &args.baseline,
            &args.candidate,
            &metric,
            args.threshold,
        )
        .map(|r| r.finish(args.fail_on_missing));
    }
    let (Some(b), Some(n)) = (&args.base, &args.new) else {
        bail!("give BASE.json and NEW.json, or --criterion DIR");
    };
    let base = crate::report::json::read(b)?;
    let new = crate::report::json::read(n)?;
    let metrics = parse_metrics(&args.metric)?;
    let policy = Policy {
        threshold: args.threshold,
        skip_noisy: args.skip_noisy,
    };
    let mut report = if args.relative {
        relative::compare(&base, &new, &metrics, policy)?
    } else {
        compare(&base, &new, &metrics, policy)
    };
    report.title = format!("{} → {}", b.display(), n.display());
    Ok(report.finish(args.fail_on_missing))
}

/// Checks metric names; empty means the defaults.
pub fn parse_metrics(given: &[String]) -> anyhow::Result<Vec<String>> {
    if given.is_empty() {
        return Ok(DEFAULT_METRICS.iter().map(|s| s.to_string()).collect());
    }
    let mut out = Vec::new();
    for g in given {
        let g = g.trim();
        if !METRICS.iter().any(|(m, _)| *m == g) {
            let known: Vec<&str> = METRICS.iter().map(|(m, _)| *m).collect();
            bail!("unknown metric \"{g}\": use one of {}", known.join(", "));
        }
        if !out.iter().any(|o| o == g) {
            out.push(g.to_string());
        }
    }
    Ok(out)
}

/// How strict the gate is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Smallest relative change that counts (0.05 = 5%).
    pub threshold: f64,
    /// Report changes of noise-flagged cells as noisy (see `--skip-noisy`).
    pub skip_noisy: bool,
}

impl Policy {
    /// A gate at `threshold` that ignores noise flags (the default).
    pub fn new(threshold: f64) -> Policy {
        Policy {
            threshold,
            skip_noisy: false,
        }
    }
}

/// The largest other-CPU (or steal) share among a cell's windows that the noise guard
/// flagged; None when no window was flagged.
pub fn flagged_share(c: &CellResult) -> Option<f64> {
    c.samples
        .iter()
        .filter(|s| s.noise.flagged)
        .map(|s| s.noise.other_cpu.max(s.noise.steal))
        .reduce(f64::max)
}

/// Judges per-window values under `policy`; `flagged` is the worst flagged noise share of
/// the entries involved (either file).
pub fn judge(
    base: &[f64],
    new: &[f64],
    better: Better,
    policy: Policy,
    flagged: Option<f64>,
) -> stats::Judgement {
    let mut j = stats::judge(base, new, better, policy.threshold);
    if let (true, Some(share)) = (policy.skip_noisy, flagged)
        && matches!(j.verdict, Verdict::Regressed | Verdict::Improved)
    {
        j.evidence = format!(
            "{}; would be {}, but the noise guard flagged a window (other processes used {:.0}% of the machine)",
            j.evidence,
            j.verdict.label(),
            share * 100.0
        );
        j.verdict = Verdict::Noisy;
    }
    j
}

/// Notes every comparison carries: different machines, suites or tool versions.
pub fn context_notes(base: &Results, new: &Results) -> Vec<String> {
    let mut notes = Vec::new();
    if base.suite.name != new.suite.name {
        notes.push(format!(
            "different suites: {} vs {}",
            base.suite.name, new.suite.name
        ));
    }
    if base.machine.cpu_model != new.machine.cpu_model
        || base.machine.allowed_cpus.len() != new.machine.allowed_cpus.len()
    {
        notes.push(format!(
            "different machines: {} ({} cores) vs {} ({} cores): absolute figures may move; --relative compares within-run ratios",
            base.machine.cpu_model,
            base.machine.allowed_cpus.len(),
            new.machine.cpu_model,
            new.machine.allowed_cpus.len()
        ));
    }
    let noisy = new.cells.iter().filter(|c| c.noise.flagged).count();
    if noisy > 0 {
        notes.push(format!(
            "{noisy} candidate cell(s) were flagged noisy (other processes used the machine in a window)"
        ));
    }
    notes
}

/// A row for a whole entry (missing, new or failed).
pub fn whole(id: &str, kind: &'static str, verdict: Verdict, evidence: String) -> Row {
    Row {
        id: id.to_string(),
        kind,
        metric: "*".into(),
        unit: "",
        better: Better::Bigger,
        base: None,
        new: None,
        change: None,
        verdict,
        evidence,
    }
}
