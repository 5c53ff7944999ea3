//! `concbench claims`: a verdict with numbers for every lecture claim from a real results
//! file, in text, Markdown and JSON; a file that is not results is an error (exit 2).

mod common;

use common::*;

const FIXTURE: &str = "tests/fixtures/lecture-results.json";

#[test]
fn prints_a_verdict_for_every_claim() {
    let o = run(&["claims", FIXTURE]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let verdicts = out
        .lines()
        .filter(|l| {
            l.starts_with("[holds]")
                || l.starts_with("[does not hold here]")
                || l.starts_with("[inconclusive]")
        })
        .count();
    assert_eq!(verdicts, 8, "{out}");

    let o = run(&["claims", FIXTURE, "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 8);

    let o = run(&["claims", FIXTURE, "--markdown"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("| claim | verdict | evidence |"));
}

#[test]
fn fault_isolation_is_judged_from_a_real_faults_run() {
    let o = run(&["claims", FIXTURE, "tests/fixtures/faults-results.json"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.contains("A crashing process leaves its siblings running"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("[holds]"), "{out}");
}

#[test]
fn a_file_that_is_not_results_exits_2() {
    let o = run(&["claims", "Cargo.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Cargo.toml") && err.contains("not valid JSON"),
        "{err}"
    );
    let o = run(&["claims", "no/such.json"]);
    assert_eq!(o.status.code(), Some(2));
}
