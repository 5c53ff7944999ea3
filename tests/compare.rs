//! `concbench compare` and `concbench export` through the real binary: verdicts and exit
//! codes on synthetic changes of a real results file (tests/fixtures/lecture-results.json),
//! the criterion bridge on synthetic and real estimates, and the CI policy against the
//! committed baseline. The exporters are in tests/export.rs.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

const FIXTURE: &str = "tests/fixtures/lecture-results.json";
const CUT: &str = "spin/iterations=0,op_time=10us/threads/w2/t2/spread/closed";

fn fixture() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

/// Multiplies every window of the entry `id` (cell ops/s, or mechanic ns/iter) by `f(i)`.
fn scale(v: &mut Value, id: &str, f: impl Fn(usize) -> f64) {
    for list in ["cells", "mechanics"] {
        for e in v[list].as_array_mut().unwrap() {
            if e["id"] != id {
                continue;
            }
            for (i, s) in e["samples"].as_array_mut().unwrap().iter_mut().enumerate() {
                let key = if list == "cells" {
                    "ops_per_sec"
                } else {
                    "ns_per_iter"
                };
                let x = s[key].as_f64().unwrap() * f(i);
                s[key] = json!(x);
            }
        }
    }
}

fn ids(v: &Value, list: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `concbench compare` with `args`; returns (exit code, stdout, stderr).
fn compare(args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["compare"];
    a.extend_from_slice(args);
    let o = common::run(&a);
    (
        o.status.code().expect("exited"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn compare_json(args: &[&str]) -> (i32, Value) {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = compare(&a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

fn verdict_of<'a>(report: &'a Value, id: &str, metric: &str) -> &'a str {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id && r["metric"] == metric)
        .unwrap_or_else(|| panic!("no row {id} {metric}"))["verdict"]
        .as_str()
        .unwrap()
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn identical_files_pass_with_every_figure_unchanged() {
    let (code, rep) = compare_json(&[FIXTURE, FIXTURE]);
    assert_eq!(code, 0);
    let v = verdicts(&rep);
    let f = fixture();
    // One row per cell and mechanic (the default metrics), all unchanged.
    assert_eq!(v.len(), ids(&f, "cells").len() + ids(&f, "mechanics").len());
    assert!(v.iter().all(|(_, x)| x == "unchanged"), "{v:?}");
    assert_eq!(rep["failed"], false);
}

#[test]
fn a_20_percent_cut_in_one_cell_is_caught_and_nothing_else_moves() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    scale(&mut f, CUT, |_| 0.8);
    let new = write(dir.path(), "new.json", &f);
    let (code, rep) = compare_json(&[FIXTURE, new.to_str().unwrap()]);
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(verdict_of(&rep, CUT, "ops_per_sec"), "regressed");
    let change = rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == CUT)
        .unwrap()["change"]
        .as_f64()
        .unwrap();
    assert!((change + 0.2).abs() < 1e-9, "{change}");
    for (id, v) in verdicts(&rep) {
        if id != CUT {
            assert_eq!(v, "unchanged", "{id}");
        }
    }
    // The Markdown comment: summary first, the regression in the table, the rest folded.
    let (code, md, _) = compare(&[FIXTURE, new.to_str().unwrap(), "--markdown"]);
    assert_eq!(code, 1);
    let first = md.lines().next().unwrap();
    assert!(
        first.contains("gate failed") && first.contains("1 regressed"),
        "{first}"
    );
    let table_at = md.find("### Regressions and improvements").expect(&md);
    let details_at = md.find("<details>").expect(&md);
    let row_at = md.find(&format!("`{CUT}`")).expect(&md);
    assert!(table_at < row_at && row_at < details_at, "{md}");
    assert!(md.contains("-20%"), "{md}");
    assert!(md.trim_end().contains("</details>"));
    // A 20% cut is within a 25% threshold.
    let (code, _, _) = compare(&[FIXTURE, new.to_str().unwrap(), "--threshold", "25%"]);
    assert_eq!(code, 0);
}

#[test]
fn noise_within_the_threshold_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    let factors = [0.97, 1.03, 0.985, 1.02];
    for list in ["cells", "mechanics"] {
        for id in ids(&f.clone(), list) {
            scale(&mut f, &id, |i| factors[i % factors.len()]);
        }
    }
    let new = write(dir.path(), "new.json", &f);
    let (code, rep) = compare_json(&[FIXTURE, new.to_str().unwrap()]);
    assert_eq!(code, 0, "{rep:#}");
    assert!(verdicts(&rep).iter().all(|(_, v)| v == "unchanged"));
}

#[test]
fn a_change_beyond_the_threshold_with_overlapping_windows_is_noisy_not_regressed() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    // Median drops ~15%, but one window stays as fast as before: ranges overlap.
    scale(&mut f, CUT, |i| if i == 2 { 1.0 } else { 0.85 });
    let new = write(dir.path(), "new.json", &f);
    let (code, rep) = compare_json(&[FIXTURE, new.to_str().unwrap()]);
    assert_eq!(code, 0, "{rep:#}");
    assert_eq!(verdict_of(&rep, CUT, "ops_per_sec"), "noisy");
}

#[test]
fn missing_new_and_failed_cells() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    let cells = f["cells"].as_array_mut().unwrap();
    let removed = cells.remove(0)["id"].as_str().unwrap().to_string();
    let mut extra = cells[0].clone();
    extra["id"] = json!("spin/iterations=0,op_time=10us/threads/w9/t9/spread/closed");
    cells.push(extra);
    let new = write(dir.path(), "new.json", &f);
    let (code, rep) = compare_json(&[FIXTURE, new.to_str().unwrap()]);
    assert_eq!(code, 0, "missing and new do not fail by default: {rep:#}");
    assert_eq!(verdict_of(&rep, &removed, "*"), "missing");
    assert_eq!(
        verdict_of(
            &rep,
            "spin/iterations=0,op_time=10us/threads/w9/t9/spread/closed",
            "*"
        ),
        "new"
    );
    let (code, _) = compare_json(&[FIXTURE, new.to_str().unwrap(), "--fail-on-missing"]);
    assert_eq!(code, 1);

    // A candidate cell that failed, or did no ops, fails the gate in both modes.
    let mut f = fixture();
    f["cells"][1]["status"] = json!("failed");
    f["cells"][1]["error"] = json!("worker 0 exited with status 101");
    let failed_id = f["cells"][1]["id"].as_str().unwrap().to_string();
    for s in f["cells"][2]["samples"].as_array_mut().unwrap() {
        s["ops"] = json!(0);
        s["ops_per_sec"] = json!(0.0);
    }
    let zero_id = f["cells"][2]["id"].as_str().unwrap().to_string();
    let new = write(dir.path(), "failed.json", &f);
    for mode in [&[][..], &["--relative"][..]] {
        let mut a = vec![FIXTURE, new.to_str().unwrap()];
        a.extend_from_slice(mode);
        let (code, rep) = compare_json(&a);
        assert_eq!(code, 1, "{mode:?} {rep:#}");
        assert_eq!(verdict_of(&rep, &failed_id, "*"), "failed");
        assert_eq!(verdict_of(&rep, &zero_id, "*"), "failed");
        let ev = rep["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == failed_id.as_str());
        assert!(
            ev.unwrap()["evidence"]
                .as_str()
                .unwrap()
                .contains("exited with status 101")
        );
    }
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = compare(&[FIXTURE, "/nonexistent/results.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/results.json"), "{err}");
    let (code, _, err) = compare(&[FIXTURE, FIXTURE, "--metric", "ops_per_sec,p42"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown metric \"p42\"") && err.contains("p99"),
        "{err}"
    );
    let mut f = fixture();
    f["schema_version"] = json!(99);
    let other = write(dir.path(), "v99.json", &f);
    let (code, _, err) = compare(&[FIXTURE, other.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("schema version 99"), "{err}");
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{ not json").unwrap();
    let (code, _, err) = compare(&[junk.to_str().unwrap(), FIXTURE]);
    assert_eq!(code, 2);
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = compare(&[FIXTURE, FIXTURE, "--threshold", "five"]);
    assert_eq!(code, 2);
    assert!(err.contains("5%"), "{err}");
    let (code, _, err) = compare(&[FIXTURE, FIXTURE, "--relative", "--metric", "p99"]);
    assert_eq!(code, 2);
    assert!(err.contains("--relative"), "{err}");
}

#[test]
fn latency_metrics_without_per_window_values_gate_on_the_threshold_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = fixture();
    let c = &mut f["cells"].as_array_mut().unwrap()[4];
    let p99 = c["latency_ns"]["p99"].as_u64().unwrap();
    c["latency_ns"]["p99"] = json!(p99 * 2);
    let id = c["id"].as_str().unwrap().to_string();
    let new = write(dir.path(), "new.json", &f);
    let (code, rep) = compare_json(&[FIXTURE, new.to_str().unwrap(), "--metric", "p99"]);
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(verdict_of(&rep, &id, "p99"), "regressed");
    let row = rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap();
    assert!(row["evidence"].as_str().unwrap().contains("threshold only"));
    assert!(rep["notes"].to_string().contains("threshold alone"));
}

#[test]
fn relative_mode_survives_a_uniformly_slower_machine_and_catches_one_model_slowing() {
    let dir = tempfile::tempdir().unwrap();
    // Everything 30% slower: a slower runner.
    let mut slow = fixture();
    for list in ["cells", "mechanics"] {
        for id in ids(&slow.clone(), list) {
            let f = if list == "cells" { 0.7 } else { 1.0 / 0.7 };
            scale(&mut slow, &id, |_| f);
        }
    }
    let slow_p = write(dir.path(), "slow.json", &slow);
    let (code, _) = compare_json(&[FIXTURE, slow_p.to_str().unwrap()]);
    assert_eq!(code, 1, "absolute figures regress on a slower machine");
    let (code, rep) = compare_json(&[FIXTURE, slow_p.to_str().unwrap(), "--relative"]);
    assert_eq!(code, 0, "{rep:#}");
    let rows = rep["rows"].as_array().unwrap();
    assert!(rows.len() >= 10, "{rep:#}");
    assert!(rows.iter().all(|r| r["verdict"] == "unchanged"), "{rep:#}");
    // The pairs the module doc promises, built from the data.
    let has = |s: &str| rows.iter().any(|r| r["id"].as_str().unwrap() == s);
    assert!(has(
        "spin/iterations=0,op_time=10us/threads/w2/t2/spread/closed ÷ processes"
    ));
    assert!(has(
        "spin/iterations=0,op_time=10us/processes/w2/t2/spread/closed ÷ threads"
    ));
    assert!(has("spawn/what=thread ÷ spawn/what=fork"));
    // Only threads 20% slower: the threads ÷ processes ratio regresses.
    let mut f = fixture();
    scale(&mut f, CUT, |_| 0.8);
    let p = write(dir.path(), "threads.json", &f);
    let (code, rep) = compare_json(&[FIXTURE, p.to_str().unwrap(), "--relative"]);
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(
        verdict_of(&rep, &format!("{CUT} ÷ processes"), "ops_per_sec"),
        "regressed"
    );
}

/// Writes a criterion-style estimates.json with a point estimate and interval.
fn estimates(dir: &Path, point: f64, lo: f64, hi: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let e = |p: f64, l: f64, h: f64| {
        json!({"confidence_interval": {"confidence_level": 0.95, "lower_bound": l, "upper_bound": h},
               "point_estimate": p, "standard_error": (h - l) / 4.0})
    };
    let v = json!({
        "mean": e(point, lo, hi), "median": e(point, lo, hi),
        "median_abs_dev": e(1.0, 0.5, 1.5), "slope": e(point, lo, hi), "std_dev": e(2.0, 1.0, 3.0)
    });
    std::fs::write(dir.join("estimates.json"), v.to_string()).unwrap();
}

#[test]
fn criterion_bridge_gates_saved_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("criterion");
    let cases = [
        (
            "g/same",
            (100.0, 98.0, 102.0),
            Some((101.0, 99.0, 103.0)),
            "unchanged",
        ),
        (
            "g/slower",
            (100.0, 98.0, 102.0),
            Some((130.0, 128.0, 132.0)),
            "regressed",
        ),
        (
            "g/faster",
            (100.0, 98.0, 102.0),
            Some((70.0, 69.0, 71.0)),
            "improved",
        ),
        (
            "g/wobbly",
            (100.0, 98.0, 102.0),
            Some((130.0, 90.0, 170.0)),
            "noisy",
        ),
        ("g/gone", (100.0, 98.0, 102.0), None, "missing"),
    ];
    for (id, b, n, _) in cases {
        estimates(&root.join(id).join("main"), b.0, b.1, b.2);
        if let Some(n) = n {
            estimates(&root.join(id).join("new"), n.0, n.1, n.2);
        }
    }
    estimates(&root.join("g/fresh/new"), 5.0, 4.0, 6.0);
    let r = root.to_str().unwrap();
    let (code, rep) = compare_json(&["--criterion", r, "--baseline", "main"]);
    assert_eq!(code, 1, "{rep:#}");
    for (id, .., want) in cases {
        let metric = if want == "missing" { "*" } else { "mean" };
        assert_eq!(verdict_of(&rep, id, metric), want, "{id}");
    }
    assert_eq!(verdict_of(&rep, "g/fresh", "*"), "new");
    // Without the regression the gate passes.
    std::fs::remove_dir_all(root.join("g/slower")).unwrap();
    let (code, rep) = compare_json(&["--criterion", r, "--baseline", "main", "--metric", "median"]);
    assert_eq!(code, 0, "{rep:#}");
    // Errors: no such baseline, bad metric, not a directory.
    let (code, _, err) = compare(&[
        "--criterion",
        r,
        "--baseline",
        "nope",
        "--candidate",
        "nope2",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--save-baseline nope"), "{err}");
    let (code, _, err) = compare(&["--criterion", r, "--baseline", "main", "--metric", "p99"]);
    assert_eq!(code, 2);
    assert!(err.contains("mean, median or slope"), "{err}");
    let (code, _, _) = compare(&["--criterion", "/nonexistent", "--baseline", "main"]);
    assert_eq!(code, 2);
}

#[test]
fn criterion_bridge_reads_real_cargo_bench_output() {
    // Copied from a real `cargo bench --bench os -- --save-baseline base --quick <filter>`
    // followed by `cargo bench --bench os -- --baseline base --quick <filter>`.
    let real = "tests/fixtures/criterion";
    let (code, rep) = compare_json(&["--criterion", real, "--baseline", "base"]);
    assert!(code == 0 || code == 1, "{rep:#}");
    let rows = rep["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        assert_eq!(r["kind"], "criterion");
        assert!(r["base"]["center"].as_f64().unwrap() > 0.0, "{r:#}");
        assert!(r["new"]["center"].as_f64().unwrap() > 0.0, "{r:#}");
        // The id is criterion's full id from benchmark.json, not a path.
        assert!(
            !r["id"].as_str().unwrap().contains("tests/fixtures"),
            "{r:#}"
        );
    }
    assert_eq!(code == 1, rows.iter().any(|r| r["verdict"] == "regressed"));
}

#[test]
fn skip_noisy_distrusts_only_cells_the_noise_guard_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture();
    // The fixture's sleep cells had a window flagged by the noise guard; its spin cells none.
    let flagged = "sleep/delay=10ms/event-loop/w1/t64/spread/closed";
    let flags = |id: &str| -> Vec<bool> {
        let c = f["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap();
        c["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["noise"]["flagged"] == true)
            .collect()
    };
    assert!(flags(flagged).contains(&true));
    assert!(!flags(CUT).contains(&true));
    let mut cut = f.clone();
    scale(&mut cut, flagged, |_| 0.8);
    let p = write(dir.path(), "flagged-cut.json", &cut);
    let (code, _) = compare_json(&[FIXTURE, p.to_str().unwrap()]);
    assert_eq!(code, 1, "without --skip-noisy the cut is a regression");
    let (code, rep) = compare_json(&[FIXTURE, p.to_str().unwrap(), "--skip-noisy"]);
    assert_eq!(code, 0, "{rep:#}");
    assert_eq!(verdict_of(&rep, flagged, "ops_per_sec"), "noisy");
    assert!(rep.to_string().contains("noise guard flagged"), "{rep:#}");
    // A cut in a clean cell is still caught.
    let mut cut = f.clone();
    scale(&mut cut, CUT, |_| 0.8);
    let p = write(dir.path(), "clean-cut.json", &cut);
    let (code, rep) = compare_json(&[FIXTURE, p.to_str().unwrap(), "--skip-noisy"]);
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(verdict_of(&rep, CUT, "ops_per_sec"), "regressed");
}

/// The gate .ci/run applies against the committed baseline (docs/ci.md): invariants plus
/// within-run ratios with a generous bound, distrusting noise-flagged windows.
const CI_POLICY: &[&str] = &[
    "--relative",
    "--threshold",
    "50%",
    "--skip-noisy",
    "--fail-on-missing",
];
const BASELINE: &str = "results/baseline/ci.json";

#[test]
fn ci_policy_passes_a_fresh_ci_run_against_the_committed_baseline_and_fails_a_broken_one() {
    common::become_subreaper();
    let dir = tempfile::tempdir().unwrap();
    let (o, results) = common::run_suite(dir.path(), Path::new("workloads/ci.toml"), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The gate's invariant is per cell (ops summed over windows): on a saturated machine a
    // single 200 ms window of a starved worker process has been seen to count 0 ops.
    assert!(
        results
            .cells
            .iter()
            .all(|c| c.samples.iter().map(|s| s.ops).sum::<u64>() > 0)
    );
    // Each window carries its own latency percentiles, and the windows' op counts add up to
    // the cell's merged histogram.
    for c in &results.cells {
        let per: Vec<_> = c
            .samples
            .iter()
            .map(|s| s.latency_ns.expect("per-window latency"))
            .collect();
        assert!(
            per.iter()
                .filter(|l| l.count > 0)
                .all(|l| l.p50 <= l.p99 && l.p99 <= l.max),
            "{}",
            c.id
        );
        assert!(per.iter().any(|l| l.count > 0), "{}", c.id);
        assert_eq!(
            per.iter().map(|l| l.count).sum::<u64>(),
            c.latency_ns.count,
            "{}",
            c.id
        );
    }
    let fresh = dir.path().join("out/results.json");
    let mut a = vec![BASELINE, fresh.to_str().unwrap()];
    a.extend_from_slice(CI_POLICY);
    let (code, rep) = compare_json(&a);
    assert_eq!(code, 0, "{rep:#}");
    // The baseline matches the suite: nothing missing, nothing new, ratios compared.
    let rows = rep["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["verdict"] != "missing" && r["verdict"] != "new"),
        "{rep:#}"
    );
    assert!(
        rows.iter().filter(|r| r["kind"] == "ratio").count() >= 10,
        "{rep:#}"
    );
    // The same run with one cell broken fails the gate.
    let mut broken: Value =
        serde_json::from_str(&std::fs::read_to_string(&fresh).unwrap()).unwrap();
    broken["cells"][3]["status"] = json!("timed-out");
    let bp = write(dir.path(), "broken.json", &broken);
    let mut a = vec![BASELINE, bp.to_str().unwrap()];
    a.extend_from_slice(CI_POLICY);
    let (code, rep) = compare_json(&a);
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(
        verdict_of(&rep, broken["cells"][3]["id"].as_str().unwrap(), "*"),
        "failed"
    );
    assert!(common::leftover_children(std::time::Duration::from_secs(2)).is_empty());
}
