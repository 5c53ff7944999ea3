//! `concbench export` through the real binary: Bencher Metric Format and
//! github-action-benchmark JSON from a fixed results file (tests/fixtures/lecture-results.json)
//! compared with snapshot files under tests/snapshots/ (`UPDATE_SNAPSHOTS=1` rewrites them),
//! plus the formats' own rules (required fields, bounds around the value).

mod common;

use std::path::Path;

use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/lecture-results.json";
const CUT: &str = "spin/iterations=0,op_time=10us/threads/w2/t2/spread/closed";

fn fixture() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Value, list: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} differs from its snapshot; if intended, rerun with UPDATE_SNAPSHOTS=1"
    );
}

fn export(args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["export", FIXTURE];
    a.extend_from_slice(args);
    let o = common::run(&a);
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bmf_export_matches_its_snapshot_and_the_format() {
    let (code, out, err) = export(&["--format", "bmf"]);
    assert_eq!(code, 0, "{err}");
    snapshot("export-bmf.json", &out);
    let v: Value = serde_json::from_str(&out).unwrap();
    let f = fixture();
    let obj = v.as_object().unwrap();
    assert_eq!(
        obj.len(),
        ids(&f, "cells").len() + ids(&f, "mechanics").len()
    );
    for (name, measures) in obj {
        for (slug, m) in measures.as_object().unwrap() {
            let value = m["value"]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} {slug}"));
            assert!(value > 0.0, "{name} {slug}");
            if let (Some(lo), Some(hi)) = (m["lower_value"].as_f64(), m["upper_value"].as_f64()) {
                assert!(lo <= value && value <= hi, "{name} {slug} {m}");
            }
        }
    }
    assert!(obj[CUT]["throughput"]["value"].as_f64().unwrap() > 100_000.0);
    assert!(obj["spawn/what=fork"]["latency"]["value"].as_f64().unwrap() > 0.0);
}

#[test]
fn github_action_benchmark_exports_match_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    for (tool, snap, unit) in [
        ("customBiggerIsBetter", "export-gab-bigger.json", "ops/s"),
        ("customSmallerIsBetter", "export-gab-smaller.json", "ns"),
    ] {
        let out = dir.path().join(snap);
        let (code, stdout, err) = export(&[
            "--format",
            "github-action-benchmark",
            "--tool",
            tool,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(stdout.is_empty(), "--out writes the file, not stdout");
        let text = std::fs::read_to_string(&out).unwrap();
        snapshot(snap, &text);
        let v: Value = serde_json::from_str(&text).unwrap();
        let entries = v.as_array().unwrap();
        assert!(!entries.is_empty());
        for e in entries {
            assert!(e["name"].is_string() && e["unit"].is_string(), "{e}");
            assert!(e["value"].as_f64().unwrap() > 0.0, "{e}");
            if let Some(r) = e.get("range") {
                assert!(r.as_str().unwrap().starts_with("± "), "{e}");
            }
        }
        assert!(entries.iter().any(|e| e["unit"] == unit));
    }
    let o = common::run(&["export", "/nonexistent.json", "--format", "bmf"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.json"));
}
